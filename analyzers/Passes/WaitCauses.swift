import TangleTraceFormat

/// What a stuck group of waits is made of, read from the kinds of its edges: the words of a
/// finding's title and the fix it suggests come from these, not from one paragraph for all.
enum WaitCause: Equatable {
    /// A thread holds `lock` while blocked in `wait`, and another member waits for that lock.
    case lockAcrossBlockingCall(lock: UInt64, wait: TraceEvent)
    /// Every member of the cycle waits for a lock another member holds.
    case lockOrder(locks: [UInt64])
    /// A parent joins a child that is blocked putting on a full queue the parent would drain.
    case joinBeforeDrain(queue: UInt64)
    /// Consumers wait on a queue whose every putter has ended (one sentinel too few).
    case missingPill(queue: UInt64, waiting: Int)
    /// A reader's own process still holds the pipe's write end.
    case ownWriteEnd(pipe: UInt64)
    /// Fewer parties than the barrier's count reached it.
    case barrierShort(barrier: UInt64, arrived: Int, parties: Int)
    case conditionNeverNotified(condition: UInt64)
    case eventNeverSet(event: UInt64)
    /// A lock's owner ended without releasing it.
    case ownerGone(lock: UInt64)
    /// A pool result waited for while the worker running the task is itself blocked.
    case poolTaskBlocked(pool: UInt64)
    /// A join inside the cycle: the joined thread or process waits for the joiner.
    case joinInCycle
    case other(kind: EventKind)

    /// The suggestion for this cause, in the program's terms.
    func fix(_ m: TraceModel) -> String {
        switch self {
        case let .lockAcrossBlockingCall(lock, wait):
            return "Release \(m.objectLabel(lock)) before blocking in \(m.describeWait(wait)) (take what you need under the lock, release it, then block), or take the lock only around the shared state."
        case .lockOrder:
            return "Take these locks in one global order everywhere (or take them together through one outer lock)."
        case let .joinBeforeDrain(q):
            return "Drain \(m.objectLabel(q)) (get every result) before joining the process that puts on it, or make the queue unbounded."
        case let .missingPill(q, waiting):
            return "Send one sentinel per consumer on \(m.objectLabel(q)) (\(waiting) consumer(s) are still waiting), after the last item, or close the queue and let consumers stop on closed/timeout."
        case let .ownWriteEnd(p):
            return "Close the write end of \(m.objectLabel(p)) in the reading process after starting the writer, so that recv sees end-of-file when the writer exits."
        case let .barrierShort(b, _, parties):
            return "Start exactly \(parties) parties for \(m.objectLabel(b)) (or create it with the number you start), and give waits a timeout so a missing party breaks the barrier instead of hanging."
        case let .conditionNeverNotified(c):
            return "Notify \(m.objectLabel(c)) after every change of the state it guards, and wait in a loop on the predicate (`wait(for:)`) so a notify sent before the wait is not lost."
        case let .eventNeverSet(e):
            return "Set \(m.objectLabel(e)) on every path of the thread meant to set it, including errors (a `defer`), or wait with a timeout."
        case let .ownerGone(l):
            return "Release \(m.objectLabel(l)) on every path (`withLock` or `defer`) before a thread or process ends."
        case .poolTaskBlocked:
            return "Do not let a pool task wait for something only its submitter provides while the submitter waits for the task's result; pass what the task needs in its input."
        case .joinInCycle:
            return "Do not join a thread or process that waits for the joiner: finish the exchange (drain its queue, send its sentinel, set its event) before joining."
        case let .other(kind):
            return "Make sure whoever is meant to end the \(kind.name) wait is still alive and does so on every path (including errors)."
        }
    }

    /// A few words for titles.
    func words(_ m: TraceModel) -> String {
        switch self {
        case let .lockAcrossBlockingCall(lock, wait): "\(m.objectLabel(lock)) held across \(m.describeWait(wait))"
        case let .lockOrder(locks): "locks taken in opposite orders (\(locks.map { m.objectLabel($0) }.joined(separator: ", ")))"
        case let .joinBeforeDrain(q): "join before draining \(m.objectLabel(q))"
        case let .missingPill(q, waiting): "no sentinel left on \(m.objectLabel(q)) for \(waiting) consumer(s)"
        case let .ownWriteEnd(p): "the reader holds the write end of \(m.objectLabel(p))"
        case let .barrierShort(b, arrived, parties): "\(arrived) of \(parties) parties reached \(m.objectLabel(b)); \(parties - arrived) never came"
        case let .conditionNeverNotified(c): "nobody left to notify \(m.objectLabel(c))"
        case let .eventNeverSet(e): "nobody left to set \(m.objectLabel(e))"
        case let .ownerGone(l): "the owner of \(m.objectLabel(l)) ended holding it"
        case let .poolTaskBlocked(p): "a task of \(m.objectLabel(p)) waits for its submitter"
        case .joinInCycle: "a join waits for a thread that waits for the joiner"
        case .other: "no live thread or process can wake it"
        }
    }
}

