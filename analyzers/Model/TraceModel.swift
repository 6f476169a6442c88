import TangleTraceFormat
import TangleTraceReader

/// The state of a traced session, rebuilt event by event from the merged stream.
///
/// Memory is bounded by what is live — processes, threads, objects, messages in flight, tasks not
/// yet retrieved, locks held, interned stacks — never by the number of events. The passes read this
/// state at quiescent points (every live thread blocked) and at the end of the trace, and the
/// misuse rules fire while events stream through.
final class TraceModel {
    let options: AnalysisOptions

    @exclusivity(unchecked) var processes: [Int32: TracedProcess] = [:]
    @exclusivity(unchecked) var threads: [ThreadState] = []
    @exclusivity(unchecked) private var threadIndex: [UInt64: Int] = [:]
    @exclusivity(unchecked) var threadByObject: [UInt64: Int] = [:]
    /// The creating thread's clock at `thread.spawn`, by the new thread's object, until its
    /// `thread.start` takes it (what the new thread's first steps happen after).
    @exclusivity(unchecked) var threadSpawnClocks: [UInt64: ClockStamp] = [:]
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
    @exclusivity(unchecked) var unstarted = 0
    @exclusivity(unchecked) var blockedVersion = 0
    /// Waits ended by another event because their own end was missing (see `trackWaits`).
    @exclusivity(unchecked) var droppedWaitEnds = 0
    @exclusivity(unchecked) private var analyzedVersion = -1
    @exclusivity(unchecked) private var threadLive: [Bool] = []
    @exclusivity(unchecked) var unstartedPids: Set<Int32> = []
    /// Threads spawned (`thread.spawn`) that have not started yet, by object, with their process:
    /// until they start, their process is not quiescent.
    @exclusivity(unchecked) var unstartedThreads: [UInt64: Int32] = [:]

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
    @exclusivity(unchecked) private var cacheProcess: Unmanaged<TracedProcess>
    @exclusivity(unchecked) private var cacheValid = false
    /// Threads (and their processes) by (pid, tid), direct-mapped: merged files interleave a few
    /// threads, so the last thread alone misses often.
    private struct CachedThread {
        var pid: Int32
        var tid: Int32
        var filled: Bool
        var thread: Unmanaged<ThreadState>
        var process: Unmanaged<TracedProcess>
    }
    private static let threadCacheMask = 63
    private let threadCache: UnsafeMutablePointer<CachedThread>
    private let placeholderThread: ThreadState
    private let placeholderProcess: TracedProcess

    init(options: AnalysisOptions) {
        self.options = options
        let po = ObjectState(id: 0, kind: .unknown)
        let pt = ThreadState(index: -1, pid: .min, tid: .min, first: TraceEvent(time: 0, pid: 0, tid: 0, seq: 0, kind: .dropped))
        let pp = TracedProcess(pid: .min)
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

    func process(_ pid: Int32) -> TracedProcess {
        if let p = processes[pid] { return p }
        let p = TracedProcess(pid: pid)
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

    @inline(__always) private func consume(_ e: TraceEvent, _ p: TracedProcess, _ t: ThreadState) {
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

        lockOrder.observe(e, t, self)  // hold-and-wait: blocking and waking operations made holding locks
        trackWaits(t, e)
        misuse?.willApply(e, t)
        apply(e, p, t)
        misuse?.didApply(e, p, t)

        if liveThreads > 0 && blockedThreads == liveThreads && unstarted == 0 && blockedVersion != analyzedVersion {
            analyzedVersion = blockedVersion
            waitFor?.quiescentPoint()
        }
    }

    private func threadFor(_ e: TraceEvent, process p: TracedProcess) -> ThreadState {
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
            kind: .reordered, file: processes[t.pid]?.file,
            detail: "pid \(t.pid) tid \(t.tid): sequence jumps from \(t.lastSeq) to \(e.seq) with no `dropped` record; events are missing or out of order"))
    }

    static func waitKey(_ thread: Int, _ seq: UInt64) -> UInt64 {
        (UInt64(thread) << 40) ^ seq
    }


    func retire(_ p: TracedProcess) {
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

    func reviveThreads(_ p: TracedProcess) {
        for i in p.threads where !threadLive[i] && !threads[i].exited && !threads[i].isInternal {
            threadLive[i] = true
            liveThreads += 1
            if threads[i].wait != nil { blockedThreads += 1 }
        }
    }

    /// A relaying runtime thread: out of the quiescence count for good (see `ThreadState.isInternal`).
    func makeInternal(_ t: ThreadState) {
        t.isInternal = true
        if threadLive[t.index] {
            threadLive[t.index] = false
            liveThreads -= 1
            if t.wait != nil { blockedThreads -= 1 }
        }
    }

    func retireThread(_ t: ThreadState) {
        t.exited = true
        if threadLive[t.index] {
            threadLive[t.index] = false
            liveThreads -= 1
            if t.wait != nil { blockedThreads -= 1 }
        }
    }

    func processClock(_ p: TracedProcess) -> VectorClock {
        if let c = p.exitClock { return c }
        var c = VectorClock()
        for i in p.threads { c.join(threads[i].stamp()) }
        return c
    }

    func addHandle(_ pid: Int32, _ object: UInt64, end: Int? = nil) {
        process(pid).handles.insert(Self.handleKey(object, end: end))
    }

    func created(_ e: TraceEvent, kind: ObjectKind) -> ObjectState {
        let o = object(e.object, kind: kind)
        o.kind = kind
        if let text = e.text, !text.isEmpty { o.name = text }
        o.creatorPid = e.pid
        o.created = e
        return o
    }
}
