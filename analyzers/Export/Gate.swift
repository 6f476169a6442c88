import Foundation

/// Errors of the CI gate's inputs (the CLI exits 2 on them).
public struct GateInputError: Error, CustomStringConvertible {
    public var path: String
    public var reason: String
    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }
    public var description: String { "\(path): \(reason)" }
}

/// The CI baseline (`tangle baseline PATH… --output FILE`): the fingerprints of known findings with
/// their kind and title, sorted by fingerprint, one entry per fingerprint, no times or counts, so
/// the file is stable across runs and diffs well.
///
/// ```json
/// {
///   "findings" : [
///     { "fingerprint" : "3f1c…", "kind" : "lock-order-inversion", "title" : "…" }
///   ],
///   "tool" : "tangle",
///   "version" : 1
/// }
/// ```
public struct Baseline: Codable, Sendable, Equatable {
    public struct Entry: Codable, Sendable, Equatable {
        public var fingerprint: String
        public var kind: String
        public var title: String
        public init(fingerprint: String, kind: String, title: String) {
            self.fingerprint = fingerprint
            self.kind = kind
            self.title = title
        }
    }

    public var version: Int = 1
    public var tool: String = "tangle"
    public var findings: [Entry]

    public init(findings: [Entry]) { self.findings = findings }

    public init(report: Report) {
        var seen: [String: Entry] = [:]
        for (_, f) in ExportSupport.ranked(report.findings) where seen[f.fingerprint] == nil {
            seen[f.fingerprint] = Entry(fingerprint: f.fingerprint, kind: f.kind.rawValue, title: f.title)
        }
        findings = seen.values.sorted { $0.fingerprint < $1.fingerprint }
    }

    public var fingerprints: Set<String> { Set(findings.map(\.fingerprint)) }

    public func encoded() throws -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        guard let s = String(data: try enc.encode(self), encoding: .utf8) else { throw ExportError.encoding("baseline") }
        return s + "\n"
    }

    public static func load(path: String) throws -> Baseline {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw GateInputError(path: path, reason: "cannot read the baseline (create one with `tangle baseline PATH… --output \(path)`)")
        }
        do {
            let b = try JSONDecoder().decode(Baseline.self, from: data)
            guard b.version == 1 else { throw GateInputError(path: path, reason: "baseline version \(b.version) is not supported (expected 1)") }
            return b
        } catch let e as GateInputError {
            throw e
        } catch {
            throw GateInputError(path: path, reason: "not a tangle baseline: \(error)")
        }
    }
}

/// One suppression: a fingerprint (exact, or a prefix of at least 8 characters) or a glob on the
/// function names of the finding's frames (`*`, `?`, `[…]` as in fnmatch(3)), optionally limited
/// to one finding kind, always with a reason.
public struct Suppression: Codable, Sendable, Equatable {
    public var fingerprint: String?
    public var symbol: String?
    public var kind: String?
    public var reason: String
    /// Where it was written ("file:line"), for messages.
    public var origin: String?

    public init(fingerprint: String? = nil, symbol: String? = nil, kind: String? = nil, reason: String, origin: String? = nil) {
        self.fingerprint = fingerprint
        self.symbol = symbol
        self.kind = kind
        self.reason = reason
        self.origin = origin
    }

    public var display: String {
        var s = fingerprint.map { "fingerprint \($0)" } ?? "symbol \(symbol ?? "?")"
        if let kind { s += " kind=\(kind)" }
        return s
    }

    public func matches(_ f: Finding) -> Bool {
        if let kind, kind != f.kind.rawValue { return false }
        if let fp = fingerprint {
            if fp == f.fingerprint { return true }
            return fp.count >= 8 && f.fingerprint.hasPrefix(fp)
        }
        if let pattern = symbol {
            for s in f.stacks {
                for fr in s.frames {
                    if let name = fr.function, fnmatch(pattern, name, 0) == 0 { return true }
                }
            }
        }
        return false
    }
}

