import TangleTrace

/// One observation of "B acquired (or waited for) while A was held" by one thread.
struct LockEdgeInstance {
    var thread: Int
    var pid: Int32
    var tid: Int32
    /// Where the held lock A was taken, and where B was taken (or waited for).
    var outer: TraceEvent
    var inner: TraceEvent
    /// Other locks held at the same time (gate locks), sorted.
    var gates: [UInt64]
    /// The thread's clock when it took A (happens-before without mutex edges).
    var outerClock: VectorClock
    /// The thread's own clock component when it took B.
    var innerOwn: UInt32
}

/// An edge A → B of the lock-order graph with the first and the latest instance per (thread,
/// gate set): enough to test "different threads, no common gate, not ordered" without storing every
/// acquisition.
struct LockEdge {
    var from: UInt64
    var to: UInt64
    var keys: [String] = []
    var instances: [LockEdgeInstance] = []
}

struct LockOrderGraph {
    static let maxInstanceKeysPerEdge = 16
    static let maxCycleLength = 6
    static let maxCycles = 2000

    private(set) var edges: [LockEdge] = []
    private var index: [PairKey: Int] = [:]
    private(set) var adjacency: [UInt64: [Int]] = [:]

    struct PairKey: Hashable {
        var from: UInt64
        var to: UInt64
    }

    /// Records the edges "held → lock" for every lock `t` holds while it takes (or waits for) `lock`.
    mutating func record(thread t: ThreadState, lock: UInt64, event: TraceEvent, attempt: Bool) {
        guard !t.held.isEmpty else { return }
        for h in t.held where h.lock != lock {
            let pair = PairKey(from: h.lock, to: lock)
            let ei: Int
            if let i = index[pair] {
                ei = i
            } else {
                ei = edges.count
                edges.append(LockEdge(from: h.lock, to: lock))
                index[pair] = ei
                adjacency[h.lock, default: []].append(ei)
            }
            var gates: [UInt64] = []
            if t.held.count > 1 {
                for g in t.held where g.lock != h.lock && g.lock != lock { gates.append(g.lock) }
                gates.sort()
            }
            let key = "\(t.index):" + gates.map(String.init).joined(separator: ",")
            let inst = LockEdgeInstance(thread: t.index, pid: t.pid, tid: t.tid, outer: h.event, inner: event,
                                        gates: gates, outerClock: h.clock, innerOwn: t.own)
            if let k = edges[ei].keys.firstIndex(of: key) {
                // Keep the first instance (slot 2k) and the latest (slot 2k+1).
                let latest = 2 * k + 1
                if latest < edges[ei].instances.count {
                    edges[ei].instances[latest] = inst
                } else {
                    edges[ei].instances.append(inst)
                }
            } else if edges[ei].keys.count < Self.maxInstanceKeysPerEdge {
                // Pad so that slots stay paired: first, latest(=first until replaced).
                edges[ei].keys.append(key)
                edges[ei].instances.append(inst)
                edges[ei].instances.append(inst)
            }
        }
    }

    /// Simple cycles (as edge index lists) of at most `maxCycleLength` locks, each listed once
    /// (starting at its smallest lock).
    func cycles() -> [[Int]] {
        var out: [[Int]] = []
        let nodes = adjacency.keys.sorted()
        for start in nodes {
            var path: [Int] = []
            var onPath: Set<UInt64> = [start]
            func dfs(_ node: UInt64) {
                if out.count >= Self.maxCycles { return }
                for ei in adjacency[node] ?? [] {
                    let next = edges[ei].to
                    if next == start {
                        out.append(path + [ei])
                    } else if next > start && !onPath.contains(next) && path.count + 1 < Self.maxCycleLength {
                        onPath.insert(next)
                        path.append(ei)
                        dfs(next)
                        path.removeLast()
                        onPath.remove(next)
                    }
                }
            }
            dfs(start)
        }
        return out
    }
}

extension TraceModel {
    /// Two edge instances can be part of one deadlock only if their threads differ, they share no
    /// gate lock, and neither section happens before the other.
    private func compatible(_ x: LockEdgeInstance, _ y: LockEdgeInstance) -> (ok: Bool, reason: String?) {
        if x.thread == y.thread { return (false, "single-thread") }
        if !Set(x.gates).isDisjoint(with: y.gates) { return (false, "gate-lock") }
        if y.outerClock.saw(thread: x.thread, own: x.innerOwn) || x.outerClock.saw(thread: y.thread, own: y.innerOwn) {
            return (false, "happens-before")
        }
        return (true, nil)
    }

