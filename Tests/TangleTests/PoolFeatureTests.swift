import TangleRecorder
import TangleTraceReader
import CTangleSupport
import Glibc
import XCTest
@testable import Tangle
import TangleTestSupport

// Pool functions and initializer of PoolFeatureTests, registered by the async tests' hook.
let addFn = PoolFunction<PoolArguments2<Int, Int>, Int>("pf.add")
let slowReverseFn = PoolFunction<Int, Int>("pf.slow-reverse")
let useSharedFn = PoolFunction<Int, Int>("pf.use-shared")
let sharedInit = PoolInitializer<WorkerShared>("pf.init")

struct WorkerShared: Codable { var go: Event; var log: Queue<Int>; var pids: Queue<Int32> }
nonisolated(unsafe) var workerShared: WorkerShared?

func poolFeatureFunctions() {
    PoolFunction.register("pf.add") { (a: Int, b: Int) -> Int in a + b }
    PoolFunction.register("pf.slow-reverse") { (x: Int) -> Int in
        usleep(UInt32((10 - x % 10) * 3000))
        return x
    }
    // Waits for the Event the initializer received, then reports to its Queue.
    PoolFunction.register("pf.use-shared") { (x: Int) -> Int in
        guard let shared = workerShared else { throw TestFailure(message: "the initializer did not run") }
        guard shared.go.wait(timeout: .seconds(30)) else { throw TestFailure(message: "go never set") }
        try shared.log.put(x)
        return x * 10
    }
    PoolInitializer.register("pf.init") { (shared: WorkerShared) in
        workerShared = shared
        try shared.pids.put(getpid())
    }
}

/// Pool features of Python's Pool: initializer with handles, ordered lazy imap, starmap,
/// maxTasksPerChild, fork-started workers, item indexes over the whole input, and the traced
/// result waits of imap / imapUnordered.
final class PoolFeatureTests: XCTestCase {
    override class func setUp() {
        registerTangleTestsEntryPoints()
        super.setUp()
        setenv("SWIFT_BACKTRACE", "enable=no", 1)
    }

    /// Every worker's initializer receives an Event and a Queue (handles, as spawn arguments); the
    /// tasks wait on that Event and report to that Queue. Replaced workers (maxTasksPerChild) run
    /// the initializer again.
    func testInitializerHandsEventAndQueueToWorkers() throws {
        let go = Event(), log = Queue<Int>(), pids = Queue<Int32>()
        let pool = try Pool(workers: 2, initializer: sharedInit, initArguments: WorkerShared(go: go, log: log, pids: pids), maxTasksPerChild: 3)
        let results = try pool.imap(useSharedFn, 0..<12)
        usleep(50_000)
        XCTAssertEqual(log.qsize, 0, "a task ran before the Event was set")
        go.set()
        XCTAssertEqual(results.map { try? $0.get() }, (0..<12).map { $0 * 10 })
        pool.close()
        pool.join()
        var logged: [Int] = []
        while let v = try? log.getNowait() { logged.append(v) }
        XCTAssertEqual(logged.sorted(), Array(0..<12))
        var started: [Int32] = []
        while let p = try? pids.getNowait() { started.append(p) }
        // 12 tasks, at most 3 per worker: at least 4 workers ran the initializer, each once.
        XCTAssertGreaterThanOrEqual(started.count, 4, "\(started)")
        XCTAssertEqual(Set(started).count, started.count)
    }

    /// imap yields in input order although later items finish first, and the first result comes
    /// before the last task is done; starmap unpacks pairs; chunk sizes do not change results.
    func testImapOrderedAndStarmap() throws {
        try Pool.with(workers: 2) { pool in
            let items = Array(0..<40)
            for size in [1, 3, 7] {
                let out = try pool.imap(slowReverseFn, items, chunkSize: size).map { try $0.get() }
                XCTAssertEqual(out, items, "chunkSize \(size)")
            }
            let lazy = try pool.imap(slowFn, [1, 2000])
            let start = tangle_now_ns()
            XCTAssertEqual(try lazy.next()?.get(), 1)
            XCTAssertLessThan(tangle_now_ns() - start, 1_500_000_000, "imap waited for the whole map")
            XCTAssertEqual(try lazy.next()?.get(), 2000)
            XCTAssertNil(lazy.next())
            let pairs = (0..<100).map { ($0, 2 * $0) }
            XCTAssertEqual(try pool.starmap(addFn, pairs, chunkSize: 9), pairs.map { $0.0 + $0.1 })
            XCTAssertEqual(try pool.starmap(addFn, []), [])
            // Big chunks (400 KB frames both ways): a task queued behind a running one must not
            // block the manager while the worker writes its result (this hung once).
            let big = Array(0..<400_000)
            XCTAssertEqual(try pool.map(squareFn, big, chunkSize: 50_000), big.map { $0 * $0 })
        }
    }

    /// maxTasksPerChild replaces workers: 8 one-item tasks on one worker with a limit of 2 run in
    /// 4 processes. The failing item is named by its index in the whole input.
    func testMaxTasksPerChildAndItemIndex() throws {
        let pool = try Pool(workers: 1, maxTasksPerChild: 2)
        let pids = try pool.map(pidFn, Array(0..<8), chunkSize: 1)
        XCTAssertEqual(Set(pids).count, 4, "\(pids)")
        XCTAssertThrowsError(try pool.map(failOnNegativeFn, [0, 1, 2, 3, 4, 5, -6, 7], chunkSize: 4)) { error in
            guard case let .taskFailed(_, index, _)? = error as? PoolError else { return XCTFail("\(error)") }
            XCTAssertEqual(index, 6)
            XCTAssertTrue("\(error)".contains("item 6 of its input"), "\(error)")
        }
        pool.terminate()
        pool.join()
    }

