import XCTest
@testable import TangleAnalysis

/// Each limit the old lock-order pass stopped at silently, as a trace with a real inversion that
/// must be reported (each of these was reported as clean before), plus semaphores as locks.
final class LockOrderLimitsTests: XCTestCase {
    /// n threads, thread i takes lock i then lock i+1 (mod n), one after the other: a cycle of n locks
    /// (the old search stopped at 6).
    private func ring(_ n: Int) -> Report {
        let b = TraceBuilder()
        let main = b.root(1)
        let locks = (0..<n).map { b.lock(main, "L\($0)") }
        var objs: [UInt64] = []
        for i in 0..<n { objs.append(b.thread(main, main + 1 + Int32(i), name: "t\(i)")) }
        for i in 0..<n {
            let tid = main + 1 + Int32(i)
            b.acquire(main, tid, locks[i])
            b.acquire(main, tid, locks[(i + 1) % n])
            b.release(main, tid, locks[(i + 1) % n])
            b.release(main, tid, locks[i])
        }
        for i in 0..<n { b.threadExit(main, main + 1 + Int32(i), obj: objs[i]) }
        for o in objs { b.threadJoin(main, obj: o) }
        b.exit(main)
        return b.analyze()
    }

    func testCyclesOfSevenAndEightLocks() throws {
        for n in [7, 8] {
            let r = ring(n)
            XCTAssertEqual(r.kinds(), [.lockOrderInversion], "n=\(n): \(r.findings.map(\.title))")
            let f = try XCTUnwrap(r.first(.lockOrderInversion))
            XCTAssertEqual(f.participants.count, n, "n=\(n)")
            XCTAssertEqual(Set(f.participants.compactMap(\.thread)).count, n)
            for i in 0..<n { XCTAssertTrue(f.title.contains("'L\(i)'"), "n=\(n): \(f.title)") }
            XCTAssertEqual(f.confidence, .predicted)
            XCTAssertTrue(r.problems.isEmpty, "\(r.problems)")
        }
    }

    /// 2,100 single-thread cycles (one thread takes A_i→B_i and B_i→A_i) come first; the real
    /// inversion between two threads comes last (the old search stopped after 2,000 cycles).
    func testRealInversionAfter2100SingleThreadCycles() throws {
        let b = TraceBuilder()
        let main = b.root(1)
        for i in 0..<2100 {
            let x = b.lock(main, "a\(i)"), y = b.lock(main, "b\(i)")
            b.nested(main, main, x, y)
            b.nested(main, main, y, x)
        }
        let c = b.lock(main, "C"), d = b.lock(main, "D")
        let t1 = b.thread(main, main + 1), t2 = b.thread(main, main + 2)
        b.nested(main, main + 1, c, d)
        b.nested(main, main + 2, d, c)
        b.threadExit(main, main + 1, obj: t1); b.threadExit(main, main + 2, obj: t2)
        b.threadJoin(main, obj: t1); b.threadJoin(main, obj: t2)
        b.exit(main)
        let r = b.analyze()
        XCTAssertEqual(r.kinds(), [.lockOrderInversion], "\(r.findings.map(\.title))")
        let f = try XCTUnwrap(r.first(.lockOrderInversion))
        XCTAssertTrue(f.title.contains("'C'") && f.title.contains("'D'"), f.title)
        XCTAssertEqual(r.ruledOut.filter { $0.reason == .singleThread }.count, 2100)
        XCTAssertTrue(r.problems.isEmpty, "\(r.problems)")
    }

