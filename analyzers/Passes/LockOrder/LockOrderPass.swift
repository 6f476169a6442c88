import TangleTraceFormat

/// Stack identity across processes of one binary: module path + offset of every frame (addresses
/// move with ASLR, offsets do not). Used to group sections into patterns ("same stacks").
final class StackSignatures {
    private let model: TraceModel
    private var cache: [UInt64: UInt64] = [:]

    init(model: TraceModel) { self.model = model }

    func signature(_ key: UInt64) -> UInt64 {
        if key == 0 { return 0 }
        if let s = cache[key] { return s }
        let pid = Int32(bitPattern: UInt32(truncatingIfNeeded: key >> 32))
        let id = UInt32(truncatingIfNeeded: key)
        var h = FNV1a.offsetBasis
        func mix(_ v: UInt64) { FNV1a.mix(&h, v) }
        let modules = model.processes[pid]?.header?.modules ?? []
        for pc in model.stacks[pid]?[id] ?? [] {
            if let m = modules.first(where: { pc >= $0.low && pc < $0.high }) {
                mix(FNV1a.hash(m.path))
                mix(pc &- m.bias)
            } else {
                mix(pc)
            }
        }
        cache[key] = h
        return h
    }
}

extension TraceModel {
    /// How many other thread combinations a finding lists (all are counted up to the budget).
    static let listedCombinations = 5
    static let patternCombinationLimit = 64

    /// The lock-order pass (predicted inversions of any length) and the hold-and-wait pass: every
    /// candidate is reported or ruled out with a reason; every bound that stopped the work is
    /// written into the problems.
    func runLockOrder(actualLocks: [Set<UInt64>]) -> (findings: [RawFinding], ruledOut: [RuledOut]) {
        var findings: [RawFinding] = []
        var ruled: [RuledOut] = []
        var ruledSeen: Set<String> = []
        let graph = lockOrder
        let search = CycleSearch(graph: graph)
        if graph.allEdges.count > LockOrderGraph.exportLimit {
            graph.exportOnly = search.cyclicEdges.sorted().map { graph.allEdges[$0] }
            noteProblem(TraceProblemNote(
                kind: .analysisBound,
                detail: "lock order: the graph has \(graph.allEdges.count) edges; the graph views (dot, HTML) show only the \(search.cyclicEdges.count) on cycles (the analysis used all of them)"))
        }
        let signatures = StackSignatures(model: self)
        var spent = 0
        var reported: Set<[UInt64]> = []
        // Edges of reported cycles: a longer cycle through one of them is the same inversion seen
        // from further away (in a dense order every path back closes one), not reported again.
        var covered: Set<Int> = []
        // 1. Every pair of locks taken in both orders: exact, linear in the edges.
        for ei in search.cyclicEdges {
            let e = graph.allEdges[ei]
            guard e.from < e.to, let ri = graph.edgeIndex(e.to, e.from) else { continue }
            let r = graph.allEdges[ri]
            let ws = WitnessSearch(chains: [e.chains.chains, r.chains.chains], budget: 100_000).enumerate(limit: 1)
            guard let w = ws.witnesses.first else { continue }
            covered.insert(ei)
            covered.insert(ri)
            reported.insert(Self.canonical([e.from, e.to]))
            if actualLocks.contains(where: { $0.contains(e.from) && $0.contains(e.to) }) {
                ruled.append(RuledOut(kind: .lockOrderInversion, detail: "lock order \(cycleWords([e.from, e.to]))", reason: .reportedAsActual))
                continue
            }
            findings += patternFindings(cycle: [e, r], witness: w, signatures: signatures)
        }
        // 2. Longer cycles, through each anchor not already explained.
        for anchor in search.anchors() where !covered.contains(anchor) {
            let outcome = search.search(anchor: anchor, budget: CycleSearch.budget(spent: spent))
            spent += outcome.steps
            guard let cycle = outcome.cycle else {
                let structural = search.shortestCycle(through: anchor)
                let words = cycleWords(structural.map { graph.allEdges[$0].from })
                if let length = outcome.stoppedAt {
                    let e = graph.allEdges[anchor]
                    noteProblem(TraceProblemNote(
                        kind: .analysisBound,
                        detail: "lock order: the search for a deadlock cycle through \(objectLabel(e.from)) → \(objectLabel(e.to)) stopped after \(outcome.steps) steps at cycles of \(length) locks (component of \(search.sizeOfComponent(containing: e.from)) locks); cycles of \(length) or more locks through this edge were not all examined, so it is neither reported nor ruled out"))
                    continue
                }
                let locks = Set(structural.map { graph.allEdges[$0].from })
                let (reason, text): (RuledOutReason, String)
                if actualLocks.contains(where: { locks.isSubset(of: $0) }) {
                    (reason, text) = (.reportedAsActual, "the same locks already deadlocked in this run")
                } else {
                    (reason, text) = Self.ruledOutReason(outcome.reasons)
                }
                if ruledSeen.insert(words + reason.rawValue).inserted {
                    ruled.append(RuledOut(kind: .lockOrderInversion, detail: "lock order \(words): \(text)", reason: reason))
                }
                continue
            }
            let locks = cycle.map { graph.allEdges[$0].from }
            if cycle.contains(where: { covered.contains($0) }) { continue }
            guard reported.insert(Self.canonical(locks)).inserted else { continue }
            covered.formUnion(cycle)
            if actualLocks.contains(where: { Set(locks).isSubset(of: $0) }) {
                let words = cycleWords(locks)
                if ruledSeen.insert(words + "actual").inserted {
                    ruled.append(RuledOut(kind: .lockOrderInversion, detail: "lock order \(words)", reason: .reportedAsActual))
                }
                continue
            }
            findings += patternFindings(cycle: cycle.map { graph.allEdges[$0] }, witness: outcome.witness, signatures: signatures)
        }
        let all = graph.allEdges
        for i in all.indices {  // (by index: an edge is a large value)
            let thinned = all[i].chains.thinned
            if thinned > 0 {
                let e = all[i]
                noteProblem(TraceProblemNote(
                    kind: .analysisBound,
                    detail: "lock order: \(thinned) sections of \(objectLabel(e.from)) → \(objectLabel(e.to)) were dropped (more than \(SectionChain.cap) per thread, each after a new synchronisation; the first and latest are kept); an inversion needing one of them is missed"))
            }
        }
        let hw = runHoldAndWait(actualLocks: actualLocks)
        return (findings + hw.findings, ruled + hw.ruledOut)
    }

