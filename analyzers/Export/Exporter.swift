import Foundation

/// The output formats of `tangle analyze --format` besides the analyzer's own `text` and `json`.
public enum ExportFormat: String, CaseIterable, Sendable {
    case sarif, junit, llm, llmJSON = "llm-json", perfetto, dot, html

    /// A file extension suitable for the format (used by `tangle run --output` and docs).
    public var fileExtension: String {
        switch self {
        case .sarif: "sarif"
        case .junit: "xml"
        case .llm: "md"
        case .llmJSON: "json"
        case .perfetto: "perfetto.json"
        case .dot: "dot"
        case .html: "html"
        }
    }
}

/// What the exporters may be told beyond the analysis result.
public struct ExportOptions: Sendable {
    /// Version string written into SARIF's tool driver, JUnit properties, HTML and LLM headers.
    public var toolVersion: String = Exporter.toolVersion
    /// Token budget of the `llm` / `llm-json` summaries. Tokens are estimated as characters / 4
    /// (rounded up), which over-counts for English prose and code with most tokenizers.
    public var llmBudgetTokens: Int = 4000
    /// Extra directories where source files are looked up (besides `ExportContext.sourceRoots`):
    /// a frame's file is tried as is, then by its trailing path components under each root.
    public var sourceRoots: [String] = []
    /// The repository root that SARIF locations are made relative to. nil: the nearest directory
    /// holding `.git` above the current directory, else the current directory.
    public var repositoryRoot: String?
    /// Source lines shown either side of a frame's line (LLM summary, HTML).
    public var contextLines: Int = 3
    /// Events per participant thread in the LLM timeline around a finding.
    public var timelineEventsPerThread: Int = 8
    /// Page title of the HTML report.
    public var title: String = "Tangle report"

    public init() {}
}

public enum ExportError: Error, CustomStringConvertible {
    case encoding(String)
    public var description: String {
        switch self {
        case .encoding(let what): "could not encode \(what)"
        }
    }
}

/// Renders an analysis result in one of the `ExportFormat`s. Every renderer is deterministic: the
/// same result and options give the same bytes (dictionaries are always walked in sorted order).
public enum Exporter {
    /// The version written by default into outputs.
    public static let toolVersion = "0.1.0"

    public static func render(_ format: ExportFormat, result: AnalysisResult, options: ExportOptions = ExportOptions()) throws -> String {
        switch format {
        case .sarif: try SARIFExporter.render(result: result, options: options)
        case .junit: JUnitExporter.render(result: result, options: options)
        case .llm: try LLMExporter.renderMarkdown(result: result, options: options)
        case .llmJSON: try LLMExporter.renderJSON(result: result, options: options)
        case .perfetto: try PerfettoExporter.render(result: result, options: options)
        case .dot: DotExporter.render(result: result, options: options)
        case .html: HTMLExporter.render(result: result, options: options)
        }
    }
}
