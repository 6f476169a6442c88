/// The cycle search of the lock-order graph, in polynomial time.
///
/// 1. Strongly connected components (Tarjan, iterative): an edge outside every component is on no
///    cycle and is never looked at again.
/// 2. Anchors: the back edges of a depth-first search inside each component. Removing them leaves
///    the component acyclic, so every cycle of locks contains at least one anchor.
/// 3. Per anchor u → v, the shortest cycle through it that has a witness (one section per edge,
///    pairwise from different threads, sharing no gate lock, not ordered by happens-before):
///    iterative deepening on the cycle length, pruned by the distance back to u, choosing sections
///    as it goes so a path whose sections already conflict is not extended. A step budget bounds the
///    work per anchor and in total; when it stops a search, the caller writes so into the report's
///    problems (`exhausted`).
struct CycleSearch {
    let graph: LockOrderGraph
    /// Lock ids by node number, and back.
    private(set) var nodes: [UInt64] = []
    private var nodeOf = PairTable()
    /// Edge indices leaving / entering each node, only inside components.
    private(set) var cyclicEdges: [Int] = []
    /// The chains of the edges on cycles (materialised once; empty for the others).
    private(set) var chainsOf: [[SectionChain]] = []
    private var out: [[Int]] = []
    private var into: [[Int]] = []
    private var target: [Int] = []
    private var source: [Int] = []
    private(set) var component: [Int] = []
    private(set) var componentSize: [Int] = []

    static let anchorBudget = 2_000_000
    static let totalBudget = 30_000_000
    static let minimumBudget = 20_000

    init(graph: LockOrderGraph) {
        self.graph = graph
        let edges = graph.allEdges
        var ids: [UInt64] = []
        ids.reserveCapacity(edges.count * 2)
        for i in edges.indices {  // (by index: an edge is a large value, not copied to read two ids)
            ids.append(edges[i].from)
            ids.append(edges[i].to)
        }
        ids.sort()
        for id in ids where nodes.last != id { nodes.append(id) }
        for (i, id) in nodes.enumerated() { nodeOf.insert(id, 0, i) }
        out = Array(repeating: [], count: nodes.count)
        source.reserveCapacity(edges.count)
        target.reserveCapacity(edges.count)
        for i in edges.indices {
            let s = nodeOf.find(edges[i].from, 0), t = nodeOf.find(edges[i].to, 0)
            source.append(s)
            target.append(t)
            out[s].append(i)
        }
        for v in out.indices { out[v].sort { target[$0] < target[$1] } }
        tarjan()
        // Keep only the edges inside a component.
        into = Array(repeating: [], count: nodes.count)
        for v in out.indices {
            out[v] = out[v].filter { component[target[$0]] == component[v] }
            for ei in out[v] {
                into[target[ei]].append(ei)
                cyclicEdges.append(ei)
            }
        }
        chainsOf = Array(repeating: [], count: graph.allEdges.count)
        for ei in cyclicEdges { chainsOf[ei] = graph.allEdges[ei].chains.chains }
    }

    func lock(_ node: Int) -> UInt64 { nodes[node] }
    func sizeOfComponent(containing lock: UInt64) -> Int {
        let v = nodeOf.find(lock, 0)
        return v >= 0 ? componentSize[component[v]] : 0
    }
    func edge(_ ei: Int) -> LockEdge { graph.allEdges[ei] }

