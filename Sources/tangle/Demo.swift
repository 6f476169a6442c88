import ArgumentParser
import Foundation
import TangleAnalysis

/// `tangle demo [--list] [--scenario NAME] [--format F] [--trace-dir DIR]`: runs the scenarios of
/// `tangle-scenarios` for real (each traced into its own directory, hanging ones stopped by a
/// timeout), analyzes each trace and prints the analysis. It is also a self-check: each analysis is
/// compared with `traces/<name>/expected.json`; the exit status is 0 when every scenario produced
/// exactly what it expects (and nothing else), 1 otherwise, 2 for unusable arguments.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the bug scenarios for real, analyze each trace, and check the findings against traces/*/expected.json.",
        discussion: """
        Each scenario runs as `tangle run --timeout T -- tangle-scenarios NAME` into DIR/NAME (a fresh \
        temporary directory unless --trace-dir is given), so hanging scenarios are stopped by SIGTERM \
        to their process group and analyzed as they stand. Shared memory a scenario leaked on purpose \
        is unlinked afterwards. DIR/NAME.log holds tangle run's output, DIR/NAME.run.json its JSON \
        report (with the "run" outcome).
        With --scenario NAME --format json, standard output is exactly that scenario's report (as \
        `tangle analyze --format json` prints it); the self-check verdict goes to standard error.
        --record-corpus DIR copies each scenario's trace files into DIR/NAME/ (replacing the old ones; \
        expected.json is kept): that is how the traces/ corpus is regenerated.
        Exit status: 0 every scenario matched its expected.json, 1 a mismatch, 2 unusable arguments.
        """)

    @Flag(name: .long, help: "List the scenarios and exit.")
    var list = false

    @Option(name: .long, help: "Run only this scenario (repeatable).")
    var scenario: [String] = []

    @Option(name: .long, help: "Report format: text (default), json, or an exporter format.")
    var format: OutputFormat = .text

    @Option(name: .long, help: "Keep the traces in DIR/<scenario>/ (default: a new temporary directory, removed unless a check failed).")
    var traceDir: String?

    @Option(name: .long, help: "Directory holding <scenario>/expected.json (default: ./traces, or the repository's traces/ above this executable).")
    var corpus: String?

    @Option(name: .customLong("record-corpus"), help: "Copy each scenario's trace files into DIR/<scenario>/.")
    var recordCorpus: String?

    @Option(name: .long, help: "Seconds before a scenario's process group is stopped.")
    var timeout: Double = 3

    @Option(name: .long, help: "Seconds between SIGTERM and SIGKILL.")
    var grace: Double = 1

    @Option(name: .long, help: "Scenarios run at the same time.")
    var jobs: Int = 4

    @Flag(name: .long, help: "Print only the self-check summary (no reports).")
    var quiet = false

    @Option(name: .long, help: "Colors in text output: auto, always, never.")
    var color: ColorChoice = .auto

    func validate() throws {
        if timeout <= 0 { throw ValidationError("--timeout must be positive") }
        if grace < 0 { throw ValidationError("--grace must not be negative") }
        if jobs < 1 { throw ValidationError("--jobs must be at least 1") }
    }

    func run() throws {
        let executable: String
        let infos: [ScenarioRunner.Info]
        do {
            executable = try ScenarioRunner.scenariosExecutable()
            infos = try ScenarioRunner.list(executable: executable) + PythonScenarios.infos()
        } catch {
            throw failUnusable("\(error)")
        }
        if list {
            let width = infos.map(\.name.count).max() ?? 0
            for i in infos {
                print(i.name.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + (i.hangs ? "[hangs] " : "") + i.summary)
            }
            return
        }
        for name in scenario where !infos.contains(where: { $0.name == name }) {
            throw failUnusable("unknown scenario '\(name)' (tangle demo --list names them)")
        }
        let selected = scenario.isEmpty ? infos : scenario.compactMap { n in infos.first { $0.name == n } }
        let corpusDir: String
        do { corpusDir = try ScenarioRunner.corpusDirectory(corpus) } catch { throw failUnusable("\(error)") }

        let base: String
        let temporary = traceDir == nil
        if let traceDir {
            base = traceDir.hasPrefix("/") ? traceDir : FileManager.default.currentDirectoryPath + "/" + traceDir
            do { try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true) } catch {
                throw failUnusable("\(traceDir): cannot create the directory: \(error.localizedDescription)")
            }
            for s in selected {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: "\(base)/\(s.name)")) ?? []
                if names.contains(where: { $0.hasSuffix(".jsonl.lz4") || $0.hasSuffix(".jsonl") }) {
                    throw failUnusable("\(base)/\(s.name) already holds trace files: remove them or choose another --trace-dir")
                }
            }
        } else {
            base = try makeTemporaryDirectory("demo")
        }

        let single = selected.count == 1 && !scenario.isEmpty
        var options = AnalysisOptions()
        options.keepEvents = format.showsEvents
        let started = Date()
        let outcomes = ScenarioRunner.runAll(
            selected.map(\.name), executable: executable, jobs: jobs, timeout: timeout, grace: grace, options: options,
            traceDir: { "\(base)/\($0)" }, logFile: { "\(base)/\($0).log" },
            progress: { o in
                if !single && !quiet {
                    writeStderr("tangle demo: \(o.name) \(o.ended) (\(String(format: "%.1f", o.seconds)) s)\n")
                }
            })
        let elapsed = Date().timeIntervalSince(started)

        var failures: [(String, [String])] = []
        var jsonEntries: [DemoEntry] = []
        var table: [(name: String, want: String, got: String, ok: Bool)] = []
        let useColor = color.enabled()
        for (info, o) in zip(selected, outcomes) {
            let expected = ScenarioRunner.loadExpected(corpus: corpusDir, name: info.name)
            let problems = ScenarioRunner.check(o, expected: expected)
            if !problems.isEmpty { failures.append((info.name, problems)) }
            let verdict = problems.isEmpty ? "OK" : "MISMATCH"
            table.append((info.name, describe(expected?.findings), o.result.map { describe(ScenarioRunner.summarize($0.report)) } ?? "no analysis",
                          problems.isEmpty))
            if let recordCorpus, o.result != nil {
                record(o, into: "\(recordCorpus)/\(info.name)")
            }
            if single {
                if let result = o.result {
                    print(try render(result, color: useColor), terminator: "")
                }
                writeStderr("tangle demo: \(info.name): \(verdict)\(problems.isEmpty ? "" : ": " + problems.joined(separator: "; "))\n")
                continue
            }
            if quiet { continue }
            switch format {
            case .json:
                jsonEntries.append(DemoEntry(scenario: info.name, ok: problems.isEmpty, ended: o.ended, traceDir: o.traceDir,
                                             problems: problems, report: o.result?.report))
            default:
                print("━━ \(info.name)\(info.hangs ? " [hangs]" : ""): \(info.summary)")
                print("   \(o.ended) after \(String(format: "%.1f", o.seconds)) s; trace: \(o.traceDir)")
                if let result = o.result {
                    print(try render(result, color: useColor), terminator: "")
                } else {
                    print("   no analysis: \(o.analysisError ?? "?")")
                }
                print("   expected: \(describe(expected?.findings)) → \(verdict)")
                for p in problems { print("     - \(p)") }
                print("")
            }
        }
        if !single {
            if format == .json && !quiet {
                print(try DemoEntry.json(jsonEntries), terminator: "")
            }
            if format == .text && !quiet {
                let w1 = table.map(\.name.count).max() ?? 0, w2 = max(8, table.map(\.want.count).max() ?? 0)
                print("scenario".padding(toLength: w1, withPad: " ", startingAt: 0) + "  " + "expected".padding(toLength: w2, withPad: " ", startingAt: 0) + "  got")
                for r in table {
                    print(r.name.padding(toLength: w1, withPad: " ", startingAt: 0) + "  " + r.want.padding(toLength: w2, withPad: " ", startingAt: 0)
                          + "  " + (r.ok ? "OK" : "MISMATCH: " + r.got))
                }
                print("")
            }
            let ok = selected.count - failures.count
            let line = "tangle demo: \(ok)/\(selected.count) scenarios produced what traces/*/expected.json says (\(String(format: "%.1f", elapsed)) s)"
            if format == .text && !quiet { print(line) } else { writeStderr(line + "\n") }
            for (name, problems) in failures {
                writeStderr("tangle demo: MISMATCH \(name): \(problems.joined(separator: "; "))\n")
            }
        }
        if temporary {
            if failures.isEmpty {
                try? FileManager.default.removeItem(atPath: base)
            } else {
                writeStderr("tangle demo: traces kept in \(base)\n")
            }
        }
        if !failures.isEmpty { throw ExitCode(1) }
    }

    private func render(_ result: AnalysisResult, color: Bool) throws -> String {
        var eo = ExportOptions()
        eo.sourceRoots = [FileManager.default.currentDirectoryPath]
        return try ReportOutput.render(result, as: format, color: color, options: eo)
    }

    /// Replaces the trace files in `dir` with the run's (expected.json and other files stay).
    private func record(_ o: ScenarioRunner.Outcome, into dir: String) {
        let fm = FileManager.default
        try? fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for old in (try? fm.contentsOfDirectory(atPath: dir)) ?? [] where old.hasSuffix(".jsonl.lz4") || old.hasSuffix(".jsonl") {
            try? fm.removeItem(atPath: "\(dir)/\(old)")
        }
        for f in (try? fm.contentsOfDirectory(atPath: o.traceDir)) ?? [] where f.hasSuffix(".jsonl.lz4") {
            try? fm.copyItem(atPath: "\(o.traceDir)/\(f)", toPath: "\(dir)/\(f)")
        }
    }
}

/// "1× deadlock (actual), …" or "no finding".
private func describe(_ findings: [ScenarioRunner.Expected.Entry]?) -> String {
    guard let findings else { return "?" }
    return findings.isEmpty ? "no finding" : findings.map { "\($0.count)× \($0.kind) (\($0.confidence))" }.joined(separator: ", ")
}

/// One scenario in `tangle demo --format json`'s array.
private struct DemoEntry: Encodable {
    var scenario: String
    var ok: Bool
    var ended: String
    var traceDir: String
    var problems: [String]
    /// The scenario's report (null: no analysis).
    var report: Report?

    enum CodingKeys: String, CodingKey {
        case scenario, ok, ended, traceDir = "trace_dir", problems, report
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(scenario, forKey: .scenario)
        try c.encode(ok, forKey: .ok)
        try c.encode(ended, forKey: .ended)
        try c.encode(traceDir, forKey: .traceDir)
        try c.encode(problems, forKey: .problems)
        try c.encode(report, forKey: .report)   // null, not left out, when there was no analysis
    }

    static func json(_ entries: [DemoEntry]) throws -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try enc.encode(entries), as: UTF8.self) + "\n"
    }
}
