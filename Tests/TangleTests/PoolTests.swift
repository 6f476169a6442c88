import Glibc
import XCTest
@testable import Tangle

// Pool functions of the tests, registered by the processes test hook (ProcessTestSupport.swift).
let squareFn = PoolFunction<Int, Int>("pool.square")
let failOnNegativeFn = PoolFunction<Int, Int>("pool.fail-on-negative")
let killSelfFn = PoolFunction<Int, Int>("pool.kill-self-on-zero")
let slowFn = PoolFunction<Int, Int>("pool.slow")
let pidFn = PoolFunction<Int, Int32>("pool.pid")

func poolTestFunctions() {
    PoolFunction.register("pool.square") { (x: Int) -> Int in x * x }
    PoolFunction.register("pool.fail-on-negative") { (x: Int) -> Int in
        if x < 0 { throw TestFailure(message: "negative input \(x)") }
        return x
    }
    PoolFunction.register("pool.kill-self-on-zero") { (x: Int) -> Int in
        if x == 0 { raise(SIGKILL) }
        return x
    }
    PoolFunction.register("pool.slow") { (ms: Int) -> Int in
        usleep(UInt32(ms * 1000))
        return ms
    }
    PoolFunction.register("pool.pid") { (_: Int) -> Int32 in getpid() }
}

final class PoolTests: XCTestCase {
    override class func setUp() {
        registerTangleTestsEntryPoints()
        super.setUp()
        setenv("SWIFT_BACKTRACE", "enable=no", 1)
    }

    /// map returns the results in order, for small and chunked inputs, with progress reports.
    func testMapOrderedWithProgress() throws {
        try Pool.with(workers: 2) { pool in
            XCTAssertEqual(try pool.map(squareFn, [Int]()), [])
            XCTAssertEqual(try pool.map(squareFn, [3]), [9])
            let items = Array(0..<10_000)
            var reports: [Int] = []
            let out = try pool.map(squareFn, items, chunkSize: 500) { done, total in
                XCTAssertEqual(total, items.count)
                reports.append(done)
            }
            XCTAssertEqual(out, items.map { $0 * $0 })
            XCTAssertEqual(reports.last, items.count)
            XCTAssertEqual(reports, reports.sorted())
            XCTAssertEqual(try pool.map(squareFn, items), items.map { $0 * $0 })
        }
    }

    /// apply / applyAsync with a timeout; imapUnordered yields every result.
    func testApplyAsyncAndImapUnordered() throws {
        let pool = try Pool(workers: 2)
        XCTAssertEqual(try pool.apply(squareFn, 12), 144)
        let slow = try pool.applyAsync(slowFn, 300)
        XCTAssertThrowsError(try slow.get(timeout: .milliseconds(10))) { XCTAssertEqual($0 as? PoolError, .timeout) }
        XCTAssertEqual(try slow.get(timeout: .seconds(20)), 300)
        XCTAssertEqual(slow.isSuccessful, true)
        var got: [Int] = []
        for r in try pool.imapUnordered(squareFn, Array(1...50), chunkSize: 3) { got.append(try r.get()) }
        XCTAssertEqual(got.sorted(), (1...50).map { $0 * $0 })
        pool.close()
        pool.join()
        XCTAssertThrowsError(try pool.apply(squareFn, 1)) { XCTAssertEqual($0 as? PoolError, .closed) }
    }

    /// A task that throws: its error reaches the reader, the pool keeps working.
    func testTaskErrorDoesNotKillPool() throws {
        try Pool.with(workers: 2) { pool in
            let bad = try pool.applyAsync(failOnNegativeFn, -5)
            XCTAssertThrowsError(try bad.get(timeout: .seconds(20))) { error in
                guard case let .taskFailed(function, _, message)? = error as? PoolError else { return XCTFail("\(error)") }
                XCTAssertEqual(function, "pool.fail-on-negative")
                XCTAssertTrue(message.contains("negative input -5"), message)
            }
            XCTAssertEqual(bad.isSuccessful, false)
            XCTAssertThrowsError(try pool.map(failOnNegativeFn, [1, 2, -3, 4], chunkSize: 1))
            XCTAssertEqual(try pool.map(failOnNegativeFn, [1, 2, 3]), [1, 2, 3])
        }
    }

    /// A worker killed mid-task is replaced; its task fails with workerDied, not a hang.
    func testKilledWorkerIsReplaced() throws {
        try Pool.with(workers: 2) { pool in
            let before = Set(pool.workerPIDs)
            XCTAssertEqual(before.count, 2)
            let doomed = try pool.applyAsync(killSelfFn, 0)
            XCTAssertThrowsError(try doomed.get(timeout: .seconds(20))) { error in
                guard case .workerDied(_, _, let status)? = error as? PoolError else { return XCTFail("\(error)") }
                XCTAssertEqual(status, "signaled(9)")
            }
            XCTAssertEqual(try pool.map(killSelfFn, Array(1...20)), Array(1...20))
            XCTAssertTrue(eventually { pool.workerPIDs.count == 2 })
            XCTAssertNotEqual(Set(pool.workerPIDs), before)
        }
    }

    /// The scoped form cleans up: workers are gone after it returns, and after it throws.
    func testScopedCleanup() throws {
        var pids: [Int32] = []
        let n = try Pool.with(workers: 2) { pool -> Int in
            pids = pool.workerPIDs
            return try pool.apply(squareFn, 4)
        }
        XCTAssertEqual(n, 16)
        for pid in pids { XCTAssertTrue(processIsGone(pid)) }

        var pids2: [Int32] = []
        XCTAssertThrowsError(try Pool.with(workers: 2) { pool -> Int in
            pids2 = pool.workerPIDs
            _ = try pool.applyAsync(slowFn, 10_000)
            throw TestFailure(message: "body failed")
        })
        XCTAssertEqual(pids2.count, 2)
        for pid in pids2 { XCTAssertTrue(processIsGone(pid)) }
    }

    /// terminate fails unfinished tasks with .terminated.
    func testTerminate() throws {
        let pool = try Pool(workers: 1)
        let a = try pool.applyAsync(slowFn, 10_000)
        let b = try pool.applyAsync(slowFn, 10_000)
        usleep(50_000)
        pool.terminate()
        pool.join()
        XCTAssertThrowsError(try a.get(timeout: .seconds(5))) { XCTAssertEqual($0 as? PoolError, .terminated) }
        XCTAssertThrowsError(try b.get(timeout: .seconds(5))) { XCTAssertEqual($0 as? PoolError, .terminated) }
    }

    /// Work runs in the worker processes, not in the caller.
    func testRunsInWorkers() throws {
        let pids = try Pool.with(workers: 2) { pool in try pool.map(pidFn, Array(0..<8), chunkSize: 1) }
        XCTAssertFalse(pids.contains(getpid()))
        XCTAssertThrowsError(try Pool.with(workers: 1) { pool in
            try pool.apply(PoolFunction<Int, Int>("pool.nope"), 1)
        }) { XCTAssertEqual($0 as? PoolError, .unregisteredFunction("pool.nope")) }
    }
}
