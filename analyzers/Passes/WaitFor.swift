import TangleTrace

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

/// Who could end a wait: one thread (lock owner, joined thread) or any live thread of a process.
enum Waker: Hashable {
    case thread(Int)
    case process(Int32)
}

/// One blocked thread in the wait-for graph.
struct WaitNode {
    var thread: Int
    var wait: PendingWait
    /// AND: the single waker must act (lock owner, join target). OR: any of the wakers may.
    var isAnd: Bool
    /// Every possible waker (conservative: every live holder of a handle able to wake it).
    var wakers: [Waker]
    /// The likely wakers (those that did the waking operation before, when anyone did): used to
    /// tell a cycle (deadlock) from a wait whose real wakers are gone (hang).
    var likely: [Waker]
    /// Holders that could have woken it but exited (for the explanation).
    var exitedWakers: [Int32]
    /// The wait is already satisfied (the wake is in flight) or will end by a timeout.
    var enabled: Bool
    /// Words for the explanation: why nobody will wake it.
    var note: String?
}

/// The wait-for pass: builds the graph of blocked threads and finds the sets no one outside can wake.
struct WaitForAnalysis {
    let model: TraceModel
    /// True at the end of the trace, false at a quiescent point inside it.
    let atEnd: Bool

    var nodes: [Int: WaitNode] = [:]
    var stuck: Set<Int> = []

    init(model: TraceModel, atEnd: Bool) {
        self.model = model
        self.atEnd = atEnd
    }

    // MARK: Building the graph

    func isLiveThread(_ t: ThreadState) -> Bool {
        guard let p = model.processes[t.pid], !p.isDead, !t.exited else { return false }
        return true
    }

    /// Processes that may act on `key` (hold the handle or used the object and did not close it).
    private func holders(_ o: ObjectState?, key: UInt64, users: PidSet) -> (live: [Int32], exited: [Int32]) {
        var live: [Int32] = []
        var exited: [Int32] = []
        for (pid, p) in model.processes {
            if p.closedHandles.contains(key) && !p.handles.contains(key) { continue }
            let holds = p.handles.contains(key) || users.contains(pid) || (o?.creatorPid == pid && o?.created != nil && !p.closedHandles.contains(key))
            if !holds { continue }
            if p.isDead { exited.append(pid) } else { live.append(pid) }
        }
        // Spawned children that have not shown up yet (or whose trace file is missing) may hold
        // anything their parent passed them: they count as possible wakers.
        for (pid, p) in model.processes where !p.hasEvents && !p.isDead && p.spawn != nil && !live.contains(pid) {
            live.append(pid)
        }
        return (live.sorted(), exited.sorted())
    }