    func cycleWords(_ locks: [UInt64]) -> String {
        (locks + [locks[0]]).map { objectLabel($0) }.joined(separator: " → ")
    }

    /// The rotation starting at the smallest lock.
    static func canonical(_ locks: [UInt64]) -> [UInt64] {
        guard let m = locks.indices.min(by: { locks[$0] < locks[$1] }) else { return locks }
        return Array(locks[m...] + locks[..<m])
    }

    static func ruledOutReason(_ reasons: [Incompatibility: Int]) -> (RuledOutReason, String) {
        if reasons[.happensBefore, default: 0] > 0 {
            return (.happensBefore, "the sections are ordered by happens-before (spawn/join, a message, an event): they can never overlap")
        }
        if reasons[.gateLock, default: 0] > 0 {
            return (.gateLock, "the threads always held a common gate lock while taking these locks, so only one of them can be inside at a time")
        }
        return (.singleThread, "every edge of the cycle comes from the same thread, which cannot deadlock with itself this way")
    }

    /// One finding per stack pattern of the cycle that has a witness.
    private func patternFindings(cycle: [LockEdge], witness: [ChosenSection], signatures: StackSignatures) -> [RawFinding] {
        // Per edge, its chains grouped by (outer stack, inner stack) signature, in first-seen order.
        var groups: [[[SectionChain]]] = []
        for edge in cycle {
            var order: [[UInt64]] = []
            var byKey: [[UInt64]: [SectionChain]] = [:]
            for c in edge.chains.chains {
                let k = [signatures.signature(c.outerStack), signatures.signature(c.innerStack)]
                if byKey[k] == nil { order.append(k) }
                byKey[k, default: []].append(c)
            }
            groups.append(order.map { byKey[$0]! })
        }
        var total = 1
        for g in groups { total = total.multipliedReportingOverflow(by: g.count).overflow ? Int.max : total * g.count }
        if total > Self.patternCombinationLimit {
            noteProblem(TraceProblemNote(
                kind: .analysisBound,
                detail: "lock order \(cycleWords(cycle.map(\.from))): \(total == Int.max ? "too many" : String(total)) combinations of code locations (stack patterns); the first \(Self.patternCombinationLimit) were examined, a deadlock only between the others is reported through them or not at all"))
        }
        var out: [RawFinding] = []
        var combo = [Int](repeating: 0, count: groups.count)
        var examined = 0
        while examined < min(total, Self.patternCombinationLimit) {
            examined += 1
            let chains = zip(groups, combo).map { $0[$1] }
            let ws = WitnessSearch(chains: chains, budget: 200_000).enumerate(limit: 1000)
            if let first = ws.witnesses.first {
                out.append(inversionFinding(edges: cycle, instances: first, others: Array(ws.witnesses.dropFirst()),
                                            complete: ws.complete))
            }
            // Next combination (odometer).
            var k = groups.count - 1
            while k >= 0 {
                combo[k] += 1
                if combo[k] < groups[k].count { break }
                combo[k] = 0
                k -= 1
            }
            if k < 0 { break }
        }
        if out.isEmpty {
            out.append(inversionFinding(edges: cycle, instances: witness, others: [], complete: false))
        }
        return out
    }