/// A suppressions file, JSON or text:
///
/// JSON: `{"suppressions": [{"fingerprint": "…", "reason": "…"}, {"symbol": "MyApp.Legacy*", "kind": "zombie", "reason": "…"}]}`
/// (or the array alone).
///
/// Text, one per line, `#` starts a comment:
/// ```
/// fingerprint 3f1c2a9e0b7d4c11 kind=deadlock known, tracked in #42
/// symbol *LegacyPool.* vendored code we do not change
/// ```
/// (`kind=KIND` is optional; the rest of the line is the reason, which is required.)
public struct SuppressionFile: Sendable {
    public var entries: [Suppression]

    public init(entries: [Suppression]) { self.entries = entries }

    public static func load(path: String) throws -> SuppressionFile {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw GateInputError(path: path, reason: "cannot read the suppressions file")
        }
        return try parse(text, path: path)
    }

    public static func parse(_ text: String, path: String = "<suppressions>") throws -> SuppressionFile {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("{") || trimmed.hasPrefix("[") {
            struct Wrapper: Decodable { var suppressions: [Suppression] }
            let data = Data(trimmed.utf8)
            var entries: [Suppression]
            do {
                if trimmed.hasPrefix("[") {
                    entries = try JSONDecoder().decode([Suppression].self, from: data)
                } else {
                    entries = try JSONDecoder().decode(Wrapper.self, from: data).suppressions
                }
            } catch {
                throw GateInputError(path: path, reason: "not a suppressions file: \(error)")
            }
            for (i, e) in entries.enumerated() {
                entries[i].origin = "\(path)#\(i + 1)"
                try validate(e, at: "\(path) entry \(i + 1)")
            }
            return SuppressionFile(entries: entries)
        }
        var entries: [Suppression] = []
        for (n, raw) in text.components(separatedBy: "\n").enumerated() {
            var line = raw
            if let hash = line.firstIndex(of: "#"), line[..<hash].allSatisfy({ $0 == " " || $0 == "\t" }) { line = String(line[..<hash]) }
            var words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            if words.isEmpty { continue }
            let at = "\(path):\(n + 1)"
            guard words.count >= 2, words[0] == "fingerprint" || words[0] == "symbol" else {
                throw GateInputError(path: at, reason: "expected `fingerprint FP [kind=KIND] REASON` or `symbol GLOB [kind=KIND] REASON`")
            }
            var s = Suppression(reason: "", origin: at)
            if words[0] == "fingerprint" { s.fingerprint = words[1] } else { s.symbol = words[1] }
            words.removeFirst(2)
            if let k = words.first, k.hasPrefix("kind=") { s.kind = String(k.dropFirst(5)); words.removeFirst() }
            s.reason = words.joined(separator: " ")
            try validate(s, at: at)
            entries.append(s)
        }
        return SuppressionFile(entries: entries)
    }

    static func validate(_ s: Suppression, at: String) throws {
        if (s.fingerprint == nil) == (s.symbol == nil) {
            throw GateInputError(path: at, reason: "a suppression names exactly one of `fingerprint` or `symbol`")
        }
        if s.reason.trimmingCharacters(in: .whitespaces).isEmpty {
            throw GateInputError(path: at, reason: "a suppression needs a reason")
        }
        if let k = s.kind, FindingKind(rawValue: k) == nil {
            throw GateInputError(path: at, reason: "unknown finding kind '\(k)' (kinds: \(FindingKind.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
    }
}

/// Which confidences count for `tangle check --confidence`.
public enum ConfidenceFilter: String, CaseIterable, Sendable {
    case actual, predicted, any

    public func admits(_ c: Confidence) -> Bool {
        switch self {
        case .any: true
        case .actual: c == .actual || c == .confirmed     // confirmed: it did happen, in the steered run
        case .predicted: c == .predicted || c == .confirmed  // and the analyzer predicted it
        }
    }
}

public struct GateOptions: Sendable {
    /// Findings below this severity never fail the gate.
    public var failOn: Severity = .note
    public var confidence: ConfidenceFilter = .any
    /// Fail (exit 1) when a suppression matches nothing.
    public var failOnStale = false
    public init() {}
}

/// What `tangle check` decided, finding by finding.
public struct GateResult: Sendable {
    /// Not in the baseline, not suppressed, at or above the thresholds: these fail the gate.
    public var new: [Finding] = []
    /// In the baseline.
    public var known: [Finding] = []
    public var suppressed: [(finding: Finding, by: Suppression)] = []
    /// Not in the baseline but below `--fail-on` or outside `--confidence`: reported only.
    public var belowThreshold: [Finding] = []
    /// Suppressions that matched no finding of this run.
    public var staleSuppressions: [Suppression] = []
    /// Baseline entries not seen in this run (fixed, or not reached).
    public var unseenBaseline: [Baseline.Entry] = []
    public var options: GateOptions

    public var exitCode: Int32 {
        if !new.isEmpty { return 1 }
        if options.failOnStale && !staleSuppressions.isEmpty { return 1 }
        return 0
    }

    public func render() -> String {
        var out = "tangle check: \(new.count) new, \(known.count) known, \(suppressed.count) suppressed, \(belowThreshold.count) below threshold (fail on \(options.failOn.rawValue), confidence \(options.confidence.rawValue))\n"
        func line(_ tag: String, _ f: Finding, _ extra: String = "") -> String {
            var s = "\(tag) [\(f.severity.rawValue), \(f.confidence.rawValue), \(f.kind.rawValue)] \(f.title)\n      fingerprint \(f.fingerprint)\n"
            if let p = ExportSupport.primaryFrame(f) { s += "      at \(ExportSupport.describe(p.frame))\n" }
            if !extra.isEmpty { s += "      \(extra)\n" }
            return s
        }
        for f in new { out += line("NEW  ", f) }
        for f in belowThreshold { out += line("below", f) }
        for f in known { out += line("known", f) }
        for (f, s) in suppressed { out += line("supp.", f, "suppressed by \(s.display) (\(s.origin ?? "")): \(s.reason)") }
        for s in staleSuppressions {
            out += "stale suppression: \(s.display) (\(s.origin ?? "")) matches no finding; remove it. Reason was: \(s.reason)\n"
        }
        for e in unseenBaseline {
            out += "not seen: baseline entry \(e.fingerprint) (\(e.kind): \(e.title)); if it was fixed, refresh the baseline with `tangle baseline`\n"
        }
        out += exitCode == 0 ? "PASS\n" : (new.isEmpty ? "FAIL: stale suppressions\n" : "FAIL: \(new.count) new finding\(new.count == 1 ? "" : "s") not in the baseline\n")
        return out
    }
}

public enum Gate {
    public static func evaluate(report: Report, baseline: Baseline, suppressions: SuppressionFile = SuppressionFile(entries: []),
                                options: GateOptions = GateOptions()) -> GateResult {
        var r = GateResult(options: options)
        let known = baseline.fingerprints
        var used = Set<Int>()
        var seen = Set<String>()
        for (_, f) in ExportSupport.ranked(report.findings) {
            seen.insert(f.fingerprint)
            // Every suppression that matches is "used" (not stale), the first one is cited.
            var by: Suppression?
            for (i, s) in suppressions.entries.enumerated() where s.matches(f) {
                used.insert(i)
                if by == nil { by = s }
            }
            if let by {
                r.suppressed.append((f, by))
            } else if known.contains(f.fingerprint) {
                r.known.append(f)
            } else if f.severity < options.failOn || !options.confidence.admits(f.confidence) {
                r.belowThreshold.append(f)
            } else {
                r.new.append(f)
            }
        }
        r.staleSuppressions = suppressions.entries.enumerated().filter { !used.contains($0.offset) }.map(\.element)
        r.unseenBaseline = baseline.findings.filter { !seen.contains($0.fingerprint) }
        return r
    }
}
