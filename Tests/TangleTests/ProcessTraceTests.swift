import Glibc
import XCTest
@testable import Tangle
import TangleRecorder
import TangleTraceReader
import TangleTestSupport

/// Runs a traced child (TANGLE_TRACE set for the child only) and checks that the trace it and its
/// own children wrote matches what happened: spawns, forks, starts, joins with their statuses,
/// exits, threads, and a pool's tasks.
final class ProcessTraceTests: XCTestCase {
    override class func setUp() {
        registerTangleTestsEntryPoints()
        super.setUp()
        setenv("SWIFT_BACKTRACE", "enable=no", 1)
    }

    private func runTraced(_ entry: String, _ argument: Int) throws -> (LoadedTrace, Int32) {
        let dir = makeTempDir("tangle-proc-trace")
        addTeardownBlock { removeTree(dir) }
        // Let the test process decide whether it traces (from its own environment) before the
        // variable is set for the child: the recorder reads it once.
        TangleRuntime.ensureStarted()
        _ = Recorder.isEnabled
        setenv("TANGLE_TRACE", dir, 1)
        let child = ChildProcess(entryPoint: entry, arguments: argument)
        do {
            try child.start()
        } catch {
            unsetenv("TANGLE_TRACE")
            throw error
        }
        unsetenv("TANGLE_TRACE")
        XCTAssertEqual(child.join(timeout: .seconds(60)), .exited(0))
        return (try TraceReader.load(paths: [dir]), child.pid)
    }

    /// Spawns and forks, joins, exits and a thread, as the intermediary and its children recorded them.
    func testSpawnForkJoinTrace() throws {
        let (trace, root) = try runTraced("procs.spawn-some", 3)
        XCTAssertTrue(trace.truncated.isEmpty, "\(trace.problems)")
        let mine = trace.events.filter { $0.pid == root }
        let spawns = mine.filter { $0.kind == .processSpawn }
        XCTAssertEqual(spawns.count, 4)
        XCTAssertEqual(spawns.filter { $0.b == 1 }.count, 1, "one forked child")
        XCTAssertEqual(mine.filter { $0.kind == .processFork }.count, 1)
        let joins = mine.filter { $0.kind == .processJoinDone && $0.result == .ok }
        XCTAssertEqual(joins.count, 4)
        XCTAssertEqual(Set(joins.map { $0.b }), [0, 1, 2, 9])
        XCTAssertEqual(Set(joins.map { $0.a }), Set(spawns.map { $0.a }), "each spawned pid joined")
        // Every child wrote a file whose proc.start names the object of its proc.spawn, and an exit.
        for spawn in spawns {
            let pid = Int32(spawn.a)
            XCTAssertNotNil(trace.headers[pid], "no trace file for child \(pid)")
            let start = trace.events.first { $0.pid == pid && $0.kind == .processStart }
            XCTAssertEqual(start?.object, spawn.object)
            XCTAssertEqual(start?.a, UInt64(root))
            XCTAssertEqual(start?.b, spawn.b, "forked flag")
            // The spawn is timed before the child existed: its start comes after it in time, which
            // is the order happens-before follows (the parent records the spawn only once it knows
            // the pid, possibly after the child has started).
            XCTAssertGreaterThan(start?.time ?? 0, spawn.time, "child \(pid) starts before its spawn")
            let exit = trace.events.first { $0.pid == pid && $0.kind == .processExit }
            let join = joins.first { $0.a == spawn.a }
            XCTAssertEqual(exit?.a, join?.b, "exit status recorded by the child = status seen at join")
        }
        // A thread's events are in time order (a spawn timed before it is recorded included).
        for tid in Set(trace.events.map(\.tid)) {
            let times = trace.events.filter { $0.tid == tid }.sorted { $0.seq < $1.seq }.map(\.time)
            XCTAssertEqual(times, times.sorted(), "thread \(tid)")
        }
        // The root itself: start, thread start/exit/join, exit 0.
        XCTAssertEqual(mine.filter { $0.kind == .processStart }.count, 1)
        XCTAssertEqual(mine.filter { $0.kind == .threadStart && $0.text == "worker" }.count, 1)
        // The creating thread recorded thread.spawn for it, before the thread's own start.
        let started = try XCTUnwrap(mine.first { $0.kind == .threadStart && $0.text == "worker" })
        let spawned = try XCTUnwrap(mine.first { $0.kind == .threadSpawn && $0.object == started.object })
        XCTAssertNotEqual(spawned.tid, started.tid)
        XCTAssertLessThan(spawned.time, started.time)
        XCTAssertEqual(mine.filter { $0.kind == .threadExit }.count, 1)
        XCTAssertEqual(mine.filter { $0.kind == .threadJoinDone }.count, 1)
        XCTAssertEqual(mine.filter { $0.kind == .processExit }.map { $0.a }, [0])
    }

