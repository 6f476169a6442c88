import XCTest
@testable import TangleAnalysis

final class LockOrderTests: XCTestCase {
    /// Two threads, started together, take A→B and B→A at different times: predicted inversion.
    func testInversionAcrossThreadsIsPredicted() throws {
        let b = TraceBuilder()
        let main = b.root(1)
        let la = b.lock(main, "A"), lb = b.lock(main, "B")
        let t1 = b.thread(main, main + 1, name: "left")
        let t2 = b.thread(main, main + 2, name: "right")
        b.acquire(main, main + 1, la, stack: 0)
        b.acquire(main, main + 1, lb)
        b.release(main, main + 1, lb)
        b.release(main, main + 1, la)
        b.acquire(main, main + 2, lb)
        b.acquire(main, main + 2, la)
        b.release(main, main + 2, la)
        b.release(main, main + 2, lb)
        b.threadExit(main, main + 1, obj: t1)
        b.threadExit(main, main + 2, obj: t2)
        b.threadJoin(main, obj: t1)
        b.threadJoin(main, obj: t2)
        b.exit(main)
        let r = b.analyze()
        XCTAssertEqual(r.kinds(), [.lockOrderInversion], "\(r.findings.map(\.title))")
        let f = try XCTUnwrap(r.first(.lockOrderInversion))
        XCTAssertEqual(f.confidence, .predicted)
        XCTAssertNotNil(f.why)
        XCTAssertEqual(f.participants.count, 2)
        XCTAssertEqual(Set(f.participants.compactMap(\.thread)), ["left", "right"])
        // Both acquisitions of each edge are cited.
        XCTAssertEqual(f.evidence.count, 4)
    }

    /// Set-up under A then B, then a thread that takes B then A, created with `thread.spawn` as
    /// TangleThread records it (its `thread.start` names no parent): the set-up happens before the
    /// thread's work, so no inversion. The control, the same trace without `thread.spawn`, is
    /// reported — what every such program got before the runtime recorded the spawn.
    func testThreadSpawnedAfterSetUpIsOrdered() {
        for withSpawn in [true, false] {
            let b = TraceBuilder()
            let main = b.root(1)
            let la = b.lock(main, "A"), lb = b.lock(main, "B")
            b.nested(main, main, la, lb)
            let obj = b.newObject(main)
            if withSpawn { b.ev(main, main, .threadSpawn, o: obj) }
            b.ev(main, main + 1, .threadStart, o: obj, a: 0, text: "worker")
            b.nested(main, main + 1, lb, la)
            b.threadExit(main, main + 1, obj: obj)
            b.threadJoin(main, obj: obj)
            b.exit(main)
            XCTAssertEqual(b.analyze().kinds(), withSpawn ? [] : [.lockOrderInversion], "thread.spawn recorded: \(withSpawn)")
        }
    }

    /// The creator's sections after `thread.spawn` stay concurrent with the thread's: A then B
    /// taken by the creator after starting a thread that takes B then A is still an inversion.
    func testCreatorSectionAfterThreadSpawnIsNotOrdered() {
        let b = TraceBuilder()
        let main = b.root(1)
        let la = b.lock(main, "A"), lb = b.lock(main, "B")
        let obj = b.newObject(main)
        b.ev(main, main, .threadSpawn, o: obj)
        b.nested(main, main, la, lb)
        b.ev(main, main + 1, .threadStart, o: obj, a: 0, text: "worker")
        b.nested(main, main + 1, lb, la)
        b.threadExit(main, main + 1, obj: obj)
        b.threadJoin(main, obj: obj)
        b.exit(main)
        XCTAssertEqual(b.analyze().kinds(), [.lockOrderInversion])
    }

    /// The same inversion across two processes (locks shared through handles).
    func testInversionAcrossProcesses() {
        let b = TraceBuilder()
        let main = b.root(1)
        let la = b.lock(main, "A"), lb = b.lock(main, "B")
        let p1 = b.pid(2), p2 = b.pid(3)
        let o1 = b.spawn(main, p1, name: "w1")
        let o2 = b.spawn(main, p2, name: "w2")
        b.nested(p1, p1, la, lb)
        b.nested(p2, p2, lb, la)
        b.exit(p1); b.exit(p2)
        b.join(main, p1, obj: o1); b.join(main, p2, obj: o2)
        b.exit(main)
        XCTAssertEqual(b.analyze().kinds(), [.lockOrderInversion])
    }

