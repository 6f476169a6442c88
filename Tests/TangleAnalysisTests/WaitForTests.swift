import XCTest
@testable import TangleAnalysis

/// Producer/consumer traces used by several tests.
enum Scenarios {
    /// A producer puts 5 items on 'results' and exits; the parent gets 3, joins it and exits: 2
    /// items are lost. Returns the producer's pid.
    @discardableResult
    static func lostMessages(_ b: TraceBuilder) -> Int32 {
        let main = b.root(1)
        let q = b.queue(main, "results")
        let c = b.pid(2)
        let co = b.spawn(main, c, name: "producer")
        b.attach(c, q, type: .queue)
        let ms = (0..<5).map { _ in b.put(c, q) }
        b.exit(c)
        for m in ms.prefix(3) { b.get(main, q, m) }
        b.join(main, c, obj: co)
        b.exit(main)
        return c
    }

    /// Parent creates queue 'tasks', spawns a producer and two consumers; the producer puts
    /// `items` items and `pills` poison pills. Consumers block on an empty queue first (so the trace
    /// has in-flight wakes), take items round-robin, stop at a pill. When `pills < 2` the second
    /// consumer ends blocked in get and the parent blocked in its join (trace cut there).
    static func producerConsumer(_ b: TraceBuilder, items: Int = 4, pills: Int = 2, killWithTimeout: Bool = false) {
        let main = b.root(1)
        let q = b.queue(main, "tasks")
        let prod = b.pid(2), c1 = b.pid(3), c2 = b.pid(4)
        let po = b.spawn(main, prod, name: "producer")
        b.attach(prod, q, type: .queue)
        let o1 = b.spawn(main, c1, name: "consumer-1")
        b.attach(c1, q, type: .queue)
        let o2 = b.spawn(main, c2, name: "consumer-2")
        b.attach(c2, q, type: .queue)
        b.ev(c1, .queueGetWait, o: q)
        b.ev(c2, .queueGetWait, o: q)
        var msgs: [UInt64] = []
        for _ in 0..<(items + pills) { msgs.append(b.put(prod, q)) }
        b.exit(prod)
        b.join(main, prod, obj: po)
        var consumers = [c1, c2]
        var alive = [c1: true, c2: true]
        var first = [c1: true, c2: true]
        var i = 0
        for (n, m) in msgs.enumerated() {
            let c = consumers[i % consumers.count]
            if !first[c]! { b.ev(c, .queueGetWait, o: q) }
            first[c] = false
            b.get(c, q, m)
            if n >= items {
                b.exit(c)
                alive[c] = false
                consumers.removeAll { $0 == c }
                if consumers.isEmpty { break }
            }
            i += 1
        }
        for c in [c1, c2] where alive[c]! {
            b.ev(c, .queueGetWait, o: q)
        }
        b.ev(main, .processJoinWait, o: o1, a: UInt64(c1))
        if alive[c1]! == false { b.ev(main, .processJoinDone, o: o1, a: UInt64(c1)) }
        if alive[c1]! { return }
        b.ev(main, .processJoinWait, o: o2, a: UInt64(c2))
        if alive[c2]! == false {
            b.ev(main, .processJoinDone, o: o2, a: UInt64(c2))
            b.exit(main)
        } else if killWithTimeout {
            b.sleep(2_000_000_000)
            b.ev(main, .processJoinDone, o: o2, a: UInt64(c2), r: .timeout)
            b.ev(main, .processKill, o: o2, a: UInt64(c2))
            b.ev(main, .processJoinWait, o: o2, a: UInt64(c2))
            b.ev(main, .processJoinDone, o: o2, a: UInt64(c2), c: 9)
            b.exit(main)
        }
    }
}

final class WaitForTests: XCTestCase {
    /// A producer/consumer with one pill per consumer produces no finding at all (false-positive trap).
    func testCleanProducerConsumerHasNoFinding() {
        let b = TraceBuilder()
        Scenarios.producerConsumer(b, items: 5, pills: 2)
        let r = b.analyze()
        XCTAssertEqual(r.findings.map(\.title), [])
        XCTAssertTrue(r.problems.isEmpty, "\(r.problems)")
    }

