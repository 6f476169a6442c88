import TangleTraceFormat
import Foundation

/// Checks of the trace's own consistency that the passes do not make: an object id created twice
/// as objects of different types, and findings made on a run that was cut. Kept apart from the
/// model (only creation events are looked at: nothing on the per-event hot path but a table load).
struct ObjectReuseCheck {
    /// Per kind raw value: the object family this kind creates (`lock`, `queue`, …), nil if none.
    static let creates: [String?] = {
        let n = Int(EventKind.allCases.map(\.rawValue).max() ?? 0) + 1
        var t = [String?](repeating: nil, count: n)
        for k in EventKind.allCases {
            let name = k.name
            guard let dot = name.firstIndex(of: ".") else { continue }
            let family = String(name[..<dot])
            let verb = name[name.index(after: dot)...]
            if verb == "new" || (family == "shm" && verb == "create") { t[Int(k.rawValue)] = family }
        }
        return t
    }()

    private var created: [UInt64: (family: String, pid: Int32, time: UInt64)] = [:]
    private(set) var problems: [TraceProblemNote] = []
    /// The trace's first event's time: messages give times relative to it, in seconds.
    var start: UInt64 = 0
    private var reported: Set<UInt64> = []

    @inline(__always) static func isCreation(_ e: TraceEvent) -> Bool {
        let i = Int(e.kind.rawValue)
        return i < creates.count && creates[i] != nil && e.object != 0
    }

    mutating func note(_ e: TraceEvent) {
        guard let family = Self.creates[Int(e.kind.rawValue)] else { return }
        if let first = created[e.object] {
            if first.family != family && reported.insert(e.object).inserted {
                problems.append(TraceProblemNote(kind: .reusedID, detail:
                    "object id \(e.object) was created as a \(first.family) (pid \(first.pid), at \(since(first.time))) and again as a \(family) (pid \(e.pid), at \(since(e.time))): ids must be unique; events on it may be mixed up"))
            }
            return
        }
        created[e.object] = (family, e.pid, e.time)
    }

    /// "+1.250000s" after the trace's start (as the text report's evidence says times).
    private func since(_ t: UInt64) -> String {
        t >= start ? "+" + String(format: "%.6f", Double(t - start) / 1e9) + "s" : "-" + String(format: "%.6f", Double(start - t) / 1e9) + "s"
    }
}

/// Findings about how a run ended (leaks, unjoined children, lost messages…) on a trace where some
/// process's file was cut (no end mark: killed, or still running) say so: the end state they judge
/// is not known, and the cut, not the program, may be what they show.
enum CutRunNote {
    static let kinds: Set<FindingKind> = [.zombie, .unjoinedChild, .orphan, .lockHeldAtExit, .lostMessages,
                                          .missingTaskDone, .lostPoolError, .shmLeak]

    static func apply(_ result: inout AnalysisResult, cutPids: [Int32: String]) {
        guard !cutPids.isEmpty else { return }
        let pids = cutPids.keys.sorted()
        let who = pids.count == 1 ? "process \(pids[0])" : "processes " + pids.prefix(8).map(String.init).joined(separator: ", ") + (pids.count > 8 ? " and \(pids.count - 8) more" : "")
        for i in result.report.findings.indices where kinds.contains(result.report.findings[i].kind) {
            result.report.findings[i].explanation += " The run was cut: the trace of \(who) ends before its end mark"
                + " (killed, or still running), so what happened after the cut is missing and this finding may show the cut rather than a bug."
        }
    }
}
