import TangleTrace

/// The state of a traced session, rebuilt event by event from the merged stream.
///
/// Memory is bounded by what is live — processes, threads, objects, messages in flight, tasks not
/// yet retrieved, locks held, interned stacks — never by the number of events. The passes read this
/// state at quiescent points (every live thread blocked) and at the end of the trace, and the
/// misuse rules fire while events stream through.
final class TraceModel {
    let options: AnalysisOptions

    @exclusivity(unchecked) var processes: [Int32: ProcessState] = [:]
    @exclusivity(unchecked) var threads: [ThreadState] = []
    @exclusivity(unchecked) private var threadIndex: [UInt64: Int] = [:]
    @exclusivity(unchecked) var threadByObject: [UInt64: Int] = [:]
    /// The creating thread's clock at `thread.spawn`, by the new thread's object, until its
    /// `thread.start` takes it (what the new thread's first steps happen after).
    @exclusivity(unchecked) private var threadSpawnClocks: [UInt64: ClockStamp] = [:]
    @exclusivity(unchecked) var objects: [UInt64: ObjectState] = [:]
    let messages = MessageTable()
    @exclusivity(unchecked) var stacks: [Int32: [UInt32: [UInt64]]] = [:]
    /// Text-frame stacks (the Python adapter's), shown and fingerprinted without symbolization.
    @exclusivity(unchecked) var textStacks: [Int32: [UInt32: [TextFrame]]] = [:]
    @exclusivity(unchecked) var lockOrder = LockOrderGraph()
    /// The passes that follow the stream (`AnalysisSession` attaches them): the misuse rules are
    /// told of each event, the wait-for pass of quiescent points and of the end of each wait.
    var misuse: MisuseRules?
    weak var waitFor: WaitForPass?
    @exclusivity(unchecked) var problems: [TraceProblemNote] = []
    @exclusivity(unchecked) var rootPids: [Int32] = []

    @exclusivity(unchecked) var firstTime: UInt64 = .max
    @exclusivity(unchecked) var endTime: UInt64 = 0
    @exclusivity(unchecked) var eventCount = 0
    @exclusivity(unchecked) var unmatchedReceives = 0
    /// Message ids received before their put/send was seen (merge out of order, or a missing
    /// file): a put arriving later for one of them is not left pending.
    @exclusivity(unchecked) var earlyReceives: Set<UInt64> = []
    @exclusivity(unchecked) var droppedEvents: UInt64 = 0

    // Running accounting for quiescent points.
    @exclusivity(unchecked) private(set) var liveThreads = 0
    @exclusivity(unchecked) var blockedThreads = 0
    @exclusivity(unchecked) private(set) var unstarted = 0
    @exclusivity(unchecked) var blockedVersion = 0
    /// Waits ended by another event because their own end was missing (see `trackWaits`).
    @exclusivity(unchecked) var droppedWaitEnds = 0
    @exclusivity(unchecked) private var analyzedVersion = -1
    @exclusivity(unchecked) private var threadLive: [Bool] = []
    @exclusivity(unchecked) private var unstartedPids: Set<Int32> = []
    /// Threads spawned (`thread.spawn`) that have not started yet, by object, with their process:
    /// until they start, their process is not quiescent.
    @exclusivity(unchecked) private var unstartedThreads: [UInt64: Int32] = [:]

    /// Trace problems already noted, by key (each kind of damage is said once per place).
    @exclusivity(unchecked) private var notedProblems: Set<String> = []
    func noteOnce(_ key: String) -> Bool { notedProblems.insert(key).inserted }

    // Caches in front of the dictionaries. Their references are unowned(unsafe) — no reference
    // counting on the hot path — which is safe because processes, threads and objects are never
    // removed from `processes`, `threads` and `objects`, which own them.
    private struct CachedObject {
        var id: UInt64
        var filled: Bool
        var object: Unmanaged<ObjectState>
    }
    private static let objectCacheMask = 15
    private let objectCache: UnsafeMutablePointer<CachedObject>
    private let placeholder: ObjectState

