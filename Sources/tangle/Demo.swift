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
        is unlinked afterwards.
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
    var format: String = "text"

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
    var color: String = "auto"

    func validate() throws {
        if !TextSummary.formatNames.contains(format) {
            throw ValidationError("--format must be one of \(TextSummary.formatNames.joined(separator: ", "))")
        }
        if timeout <= 0 { throw ValidationError("--timeout must be positive") }
        if grace < 0 { throw ValidationError("--grace must not be negative") }
        if jobs < 1 { throw ValidationError("--jobs must be at least 1") }
        if !["auto", "always", "never"].contains(color) { throw ValidationError("--color must be auto, always or never") }
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
        options.keepEvents = !["text", "json"].contains(format)
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
        var jsonEntries: [String] = []
        var table: [(name: String, want: String, got: String, ok: Bool)] = []
        let useColor = wantsColor()
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
            case "json":
                let report = try o.result.map { try ReportRenderer.json($0.report) } ?? "null"
                let entry = """
                {"scenario": \(jsonString(info.name)), "ok": \(problems.isEmpty), "ended": \(jsonString(o.ended)), \
                "trace_dir": \(jsonString(o.traceDir)), "problems": [\(problems.map(jsonString).joined(separator: ", "))], \
                "report": \(report.trimmingCharacters(in: .whitespacesAndNewlines))}
                """
                jsonEntries.append(entry)
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
            if format == "json" && !quiet {
                print("[\n" + jsonEntries.joined(separator: ",\n") + "\n]")
            }
            if format == "text" && !quiet {
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
            if format == "text" && !quiet { print(line) } else { writeStderr(line + "\n") }
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
        switch format {
        case "text": return ReportRenderer.text(result.report, color: color)
        case "json": return try ReportRenderer.json(result.report)
        default:
            var eo = ExportOptions()
            eo.sourceRoots = [FileManager.default.currentDirectoryPath]
            return try Exporter.render(ExportFormat(rawValue: format)!, result: result, options: eo)
        }
    }

    private func wantsColor() -> Bool {
        switch color {
        case "always": return true
        case "never": return false
        default:
            if let nc = ProcessInfo.processInfo.environment["NO_COLOR"], !nc.isEmpty { return false }
            if ProcessInfo.processInfo.environment["TERM"] == "dumb" { return false }
            return isatty(1) != 0
        }
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

private func jsonString(_ s: String) -> String {
    let data = (try? JSONEncoder().encode(s)) ?? Data("\"\"".utf8)
    return String(decoding: data, as: UTF8.self)
}