    /// The node of a blocked thread: who can wake it, by the wakers rule its wait kind declares
    /// in the event table, read against the model's state of the object.
    private func node(for t: ThreadState, _ w: PendingWait) -> WaitNode {
        let e = w.event
        var n = WaitNode(thread: t.index, wait: w, isAnd: false, wakers: [], likely: [], exitedWakers: [], enabled: false)
        guard let rule = e.kind.spec.wakers, let o = model.objects[e.object] ?? joinTarget(e) else {
            n.enabled = true
            return n
        }
        // A timed wait ends by itself (the rule still says who else could end it sooner).
        if (e.kind == .lockWait && e[.timeout] != 0) || (e.kind == .conditionWait && e[.timeout] != 0) {
            n.enabled = true
            return n
        }
        func or(_ key: UInt64, users: PidSet, actors: PidSet) {
            let h = holders(o, key: key, users: users.union(actors))
            n.wakers = h.live.map { .process($0) }
            n.exitedWakers = h.exited
            // Likely wakers: those that did the waking operation on this object before (all of
            // them when nobody did yet): a cycle through them is a deadlock.
            let liveActors = h.live.filter { actors.contains($0) }
            if actors.isEmpty {
                n.likely = n.wakers
            } else {
                n.likely = liveActors.map { .process($0) }
                // Unknown processes (no events yet) stay likely: they may be the producer.
                for pid in h.live where !(model.processes[pid]?.hasEvents ?? false) && !liveActors.contains(pid) {
                    n.likely.append(.process(pid))
                }
            }
        }
        switch rule {
        case .lockOwner:
            if o.kind.isSemaphore {
                if o.semValue > 0 { n.enabled = true; break }
                or(e.object, users: PidSet(), actors: o.releasers)
            } else {
                n.isAnd = true
                if o.owner < 0 { n.enabled = true; break }
                let owner = model.threads[o.owner]
                if isLiveThread(owner) || owner.index == t.index {
                    n.wakers = [.thread(owner.index)]
                    n.likely = n.wakers
                } else {
                    n.note = "its owner \(model.who(owner)) \(model.processes[owner.pid].map { model.endDescription($0) } ?? "ended") without releasing it"
                    n.exitedWakers = [owner.pid]
                }
            }
        case .queuePutters:
            if o.pendingCount > 0 { n.enabled = true; break }
            or(e.object, users: o.getters, actors: o.putters)
            n.wakers = n.wakers.filter { w in
                if case .process(let pid) = w { return !(model.processes[pid]?.closedQueues.contains(e.object) ?? false) || pid == t.pid }
                return true
            }
        case .queueGetters:
            if o.maxsize == 0 || o.pendingCount < Int(o.maxsize) { n.enabled = true; break }
            or(e.object, users: o.putters, actors: o.getters)
        case .queueTaskDone:
            if o.puts - o.taskDones <= 0 { n.enabled = true; break }
            or(e.object, users: o.putters, actors: o.getters)
        case .pipeWriters:
            let end = w.end
            if o.pipePending[end] > 0 { n.enabled = true; break }
            let writeKey = TraceModel.handleKey(e.object, end: 1 - end)
            let h = holders(o, key: writeKey, users: o.senders[1 - end])
            if h.live.isEmpty { n.enabled = true; break }   // every write end closed: recv gets EOF
            n.wakers = h.live.map { .process($0) }
            n.exitedWakers = h.exited
            n.likely = n.wakers
            if h.live.contains(t.pid) {
                n.note = "its own process still holds the write end (end \(1 - end)) of \(model.objectLabel(e.object)), so recv can never see end-of-file"
            }
        case .eventSetters:
            if o.isSet { n.enabled = true; break }
            or(e.object, users: PidSet(), actors: o.setters)
        case .conditionNotifiers:
            if o.notifies > w.generation && o.wakeCredits > 0 { n.enabled = true; break }
            or(e.object, users: PidSet(), actors: o.notifiers)
        case .barrierAbsentees:
            if o.barrierGeneration > w.generation { n.enabled = true; break }
            barrierAbsentees(o, &n)
        case .child:
            n.isAnd = true
            let pid = e.pid(.child)
            guard let child = model.processes[pid], !child.isDead else { n.enabled = true; break }
            n.wakers = [.process(pid)]
            n.likely = n.wakers
        case .thread:
            n.isAnd = true
            guard let i = model.threadByObject[e.object], isLiveThread(model.threads[i]) else { n.enabled = true; break }
            n.wakers = [.thread(i)]
            n.likely = n.wakers
        case .poolTaskWorkers:
            poolTaskWorkers(o, e, t, &n)
        case .poolWorkers:
            let (live, exited) = liveAndExited(o.workers)
            if live.isEmpty { n.enabled = true; break }
            n.wakers = live.map { .process($0) }
            n.likely = n.wakers
            n.exitedWakers = exited
        case .poolOwner:
            if o.poolClosed != nil || o.pendingTasks > 0 { n.enabled = true; break }
            let owner = o.creatorPid
            guard let p = model.processes[owner] else { n.enabled = true; break }
            if p.isDead {
                n.exitedWakers = [owner]
            } else {
                n.wakers = [.process(owner)]
                n.likely = n.wakers
            }
        }
        return n
    }

