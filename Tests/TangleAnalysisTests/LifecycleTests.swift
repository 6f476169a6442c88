import XCTest
@testable import TangleAnalysis

final class LifecycleTests: XCTestCase {
    /// A thread re-acquiring a Lock it holds is a self-deadlock, reported once (not also as a hang).
    func testSelfDeadlock() throws {
        let b = TraceBuilder()
        let main = b.root(1)
        let l = b.lock(main, "config")
        b.acquire(main, l)
        b.ev(main, .lockWait, o: l)
        let r = b.analyze()
        XCTAssertEqual(r.kinds(), [.selfDeadlock], "\(r.findings.map(\.title))")
        XCTAssertEqual(try XCTUnwrap(r.first(.selfDeadlock)).evidence.count, 2)
    }

    /// An RLock re-acquired by its owner is fine.
    func testRLockReentryIsClean() {
        let b = TraceBuilder()
        let main = b.root(1)
        let l = b.lock(main, "r", type: .rlock)
        b.acquire(main, l, depth: 1)
        b.acquire(main, l, depth: 2)
        b.release(main, l, depth: 1)
        b.release(main, l, depth: 0)
        b.exit(main)
        XCTAssertEqual(b.analyze().findings.count, 0)
    }

    /// Child exits, parent lives on for 2 s before joining: a zombie.
    func testZombie() {
        let b = TraceBuilder()
        let main = b.root(1)
        let c = b.pid(2)
        let co = b.spawn(main, c, name: "child")
        b.exit(c)
        b.sleep(2_000_000_000)
        b.join(main, c, obj: co)
        b.exit(main)
        XCTAssertEqual(b.analyze().kinds(), [.zombie])
    }

    /// Joined promptly: nothing.
    func testPromptJoinIsClean() {
        let b = TraceBuilder()
        let main = b.root(1)
        let c = b.pid(2)
        let co = b.spawn(main, c, name: "child")
        b.exit(c)
        b.join(main, c, obj: co)
        b.exit(main)
        XCTAssertEqual(b.analyze().findings.count, 0)
    }

    /// The parent exits without joining a child that already exited: unjoined-child.
    func testUnjoinedChild() {
        let b = TraceBuilder()
        let main = b.root(1)
        let c = b.pid(2)
        _ = b.spawn(main, c, name: "child")
        b.exit(c)
        b.exit(main)
        XCTAssertEqual(b.analyze().kinds(), [.unjoinedChild])
    }

    /// The parent exits while the child still runs: orphan.
    func testOrphan() {
        let b = TraceBuilder()
        let main = b.root(1)
        let c = b.pid(2)
        _ = b.spawn(main, c, name: "child")
        b.exit(main)
        b.ev(c, .lockNew, o: b.newObject(c), text: "late")
        b.exit(c)
        XCTAssertEqual(b.analyze().kinds(), [.orphan])
    }

    /// Items put and never got once every user ended: lost-messages; a drained queue: nothing.
    func testLostMessages() throws {
        let b = TraceBuilder()
        Scenarios.lostMessages(b)
        let r = b.analyze()
        XCTAssertEqual(r.kinds(), [.lostMessages])
        XCTAssertTrue(try XCTUnwrap(r.first(.lostMessages)).title.hasPrefix("2 message(s)"))
    }

    /// Pending messages while a user is still running (trace cut) are not lost (yet).
    func testPendingMessagesWithLiveUserAreNotLost() {
        let b = TraceBuilder()
        let main = b.root(1)
        let q = b.queue(main, "results")
        b.put(main, q)
        XCTAssertEqual(b.analyze().findings.count, 0)
    }

    /// A task that threw and whose result was never retrieved before the owner exited.
    func testLostPoolError() {
        let b = TraceBuilder()
        let main = b.root(1)
        let pool = b.newObject(main)
        b.ev(main, .poolNew, o: pool, a: 1)
        let w = b.pid(2)
        let wo = b.spawn(main, w, name: "PoolWorker-1")
        b.ev(main, .poolSubmit, o: pool, a: 7, b: 1)
        b.ev(w, .poolTaskStart, o: pool, a: 7)
        b.ev(w, .poolTaskDone, o: pool, a: 7, r: .error)
        b.ev(main, .poolClose, o: pool)
        b.exit(w)
        b.join(main, w, obj: wo)
        b.exit(main)
        XCTAssertEqual(b.analyze().kinds(), [.lostPoolError])
    }

    /// Shared memory created and never unlinked; and one that is unlinked.
    func testShmLeak() {
        let b = TraceBuilder()
        let main = b.root(1)
        let s1 = b.newObject(main), s2 = b.newObject(main)
        b.ev(main, .shmCreate, o: s1, a: 4096, text: "/leaky")
        b.ev(main, .shmCreate, o: s2, a: 4096, text: "/tidy")
        b.ev(main, .shmClose, o: s2, text: "/tidy")
        b.ev(main, .shmUnlink, o: s2, text: "/tidy")
        b.exit(main)
        let r = b.analyze()
        XCTAssertEqual(r.kinds(), [.shmLeak])
        XCTAssertTrue(r.findings[0].title.contains("/leaky"))
    }

