import TangleTraceFormat

/// What a blocking operation waits for: an object and the channel of it whose operations wake it.
struct WaitTarget: Hashable, Comparable {
    enum Channel: UInt8 {
        case queueItem, queueSpace, pipe, event, condition, semaphore, taskDone, thread, process, pool
    }

    var object: UInt64
    var channel: Channel
    /// Pipe end received on (0 otherwise).
    var end: UInt8 = 0

    static func < (a: WaitTarget, b: WaitTarget) -> Bool {
        (a.object, a.channel.rawValue, a.end) < (b.object, b.channel.rawValue, b.end)
    }
}

/// Sections "lock L held, then a blocking (or waking) operation on a target", by (target, L).
/// Looked up on every put/get/send/… made while holding a lock: a flat pair table, no hashing of
/// a struct key.
struct HoldAndWaitTable {
    struct Key: Hashable, Comparable {
        var target: WaitTarget
        var lock: UInt64
        static func < (a: Key, b: Key) -> Bool { (a.target, a.lock) < (b.target, b.lock) }
    }

    /// One side (waits or wakes).
    struct Side {
        private var index = PairTable()
        private(set) var keys: [Key] = []
        private var sets: [ChainSet] = []

        /// Object ids use the low 60 bits (pid << 28 | counter); channel and end go above them.
        @inline(__always) private static func pack(_ t: WaitTarget) -> UInt64 {
            t.object | (UInt64(t.channel.rawValue) << 59) | (UInt64(t.end) << 58)
        }

        subscript(key: Key) -> ChainSet? {
            let i = index.find(Self.pack(key.target), key.lock)
            return i >= 0 ? sets[i] : nil
        }

        @inline(__always)
        mutating func add(_ key: Key, _ t: ThreadState, held: [HeldLock], except a: UInt64, _ b: UInt64,
                          outer: TraceEvent, inner: TraceEvent, clock: VectorClock, own: UInt32) {
            let i = index.find(Self.pack(key.target), key.lock)
            if i >= 0 {
                sets[i].add(t, held: held, except: a, b, outer: outer, inner: inner, clock: clock, own: own)
            } else {
                index.insert(Self.pack(key.target), key.lock, sets.count)
                keys.append(key)
                sets.append(ChainSet(t, held: held, except: a, b, outer: outer, inner: inner, clock: clock, own: own))
            }
        }
    }

    var waits = Side()
    var wakes = Side()
}

extension LockOrderGraph {
    /// Every event, before the model applies it: blocking operations and waking operations made
    /// while holding lock-like objects. A blocking call that returned at once (the item was there)
    /// counts too — another interleaving makes it block — and once per call: a completion after a
    /// recorded `*-wait` is the same call.
    func observe(_ e: TraceEvent, _ t: ThreadState, _ m: TraceModel) {
        guard holdsAny(t) else { return }
        let o = e.object
        switch e.kind {
        case .queueGetWait:
            note(&holdAndWait.waits, WaitTarget(object: o, channel: .queueItem), e, t)
        case .queueGet:
            if !t.isWaiting { note(&holdAndWait.waits, WaitTarget(object: o, channel: .queueItem), e, t) }
            if m.objects[o]?.maxsize ?? 0 > 0 { note(&holdAndWait.wakes, WaitTarget(object: o, channel: .queueSpace), e, t) }
        case .queuePutWait:
            note(&holdAndWait.waits, WaitTarget(object: o, channel: .queueSpace), e, t)
        case .queuePut:
            note(&holdAndWait.wakes, WaitTarget(object: o, channel: .queueItem), e, t)
            if !t.isWaiting, m.objects[o]?.maxsize ?? 0 > 0 {
                note(&holdAndWait.waits, WaitTarget(object: o, channel: .queueSpace), e, t)
            }
        case .queueJoinWait:
            note(&holdAndWait.waits, WaitTarget(object: o, channel: .taskDone), e, t)
        case .queueTaskDone:
            note(&holdAndWait.wakes, WaitTarget(object: o, channel: .taskDone), e, t)
        case .pipeRecvWait:
            note(&holdAndWait.waits, WaitTarget(object: o, channel: .pipe, end: UInt8(e.c & 1)), e, t)
        case .pipeRecv:
            if !t.isWaiting && e.result != .eof {
                note(&holdAndWait.waits, WaitTarget(object: o, channel: .pipe, end: UInt8(e.c & 1)), e, t)
            }
        case .pipeSend:
            note(&holdAndWait.wakes, WaitTarget(object: o, channel: .pipe, end: UInt8(1 - (e.c & 1))), e, t)
        case .eventWait:
            note(&holdAndWait.waits, WaitTarget(object: o, channel: .event), e, t)
        case .eventWake:
            if !t.isWaiting && e.result == .ok { note(&holdAndWait.waits, WaitTarget(object: o, channel: .event), e, t) }
        case .eventSet:
            note(&holdAndWait.wakes, WaitTarget(object: o, channel: .event), e, t)
        case .conditionWait:
            // The condition's own lock is released by the wait and must be held to notify: not L.
            let condLock = m.objects[o]?.condLock ?? 0
            note(&holdAndWait.waits, WaitTarget(object: o, channel: .condition), e, t, except: condLock)
        case .conditionNotify:
            let condLock = m.objects[o]?.condLock ?? 0
            note(&holdAndWait.wakes, WaitTarget(object: o, channel: .condition), e, t, except: condLock)
        case .lockWait, .lockAcquired, .lockReleased:
            // Counting semaphores only: value-1 ones are locks (the lock-order graph covers them).
            guard let s = m.objects[o], s.kind.isSemaphore, !Self.isBinarySemaphore(s) else { return }
            if e.kind == .lockReleased {
                note(&holdAndWait.wakes, WaitTarget(object: o, channel: .semaphore), e, t)
            } else if e.kind == .lockWait || !t.isWaiting {
                note(&holdAndWait.waits, WaitTarget(object: o, channel: .semaphore), e, t)
            }
        case .threadJoinWait:
            note(&holdAndWait.waits, WaitTarget(object: o, channel: .thread), e, t)
        case .threadJoinDone:
            if !t.isWaiting { note(&holdAndWait.waits, WaitTarget(object: o, channel: .thread), e, t) }
        case .processJoinWait:
            note(&holdAndWait.waits, WaitTarget(object: e.a, channel: .process), e, t)
        case .processJoinDone:
            if !t.isWaiting { note(&holdAndWait.waits, WaitTarget(object: e.a, channel: .process), e, t) }
        case .poolResultWait:
            note(&holdAndWait.waits, WaitTarget(object: o, channel: .pool), e, t)
        case .poolResult:
            if !t.isWaiting { note(&holdAndWait.waits, WaitTarget(object: o, channel: .pool), e, t) }
        default:
            return
        }
    }