    /// Joins name the joined process or thread, not an object of their own kind.
    private func joinTarget(_ e: TraceEvent) -> ObjectState? {
        switch e.kind {
        case .processJoinWait, .threadJoinWait: model.object(e.object, kind: e.kind == .threadJoinWait ? .thread : .process)
        default: nil
        }
    }

    private func liveAndExited(_ pids: PidSet) -> (live: [Int32], exited: [Int32]) {
        var live: [Int32] = []
        var exited: [Int32] = []
        for pid in pids.sorted() {
            guard let p = model.processes[pid] else { continue }
            if p.isDead { exited.append(pid) } else { live.append(pid) }
        }
        return (live, exited)
    }

    /// The parties that have not arrived: every live thread of a process holding the barrier,
    /// except those waiting on it in this generation (and relaying runtime threads).
    private func barrierAbsentees(_ o: ObjectState, _ n: inout WaitNode) {
        let h = holders(o, key: o.id, users: PidSet())
        for pid in h.live {
            guard let p = model.processes[pid], p.hasEvents else {
                n.wakers.append(.process(pid))
                continue
            }
            for i in p.threads {
                let th = model.threads[i]
                guard isLiveThread(th), !th.isInternal else { continue }
                if let tw = th.wait, tw.event.kind == .barrierWait, tw.event.object == o.id, tw.generation == o.barrierGeneration { continue }
                n.wakers.append(.thread(i))
                // Likely: a thread that took part in this barrier before.
                if o.barrierParties.contains(i) { n.likely.append(.thread(i)) }
            }
        }
        n.exitedWakers = h.exited
    }

    /// The workers running the awaited task: the one that started it, or every live worker of the
    /// pool while nobody has (an iterator's wait, task 0, waits for any of its tasks).
    private func poolTaskWorkers(_ o: ObjectState, _ e: TraceEvent, _ t: ThreadState, _ n: inout WaitNode) {
        let task = e[.task]
        let awaited: [PoolTask] = task != 0
            ? (o.tasks[task].map { [$0] } ?? [])
            : o.tasks.values.filter { $0.submit?.pid == t.pid && $0.submit?.tid == t.tid }
        // One task, or any of them (an iterator): ends when one is done. All (map): when every
        // one is, or the first fails.
        let all = task == 0 && e[.all] != 0
        let satisfied = all
            ? awaited.allSatisfy { $0.done != nil } || awaited.contains { $0.done?.result == .error }
            : awaited.contains { $0.done != nil } || (task != 0 && awaited.isEmpty)
        if satisfied {
            n.enabled = true
            return
        }
        var running = PidSet()
        var unstarted = false
        for a in awaited where a.done == nil {
            if a.workerPid != 0 { running.insert(a.workerPid) } else { unstarted = true }
        }
        if unstarted || awaited.isEmpty { running.formUnion(o.workers) }
        let (live, exited) = liveAndExited(running)
        n.wakers = live.map { .process($0) }
        n.likely = n.wakers
        n.exitedWakers = exited
        if live.isEmpty && exited.isEmpty && !o.workersKnown {
            // No worker has shown itself yet: the pool may still be starting them.
            n.enabled = true
        }
    }

    // MARK: Solving

    /// Computes the stuck set: blocked threads none of whose possible wakers can still act.
    mutating func solve() {
        nodes = [:]
        for t in model.threads {
            guard let w = t.wait, isLiveThread(t) else { continue }
            nodes[t.index] = node(for: t, w)
        }
        stuck = Set(nodes.filter { !$0.value.enabled }.map(\.key))
        var changed = true
        while changed {
            changed = false
            for i in stuck.sorted() {
                guard let n = nodes[i] else { continue }
                if n.wakers.contains(where: { canAct($0) }) {
                    stuck.remove(i)
                    changed = true
                }
            }
        }
    }

