/// What one finding makes redundant, as typed rules over what the findings are about — never a
/// comparison of titles, fingerprints-as-text or kind names. `AnalysisSession.finish()` collects the
/// passes' findings in order and drops each one an earlier kept finding covers.
enum Subsumption: CaseIterable {
    /// The same blocked waits: a hang seen at a quiescent point and again at the end of the trace.
    case sameWaits
    /// A `JoinableQueue.join()` blocked on a queue (wait-for) covers the end-of-trace rule that
    /// items got from the same queue were never marked done.
    case joinCoversTaskDone
    /// An actual deadlock or self-deadlock over some locks covers a predicted inversion of the same
    /// locks (the lock-order pass is told, and rules the cycle out as `reported-as-actual`).
    case actualCoversPredicted

    func covers(_ kept: RawFinding, _ new: RawFinding) -> Bool {
        switch self {
        case .sameWaits:
            // (A self-deadlock and the group blocked behind it share a wait and are both kept.)
            return kept.kind != .selfDeadlock && new.kind != .selfDeadlock
                && !kept.waitKeys.isEmpty && !kept.waitKeys.isDisjoint(with: new.waitKeys)
        case .joinCoversTaskDone:
            return kept.kind == .missingTaskDone && new.kind == .missingTaskDone && !kept.waitKeys.isEmpty
                && new.waitKeys.isEmpty && !kept.subjects.isDisjoint(with: new.subjects)
        case .actualCoversPredicted:
            return kept.confidence == .actual && [.deadlock, .selfDeadlock].contains(kept.kind)
                && new.confidence == .predicted && !new.locks.isEmpty && new.locks.isSubset(of: kept.locks)
        }
    }

    /// `new`, unless a finding already kept covers it.
    static func admit(_ new: RawFinding, into kept: inout [RawFinding]) {
        for k in kept where allCases.contains(where: { $0.covers(k, new) }) { return }
        kept.append(new)
    }
}
