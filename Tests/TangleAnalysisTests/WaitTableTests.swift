import XCTest
@testable import TangleAnalysis
@testable import TangleTraceFormat

/// Waits and wakers, driven from the event table: every kind the table declares as a wait has a
/// fixture here (adding a wait kind without one fails `testEveryWaitKindHasAFixture`), built twice —
/// once with its wakers gone (the waiter must be in an actual finding, on its object) and once
/// woken by its wakers' own operation and ended by one of the kinds the table says end it (no
/// finding at all).
final class WaitTableTests: XCTestCase {
    /// Builds the trace; returns the waiter (pid, tid) and the object of its wait.
    typealias Fixture = (_ b: TraceBuilder, _ woken: Bool) -> (pid: Int32, tid: Int32, object: UInt64)

    /// `pid` blocks for good on an event nobody else has (a stuck waker).
    static func blockForGood(_ b: TraceBuilder, _ pid: Int32) {
        let e = b.newObject(pid)
        b.ev(pid, .eventNew, o: e, text: "never")
        b.ev(pid, .eventWait, o: e)
    }

    /// A pool of one worker (process 2) running task 1; the worker blocks for good unless `woken`.
    static func poolWithRunningTask(_ b: TraceBuilder, woken: Bool) -> (main: Int32, worker: Int32, pool: UInt64) {
        let main = b.root(1)
        let pool = b.newObject(main)
        b.ev(main, .poolNew, o: pool, a: 1)
        let worker = b.child(of: main, "PoolWorker-1", attached: pool, type: .pool)
        b.ev(main, .poolSubmit, o: pool, a: 1, b: 1)
        b.ev(worker, .poolTaskStart, o: pool, a: 1)
        if !woken { blockForGood(b, worker) }
        return (main, worker, pool)
    }

