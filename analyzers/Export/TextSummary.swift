import Foundation

/// A compact plain-text report (the CLI prints the analyzer's `ReportRenderer.text`; this one is
/// kept for callers that want a short listing; the CLI chooses formats in `ReportOutput`).
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
}
