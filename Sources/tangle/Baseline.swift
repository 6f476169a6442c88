import ArgumentParser
import Foundation
import TangleAnalysis

/// `tangle baseline PATH… --output FILE`: records the fingerprints of today's findings.
struct BaselineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "baseline",
        abstract: "Write a CI baseline: the fingerprints of the findings in these traces.",
        discussion: """
        The baseline is JSON: {"version":1,"tool":"tangle","findings":[{"fingerprint":…,"kind":…,"title":…}]}, \
        one entry per fingerprint, sorted by fingerprint, with no times, pids or counts, so the same \
        bugs give the same file. Keep it in the repository (e.g. .tangle/baseline.json) and gate \
        with `tangle check PATH… --baseline FILE`.
        Exit status: 0 written; 2 unusable input.
        """)

    @Argument(help: "Trace files (.jsonl.lz4, .jsonl) or directories.")
    var paths: [String] = []

    @Option(name: [.short, .long], help: "Where to write the baseline (- for stdout).")
    var output: String

    @Option(name: .long, help: "Merge with this existing baseline: its entries are kept (known bugs not reached in this run, and their titles).")
    var merge: String?

    @Option(name: .long, help: "Extra directories to find the traced binaries in (for symbols).")
    var symbols: [String] = []

    func validate() throws {
        if paths.isEmpty { throw ValidationError("give at least one trace file or directory") }
    }

    func run() throws {
        let result = try analyzeOrFail(paths, symbols: symbols, keepEvents: false)
        var baseline = Baseline(report: result.report)
        if let merge {
            let old: Baseline
            do { old = try Baseline.load(path: merge) } catch { throw failUnusable("\(error)") }
            // Old entries win for fingerprints in both (titles may carry counts that vary by run),
            // so refreshing a baseline only changes lines for bugs that came or went.
            let had = old.fingerprints
            baseline.findings = (old.findings + baseline.findings.filter { !had.contains($0.fingerprint) }).sorted { $0.fingerprint < $1.fingerprint }
        }
        if output != "-", let slash = output.lastIndex(of: "/"), slash != output.startIndex {
            // (NSString.deletingLastPathComponent traps on "-" in this Foundation: split by hand.)
            try? FileManager.default.createDirectory(atPath: String(output[..<slash]), withIntermediateDirectories: true)
        }
        try writeOutput(try baseline.encoded(), to: output)
        if output != "-" {
            writeStderr("tangle: wrote \(baseline.findings.count) fingerprint\(baseline.findings.count == 1 ? "" : "s") to \(output)\n")
        }
    }
}