    /// Two consumers, one pill: the second consumer waits forever and the parent waits for it: a hang.
    func testMissingPoisonPillIsAHang() throws {
        let b = TraceBuilder()
        Scenarios.producerConsumer(b, items: 4, pills: 1)
        let r = b.analyze()
        XCTAssertEqual(r.kinds(), [.hang], "\(r.findings.map(\.title))")
        let f = try XCTUnwrap(r.first(.hang))
        XCTAssertEqual(f.confidence, .actual)
        let waits = f.participants.filter { $0.role == .waits }
        XCTAssertEqual(Set(waits.map(\.process)), ["consumer-2", "MainProcess"])
        XCTAssertTrue(f.participants.contains { $0.role == .exited && $0.process == "producer" }, "\(f.participants)")
        XCTAssertTrue(f.explanation.contains("queue 'tasks'"))
        XCTAssertFalse(f.fix.isEmpty)
    }

    /// The same hang, ended by the parent's join timeout and a kill: found at the quiescent point.
    func testHangEndedByKillIsStillReported() {
        let b = TraceBuilder()
        Scenarios.producerConsumer(b, items: 4, pills: 1, killWithTimeout: true)
        let r = b.analyze()
        XCTAssertEqual(r.kinds(), [.hang], "\(r.findings.map(\.title))")
    }

    /// A consumer blocked in get while a live producer is still running (trace cut) is not a hang.
    func testWaitWithLiveProducerIsNotAHang() {
        let b = TraceBuilder()
        let main = b.root(1)
        let q = b.queue(main, "tasks")
        let c = b.child(of: main, "consumer", attached: q, type: .queue)
        b.ev(c, .queueGetWait, o: q)
        b.ev(main, .lockNew, o: b.newObject(main), text: "busy")   // the parent is running
        XCTAssertEqual(b.analyze().findings.count, 0)
    }

    /// A lock held around a blocking get, while the only producer waits for that lock: a deadlock.
    func testLockAcrossGetIsADeadlock() throws {
        let b = TraceBuilder()
        let main = b.root(1)
        let l = b.lock(main, "state")
        let q = b.queue(main, "jobs")
        let t1 = b.thread(main, main + 1, name: "consumer")
        let t2 = b.thread(main, main + 2, name: "producer")
        b.put(main, main + 2, q)
        b.acquire(main, main + 1, l)
        b.get(main, main + 1, q, 1)
        b.ev(main, main + 1, .queueGetWait, o: q)
        b.ev(main, main + 2, .lockWait, o: l)
        b.ev(main, .threadJoinWait, o: t1)
        _ = t2
        let r = b.analyze()
        XCTAssertEqual(r.kinds(), [.deadlock], "\(r.findings.map(\.title))")
        let f = try XCTUnwrap(r.first(.deadlock))
        XCTAssertTrue(f.explanation.contains("lock 'state'"))
        XCTAssertTrue(f.participants.contains { $0.thread == "producer" && $0.role == .waits })
        XCTAssertTrue(f.participants.contains { $0.thread == "consumer" && $0.role == .waits })
    }

    /// Five philosophers each holding their left fork and waiting for the right: one deadlock, and
    /// the lock-order cycle on the same forks is not reported again as predicted.
    func testDiningPhilosophers() throws {
        let b = TraceBuilder()
        let main = b.root(1)
        let forks = (0..<5).map { b.lock(main, "fork-\($0)") }
        var objs: [UInt64] = []
        for i in 0..<5 { objs.append(b.thread(main, main + 1 + Int32(i), name: "philosopher-\(i)")) }
        for i in 0..<5 { b.acquire(main, main + 1 + Int32(i), forks[i]) }
        for i in 0..<5 { b.ev(main, main + 1 + Int32(i), .lockWait, o: forks[(i + 1) % 5]) }
        b.ev(main, .threadJoinWait, o: objs[0])
        let r = b.analyze()
        XCTAssertEqual(r.kinds(), [.deadlock], "\(r.findings.map(\.title))")
        let f = try XCTUnwrap(r.first(.deadlock))
        XCTAssertEqual(f.participants.filter { $0.role == .waits && $0.thread?.hasPrefix("philosopher") == true }.count, 5)
        XCTAssertTrue(r.ruledOut.contains { $0.reason == .reportedAsActual })
    }

