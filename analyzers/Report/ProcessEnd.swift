/// How a process ended, as a value. The report's JSON keeps the sentence (`ProcessSummary.end`,
/// interface); code that must decide something from it asks `ProcessSummary.ending` instead of
/// searching the sentence for "SIGTERM".
public enum ProcessEnd: Equatable, Sendable, CustomStringConvertible {
    /// Its exit (or its parent's join) recorded a status.
    case exited(status: Int32)
    /// Its exit (or join) recorded a signal, by name ("SIGTERM").
    case killed(signal: String)
    /// Another process sent it SIGKILL (`process.kill`); its own end is not in the trace.
    case killSent(by: Int32)
    /// Another process sent it SIGTERM (`process.terminate`); its own end is not in the trace.
    case terminateSent(by: Int32)
    case endedWithParent
    case noTraceFile
    case runningAtEnd

    public var description: String {
        switch self {
        case .exited(let status): "exited \(status)"
        case .killed(let signal): "killed by \(signal)"
        case .killSent(let pid): "killed (SIGKILL sent by pid \(pid))"
        case .terminateSent(let pid): "terminated (SIGTERM sent by pid \(pid))"
        case .endedWithParent: "ended with its parent"
        case .noTraceFile: "no trace file"
        case .runningAtEnd: "running at end of trace"
        }
    }

    /// The value behind one of the sentences `description` writes (nil: not one of them).
    public init?(parsing s: String) {
        func pid(after prefix: String) -> Int32? {
            guard s.hasPrefix(prefix), s.hasSuffix(")") else { return nil }
            return Int32(s.dropFirst(prefix.count).dropLast())
        }
        if s.hasPrefix("exited "), let n = Int32(s.dropFirst(7)) { self = .exited(status: n); return }
        if s.hasPrefix("killed by ") { self = .killed(signal: String(s.dropFirst(10))); return }
        if let p = pid(after: "killed (SIGKILL sent by pid ") { self = .killSent(by: p); return }
        if let p = pid(after: "terminated (SIGTERM sent by pid ") { self = .terminateSent(by: p); return }
        switch s {
        case "ended with its parent": self = .endedWithParent
        case "no trace file": self = .noTraceFile
        case "running at end of trace": self = .runningAtEnd
        default: return nil
        }
    }

    /// SIGTERM or SIGKILL ended it (received or sent), or it was still running when the trace
    /// ended: what happens to every process `tangle run` stops.
    public var isStopLike: Bool {
        switch self {
        case .killed(let signal): signal == "SIGTERM" || signal == "SIGKILL"
        case .killSent, .terminateSent, .runningAtEnd: true
        case .exited, .endedWithParent, .noTraceFile: false
        }
    }
}

extension ProcessSummary {
    /// `end` as a value (nil only for a sentence this version does not write).
    public var ending: ProcessEnd? { ProcessEnd(parsing: end) }
}
