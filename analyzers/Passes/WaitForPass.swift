import TangleTraceFormat

/// A deadlock or hang seen at a quiescent point (every live thread blocked), kept until the end of
/// the trace says whether it was real: refuted when a member's wait later completes normally
/// (something did wake it), confirmed when at least one member never completed (it was killed or
/// is still blocked) and the others only timed out.
struct WaitCandidate {
    var finding: RawFinding
    var waitKeys: Set<UInt64>
    var members: Set<Int>
    var refuted = false
    var completedMembers: Set<Int> = []
    /// The wait-for edges of its members at that point (for the exporters' graph).
    var edges: [GraphEdge] = []

    mutating func completed(thread: Int, ok: Bool) {
        if ok { refuted = true }
        completedMembers.insert(thread)
    }

    var confirmed: Bool { !refuted && completedMembers.count < members.count }
}

/// The wait-for pass: at every quiescent point the model reports (every live thread blocked) it
/// solves the wait-for graph (`WaitForAnalysis`) and keeps what it finds as candidates, confirmed or
/// refuted by how the waits end (the model tells it); at the end it solves the graph once more.
/// Findings are built here, in the words of `WaitCauses`.
final class WaitForPass {
    unowned let model: TraceModel
    /// Self-deadlocks are the misuse rules' (reported when the wait happens).
    let misuse: MisuseRules
    /// Hang/deadlock candidates seen at quiescent points.
    private(set) var candidates: [WaitCandidate] = []
    private var candidateWaits: [UInt64: [Int]] = [:]
    private(set) var quiescentAnalyses = 0
    /// The wait-for graph of the end of the trace (for exporters).
    private(set) var lastWaitFor: WaitForAnalysis?

    init(model: TraceModel, misuse: MisuseRules) {
        self.model = model
        self.misuse = misuse
    }

    /// The model ended the wait `key` of `thread`; `woken` false for a timeout or a kill.
    func waitEnded(_ key: UInt64, thread: Int, woken: Bool) {
        guard let list = candidateWaits[key] else { return }
        for ci in list { candidates[ci].completed(thread: thread, ok: woken) }
    }

    private func grow(_ k: Int, _ f: RawFinding, members: Set<Int>, edges: [GraphEdge]) {
        for key in f.waitKeys.subtracting(candidates[k].waitKeys) { candidateWaits[key, default: []].append(k) }
        candidates[k].finding = f
        candidates[k].waitKeys = f.waitKeys
        candidates[k].members = members
        candidates[k].edges = edges
    }

    /// `a` and `b` describe overlapping stuck groups: one finding with the members and evidence of
    /// both, titled by the one with more waiting members.
    static func merged(_ a: RawFinding, _ b: RawFinding) -> RawFinding {
        let waiters = { (f: RawFinding) in f.participants.filter { $0.role == .waits }.count }
        var (base, other) = waiters(b) >= waiters(a) ? (b, a) : (a, b)
        for p in other.participants where !base.participants.contains(where: { $0.pid == p.pid && $0.tid == p.tid && $0.role == p.role }) {
            base.participants.append(p)
        }
        base.evidence = dedupeEvidence(base.evidence + other.evidence)
        base.waitKeys.formUnion(other.waitKeys)
        base.subjects.formUnion(other.subjects)
        base.highlight.formUnion(other.highlight)
        base.locks.formUnion(other.locks)
        return base
    }

    private func registerCandidate(_ c: WaitCandidate) {
        let i = candidates.count
        candidates.append(c)
        for k in c.waitKeys { candidateWaits[k, default: []].append(i) }
    }

    /// Runs the wait-for pass now. At a quiescent point the results become candidates; at the end
    /// they are findings (unless a confirmed candidate already covers the same waits).
    /// The end of the trace: the candidates that were confirmed, then what the end state shows
    /// (the same waits are reported once: `Subsumption.sameWaits`).
    func finish() -> [RawFinding] {
        var out: [RawFinding] = candidates.filter(\.confirmed).map(\.finding)
        var unused: WaitForAnalysis?
        for f in runWaitFor(atEnd: true, keep: &unused) {
            guard let k = out.firstIndex(where: { !$0.waitKeys.isDisjoint(with: f.waitKeys) }) else {
                out.append(f)
                continue
            }
            // The group changed after the last quiescent point (a thread blocked behind it when
            // no other wait began; a member's process ended around it): one finding with every
            // member seen, in the words of the larger picture.
            if !f.waitKeys.isSubset(of: out[k].waitKeys) { out[k] = Self.merged(out[k], f) }
        }
        return out
    }

