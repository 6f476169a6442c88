import TangleTraceFormat
import TangleTraceReader

// The report's words as types: compared by the compiler, written to JSON as the same strings as
// before (raw values are interface, documented in docs/analyzers.md).

/// What a participant does in a finding.
public enum ParticipantRole: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    case waits, holds, wakes, acquires, releases, exited, child, parent, forks, creator, put, consumer
    case failed, submitter, running
    case couldWake = "could-wake"
    case diedHolding = "died-holding"
    case forgotTaskDone = "forgot-task-done"

    public var description: String { rawValue }
}

/// A gap or damage in the input, or a limit the analysis reached (`TraceProblemNote.kind`).
public enum ProblemKind: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    // What the reader found (`TraceProblem.Kind`, same words).
    case truncated, corrupt, dropped, empty
    case invalidLine = "invalid-line"
    case unknownKind = "unknown-kind"
    case lineTooLong = "line-too-long"
    case damagedFrame = "damaged-frame"
    case duplicateFile = "duplicate-file"
    // What the analysis found.
    case reordered, symbols
    case droppedEvents = "dropped-events"
    case waitEndMissing = "wait-end-missing"
    case unmatchedMessages = "unmatched-messages"
    case missingProcess = "missing-process"
    case reusedID = "reused-id"
    case analysisBound = "analysis-bound"
    /// Added by `tangle run` when it stopped the process group.
    case stoppedByTangleRun = "stopped-by-tangle-run"

    public var description: String { rawValue }

    /// The reader's problem under the same word.
    public init(_ kind: TraceProblem.Kind) {
        self = ProblemKind(rawValue: kind.rawValue) ?? .corrupt
    }
}

/// Why a suspicion was dismissed (`RuledOut.reason`).
public enum RuledOutReason: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    /// The same locks already form an actual deadlock: reported as that.
    case reportedAsActual = "reported-as-actual"
    case happensBefore = "happens-before"
    case gateLock = "gate-lock"
    case singleThread = "single-thread"

    public var description: String { rawValue }
}

extension HTMLExporter {
    /// Escapes one of the report's words (the same text as its raw value).
    static func h<T: RawRepresentable>(_ word: T) -> String where T.RawValue == String { h(word.rawValue) }
}
