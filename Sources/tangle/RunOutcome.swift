import Foundation
import TangleAnalysis

/// How the command `tangle run` started came to an end: a value, so that nobody reads it back out
/// of the sentence on stderr.
enum RunEnd: Equatable, Sendable, CustomStringConvertible {
    /// It exited by itself with this status.
    case exited(status: Int32)
    /// A signal killed it (not one `tangle run` sent at the timeout).
    case killed(signal: Int32)
    /// The timeout passed and `tangle run` stopped its process group.
    case timedOut

    /// From a `waitpid` status; `timedOut` wins (the group was stopped by us).
    init(waitStatus status: Int32, timedOut: Bool) {
        if timedOut { self = .timedOut } else if (status & 0x7f) == 0 { self = .exited(status: (status >> 8) & 0xff) } else { self = .killed(signal: status & 0x7f) }
    }

    /// The sentence `tangle run` prints after the command's name.
    var description: String {
        switch self {
        case .exited(let status): "exited with status \(status)"
        case .killed(let signal): "killed by signal \(signal)"
        case .timedOut: "stopped by the timeout"
        }
    }
}

extension RunEnd: Codable {
    private enum CodingKeys: String, CodingKey { case how, status, signal, description }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .exited(let status): try c.encode("exited", forKey: .how); try c.encode(status, forKey: .status)
        case .killed(let signal): try c.encode("killed", forKey: .how); try c.encode(signal, forKey: .signal)
        case .timedOut: try c.encode("timeout", forKey: .how)
        }
        try c.encode(description, forKey: .description)
    }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        switch try c.decode(String.self, forKey: .how) {
        case "exited": self = .exited(status: try c.decode(Int32.self, forKey: .status))
        case "killed": self = .killed(signal: try c.decode(Int32.self, forKey: .signal))
        case "timeout": self = .timedOut
        case let other:
            throw DecodingError.dataCorruptedError(forKey: .how, in: c, debugDescription: "unknown run end '\(other)'")
        }
    }
}

/// What `tangle run --format json` adds to the report under `"run"`: how the command ended and
/// what it left behind. `ScenarioRunner` reads it instead of stderr.
struct RunOutcome: Codable, Sendable, Equatable {
    var command: [String]
    var ended: RunEnd
    /// `tangle run` stopped processes (at the timeout, or left in the group after the command).
    var stoppedGroup: Bool
    /// Shared memory segments the trace created and never unlinked (names without the slash).
    var sharedMemoryNotUnlinked: [String]

    enum CodingKeys: String, CodingKey {
        case command, ended
        case stoppedGroup = "stopped_group"
        case sharedMemoryNotUnlinked = "shared_memory_not_unlinked"
    }

    /// The report's JSON with this outcome under `"run"` (the report's own keys unchanged).
    func json(with report: Report) throws -> String {
        struct Wrapped: Encodable {
            let report: Report
            let run: RunOutcome
            enum K: String, CodingKey { case run }
            func encode(to encoder: Encoder) throws {
                try report.encode(to: encoder)
                var c = encoder.container(keyedBy: K.self)
                try c.encode(run, forKey: .run)
            }
        }
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try enc.encode(Wrapped(report: report, run: self)), as: UTF8.self) + "\n"
    }

    /// The `"run"` object of a report `tangle run --format json` wrote (nil: none there).
    static func read(reportFile path: String) -> RunOutcome? {
        struct Only: Decodable { let run: RunOutcome? }
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return (try? JSONDecoder().decode(Only.self, from: data))?.run
    }
}