    /// The wait-for graph's edges for the exporters: the end state's and those of the candidates
    /// confirmed at quiescent points (often the only picture: a timeout runner's SIGTERM ends every
    /// wait before the end).
    func graphEdges() -> [GraphEdge] {
        var edges: [GraphEdge] = lastWaitFor.map { waitForEdges($0) } ?? []
        for c in candidates where c.confirmed { edges += c.edges }
        return edges
    }

    func runWaitFor(atEnd: Bool, keep: inout WaitForAnalysis?) -> [RawFinding] {
        var analysis = WaitForAnalysis(model: model, atEnd: atEnd)
        analysis.solve()
        keep = analysis
        if atEnd { lastWaitFor = analysis }
        var out: [RawFinding] = []
        for group in analysis.groups() {
            if let f = waitFinding(group, analysis) { out.append(f) }
        }
        return out
    }

    func quiescentPoint() {
        quiescentAnalyses += 1
        var analysis: WaitForAnalysis?
        for f in runWaitFor(atEnd: false, keep: &analysis) {
            let members = Set(f.participants.filter { $0.role == .waits }.compactMap { model.thread(pid: $0.pid, tid: $0.tid)?.index })
            let edges = analysis.map { waitForEdges($0, only: members) } ?? []
            if let k = candidates.firstIndex(where: { !$0.refuted && !$0.waitKeys.isDisjoint(with: f.waitKeys) }) {
                // The same stuck group seen again, grown (a thread that blocked behind it since):
                // the candidate takes the larger picture.
                if !f.waitKeys.isSubset(of: candidates[k].waitKeys) {
                    grow(k, Self.merged(candidates[k].finding, f), members: members.union(candidates[k].members), edges: candidates[k].edges + edges)
                }
                continue
            }
            var c = WaitCandidate(finding: f, waitKeys: f.waitKeys, members: members)
            c.edges = edges
            registerCandidate(c)
        }
    }

    /// The wait-for graph as exporter edges (`only`: the waits of these threads).
    func waitForEdges(_ a: WaitForAnalysis, only: Set<Int>? = nil) -> [GraphEdge] {
        var out: [GraphEdge] = []
        for (i, n) in a.nodes.sorted(by: { $0.key < $1.key }) where only?.contains(i) ?? true {
            let t = model.threads[i]
            let from = "t:\(t.pid):\(t.tid)"
            for w in n.wakers {
                let to: String, toLabel: String
                switch w {
                case .thread(let j):
                    let o = model.threads[j]
                    to = "t:\(o.pid):\(o.tid)"
                    toLabel = model.who(o)
                case .process(let pid):
                    // A process is drawn as its threads (one node per thread, so a cycle through
                    // a join is drawn as a cycle): the edges go to its blocked threads, else to
                    // its main thread.
                    let targets = processTargets(pid, a, excluding: i)
                    if targets.isEmpty {
                        if pid == t.pid { continue }
                        to = "p:\(pid)"
                        toLabel = model.whoProcess(pid)
                    } else {
                        for j in targets {
                            let o = model.threads[j]
                            out.append(GraphEdge(from: from, fromLabel: model.who(t), to: "t:\(o.pid):\(o.tid)", toLabel: model.who(o),
                                                 label: model.describeWait(n.wait.event)))
                        }
                        continue
                    }
                }
                out.append(GraphEdge(from: from, fromLabel: model.who(t), to: to, toLabel: toLabel,
                                     label: model.describeWait(n.wait.event)))
            }
            for pid in n.exitedWakers {
                let end = model.processes[pid].map { model.endDescription($0) } ?? "ended"
                if let j = processTargets(pid, a, excluding: i, blockedFirst: false).first {
                    let o = model.threads[j]
                    out.append(GraphEdge(from: from, fromLabel: model.who(t), to: "t:\(o.pid):\(o.tid)", toLabel: model.who(o),
                                         label: "could have woken it (\(end)): " + model.describeWait(n.wait.event)))
                    continue
                }
                out.append(GraphEdge(from: from, fromLabel: model.who(t), to: "p:\(pid)",
                                     toLabel: model.whoProcess(pid) + " (" + end + ")",
                                     label: "could have woken it: " + model.describeWait(n.wait.event)))
            }
        }
        return out
    }

