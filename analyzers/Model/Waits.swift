import TangleTraceFormat

/// When a thread is blocked, by the event table alone (`EventSpec`): a wait begins at a kind that
/// declares wakers and ends only at one of the kinds it declares as its end, on the same object —
/// never at some other event of the thread. The kinds a wait declares as `inside` (a condition
/// wait releases and re-takes its lock) keep it pending; a wait begun inside another nests in it.
///
/// Any other event of a waiting thread proves the thread ran although the trace lacks the wait's
/// end (a runtime that failed to record it, or a damaged file): the wait is ended and the trace
/// problem `wait-end-missing` says so, so that a phantom wait never becomes a hang.
extension TraceModel {
    @inline(__always) func trackWaits(_ t: ThreadState, _ e: TraceEvent) {
        if t.isWaiting { settleWaits(t, e) }
        if e.kind.isWait { beginWait(t, e) }
    }

    private func beginWait(_ t: ThreadState, _ e: TraceEvent) {
        var w = PendingWait(event: e)
        switch e.kind {
        case .conditionWait:
            let o = object(e.object, kind: .condition)
            w.generation = o.notifies
            o.condWaiting += 1
        case .pipeRecvWait:
            w.end = e.pipeEnd
        default:
            break
        }
        if let outer = t.wait {
            t.outerWaits.append(outer)
        } else if isLive(t) {
            blockedThreads += 1
        }
        t.wait = w
        blockedVersion &+= 1
    }

    private func settleWaits(_ t: ThreadState, _ e: TraceEvent) {
        switch e.kind {
        case .processExit, .threadExit:
            // Dying ends every wait; it is neither a wake nor a completion.
            while t.wait != nil { endInnermost(t, e, woken: false, died: true) }
            return
        case .handleAttach, .handleClose, .dropped:
            return   // bookkeeping: recorded inside any wait
        default:
            break
        }
        guard let w = t.wait else { return }
        if ends(e, w) {
            endInnermost(t, e, woken: Self.isWake(e))
            return
        }
        if let k = t.outerWaits.lastIndex(where: { ends(e, $0) }) {
            // The end of an outer wait: the waits nested in it lack their ends.
            while t.outerWaits.count > k { noteMissingEnd(t, e); endInnermost(t, e, woken: true) }
            endInnermost(t, e, woken: Self.isWake(e))
            return
        }
        if w.event.kind.spec.inside.contains(e.kind) || t.outerWaits.contains(where: { $0.event.kind.spec.inside.contains(e.kind) }) {
            return
        }
        // The thread ran: its wait's end is missing.
        noteMissingEnd(t, e)
        while t.wait != nil { endInnermost(t, e, woken: true) }
    }

    @inline(__always) private func ends(_ e: TraceEvent, _ w: PendingWait) -> Bool {
        e.object == w.event.object && EventSpec.ends(e.kind, wait: w.event.kind)
    }

    /// True when the event that ends a wait says it was woken (not a timeout, not a join that
    /// returned because its child was killed).
    static func isWake(_ e: TraceEvent) -> Bool {
        if e.result == .timeout || e.kind == .lockTimeout || e.kind == .queueTimeout { return false }
        if e.kind == .processJoinDone && e[.signal] != 0 { return false }
        return true
    }

    private func endInnermost(_ t: ThreadState, _ e: TraceEvent, woken: Bool, died: Bool = false) {
        guard let w = t.wait else { return }
        if w.event.kind == .conditionWait, let o = objects[w.event.object] {
            o.condWaiting = max(0, o.condWaiting - 1)
            if e.kind == .conditionWake && e.result == .ok { o.wakeCredits = max(0, o.wakeCredits - 1) }
        }
        if let outer = t.outerWaits.popLast() {
            t.wait = outer
            blockedVersion &+= 1
        } else {
            t.wait = nil
            if isLive(t) { blockedThreads -= 1 }
        }
        let key = Self.waitKey(t.index, w.event.seq)
        if !died { waitFor?.waitEnded(key, thread: t.index, woken: woken) }
    }

    private func noteMissingEnd(_ t: ThreadState, _ e: TraceEvent) {
        guard let w = t.wait else { return }
        droppedWaitEnds += 1
        guard noteOnce("wait-end:\(w.event.kind.rawValue):\(e.kind.rawValue)") else { return }
        noteProblem(TraceProblemNote(
            kind: .waitEndMissing, file: processes[t.pid]?.file,
            detail: "pid \(t.pid) tid \(t.tid): \(w.event.kind.name) (seq \(w.event.seq)) has no \(w.event.kind.spec.endedBy.map(\.name).joined(separator: "/")) before the thread's \(e.kind.name) (seq \(e.seq)); the wait is taken as ended there"))
    }
}