    /// Both threads hold gate lock G around their nested sections: ruled out (gate-lock).
    func testGateLockRulesOut() {
        let b = TraceBuilder()
        let main = b.root(1)
        let g = b.lock(main, "G"), la = b.lock(main, "A"), lb = b.lock(main, "B")
        let t1 = b.thread(main, main + 1), t2 = b.thread(main, main + 2)
        for (tid, first, second) in [(main + 1, la, lb), (main + 2, lb, la)] {
            b.acquire(main, tid, g)
            b.acquire(main, tid, first)
            b.acquire(main, tid, second)
            b.release(main, tid, second)
            b.release(main, tid, first)
            b.release(main, tid, g)
        }
        b.threadExit(main, main + 1, obj: t1)
        b.threadExit(main, main + 2, obj: t2)
        b.exit(main)
        let r = b.analyze()
        XCTAssertEqual(r.findings.count, 0, "\(r.findings.map(\.title))")
        XCTAssertTrue(r.ruledOut.contains { $0.reason == .gateLock }, "\(r.ruledOut)")
    }

    /// The first thread finishes and is joined before the second starts: ordered by happens-before.
    func testJoinOrderingRulesOut() {
        let b = TraceBuilder()
        let main = b.root(1)
        let la = b.lock(main, "A"), lb = b.lock(main, "B")
        let t1 = b.thread(main, main + 1)
        b.acquire(main, main + 1, la); b.acquire(main, main + 1, lb)
        b.release(main, main + 1, lb); b.release(main, main + 1, la)
        b.threadExit(main, main + 1, obj: t1)
        b.threadJoin(main, obj: t1)
        let t2 = b.thread(main, main + 2)
        b.acquire(main, main + 2, lb); b.acquire(main, main + 2, la)
        b.release(main, main + 2, la); b.release(main, main + 2, lb)
        b.threadExit(main, main + 2, obj: t2)
        b.threadJoin(main, obj: t2)
        b.exit(main)
        let r = b.analyze()
        XCTAssertEqual(r.findings.count, 0, "\(r.findings.map(\.title))")
        XCTAssertTrue(r.ruledOut.contains { $0.reason == .happensBefore }, "\(r.ruledOut)")
    }

    /// A message from the first process to the second orders their sections: ruled out.
    func testMessageOrderingRulesOut() {
        let b = TraceBuilder()
        let main = b.root(1)
        let la = b.lock(main, "A"), lb = b.lock(main, "B")
        let q = b.queue(main, "handoff")
        let p1 = b.pid(2), p2 = b.pid(3)
        let o1 = b.spawn(main, p1), o2 = b.spawn(main, p2)
        b.ev(p2, .queueGetWait, o: q)
        b.nested(p1, p1, la, lb)
        let m = b.put(p1, q)
        b.get(p2, q, m)
        b.nested(p2, p2, lb, la)
        b.exit(p1); b.exit(p2)
        b.join(main, p1, obj: o1); b.join(main, p2, obj: o2)
        b.exit(main)
        let r = b.analyze()
        XCTAssertEqual(r.findings.count, 0, "\(r.findings.map(\.title))")
        XCTAssertTrue(r.ruledOut.contains { $0.reason == .happensBefore })
    }

    /// One thread taking A→B then B→A cannot deadlock with itself: ruled out (single-thread).
    func testSingleThreadRulesOut() {
        let b = TraceBuilder()
        let main = b.root(1)
        let la = b.lock(main, "A"), lb = b.lock(main, "B")
        b.nested(main, main, la, lb)
        b.nested(main, main, lb, la)
        b.exit(main)
        let r = b.analyze()
        XCTAssertEqual(r.findings.count, 0)
        XCTAssertEqual(r.ruledOut.map(\.reason), [.singleThread])
    }

    /// RLock re-entry adds no edge; nested consistent order adds no cycle.
    func testConsistentOrderAndReentryAreClean() {
        let b = TraceBuilder()
        let main = b.root(1)
        let la = b.lock(main, "A", type: .rlock), lb = b.lock(main, "B")
        let t1 = b.thread(main, main + 1), t2 = b.thread(main, main + 2)
        for tid in [main + 1, main + 2] {
            b.acquire(main, tid, la, depth: 1)
            b.acquire(main, tid, la, depth: 2)
            b.acquire(main, tid, lb)
            b.release(main, tid, lb)
            b.release(main, tid, la, depth: 1)
            b.release(main, tid, la, depth: 0)
        }
        b.threadExit(main, main + 1, obj: t1)
        b.threadExit(main, main + 2, obj: t2)
        b.exit(main)
        let r = b.analyze()
        XCTAssertEqual(r.findings.count, 0)
        XCTAssertTrue(r.ruledOut.isEmpty)
    }
}