    private mutating func tarjan() {
        let n = nodes.count
        var index = [Int](repeating: -1, count: n), low = [Int](repeating: 0, count: n)
        var onStack = [Bool](repeating: false, count: n)
        var stack: [Int] = []
        component = [Int](repeating: -1, count: n)
        var counter = 0
        for s in 0..<n where index[s] < 0 {
            var work: [(node: Int, next: Int)] = [(s, 0)]
            index[s] = counter; low[s] = counter; counter += 1
            stack.append(s); onStack[s] = true
            while let top = work.last {
                let v = top.node
                if top.next < out[v].count {
                    work[work.count - 1].next += 1
                    let w = target[out[v][top.next]]
                    if index[w] < 0 {
                        index[w] = counter; low[w] = counter; counter += 1
                        stack.append(w); onStack[w] = true
                        work.append((w, 0))
                    } else if onStack[w] {
                        low[v] = min(low[v], index[w])
                    }
                } else {
                    work.removeLast()
                    if let p = work.last { low[p.node] = min(low[p.node], low[v]) }
                    if low[v] == index[v] {
                        let c = componentSize.count
                        var size = 0
                        while let w = stack.popLast() {
                            onStack[w] = false
                            component[w] = c
                            size += 1
                            if w == v { break }
                        }
                        componentSize.append(size)
                    }
                }
            }
        }
    }

    /// The anchors: back edges of a depth-first search inside each component with two or more locks,
    /// in a deterministic order (components by their smallest lock, edges by discovery).
    func anchors() -> [Int] {
        var color = [UInt8](repeating: 0, count: nodes.count)
        var result: [Int] = []
        for s in nodes.indices where color[s] == 0 && componentSize[component[s]] > 1 {
            var work: [(node: Int, next: Int)] = [(s, 0)]
            color[s] = 1
            while let top = work.last {
                let v = top.node
                if top.next < out[v].count {
                    work[work.count - 1].next += 1
                    let ei = out[v][top.next]
                    let w = target[ei]
                    if color[w] == 0 {
                        color[w] = 1
                        work.append((w, 0))
                    } else if color[w] == 1 {
                        result.append(ei)
                    }
                } else {
                    color[v] = 2
                    work.removeLast()
                }
            }
        }
        return result
    }

    /// Shortest distances (in edges) from every node of the anchor's component to `to`.
    private func distances(to: Int) -> [Int] {
        var dist = [Int](repeating: .max, count: nodes.count)
        dist[to] = 0
        var queue = [to], head = 0
        while head < queue.count {
            let v = queue[head]
            head += 1
            for ei in into[v] where dist[source[ei]] == .max {
                dist[source[ei]] = dist[v] + 1
                queue.append(source[ei])
            }
        }
        return dist
    }

    /// The shortest structural cycle through an anchor (edge indices, anchor first).
    func shortestCycle(through anchor: Int) -> [Int] {
        let u = source[anchor], v = target[anchor]
        let dist = distances(to: u)
        var path = [anchor]
        var cur = v
        while cur != u {
            guard let next = out[cur].first(where: { dist[target[$0]] == dist[cur] - 1 }) else { break }
            path.append(next)
            cur = target[next]
        }
        return path
    }

    struct Outcome {
        var cycle: [Int]?
        var witness: [ChosenSection] = []
        var reasons: [Incompatibility: Int] = [:]
        /// The search stopped on its budget at this cycle length (nil: it ran to the end).
        var stoppedAt: Int?
        var steps = 0
    }

    /// The budget of the next anchor's search, given the steps spent so far.
    static func budget(spent: Int) -> Int { max(minimumBudget, min(anchorBudget, totalBudget - spent)) }

    /// The shortest cycle through `anchor` that has a witness, or why there is none.
    func search(anchor: Int, budget: Int) -> Outcome {
        let u = source[anchor], v = target[anchor]
        let dist = distances(to: u)
        var state = DFSState(budget: budget, onPath: [Bool](repeating: false, count: nodes.count))
        var outcome = Outcome()
        guard dist[v] != .max else { return outcome }
        let maxLength = componentSize[component[u]]
        var length = dist[v] + 1
        while length <= maxLength {
            state.limit = length
            state.edges = [anchor]
            state.onPath[u] = true
            state.onPath[v] = true
            let found = choose(anchor, &state, dist: dist, u: u) { s in
                v == u || self.extend(from: v, &s, dist: dist, u: u)
            }
            state.onPath[v] = false
            if found {
                outcome.cycle = state.edges
                outcome.witness = state.chosen
                break
            }
            if state.budget <= 0 {
                outcome.stoppedAt = length
                break
            }
            length += 1
        }
        outcome.reasons = state.reasons
        outcome.steps = budget - max(0, state.budget)
        return outcome
    }

