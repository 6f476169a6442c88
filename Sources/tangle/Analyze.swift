import ArgumentParser
import Foundation
import TangleAnalysis

/// `tangle analyze PATH… [--format F] [--output FILE] [--symbols DIR]`: every concurrency bug in the
/// traces. Exit status: 0 no finding, 1 findings, 2 unusable input (message on stderr naming the file).
struct Analyze: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Analyze trace files or directories and report deadlocks, hangs, leaks and misuse.",
        discussion: """
        Formats: text (default; colored on a terminal unless NO_COLOR is set), json (the stable report), \
        and the exporters: \(ExportFormat.allCases.map(\.rawValue).joined(separator: ", ")).
        Exit status: 0 no finding, 1 findings, 2 unusable input (no trace files, or none of them a \
        readable Tangle trace). A progress line is shown on stderr when it is a terminal and the \
        analysis takes more than a second.
        """
    )

    @Argument(help: "Trace files (.jsonl.lz4, .jsonl) or directories holding them.")
    var paths: [String]

    @OptionGroup var report: ReportOptions

    @Option(name: .customLong("symbols"), help: "A directory to look for binaries in when they moved (repeatable).")
    var symbols: [String] = []

    @Option(name: .long, help: "Seconds an exited child may stay unreaped before it is reported as a zombie.")
    var zombieThreshold: Double = 1.0

    @Option(name: .long, help: "Colors in text output: auto (terminal and no NO_COLOR), always, never.")
    var color: ColorChoice = .auto

    func run() throws {
        let exportFormat = report.format.exporter
        if let budget = report.budget, budget < 100 {
            throw failUnusable("--budget must be at least 100 tokens")
        }
        var options = AnalysisOptions()
        options.symbolDirectories = symbols
        options.zombieThresholdNs = UInt64(max(0, zombieThreshold) * 1e9)
        // The analysis keeps no events; the formats that show some get them from a second pass
        // that keeps only what they show (memory bounded by the evidence, not the trace).
        options.keepEvents = false
        var result: AnalysisResult
        let progress = ProgressLine(paths: paths)
        options.progress = progress.progress
        defer { progress.stop() }
        do {
            result = try Analyzer.analyze(paths: paths, options: options)
            progress.stop()
            try requireReadableTrace(result, paths: paths)
            if let exportFormat {
                try EvidenceWindows.fill(&result, format: exportFormat, paths: paths,
                                         options: report.exportOptions,
                                         reorderWindow: options.reorderWindow)
            }
        } catch let e as ExitCode {
            throw e
        } catch {
            throw failUnusable("\(error)")
        }
        let text: String
        do {
            var eo = report.exportOptions
            eo.sourceRoots.append(FileManager.default.currentDirectoryPath)
            text = try ReportOutput.render(result, as: report.format, color: color.enabled(writingToFile: report.output != nil), options: eo)
        } catch {
            throw failUnusable("could not render the report: \(error)")
        }
        if let output = report.output {
            guard FileManager.default.createFile(atPath: output, contents: Data(text.utf8)) else {
                throw failUnusable("cannot write \(output)")
            }
        } else {
            FileHandle.standardOutput.write(Data(text.utf8))
        }
        if !result.report.findings.isEmpty { throw ExitCode(1) }
    }

}
