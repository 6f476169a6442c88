import Foundation
import TangleTraceFormat
@testable import TangleAnalysis

/// Hand-made analysis results for the exporter tests: a realistic session of four processes with
/// a two-process lock deadlock (P1 holds A waits B, P2 holds B waits A), the main process hung on a
/// `get` of queue 'results', a predicted lock-order inversion (C→D in main, D→C in a thread of P2,
/// with overlapping holds in main), a zombie child, and messages put by main and got by P1 and P2.
enum ExportFixtures {
    static let mainPid: Int32 = 1000, p1: Int32 = 1001, p2: Int32 = 1002, p2worker: Int32 = 1003, p3: Int32 = 1004
    static func oid(_ n: UInt64) -> UInt64 { (1000 << 28) | n }
    static let lockA = oid(1), lockB = oid(2), tasks = oid(3), results = oid(4), lockC = oid(5), lockD = oid(6)
    static let t0: UInt64 = 5_000_000_000

    /// A temporary source tree with `Sources/App/Worker.swift` and `Sources/App/main.swift`, so
    /// that frames at `/build/ci/Sources/App/…` find their source lines under this root.
    static func makeSourceRoot() throws -> String {
        let root = NSTemporaryDirectory() + "tangle-export-src-\(getpid())"
        try FileManager.default.createDirectory(atPath: root + "/Sources/App", withIntermediateDirectories: true)
        var worker = ""
        for i in 1...60 {
            switch i {
            case 21: worker += "        let a = lockA.acquire()   // P1 takes A first\n"
            case 22: worker += "        lockB.acquire()   // then waits for B: deadlock\n"
            case 31: worker += "        lockB.acquire()   // P2 takes B first\n"
            case 32: worker += "        lockA.acquire()   // then waits for A: deadlock <script>alert(1)</script>\n"
            case 41: worker += "        lockD.acquire(); lockC.acquire()   // D before C\n"
            default: worker += "    // worker line \(i)\n"
            }
        }
        try worker.write(toFile: root + "/Sources/App/Worker.swift", atomically: true, encoding: .utf8)
        var main = ""
        for i in 1...40 {
            main += i == 12 ? "    let r = try results.get()   // waits forever\n" : (i == 17 ? "    lockC.acquire(); lockD.acquire()\n" : "    // main line \(i)\n")
        }
        try main.write(toFile: root + "/Sources/App/main.swift", atomically: true, encoding: .utf8)
        return root
    }

    static func userFrame(_ function: String, _ file: String, _ line: Int, _ offset: UInt64) -> Frame {
        Frame(function: function, file: "/build/ci/Sources/App/\(file)", line: line, module: "/build/ci/.build/debug/app", offset: offset)
    }
    static let lockAcquireFrame = Frame(function: "Tangle.Lock.acquire() -> ()", file: "/build/ci/Sources/Tangle/Sync/Lock.swift", line: 88,
                                        module: "/build/ci/.build/debug/app", offset: 0x4a10)
    static let queueGetFrame = Frame(function: "Tangle.Queue.get() throws -> A", file: "/build/ci/Sources/Tangle/Queue/Queue.swift", line: 140,
                                     module: "/build/ci/.build/debug/app", offset: 0x5b20)
    static let libcFrame = Frame(function: nil, file: nil, line: nil, module: "/lib/x86_64-linux-gnu/libc.so.6", offset: 0x29d90)
    static let mainFrame = Frame(function: "main", file: nil, line: nil, module: "/build/ci/.build/debug/app", offset: 0x1200)