    @exclusivity(unchecked) private var cachePid: Int32 = .min
    @exclusivity(unchecked) private var cacheTid: Int32 = .min
    @exclusivity(unchecked) private var cacheThread: Unmanaged<ThreadState>
    @exclusivity(unchecked) private var cacheProcess: Unmanaged<ProcessState>
    @exclusivity(unchecked) private var cacheValid = false
    /// Threads (and their processes) by (pid, tid), direct-mapped: merged files interleave a few
    /// threads, so the last thread alone misses often.
    private struct CachedThread {
        var pid: Int32
        var tid: Int32
        var filled: Bool
        var thread: Unmanaged<ThreadState>
        var process: Unmanaged<ProcessState>
    }
    private static let threadCacheMask = 63
    private let threadCache: UnsafeMutablePointer<CachedThread>
    private let placeholderThread: ThreadState
    private let placeholderProcess: ProcessState

    init(options: AnalysisOptions) {
        self.options = options
        let po = ObjectState(id: 0, kind: .unknown)
        let pt = ThreadState(index: -1, pid: .min, tid: .min, first: TraceEvent(time: 0, pid: 0, tid: 0, seq: 0, kind: .dropped))
        let pp = ProcessState(pid: .min)
        placeholder = po
        placeholderThread = pt
        placeholderProcess = pp
        cacheThread = .passUnretained(pt)
        cacheProcess = .passUnretained(pp)
        threadCache = .allocate(capacity: Self.threadCacheMask + 1)
        threadCache.initialize(repeating: CachedThread(pid: 0, tid: 0, filled: false, thread: .passUnretained(pt), process: .passUnretained(pp)),
                               count: Self.threadCacheMask + 1)
        objectCache = .allocate(capacity: Self.objectCacheMask + 1)
        objectCache.initialize(repeating: CachedObject(id: 0, filled: false, object: .passUnretained(po)), count: Self.objectCacheMask + 1)
    }

    deinit {
        objectCache.deinitialize(count: Self.objectCacheMask + 1)
        objectCache.deallocate()
        threadCache.deinitialize(count: Self.threadCacheMask + 1)
        threadCache.deallocate()
    }

    // MARK: Lookups

    static func threadKey(_ pid: Int32, _ tid: Int32) -> UInt64 {
        (UInt64(UInt32(bitPattern: pid)) << 32) | UInt64(UInt32(bitPattern: tid))
    }

    static func handleKey(_ object: UInt64, end: Int?) -> UInt64 {
        guard let end else { return object }
        return object | (UInt64(end + 1) << 60)
    }

    func process(_ pid: Int32) -> ProcessState {
        if let p = processes[pid] { return p }
        let p = ProcessState(pid: pid)
        processes[pid] = p
        return p
    }

    func thread(pid: Int32, tid: Int32) -> ThreadState? {
        threadIndex[Self.threadKey(pid, tid)].map { threads[$0] }
    }

    func object(_ id: UInt64, kind: ObjectKind = .unknown) -> ObjectState {
        withObject(id, kind: kind) { $0 }
    }

    /// `body(object(id, kind:))` without reference counting when the object is in the cache.
    @inline(__always) func withObject<R>(_ id: UInt64, kind: ObjectKind = .unknown, _ body: (ObjectState) -> R) -> R {
        // A small direct-mapped cache in front of the dictionary (objects are never removed).
        let c = objectCache + Int(truncatingIfNeeded: id & UInt64(Self.objectCacheMask))
        if c.pointee.id == id && c.pointee.filled {
            return c.pointee.object._withUnsafeGuaranteedRef { o in
                if o.kind == .unknown && kind != .unknown { o.kind = kind }
                return body(o)
            }
        }
        return body(objectMiss(id, kind: kind))
    }

    @inline(never) private func objectMiss(_ id: UInt64, kind: ObjectKind) -> ObjectState {
        let o: ObjectState
        if let found = objects[id] {
            o = found
            if o.kind == .unknown && kind != .unknown { o.kind = kind }
        } else {
            o = ObjectState(id: id, kind: kind)
            objects[id] = o
        }
        objectCache[Int(truncatingIfNeeded: id & UInt64(Self.objectCacheMask))] = CachedObject(id: id, filled: true, object: .passUnretained(o))
        return o
    }