    /// A waker can act if it is a live thread not stuck, or a live process with such a thread (or
    /// one we know nothing about).
    func canAct(_ w: Waker) -> Bool {
        switch w {
        case .thread(let i):
            let t = model.threads[i]
            return isLiveThread(t) && !t.isInternal && !stuck.contains(i)
        case .process(let pid):
            guard let p = model.processes[pid], !p.isDead else { return false }
            if !p.hasEvents { return true }
            for i in p.threads where !stuck.contains(i) && isLiveThread(model.threads[i]) && !model.threads[i].isInternal {
                return true
            }
            return false
        }
    }

    /// The stuck threads a waker stands for.
    func stuckThreads(of w: Waker) -> [Int] {
        switch w {
        case .thread(let i): return stuck.contains(i) ? [i] : []
        case .process(let pid):
            guard let p = model.processes[pid] else { return [] }
            return p.threads.filter { stuck.contains($0) }
        }
    }

    /// Groups of stuck threads connected by wait-for edges, each in a stable order.
    func groups() -> [[Int]] {
        var parent: [Int: Int] = [:]
        func find(_ x: Int) -> Int {
            var x = x
            while let p = parent[x], p != x { x = p }
            return x
        }
        for i in stuck { parent[i] = i }
        for i in stuck.sorted() {
            guard let n = nodes[i] else { continue }
            for w in n.wakers {
                for j in stuckThreads(of: w) {
                    let a = find(i), b = find(j)
                    if a != b { parent[max(a, b)] = min(a, b) }
                }
            }
        }
        var out: [Int: [Int]] = [:]
        for i in stuck.sorted() where !(nodes[i]?.wait.event.kind.spec.wakers?.isIdle ?? false) {
            out[find(i), default: []].append(i)
        }
        return out.keys.sorted().map { out[$0]! }
    }

    /// The members of `group` that lie on some cycle of likely edges (every strongly connected
    /// component with more than one member), so that a title counts every ring, not the first.
    func cyclicMembers(in group: [Int]) -> Set<Int> {
        let members = Set(group)
        func next(_ i: Int) -> [Int] {
            (nodes[i]?.likely ?? []).flatMap { stuckThreads(of: $0) }.filter { members.contains($0) && $0 != i }
        }
        var index: [Int: Int] = [:], low: [Int: Int] = [:], onStack: Set<Int> = [], stack: [Int] = []
        var counter = 0
        var out: Set<Int> = []
        func connect(_ v: Int) {
            index[v] = counter; low[v] = counter; counter += 1
            stack.append(v); onStack.insert(v)
            for w in next(v).sorted() {
                if index[w] == nil {
                    connect(w)
                    low[v] = min(low[v]!, low[w]!)
                } else if onStack.contains(w) {
                    low[v] = min(low[v]!, index[w]!)
                }
            }
            if low[v] == index[v] {
                var component: [Int] = []
                while let w = stack.popLast() {
                    onStack.remove(w)
                    component.append(w)
                    if w == v { break }
                }
                if component.count > 1 { out.formUnion(component) }
            }
        }
        for v in group.sorted() where index[v] == nil { connect(v) }
        return out
    }

    /// A cycle among `group` following the likely edges, if there is one (as thread indices).
    func cycle(in group: [Int]) -> [Int]? {
        let members = Set(group)
        var color: [Int: Int] = [:]
        var stack: [Int] = []
        var found: [Int]?
        func visit(_ i: Int) {
            if found != nil { return }
            color[i] = 1
            stack.append(i)
            // A thread cannot wake itself: its own process counts through its other threads only.
            let next = (nodes[i]?.likely ?? []).flatMap { stuckThreads(of: $0) }.filter { members.contains($0) && $0 != i }
            for j in next.sorted() where found == nil {
                if color[j] == 1 {
                    if let k = stack.firstIndex(of: j) { found = Array(stack[k...]) }
                } else if color[j] == nil {
                    visit(j)
                }
            }
            stack.removeLast()
            color[i] = 2
        }
        for i in group where color[i] == nil && found == nil { visit(i) }
        return found
    }
}

// MARK: Findings

