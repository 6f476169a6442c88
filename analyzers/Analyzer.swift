import TangleTrace

/// Options of one analysis run (the analyzer helper extends this).
public struct AnalysisOptions: Sendable {
    /// Report a zombie when an exited child stays unreaped longer than this while its parent lives.
    public var zombieThresholdNs: UInt64 = 1_000_000_000
    /// Extra directories to find binaries in when the traced paths moved (`--symbols DIR`).
    public var symbolDirectories: [String] = []
    /// Keep the merged events for exporters (timeline, LLM); off for bounded-memory runs.
    public var keepEvents: Bool = true
    public init() {}
}

public struct AnalysisResult: Sendable {
    public var report: Report
    public var context: ExportContext
    public init(report: Report, context: ExportContext) {
        self.report = report
        self.context = context
    }
}

/// The analyzer's single entry point: every CLI verb (analyze, check, run, watch, demo) calls it.
public enum Analyzer {
    /// Reads the trace files or directories at `paths` and runs every pass.
    /// Throws only for unusable input (nothing readable at all); damage is in `report.problems`.
    public static func analyze(paths: [String], options: AnalysisOptions = AnalysisOptions()) throws -> AnalysisResult {
        // SCAFFOLD: replaced by the analyzer helper (issue 4) with the real passes.
        AnalysisResult(report: Report(findings: []), context: ExportContext())
    }
}
