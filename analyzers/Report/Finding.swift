
/// What the analyzer found. The JSON form of `Report` (`tangle analyze --format json`) is the
/// product's interface: the keys below are documented in docs/analyzers.md and stay stable.
/// Every exporter (text, JSON, SARIF, JUnit, LLM, Perfetto, dot, HTML) reads only these values.
public struct Report: Codable, Sendable, Equatable {
    /// Version of this report's JSON shape.
    public var schemaVersion: Int = 1
    public var findings: [Finding]
    /// Every process the trace saw, as a tree (parent pid), with how it ended.
    public var processes: [ProcessSummary]
    /// Gaps and damage in the input: truncated files, missing processes, unknown kinds skipped,
    /// dropped events. The analysis ran as far as the input went; these say how far that was.
    public var problems: [TraceProblemNote]
    /// Suspicions examined and dismissed, with the reason (gate lock, happens-before, one thread…).
    public var ruledOut: [RuledOut]
    public var stats: AnalysisStats

    public init(
        findings: [Finding], processes: [ProcessSummary] = [], problems: [TraceProblemNote] = [],
        ruledOut: [RuledOut] = [], stats: AnalysisStats = AnalysisStats()
    ) {
        self.findings = findings
        self.processes = processes
        self.problems = problems
        self.ruledOut = ruledOut
        self.stats = stats
    }

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version", findings, processes, problems
        case ruledOut = "ruled_out", stats
    }
}

public enum FindingKind: String, Codable, Sendable, CaseIterable {
    case deadlock                          // a cycle (AND) or knot (OR) of blocked threads
    case hang                              // a wait that no live thread can end
    case selfDeadlock = "self-deadlock"    // a thread waits for a lock it holds itself
    case lockOrderInversion = "lock-order-inversion"
    case holdAndWait = "hold-and-wait"     // a lock held across a blocking call whose waker needs it
    case zombie
    case unjoinedChild = "unjoined-child"
    case orphan
    case lockHeldAtExit = "lock-held-at-exit"
    case ownerDied = "owner-died"
    case lostMessages = "lost-messages"
    case missingTaskDone = "missing-task-done"
    case lostPoolError = "lost-pool-error"
    case shmLeak = "shm-leak"
    case forkWithThreads = "fork-with-threads"
    case nonOwnerRelease = "non-owner-release"
}

extension FindingKind {
    /// Deadlocks first, then hangs, then everything else.
    var group: Int {
        switch self {
        case .deadlock, .selfDeadlock: 0
        case .hang: 1
        default: 2
        }
    }

    /// The declaration order above.
    var rank: Int { Self.allCases.firstIndex(of: self) ?? 99 }
}

public enum Severity: String, Codable, Sendable, Comparable, CaseIterable {
    case note, warning, error

    private var rank: Int {
        switch self {
        case .note: 0
        case .warning: 1
        case .error: 2
        }
    }

    public static func < (lhs: Severity, rhs: Severity) -> Bool { lhs.rank < rhs.rank }
}

/// `actual`: it happened in this run. `predicted`: it did not happen, but another interleaving of
/// the same program can make it happen (lock-order inversions, hold-and-wait). `confirmed`: a
/// predicted finding that `tangle confirm` made happen in a steered re-run (its `why` names the
/// actual finding and the new trace).
public enum Confidence: String, Codable, Sendable {
    case actual, predicted, confirmed

    /// The report's order: what happened, then what `tangle confirm` made happen, then predictions.
    var rank: Int {
        switch self {
        case .actual: 0
        case .confirmed: 1
        case .predicted: 2
        }
    }
}

public struct Finding: Codable, Sendable, Equatable {
    public var kind: FindingKind
    public var severity: Severity
    public var confidence: Confidence
    /// One line, e.g. "2 consumers wait forever on queue 'tasks'; every producer has exited".
    public var title: String
    public var participants: [Participant]
    /// The events that prove it, in order.
    public var evidence: [EvidenceEvent]
    /// Symbolized stacks, one per participant role (a lock-order edge has two: held, acquired).
    public var stacks: [Stack]
    /// One paragraph: what happened and why it is a bug.
    public var explanation: String
    /// What to change.
    public var fix: String
    /// For predicted findings and kept suspicions: why it was not dismissed.
    public var why: String?
    /// Stable across runs of the same bug: built from kind + symbolized frames + object roles, never
    /// addresses, pids, tids, object ids or times. The CI baseline compares these.
    public var fingerprint: String

    public init(
        kind: FindingKind, severity: Severity, confidence: Confidence, title: String,
        participants: [Participant], evidence: [EvidenceEvent], stacks: [Stack], explanation: String,
        fix: String, why: String? = nil, fingerprint: String
    ) {
        self.kind = kind
        self.severity = severity
        self.confidence = confidence
        self.title = title
        self.participants = participants
        self.evidence = evidence
        self.stacks = stacks
        self.explanation = explanation
        self.fix = fix
        self.why = why
        self.fingerprint = fingerprint
    }
}

/// A thread (or process) taking part in a finding, and what it was doing.
public struct Participant: Codable, Sendable, Equatable {
    public var pid: Int32
    public var tid: Int32
    /// "MainProcess", "Process-1", "consumer-2", …
    public var process: String
    public var thread: String?
    /// "waits", "holds", "could-wake", "exited", "child", "parent", …
    public var role: ParticipantRole
    /// What it waits on or holds, in words: "get on queue 'tasks' (q#3)".
    public var detail: String
    /// The object concerned (0 = none) and its name if it has one.
    public var object: UInt64
    public var objectName: String?