    func isLive(_ t: ThreadState) -> Bool { t.index < threadLive.count && threadLive[t.index] }

    // MARK: Input

    func addHeader(_ h: TraceHeader, file: String?) {
        let p = process(h.pid)
        p.header = h
        p.file = file
        if p.ppid == 0 { p.ppid = h.ppid }
        if h.processObject != 0 { p.object = h.processObject }
        if h.processObject == 0 && !rootPids.contains(h.pid) { rootPids.append(h.pid) }
    }

    func addStack(pid: Int32, id: UInt32, pcs: [UInt64]) {
        stacks[pid, default: [:]][id] = pcs
    }

    func noteProblem(_ note: TraceProblemNote) { problems.append(note) }

    // MARK: Events

    func consume(_ e: TraceEvent) {
        eventCount += 1
        if e.time > endTime { endTime = e.time }
        if e.time < firstTime { firstTime = e.time }
        if e.pid == cachePid && e.tid == cacheTid && cacheValid {
            // The last event's thread again (runs of one thread are the common case): borrowed
            // references, no reference counting.
            cacheProcess._withUnsafeGuaranteedRef { p in
                cacheThread._withUnsafeGuaranteedRef { t in consume(e, p, t) }
            }
        } else {
            cachePid = e.pid
            cacheTid = e.tid
            cacheValid = true
            let slot = (UInt32(bitPattern: e.tid) ^ (UInt32(bitPattern: e.pid) &* 0x9E37_79B1)) & UInt32(Self.threadCacheMask)
            let c = threadCache + Int(slot)
            if c.pointee.filled && c.pointee.pid == e.pid && c.pointee.tid == e.tid {
                cacheThread = c.pointee.thread
                cacheProcess = c.pointee.process
                cacheProcess._withUnsafeGuaranteedRef { p in
                    cacheThread._withUnsafeGuaranteedRef { t in consume(e, p, t) }
                }
            } else {
                let p = process(e.pid)
                let t = threadFor(e, process: p)
                cacheThread = .passUnretained(t)
                cacheProcess = .passUnretained(p)
                c.pointee = CachedThread(pid: e.pid, tid: e.tid, filled: true, thread: .passUnretained(t), process: .passUnretained(p))
                consume(e, p, t)
            }
        }
    }

    @inline(__always) private func consume(_ e: TraceEvent, _ p: ProcessState, _ t: ThreadState) {
        p.events += 1
        if e.time < p.firstTime { p.firstTime = e.time }
        if e.time > p.lastTime { p.lastTime = e.time }
        t.events += 1
        if t.seenSeq && e.seq != t.lastSeq &+ 1 && e.kind != .dropped && e.seq > t.lastSeq {
            // A gap without a `dropped` record: the file lost events (truncation inside a thread
            // is not possible, so this is corruption or reordering); note once per thread.
            noteGap(t, e)
        }
        t.seenSeq = true
        t.lastSeq = e.seq
        t.lastTime = e.time

        // A process that was signalled but still records events was not killed (SIGTERM handled).
        if p.isSignalled && p.exit == nil && p.joinDone == nil && e.kind != .processExit {
            p.signalled = nil
            reviveThreads(p)
        }

        trackWaits(t, e)
        misuse?.willApply(e, t)
        apply(e, p, t)
        misuse?.didApply(e, p, t)

        if liveThreads > 0 && blockedThreads == liveThreads && unstarted == 0 && blockedVersion != analyzedVersion {
            analyzedVersion = blockedVersion
            waitFor?.quiescentPoint()
        }
    }

    private func threadFor(_ e: TraceEvent, process p: ProcessState) -> ThreadState {
        let key = Self.threadKey(e.pid, e.tid)
        if let i = threadIndex[key] { return threads[i] }
        let t = ThreadState(index: threads.count, pid: e.pid, tid: e.tid, first: e)
        threads.append(t)
        threadIndex[key] = t.index
        let wasEmpty = p.threads.isEmpty
        p.threads.append(t.index)
        if t.tid == t.pid { t.name = "MainThread" }
        let live = !p.isDead
        threadLive.append(live)
        if live { liveThreads += 1 }
        if wasEmpty {
            if unstartedPids.remove(e.pid) != nil { unstarted -= 1 }
            if let c = p.spawnClock { t.receive(c) }
        }
        return t
    }