    static let fixtures: [EventKind: Fixture] = [
        .threadJoinWait: { b, woken in
            let main = b.root(1)
            let t = b.newObject(main)
            b.ev(main, .threadSpawn, o: t)
            b.ev(main, 11, .threadStart, o: t, text: "worker")
            let e = b.newObject(main)
            b.ev(main, .eventNew, o: e, text: "go")
            if !woken { b.ev(main, 11, .eventWait, o: e) }
            b.ev(main, .threadJoinWait, o: t)
            if woken {
                b.ev(main, 11, .threadExit, o: t)
                b.ev(main, .threadJoinDone, o: t)
            }
            return (main, main, t)
        },
        .processJoinWait: { b, woken in
            let main = b.root(1)
            let child = b.pid(2)
            let obj = b.spawn(main, child, name: "child")
            if !woken {
                blockForGood(b, child)
            }
            b.ev(main, .processJoinWait, o: obj, a: UInt64(child))
            if woken {
                b.exit(child)
                b.ev(main, .processJoinDone, o: obj, a: UInt64(child))
            }
            return (main, main, obj)
        },
        .lockWait: { b, woken in
            let main = b.root(1)
            let l = b.lock(main, "L")
            let (child, _) = (b.pid(2), b.spawn(main, b.pid(2), name: "holder"))
            b.attach(child, l, type: .lock)
            b.acquire(child, l)
            if !woken {
                blockForGood(b, child)
            }
            b.ev(main, .lockWait, o: l)
            if woken {
                b.release(child, l)
                b.acquire(main, l)
            }
            return (main, main, l)
        },
        .queuePutWait: { b, woken in
            let main = b.root(1)
            let q = b.queue(main, "q", max: 1)
            let child = b.child(of: main, "consumer", attached: q, type: .queue)
            let m = b.put(main, q)
            b.ev(main, .queuePutWait, o: q)
            if woken {
                b.get(child, q, m)
                b.put(main, q)
                b.get(child, q, b.events.last!.a)
            } else {
                b.exit(child)
            }
            return (main, main, q)
        },
        .queueGetWait: { b, woken in
            let main = b.root(1)
            let q = b.queue(main, "q")
            let child = b.child(of: main, "producer", attached: q, type: .queue)
            b.ev(main, .queueGetWait, o: q)
            if woken {
                let m = b.put(child, q)
                b.get(main, q, m)
            } else {
                b.exit(child)
            }
            return (main, main, q)
        },
        .queueJoinWait: { b, woken in
            let main = b.root(1)
            let q = b.queue(main, "q", joinable: true)
            let child = b.child(of: main, "worker", attached: q, type: .queue)
            let m = b.put(main, q)
            b.get(child, q, m)
            b.ev(main, .queueJoinWait, o: q, a: 1)
            if woken {
                b.ev(child, .queueTaskDone, o: q, a: 0)
                b.ev(main, .queueJoinDone, o: q)
            } else {
                b.exit(child)
            }
            return (main, main, q)
        },
        .pipeRecvWait: { b, woken in
            let main = b.root(1)
            let p = b.newObject(main)
            b.ev(main, .pipeNew, o: p, a: 1, text: "conn")
            let child = b.child(of: main, "writer", attached: p, type: .pipe, end: 1)
            // The reader keeps its own copy of end 1 (the bug when nobody sends).
            b.ev(main, .pipeRecvWait, o: p, c: 0)
            if woken {
                let m = b.newMessage()
                b.ev(child, .pipeSend, o: p, a: m, b: 8, c: 1)
                b.ev(main, .pipeRecv, o: p, a: m, b: 8, c: 0)
            } else {
                b.exit(child)
            }
            return (main, main, p)
        },
        .eventWait: { b, woken in
            let main = b.root(1)
            let e = b.newObject(main)
            b.ev(main, .eventNew, o: e, text: "ready")
            let child = b.child(of: main, "setter", attached: e, type: .event)
            b.ev(main, .eventWait, o: e)
            if woken {
                b.ev(child, .eventSet, o: e)
                b.ev(main, .eventWake, o: e)
            } else {
                b.exit(child)
            }
            return (main, main, e)
        },
        .conditionWait: { b, woken in
            let main = b.root(1)
            let l = b.lock(main, "cond-lock")
            let c = b.newObject(main)
            b.ev(main, .conditionNew, o: c, a: l, text: "cv")
            let child = b.child(of: main, "notifier", attached: c, type: .condition)
            b.attach(child, l, type: .lock)
            b.acquire(main, l)
            b.ev(main, .conditionWait, o: c)
            b.release(main, l)                     // inside the wait: it stays pending
            if woken {
                b.acquire(child, l)
                b.ev(child, .conditionNotify, o: c, a: 1)
                b.release(child, l)
                b.acquire(main, l)
                b.ev(main, .conditionWake, o: c)
                b.release(main, l)
            } else {
                b.exit(child)
            }
            return (main, main, c)
        },
        .barrierWait: { b, woken in
            let main = b.root(1)
            let bar = b.newObject(main)
            b.ev(main, .barrierNew, o: bar, a: 2, text: "start")
            let child = b.child(of: main, "party", attached: bar, type: .barrier)
            b.ev(main, .barrierWait, o: bar, a: 0)
            if woken {
                b.ev(child, .barrierPass, o: bar, a: 1)   // the last party records only its pass
                b.ev(main, .barrierPass, o: bar, a: 0)
            } else {
                b.exit(child)
            }
            return (main, main, bar)
        },
        .poolResultWait: { b, woken in
            let (main, worker, pool) = poolWithRunningTask(b, woken: woken)
            b.ev(main, .poolResultWait, o: pool, a: 1)
            if woken {
                b.ev(worker, .poolTaskDone, o: pool, a: 1)
                b.ev(main, .poolResult, o: pool, a: 1)
            }
            return (main, main, pool)
        },
        .poolJoinWait: { b, woken in
            let (main, worker, pool) = poolWithRunningTask(b, woken: woken)
            b.ev(main, .poolClose, o: pool)
            b.ev(main, .poolJoinWait, o: pool)
            if woken {
                b.ev(worker, .poolTaskDone, o: pool, a: 1)
                b.exit(worker)
                b.ev(main, .poolJoinDone, o: pool)
            }
            return (main, main, pool)
        },
        .poolTaskWait: { b, woken in
            // An idle worker: never a member of a finding, either way.
            let main = b.root(1)
            let pool = b.newObject(main)
            b.ev(main, .poolNew, o: pool, a: 1)
            let worker = b.child(of: main, "PoolWorker-1", attached: pool, type: .pool)
            b.ev(worker, .poolTaskWait, o: pool)
            if woken {
                b.ev(main, .poolSubmit, o: pool, a: 1, b: 1)
                b.ev(worker, .poolTaskStart, o: pool, a: 1)
                b.ev(worker, .poolTaskDone, o: pool, a: 1)
                b.ev(main, .poolResult, o: pool, a: 1)
            }
            return (worker, worker, pool)
        },
    ]