extension TraceModel {
    /// Runs the wait-for pass now. At a quiescent point the results become candidates; at the end
    /// they are findings (unless a confirmed candidate already covers the same waits).
    func runWaitFor(atEnd: Bool) -> [RawFinding] {
        var unused: WaitForAnalysis?
        return runWaitFor(atEnd: atEnd, keep: &unused)
    }

    func runWaitFor(atEnd: Bool, keep: inout WaitForAnalysis?) -> [RawFinding] {
        var analysis = WaitForAnalysis(model: self, atEnd: atEnd)
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
        var analysis: WaitForAnalysis?
        for f in runWaitFor(atEnd: false, keep: &analysis) {
            let known = candidates.contains { !$0.refuted && !$0.waitKeys.isDisjoint(with: f.waitKeys) }
            if known { continue }
            let members = Set(f.participants.filter { $0.role == "waits" }.compactMap { thread(pid: $0.pid, tid: $0.tid)?.index })
            var c = WaitCandidate(finding: f, waitKeys: f.waitKeys, members: members)
            if let analysis { c.edges = waitForEdges(analysis, only: members) }
            registerCandidate(c)
        }
    }

    /// The wait-for graph as exporter edges (`only`: the waits of these threads).
    func waitForEdges(_ a: WaitForAnalysis, only: Set<Int>? = nil) -> [GraphEdge] {
        var out: [GraphEdge] = []
        for (i, n) in a.nodes.sorted(by: { $0.key < $1.key }) where only?.contains(i) ?? true {
            let t = threads[i]
            let from = "t:\(t.pid):\(t.tid)"
            for w in n.wakers {
                let to: String, toLabel: String
                switch w {
                case .thread(let j):
                    let o = threads[j]
                    to = "t:\(o.pid):\(o.tid)"
                    toLabel = who(o)
                case .process(let pid):
                    if pid == t.pid && (processes[pid]?.threads.count ?? 0) <= 1 { continue }
                    to = "p:\(pid)"
                    toLabel = whoProcess(pid)
                }
                out.append(GraphEdge(from: from, fromLabel: who(t), to: to, toLabel: toLabel,
                                     label: describeWait(n.wait.event)))
            }
            for pid in n.exitedWakers {
                out.append(GraphEdge(from: from, fromLabel: who(t), to: "p:\(pid)",
                                     toLabel: whoProcess(pid) + " (" + (processes[pid].map { endDescription($0) } ?? "ended") + ")",
                                     label: "could have woken it: " + describeWait(n.wait.event)))
            }
        }
        return out
    }

    private func waitKeyOf(_ i: Int) -> UInt64 {
        TraceModel.waitKey(i, threads[i].wait?.event.seq ?? 0)
    }

