import Glibc
import XCTest
@testable import Tangle

final class SyncTests: XCTestCase {
    override class func setUp() {
        super.setUp()
        registerTangleTestsEntryPoints()
    }

    // Checks: Event set in the parent releases a spawned child, which then changes shared state
    // under a Condition (notifyAll) and sets another Event the parent waits on.
    func testEventAndConditionAcrossProcesses() throws {
        let go = Event(), done = Event()
        let cond = Condition(lock: Lock())
        let flag = SharedList<Int>([0])
        let child = try startChild("prim.event", EventArgs(go: go, done: done, cond: cond, flag: flag))
        XCTAssertFalse(done.wait(timeout: .milliseconds(10)))
        go.set()
        try cond.withLock {
            XCTAssertTrue(try cond.wait(for: { try flag.get(0) == 1 }, timeout: .seconds(30)))
        }
        XCTAssertTrue(done.wait(timeout: .seconds(30)))
        XCTAssertTrue(done.isSet)
        done.clear()
        XCTAssertFalse(done.isSet)
        assertExitsCleanly(child)
    }

    // Checks: Condition over an RLock held twice: wait releases it fully and restores the depth;
    // a timed wait returns false; notify without holding the lock throws.
    func testConditionThreadsAndErrors() throws {
        let r = RLock()
        let c = Condition(lock: r)
        XCTAssertThrowsError(try c.notify()) { XCTAssertTrue($0 is SyncError) }
        XCTAssertThrowsError(try c.wait(timeout: .milliseconds(1)))
        try r.acquire()
        try r.acquire()
        XCTAssertFalse(try c.wait(timeout: .milliseconds(20)))
        XCTAssertEqual(r.depth, 2)
        var ready = false
        let t = TestThread {
            try? c.withLock { ready = true; try c.notify() }
        }
        XCTAssertTrue(try c.wait(for: { ready }, timeout: .seconds(10)))
        XCTAssertEqual(r.depth, 2)
        try r.release()
        try r.release()
        t.join()
    }

    // Checks: a Barrier of three parties passes with two spawned children and the parent (distinct
    // arrival indexes); a Barrier that times out is broken for every waiter until reset.
    func testBarrier() throws {
        let barrier = Barrier(parties: 3)
        let results = Queue<Int>()
        let a = try startChild("prim.barrier", BarrierArgs(barrier: barrier, results: results))
        let b = try startChild("prim.barrier", BarrierArgs(barrier: barrier, results: results))
        let index = try barrier.wait(timeout: .seconds(30))
        XCTAssertTrue((0..<3).contains(index))
        XCTAssertEqual(try results.get(timeout: .seconds(30)) + results.get(timeout: .seconds(30)), 2)
        assertExitsCleanly(a)
        assertExitsCleanly(b)

        let small = Barrier(parties: 2)
        XCTAssertThrowsError(try small.wait(timeout: .milliseconds(20))) { XCTAssertEqual($0 as? SyncError, .brokenBarrier(object: small.object)) }
        XCTAssertTrue(small.isBroken)
        XCTAssertThrowsError(try small.wait(timeout: .seconds(1)))
        small.reset()
        XCTAssertFalse(small.isBroken)
        let t = TestThread { _ = try? small.wait(timeout: .seconds(10)) }
        XCTAssertNoThrow(try small.wait(timeout: .seconds(10)))
        t.join()
        small.abort()
        XCTAssertThrowsError(try small.wait())
    }
}