    static func events() -> [TraceEvent] {
        var evs: [TraceEvent] = []
        var seq: [Int32: UInt64] = [:]
        func ev(_ dt: UInt64, _ pid: Int32, _ tid: Int32, _ kind: EventKind, _ o: UInt64 = 0, a: UInt64 = 0, b: UInt64 = 0, c: UInt64 = 0,
                text: String? = nil, r: WaitResult = .ok, s: UInt32 = 0) {
            let n = seq[tid, default: 0]
            seq[tid] = n + 1
            evs.append(TraceEvent(time: t0 + dt * 1000, pid: pid, tid: tid, seq: n, kind: kind, object: o, stack: s, result: r, a: a, b: b, c: c, text: text))
        }
        let m = mainPid
        ev(0, m, m, .processStart, oid(0), text: "MainProcess")
        ev(10, m, m, .lockNew, lockA, a: 0, text: "A")
        ev(12, m, m, .lockNew, lockB, a: 0, text: "B")
        ev(14, m, m, .queueNew, tasks, text: "tasks")
        ev(16, m, m, .queueNew, results, text: "results")
        ev(17, m, m, .lockNew, lockC, a: 0, text: "C")
        ev(18, m, m, .lockNew, lockD, a: 1, text: "D")
        ev(20, m, m, .processSpawn, oid(10), a: UInt64(p1), text: "Process-1")
        ev(25, m, m, .processSpawn, oid(11), a: UInt64(p2), text: "Process-2")
        ev(30, m, m, .processSpawn, oid(12), a: UInt64(p3), text: "Process-3")
        ev(400, p1, p1, .processStart, oid(10), a: UInt64(m), text: "Process-1")
        ev(420, p2, p2, .processStart, oid(11), a: UInt64(m), text: "Process-2")
        ev(450, p3, p3, .processStart, oid(12), a: UInt64(m), text: "Process-3")
        ev(500, m, m, .queuePut, tasks, a: oid(100), b: 64, s: 1)
        ev(510, m, m, .queuePut, tasks, a: oid(101), b: 64, s: 1)
        ev(520, p1, p1, .queueGetWait, tasks)
        ev(530, p1, p1, .queueGet, tasks, a: oid(100), b: 64)
        ev(560, p2, p2, .queueGet, tasks, a: oid(101), b: 64)
        ev(600, p3, p3, .processExit, a: 0)
        // Main: overlapping holds of C and D (C→D).
        ev(700, m, m, .lockAcquired, lockC, a: 1, s: 5)
        ev(710, m, m, .lockAcquired, lockD, a: 1, s: 6)
        ev(720, m, m, .lockReleased, lockC, a: 0)
        ev(730, m, m, .lockReleased, lockD, a: 0)
        // P2's worker thread: D→C, properly nested.
        ev(800, p2, p2worker, .threadStart, oid(20), a: UInt64(p2), text: "worker")
        ev(810, p2, p2worker, .lockAcquired, lockD, a: 1, s: 7)
        ev(820, p2, p2worker, .lockAcquired, lockC, a: 1, s: 8)
        ev(830, p2, p2worker, .lockReleased, lockC, a: 0)
        ev(840, p2, p2worker, .lockReleased, lockD, a: 0)
        ev(850, p2, p2worker, .threadExit, oid(20))
        // The deadlock.
        ev(1000, p1, p1, .lockAcquired, lockA, a: 1, s: 2)
        ev(1010, p2, p2, .lockAcquired, lockB, a: 1, s: 3)
        ev(1100, p1, p1, .lockWait, lockB, s: 2)
        ev(1110, p2, p2, .lockWait, lockA, s: 3)
        // Main hangs on results.
        ev(1200, m, m, .queueGetWait, results, s: 4)
        return evs
    }