    private func noteGap(_ t: ThreadState, _ e: TraceEvent) {
        let key = "gap:\(t.pid):\(t.tid)"
        guard noteOnce(key) else { return }
        noteProblem(TraceProblemNote(
            kind: "reordered", file: processes[t.pid]?.file,
            detail: "pid \(t.pid) tid \(t.tid): sequence jumps from \(t.lastSeq) to \(e.seq) with no `dropped` record; events are missing or out of order"))
    }

    static func waitKey(_ thread: Int, _ seq: UInt64) -> UInt64 {
        (UInt64(thread) << 40) ^ seq
    }


    private func retire(_ p: ProcessState) {
        for i in p.threads where i < threadLive.count && threadLive[i] {
            threadLive[i] = false
            liveThreads -= 1
            if threads[i].wait != nil { blockedThreads -= 1 }
        }
        if unstartedPids.remove(p.pid) != nil { unstarted -= 1 }
        for (object, pid) in unstartedThreads where pid == p.pid {
            unstartedThreads[object] = nil
            unstarted -= 1
        }
    }

    private func reviveThreads(_ p: ProcessState) {
        for i in p.threads where !threadLive[i] && !threads[i].exited && !threads[i].isInternal {
            threadLive[i] = true
            liveThreads += 1
            if threads[i].wait != nil { blockedThreads += 1 }
        }
    }

    /// A relaying runtime thread: out of the quiescence count for good (see `ThreadState.isInternal`).
    private func makeInternal(_ t: ThreadState) {
        t.isInternal = true
        if threadLive[t.index] {
            threadLive[t.index] = false
            liveThreads -= 1
            if t.wait != nil { blockedThreads -= 1 }
        }
    }

    private func retireThread(_ t: ThreadState) {
        t.exited = true
        if threadLive[t.index] {
            threadLive[t.index] = false
            liveThreads -= 1
            if t.wait != nil { blockedThreads -= 1 }
        }
    }

    private func processClock(_ p: ProcessState) -> VectorClock {
        if let c = p.exitClock { return c }
        var c = VectorClock()
        for i in p.threads { c.join(threads[i].stamp()) }
        return c
    }

    private func addHandle(_ pid: Int32, _ object: UInt64, end: Int? = nil) {
        process(pid).handles.insert(Self.handleKey(object, end: end))
    }

    private func created(_ e: TraceEvent, kind: ObjectKind) -> ObjectState {
        let o = object(e.object, kind: kind)
        o.kind = kind
        if let text = e.text, !text.isEmpty { o.name = text }
        o.creatorPid = e.pid
        o.created = e
        return o
    }

    // The hot cases of `apply`, with the object borrowed (see `withObject`).

    @inline(__always) private func lockWait(_ e: TraceEvent, _ t: ThreadState, _ o: ObjectState) {
        if o.kind.isMutex { lockOrder.record(thread: t, lock: e.object, event: e, attempt: true) }
    }

    @inline(__always) private func lockAcquired(_ e: TraceEvent, _ t: ThreadState, _ o: ObjectState) {
        if o.kind.isSemaphore {
            o.semValue -= 1
            t.receive(o.semClock)
        } else {
            if o.owner == t.index, let hi = t.heldIndex(e.object) {
                t.held[hi].depth = max(e[.depth], 1)
            } else {
                if e[.depth] <= 1 || t.heldIndex(e.object) == nil {
                    lockOrder.record(thread: t, lock: e.object, event: e, attempt: false)
                }
                if let hi = t.heldIndex(e.object) { t.held.remove(at: hi) }
                t.held.append(HeldLock(lock: e.object, depth: max(e[.depth], 1), event: e, clock: t.clock))
            }
            o.owner = t.index
            o.depth = max(e[.depth], 1)
            o.ownerEvent = e
        }
    }

