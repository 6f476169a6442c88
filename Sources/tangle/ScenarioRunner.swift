import Foundation
import TangleAnalysis
import TangleTraceReader

/// Runs the scenarios of `tangle-scenarios` for real and checks their analysis against
/// `traces/<name>/expected.json`. Used by `tangle demo`; the end-to-end tests drive the same code
/// through `tangle demo --trace-dir`.
///
/// One run: a fresh trace directory, `tangle run --trace-dir DIR --timeout T --grace G -- tangle-scenarios NAME`
/// (this executable's own `run` verb: process group, SIGTERM at the timeout so the recorders flush,
/// SIGKILL after the grace), whose JSON report says how the scenario ended and which shared memory
/// segments it left behind (unlinked here), then `Analyzer.analyze` of the directory.
enum ScenarioRunner {
    struct Info: Sendable {
        var name: String
        var hangs: Bool
        var summary: String
    }

    /// What one scenario run produced.
    struct Outcome: Sendable {
        var name: String
        var traceDir: String
        var logFile: String
        /// How `tangle run` says the scenario ended (nil: it wrote no report).
        var end: RunEnd?
        /// `end` in words: "exited with status 0", "stopped by the timeout", "killed by signal 9", …
        var ended: String
        var timedOut: Bool { end == .timedOut }
        var seconds: Double
        var result: AnalysisResult?
        var analysisError: String?
        var unlinkedSegments: [String]
    }

    /// `expected.json`: `{"scenario": NAME, "hangs": bool, "findings": [{"kind", "confidence", "count"}]}`.
    struct Expected: Codable, Sendable, Equatable {
        struct Entry: Codable, Sendable, Equatable, Hashable {
            var kind: String
            var confidence: String
            var count: Int
        }
        var scenario: String
        var hangs: Bool
        var findings: [Entry]
    }

    enum RunnerError: Error, CustomStringConvertible {
        case noScenariosBinary(String)
        case listFailed(String)
        case noCorpus(String)

        var description: String {
            switch self {
            case .noScenariosBinary(let s), .listFailed(let s), .noCorpus(let s): return s
            }
        }
    }

    // MARK: locating things

    /// This executable (`tangle`), resolved.
    static var selfExecutable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// `tangle-scenarios`: $TANGLE_SCENARIOS, or next to this executable (the build's products dir).
    static func scenariosExecutable() throws -> String {
        if let env = ProcessInfo.processInfo.environment["TANGLE_SCENARIOS"], !env.isEmpty {
            return env
        }
        let sibling = (selfExecutable as NSString).deletingLastPathComponent + "/tangle-scenarios"
        if FileManager.default.isExecutableFile(atPath: sibling) { return sibling }
        throw RunnerError.noScenariosBinary(
            "cannot find tangle-scenarios next to \(selfExecutable) (build it: swift build --product tangle-scenarios, or set TANGLE_SCENARIOS)")
    }

    /// The corpus directory holding `<name>/expected.json`: `explicit`, else `./traces`, else a
    /// `traces` directory above this executable (a build tree inside the repository).
    static func corpusDirectory(_ explicit: String?) throws -> String {
        let fm = FileManager.default
        func isCorpus(_ d: String) -> Bool {
            var isDir: ObjCBool = false
            return fm.fileExists(atPath: d, isDirectory: &isDir) && isDir.boolValue
                && ((try? fm.contentsOfDirectory(atPath: d)) ?? []).contains { fm.fileExists(atPath: "\(d)/\($0)/expected.json") }
        }
        if let explicit {
            if isCorpus(explicit) { return explicit }
            throw RunnerError.noCorpus("\(explicit): no <scenario>/expected.json there")
        }
        let cwd = fm.currentDirectoryPath + "/traces"
        if isCorpus(cwd) { return cwd }
        var dir = (selfExecutable as NSString).deletingLastPathComponent
        while dir != "/" && !dir.isEmpty {
            if isCorpus(dir + "/traces") { return dir + "/traces" }
            dir = (dir as NSString).deletingLastPathComponent
        }
        throw RunnerError.noCorpus("cannot find the scenario corpus (traces/<name>/expected.json): run from the repository root or pass --corpus DIR")
    }

    static func loadExpected(corpus: String, name: String) -> Expected? {
        let path = PythonScenarios.expectedPath(for: name) ?? "\(corpus)/\(name)/expected.json"
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(Expected.self, from: data)
    }

    // MARK: listing

    /// `tangle-scenarios --list`: "name  [hangs] summary" per line.
    static func list(executable: String) throws -> [Info] {
        let (status, out) = try capture([executable, "--list"])
        guard status == 0 else { throw RunnerError.listFailed("\(executable) --list failed with status \(status)") }
        return out.split(separator: "\n").compactMap { line in
            let parts = line.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            guard let name = parts.first else { return nil }
            var rest = parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : ""
            let hangs = rest.hasPrefix("[hangs]")
            if hangs { rest = String(rest.dropFirst(7)).trimmingCharacters(in: .whitespaces) }
            return Info(name: String(name), hangs: hangs, summary: rest)
        }
    }

    // MARK: running