    /// A parent joins a child that is blocked putting into a full queue only the parent would drain.
    func testJoinBeforeGetIsADeadlock() {
        let b = TraceBuilder()
        let main = b.root(1)
        let q = b.queue(main, "results", max: 1)
        let c = b.pid(2)
        let co = b.spawn(main, c, name: "worker")
        b.attach(c, q, type: .queue)
        b.put(c, q)
        b.ev(c, .queuePutWait, o: q)
        b.ev(main, .processJoinWait, o: co, a: UInt64(c))
        let r = b.analyze()
        XCTAssertEqual(r.kinds(), [.deadlock], "\(r.findings.map(\.title))")
    }

    /// The receiver still holds the write end: recv never sees EOF after the writer exits.
    func testPipeOwnWriterIsAHang() throws {
        let b = TraceBuilder()
        let main = b.root(1)
        let pipe = b.newObject(main)
        b.ev(main, .pipeNew, o: pipe, a: 0)
        let w = b.child(of: main, "writer", attached: pipe, type: .pipe, end: 1)
        b.ev(w, .pipeSend, o: pipe, a: 100, b: 4, c: 1)
        b.ev(w, .pipeClose, o: pipe, c: 1)
        b.exit(w)
        b.ev(main, .pipeRecv, o: pipe, a: 100, b: 4, c: 0)
        b.ev(main, .pipeRecvWait, o: pipe, c: 0)
        let r = b.analyze()
        XCTAssertEqual(r.kinds(), [.hang], "\(r.findings.map(\.title))")
        let f = try XCTUnwrap(r.first(.hang))
        XCTAssertTrue(f.explanation.contains("its own process still holds the write end"), f.explanation)
    }

    /// The same pipe, with the receiver closing its write end: recv gets EOF, no finding.
    func testPipeCleanHasNoFinding() {
        let b = TraceBuilder()
        let main = b.root(1)
        let pipe = b.newObject(main)
        b.ev(main, .pipeNew, o: pipe, a: 0)
        let w = b.pid(2)
        let wo = b.spawn(main, w, name: "writer")
        b.attach(w, pipe, type: .pipe, end: 1)
        b.ev(main, .pipeClose, o: pipe, c: 1)
        b.ev(main, .pipeRecvWait, o: pipe, c: 0)
        b.ev(w, .pipeSend, o: pipe, a: 100, b: 4, c: 1)
        b.ev(main, .pipeRecv, o: pipe, a: 100, b: 4, c: 0)
        b.ev(w, .pipeClose, o: pipe, c: 1)
        b.exit(w)
        b.ev(main, .pipeRecvWait, o: pipe, c: 0)
        b.ev(main, .pipeRecv, o: pipe, c: 0, r: .eof)
        b.join(main, w, obj: wo)
        b.exit(main)
        XCTAssertEqual(b.analyze().findings.map(\.title), [])
    }

    /// A JoinableQueue whose consumer forgot one task_done: join waits forever.
    func testMissingTaskDone() throws {
        let b = TraceBuilder()
        let main = b.root(1)
        let q = b.queue(main, "work", joinable: true)
        let c = b.child(of: main, "worker", attached: q, type: .queue)
        let ms = (0..<3).map { _ in b.put(main, q) }
        for (i, m) in ms.enumerated() {
            b.get(c, q, m)
            if i < 2 { b.ev(c, .queueTaskDone, o: q, a: UInt64(2 - i)) }
        }
        b.ev(c, .queueGetWait, o: q)
        b.ev(main, .queueJoinWait, o: q, a: 1)
        let r = b.analyze()
        XCTAssertEqual(r.kinds(), [.missingTaskDone], "\(r.findings.map(\.title))")
        let f = try XCTUnwrap(r.first(.missingTaskDone))
        XCTAssertTrue(f.participants.contains { $0.role == .forgotTaskDone && $0.process == "worker" })
    }