    struct DFSState {
        var budget: Int
        var onPath: [Bool]
        var limit = 0
        var edges: [Int] = []
        var chosen: [ChosenSection] = []
        var reasons: [Incompatibility: Int] = [:]
    }

    private func extend(from cur: Int, _ s: inout DFSState, dist: [Int], u: Int) -> Bool {
        let depth = s.edges.count
        for ei in out[cur] {
            if s.budget <= 0 { return false }
            let w = target[ei]
            if w == u {
                if depth + 1 > s.limit { continue }
                s.edges.append(ei)
                if choose(ei, &s, dist: dist, u: u, then: { _ in true }) { return true }
                s.edges.removeLast()
            } else if !s.onPath[w] && dist[w] != .max && depth + 1 + dist[w] <= s.limit {
                s.edges.append(ei)
                s.onPath[w] = true
                let ok = choose(ei, &s, dist: dist, u: u) { st in self.extend(from: w, &st, dist: dist, u: u) }
                s.onPath[w] = false
                if ok { return true }
                s.edges.removeLast()
            }
        }
        return false
    }

    /// Tries every section of edge `ei` compatible with the ones chosen so far, then `then`.
    private func choose(_ ei: Int, _ s: inout DFSState, dist: [Int], u: Int,
                        then: (inout DFSState) -> Bool) -> Bool {
        for chain in chainsOf[ei] {
            // Thread and gates do not depend on the section: check them once per chain.
            var bad: Incompatibility?
            for c in s.chosen {
                if c.thread == chain.thread { bad = .singleThread; break }
                if !ChosenSection.disjoint(c.gates, chain.gates) { bad = .gateLock; break }
            }
            if let bad {
                s.reasons[bad, default: 0] += 1
                s.budget -= 1
                continue
            }
            for section in chain.newestFirst {
                s.budget -= 1
                if s.budget <= 0 { return false }
                let cand = ChosenSection(chain, section)
                if s.chosen.contains(where: { ChosenSection.check($0, cand) != nil }) {
                    s.reasons[.happensBefore, default: 0] += 1
                    continue
                }
                s.chosen.append(cand)
                if then(&s) { return true }
                s.chosen.removeLast()
            }
        }
        return false
    }
}

/// Witnesses of one fixed cycle, with the sections of each edge restricted (to one stack pattern).
struct WitnessSearch {
    /// Per edge position, the chains allowed.
    let chains: [[SectionChain]]
    let budget: Int

    /// All witnesses with distinct thread tuples, up to `limit` tuples (first one first).
    func enumerate(limit: Int) -> (witnesses: [[ChosenSection]], complete: Bool) {
        var found: [[ChosenSection]] = []
        var tuples: Set<[Int]> = []
        var chosen: [ChosenSection] = []
        var budget = self.budget
        let chains = self.chains
        /// True when the subtree completed at least one witness.
        func go(_ k: Int) -> Bool {
            if budget <= 0 || found.count >= limit { return false }
            if k == chains.count {
                if tuples.insert(chosen.map(\.thread)).inserted { found.append(chosen) }
                return true
            }
            var any = false
            for chain in chains[k] {
                if chosen.contains(where: { $0.thread == chain.thread || !ChosenSection.disjoint($0.gates, chain.gates) }) {
                    budget -= 1
                    continue
                }
                // One witness per thread tuple is enough: stop at the first section that completes it.
                for section in chain.newestFirst {
                    budget -= 1
                    if budget <= 0 { return false }
                    let cand = ChosenSection(chain, section)
                    if chosen.contains(where: { ChosenSection.check($0, cand) != nil }) { continue }
                    chosen.append(cand)
                    let done = go(k + 1)
                    chosen.removeLast()
                    if done {
                        any = true
                        break
                    }
                }
            }
            return any
        }
        _ = go(0)
        return (found, budget > 0 && found.count < limit)
    }
}