    /// Runs scenario `name` into `traceDir` (created; must not hold trace files) with its output in
    /// `logFile`, then unlinks leaked shared memory and analyzes the trace.
    static func run(name: String, executable: String, traceDir: String, logFile: String,
                    timeout: Double, grace: Double, options: AnalysisOptions) -> Outcome {
        let started = Date()
        try? FileManager.default.createDirectory(atPath: traceDir, withIntermediateDirectories: true)
        let runReport = (logFile as NSString).deletingPathExtension + ".run.json"
        let argv = [selfExecutable, "run", "--trace-dir", traceDir, "--timeout", String(timeout), "--grace", String(grace),
                    "--format", "json", "--output", runReport, "--"] + (PythonScenarios.command(for: name) ?? [executable, name])
        var env = ProcessInfo.processInfo.environment
        env["SWIFT_BACKTRACE"] = "enable=no"     // a scenario killed on purpose must not linger in swift-backtrace
        env.removeValue(forKey: "TANGLE_TRACE")
        let status = (try? spawnAndWait(argv, environment: env, outputFile: logFile)) ?? -1
        let run = RunOutcome.read(reportFile: runReport)   // (kept beside the log)
        // The machine stays clean: segments a scenario leaked on purpose are unlinked.
        let unlinked = (run?.sharedMemoryNotUnlinked ?? []).filter { shm_unlink("/" + $0) == 0 }
        var outcome = Outcome(name: name, traceDir: traceDir, logFile: logFile, end: run?.ended,
                              ended: run?.ended.description ?? "unknown (tangle run status \(status))",
                              seconds: 0, result: nil, analysisError: nil, unlinkedSegments: unlinked)
        do {
            outcome.result = try Analyzer.analyze(paths: [traceDir], options: options)
        } catch {
            outcome.analysisError = "\(error)"
        }
        outcome.seconds = Date().timeIntervalSince(started)
        return outcome
    }

    /// Runs every scenario in `names`, `jobs` at a time (most of a run is waiting), in order of the
    /// result array. `traceDir(name)` / `logFile(name)` say where each goes.
    static func runAll(_ names: [String], executable: String, jobs: Int, timeout: Double, grace: Double,
                       options: AnalysisOptions, traceDir: (String) -> String, logFile: (String) -> String,
                       progress: ((Outcome) -> Void)? = nil) -> [Outcome] {
        final class Shared: @unchecked Sendable {
            let lock = NSLock()
            var results: [Outcome?]
            var next = 0
            init(_ n: Int) { results = [Outcome?](repeating: nil, count: n) }
        }
        let shared = Shared(names.count)
        let dirs = names.map(traceDir), logs = names.map(logFile)
        let group = DispatchGroup()
        for _ in 0..<max(1, min(jobs, names.count)) {
            group.enter()
            Thread {
                while true {
                    let i: Int = shared.lock.withLock { defer { shared.next += 1 }; return shared.next }
                    if i >= names.count { break }
                    let o = run(name: names[i], executable: executable, traceDir: dirs[i], logFile: logs[i],
                                timeout: timeout, grace: grace, options: options)
                    shared.lock.withLock {
                        shared.results[i] = o
                        progress?(o)
                    }
                }
                group.leave()
            }.start()
        }
        group.wait()
        return shared.results.map { $0! }
    }

    // MARK: checking

    /// The findings of a report counted by kind and confidence, in expected.json's shape (sorted).
    static func summarize(_ report: Report) -> [Expected.Entry] {
        var counts: [String: Int] = [:]
        for f in report.findings { counts["\(f.kind.rawValue)\u{0}\(f.confidence.rawValue)", default: 0] += 1 }
        return counts.map { key, n in
            let parts = key.split(separator: "\u{0}", omittingEmptySubsequences: false)
            return Expected.Entry(kind: String(parts[0]), confidence: String(parts[1]), count: n)
        }.sorted { ($0.kind, $0.confidence) < ($1.kind, $1.confidence) }
    }

    /// Differences between what a run produced and what was expected (empty: it matches).
    static func check(_ outcome: Outcome, expected: Expected?) -> [String] {
        var problems: [String] = []
        guard let expected else { return ["no expected.json for \(outcome.name)"] }
        guard let result = outcome.result else {
            return ["no analysis: \(outcome.analysisError ?? "?") (the scenario \(outcome.ended); see \(outcome.logFile))"]
        }
        if expected.hangs != outcome.timedOut {
            problems.append(expected.hangs ? "expected to hang until the timeout, but it \(outcome.ended)"
                                           : "expected to end by itself, but it was \(outcome.ended)")
        } else if !expected.hangs && outcome.end != .exited(status: 0) {
            problems.append("the scenario \(outcome.ended) (see \(outcome.logFile))")
        }
        let got = summarize(result.report)
        let want = expected.findings.sorted { ($0.kind, $0.confidence) < ($1.kind, $1.confidence) }
        if got != want {
            func show(_ es: [Expected.Entry]) -> String {
                es.isEmpty ? "nothing" : es.map { "\($0.count)× \($0.kind) (\($0.confidence))" }.joined(separator: ", ")
            }
            problems.append("findings: expected \(show(want)), got \(show(got))")
        }
        return problems
    }

    // MARK: processes

    /// Runs `argv` and returns its status and standard output (standard error passes through).
    static func capture(_ argv: [String]) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: argv[0])
        p.arguments = Array(argv.dropFirst())
        let pipe = Foundation.Pipe()
        p.standardOutput = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Runs `argv` with stdout and stderr into `outputFile`; returns its exit status.
    static func spawnAndWait(_ argv: [String], environment: [String: String], outputFile: String) throws -> Int32 {
        _ = FileManager.default.createFile(atPath: outputFile, contents: nil)
        guard let out = FileHandle(forWritingAtPath: outputFile) else { throw CocoaError(.fileWriteUnknown) }
        defer { try? out.close() }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: argv[0])
        p.arguments = Array(argv.dropFirst())
        p.environment = environment
        p.standardOutput = out
        p.standardError = out
        p.standardInput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        return p.terminationStatus
    }
}
