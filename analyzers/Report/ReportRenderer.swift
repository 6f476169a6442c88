import Foundation

/// The analyzer's own renderers: readable text (colored on a terminal) and stable JSON.
public enum ReportRenderer {
    /// Stable JSON: sorted keys, findings in the report's deterministic order, a final newline.
    public static func json(_ report: Report) throws -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try enc.encode(report)
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    private struct Style {
        let color: Bool
        func wrap(_ s: String, _ code: String) -> String { color ? "\u{1B}[\(code)m\(s)\u{1B}[0m" : s }
        func bold(_ s: String) -> String { wrap(s, "1") }
        func dim(_ s: String) -> String { wrap(s, "2") }
        func severity(_ sev: Severity) -> String {
            switch sev {
            case .error: wrap("error", "1;31")
            case .warning: wrap("warning", "1;33")
            case .note: wrap("note", "1;36")
            }
        }
    }

    /// Human-readable text. `color`: ANSI colors (the CLI turns them on for a terminal without NO_COLOR).
    public static func text(_ report: Report, color: Bool) -> String {
        let st = Style(color: color)
        var out = ""
        let errors = report.findings.filter { $0.severity == .error }.count
        let warnings = report.findings.filter { $0.severity == .warning }.count
        let n = report.findings.count
        let summary = n == 0
            ? "no concurrency bugs found"
            : "\(n) finding\(n == 1 ? "" : "s") (\(errors) error\(errors == 1 ? "" : "s"), \(warnings) warning\(warnings == 1 ? "" : "s"))"
        out += st.bold("tangle: \(summary)") + st.dim(" — \(report.stats.processes) process(es), \(report.stats.threads) thread(s), \(report.stats.events) events, \(report.stats.files) file(s)") + "\n"
        let t0 = report.findings.flatMap { $0.evidence.map(\.time) }.min() ?? 0
        for (i, f) in report.findings.enumerated() {
            out += "\n"
            out += "\(i + 1). " + st.severity(f.severity) + " " + st.bold(f.kind.rawValue) + " [\(f.confidence.rawValue)] " + st.dim("fingerprint \(f.fingerprint)") + "\n"
            out += "   " + st.bold(f.title) + "\n"
            if !f.participants.isEmpty {
                out += "   participants:\n"
                for p in f.participants {
                    let who = "\(p.process) (pid \(p.pid)\(p.tid != p.pid ? ", tid \(p.tid)" : "")\(p.thread.map { ", \($0)" } ?? ""))"
                    out += "     \(p.role.rawValue.padding(toLength: 16, withPad: " ", startingAt: 0)) \(who): \(p.detail)\n"
                }
            }
            out += wrapText("what happened: " + f.explanation, indent: "   ")
            if let why = f.why { out += wrapText("why reported: " + why, indent: "   ") }
            if !f.evidence.isEmpty {
                out += "   evidence:\n"
                for e in f.evidence {
                    let dt = Double(e.time &- t0) / 1e9
                    let ts = String(format: "+%.6fs", dt)
                    out += "     " + st.dim(ts) + "  pid \(e.pid) tid \(e.tid) #\(e.seq)  \(e.kind)" + (e.note.map { "  \($0)" } ?? "") + "\n"
                }
            }
            for s in f.stacks {
                out += "   stack — \(s.label)" + (s.warning.map { st.dim(" (\($0))") } ?? "") + "\n"
                for (k, fr) in s.frames.prefix(12).enumerated() {
                    var line = "     #\(k) " + (fr.function ?? "???")
                    if let file = fr.file {
                        line += " " + st.dim("(\((file as NSString).lastPathComponent)\(fr.line.map { ":\($0)" } ?? ""))")
                    }
                    line += st.dim(" [\(fr.module)+0x\(String(fr.offset, radix: 16))]")
                    if fr.inlined { line += st.dim(" [inlined]") }
                    out += line + "\n"
                }
                if s.frames.count > 12 { out += "     … \(s.frames.count - 12) more frame(s)\n" }
            }
            out += wrapText(st.bold("fix:") + " " + f.fix, indent: "   ")
        }
        if !report.problems.isEmpty {
            out += "\n" + st.bold("trace problems (the analysis went as far as the input):") + "\n"
            for p in report.problems {
                out += "  - \(p.kind)" + (p.file.map { " [\($0)]" } ?? "") + ": \(p.detail)\n"
            }
        }
        if !report.ruledOut.isEmpty {
            out += "\n" + st.dim("ruled out:") + "\n"
            for r in report.ruledOut {
                out += st.dim("  - \(r.kind.rawValue) (\(r.reason)): \(r.detail)") + "\n"
            }
        }
        return out
    }

    /// Wraps a paragraph at ~100 columns with a hanging indent.
    static func wrapText(_ text: String, indent: String, width: Int = 100) -> String {
        var out = ""
        var line = indent
        for word in text.split(separator: " ", omittingEmptySubsequences: true) {
            if line.count + word.count + 1 > width && line.count > indent.count {
                out += line + "\n"
                line = indent + "  "
            }
            line += (line.hasSuffix(" ") ? "" : " ") + word
        }
        if line.trimmingCharacters(in: .whitespaces).count > 0 { out += line + "\n" }
        return out.replacingOccurrences(of: indent + " ", with: indent, options: [.anchored])
    }
}