    private func note(_ table: inout HoldAndWaitTable.Side, _ target: WaitTarget, _ e: TraceEvent,
                      _ t: ThreadState, except: UInt64 = 0) {
        let held = held(t)
        for k in held.indices where held[k].lock != except {
            let lock = held[k].lock
            table.add(HoldAndWaitTable.Key(target: target, lock: lock), t, held: held, except: lock, except,
                      outer: held[k].event, inner: e, clock: held[k].clock, own: t.own)
        }
    }
}

extension TraceModel {
    /// The wakers' sections of a blocking target holding `lock`: the waking operations made while
    /// holding it; for joins and pool results, every acquisition of it by the joined thread, the
    /// child's threads or the pool's workers (they must take it before they can exit or finish).
    private func wakerChains(_ key: HoldAndWaitTable.Key) -> [SectionChain] {
        let g = lockOrder
        switch key.target.channel {
        case .thread:
            guard let ti = threadByObject[key.target.object] else { return [] }
            return g.acquisitions(of: key.lock).filter { $0.thread == ti }
        case .process:
            let pid = Int32(truncatingIfNeeded: key.target.object)
            return g.acquisitions(of: key.lock).filter { threads[$0.thread].pid == pid }
        case .pool:
            guard let pool = objects[key.target.object] else { return [] }
            return g.acquisitions(of: key.lock).filter { pool.workers.contains(threads[$0.thread].pid) }
        default:
            return g.holdAndWait.wakes[key]?.chains ?? []
        }
    }

    /// Hold-and-wait (predicted): a thread holds L across a blocking operation whose wakers hold L
    /// when they wake it. Same filters as lock order: different threads, no common gate lock, the
    /// two sections not ordered by happens-before.
    func runHoldAndWait(actualLocks: [Set<UInt64>]) -> (findings: [RawFinding], ruledOut: [RuledOut]) {
        var findings: [RawFinding] = []
        var ruled: [RuledOut] = []
        for key in lockOrder.holdAndWait.waits.keys.sorted() {
            guard let waits = lockOrder.holdAndWait.waits[key] else { continue }
            let wakers = wakerChains(key)
            if wakers.isEmpty { continue }
            let detail = "\(objectLabel(key.lock)) held across \(Self.waitVerb(key.target.channel)) \(targetLabel(key.target))"
            if actualLocks.contains(where: { $0.contains(key.lock) }) {
                ruled.append(RuledOut(kind: .holdAndWait, detail: detail, reason: .reportedAsActual))
                continue
            }
            var reasons: [Incompatibility: Int] = [:]
            var pairs: [[ChosenSection]] = []
            var seenPairs: Set<[Int]> = []
            var budget = 1_000_000
            search: for wc in waits.chains {
                for kc in wakers {
                    if wc.thread == kc.thread { reasons[.singleThread, default: 0] += 1; continue }
                    if !ChosenSection.disjoint(wc.gates, kc.gates) { reasons[.gateLock, default: 0] += 1; continue }
                    if seenPairs.contains([wc.thread, kc.thread]) { continue }
                    pair: for x in wc.newestFirst {
                        for y in kc.newestFirst {
                            budget -= 1
                            if budget <= 0 { break search }
                            let a = ChosenSection(wc, x)
                            let b = ChosenSection(kc, y)
                            if let r = ChosenSection.check(a, b) {
                                reasons[r, default: 0] += 1
                            } else {
                                seenPairs.insert([wc.thread, kc.thread])
                                pairs.append([a, b])
                                break pair
                            }
                        }
                    }
                }
            }
            let complete = budget > 0
            guard let first = pairs.first else {
                if !complete {
                    noteProblem(TraceProblemNote(kind: .analysisBound, detail: "hold-and-wait \(detail): the search stopped after 1000000 steps without a witness; it is neither reported nor ruled out"))
                    continue
                }
                let (reason, text) = Self.ruledOutReason(reasons)
                ruled.append(RuledOut(kind: .holdAndWait, detail: "\(detail): \(text)", reason: reason))
                continue
            }
            findings.append(holdAndWaitFinding(key, first, others: Array(pairs.dropFirst()), complete: complete))
        }
        return (findings, ruled)
    }

