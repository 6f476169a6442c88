import XCTest
@testable import TangleAnalysis

/// Hold-and-wait: a lock held across a blocking call whose waker takes the same lock. Each trace is
/// the interleaving that did not deadlock (the waker went first); the finding is predicted.
final class HoldAndWaitTests: XCTestCase {
    /// Two processes (waiter, waker) sharing lock L, spawned by main; `body` writes their events.
    private func twoProcesses(_ body: (TraceBuilder, _ main: Int32, _ waiter: Int32, _ waker: Int32, _ lock: UInt64) -> Void) -> Report {
        let b = TraceBuilder()
        let main = b.root(1)
        let l = b.lock(main, "L")
        let p1 = b.pid(2), p2 = b.pid(3)
        let o1 = b.spawn(main, p1, name: "waiter"), o2 = b.spawn(main, p2, name: "waker")
        body(b, main, p1, p2, l)
        b.exit(p1); b.exit(p2)
        b.join(main, p1, obj: o1); b.join(main, p2, obj: o2)
        b.exit(main)
        return b.analyze()
    }

    private func assertHoldAndWait(_ r: Report, object: String, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(r.count(.holdAndWait), 1, "\(r.findings.map(\.title)) \(r.ruledOut)", file: file, line: line)
        XCTAssertEqual(r.count(.deadlock), 0, file: file, line: line)
        let f = try XCTUnwrap(r.first(.holdAndWait), file: file, line: line)
        XCTAssertEqual(f.confidence, .predicted, file: file, line: line)
        XCTAssertTrue(f.title.contains("lock 'L'") && f.title.contains(object), f.title, file: file, line: line)
        XCTAssertEqual(Set(f.participants.map(\.role)), [.waits, .wakes], file: file, line: line)
        // Where L was taken and where the thread blocked; where the waker took L and where it woke.
        XCTAssertEqual(f.evidence.count, 4, "\(f.evidence)", file: file, line: line)
        XCTAssertNotNil(f.why, file: file, line: line)
    }

    func testQueueGet() throws {
        let r = twoProcesses { b, main, waiter, waker, l in
            let q = b.queue(main, "jobs")
            b.acquire(waker, l); let m = b.put(waker, q); b.release(waker, l)
            b.acquire(waiter, l); b.get(waiter, q, m); b.release(waiter, l)
        }
        try assertHoldAndWait(r, object: "queue 'jobs'")
    }

    func testPipeRecv() throws {
        let r = twoProcesses { b, main, waiter, waker, l in
            let pipe = b.newObject(main)
            b.ev(main, .pipeNew, o: pipe, text: "chan")
            b.acquire(waker, l)
            let m = b.newMessage()
            b.ev(waker, .pipeSend, o: pipe, a: m, b: 8, c: 0)
            b.release(waker, l)
            b.acquire(waiter, l)
            b.ev(waiter, .pipeRecv, o: pipe, a: m, b: 8, c: 1)
            b.release(waiter, l)
        }
        try assertHoldAndWait(r, object: "pipe 'chan'")
    }

    func testEventWait() throws {
        let r = twoProcesses { b, main, waiter, waker, l in
            let ev = b.newObject(main)
            b.ev(main, .eventNew, o: ev, text: "ready")
            b.acquire(waker, l); b.ev(waker, .eventSet, o: ev); b.release(waker, l)
            b.acquire(waiter, l); b.ev(waiter, .eventWake, o: ev); b.release(waiter, l)
        }
        try assertHoldAndWait(r, object: "event 'ready'")
    }

    /// The waiter holds L (not the condition's own lock) across `cond.wait`; the notifier takes L
    /// before notifying. A third process notifies without L, so this run ended well.
    func testConditionWait() throws {
        let r = twoProcesses { b, main, waiter, waker, l in
            let cl = b.lock(main, "CL")
            let cond = b.newObject(main)
            b.ev(main, .conditionNew, o: cond, a: cl, text: "cv")
            b.acquire(waker, l); b.acquire(waker, cl); b.ev(waker, .conditionNotify, o: cond, a: 1)
            b.release(waker, cl); b.release(waker, l)
            b.acquire(waiter, l); b.acquire(waiter, cl)
            b.ev(waiter, .conditionWait, o: cond)
            b.acquire(main, cl); b.ev(main, .conditionNotify, o: cond, a: 1); b.release(main, cl)
            b.ev(waiter, .conditionWake, o: cond)
            b.release(waiter, cl); b.release(waiter, l)
        }
        try assertHoldAndWait(r, object: "condition 'cv'")
        // The condition's own lock is never the held lock L of a finding.
        XCTAssertFalse(r.findings.contains { $0.title.contains("lock 'CL' held") })
    }

