import TangleTraceFormat

/// The rules that fire while events stream through: self-deadlock, non-owner release, owner died,
/// fork with threads, locks held when a thread or process exits. A pass of its own: the model
/// tells it of each event it cares about (`willApply` before the model changes its state for
/// the event, `didApply` after) and it reads the model; it keeps its findings.
final class MisuseRules {
    unowned let model: TraceModel
    private(set) var findings: [RawFinding] = []
    private var seen: Set<String> = []
    private var counts: [FindingKind: Int] = [:]
    private var capped: Set<FindingKind> = []

    init(model: TraceModel) { self.model = model }

    /// Before the model applies `e` (the rules that need the state the event finds).
    @inline(__always) func willApply(_ e: TraceEvent, _ t: ThreadState) {
        switch e.kind {
        case .lockWait:
            guard let o = model.objects[e.object] else { return }
            if o.kind == .lock && o.owner == t.index { selfDeadlock(e, o, t) }
        case .lockReleased:
            guard let o = model.objects[e.object], !o.kind.isSemaphore else { return }
            // The releaser holds it (by our books): a normal release, even if the merge put
            // another thread's acquire first. Otherwise — or when the runtime says so (owner) —
            // it is a release by a non-owner.
            let mine = t.heldIndex(e.object)
            if e[.owner] != 0 || (mine == nil && o.owner >= 0 && o.owner != t.index) { nonOwnerRelease(e, o, t) }
        case .lockOwnerDied:
            ownerDied(e, model.object(e.object, kind: .lock), t)
        default:
            break
        }
    }

    /// After the model applied `e` (the rules that need its outcome: an exit's status).
    @inline(__always) func didApply(_ e: TraceEvent, _ p: TracedProcess, _ t: ThreadState) {
        switch e.kind {
        case .processFork where e[.threads] > 0: forkWithThreads(e, p, t)
        case .processExit: checkLocksAtExit(p, e)
        case .threadExit: checkLocksAtThreadExit(t, e)
        default: break
        }
    }

    /// Deduplicates misuse reports of one kind at one place (a loop must not produce thousands).
    private func firstTime(_ kind: FindingKind, _ parts: [String]) -> Bool {
        guard !capped.contains(kind) else { return false }
        guard seen.insert(kind.rawValue + ":" + parts.joined(separator: ":")).inserted else { return false }
        let n = counts[kind, default: 0] + 1
        counts[kind] = n
        if n >= 50 { capped.insert(kind) }
        return true
    }

    func selfDeadlock(_ e: TraceEvent, _ o: ObjectState, _ t: ThreadState) {
        guard firstTime(.selfDeadlock, ["\(o.id)", "\(e.pid)", "\(e.stack)"]) else { return }
        let obj = model.objectLabel(o.id)
        var evidence: [(TraceEvent, String?)] = []
        if let first = o.ownerEvent { evidence.append((first, "takes \(obj)")) }
        evidence.append((e, "tries to take \(obj) again and blocks"))
        var f = RawFinding(
            kind: .selfDeadlock, severity: .error,
            title: "\(model.who(t)) waits for \(obj), which it already holds",
            participants: [RawParticipant(pid: t.pid, tid: t.tid, role: .waits,
                                          detail: "re-acquires \(obj), which it holds (non-recursive Lock)",
                                          object: o.id, stackEvent: e)],
            evidence: evidence,
            explanation: "\(model.who(t)) acquired \(obj) and then tried to acquire it again without releasing it. A Lock is not recursive: the second acquire waits for the owner to release it, and the owner is the waiting thread itself, so it can never proceed.",
            fix: "Release the lock before calling code that takes it again, split the function into a locked wrapper and an unlocked body, or use an RLock if re-entry is intended.")
        f.fingerprintExtra = [model.objectRole(o.id)]
        f.locks = [o.id]
        f.waitKeys = [TraceModel.waitKey(t.index, e.seq)]
        findings.append(f)
    }

    func nonOwnerRelease(_ e: TraceEvent, _ o: ObjectState, _ t: ThreadState) {
        guard firstTime(.nonOwnerRelease, ["\(o.id)", "\(e.stack)"]) else { return }
        let obj = model.objectLabel(o.id)
        var parts = [RawParticipant(pid: t.pid, tid: t.tid, role: .releases,
                                    detail: "releases \(obj) without owning it", object: o.id, stackEvent: e)]
        var evidence: [(TraceEvent, String?)] = []
        var ownerWords = "another thread"
        if o.owner >= 0, o.owner != t.index {
            let owner = model.threads[o.owner]
            ownerWords = model.who(owner)
            parts.append(RawParticipant(pid: owner.pid, tid: owner.tid, role: .holds, detail: "owns \(obj)",
                                        object: o.id, stackEvent: o.ownerEvent))
            if let acq = o.ownerEvent { evidence.append((acq, "\(model.who(owner)) takes \(obj)")) }
        } else if e[.owner] != 0 {
            ownerWords = "pid \(e[.owner])"
        }
        evidence.append((e, "released by \(model.who(t))"))
        var f = RawFinding(
            kind: .nonOwnerRelease, severity: .warning,
            title: "\(model.who(t)) releases \(obj), owned by \(ownerWords)",
            participants: parts, evidence: evidence,
            explanation: "\(obj) was released by \(model.who(t)) while \(ownerWords) owned it. A lock released by a thread that does not own it no longer protects anything: the owner goes on inside its critical section while another thread may enter. (A semaphore may be released by anyone; a Lock or RLock must be released by its owner.)",
            fix: "Release the lock in the thread that acquired it (use `withLock`/`defer`). If one thread must signal another, use a Semaphore, an Event or a Condition instead of a Lock.")
        f.fingerprintExtra = [model.objectRole(o.id)]
        f.locks = [o.id]
        findings.append(f)
    }

