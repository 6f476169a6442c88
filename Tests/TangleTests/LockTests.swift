import Glibc
import XCTest
@testable import Tangle

final class LockTests: XCTestCase {
    override class func setUp() {
        super.setUp()
        registerTangleTestsEntryPoints()
    }

    // Checks: a Lock excludes a spawned child and the parent from a shared counter (no lost updates).
    func testLockMutualExclusionAcrossProcesses() throws {
        let lock = Lock(name: "counter")
        let shm = try SharedMemory(create: 64)
        defer { try? shm.unlink() }
        let counter = shm.buffer(of: Int.self)
        let child = try startChild("prim.lock.count", LockCountArgs(lock: lock, shmName: shm.name, times: 20000))
        for _ in 0..<20000 { try lock.withLock { counter[0] += 1 } }
        assertExitsCleanly(child)
        XCTAssertEqual(counter[0], 40000)
        XCTAssertFalse(lock.isLocked)
    }

    // Checks: blocking acquire with a timeout gives up, tryAcquire does not block, and another
    // thread may release a Lock (Python semantics); releasing an unlocked lock throws.
    func testTimeoutsTryAndNonOwnerRelease() throws {
        let lock = Lock()
        XCTAssertTrue(try lock.tryAcquire())
        XCTAssertFalse(try lock.tryAcquire())
        XCTAssertFalse(try lock.acquire(timeout: .milliseconds(30)))
        let t = TestThread { try? lock.release() }   // non-owner release
        t.join()
        XCTAssertFalse(lock.isLocked)
        XCTAssertThrowsError(try lock.release()) { XCTAssertEqual($0 as? SyncError, .releasedUnlocked(object: lock.object)) }
        // a waiter is woken by the release
        try lock.acquire()
        let waiter = TestThread { _ = try? lock.acquire(timeout: .seconds(10)); try? lock.release() }
        usleep(20_000)
        try lock.release()
        waiter.join()
        XCTAssertFalse(lock.isLocked)
    }

    // Checks: RLock recursion, release by a non-owner thread throws notOwner, depth bookkeeping.
    func testRLock() throws {
        let r = RLock()
        try r.acquire()
        try r.acquire()
        XCTAssertEqual(r.depth, 2)
        var error: Error?
        TestThread { do { try r.release() } catch let e { error = e } }.join()
        XCTAssertEqual(error as? SyncError, .notOwner(object: r.object, what: "RLock"))
        var got = true
        TestThread { got = (try? r.tryAcquire()) ?? true }.join()
        XCTAssertFalse(got)
        try r.release()
        try r.release()
        XCTAssertFalse(r.isLocked)
        XCTAssertThrowsError(try r.release())
    }

    // Checks: the owner SIGKILLed while holding a Lock → the next acquirer gets ownerDied naming
    // its pid instead of hanging, and the lock is usable afterwards (also for an RLock held twice).
    func testOwnerKilledWhileHolding() throws {
        setenv("SWIFT_BACKTRACE", "enable=no", 1)
        let lock = Lock(name: "doomed")
        let ready = Event()
        let child = try startChild("prim.lock.hold", LockHoldArgs(lock: lock, ready: ready))
        XCTAssertTrue(ready.wait(timeout: .seconds(30)))
        XCTAssertEqual(lock.ownerPID, child.pid)
        child.kill()
        // Not joined yet: the dead owner is a zombie, which must count as dead.
        XCTAssertThrowsError(try lock.acquire(timeout: .seconds(10))) { error in
            XCTAssertEqual(error as? SyncError, .ownerDied(object: lock.object, pid: child.pid))
        }
        XCTAssertTrue(try lock.acquire(timeout: .seconds(1)))
        try lock.release()
        XCTAssertEqual(child.join(timeout: .seconds(10)), .signaled(SIGKILL))

        let r = RLock()
        let ready2 = Event()
        let child2 = try startChild("prim.rlock.hold", RLockHoldArgs(lock: r, ready: ready2))
        XCTAssertTrue(ready2.wait(timeout: .seconds(30)))
        child2.kill()
        XCTAssertEqual(child2.join(timeout: .seconds(10)), .signaled(SIGKILL))
        XCTAssertThrowsError(try r.acquire()) { XCTAssertEqual($0 as? SyncError, .ownerDied(object: r.object, pid: child2.pid)) }
        try r.acquire()
        XCTAssertEqual(r.depth, 1)
        try r.release()
    }

    // Checks: Semaphore counts permits and wakes a blocked acquirer; BoundedSemaphore refuses an
    // extra release.
    func testSemaphores() throws {
        let s = Semaphore(2)
        XCTAssertTrue(try s.tryAcquire())
        XCTAssertTrue(try s.acquire(timeout: .zero))
        XCTAssertFalse(try s.acquire(timeout: .milliseconds(20)))
        let t = TestThread { usleep(20_000); try? s.release() }
        XCTAssertTrue(try s.acquire(timeout: .seconds(10)))
        t.join()
        try s.release(); try s.release(); try s.release()   // unbounded: fine
        XCTAssertEqual(s.value, 3)

        let b = BoundedSemaphore(1)
        try b.acquire()
        try b.release()
        XCTAssertThrowsError(try b.release()) { XCTAssertEqual($0 as? SyncError, .boundedOverflow(object: b.object, max: 1)) }
        // Across a forked child: the child's release wakes the parent.
        try b.acquire()
        let child = ChildProcess(fork: { try b.release() })
        try child.start()
        XCTAssertTrue(try b.acquire(timeout: .seconds(10)))
        assertExitsCleanly(child)
    }

    // Checks: a handle whose descriptor is not open in this process is a clear error.
    func testHandleWithoutDescriptorIsAClearError() throws {
        let bytes = try BinaryCodec.encode(RegionHandle(fd: 999, object: 42))
        XCTAssertThrowsError(try BinaryCodec.decode(Lock.self, from: bytes)) { error in
            XCTAssertTrue("\(error)".contains("descriptor 999 is not open"), "\(error)")
        }
    }
}

/// A plain pthread for tests (Foundation-free).
final class TestThread {
    private var tid = pthread_t()
    private let box: Box
    final class Box { let body: () -> Void; init(_ b: @escaping () -> Void) { body = b } }

    init(_ body: @escaping () -> Void) {
        box = Box(body)
        let ctx = Unmanaged.passRetained(box).toOpaque()
        pthread_create(&tid, nil, { p in
            let b = Unmanaged<TestThread.Box>.fromOpaque(p!).takeRetainedValue()
            b.body()
            return nil
        }, ctx)
    }

    func join() { pthread_join(tid, nil) }
}