    func testEveryWaitKindHasAFixture() {
        for spec in EventSpec.table where spec.beginsWait {
            XCTAssertNotNil(Self.fixtures[spec.kind], "no fixture for wait kind \(spec.name)")
        }
    }

    /// Wakers gone: the waiter is in an actual finding about its object (idle waits: in none).
    func testEveryWaitWithItsWakersGoneIsFound() {
        for (kind, build) in Self.fixtures.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            let b = TraceBuilder()
            let w = build(b, false)
            let report = b.analyze()
            let rule = kind.spec.wakers!
            let membership = report.findings.filter { $0.confidence == .actual }.flatMap(\.participants)
                .filter { $0.role == .waits && $0.pid == w.pid && $0.tid == w.tid }
            if rule.isIdle {
                XCTAssertTrue(membership.isEmpty, "\(kind.name): an idle wait is in a finding: \(report.findings.map(\.title))")
            } else {
                XCTAssertFalse(membership.isEmpty, "\(kind.name) (\(rule.rawValue)): the waiter is in no actual finding: \(report.findings.map(\.title))")
                XCTAssertTrue(membership.contains { $0.object == w.object }, "\(kind.name): wrong object: \(membership.map(\.detail))")
            }
        }
    }

    /// Woken by its wakers and ended by one of its declared end kinds: no finding.
    func testEveryWaitWokenByItsWakersEndsCleanly() {
        for (kind, build) in Self.fixtures.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            let b = TraceBuilder()
            let w = build(b, true)
            let ends = b.events.filter { $0.pid == w.pid && $0.tid == w.tid && kind.spec.endedBy.contains($0.kind) }
            XCTAssertFalse(ends.isEmpty && !kind.spec.wakers!.isIdle, "\(kind.name): the fixture records none of its end kinds")
            let report = b.analyze()
            XCTAssertEqual(report.findings.filter { $0.confidence == .actual }.map(\.title), [], "\(kind.name)")
            XCTAssertFalse(report.problems.contains { $0.kind == .waitEndMissing }, "\(kind.name): \(report.problems)")
        }
    }

    /// A wait ends only at its own end kinds: another event of the same thread that the table
    /// declares inside it keeps it pending; one it does not is noted as a missing end.
    func testOnlyDeclaredEventsHappenInsideAWait() {
        let b = TraceBuilder()
        let main = b.root(1)
        let q = b.queue(main, "q")
        b.ev(main, .queueGetWait, o: q)
        let l = b.lock(main, "stray")              // not inside a get: the thread ran
        _ = l
        let report = b.analyze()
        XCTAssertTrue(report.problems.contains { $0.kind == .waitEndMissing }, "\(report.problems)")
    }

    func testArgumentOrdinalsFollowTheDeclaredOrder() {
        for (i, a) in EventArgument.allCases.enumerated() {
            XCTAssertEqual(EventSpec.argumentOrdinal(a), i, "\(a)")
        }
    }

    func testIsWaitAgreesWithTheTable() {
        for k in EventKind.allCases {
            XCTAssertEqual(k.isWait, k.spec.beginsWait, k.name)
            XCTAssertEqual(k.spec.kind, k)
            for end in k.spec.endedBy { XCTAssertFalse(end.isWait, "\(k.name) ends at a wait kind \(end.name)") }
        }
    }

    /// docs/analyzers.md carries the table of waits generated from the event table.
    func testDocsCarryTheWaitsTable() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let doc = try String(contentsOf: root.appendingPathComponent("docs/analyzers.md"), encoding: .utf8)
        XCTAssertTrue(doc.contains(EventSpec.waitsTable()), "docs/analyzers.md lacks the current table; paste:\n\(EventSpec.waitsTable())")
    }

    /// docs/trace-format.md carries the table of kinds generated from the event table.
    func testTraceFormatCarriesTheKindsTable() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let doc = try String(contentsOf: root.appendingPathComponent("docs/trace-format.md"), encoding: .utf8)
        XCTAssertTrue(doc.contains(EventSpec.kindsTable()), "docs/trace-format.md lacks the current table; paste:\n\(EventSpec.kindsTable())")
    }
}
