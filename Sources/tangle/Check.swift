import ArgumentParser
import Foundation
import TangleAnalysis
import TangleTraceReader

/// `tangle check PATH… --baseline FILE`: the CI gate.
struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "CI gate: fail on findings whose fingerprints are not in the baseline.",
        discussion: """
        Analyzes the trace files or directories and compares each finding's fingerprint with the \
        baseline (written by `tangle baseline`). A finding is, in this order: suppressed (it matches \
        an entry of --suppressions), known (its fingerprint is in the baseline), below threshold \
        (severity under --fail-on, or confidence not admitted by --confidence), or new.

        Suppressions file: JSON {"suppressions":[{"fingerprint":"…","reason":"…"}, \
        {"symbol":"GLOB","kind":"KIND","reason":"…"}]} or text lines \
        `fingerprint FP [kind=KIND] REASON…` / `symbol GLOB [kind=KIND] REASON…` (# comments). \
        A symbol glob (fnmatch: * ? […]) matches the demangled function name of any frame of the \
        finding. Suppressions that match no finding are reported as stale.

        Exit status: 0 no new finding; 1 new findings (or stale suppressions with --fail-on-stale); \
        2 unusable input (no trace, unreadable baseline or suppressions, bad arguments).
        """)

    @Argument(help: "Trace files (.jsonl.lz4, .jsonl) or directories.")
    var paths: [String] = []

    @Option(name: .long, help: "The baseline file (JSON written by `tangle baseline`).")
    var baseline: String

    @Option(name: .long, help: "A suppressions file (JSON or text, see above).")
    var suppressions: String?

    @Option(name: .customLong("fail-on"), help: "Lowest severity that fails: note, warning or error.")
    var failOn: String = "note"

    @Option(name: .long, help: "Confidence that fails: actual, predicted or any.")
    var confidence: String = "any"

    @Flag(name: .customLong("fail-on-stale"), help: "Also fail (exit 1) when a suppression matches nothing.")
    var failOnStale = false

    @Option(name: .long, help: "Extra directories to find the traced binaries in (for symbols).")
    var symbols: [String] = []

    func validate() throws {
        if paths.isEmpty { throw ValidationError("give at least one trace file or directory") }
        if Severity(rawValue: failOn) == nil { throw ValidationError("--fail-on must be note, warning or error") }
        if ConfidenceFilter(rawValue: confidence) == nil { throw ValidationError("--confidence must be actual, predicted or any") }
    }

    func run() throws {
        var options = GateOptions()
        options.failOn = Severity(rawValue: failOn)!
        options.confidence = ConfidenceFilter(rawValue: confidence)!
        options.failOnStale = failOnStale
        let base: Baseline
        let supp: SuppressionFile
        do {
            base = try Baseline.load(path: baseline)
            supp = try suppressions.map { try SuppressionFile.load(path: $0) } ?? SuppressionFile(entries: [])
        } catch {
            throw failUnusable("\(error)")
        }
        let result = try analyzeOrFail(paths, symbols: symbols)
        let gate = Gate.evaluate(report: result.report, baseline: base, suppressions: supp, options: options)
        writeStdout(gate.render())
        for p in result.report.problems {
            writeStderr("tangle: warning: \(p.kind)\(p.file.map { " in \($0)" } ?? ""): \(p.detail)\n")
        }
        if gate.exitCode != 0 { throw ExitCode(gate.exitCode) }
    }
}

// MARK: helpers shared by check, baseline, run and watch

/// Runs the analyzer; unusable input exits 2 with the message.
func analyzeOrFail(_ paths: [String], symbols: [String] = [], keepEvents: Bool = true, progressLine: Bool = true) throws -> AnalysisResult {
    var options = AnalysisOptions()
    options.symbolDirectories = symbols
    options.keepEvents = keepEvents
    do {
        _ = try findTraceFiles(paths)   // no trace files at all: unusable, whatever the analyzer does
        let progress = ProgressLine(paths: paths, enabled: progressLine && isatty(2) != 0)
        options.progress = progress.progress
        defer { progress.stop() }
        let result = try Analyzer.analyze(paths: paths, options: options)
        progress.stop()
        try requireReadableTrace(result, paths: paths)
        return result
    } catch let e as ExitCode {
        throw e
    } catch {
        throw failUnusable("\(error)")
    }
}

func writeStdout(_ s: String) {
    FileHandle.standardOutput.write(Data(s.utf8))
}

func writeStderr(_ s: String) {
    FileHandle.standardError.write(Data(s.utf8))
}

/// Writes `text` to `path` ("-" or nil: stdout).
func writeOutput(_ text: String, to path: String?) throws {
    guard let path, path != "-" else { writeStdout(text); return }
    do {
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    } catch {
        throw failUnusable("\(path): cannot write: \(error.localizedDescription)")
    }
}