    private func inversionFinding(edges: [LockEdge], instances: [ChosenSection], others: [[ChosenSection]], complete: Bool) -> RawFinding {
        var participants: [RawParticipant] = []
        var evidence: [(TraceEvent, String?)] = []
        var lines: [String] = []
        var gateWords: [String] = []
        for (edge, inst) in zip(edges, instances) {
            let t = threads[inst.thread]
            let a = objectLabel(edge.from), b = objectLabel(edge.to)
            var p = RawParticipant(pid: t.pid, tid: t.tid, role: .acquires, detail: "takes \(b) while holding \(a)",
                                   object: edge.to, stackEvent: inst.inner)
            p.outerEvent = inst.outer
            participants.append(p)
            evidence.append((inst.outer, "\(who(t)) takes \(a)"))
            evidence.append((inst.inner, "\(who(t)) takes \(b) while holding \(a)"))
            lines.append("\(who(t)) takes \(b) while holding \(a).")
            gateWords.append(inst.gates.isEmpty ? "\(who(t)) held nothing else" : "\(who(t)) also held \(inst.gates.array.map { objectLabel($0) }.joined(separator: ", "))")
        }
        let locks = edges.map(\.from)
        let lockWords = cycleWords(locks)
        var why = "the edges come from different threads (\(Set(instances.map(\.thread)).count)); no common gate lock (\(gateWords.joined(separator: "; "))); the sections are not ordered by happens-before (no spawn/join, message or event orders them)"
        why += combinationWords(others, complete: complete, title: lockWords)
        var f = RawFinding(
            kind: .lockOrderInversion, severity: .warning, confidence: .predicted,
            title: "lock-order inversion: \(lockWords)",
            participants: participants, evidence: dedupeEvidence(evidence),
            explanation: lines.joined(separator: " ") + (edges.count == 2
                ? " The locks are taken in opposite orders by different threads."
                : " The \(edges.count) locks are taken in a circular order by \(edges.count) different threads.")
                + " This run did not deadlock, but if each thread takes its first lock before the next one takes its second, each waits for the next forever.",
            fix: "Pick one global order for \(locks.map { objectLabel($0) }.joined(separator: ", ")) and take them in that order everywhere (or take them together under one lock).",
            why: why)
        f.fingerprintExtra = locks.map { objectRole($0) }.sorted()
        f.locks = Set(locks)
        f.highlight = Set(edges.map { "l:\($0.from)->l:\($0.to)" })
        return f
    }

    /// "; other thread combinations that also qualify (N): …" — listed up to a few, all counted.
    func combinationWords(_ others: [[ChosenSection]], complete: Bool, title: String) -> String {
        if others.isEmpty && complete { return "; no other thread combination qualifies" }
        if !complete {
            noteProblem(TraceProblemNote(
                kind: .analysisBound,
                detail: "\(title): the other thread combinations that qualify were counted up to \(others.count) (search budget); there may be more"))
        }
        let listed = others.prefix(Self.listedCombinations).map { w in
            w.map { who(threads[$0.thread]) }.joined(separator: " with ")
        }
        let count = complete ? "\(others.count)" : "at least \(others.count)"
        var s = "; other thread combinations that also qualify (\(count)): " + listed.joined(separator: "; ")
        if others.count > listed.count { s += "; …" }
        return s
    }
}