    @inline(__always) private func lockReleased(_ e: TraceEvent, _ t: ThreadState, _ o: ObjectState) {
        if o.kind.isSemaphore {
            o.semValue += 1
            o.semClock.join(t.stamp())
            o.releasers.insert(e.pid)
            t.tick()
        } else {
            let mine = t.heldIndex(e.object)
            if mine != nil || o.owner < 0 {
                release(e, t, o, holder: t, mine: mine)
            } else {
                release(e, t, o, holder: threads[o.owner], mine: mine)
            }
        }
    }

    @inline(__always) private func release(_ e: TraceEvent, _ t: ThreadState, _ o: ObjectState, holder: ThreadState, mine: Int?) {
        if e[.depth] == 0 {
            if let hi = mine ?? holder.heldIndex(e.object) { holder.held.remove(at: hi) }
            if o.owner == holder.index || o.owner == t.index || mine == nil {
                o.owner = -1
                o.depth = 0
                o.ownerEvent = nil
            }
        } else {
            if let hi = mine ?? holder.heldIndex(e.object) { holder.held[hi].depth = e[.depth] }
            if o.owner == holder.index { o.depth = e[.depth] }
        }
    }

    @inline(__always) private func queuePut(_ e: TraceEvent, _ t: ThreadState, _ o: ObjectState) {
        o.puts += 1
        o.putters.insert(e.pid)
        if !earlyReceives.isEmpty && earlyReceives.remove(e[.msg]) != nil {
            unmatchedReceives -= 1
        } else {
            o.pendingCount += 1
            messages.insert(e[.msg], PendingMessage(event: e, clock: t.stamp(), object: e.object, end: 0))
        }
        t.tick()
    }

    @inline(__always) private func queueGet(_ e: TraceEvent, _ t: ThreadState, _ o: ObjectState) {
        o.gets += 1
        let u = o.user(e.pid)
        o.users[u].gets += 1
        o.users[u].lastGet = e
        o.getters.insert(e.pid)
        if let m = messages.remove(e[.msg]) {
            t.receive(m.clock)
            o.pendingCount -= 1
        } else {
            unmatchedReceives += 1
            earlyReceives.insert(e[.msg])
        }
    }

