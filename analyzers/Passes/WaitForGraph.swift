import TangleTraceFormat

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
            // Without a max, a put-wait means the channel under the queue is full (a Python
            // Queue's feeder blocked writing into its pipe): blocked while items are pending.
            if o.maxsize == 0 ? o.pendingCount == 0 : o.pendingCount < Int(o.maxsize) { n.enabled = true; break }
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
            // An idle worker gets work when a task is pending, and leaves once the pool is closed
            // and every task is done (the pool shuts its workers down then): the owner can submit,
            // the workers running the last tasks can finish them.
            let unfinished = o.tasks.values.filter { $0.done == nil && $0.workerPid != 0 }
            if o.pendingTasks > 0 || (o.poolClosed != nil && unfinished.isEmpty) { n.enabled = true; break }
            var pids = PidSet()
            if o.poolClosed == nil { pids.insert(o.creatorPid) }
            for task in unfinished where task.workerPid != t.pid { pids.insert(task.workerPid) }
            let (live, exited) = liveAndExited(pids)
            n.wakers = live.map { .process($0) }
            n.likely = n.wakers
            n.exitedWakers = exited
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
            : e[.batch] != 0
                ? o.tasks.values.filter { $0.submit?[.batch] == e[.batch] }
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
            // A relaying runtime thread's waits (a pool's manager joining its workers) are not the
            // program's: it is in no graph.
            guard let w = t.wait, isLiveThread(t), !t.isInternal else { continue }
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