    /// 16 threads take A→B and are joined before the thread taking B→A starts (ordered); a 17th
    /// thread takes A→B concurrently with it (the old pass dropped an edge's 17th thread).
    func testSeventeenthThreadOfAnEdge() throws {
        let b = TraceBuilder()
        let main = b.root(1)
        let la = b.lock(main, "A"), lb = b.lock(main, "B")
        for i in 0..<16 {
            let tid = main + 1 + Int32(i)
            let o = b.thread(main, tid)
            b.nested(main, tid, la, lb)
            b.threadExit(main, tid, obj: o)
            b.threadJoin(main, obj: o)
        }
        let x = b.thread(main, main + 100, name: "inverter")
        let late = b.thread(main, main + 17, name: "late")
        b.nested(main, main + 100, lb, la)
        b.nested(main, main + 17, la, lb)
        b.threadExit(main, main + 100, obj: x); b.threadExit(main, main + 17, obj: late)
        b.threadJoin(main, obj: x); b.threadJoin(main, obj: late)
        b.exit(main)
        let r = b.analyze()
        XCTAssertEqual(r.kinds(), [.lockOrderInversion], "\(r.findings.map(\.title)) \(r.ruledOut)")
        let f = try XCTUnwrap(r.first(.lockOrderInversion))
        XCTAssertEqual(Set(f.participants.compactMap(\.thread)), ["inverter", "late"])
    }

    /// Thread T takes A→B three times: the first before a message that orders it before the
    /// inverter's B→A, the last after a message from the inverter; only the middle one is concurrent
    /// (the old pass kept the first and the latest only).
    func testConcurrentMiddleInstance() throws {
        let b = TraceBuilder()
        let main = b.root(1)
        let la = b.lock(main, "A"), lb = b.lock(main, "B")
        let q1 = b.queue(main, "go"), q2 = b.queue(main, "back")
        let t = b.thread(main, main + 1, name: "worker"), x = b.thread(main, main + 2, name: "inverter")
        let w = main + 1, v = main + 2
        b.nested(main, w, la, lb)
        let m1 = b.put(main, w, q1)
        b.acquire(main, w, la)
        let middle = b.ev(main, w, .lockAcquired, o: lb, a: 1)
        b.release(main, w, lb); b.release(main, w, la)
        b.get(main, v, q1, m1)
        b.nested(main, v, lb, la)
        let m2 = b.put(main, v, q2)
        b.get(main, w, q2, m2)
        b.nested(main, w, la, lb)
        b.threadExit(main, w, obj: t); b.threadExit(main, v, obj: x)
        b.threadJoin(main, obj: t); b.threadJoin(main, obj: x)
        b.exit(main)
        let r = b.analyze()
        XCTAssertEqual(r.kinds(), [.lockOrderInversion], "\(r.findings.map(\.title)) \(r.ruledOut)")
        let f = try XCTUnwrap(r.first(.lockOrderInversion))
        // The worker's cited acquisition of B is the middle one.
        let workerB = f.evidence.filter { $0.tid == w && $0.object == lb }
        XCTAssertEqual(workerB.map(\.seq), [middle.seq], "\(f.evidence)")
    }

    /// Two processes take two binary semaphores in opposite orders: predicted inversion (the
    /// semaphores' release → acquire is a mutex hand-over, not an ordering). The same with counting
    /// semaphores (value 2) is not a lock-order inversion.
    func testBinarySemaphoreInversion() throws {
        for value: UInt64 in [1, 2] {
            let b = TraceBuilder()
            let main = b.root(1)
            let s1 = b.lock(main, "S1", type: .semaphore, value: value)
            let s2 = b.lock(main, "S2", type: .boundedSemaphore, value: value)
            let p1 = b.pid(2), p2 = b.pid(3)
            let o1 = b.spawn(main, p1, name: "left"), o2 = b.spawn(main, p2, name: "right")
            b.nested(p1, p1, s1, s2)
            b.nested(p2, p2, s2, s1)
            b.exit(p1); b.exit(p2)
            b.join(main, p1, obj: o1); b.join(main, p2, obj: o2)
            b.exit(main)
            let r = b.analyze()
            if value == 1 {
                XCTAssertEqual(r.kinds(), [.lockOrderInversion], "\(r.findings.map(\.title)) \(r.ruledOut)")
                let f = try XCTUnwrap(r.first(.lockOrderInversion))
                XCTAssertTrue(f.title.contains("semaphore 'S1'") && f.title.contains("bounded semaphore 'S2'"), f.title)
            } else {
                XCTAssertEqual(r.count(.lockOrderInversion), 0, "\(r.findings.map(\.title))")
            }
        }
    }