    static func findings() -> [Finding] {
        let m = mainPid
        let deadlock = Finding(
            kind: .deadlock, severity: .error, confidence: .actual,
            title: "Process-1 and Process-2 wait for each other's lock: 'B' held by Process-2, 'A' held by Process-1",
            participants: [
                Participant(pid: p1, tid: p1, process: "Process-1", role: .waits, detail: "acquire of lock 'B' held by Process-2", object: lockB, objectName: "B"),
                Participant(pid: p2, tid: p2, process: "Process-2", role: .waits, detail: "acquire of lock 'A' held by Process-1", object: lockA, objectName: "A"),
            ],
            evidence: [
                EvidenceEvent(time: t0 + 1_000_000, pid: p1, tid: p1, seq: 3, kind: "lock.acquired", object: lockA, stack: 0, note: "P1 holds A"),
                EvidenceEvent(time: t0 + 1_010_000, pid: p2, tid: p2, seq: 2, kind: "lock.acquired", object: lockB, stack: 1),
                EvidenceEvent(time: t0 + 1_100_000, pid: p1, tid: p1, seq: 4, kind: "lock.wait", object: lockB, stack: 0, note: "P1 waits for B"),
                EvidenceEvent(time: t0 + 1_110_000, pid: p2, tid: p2, seq: 3, kind: "lock.wait", object: lockA, stack: 1),
            ],
            stacks: [
                Stack(label: "Process-1 (pid 1001) blocked acquiring 'B' while holding 'A'", pid: p1, tid: p1, frames: [
                    libcFrame, lockAcquireFrame, userFrame("App.Worker.transfer(from:to:) -> ()", "Worker.swift", 22, 0x3100),
                    userFrame("App.Worker.run() -> ()", "Worker.swift", 10, 0x3000), mainFrame,
                ], warning: "the walk stopped in libc.so.6 (no frame pointers)"),
                Stack(label: "Process-2 (pid 1002) blocked acquiring 'A' while holding 'B'", pid: p2, tid: p2, frames: [
                    lockAcquireFrame, userFrame("App.Worker.refund(from:to:) -> ()", "Worker.swift", 32, 0x3200),
                    userFrame("App.Worker.run() -> ()", "Worker.swift", 11, 0x3008), mainFrame,
                ]),
            ],
            explanation: "Process-1 acquired lock 'A' and then blocked acquiring 'B'; Process-2 acquired 'B' and then blocked acquiring 'A'. Each waits for a lock the other holds, so neither can proceed: a cycle in the wait-for graph.",
            fix: "Acquire 'A' and 'B' in the same order in transfer(from:to:) and refund(from:to:), e.g. always the lower account first.",
            fingerprint: "dl-7c1e5a90b2f34d18")
        let hang = Finding(
            kind: .hang, severity: .error, confidence: .actual,
            title: "MainProcess waits forever on get of queue 'results'; every putter is blocked",
            participants: [
                Participant(pid: m, tid: m, process: "MainProcess", role: .waits, detail: "get on queue 'results'", object: results, objectName: "results"),
                Participant(pid: p1, tid: p1, process: "Process-1", role: .couldWake, detail: "blocked in the deadlock"),
                Participant(pid: p2, tid: p2, process: "Process-2", role: .couldWake, detail: "blocked in the deadlock"),
            ],
            evidence: [EvidenceEvent(time: t0 + 1_200_000, pid: m, tid: m, seq: 16, kind: "queue.get-wait", object: results, stack: 0)],
            stacks: [Stack(label: "MainProcess (pid 1000) blocked in get on 'results'", pid: m, tid: m, frames: [
                queueGetFrame, userFrame("main", "main.swift", 12, 0x1500),
            ])],
            explanation: "The main process waits for a result that only Process-1 and Process-2 can put, and both are deadlocked.",
            fix: "Fix the deadlock; give the get a timeout that reports which worker is stuck.",
            fingerprint: "hg-19ab44c0d2e7f650")
        let inversion = Finding(
            kind: .lockOrderInversion, severity: .warning, confidence: .predicted,
            title: "Locks 'C' and 'D' are taken in opposite orders by MainProcess and Process-2/worker",
            participants: [
                Participant(pid: m, tid: m, process: "MainProcess", role: .holds, detail: "acquires 'D' while holding 'C'", object: lockD, objectName: "D"),
                Participant(pid: p2, tid: p2worker, process: "Process-2", thread: "worker", role: .holds, detail: "acquires 'C' while holding 'D'", object: lockC, objectName: "C"),
            ],
            evidence: [
                EvidenceEvent(time: t0 + 710_000, pid: m, tid: m, seq: 13, kind: "lock.acquired", object: lockD, stack: 0),
                EvidenceEvent(time: t0 + 820_000, pid: p2, tid: p2worker, seq: 2, kind: "lock.acquired", object: lockC, stack: 1),
            ],
            stacks: [
                Stack(label: "MainProcess acquires 'D' while holding 'C'", pid: m, tid: m, frames: [lockAcquireFrame, userFrame("main", "main.swift", 17, 0x1600)]),
                Stack(label: "Process-2/worker acquires 'C' while holding 'D'", pid: p2, tid: p2worker, frames: [lockAcquireFrame, userFrame("App.Worker.audit() -> ()", "Worker.swift", 41, 0x3300)]),
            ],
            explanation: "MainProcess took C then D; Process-2's worker thread took D then C. The two sections are not ordered by happens-before and share no gate lock, so another interleaving deadlocks.",
            fix: "Take C before D in Worker.audit(), as main does.",
            why: "different processes, no common lock held, no message or join orders the two sections",
            fingerprint: "lo-5d2c8e11f0a3b7c4")
        let zombie = Finding(
            kind: .zombie, severity: .note, confidence: .actual,
            title: "Process-3 exited with status 0 and was never joined by MainProcess",
            participants: [
                Participant(pid: p3, tid: p3, process: "Process-3", role: .exited, detail: "exited 0"),
                Participant(pid: m, tid: m, process: "MainProcess", role: .parent, detail: "alive, never joined Process-3"),
            ],
            evidence: [EvidenceEvent(time: t0 + 600_000, pid: p3, tid: p3, seq: 1, kind: "proc.exit", object: 0)],
            stacks: [],
            explanation: "Process-3 exited but MainProcess never joined it, so it stayed a zombie until the end of the trace.",
            fix: "Join Process-3 (p.join()) after it finishes.",
            fingerprint: "zb-0f0e0d0c0b0a0908")
        return [zombie, inversion, hang, deadlock]   // deliberately unranked
    }