    /// The threads that stand for process `pid` in the graph: its blocked threads (`blockedFirst`),
    /// else its main thread (tid == pid, else the first one seen); never thread `excluding`.
    private func processTargets(_ pid: Int32, _ a: WaitForAnalysis, excluding: Int, blockedFirst: Bool = true) -> [Int] {
        guard let threads = model.processes[pid]?.threads.filter({ $0 != excluding }), !threads.isEmpty else { return [] }
        if blockedFirst {
            let blocked = threads.filter { a.nodes[$0] != nil }
            if !blocked.isEmpty { return blocked }
        }
        let main = threads.first { model.threads[$0].tid == pid } ?? threads[0]
        return [main]
    }

    private func waitKeyOf(_ i: Int) -> UInt64 {
        TraceModel.waitKey(i, model.threads[i].wait?.event.seq ?? 0)
    }

    // swiftlint:disable:next function_body_length cyclomatic_complexity
    private func waitFinding(_ group: [Int], _ a: WaitForAnalysis) -> RawFinding? {
        let keys = Set(group.map { waitKeyOf($0) })
        // A self-deadlock alone is the misuse rule's finding (made when the wait happened); the
        // threads blocked behind it are reported here, the self-deadlocked thread among them.
        let selfDeadlocked = misuse.findings.filter { $0.kind == .selfDeadlock }.reduce(into: Set<UInt64>()) { $0.formUnion($1.waitKeys) }
        if keys.isSubset(of: selfDeadlocked) { return nil }
        let cyc = a.cycle(in: group)
        let order = (cyc ?? []) + group.filter { !(cyc ?? []).contains($0) }
        var participants: [RawParticipant] = []
        var evidence: [(TraceEvent, String?)] = []
        var lines: [String] = []
        var locks: Set<UInt64> = []
        var objectsInvolved: [UInt64] = []
        var highlight: Set<String> = []
        var addedHelpers: Set<String> = []
        var missingTaskDone: (ObjectState, [Int32])?

        for i in order {
            let t = model.threads[i]
            guard let n = a.nodes[i] else { continue }
            let e = n.wait.event
            let what = model.describeWait(e)
            participants.append(RawParticipant(pid: t.pid, tid: t.tid, role: .waits, detail: what, object: e.object,
                                               stackEvent: e))
            evidence.append((e, "\(model.who(t)) blocks: \(what)"))
            if e.object != 0 && !objectsInvolved.contains(e.object) && e.kind != .processJoinWait && e.kind != .threadJoinWait {
                objectsInvolved.append(e.object)
            }
            var why: [String] = []
            for w in n.wakers {
                let label: String
                switch w {
                case .thread(let j):
                    let o = model.threads[j]
                    highlight.insert("t:\(t.pid):\(t.tid)->t:\(o.pid):\(o.tid)")
                    if let ow = o.wait {
                        label = "\(model.who(o)) is itself blocked in \(model.describeWait(ow.event))"
                    } else {
                        label = "\(model.who(o)) cannot proceed"
                    }
                    if e.kind == .lockWait, let lo = model.objects[e.object] {
                        locks.insert(lo.id)
                        if let acq = lo.ownerEvent {
                            evidence.append((acq, "\(model.who(o)) holds \(model.objectLabel(lo.id))"))
                            if addedHelpers.insert("holds:\(j):\(lo.id)").inserted && !order.contains(j) {
                                participants.append(RawParticipant(pid: o.pid, tid: o.tid, role: .holds,
                                                                   detail: "holds \(model.objectLabel(lo.id))", object: lo.id,
                                                                   stackEvent: acq))
                            }
                        }
                    }
                case .process(let pid):
                    highlight.insert("t:\(t.pid):\(t.tid)->p:\(pid)")
                    for j in processTargets(pid, a, excluding: i) {  // (the graph draws the process as these threads)
                        highlight.insert("t:\(t.pid):\(t.tid)->t:\(model.threads[j].pid):\(model.threads[j].tid)")
                    }
                    let blocked = a.stuckThreads(of: w).filter { $0 != i }
                    if pid == t.pid && blocked.isEmpty {
                        // Only the waiter itself is left in its process: nothing to say (the
                        // pipe note covers the case where that matters).
                        continue
                    } else if let j = blocked.first, let ow = model.threads[j].wait {
                        label = "\(model.whoProcess(pid)) is itself blocked in \(model.describeWait(ow.event))"
                    } else {
                        label = "\(model.whoProcess(pid)) cannot proceed"
                    }
                    if pid != t.pid && addedHelpers.insert("p:\(pid)").inserted && !order.contains(where: { model.threads[$0].pid == pid }) {
                        participants.append(RawParticipant(pid: pid, tid: pid, role: .couldWake, detail: label, core: false))
                    }
                }
                why.append(label)
            }
            for pid in n.exitedWakers {
                guard let p = model.processes[pid] else { continue }
                let label = "\(model.whoProcess(pid)) \(model.endDescription(p))"
                why.append(label)
                highlight.insert("t:\(t.pid):\(t.tid)->p:\(pid)")
                for j in processTargets(pid, a, excluding: i, blockedFirst: false).prefix(1) {
                    highlight.insert("t:\(t.pid):\(t.tid)->t:\(model.threads[j].pid):\(model.threads[j].tid)")
                }
                if addedHelpers.insert("p:\(pid)").inserted {
                    var did = ""
                    if let o = model.objects[e.object] {
                        if o.kind.isQueue && o.putters.contains(pid) { did = " after putting on \(model.objectLabel(o.id))" }
                        else if o.kind == .pipe && o.senders[1 - n.wait.end].contains(pid) { did = " after sending on \(model.objectLabel(o.id))" }
                        else { did = "; it held \(model.objectLabel(o.id))" }
                    }
                    participants.append(RawParticipant(pid: pid, tid: pid, role: .exited, detail: model.endDescription(p) + did, object: e.object, core: false))
                    if let end = p.exit ?? p.joinDone ?? p.signalled { evidence.append((end, "\(model.whoProcess(pid)) \(model.endDescription(p))")) }
                }
            }
            if let note = n.note { why.insert(note, at: 0) }
            var line = "\(model.who(t)) waits for \(what)"
            if why.isEmpty {
                line += "; no live thread or process holds a handle that could end this wait"
            } else {
                line += "; " + why.joined(separator: "; ")
            }
            lines.append(line + ".")

            if e.kind == .queueJoinWait, let o = model.objects[e.object], o.pendingCount == 0, o.gets > o.taskDones {
                let culprits = o.users.filter { $0.gets > $0.taskDones }.map(\.pid).sorted()
                missingTaskDone = (o, culprits)
            }
        }
        let causes = waitCauses(group, cycle: cyc, a)
        let fix = causes.map { $0.fix(model) }.joined(separator: " ")
        let causeWords = causes.map { $0.words(model) }.joined(separator: "; ")
        let objNames = objectsInvolved.map { model.objectLabel($0) }
        let objList = objNames.count > 5
            ? objNames.prefix(4).joined(separator: ", ") + " and \(objNames.count - 4) more"
            : objNames.joined(separator: ", ")

        var f: RawFinding
        if let (q, culprits) = missingTaskDone {
            let obj = model.objectLabel(q.id)
            var parts = participants
            for pid in culprits where !parts.contains(where: { $0.pid == pid && $0.role == .forgotTaskDone }) {
                let n = q.gets(of: pid) - q.taskDones(of: pid)
                parts.append(RawParticipant(pid: pid, tid: pid, role: .forgotTaskDone,
                                            detail: "got \(q.gets(of: pid)) item(s), marked \(q.taskDones(of: pid)) done (\(n) missing)",
                                            object: q.id, stackEvent: q.lastGet(of: pid)))
                if let g = q.lastGet(of: pid) { evidence.append((g, "\(model.whoProcess(pid)) gets an item it never marks done")) }
            }
            f = RawFinding(
                kind: .missingTaskDone, severity: .error,
                title: "\(obj).join() waits forever: \(q.gets - q.taskDones) item(s) got but never marked done",
                participants: parts, evidence: evidence,
                explanation: "\(lines.joined(separator: " ")) \(obj) counts unfinished tasks: every put adds one, every task_done() removes one, and join() returns at zero. \(q.puts) item(s) were put and all were got, but only \(q.taskDones) task_done() call(s) were made, so the count never reaches zero.",
                fix: "Call task_done() once for every get() (put it in a `defer` right after the get, so errors and early exits also mark the item done).")
            f.fingerprintExtra = ["missing-task-done", model.objectRole(q.id)]
        } else if let cyc, cyc.count >= 1 {
            // Every member of the stuck group counts, not only the first cycle found in it.
            let ring = a.cyclicMembers(in: group)
            let lockOnly = ring.allSatisfy { model.threads[$0].wait?.event.kind == .lockWait }
            let n = max(ring.count, cyc.count)
            let behind = group.count - n
            let title = (lockOnly
                ? "\(n) threads each wait for a lock another holds (\(objList))"
                : "\(n) threads wait for each other: \(causeWords)")
                + (behind > 0 ? "; \(behind) more blocked behind them" : "")
            f = RawFinding(
                kind: .deadlock, severity: .error, title: title,
                participants: participants, evidence: evidence,
                explanation: "These \(group.count) threads are blocked on each other: each waits for something only another blocked member can provide, so none will ever proceed. " + lines.joined(separator: " "),
                fix: fix)
            f.why = a.atEnd ? "blocked at the end of the trace" : "every live thread was blocked and the waits never completed"
        } else {
            // Name the root wait in the title, in the primitive's own terms: one that no other
            // member can end (what the rest are blocked behind), not a join if there is a choice.
            let isJoin: (Int) -> Bool = { [.processJoinWait, .threadJoinWait, .poolResultWait, .poolJoinWait].contains(self.model.threads[$0].wait?.event.kind) }
            let members = Set(group)
            let isSink: (Int) -> Bool = { i in
                !(a.nodes[i]?.wakers ?? []).flatMap { a.stuckThreads(of: $0) }.contains { $0 != i && members.contains($0) }
            }
            let root = order.first { isSink($0) && !isJoin($0) } ?? order.first { !isJoin($0) } ?? order[0]
            let rootWhat = model.threads[root].wait.map { model.describeWait($0.event) } ?? "a wait"
            let rootObject = model.threads[root].wait?.event.object
            let peers = group.filter { $0 != root && model.threads[$0].wait?.event.object == rootObject }.count
            let behind = group.count - 1 - peers
            f = RawFinding(
                kind: .hang, severity: .error,
                title: "\(model.who(model.threads[root])) waits forever (\(rootWhat)): \(causeWords)"
                    + (peers > 0 ? "; \(peers) more wait on it" : "") + (behind > 0 ? "; \(behind) more blocked behind" : ""),
                participants: participants, evidence: evidence,
                explanation: "Every thread or process that could end these waits has exited or is itself blocked, so they will never return. " + lines.joined(separator: " "),
                fix: fix)
            f.why = a.atEnd ? "blocked at the end of the trace" : "every live thread was blocked and the waits never completed"
        }
        f.locks = locks
        f.waitKeys = keys
        f.highlight = highlight
        f.fingerprintExtra += objectsInvolved.map { model.objectRole($0) }.sorted()
        f.subjects = Set(objectsInvolved)
        evidence.sort { ($0.0.time, $0.0.pid, $0.0.tid, $0.0.seq) < ($1.0.time, $1.0.pid, $1.0.tid, $1.0.seq) }
        f.evidence = dedupeEvidence(f.evidence)
        return f
    }
}
