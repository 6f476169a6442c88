import Foundation

/// A compact plain-text report (the CLI prints the analyzer's `ReportRenderer.text`; this one is
/// kept for callers that want a short listing), and the format dispatch of run/watch.
public enum TextSummary {
    public static func render(_ report: Report, maxFrames: Int = 6) -> String {
        var out = ""
        let ranked = ExportSupport.ranked(report.findings).map(\.finding)
        if ranked.isEmpty {
            out += "tangle: no findings (\(report.stats.processes) processes, \(report.stats.threads) threads, \(report.stats.events) events)\n"
        } else {
            out += "tangle: \(ranked.count) finding\(ranked.count == 1 ? "" : "s") (\(report.stats.processes) processes, \(report.stats.threads) threads, \(report.stats.events) events)\n"
        }
        for (i, f) in ranked.enumerated() {
            out += "\n\(i + 1). [\(f.severity.rawValue), \(f.confidence.rawValue), \(f.kind.rawValue)] \(f.title)\n"
            for p in f.participants {
                out += "   - \(p.process)\(p.thread.map { "/" + $0 } ?? "") (pid \(p.pid), tid \(p.tid)) \(p.role): \(p.detail)\n"
            }
            if !f.explanation.isEmpty { out += "   \(f.explanation)\n" }
            if !f.fix.isEmpty { out += "   Fix: \(f.fix)\n" }
            if let why = f.why, !why.isEmpty { out += "   Why it was kept: \(why)\n" }
            for s in f.stacks {
                out += "   \(s.label):\n"
                for (j, fr) in s.frames.prefix(maxFrames).enumerated() { out += "     #\(j) \(ExportSupport.describe(fr))\n" }
                if s.frames.count > maxFrames { out += "     … \(s.frames.count - maxFrames) more frames\n" }
                if let w = s.warning { out += "     (\(w))\n" }
            }
            out += "   fingerprint \(f.fingerprint)\n"
        }
        if !report.problems.isEmpty {
            out += "\ntrace problems:\n"
            for p in report.problems { out += "  - \(p.kind)\(p.file.map { " in \($0)" } ?? ""): \(p.detail)\n" }
        }
        return out
    }

    /// The report as JSON (the `Report` Codable shape, sorted keys).
    public static func json(_ report: Report) throws -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        guard let s = String(data: try enc.encode(report), encoding: .utf8) else { throw ExportError.encoding("report") }
        return s + "\n"
    }

    /// Renders `text`, `json` (the analyzer's own renderers, as `tangle analyze` prints them) or
    /// any `ExportFormat` name; nil for an unknown name.
    public static func render(format: String, result: AnalysisResult, options: ExportOptions) throws -> String? {
        switch format {
        case "text": return ReportRenderer.text(result.report, color: false)
        case "json": return try ReportRenderer.json(result.report)
        default:
            guard let f = ExportFormat(rawValue: format) else { return nil }
            return try Exporter.render(f, result: result, options: options)
        }
    }

    public static var formatNames: [String] { ["text", "json"] + ExportFormat.allCases.map(\.rawValue) }
}