    /// The owner-died finding of (lock, dead pid), when one was made: the owner's death (a kill
    /// the program made) and the next acquirer's EOWNERDEAD are two halves of one finding, whichever
    /// the trace shows first — never one folded away by the other.
    private func ownerDiedIndex(_ lock: UInt64, _ deadPid: Int32) -> Int? {
        findings.indices.last { findings[$0].kind == .ownerDied && findings[$0].locks == [lock] && findings[$0].deadOwner == deadPid }
    }

    func ownerDied(_ e: TraceEvent, _ o: ObjectState, _ t: ThreadState) {
        let deadPid = e.pid(.owner)
        let obj = model.objectLabel(o.id)
        if let k = ownerDiedIndex(o.id, deadPid) {
            guard !findings[k].participants.contains(where: { $0.role == .acquires }) else { return }
            findings[k].participants.insert(RawParticipant(pid: t.pid, tid: t.tid, role: .acquires,
                                                           detail: "acquires \(obj) from the dead owner (EOWNERDEAD)", object: o.id, stackEvent: e), at: 0)
            findings[k].evidence.append((e, "\(model.who(t)) gets \(obj) with EOWNERDEAD"))
            findings[k].explanation += " \(model.who(t)) then got \(obj) with EOWNERDEAD: whatever the lock protects may have been left half-updated."
            return
        }
        guard firstTime(.ownerDied, ["\(o.id)", "\(deadPid)"]) else { return }
        var parts = [RawParticipant(pid: t.pid, tid: t.tid, role: .acquires,
                                    detail: "acquires \(obj) from a dead owner", object: o.id, stackEvent: e)]
        var evidence: [(TraceEvent, String?)] = []
        if o.owner >= 0, o.owner != t.index {
            let owner = model.threads[o.owner]
            parts.append(RawParticipant(pid: owner.pid, tid: owner.tid, role: .diedHolding,
                                        detail: "died holding \(obj)", object: o.id, stackEvent: o.ownerEvent))
            if let acq = o.ownerEvent { evidence.append((acq, "\(model.who(owner)) takes \(obj)")) }
        } else if deadPid != 0 {
            parts.append(RawParticipant(pid: deadPid, tid: deadPid, role: .diedHolding,
                                        detail: "died holding \(obj)", object: o.id, core: false))
        }
        if let dead = model.processes[deadPid], let end = dead.exit ?? dead.signalled ?? dead.joinDone {
            evidence.append((end, "pid \(deadPid) ends: \(model.endDescription(dead))"))
        }
        evidence.append((e, "\(model.who(t)) gets \(obj) with EOWNERDEAD"))
        var f = RawFinding(
            kind: .ownerDied, severity: .error,
            title: "\(model.whoProcess(deadPid)) died holding \(obj)",
            participants: parts, evidence: evidence,
            explanation: "\(model.whoProcess(deadPid)) ended while it held \(obj). The robust mutex handed it to \(model.who(t)) with EOWNERDEAD: whatever the lock protects may have been left half-updated by the dead owner.",
            fix: "Do not let a process die inside a critical section: avoid killing/terminating workers that may hold shared locks, release locks in `defer`, and validate or rebuild the protected state when the owner-died case happens.")
        f.fingerprintExtra = [model.objectRole(o.id)]
        f.locks = [o.id]
        f.deadOwner = deadPid
        findings.append(f)
    }

    func forkWithThreads(_ e: TraceEvent, _ p: TracedProcess, _ t: ThreadState) {
        guard firstTime(.forkWithThreads, ["\(e.pid)", "\(e.stack)"]) else { return }
        var parts = [RawParticipant(pid: t.pid, tid: t.tid, role: .forks,
                                    detail: "forks while \(e[.threads]) other thread(s) run", stackEvent: e)]
        for i in p.threads where i != t.index && model.isLive(model.threads[i]) && !model.threads[i].exited {
            let o = model.threads[i]
            parts.append(RawParticipant(pid: o.pid, tid: o.tid, role: .running,
                                        detail: o.wait.map { "blocked in \(model.describeWait($0.event))" } ?? "running",
                                        core: false))
        }
        var f = RawFinding(
            kind: .forkWithThreads, severity: .warning,
            title: "\(model.whoProcess(p.pid)) forks while \(e[.threads]) other thread(s) run",
            participants: parts, evidence: [(e, "fork with \(e[.threads]) other thread(s) running")],
            explanation: "\(model.who(t)) called fork() while \(e[.threads]) other thread(s) of the process were running. The child gets a copy of memory with only the forking thread in it: any lock another thread held at that moment (malloc's, the Swift runtime's, a Tangle lock) stays held forever in the child, which can deadlock on its first use.",
            fix: "Start worker processes with the spawn method (re-exec), or fork before starting threads.")
        f.fingerprintExtra = ["fork"]
        findings.append(f)
    }