    static func result(sourceRoot: String? = nil) -> AnalysisResult {
        let m = mainPid
        let report = Report(
            findings: findings(),
            processes: [
                ProcessSummary(pid: m, ppid: 1, name: "MainProcess", executable: "/build/ci/.build/debug/app", end: "running at end of trace", threads: 1, events: 19),
                ProcessSummary(pid: p1, ppid: m, name: "Process-1", executable: "/build/ci/.build/debug/app", end: "running at end of trace", threads: 1, events: 5),
                ProcessSummary(pid: p2, ppid: m, name: "Process-2", executable: "/build/ci/.build/debug/app", end: "running at end of trace", threads: 2, events: 10),
                ProcessSummary(pid: p3, ppid: m, name: "Process-3", executable: "/build/ci/.build/debug/app", end: "exited 0", threads: 1, events: 2),
            ],
            problems: [TraceProblemNote(kind: .truncated, file: "/tmp/trace/1001-5000.jsonl.lz4", detail: "no end mark: the process was killed while blocked")],
            ruledOut: [RuledOut(kind: .lockOrderInversion, detail: "A→B in MainProcess vs B→A in Process-2 before spawn", reason: .happensBefore)],
            stats: AnalysisStats(files: 4, processes: 4, threads: 5, events: 36, objects: 10))
        let ctx = ExportContext(
            events: events(),
            processNames: [m: "MainProcess", p1: "Process-1", p2: "Process-2", p3: "Process-3"],
            threadNames: [p2worker: "worker"],
            objectNames: [lockA: "A", lockB: "B", tasks: "tasks", results: "results", lockC: "C", lockD: "D"],
            waitFor: [
                GraphEdge(from: "t1001", fromLabel: "Process-1", to: "t1002", toLabel: "Process-2", label: "lock 'B'", highlighted: true),
                GraphEdge(from: "t1002", fromLabel: "Process-2", to: "t1001", toLabel: "Process-1", label: "lock 'A'", highlighted: true),
                GraphEdge(from: "t1000", fromLabel: "MainProcess", to: "t1001", toLabel: "Process-1", label: "get 'results' (could wake)"),
                GraphEdge(from: "t1000", fromLabel: "MainProcess", to: "t1002", toLabel: "Process-2", label: "get 'results' (could wake)"),
            ],
            lockOrder: [
                GraphEdge(from: "A", fromLabel: "lock 'A'", to: "B", toLabel: "lock 'B'", label: "Process-1", highlighted: true),
                GraphEdge(from: "B", fromLabel: "lock 'B'", to: "A", toLabel: "lock 'A'", label: "Process-2", highlighted: true),
                GraphEdge(from: "C", fromLabel: "lock 'C'", to: "D", toLabel: "lock 'D'", label: "MainProcess", highlighted: true),
                GraphEdge(from: "D", fromLabel: "lock 'D'", to: "C", toLabel: "lock 'C'", label: "Process-2/worker", highlighted: true),
            ],
            sourceRoots: sourceRoot.map { [$0] } ?? [])
        return AnalysisResult(report: report, context: ctx)
    }

    /// A large result: `n` copies of the fixture findings (distinct fingerprints) and `k` rounds of
    /// put/get traffic, to exercise the LLM budget.
    static func big(copies n: Int, rounds k: Int, sourceRoot: String?) -> AnalysisResult {
        var r = result(sourceRoot: sourceRoot)
        let base = r.report.findings
        var all: [Finding] = []
        for i in 0..<n {
            for f in base {
                var g = f
                g.fingerprint += "-\(i)"
                g.title += " (copy \(i))"
                all.append(g)
            }
        }
        r.report.findings = all
        var evs = r.context.events
        var seq: UInt64 = 10_000
        for i in 0..<UInt64(k) {
            let t = t0 + 2_000_000 + i * 1000
            evs.append(TraceEvent(time: t, pid: mainPid, tid: mainPid, seq: seq, kind: .queuePut, object: tasks, a: oid(1000 + i), b: 8))
            evs.append(TraceEvent(time: t + 500, pid: p1, tid: p1, seq: seq, kind: .queueGet, object: tasks, a: oid(1000 + i), b: 8))
            seq += 1
        }
        r.context.events = evs
        return r
    }
}
