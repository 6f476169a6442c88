// The comparison: the analyzer's report against the interpreter's ground truth. Predicted
// findings (lock order) are not judged here. Lifecycle findings are judged only when the program
// ended by itself: in a program the harness stopped they are consequences of the stop.

/// One finding of `tangle analyze --format json`, as far as the comparison needs it.
struct ReportFinding {
    struct Participant { var pid: Int32; var thread: String; var process: String; var role: String; var object: UInt64 }
    var kind: String
    var confidence: String
    var title: String
    var participants: [Participant]
    /// Objects of the participants and the evidence.
    var objects: Set<UInt64>

    init(_ j: JSON) {
        kind = j["kind"]?.string ?? "?"
        confidence = j["confidence"]?.string ?? "?"
        title = j["title"]?.string ?? ""
        participants = (j["participants"]?.array ?? []).map {
            Participant(pid: Int32($0["pid"]?.number ?? -1), thread: $0["thread"]?.string ?? "",
                        process: $0["process"]?.string ?? "", role: $0["role"]?.string ?? "",
                        object: $0["object"]?.uint64 ?? 0)
        }
        var objs = Set(participants.map(\.object))
        for e in j["evidence"]?.array ?? [] { if let o = e["object"]?.uint64 { objs.insert(o) } }
        objs.remove(0)
        objects = objs
    }

    var isWaitFinding: Bool { confidence == "actual" && ["deadlock", "hang", "self-deadlock", "missing-task-done"].contains(kind) }
    var isHangOrDeadlock: Bool { confidence == "actual" && ["deadlock", "hang", "self-deadlock"].contains(kind) }

    func waits(_ t: ThreadTruth) -> Participant? {
        participants.first { $0.role == "waits" && $0.pid == t.pid && $0.thread == t.threadName }
    }

    var summary: String {
        let who = participants.map { "\($0.process)/\($0.thread) \($0.role)\($0.object != 0 ? " #\($0.object)" : "")" }
        return "\(kind) (\(confidence)): \(title) [\(who.joined(separator: ", "))]"
    }
}

/// One reason a program's report disagrees with its truth; `kind` groups them into classes.
struct Mismatch {
    var kind: String
    var detail: String
}

enum Compare {
    static func findings(_ r: RunResult) -> [ReportFinding] {
        (r.report?["findings"]?.array ?? []).map(ReportFinding.init)
    }

    /// "P1/T0 op 3 (get Q1)".
    static func describe(_ t: ThreadTruth, _ p: Program) -> String {
        let ops = p.processes[t.ref.process].threads[t.ref.thread].ops
        let op = t.op < ops.count ? " op \(t.op) (\(ops[t.op].text(p)))" : ""
        return "P\(t.ref.process)/\(t.threadName)\(op)"
    }

    /// "get:queue", "join:child-fork", "cond-wait:condition", "close+join:pool", …: the verb of
    /// the op and its primitive, the key of a mismatch class.
    static func opKind(_ t: ThreadTruth, _ p: Program) -> String {
        let ops = p.processes[t.ref.process].threads[t.ref.thread].ops
        guard t.op < ops.count else { return "?" }
        let op = ops[t.op]
        let words = op.text(p).split(separator: " ")
        let verb = words.count > 2 && words[1] == "=" ? String(words[2]) : String(words.first ?? "?")
        let primitive = Coverage.primitive(op, p) ?? op.object.map { p.objects[$0].kind.rawValue } ?? "?"
        return verb + ":" + primitive
    }