    /// fork() while another thread runs.
    func testForkWithThreads() {
        let b = TraceBuilder()
        let main = b.root(1)
        let t = b.thread(main, main + 1, name: "busy")
        let c = b.pid(2)
        b.ev(main, .processFork, a: UInt64(c), b: 1)
        let co = b.spawn(main, c, name: "forked", fork: true)
        b.exit(c)
        b.join(main, c, obj: co)
        b.threadExit(main, main + 1, obj: t)
        b.exit(main)
        XCTAssertEqual(b.analyze().kinds(), [.forkWithThreads])
    }

    /// A Lock released by a thread that does not own it.
    func testNonOwnerRelease() {
        let b = TraceBuilder()
        let main = b.root(1)
        let l = b.lock(main, "L")
        let t = b.thread(main, main + 1)
        b.acquire(main, l)
        b.release(main, main + 1, l, owner: UInt64(main))
        b.threadExit(main, main + 1, obj: t)
        b.exit(main)
        XCTAssertEqual(b.analyze().kinds(), [.nonOwnerRelease])
    }

    /// A semaphore released by another thread is normal signalling.
    func testSemaphoreReleaseByOtherThreadIsClean() {
        let b = TraceBuilder()
        let main = b.root(1)
        let s = b.lock(main, "slots", type: .semaphore, value: 0)
        let t = b.thread(main, main + 1)
        b.ev(main, .lockWait, o: s)
        b.release(main, main + 1, s)
        b.acquire(main, s)
        b.threadExit(main, main + 1, obj: t)
        b.exit(main)
        XCTAssertEqual(b.analyze().findings.count, 0)
    }

    /// A process killed while holding a lock, and the survivor acquiring it with EOWNERDEAD.
    func testOwnerDied() {
        let b = TraceBuilder()
        let main = b.root(1)
        let l = b.lock(main, "shared")
        let c = b.pid(2)
        let co = b.spawn(main, c, name: "victim")
        b.attach(c, l, type: .lock)
        b.acquire(c, l)
        b.ev(main, .processKill, o: co, a: UInt64(c))
        b.ev(main, .processJoinWait, o: co, a: UInt64(c))
        b.ev(main, .processJoinDone, o: co, a: UInt64(c), c: 9)
        b.ev(main, .lockOwnerDied, o: l, a: UInt64(c))
        b.acquire(main, l)
        b.release(main, l)
        b.exit(main)
        XCTAssertEqual(b.analyze().kinds(), [.ownerDied])
    }

    /// A thread that exits holding a lock.
    func testLockHeldAtExit() {
        let b = TraceBuilder()
        let main = b.root(1)
        let l = b.lock(main, "L")
        let t = b.thread(main, main + 1)
        b.acquire(main, main + 1, l)
        b.threadExit(main, main + 1, obj: t)
        b.threadJoin(main, obj: t)
        b.exit(main)
        XCTAssertTrue(b.analyze().kinds().contains(.lockHeldAtExit))
    }

    /// Events merged slightly out of order across threads (T2's acquire before T1's release) do not
    /// make a non-owner release, and a get merged before its put leaves nothing "lost".
    func testMergeDisorderIsTolerated() {
        let b = TraceBuilder()
        let main = b.root(1)
        let l = b.lock(main, "L")
        let q = b.queue(main, "q")
        let t1 = b.thread(main, main + 1), t2 = b.thread(main, main + 2)
        b.acquire(main, main + 1, l)
        b.acquire(main, main + 2, l)          // really after T1's release, merged before it
        b.release(main, main + 1, l)
        b.release(main, main + 2, l)
        b.get(main, main + 2, q, 77)          // the get of message 77 …
        b.ev(main, main + 1, .queuePut, o: q, a: 77, b: 8)   // … before its put
        b.threadExit(main, main + 1, obj: t1)
        b.threadExit(main, main + 2, obj: t2)
        b.exit(main)
        let r = b.analyze()
        XCTAssertEqual(r.findings.map(\.title), [])
    }

    /// A JoinableQueue whose consumer skipped task_done, everyone exiting cleanly: reported at the end.
    func testMissingTaskDoneWithoutJoin() {
        let b = TraceBuilder()
        let main = b.root(1)
        let q = b.queue(main, "tasks", joinable: true)
        let c = b.pid(2)
        let co = b.spawn(main, c, name: "worker")
        b.attach(c, q, type: .queue)
        let ms = (0..<3).map { _ in b.put(main, q) }
        b.get(c, q, ms[0]); b.ev(c, .queueTaskDone, o: q, a: 2)
        b.get(c, q, ms[1]); b.get(c, q, ms[2])
        b.exit(c)
        b.join(main, c, obj: co)
        b.exit(main)
        XCTAssertEqual(b.analyze().kinds(), [.missingTaskDone])
    }
}