    /// A spawned child whose trace file is missing may hold the queue: no hang, but the gap is reported.
    func testMissingProcessFileIsAGapNotAHang() {
        let b = TraceBuilder()
        let main = b.root(1)
        let q = b.queue(main, "tasks")
        let ghost = b.pid(2)
        _ = b.spawn(main, ghost, name: "producer", start: false)
        b.ev(main, .queueGetWait, o: q)
        let r = b.analyze()
        XCTAssertEqual(r.findings.count, 0, "\(r.findings.map(\.title))")
        XCTAssertTrue(r.problems.contains { $0.kind == .missingProcess })
    }

    /// A single thread waiting on an event nobody else holds, in a process that ended blocked.
    func testEventWaitWithNoSetter() {
        let b = TraceBuilder()
        let main = b.root(1)
        let ev = b.newObject(main)
        b.ev(main, .eventNew, o: ev, text: "ready")
        let c = b.pid(2)
        let co = b.spawn(main, c, name: "waiter")
        b.attach(c, ev, type: .event)
        b.ev(c, .eventWait, o: ev)
        b.ev(main, .processJoinWait, o: co, a: UInt64(c))
        let r = b.analyze()
        // The parent holds the event and is blocked joining the waiter: a cycle through the only setter.
        XCTAssertEqual(r.count(.deadlock) + r.count(.hang), 1, "\(r.findings.map(\.title))")
    }

    /// A pool whose caller waits on results that workers complete: no finding (clean pool).
    func testCleanPoolHasNoFinding() {
        let b = TraceBuilder()
        let main = b.root(1)
        let pool = b.newObject(main)
        b.ev(main, .poolNew, o: pool, a: 2)
        let w1 = b.pid(2), w2 = b.pid(3)
        let o1 = b.spawn(main, w1, name: "PoolWorker-1")
        let o2 = b.spawn(main, w2, name: "PoolWorker-2")
        for task in 1...4 as ClosedRange<UInt64> { b.ev(main, .poolSubmit, o: pool, a: task, b: 1) }
        b.ev(main, .poolResultWait, o: pool, a: 1)
        for task in 1...4 as ClosedRange<UInt64> {
            let w = task % 2 == 0 ? w1 : w2
            b.ev(w, .poolTaskStart, o: pool, a: task)
            b.ev(w, .poolTaskDone, o: pool, a: task)
        }
        for task in 1...4 as ClosedRange<UInt64> { b.ev(main, .poolResult, o: pool, a: task) }
        b.ev(main, .poolClose, o: pool)
        b.exit(w1)
        b.exit(w2)
        b.ev(main, .poolJoinWait, o: pool)
        b.join(main, w1, obj: o1)
        b.join(main, w2, obj: o2)
        b.ev(main, .poolJoinDone, o: pool)
        b.exit(main)
        XCTAssertEqual(b.analyze().findings.map(\.title), [])
    }

    /// A timeout runner's SIGTERM makes every process record `proc.exit` with signal 15 while
    /// blocked: the hang seen at the quiescent point is still reported, and the signal deaths add
    /// no orphan, unjoined-child or owner-died findings.
    func testHangStoppedBySigtermHandlers() {
        let b = TraceBuilder()
        Scenarios.producerConsumer(b, items: 4, pills: 1)
        let l = b.lock(b.pid(4), "held")
        b.acquire(b.pid(4), l)
        b.ev(b.pid(4), .queueGetWait, o: b.events.first { $0.kind == .queueNew }!.object)
        b.sleep(3_000_000_000)
        b.exit(b.pid(4), signal: 15)
        b.exit(b.pid(1), signal: 15)
        let r = b.analyze()
        XCTAssertEqual(r.count(.hang) + r.count(.deadlock), 1, "\(r.findings.map(\.title))")
        XCTAssertEqual(r.findings.count, 1, "\(r.findings.map(\.title))")
    }
}