    /// Main holds L while joining a thread that takes L before it can finish.
    func testThreadJoin() throws {
        let b = TraceBuilder()
        let main = b.root(1)
        let l = b.lock(main, "L")
        let t = b.thread(main, main + 1, name: "worker")
        b.acquire(main, main + 1, l); b.release(main, main + 1, l)
        b.threadExit(main, main + 1, obj: t)
        b.acquire(main, l)
        b.threadJoin(main, obj: t)
        b.release(main, l)
        b.exit(main)
        let r = b.analyze()
        XCTAssertEqual(r.count(.holdAndWait), 1, "\(r.findings.map(\.title)) \(r.ruledOut)")
        let f = try XCTUnwrap(r.first(.holdAndWait))
        XCTAssertTrue(f.title.contains("join of thread"), f.title)
        XCTAssertTrue(f.participants.contains { $0.role == .wakes && $0.thread == "worker" })
    }

    /// The caller holds L while waiting for a pool result; the worker takes L inside the task.
    func testPoolResult() throws {
        let b = TraceBuilder()
        let main = b.root(1)
        let l = b.lock(main, "L")
        let pool = b.newObject(main)
        b.ev(main, .poolNew, o: pool, a: 1, text: "workers")
        let w = b.pid(2)
        let ow = b.spawn(main, w, name: "PoolWorker-1")
        b.ev(main, .poolSubmit, o: pool, a: 7)
        b.ev(w, .poolTaskStart, o: pool, a: 7)
        b.acquire(w, l); b.release(w, l)
        b.ev(w, .poolTaskDone, o: pool, a: 7)
        b.acquire(main, l)
        b.ev(main, .poolResult, o: pool, a: 7)
        b.release(main, l)
        b.ev(main, .poolClose, o: pool)
        b.exit(w)
        b.join(main, w, obj: ow)
        b.exit(main)
        let r = b.analyze()
        XCTAssertEqual(r.count(.holdAndWait), 1, "\(r.findings.map(\.title)) \(r.ruledOut)")
        let f = try XCTUnwrap(r.first(.holdAndWait))
        XCTAssertTrue(f.title.contains("pool 'workers'"), f.title)
    }

    /// The waker's section is ordered after the waiter's by a message (the waiter, after releasing
    /// L, sends "go"; the waker takes L only after receiving it): they cannot overlap — ruled out.
    /// Without the message the same shape is reported (the control).
    func testMessageOrderingRulesOut() {
        for ordered in [true, false] {
            let r = twoProcesses { b, main, waiter, waker, l in
                let q = b.queue(main, "jobs"), go = b.queue(main, "go")
                let m0 = b.put(main, q)
                b.acquire(waiter, l); b.get(waiter, q, m0); b.release(waiter, l)
                if ordered {
                    let g = b.put(waiter, go)
                    b.get(waker, go, g)
                }
                b.acquire(waker, l); let m = b.put(waker, q); b.release(waker, l)
                b.get(main, q, m)
            }
            XCTAssertEqual(r.count(.holdAndWait), ordered ? 0 : 1, "ordered: \(ordered): \(r.findings.map(\.title))")
            if ordered {
                XCTAssertTrue(r.ruledOut.contains { $0.kind == .holdAndWait && $0.reason == .happensBefore }, "\(r.ruledOut)")
            }
        }
    }

    /// Both sides hold gate lock G around their sections: only one can be inside — ruled out.
    func testGateLockRulesOut() {
        let r = twoProcesses { b, main, waiter, waker, l in
            let g = b.lock(main, "G")
            let q = b.queue(main, "jobs")
            b.acquire(waker, g); b.acquire(waker, l); let m = b.put(waker, q); b.release(waker, l); b.release(waker, g)
            b.acquire(waiter, g); b.acquire(waiter, l); b.get(waiter, q, m); b.release(waiter, l); b.release(waiter, g)
        }
        XCTAssertEqual(r.count(.holdAndWait), 0, "\(r.findings.map(\.title))")
        XCTAssertTrue(r.ruledOut.contains { $0.kind == .holdAndWait && $0.reason == .gateLock }, "\(r.ruledOut)")
    }

    /// The consumer won the race: an actual deadlock, not reported again as hold-and-wait.
    func testActualDeadlockIsNotPredictedAgain() {
        let b = TraceBuilder()
        let main = b.root(1)
        let l = b.lock(main, "L")
        let q = b.queue(main, "jobs")
        let t1 = b.thread(main, main + 1, name: "consumer"), t2 = b.thread(main, main + 2, name: "producer")
        // An earlier round where the producer won (a hold-and-wait on its own) …
        b.acquire(main, main + 2, l); let m = b.put(main, main + 2, q); b.release(main, main + 2, l)
        b.acquire(main, main + 1, l); b.get(main, main + 1, q, m); b.release(main, main + 1, l)
        // … then the consumer wins and both block.
        b.acquire(main, main + 1, l)
        b.ev(main, main + 1, .queueGetWait, o: q)
        b.ev(main, main + 2, .lockWait, o: l)
        b.ev(main, .threadJoinWait, o: t1)
        _ = t2
        let r = b.analyze()
        XCTAssertEqual(r.kinds(), [.deadlock], "\(r.findings.map(\.title))")
        XCTAssertTrue(r.ruledOut.contains { $0.kind == .holdAndWait && $0.reason == .reportedAsActual }, "\(r.ruledOut)")
    }
}