    func checkLocksAtThreadExit(_ t: ThreadState, _ e: TraceEvent) {
        for h in t.held {
            guard let o = model.objects[h.lock], o.kind.isMutex else { continue }
            lockHeldAtExit(t, h, e, process: false)
        }
    }

    func checkLocksAtExit(_ p: TracedProcess, _ e: TraceEvent) {
        for i in p.threads {
            let t = model.threads[i]
            for h in t.held {
                guard let o = model.objects[h.lock], o.kind.isMutex else { continue }
                if e[.signal] != 0 {
                    // Killed holding it: reported only when the program itself killed it (a
                    // traced kill/terminate); a timeout runner stopping a hung program is not a
                    // new bug.
                    if p.signalled != nil { diedHolding(t, h, end: e) }
                } else {
                    lockHeldAtExit(t, h, e, process: true)
                }
            }
        }
    }

    private func lockHeldAtExit(_ t: ThreadState, _ h: HeldLock, _ e: TraceEvent, process: Bool) {
        guard firstTime(.lockHeldAtExit, ["\(h.lock)", "\(h.event.stack)"]) else { return }
        let obj = model.objectLabel(h.lock)
        let what = process ? "process \(model.whoProcess(t.pid)) exits" : "\(model.who(t)) exits"
        var f = RawFinding(
            kind: .lockHeldAtExit, severity: .error,
            title: "\(obj) is still held when \(what)",
            participants: [RawParticipant(pid: t.pid, tid: t.tid, role: .holds,
                                          detail: "took \(obj) and never released it", object: h.lock,
                                          stackEvent: h.event)],
            evidence: [(h.event, "\(model.who(t)) takes \(obj)"), (e, process ? "the process exits holding it" : "the thread exits holding it")],
            explanation: "\(model.who(t)) acquired \(obj) and \(process ? "its process exited" : "it exited") without releasing it. Every other thread or process that tries to take \(obj) afterwards waits forever (or, for a process-shared robust lock, gets it with EOWNERDEAD and possibly inconsistent data).",
            fix: "Release the lock on every path (`withLock { … }` or `defer { lock.release() }`), including early returns and errors.")
        f.fingerprintExtra = [model.objectRole(h.lock)]
        f.locks = [h.lock]
        f.deadOwner = t.pid
        findings.append(f)
    }

    /// A process killed (or crashed) while holding a lock.
    func diedHolding(_ t: ThreadState, _ h: HeldLock, end: TraceEvent?) {
        if let k = ownerDiedIndex(h.lock, t.pid) {
            if !findings[k].participants.contains(where: { $0.role == .diedHolding && $0.stackEvent != nil }) {
                findings[k].participants.removeAll { $0.role == .diedHolding }
                findings[k].participants.append(RawParticipant(pid: t.pid, tid: t.tid, role: .diedHolding,
                                                               detail: "died holding \(model.objectLabel(h.lock))", object: h.lock, stackEvent: h.event))
                findings[k].evidence.insert((h.event, "\(model.who(t)) takes \(model.objectLabel(h.lock))"), at: 0)
            }
            return
        }
        guard firstTime(.ownerDied, ["\(h.lock)", "\(t.pid)"]) else { return }
        let obj = model.objectLabel(h.lock)
        let p = model.processes[t.pid]
        let how = p.map { model.endDescription($0) } ?? "died"
        var evidence: [(TraceEvent, String?)] = [(h.event, "\(model.who(t)) takes \(obj)")]
        if let end { evidence.append((end, "pid \(t.pid) \(how)")) }
        var f = RawFinding(
            kind: .ownerDied, severity: .error,
            title: "\(model.whoProcess(t.pid)) \(how) while holding \(obj)",
            participants: [RawParticipant(pid: t.pid, tid: t.tid, role: .diedHolding,
                                          detail: "\(how) holding \(obj)", object: h.lock, stackEvent: h.event)],
            evidence: evidence,
            explanation: "\(model.who(t)) held \(obj) when its process ended abnormally (\(how)). The next process to take the lock gets it with EOWNERDEAD (or waits forever if it is not robust), and the state it protects may be half-updated.",
            fix: "Do not kill or terminate processes that may be inside a critical section; stop them cooperatively (a sentinel, an Event) and release locks in `defer`.")
        f.fingerprintExtra = [model.objectRole(h.lock)]
        f.locks = [h.lock]
        f.deadOwner = t.pid
        findings.append(f)
    }
}