    // swiftlint:disable:next cyclomatic_complexity function_body_length
    private func apply(_ e: TraceEvent, _ p: ProcessState, _ t: ThreadState) {
        switch e.kind {
        // Processes and threads.
        case .processStart:
            if e.object != 0 { p.object = e.object }
            if let text = e.text, !text.isEmpty { p.name = text }
            if e[.ppid] != 0 && p.ppid == 0 { p.ppid = e.pid(.ppid) }
            p.start = e
            if e[.forked] == 1 {
                p.forked = true
                if let parent = processes[p.ppid] { p.handles.formUnion(parent.handles) }
            }
        case .processExit:
            p.exit = e
            var c = VectorClock()
            for i in p.threads { c.join(threads[i].stamp()) }
            p.exitClock = c
            t.tick()
            retire(p)
            for pid in p.children {
                guard let child = processes[pid], child.diesWithParent, !child.isDead else { continue }
                child.parentEnded = e
                retire(child)
            }
        case .threadStart:
            if e[.internal] != 0 { makeInternal(t) }
            if e.object != 0, unstartedThreads.removeValue(forKey: e.object) != nil { unstarted -= 1 }
            if e.object != 0 {
                t.object = e.object
                threadByObject[e.object] = t.index
            }
            if let text = e.text, !text.isEmpty { t.name = text }
            if e.object != 0, let c = threadSpawnClocks.removeValue(forKey: e.object) {
                t.receive(c)
            } else if e[.parent] != 0, let parent = thread(pid: e.pid, tid: e.int32(.parent)) {
                t.receive(parent.stamp())
                parent.tick()
            }
        case .threadSpawn:
            // Timed before the thread existed, so it comes before the thread's own events.
            if e.object != 0 {
                threadSpawnClocks[e.object] = t.stamp()
                if threadByObject[e.object] == nil && unstartedThreads.updateValue(e.pid, forKey: e.object) == nil { unstarted += 1 }
            }
            t.tick()
        case .threadExit:
            t.tick()
            retireThread(t)
        case .threadJoinWait:
            break
        case .threadJoinDone:
            if e.result == .ok, let i = threadByObject[e.object] { t.receive(threads[i].stamp()) }
        case .processSpawn:
            let childPid = e.pid(.child)
            let child = process(childPid)
            child.ppid = e.pid
            child.spawn = e
            child.spawnClock = t.stamp()
            child.object = e.object
            child.forked = e[.forked] == 1
            child.diesWithParent = t.isInternal
            if child.name == nil, let text = e.text, !text.isEmpty { child.name = text }
            if !p.children.contains(childPid) {
                p.children.append(childPid)
                child.spawnOrder = p.children.count
            }
            if e.object != 0 { object(e.object, kind: .process).creatorPid = e.pid }
            if !child.hasEvents && !child.isDead && unstartedPids.insert(childPid).inserted { unstarted += 1 }
            if child.forked && !child.hasEvents { child.handles = p.handles }
            t.tick()
        case .processFork:
            let childPid = e.pid(.child)
            let child = process(childPid)
            if child.ppid == 0 { child.ppid = e.pid }
            child.forked = true
            if !p.children.contains(childPid) {
                p.children.append(childPid)
                child.spawnOrder = p.children.count
            }
            if child.spawnClock == nil { child.spawnClock = t.stamp() }
            if !child.hasEvents { child.handles = p.handles }
            t.tick()
        case .processJoinWait:
            break
        case .processJoinDone:
            let childPid = e.pid(.child)
            if e.result == .ok, let child = processes[childPid] {
                child.joinDone = e
                child.joinedBy = e.pid
                t.receive(processClock(child))
                retire(child)
            }
        case .processTerminate, .processKill:
            let childPid = e.pid(.child)
            if let child = processes[childPid], child.exit == nil, child.joinDone == nil {
                if child.signalled == nil { child.signalled = e }
                retire(child)
            }

        // Locks and semaphores.
        case .lockNew:
            let kind: ObjectKind
            switch LockType(rawValue: e[.type]) {
            case .rlock: kind = .rlock
            case .semaphore: kind = .semaphore
            case .boundedSemaphore: kind = .boundedSemaphore
            default: kind = .lock
            }
            let o = created(e, kind: kind)
            o.semValue = kind.isSemaphore ? Int64(clamping: e[.value]) : 1
            addHandle(e.pid, e.object)
        case .lockWait:
            withObject(e.object, kind: .lock) { o in lockWait(e, t, o) }
        case .lockAcquired:
            withObject(e.object, kind: .lock) { o in lockAcquired(e, t, o) }
        case .lockReleased:
            withObject(e.object, kind: .lock) { o in lockReleased(e, t, o) }
        case .lockTimeout:
            break
        case .lockOwnerDied:
            let o = object(e.object, kind: .lock)
            if o.owner >= 0, o.owner != t.index {
                let old = threads[o.owner]
                if let hi = old.heldIndex(e.object) { old.held.remove(at: hi) }
                o.owner = -1
            }

        // Queues.
        case .queueNew:
            let o = created(e, kind: e[.joinable] == 1 ? .joinableQueue : .queue)
            o.maxsize = e[.max]
            addHandle(e.pid, e.object)
        case .queuePutWait, .queueGetWait, .queueJoinWait:
            _ = object(e.object, kind: .queue)
        case .queuePut:
            withObject(e.object, kind: .queue) { o in queuePut(e, t, o) }
        case .queueGet:
            withObject(e.object, kind: .queue) { o in queueGet(e, t, o) }
        case .queueTimeout:
            break
        case .queueClose:
            p.closedQueues.insert(e.object)
        case .queueTaskDone:
            let o = object(e.object, kind: .joinableQueue)
            o.taskDones += 1
            o.users[o.user(e.pid)].taskDones += 1
            o.taskDoneClock.join(t.stamp())
            t.tick()
        case .queueJoinDone:
            if e.result == .ok { t.receive(object(e.object).taskDoneClock) }

        // Pipes.
        case .pipeNew:
            let o = created(e, kind: .pipe)
            o.duplex = e[.duplex] == 1
            addHandle(e.pid, e.object, end: 0)
            addHandle(e.pid, e.object, end: 1)
        case .pipeSend where e.result == .eof:
            // The send before it with this msg did not happen (broken pipe).
            if let m = messages.remove(e[.msg]) {
                let o = object(e.object, kind: .pipe)
                o.pipePending[m.end] = max(0, o.pipePending[m.end] - 1)
            }
        case .pipeSend:
            let o = object(e.object, kind: .pipe)
            let end = e.pipeEnd
            o.senders[end].insert(e.pid)
            if !earlyReceives.isEmpty && earlyReceives.remove(e[.msg]) != nil {
                unmatchedReceives -= 1
            } else {
                o.pipePending[1 - end] += 1
                messages.insert(e[.msg], PendingMessage(event: e, clock: t.stamp(), object: e.object, end: 1 - end))
            }
            t.tick()
        case .pipeRecvWait:
            _ = object(e.object, kind: .pipe)
        case .pipeRecv:
            let o = object(e.object, kind: .pipe)
            if e.result != .eof {
                if let m = messages.remove(e[.msg]) {
                    t.receive(m.clock)
                    o.pipePending[m.end] = max(0, o.pipePending[m.end] - 1)
                } else {
                    unmatchedReceives += 1
                    earlyReceives.insert(e[.msg])
                }
            }
        case .pipeClose:
            let key = Self.handleKey(e.object, end: e.pipeEnd)
            p.handles.remove(key)
            p.closedHandles.insert(key)

        // Events, conditions, barriers.
        case .eventNew:
            _ = created(e, kind: .event)
            addHandle(e.pid, e.object)
        case .eventSet:
            let o = object(e.object, kind: .event)
            o.isSet = true
            o.setClock.join(t.stamp())
            o.setters.insert(e.pid)
            t.tick()
        case .eventClear:
            object(e.object, kind: .event).isSet = false
        case .eventWait:
            break
        case .eventWake:
            if e.result == .ok { t.receive(object(e.object, kind: .event).setClock) }
        case .conditionNew:
            let o = created(e, kind: .condition)
            o.condLock = e[.lock]
            addHandle(e.pid, e.object)
        case .conditionWait:
            let o = object(e.object, kind: .condition)
            if o.condLock != 0, let hi = t.heldIndex(o.condLock) {
                t.condReleased.append(t.held.remove(at: hi))
                if let l = objects[o.condLock], l.owner == t.index {
                    l.owner = -1
                    l.ownerEvent = nil
                }
            }
        case .conditionWake:
            let o = object(e.object, kind: .condition)
            t.receive(o.setClock)
            if o.condLock != 0, let ri = t.condReleased.firstIndex(where: { $0.lock == o.condLock }) {
                var h = t.condReleased.remove(at: ri)
                h.event = e
                if t.heldIndex(o.condLock) == nil { t.held.append(h) }
                if let l = objects[o.condLock] {
                    l.owner = t.index
                    l.depth = h.depth
                    l.ownerEvent = e
                }
            }
        case .conditionNotify:
            let o = object(e.object, kind: .condition)
            o.notifies += 1
            let n = Int(clamping: e[.n])
            o.wakeCredits = min(o.condWaiting, o.wakeCredits + (n == 0 ? o.condWaiting : n))
            o.setClock.join(t.stamp())
            o.notifiers.insert(e.pid)
            t.tick()
        case .barrierNew:
            let o = created(e, kind: .barrier)
            o.parties = e[.parties]
            addHandle(e.pid, e.object)
        case .barrierWait:
            let o = object(e.object, kind: .barrier)
            if e[.index] == 0 || (o.parties > 0 && o.arrived >= o.parties) { o.arrived = 0 }
            o.arrived += 1
            o.barrierParties.insert(t.index)
            t.wait?.generation = o.barrierGeneration
            o.barrierClock.join(t.stamp())
            t.tick()
        case .barrierPass:
            let o = object(e.object, kind: .barrier)
            if e.result == .ok && o.parties > 0 && e[.index] + 1 == o.parties {
                // The last party arrives and passes at once (it records no wait): the generation
                // is complete, and the parties waiting learn what it did before.
                o.barrierClock.join(t.stamp())
                o.barrierParties.insert(t.index)
                t.tick()
                o.barrierGeneration += 1
                o.arrived = 0
            } else {
                t.receive(o.barrierClock)
            }

        // Pools.
        case .poolNew:
            let o = created(e, kind: .pool)
            o.parties = e[.workers]
            addHandle(e.pid, e.object)
        case .poolSubmit:
            let o = object(e.object, kind: .pool)
            var task = o.tasks[e[.task]] ?? PoolTask()
            if task.submit == nil && task.workerPid == 0 { o.pendingTasks += 1 }
            task.submit = e
            task.submitClock = t.stamp()
            o.tasks[e[.task]] = task
            t.tick()
        case .poolTaskWait:
            let o = object(e.object, kind: .pool)
            o.workers.insert(e.pid)
            o.workersKnown = true
        case .poolTaskStart:
            let o = object(e.object, kind: .pool)
            o.workers.insert(e.pid)
            o.workersKnown = true
            var task = o.tasks[e[.task]] ?? PoolTask()
            if task.workerPid == 0 && task.submit != nil { o.pendingTasks = max(0, o.pendingTasks - 1) }
            task.workerPid = e.pid
            if let c = task.submitClock { t.receive(c) }
            o.tasks[e[.task]] = task
        case .poolTaskDone:
            let o = object(e.object, kind: .pool)
            o.workers.insert(e.pid)
            o.workersKnown = true
            var task = o.tasks[e[.task]] ?? PoolTask()
            task.workerPid = e.pid
            task.done = e
            task.doneClock = t.stamp()
            task.submitClock = nil
            // A task its caller already gave up on is over now.
            if task.retrieved != nil { o.tasks[e[.task]] = nil } else { o.tasks[e[.task]] = task }
            t.tick()
        case .poolResultWait:
            _ = object(e.object, kind: .pool)
        case .poolResult where e.result != .timeout:
            let o = object(e.object, kind: .pool)
            if var task = o.tasks[e[.task]], task.done == nil {
                // Retrieved before it finished (a map that ended at another task's error): kept
                // until it does, marked, so that its own error is not reported as lost.
                task.retrieved = e
                o.tasks[e[.task]] = task
            } else if let task = o.tasks.removeValue(forKey: e[.task]), let c = task.doneClock {
                t.receive(c)
            }
        case .poolResult:
            break
        case .poolClose, .poolTerminate:
            let o = object(e.object, kind: .pool)
            if o.poolClosed == nil { o.poolClosed = e }
        case .poolJoinWait, .poolJoinDone:
            break

        // Shared memory.
        case .shmCreate:
            let o = created(e, kind: .sharedMemory)
            o.shmHolders.insert(e.pid)
            addHandle(e.pid, e.object)
        case .shmAttach:
            let o = object(e.object, kind: .sharedMemory)
            if o.name == nil, let text = e.text { o.name = text }
            o.shmHolders.insert(e.pid)
            addHandle(e.pid, e.object)
        case .shmUnlink:
            let o = object(e.object, kind: .sharedMemory)
            if o.unlinked == nil { o.unlinked = e }
        case .shmClose:
            object(e.object, kind: .sharedMemory).shmHolders.remove(e.pid)

        // Handles.
        case .handleAttach:
            let kind = ObjectKind(objectType: e[.type])
            let o = object(e.object, kind: kind == .lock ? .unknown : kind)
            if o.kind == .unknown && kind == .lock { o.kind = .lock }
            let key = Self.handleKey(e.object, end: kind == .pipe ? e.pipeEnd : nil)
            p.handles.insert(key)
            p.closedHandles.remove(key)
        case .handleClose:
            let kind = ObjectKind(objectType: e[.type])
            let key = Self.handleKey(e.object, end: kind == .pipe ? e.pipeEnd : nil)
            p.handles.remove(key)
            p.closedHandles.insert(key)

        case .dropped:
            droppedEvents &+= e[.count]
            noteProblem(TraceProblemNote(
                kind: "dropped-events", file: p.file,
                detail: "pid \(e.pid) tid \(e.tid) could not record \(e[.count]) events (the recorder said so); the analysis lacks them"))
        }
    }
}