    // swiftlint:disable:next function_body_length cyclomatic_complexity
    private func waitFinding(_ group: [Int], _ a: WaitForAnalysis) -> RawFinding? {
        let keys = Set(group.map { waitKeyOf($0) })
        // Self-deadlocks are reported by the misuse rule when the wait happens.
        if findings.contains(where: { $0.kind == .selfDeadlock && !$0.waitKeys.isDisjoint(with: keys) }) { return nil }
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
            let t = threads[i]
            guard let n = a.nodes[i] else { continue }
            let e = n.wait.event
            let what = describeWait(e)
            participants.append(RawParticipant(pid: t.pid, tid: t.tid, role: "waits", detail: what, object: e.object,
                                               stackEvent: e))
            evidence.append((e, "\(who(t)) blocks: \(what)"))
            if e.object != 0 && !objectsInvolved.contains(e.object) && e.kind != .processJoinWait && e.kind != .threadJoinWait {
                objectsInvolved.append(e.object)
            }
            var why: [String] = []
            for w in n.wakers {
                let label: String
                switch w {
                case .thread(let j):
                    let o = threads[j]
                    highlight.insert("t:\(t.pid):\(t.tid)->t:\(o.pid):\(o.tid)")
                    if let ow = o.wait {
                        label = "\(who(o)) is itself blocked in \(describeWait(ow.event))"
                    } else {
                        label = "\(who(o)) cannot proceed"
                    }
                    if e.kind == .lockWait, let lo = objects[e.object] {
                        locks.insert(lo.id)
                        if let acq = lo.ownerEvent {
                            evidence.append((acq, "\(who(o)) holds \(objectLabel(lo.id))"))
                            if addedHelpers.insert("holds:\(j):\(lo.id)").inserted && !order.contains(j) {
                                participants.append(RawParticipant(pid: o.pid, tid: o.tid, role: "holds",
                                                                   detail: "holds \(objectLabel(lo.id))", object: lo.id,
                                                                   stackEvent: acq))
                            }
                        }
                    }
                case .process(let pid):
                    highlight.insert("t:\(t.pid):\(t.tid)->p:\(pid)")
                    let blocked = a.stuckThreads(of: w).filter { $0 != i }
                    if pid == t.pid && blocked.isEmpty {
                        // Only the waiter itself is left in its process: nothing to say (the
                        // pipe note covers the case where that matters).
                        continue
                    } else if let j = blocked.first, let ow = threads[j].wait {
                        label = "\(whoProcess(pid)) is itself blocked in \(describeWait(ow.event))"
                    } else {
                        label = "\(whoProcess(pid)) cannot proceed"
                    }
                    if pid != t.pid && addedHelpers.insert("p:\(pid)").inserted && !order.contains(where: { threads[$0].pid == pid }) {
                        participants.append(RawParticipant(pid: pid, tid: pid, role: "could-wake", detail: label, core: false))
                    }
                }
                why.append(label)
            }
            for pid in n.exitedWakers {
                guard let p = processes[pid] else { continue }
                let label = "\(whoProcess(pid)) \(endDescription(p))"
                why.append(label)
                highlight.insert("t:\(t.pid):\(t.tid)->p:\(pid)")
                if addedHelpers.insert("p:\(pid)").inserted {
                    var did = ""
                    if let o = objects[e.object] {
                        if o.kind.isQueue && o.putters.contains(pid) { did = " after putting on \(objectLabel(o.id))" }
                        else if o.kind == .pipe && o.senders[1 - n.wait.end].contains(pid) { did = " after sending on \(objectLabel(o.id))" }
                        else { did = "; it held \(objectLabel(o.id))" }
                    }
                    participants.append(RawParticipant(pid: pid, tid: pid, role: "exited", detail: endDescription(p) + did, object: e.object, core: false))
                    if let end = p.exit ?? p.joinDone ?? p.signalled { evidence.append((end, "\(whoProcess(pid)) \(endDescription(p))")) }
                }
            }
            if let note = n.note { why.insert(note, at: 0) }
            var line = "\(who(t)) waits for \(what)"
            if why.isEmpty {
                line += "; no live thread or process holds a handle that could end this wait"
            } else {
                line += "; " + why.joined(separator: "; ")
            }
            lines.append(line + ".")

            if e.kind == .queueJoinWait, let o = objects[e.object], o.pendingCount == 0, o.gets > o.taskDones {
                let culprits = o.users.filter { $0.gets > $0.taskDones }.map(\.pid).sorted()
                missingTaskDone = (o, culprits)
            }
        }
        let causes = waitCauses(group, cycle: cyc, a)
        let fix = causes.map { $0.fix(self) }.joined(separator: " ")
        let causeWords = causes.map { $0.words(self) }.joined(separator: "; ")
        let objNames = objectsInvolved.map { objectLabel($0) }
        let objList = objNames.count > 5
            ? objNames.prefix(4).joined(separator: ", ") + " and \(objNames.count - 4) more"
            : objNames.joined(separator: ", ")