    /// A pool's trace: pool.new with the worker count, one submit per chunk, as many task-start /
    /// task-done in the workers, results, close, join, and the workers spawned and joined.
    func testPoolTrace() throws {
        let (trace, root) = try runTraced("procs.pool-run", 2)
        XCTAssertTrue(trace.truncated.isEmpty, "\(trace.problems)")
        let mine = trace.events.filter { $0.pid == root }
        let new = mine.filter { $0.kind == .poolNew }
        XCTAssertEqual(new.count, 1)
        XCTAssertEqual(new.first?.a, 2)
        let pool = new.first?.object ?? 0
        let submits = mine.filter { $0.kind == .poolSubmit && $0.object == pool }
        XCTAssertEqual(submits.count, 10 + 1 + 1, "10 map chunks, one apply, one failing apply")
        let starts = trace.events.filter { $0.kind == .poolTaskStart && $0.object == pool }
        let dones = trace.events.filter { $0.kind == .poolTaskDone && $0.object == pool }
        XCTAssertEqual(Set(starts.map { $0.a }), Set(submits.map { $0.a }))
        XCTAssertEqual(Set(dones.map { $0.a }), Set(submits.map { $0.a }))
        XCTAssertEqual(dones.filter { $0.result == .error }.count, 1)
        XCTAssertTrue(starts.allSatisfy { $0.pid != root }, "tasks run in the workers")
        // The caller's retrievals, one per task; the pool's manager is a relaying internal thread
        // (thread.start internal = 1) that records no waits of its own.
        let results = mine.filter { $0.kind == .poolResult && $0.object == pool }
        XCTAssertEqual(results.count, 12)
        let manager = try XCTUnwrap(mine.first { $0.kind == .threadStart && $0.text == "pool-manager" })
        XCTAssertEqual(manager[.internal], 1, "the manager is recorded as internal")
        XCTAssertFalse(mine.contains { $0.tid == manager.tid && $0.kind.isWait && $0.object == pool }, "the manager records no waits on the pool")
        // The map's tasks share a batch, and its wait names it (task 0, all).
        let mapBatches = Set(submits.filter { $0[.items] > 0 && $0[.batch] != 0 }.map { $0[.batch] })
        XCTAssertEqual(mapBatches.count, 1, "the 10 map chunks are one batch")
        XCTAssertTrue(mine.filter { $0.kind == .poolResultWait && $0[.task] == 0 }.allSatisfy { mapBatches.contains($0[.batch]) && $0[.all] == 1 })
        XCTAssertEqual(results.filter { $0.result == .error }.count, 1)
        XCTAssertEqual(mine.filter { $0.kind == .poolClose }.count, 1)
        XCTAssertEqual(mine.filter { $0.kind == .poolJoinDone }.count, 1)
        let workerSpawns = mine.filter { $0.kind == .processSpawn }
        XCTAssertEqual(workerSpawns.count, 2)
        XCTAssertEqual(Set(mine.filter { $0.kind == .processJoinDone && $0.result == .ok }.map { $0.a }),
                       Set(workerSpawns.map { $0.a }))
    }
}

extension ProcessTraceTests {
    /// proc.fork counts the other threads running at fork time: none in a single-threaded traced
    /// child (the recorder's flusher is not counted), one while a TangleThread runs.
    func testForkThreadCount() throws {
        let (trace, root) = try runTraced("procs.fork-threads", 0)
        let forks = trace.events.filter { $0.pid == root && $0.kind == .processFork }
        XCTAssertEqual(forks.map { $0.b }, [0, 1])
    }
}
