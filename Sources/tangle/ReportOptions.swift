import ArgumentParser
import Foundation
import TangleAnalysis
import TangleTraceFormat
import TangleTraceReader

/// What a report is printed as: the analyzer's own text and JSON, or one of the exporters. One
/// type for every verb that prints a report (analyze, run, watch, demo), so that a new format is
/// added in one place.
enum OutputFormat: String, CaseIterable, ExpressibleByArgument, Sendable {
    case text, json
    case sarif, junit, llm, llmJSON = "llm-json", perfetto, dot, html

    /// The exporter behind this format (nil: text and json, which the analyzer renders itself).
    var exporter: ExportFormat? { ExportFormat(rawValue: rawValue) }

    /// The formats that show events: the analysis keeps them, or a second pass fills them in.
    var showsEvents: Bool { exporter != nil }

    static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }
}

/// `--color`: whether text output is colored.
enum ColorChoice: String, CaseIterable, ExpressibleByArgument, Sendable {
    case auto, always, never

    /// `auto`: a terminal on stdout, no NO_COLOR, TERM not dumb, and not written to a file.
    func enabled(writingToFile: Bool = false) -> Bool {
        switch self {
        case .always: return true
        case .never: return false
        case .auto:
            if writingToFile { return false }
            if let nc = ProcessInfo.processInfo.environment["NO_COLOR"], !nc.isEmpty { return false }
            if ProcessInfo.processInfo.environment["TERM"] == "dumb" { return false }
            return isatty(1) != 0
        }
    }
}

/// The report options shared by the verbs that print a report (`@OptionGroup`).
struct ReportOptions: ParsableArguments {
    @Option(name: .long, help: "Report format: text, json, or an exporter.")
    var format: OutputFormat = .text

    @Option(name: [.short, .long], help: "Write the report to FILE instead of standard output.")
    var output: String?

    @Option(name: .long, help: "LLM summary budget in tokens (--format llm / llm-json; default 4000).")
    var budget: Int?

    @Option(name: .customLong("source-root"), help: "Directories to find source files in (LLM summary, HTML); the current directory is always tried.")
    var sourceRoots: [String] = []

    /// The exporters' options from these flags.
    var exportOptions: ExportOptions {
        var o = ExportOptions()
        if let budget { o.llmBudgetTokens = budget }
        o.sourceRoots = sourceRoots
        return o
    }
}

/// The one render path of every verb: a report as `format`.
enum ReportOutput {
    /// `run`: what `tangle run` adds to the JSON report under "run".
    static func render(_ result: AnalysisResult, as format: OutputFormat, color: Bool = false,
                       options: ExportOptions = ExportOptions(), run: RunOutcome? = nil) throws -> String {
        switch format {
        case .text: return ReportRenderer.text(result.report, color: color)
        case .json: return try run.map { try $0.json(with: result.report) } ?? ReportRenderer.json(result.report)
        default: return try Exporter.render(format.exporter!, result: result, options: options)
        }
    }
}