    static func compare(_ r: RunResult) -> [Mismatch] {
        guard r.report != nil, let table = r.table else { return [] }
        let p = r.program
        let fs = findings(r)
        var out: [Mismatch] = []

        // A thread still running when its process ended may have taken an item (and counted it)
        // in the moment the process was ending, after its file's last flush: the channels it used
        // have no certain count.
        // So may a thread its process never joins, even one that finished: it ran while its process
        // was exiting, and what it did after the exit's last flush is not in the trace. The
        // objects such threads used (channels, locks) are not judged for what was left at the end,
        // nor is a wait on them (an item such a thread took may be missing from the trace).
        var raced = Set<UInt64>()
        for t in r.threads {
            let process = p.processes[t.ref.process]
            let joined = t.ref.thread == 0 || process.threads.contains { $0.ops.contains { if case .joinThread(t.ref.thread) = $0 { return true } else { return false } } }
            guard t.fate == .gone || !joined else { continue }
            for op in process.threads[t.ref.thread].ops { if let o = op.object { raced.insert(table.objectID(row: o)) } }
        }

        // Waits: every blocked thread is a waiter of an actual finding, on its object.
        for t in r.threads where t.fate == .blocked && !raced.contains(t.object) {
            let named = fs.filter(\.isWaitFinding).compactMap { $0.waits(t) }
            if named.isEmpty {
                let n = fs.filter(\.isWaitFinding).count
                out.append(Mismatch(kind: "blocked-thread-missed:\(opKind(t, p))",
                                    detail: "\(describe(t, p)) is blocked for good (object #\(t.object)) but is in no actual deadlock/hang finding (the report has \(n) actual wait finding(s))"))
            } else if t.object != 0, !named.contains(where: { $0.object == 0 || $0.object == t.object }) {
                out.append(Mismatch(kind: "wrong-object:\(opKind(t, p))",
                                    detail: "\(describe(t, p)) waits on #\(t.object), the finding says #\(named[0].object)"))
            }
        }
        // No actual wait finding names a thread that finished. (A thread still in an op when its
        // process ended is not judged: its wait was cut short, whether it would have ended is unknown.)
        for t in r.threads where t.fate == .finished {
            for f in fs where f.isWaitFinding && f.waits(t) != nil {
                out.append(Mismatch(kind: "finished-thread-reported:\(f.kind)",
                                    detail: "\(f.kind) names P\(t.ref.process)/\(t.threadName) as waiting, but it finished"))
            }
        }
        // A program none of whose threads blocked gets no actual deadlock/hang (pools' workers are
        // not in the truth: judged only without a pool).
        if r.decided && r.blocked.isEmpty && !p.objects.contains(where: { $0.kind == .pool }) {
            for f in fs where f.isHangOrDeadlock && !f.participants.contains(where: { pp in r.threads.contains { $0.pid == pp.pid } && pp.role == "waits" }) {
                out.append(Mismatch(kind: "clean-program-\(f.kind)", detail: "no thread blocked, yet: \(f.summary)"))
            }
        }
        guard r.completed else { return out }

        // Lifecycle, on a program that ended by itself.
        func id(_ o: Int) -> UInt64 { table.objectID(row: o) }
        func ofKind(_ kinds: Set<String>) -> [ReportFinding] { fs.filter { kinds.contains($0.kind) } }
        func lifecycle(_ kind: String, expected: Set<UInt64>, judged: Set<UInt64>, what: (UInt64) -> String) {
            let got = ofKind([kind])
            for o in expected where !got.contains(where: { $0.objects.contains(o) }) {
                out.append(Mismatch(kind: "\(kind)-missing", detail: "\(what(o)): no \(kind) finding"))
            }
            for f in got {
                let objs = f.objects.intersection(judged)
                if !objs.isEmpty && objs.isDisjoint(with: expected) {
                    out.append(Mismatch(kind: "\(kind)-false", detail: "\(f.summary), but nothing of the kind happened"))
                }
            }
        }
        let name = { (o: UInt64) in p.objects.indices.first { id($0) == o }.map { p.objects[$0].name } ?? "#\(o)" }

        // Items never got / messages never received.
        var lost = Set<UInt64>(), channels = Set<UInt64>()
        var undone = Set<UInt64>(), joinables = Set<UInt64>()
        var unread = Set<UInt64>(), pools = Set<UInt64>(), unsure = Set<UInt64>()
        var held = Set<UInt64>(), died = Set<UInt64>(), locks = Set<UInt64>()
        for (o, d) in p.objects.enumerated() {
            let oid = id(o)
            if d.kind.isQueue {
                channels.insert(oid)
                if table.total(row: o, .c0) > table.total(row: o, .c1) { lost.insert(oid) }
            }
            if d.kind == .joinableQueue {
                joinables.insert(oid)
                if table.total(row: o, .c1) > table.total(row: o, .c2) { undone.insert(oid) }
            }
            if d.kind.isPipe {
                channels.insert(oid)
                if table.total(row: o, .c0) > table.total(row: o, .c3) || table.total(row: o, .c1) > table.total(row: o, .c2) { lost.insert(oid) }
            }
            if d.kind == .pool && oid != 0 {
                pools.insert(oid)
                if table.total(row: o, .c0) > 0 { unread.insert(oid) }
                if table.total(row: o, .c1) > 0 { unsure.insert(oid) }
            }
            if d.kind.isLock {
                locks.insert(oid)
                if table.total(row: o, .held) > 0 { held.insert(oid) }
                if table.total(row: o, .ownerDied) > 0 { died.insert(oid) }
            }
        }
        lifecycle("lost-messages", expected: lost.subtracting(raced), judged: channels.subtracting(raced)) { "\(name($0)) kept items/messages nobody received" }
        lifecycle("missing-task-done", expected: undone.subtracting(raced), judged: joinables.subtracting(raced)) { "\(name($0)) had items got without task_done" }
        lifecycle("lost-pool-error", expected: unread, judged: pools.subtracting(unsure)) { _ in "a failed pool result was never read" }
        lifecycle("owner-died", expected: died, judged: locks) { "an acquire of \(name($0)) failed with owner-died" }
        // A lock held at the end: lock-held-at-exit, or owner-died when a survivor then took it.
        // (Not for a lock a thread racing with its process's exit used: see `raced`.)
        for o in held.subtracting(raced) where !ofKind(["lock-held-at-exit", "owner-died"]).contains(where: { $0.objects.contains(o) }) {
            out.append(Mismatch(kind: "lock-held-at-exit-missing", detail: "\(name(o)) was still held when its holder ended: no lock-held-at-exit finding"))
        }
        for f in ofKind(["lock-held-at-exit"]) {
            let objs = f.objects.intersection(locks.subtracting(raced))
            if !objs.isEmpty && objs.isDisjoint(with: held) {
                out.append(Mismatch(kind: "lock-held-at-exit-false", detail: "\(f.summary), but every hold was released"))
            }
        }

        // Children never joined.
        let joinFindings = ofKind(["unjoined-child", "orphan", "zombie"])
        for k in 1..<p.processes.count {
            let pid = table.pid(k)
            guard pid != 0 else { continue }
            let main = ThreadRef(process: 0, thread: 0)
            let started = table.counter(main, row: ProcessRun.childRow(k), .c0) > 0
            let joined = table.counter(main, row: ProcessRun.childRow(k), .c1) > 0
            let named = joinFindings.filter { $0.participants.contains { $0.pid == pid } }
            if started && !joined && named.isEmpty {
                out.append(Mismatch(kind: "unjoined-child-missing", detail: "P\(k) (pid \(pid)) was never joined: no unjoined-child/orphan/zombie finding"))
            }
            if joined {
                for f in named where f.kind != "zombie" {
                    out.append(Mismatch(kind: "\(f.kind)-false", detail: "\(f.summary), but P\(k) was joined"))
                }
            }
        }
        return out
    }
}