    public init(
        pid: Int32, tid: Int32, process: String, thread: String? = nil, role: ParticipantRole, detail: String,
        object: UInt64 = 0, objectName: String? = nil
    ) {
        self.pid = pid
        self.tid = tid
        self.process = process
        self.thread = thread
        self.role = role
        self.detail = detail
        self.object = object
        self.objectName = objectName
    }

    enum CodingKeys: String, CodingKey {
        case pid, tid, process, thread, role, detail, object
        case objectName = "object_name"
    }
}

/// A trace event cited as evidence (enough to find it again with `tangle cat`).
public struct EvidenceEvent: Codable, Sendable, Equatable {
    public var time: UInt64
    public var pid: Int32
    public var tid: Int32
    public var seq: UInt64
    public var kind: String
    public var object: UInt64
    /// Index into the finding's `stacks` (nil: no stack recorded).
    public var stack: Int?
    public var note: String?

    public init(time: UInt64, pid: Int32, tid: Int32, seq: UInt64, kind: String, object: UInt64,
                stack: Int? = nil, note: String? = nil) {
        self.time = time
        self.pid = pid
        self.tid = tid
        self.seq = seq
        self.kind = kind
        self.object = object
        self.stack = stack
        self.note = note
    }
}

public struct Stack: Codable, Sendable, Equatable {
    /// What the stack shows: "pid 412 tid 412 blocked in get", "acquires B while holding A", …
    public var label: String
    public var pid: Int32
    public var tid: Int32
    public var frames: [Frame]
    /// Set when the walk stopped early or a module could not be symbolized.
    public var warning: String?

    public init(label: String, pid: Int32, tid: Int32, frames: [Frame], warning: String? = nil) {
        self.label = label
        self.pid = pid
        self.tid = tid
        self.frames = frames
        self.warning = warning
    }
}

/// One symbolized frame. `function` is demangled; `file`/`line` are nil when DWARF had none;
/// `offset` is the address within `module`, always present, so an unsymbolized frame still
/// says where it was.
public struct Frame: Codable, Sendable, Equatable, Hashable {
    public var function: String?
    public var file: String?
    public var line: Int?
    public var module: String
    public var offset: UInt64
    /// True for a frame DWARF says was inlined into the next one.
    public var inlined: Bool

    public init(function: String?, file: String?, line: Int?, module: String, offset: UInt64, inlined: Bool = false) {
        self.function = function
        self.file = file
        self.line = line
        self.module = module
        self.offset = offset
        self.inlined = inlined
    }
}

public struct ProcessSummary: Codable, Sendable, Equatable {
    public var pid: Int32
    public var ppid: Int32
    public var name: String
    public var executable: String
    /// "exited 0", "killed by SIGKILL", "running at end of trace", "no trace file"
    public var end: String
    public var threads: Int
    public var events: Int

    public init(pid: Int32, ppid: Int32, name: String, executable: String, end: String, threads: Int, events: Int) {
        self.pid = pid
        self.ppid = ppid
        self.name = name
        self.executable = executable
        self.end = end
        self.threads = threads
        self.events = events
    }
}

public struct TraceProblemNote: Codable, Sendable, Equatable {
    /// "truncated", "corrupt", "missing-process", "unknown-kind", "dropped-events", "reordered", …
    public var kind: ProblemKind
    public var file: String?
    public var detail: String

    public init(kind: ProblemKind, file: String? = nil, detail: String) {
        self.kind = kind
        self.file = file
        self.detail = detail
    }
}

public struct RuledOut: Codable, Sendable, Equatable {
    /// The finding kind it would have been.
    public var kind: FindingKind
    public var detail: String
    /// "gate-lock", "happens-before", "single-thread", "reported-as-actual"
    public var reason: RuledOutReason

    public init(kind: FindingKind, detail: String, reason: RuledOutReason) {
        self.kind = kind
        self.detail = detail
        self.reason = reason
    }
}

public struct AnalysisStats: Codable, Sendable, Equatable {
    public var files: Int = 0
    public var processes: Int = 0
    public var threads: Int = 0
    public var events: Int = 0
    public var objects: Int = 0

    public init(files: Int = 0, processes: Int = 0, threads: Int = 0, events: Int = 0, objects: Int = 0) {
        self.files = files
        self.processes = processes
        self.threads = threads
        self.events = events
        self.objects = objects
    }
}

extension Finding {
    /// The one order of findings, in reports and in every exporter: actual before predicted, higher
    /// severity first, deadlocks (and self-deadlocks) before hangs before the rest, then the order
    /// of `FindingKind`, the fingerprint and the title (so that equal inputs give equal reports).
    public func precedes(_ other: Finding) -> Bool {
        if confidence != other.confidence { return confidence.rank < other.confidence.rank }
        if severity != other.severity { return severity > other.severity }
        if kind.group != other.kind.group { return kind.group < other.kind.group }
        if kind != other.kind { return kind.rank < other.kind.rank }
        if fingerprint != other.fingerprint { return fingerprint < other.fingerprint }
        return title < other.title
    }

    /// Folds `other` — the same bug seen again in this trace (same kind and fingerprint) — into this
    /// finding: its participants and evidence not already here are added, so that nothing is lost.
    mutating func absorb(_ other: Finding) {
        let base = stacks.count
        stacks += other.stacks
        for p in other.participants where !participants.contains(where: { $0.pid == p.pid && $0.tid == p.tid && $0.role == p.role && $0.object == p.object }) {
            participants.append(p)
        }
        for var e in other.evidence where !evidence.contains(where: { $0.pid == e.pid && $0.tid == e.tid && $0.seq == e.seq && $0.time == e.time }) {
            e.stack = e.stack.map { $0 + base }
            evidence.append(e)
        }
        evidence.sort { ($0.time, $0.pid, $0.tid, $0.seq) < ($1.time, $1.pid, $1.tid, $1.seq) }
    }
}