    /// Workers started by fork run the pool functions; terminate fails what is left; the default
    /// start method is process-wide and set once.
    func testForkStartedPoolAndStartMethod() throws {
        let pool = try Pool(workers: 2, method: .fork)
        XCTAssertEqual(try pool.map(squareFn, Array(0..<50), chunkSize: 5), (0..<50).map { $0 * $0 })
        let slow = try pool.applyAsync(slowFn, 5000)
        usleep(100_000)
        pool.terminate()
        pool.join()
        XCTAssertThrowsError(try slow.get(timeout: .seconds(10))) { XCTAssertEqual($0 as? PoolError, .terminated) }
        XCTAssertThrowsError(try pool.apply(squareFn, 1)) { XCTAssertEqual($0 as? PoolError, .closed) }

        XCTAssertEqual(TangleRuntime.context(.fork).method, .fork)
        XCTAssertEqual(ChildProcess(entryPoint: "procs.sleep").method, TangleRuntime.defaultStartMethod)
        try TangleRuntime.setStartMethod(.spawn)
        XCTAssertThrowsError(try TangleRuntime.setStartMethod(.fork))
        try TangleRuntime.setStartMethod(.spawn, force: true)
        XCTAssertEqual(TangleRuntime.defaultStartMethod, .spawn)
    }
}

/// The pool's trace: every task submitted, started, done and its result retrieved (imap,
/// imapUnordered and an async get alike), each retrieval after its task's done; the manager's
/// waits recorded on the pool.
final class PoolTraceFeatureTests: XCTestCase {
    override class func setUp() {
        super.setUp()
        registerTangleTestsEntryPoints()
    }

    func testEveryRetrievedTaskIsRecorded() throws {
        let dir = makeTempDir("tangle-pool-trace")
        addTeardownBlock { removeTree(dir) }
        TangleRuntime.ensureStarted()
        _ = Recorder.isEnabled
        setenv("TANGLE_TRACE", dir, 1)
        let child = ChildProcess(entryPoint: "async.pool-traced")
        do { try child.start() } catch { unsetenv("TANGLE_TRACE"); throw error }
        unsetenv("TANGLE_TRACE")
        XCTAssertEqual(child.join(timeout: .seconds(60)), .exited(0))
        let trace = try TraceReader.load(paths: [dir])
        XCTAssertTrue(trace.truncated.isEmpty, "\(trace.problems)")
        let ev = trace.events
        let submits = ev.filter { $0.kind == .poolSubmit }
        XCTAssertEqual(submits.count, 12)
        for s in submits {
            let done = ev.first { $0.kind == .poolTaskDone && $0.a == s.a && $0.object == s.object }
            let got = ev.first { $0.kind == .poolResult && $0.a == s.a && $0.object == s.object }
            XCTAssertNotNil(done, "task \(s.a) never done")
            XCTAssertNotNil(got, "task \(s.a)'s result never recorded as retrieved")
            if let done, let got { XCTAssertLessThanOrEqual(done.time, got.time) }
        }
        // The async get was recorded by its task.
        XCTAssertTrue(ev.contains { $0.kind == .poolResult && $0.tid >= 1 << 30 })
        // The manager thread is recorded as internal (a relay: no waits of its own), and says which
        // worker holds each task.
        let caller = child.pid
        let manager = try XCTUnwrap(ev.first { $0.pid == caller && $0.kind == .threadStart && $0.text == "pool-manager" })
        XCTAssertEqual(manager[.internal], 1)
        XCTAssertFalse(ev.contains { $0.tid == manager.tid && $0.kind.isWait && $0.kind != .processJoinWait }, "the manager waits on nothing but its workers' exits")
        for s in submits {
            XCTAssertTrue(ev.contains { $0.kind == .poolTaskSend && $0[.task] == s[.task] && $0[.worker] != 0 }, "task \(s[.task]) never handed to a worker")
        }
    }
}

/// TangleThread bodies that throw: join throws the body's error (typed), a body that does not
/// throw is joined without `try`; the join's trace says error.
final class ThrowingThreadTests: XCTestCase {
    override class func setUp() {
        super.setUp()
        registerTangleTestsEntryPoints()
    }

    struct Boom: Error, Equatable { var code: Int }

    func testJoinThrowsTheBodysError() throws {
        let failing = TangleThread(name: "failing") { () throws(Boom) in throw Boom(code: 7) }
        failing.start()
        XCTAssertThrowsError(try failing.join(timeout: .seconds(30))) { XCTAssertEqual($0 as? Boom, Boom(code: 7)) }
        XCTAssertEqual(failing.error, Boom(code: 7))
        let fine = TangleThread { usleep(1000) }
        fine.start()
        XCTAssertTrue(fine.join(timeout: .seconds(30)))   // Never: no `try`
        XCTAssertNil(fine.error)
    }

    func testAsyncJoinThrowsTheBodysError() async {
        let untyped = TangleThread { try Self.fail() }
        untyped.start()
        do {
            _ = try await untyped.join(timeout: .seconds(30))
            XCTFail("no error")
        } catch {
            XCTAssertEqual(error as? Boom, Boom(code: 1))
        }
    }

    static func fail() throws { throw Boom(code: 1) }
}
