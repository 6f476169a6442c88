import Glibc
import XCTest
@testable import Tangle
import TangleRecorder
import TangleTraceReader
import TangleTestSupport

/// Runs a traced child (TANGLE_TRACE set for the child only) that uses a Queue with a spawned
/// producer, a Lock, a one-way Pipe with a forked sender, and an Event, then checks the trace read
/// back with TraceReader: puts = gets with the same message ids, acquires = releases, sends =
/// receives then one EOF, each end's handle attach/close, effects recorded before they were observed.
final class QueueTraceTests: XCTestCase {
    override class func setUp() {
        registerTangleTestsEntryPoints()
        super.setUp()
        setenv("SWIFT_BACKTRACE", "enable=no", 1)
    }

    func testTraceCountsMatch() throws {
        let dir = makeTempDir("tangle-prim-trace")
        addTeardownBlock { removeTree(dir) }
        TangleRuntime.ensureStarted()
        _ = Recorder.isEnabled
        setenv("TANGLE_TRACE", dir, 1)
        let child = ChildProcess(entryPoint: "prim.trace.workload", arguments: 40)
        do { try child.start() } catch { unsetenv("TANGLE_TRACE"); throw error }
        unsetenv("TANGLE_TRACE")
        XCTAssertEqual(child.join(timeout: .seconds(60)), .exited(0))
        let trace = try TraceReader.load(paths: [dir])
        let root = child.pid
        let ev = trace.events
        // Only the lock holder that was SIGKILLed may have a cut file.
        let killed = Set(ev.filter { $0.kind == .processKill }.map { Int32($0.a) })
        XCTAssertEqual(killed.count, 1)
        XCTAssertTrue(trace.truncated.allSatisfy { p in killed.contains { p.file.contains("/\($0)-") } }, "\(trace.problems)")

        // Queue: 40 puts by the grandchild, 40 gets by the root, same message ids, put before get.
        guard let qnew = ev.first(where: { $0.kind == .queueNew && $0.pid == root }) else { return XCTFail("no queue.new") }
        let puts = ev.filter { $0.kind == .queuePut && $0.object == qnew.object }
        let gets = ev.filter { $0.kind == .queueGet && $0.object == qnew.object }
        XCTAssertEqual(puts.count, 40)
        XCTAssertEqual(gets.count, 40)
        XCTAssertEqual(Set(puts.map { $0.a }), Set(gets.map { $0.a }))
        XCTAssertTrue(puts.allSatisfy { $0.pid != root }, "puts come from the spawned producer")
        XCTAssertTrue(gets.allSatisfy { $0.pid == root })
        let putTime = Dictionary(uniqueKeysWithValues: puts.map { ($0.a, $0.time) })
        XCTAssertTrue(gets.allSatisfy { putTime[$0.a]! <= $0.time }, "each put recorded before its get")
        XCTAssertTrue(ev.contains { $0.kind == .handleAttach && $0.object == qnew.object && $0.pid != root },
                      "the producer attached the queue handle")

        // Lock: acquires = releases.
        guard let lnew = ev.first(where: { $0.kind == .lockNew && $0.pid == root }) else { return XCTFail("no lock.new") }
        let acquired = ev.filter { $0.kind == .lockAcquired && $0.object == lnew.object }
        let released = ev.filter { $0.kind == .lockReleased && $0.object == lnew.object }
        XCTAssertEqual(acquired.count, 10)
        XCTAssertEqual(released.count, 10)
        XCTAssertTrue(released.allSatisfy { $0.b == 0 }, "released by the owner")

        // Pipe: 5 sends (forked child, end 1) = 5 receives (root, end 0), then one EOF.
        guard let pnew = ev.first(where: { $0.kind == .pipeNew && $0.pid == root }) else { return XCTFail("no pipe.new") }
        // Named after where it was made (the workload names its other objects): the trace says it.
        XCTAssertTrue(pnew.text?.hasPrefix("pipe@SharedTestSupport.swift:") == true, "pipe.new text \(pnew.text ?? "nil")")
        XCTAssertEqual(qnew.text, "trace-q")
        let sends = ev.filter { $0.kind == .pipeSend && $0.object == pnew.object }
        let recvs = ev.filter { $0.kind == .pipeRecv && $0.object == pnew.object && $0.result == .ok }
        XCTAssertEqual(sends.count, 5)
        XCTAssertEqual(recvs.count, 5)
        XCTAssertEqual(Set(sends.map { $0.a }), Set(recvs.map { $0.a }))
        XCTAssertTrue(sends.allSatisfy { $0.c == 1 && $0.pid != root })
        XCTAssertEqual(ev.filter { $0.kind == .pipeRecv && $0.object == pnew.object && $0.result == .eof }.count, 1)
        let rootAttach = ev.filter { $0.kind == .handleAttach && $0.object == pnew.object && $0.pid == root }
        XCTAssertEqual(Set(rootAttach.map { $0.c }), [0, 1], "the creator holds both ends")
        let rootClose = ev.filter { $0.kind == .handleClose && $0.object == pnew.object && $0.pid == root }
        XCTAssertTrue(rootClose.contains { $0.c == 1 }, "the root closed its write end")

        // Owner killed while holding a lock: acquired in the holder, never released there, then
        // lock.owner-died in the root naming the holder's pid.
        guard let dnew = ev.first(where: { $0.kind == .lockNew && $0.text == "trace-doomed" }) else { return XCTFail("no doomed lock") }
        let died = ev.filter { $0.kind == .lockOwnerDied && $0.object == dnew.object }
        XCTAssertEqual(died.count, 1)
        XCTAssertEqual(died.first?.pid, root)
        XCTAssertEqual(died.first?.result, .ownerDied)
        let holderPid = Int32(died.first?.a ?? 0)
        XCTAssertNotEqual(holderPid, root)
        XCTAssertEqual(ev.filter { $0.kind == .lockAcquired && $0.object == dnew.object && $0.pid == holderPid }.count, 1,
                       "holder \(holderPid) events: \(ev.filter { $0.pid == holderPid }.map { "\($0.kind.name) o=\($0.object)" }), doomed \(dnew.object)")
        XCTAssertEqual(ev.filter { $0.kind == .lockReleased && $0.object == dnew.object && $0.pid == holderPid }.count, 0)

        // Event: set before the waiter's wake.
        guard let enew = ev.first(where: { $0.kind == .eventNew && $0.text == "trace-event" }) else { return XCTFail("no event.new") }
        let sets = ev.filter { $0.kind == .eventSet && $0.object == enew.object }
        let wakes = ev.filter { $0.kind == .eventWake && $0.result == .ok && $0.object == enew.object }
        XCTAssertEqual(sets.count, 1)
        XCTAssertFalse(wakes.isEmpty)
        XCTAssertTrue(wakes.allSatisfy { $0.time >= sets[0].time })
    }
}