    func targetLabel(_ t: WaitTarget) -> String {
        switch t.channel {
        case .process: return whoProcess(Int32(truncatingIfNeeded: t.object))
        case .thread: return threadByObject[t.object].map { who(threads[$0]) } ?? objectLabel(t.object)
        default: return objectLabel(t.object)
        }
    }

    static func waitVerb(_ c: WaitTarget.Channel) -> String {
        switch c {
        case .queueItem: "a get from"
        case .queueSpace: "a put on (full)"
        case .pipe: "a recv on"
        case .event: "a wait on"
        case .condition: "a wait on"
        case .semaphore: "an acquire of"
        case .taskDone: "a join of"
        case .thread: "a join of"
        case .process: "a join of"
        case .pool: "a result wait on"
        }
    }

    static func wakeVerb(_ c: WaitTarget.Channel) -> String {
        switch c {
        case .queueItem: "put on"
        case .queueSpace: "get from"
        case .pipe: "send on"
        case .event: "set"
        case .condition: "notify"
        case .semaphore: "release"
        case .taskDone: "call task_done on"
        case .thread, .process: "exit (it takes the lock before it can)"
        case .pool: "finish the task (its worker takes the lock)"
        }
    }

    private func holdAndWaitFinding(_ key: HoldAndWaitTable.Key, _ pair: [ChosenSection], others: [[ChosenSection]], complete: Bool) -> RawFinding {
        let w = pair[0], k = pair[1]
        let tw = threads[w.thread], tk = threads[k.thread]
        let lock = objectLabel(key.lock)
        let target = targetLabel(key.target)
        let waitWords = "\(Self.waitVerb(key.target.channel)) \(target)"
        let byExit = key.target.channel == .thread || key.target.channel == .process || key.target.channel == .pool
        let wakeWords = Self.wakeVerb(key.target.channel) + (byExit ? "" : " \(target)")
        var waiter = RawParticipant(pid: tw.pid, tid: tw.tid, role: .waits, detail: "holds \(lock) across \(waitWords)",
                                    object: key.target.channel == .process ? 0 : key.target.object, stackEvent: w.inner)
        waiter.outerEvent = w.outer
        var waker = RawParticipant(pid: tk.pid, tid: tk.tid, role: .wakes, detail: "takes \(lock) to \(wakeWords)",
                                   object: key.lock, stackEvent: k.inner)
        waker.outerEvent = k.outer
        let evidence: [(TraceEvent, String?)] = [
            (w.outer, "\(who(tw)) takes \(lock)"),
            (w.inner, "\(who(tw)) holding \(lock): \(waitWords)"),
            (k.outer, "\(who(tk)) takes \(lock)"),
            (k.inner, "\(who(tk)) holding \(lock): \(wakeWords)"),
        ]
        var why = "different threads; no common gate lock; the two sections are not ordered by happens-before, so \(who(tw)) can take \(lock) first and block while \(who(tk)) waits for \(lock)"
        why += combinationWords(others, complete: complete, title: "hold-and-wait \(lock) across \(waitWords)")
        var f = RawFinding(
            kind: .holdAndWait, severity: .warning, confidence: .predicted,
            title: "hold-and-wait: \(lock) held across \(waitWords), whose waker needs it",
            participants: [waiter, waker], evidence: dedupeEvidence(evidence),
            explanation: "\(who(tw)) holds \(lock) while it blocks in \(waitWords); \(who(tk)) takes \(lock) to \(wakeWords), the operation that would wake it. This run did not deadlock, but when \(who(tw)) takes \(lock) first and blocks, \(who(tk)) waits for \(lock) forever and \(who(tw)) is never woken.",
            fix: "Release \(lock) before blocking (\(waitWords)), or let the waker \(wakeWords) without taking \(lock).",
            why: why)
        f.fingerprintExtra = [objectRole(key.lock), key.target.channel == .process ? "process" : objectRole(key.target.object)]
        f.locks = [key.lock]
        return f
    }
}