extension WaitForPass {
    /// The causes in a stuck group, root causes first (joins are usually blocked behind them).
    func waitCauses(_ group: [Int], cycle: [Int]?, _ a: WaitForAnalysis) -> [WaitCause] {
        var causes: [WaitCause] = []
        func add(_ c: WaitCause) { if !causes.contains(c) { causes.append(c) } }
        let members = Set(group)
        let waitedLocks: [UInt64: Int] = Dictionary(group.compactMap { i in
            model.threads[i].wait.flatMap { $0.event.kind == .lockWait ? ($0.event.object, i) : nil }
        }, uniquingKeysWith: { x, _ in x })

        // Lock held across a blocking call: a member blocked elsewhere while another member
        // waits for a lock it holds.
        for i in group {
            guard let w = model.threads[i].wait, w.event.kind != .lockWait else { continue }
            for h in model.threads[i].held where waitedLocks[h.lock].map({ $0 != i }) ?? false {
                add(.lockAcrossBlockingCall(lock: h.lock, wait: w.event))
            }
        }
        if let cycle, cycle.count > 1, cycle.allSatisfy({ model.threads[$0].wait?.event.kind == .lockWait }) {
            add(.lockOrder(locks: cycle.compactMap { model.threads[$0].wait?.event.object }))
        }
        for i in group {
            guard let n = a.nodes[i] else { continue }
            let e = n.wait.event
            let o = model.objects[e.object]
            switch e.kind {
            case .processJoinWait:
                let child = e.pid(.child)
                let putWait = model.processes[child]?.threads.lazy.compactMap { self.model.threads[$0].wait?.event }
                    .first { $0.kind == .queuePutWait }
                if let put = putWait, members.contains(where: { model.threads[$0].pid == child }) {
                    add(.joinBeforeDrain(queue: put.object))
                }
            case .queueGetWait:
                // Every putter has ended, or only waits to join: nobody will put the sentinel.
                func donePutting(_ pid: Int32) -> Bool {
                    guard let p = model.processes[pid], !p.isDead else { return true }
                    let live = p.threads.filter { a.isLiveThread(self.model.threads[$0]) && !self.model.threads[$0].isInternal }
                    return !live.isEmpty && live.allSatisfy { j in
                        members.contains(j) && [.processJoinWait, .threadJoinWait].contains(self.model.threads[j].wait?.event.kind)
                    }
                }
                if let o, !o.putters.isEmpty, o.putters.allSatisfy(donePutting) {
                    let waiting = group.filter { model.threads[$0].wait?.event.kind == .queueGetWait && model.threads[$0].wait?.event.object == o.id }.count
                    add(.missingPill(queue: o.id, waiting: waiting))
                }
            case .pipeRecvWait:
                if n.note != nil { add(.ownWriteEnd(pipe: e.object)) }
            case .barrierWait:
                if let o, o.parties > 0 {
                    add(.barrierShort(barrier: o.id, arrived: Int(min(o.arrived, o.parties)), parties: Int(o.parties)))
                }
            case .conditionWait:
                add(.conditionNeverNotified(condition: e.object))
            case .eventWait:
                add(.eventNeverSet(event: e.object))
            case .lockWait:
                if n.wakers.isEmpty && !n.exitedWakers.isEmpty { add(.ownerGone(lock: e.object)) }
            case .poolResultWait:
                // A worker running the awaited task waits for the submitter's own process.
                let submitter = model.threads[i].pid
                let workersWaitForSubmitter = n.wakers.flatMap { a.stuckThreads(of: $0) }.contains { j in
                    a.nodes[j]?.likely.contains(.process(submitter)) ?? false
                }
                if workersWaitForSubmitter { add(.poolTaskBlocked(pool: e.object)) }
            default:
                break
            }
        }
        if let cycle, cycle.contains(where: { [.processJoinWait, .threadJoinWait].contains(model.threads[$0].wait?.event.kind) }) {
            add(.joinInCycle)
        }
        if causes.isEmpty, let k = group.first.flatMap({ model.threads[$0].wait?.event.kind }) { add(.other(kind: k)) }
        // Joins last: they are blocked behind the real wait.
        return causes.filter { $0 != .joinInCycle } + causes.filter { $0 == .joinInCycle }
    }
}