        var f: RawFinding
        let firstThread = threads[order[0]]
        if let (q, culprits) = missingTaskDone {
            let obj = objectLabel(q.id)
            var parts = participants
            for pid in culprits where !parts.contains(where: { $0.pid == pid && $0.role == "forgot-task-done" }) {
                let n = q.gets(of: pid) - q.taskDones(of: pid)
                parts.append(RawParticipant(pid: pid, tid: pid, role: "forgot-task-done",
                                            detail: "got \(q.gets(of: pid)) item(s), marked \(q.taskDones(of: pid)) done (\(n) missing)",
                                            object: q.id, stackEvent: q.lastGet(of: pid)))
                if let g = q.lastGet(of: pid) { evidence.append((g, "\(whoProcess(pid)) gets an item it never marks done")) }
            }
            f = RawFinding(
                kind: .missingTaskDone, severity: .error,
                title: "\(obj).join() waits forever: \(q.gets - q.taskDones) item(s) got but never marked done",
                participants: parts, evidence: evidence,
                explanation: "\(lines.joined(separator: " ")) \(obj) counts unfinished tasks: every put adds one, every task_done() removes one, and join() returns at zero. \(q.puts) item(s) were put and all were got, but only \(q.taskDones) task_done() call(s) were made, so the count never reaches zero.",
                fix: "Call task_done() once for every get() (put it in a `defer` right after the get, so errors and early exits also mark the item done).")
            f.fingerprintExtra = ["missing-task-done", objectRole(q.id)]
        } else if let cyc, cyc.count >= 1 {
            // Every member of the stuck group counts, not only the first cycle found in it.
            let ring = a.cyclicMembers(in: group)
            let lockOnly = ring.allSatisfy { threads[$0].wait?.event.kind == .lockWait }
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
            let isJoin: (Int) -> Bool = { [.processJoinWait, .threadJoinWait, .poolResultWait, .poolJoinWait].contains(self.threads[$0].wait?.event.kind) }
            let members = Set(group)
            let isSink: (Int) -> Bool = { i in
                !(a.nodes[i]?.wakers ?? []).flatMap { a.stuckThreads(of: $0) }.contains { $0 != i && members.contains($0) }
            }
            let root = order.first { isSink($0) && !isJoin($0) } ?? order.first { !isJoin($0) } ?? order[0]
            let rootWhat = threads[root].wait.map { describeWait($0.event) } ?? "a wait"
            let rootObject = threads[root].wait?.event.object
            let peers = group.filter { $0 != root && threads[$0].wait?.event.object == rootObject }.count
            let behind = group.count - 1 - peers
            f = RawFinding(
                kind: .hang, severity: .error,
                title: "\(who(threads[root])) waits forever (\(rootWhat)): \(causeWords)"
                    + (peers > 0 ? "; \(peers) more wait on it" : "") + (behind > 0 ? "; \(behind) more blocked behind" : ""),
                participants: participants, evidence: evidence,
                explanation: "Every thread or process that could end these waits has exited or is itself blocked, so they will never return. " + lines.joined(separator: " "),
                fix: fix)
            f.why = a.atEnd ? "blocked at the end of the trace" : "every live thread was blocked and the waits never completed"
        }
        f.locks = locks
        f.waitKeys = keys
        f.highlight = highlight
        f.fingerprintExtra += objectsInvolved.map { objectRole($0) }.sorted()
        evidence.sort { ($0.0.time, $0.0.pid, $0.0.tid, $0.0.seq) < ($1.0.time, $1.0.pid, $1.0.tid, $1.0.seq) }
        f.evidence = dedupeEvidence(f.evidence)
        return f
    }

    func dedupeEvidence(_ ev: [(TraceEvent, String?)]) -> [(TraceEvent, String?)] {
        var seen: Set<String> = []
        var out: [(TraceEvent, String?)] = []
        for (e, note) in ev.sorted(by: { ($0.0.time, $0.0.pid, $0.0.tid, $0.0.seq) < ($1.0.time, $1.0.pid, $1.0.tid, $1.0.seq) }) {
            if seen.insert("\(e.pid):\(e.tid):\(e.seq):\(e.time)").inserted { out.append((e, note)) }
        }
        return out
    }
}