    /// The lock-order pass: every cycle is reported as a predicted deadlock or ruled out with a reason.
    func runLockOrder(actualLocks: [Set<UInt64>]) -> (findings: [RawFinding], ruledOut: [RuledOut]) {
        var findings: [RawFinding] = []
        var ruled: [RuledOut] = []
        let graph = lockOrder
        for cyc in graph.cycles() {
            let edges = cyc.map { graph.edges[$0] }
            let locks = edges.map(\.from)
            let lockWords = (locks + [locks[0]]).map { objectLabel($0) }.joined(separator: " → ")
            if actualLocks.contains(where: { Set(locks).isSubset(of: $0) }) {
                ruled.append(RuledOut(kind: .lockOrderInversion, detail: "lock order \(lockWords)",
                                      reason: "reported-as-actual"))
                continue
            }
            // Backtracking over instances; remember the furthest reason a choice failed for.
            var chosen: [LockEdgeInstance] = []
            var best: [LockEdgeInstance]?
            var reasons: Set<String> = []
            var distinctThreadsSeen = false
            func pick(_ k: Int) {
                if best != nil { return }
                if k == edges.count {
                    best = chosen
                    return
                }
                for inst in edges[k].instances {
                    var ok = true
                    for c in chosen {
                        let r = compatible(c, inst)
                        if !r.ok {
                            ok = false
                            reasons.insert(r.reason ?? "")
                            break
                        }
                    }
                    if ok {
                        if chosen.count >= 1 { distinctThreadsSeen = true }
                        chosen.append(inst)
                        pick(k + 1)
                        chosen.removeLast()
                        if best != nil { return }
                    }
                }
            }
            pick(0)
            guard let inst = best else {
                let reason: String
                if !distinctThreadsSeen && reasons == ["single-thread"] {
                    reason = "single-thread"
                } else if reasons.contains("happens-before") {
                    reason = "happens-before"
                } else if reasons.contains("gate-lock") {
                    reason = "gate-lock"
                } else {
                    reason = reasons.sorted().first ?? "single-thread"
                }
                let words: String
                switch reason {
                case "single-thread": words = "every edge of the cycle comes from the same thread, which cannot deadlock with itself this way"
                case "gate-lock": words = "the threads always held a common gate lock while taking these locks, so only one of them can be inside at a time"
                case "happens-before": words = "the sections are ordered by happens-before (spawn/join, a message, an event): they can never overlap"
                default: words = reason
                }
                ruled.append(RuledOut(kind: .lockOrderInversion, detail: "lock order \(lockWords): \(words)", reason: reason))
                continue
            }
            findings.append(inversionFinding(edges: edges, instances: inst, lockWords: lockWords))
        }
        return (findings, ruled)
    }

    private func inversionFinding(edges: [LockEdge], instances: [LockEdgeInstance], lockWords: String) -> RawFinding {
        var participants: [RawParticipant] = []
        var evidence: [(TraceEvent, String?)] = []
        var lines: [String] = []
        var gateWords: [String] = []
        for (edge, inst) in zip(edges, instances) {
            let t = threads[inst.thread]
            let a = objectLabel(edge.from), b = objectLabel(edge.to)
            var p = RawParticipant(pid: t.pid, tid: t.tid, role: "acquires", detail: "takes \(b) while holding \(a)",
                                   object: edge.to, stackEvent: inst.inner)
            p.outerEvent = inst.outer
            participants.append(p)
            evidence.append((inst.outer, "\(who(t)) takes \(a)"))
            evidence.append((inst.inner, "\(who(t)) takes \(b) while holding \(a)"))
            lines.append("\(who(t)) takes \(b) while holding \(a).")
            gateWords.append(inst.gates.isEmpty ? "\(who(t)) held nothing else" : "\(who(t)) also held \(inst.gates.map { objectLabel($0) }.joined(separator: ", "))")
        }
        let locks = edges.map(\.from)
        var f = RawFinding(
            kind: .lockOrderInversion, severity: .warning, confidence: .predicted,
            title: "lock-order inversion: \(lockWords)",
            participants: participants, evidence: dedupeEvidence(evidence),
            explanation: lines.joined(separator: " ") + " The locks are taken in opposite orders by different threads. This run did not deadlock, but if each thread takes its first lock before the other takes its second, each waits for the other forever.",
            fix: "Pick one global order for \(locks.map { objectLabel($0) }.joined(separator: " and ")) and take them in that order everywhere (or take them together under one lock).",
            why: "kept: the edges come from different threads (\(Set(instances.map(\.thread)).count)); no common gate lock (\(gateWords.joined(separator: "; "))); the sections are not ordered by happens-before (no spawn/join, message or event orders them)")
        f.fingerprintExtra = locks.map { objectRole($0) }.sorted()
        f.locks = Set(locks)
        f.highlight = Set(edges.map { "l:\($0.from)->l:\($0.to)" })
        return f
    }
}