    /// A value-1 semaphore released by another thread is a signal: its release orders the
    /// acquirer after the releaser, so an "inversion" across that hand-off is ruled out.
    func testSemaphoreSignalStillOrders() {
        let b = TraceBuilder()
        let main = b.root(1)
        let s = b.lock(main, "S", type: .semaphore, value: 1)
        let la = b.lock(main, "A"), lb = b.lock(main, "B")
        let p1 = b.pid(2), p2 = b.pid(3)
        let o1 = b.spawn(main, p1), o2 = b.spawn(main, p2)
        b.acquire(p2, s) // takes the only permit; p1 releases it as a signal below
        b.nested(p1, p1, la, lb)
        b.release(p1, s)
        b.acquire(p2, s)
        b.nested(p2, p2, lb, la)
        b.exit(p1); b.exit(p2)
        b.join(main, p1, obj: o1); b.join(main, p2, obj: o2)
        b.exit(main)
        let r = b.analyze()
        XCTAssertEqual(r.count(.lockOrderInversion), 0, "\(r.findings.map(\.title))")
        XCTAssertTrue(r.ruledOut.contains { $0.reason == .happensBefore }, "\(r.ruledOut)")
    }

    /// A dense acyclic order over 30 locks (every pair nested by some thread) plus one inversion
    /// between the last and the first lock: exactly one finding, found without enumerating the
    /// exponentially many cycles through the inversion.
    func testDenseOrderWithOneInversion() throws {
        let b = TraceBuilder()
        let main = b.root(1)
        let n = 30
        let locks = (0..<n).map { b.lock(main, "k\($0)") }
        let objs = (0..<4).map { b.thread(main, main + 1 + Int32($0)) }
        var k = 0
        for i in 0..<n {
            for j in (i + 1)..<n {
                let tid = main + 1 + Int32(k % 4)
                k += 1
                b.acquire(main, tid, locks[i]); b.acquire(main, tid, locks[j]); b.release(main, tid, locks[j]); b.release(main, tid, locks[i])
            }
        }
        b.acquire(main, main + 4, locks[n - 1]); b.acquire(main, main + 4, locks[0]); b.release(main, main + 4, locks[0]); b.release(main, main + 4, locks[n - 1])
        for (i, o) in objs.enumerated() { b.threadExit(main, main + 1 + Int32(i), obj: o) }
        b.exit(main)
        let r = b.analyze()
        XCTAssertEqual(r.kinds(), [.lockOrderInversion], "\(r.findings.map(\.title))")
        let f = try XCTUnwrap(r.first(.lockOrderInversion))
        XCTAssertEqual(f.participants.count, 2, f.title)
        XCTAssertTrue(f.title.contains("'k0'") && f.title.contains("'k\(n - 1)'"), f.title)
    }

    /// The one bound kept on sections (512 distinct-clock sections per chain) is written into the
    /// report's problems when it drops sections, and the inversion is still found.
    func testSectionBoundIsReported() throws {
        let b = TraceBuilder()
        let main = b.root(1)
        let la = b.lock(main, "A"), lb = b.lock(main, "B")
        let q = b.queue(main, "ticks")
        let w = b.thread(main, main + 1, name: "worker"), x = b.thread(main, main + 2, name: "inverter")
        for _ in 0..<600 {
            let m = b.put(main, q)
            b.get(main, main + 1, q, m) // a new clock for the worker before each section
            b.nested(main, main + 1, la, lb)
        }
        b.nested(main, main + 2, lb, la)
        b.threadExit(main, main + 1, obj: w); b.threadExit(main, main + 2, obj: x)
        b.threadJoin(main, obj: w); b.threadJoin(main, obj: x)
        b.exit(main)
        let r = b.analyze()
        XCTAssertEqual(r.kinds(), [.lockOrderInversion], "\(r.findings.map(\.title))")
        XCTAssertTrue(r.problems.contains { $0.kind == .analysisBound && $0.detail.contains("were dropped") }, "\(r.problems)")
    }
}
