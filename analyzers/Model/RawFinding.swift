import TangleTraceFormat

/// A participant as the passes see it: ids only; names are filled in when the report is built.
struct RawParticipant {
    var pid: Int32
    var tid: Int32
    var role: ParticipantRole
    var detail: String
    var object: UInt64 = 0
    /// Part of the fingerprint (waiters, holders, acquirers); helpers such as "could-wake" are not.
    var core: Bool = true
    /// The event whose stack stands for this participant in the fingerprint.
    var stackEvent: TraceEvent?
    /// A second stack for the participant (lock-order edges: where the held lock was taken).
    var outerEvent: TraceEvent?
}

/// A finding before names, stacks and fingerprint are resolved (see `FindingBuilder`).
struct RawFinding {
    var kind: FindingKind
    var severity: Severity
    var confidence: Confidence = .actual
    var title: String
    var participants: [RawParticipant]
    /// Evidence events with an optional note, in order.
    var evidence: [(TraceEvent, String?)]
    var explanation: String
    var fix: String
    var why: String?
    /// Extra stable words for the fingerprint (object roles, names).
    var fingerprintExtra: [String] = []
    /// Locks involved (to avoid reporting an actual deadlock again as a predicted one).
    var locks: Set<UInt64> = []
    /// Identity of the waits involved (thread index, wait seq) for deduplication.
    var waitKeys: Set<UInt64> = []
    /// Wait-for edges to highlight.
    var highlight: Set<String> = []
    /// The objects the finding is about (for the rules of what one finding subsumes).
    var subjects: Set<UInt64> = []
    /// For owner-died: the pid that died holding the lock.
    var deadOwner: Int32 = 0
}

/// Evidence in time order, each event once.
func dedupeEvidence(_ ev: [(TraceEvent, String?)]) -> [(TraceEvent, String?)] {
    var seen: Set<String> = []
    var out: [(TraceEvent, String?)] = []
    for (e, note) in ev.sorted(by: { ($0.0.time, $0.0.pid, $0.0.tid, $0.0.seq) < ($1.0.time, $1.0.pid, $1.0.tid, $1.0.seq) }) {
        if seen.insert("\(e.pid):\(e.tid):\(e.seq):\(e.time)").inserted { out.append((e, note)) }
    }
    return out
}
