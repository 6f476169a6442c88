import ArgumentParser
import Foundation
import TangleAnalysis
import TangleTraceFormat
import TangleTraceReader

/// `tangle confirm TRACE_DIR [--tries N] [--timeout S] -- COMMAND…`: makes each predicted deadlock
/// of a trace happen, or says it could not.
struct Confirm: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Re-run a command, steering it towards each predicted deadlock of a trace, and report which really happen.",
        discussion: """
        Analyzes TRACE_DIR and takes each predicted finding it can steer (lock-order-inversion, \
        hold-and-wait). For each, it runs COMMAND up to --tries times as `tangle run` does (tracing on, \
        own process group, the trace cut when tangle stops it) with TANGLE_STEER naming a plan: the \
        runtime pauses a thread that reaches its predicted point — the acquire of the second lock, or \
        the blocking call, at the predicted stack, matched by source location (function, file:line \
        resolved in the binary COMMAND runs, not by addresses) — for up to --timeout seconds until the \
        other participants reach theirs, then lets them all go on. When all arrived, the run gets \
        --timeout more seconds, then it is stopped and its trace analyzed: the finding is confirmed \
        when that trace holds an actual deadlock (or hang) at the same source lines.

        Output: one block per finding, "confirmed" with the actual finding and the new trace directory, \
        or "not reproduced in N tries". With --format (json, sarif, junit, llm, html, …) the report of \
        TRACE_DIR is written too, its confirmed findings carrying confidence "confirmed".

        Exit status: 1 at least one finding confirmed, 0 none, 2 unusable input (TRACE_DIR has no \
        readable trace, bad arguments).
        """)

    @Argument(help: "The trace directory whose predicted findings to confirm.")
    var traceDir: String

    @Option(name: .long, help: "Runs per finding before it is reported as not reproduced.")
    var tries: Int = 3

    @Option(name: .long, help: "Seconds a thread at its point waits for the others; also how long a run goes on once all arrived.")
    var timeout: Double = 2

    @Option(name: .customLong("run-timeout"), help: "Seconds after which a run is stopped whatever happened.")
    var runTimeout: Double = 30

    @Option(name: .long, help: "Also write TRACE_DIR's report in this format (\(OutputFormat.names)), confirmed findings marked.")
    var format: OutputFormat?

    @Option(name: [.short, .long], help: "Write that report here instead of stdout.")
    var output: String?

    @Option(name: .long, help: "Extra directories to find the traced binaries in (for symbols).")
    var symbols: [String] = []

    @Argument(parsing: .postTerminator, help: "The command to run, after --.")
    var command: [String] = []

    mutating func validate() throws {
        if command.first == "--" { command.removeFirst() }
        if command.isEmpty { throw ValidationError("give the command to run after --") }
        if tries < 1 { throw ValidationError("--tries must be at least 1") }
        if timeout <= 0 { throw ValidationError("--timeout must be positive") }
        if runTimeout <= 0 { throw ValidationError("--run-timeout must be positive") }
    }

    /// One finding's verdict.
    struct Verdict {
        var finding: Finding
        var confirmedBy: (actual: Finding, traceDir: String, attempt: Int)?
        var attempts = 0
        var rendezvous = 0
        var unsteerable: String?
    }

    func run() throws {
        var options = AnalysisOptions()
        options.symbolDirectories = symbols
        options.keepEvents = false
        var result: AnalysisResult
        do {
            _ = try findTraceFiles([traceDir])
            result = try Analyzer.analyze(paths: [traceDir], options: options)
        } catch let e as ExitCode {
            throw e
        } catch {
            throw failUnusable("\(traceDir): \(error)")
        }
        try requireReadableTrace(result, paths: [traceDir])

        let binaries = Self.binaries(of: command)
        var verdicts: [Verdict] = result.report.findings.filter(SteeringPlan.isSteerable).map { Verdict(finding: $0) }
        if verdicts.isEmpty { writeStderr("tangle: no predicted lock-order inversion or hold-and-wait in \(traceDir): nothing to confirm\n") }
        for i in verdicts.indices {
            switch SteeringPlan.resolve(verdicts[i].finding, binaries: binaries) {
            case .failure(let e): verdicts[i].unsteerable = e.description
            case .success(let plan): try attempt(plan, &verdicts[i])
            }
        }

        var text = ""
        for (i, v) in verdicts.enumerated() {
            let f = v.finding
            text += "\(i + 1). \(f.kind.rawValue) [predicted] \(f.title)\n   fingerprint \(f.fingerprint)\n"
            if let c = v.confirmedBy {
                text += "   confirmed (try \(c.attempt) of \(tries)): \(c.actual.kind.rawValue) [\(c.actual.confidence.rawValue)] \(c.actual.title)\n"
                text += "   trace: \(c.traceDir)\n"
            } else if let why = v.unsteerable {
                text += "   not reproduced in 0 tries: cannot steer: \(why)\n"
            } else {
                text += "   not reproduced in \(v.attempts) tries (all participants reached their points in \(v.rendezvous) of them)\n"
            }
        }
        let confirmed = verdicts.filter { $0.confirmedBy != nil }.count
        text += "tangle confirm: \(confirmed) of \(verdicts.count) predicted finding(s) confirmed\n"

        if let format {
            // The confirmed findings become `confirmed` in TRACE_DIR's report, the proof in `why`.
            for v in verdicts {
                guard let c = v.confirmedBy, let k = result.report.findings.firstIndex(of: v.finding) else { continue }
                result.report.findings[k].confidence = .confirmed
                result.report.findings[k].why = (v.finding.why.map { $0 + "; " } ?? "")
                    + "confirmed by tangle confirm (try \(c.attempt)): \(c.actual.kind.rawValue): \(c.actual.title) (trace \(c.traceDir))"
            }
            let exportOptions = ExportOptions()
            if let f = format.exporter {
                try EvidenceWindows.fill(&result, format: f, paths: [traceDir], options: exportOptions)
            }
            try writeOutput(try ReportOutput.render(result, as: format, options: exportOptions), to: output)
            writeStderr(text)
        } else {
            try writeOutput(text, to: output)
        }
        if confirmed > 0 { throw ExitCode(1) }
    }

    /// Up to --tries steered runs of COMMAND for one finding; stops at the first that deadlocks.
    func attempt(_ plan: SteeringPlan, _ v: inout Verdict) throws {
        let planDir = try makeTemporaryDirectory("confirm-plan")
        defer { try? FileManager.default.removeItem(atPath: planDir) }
        for n in 1...tries {
            v.attempts = n
            let planPath = planDir + "/plan-\(n)"
            do { try plan.write(to: planPath, timeout: timeout) } catch { throw failUnusable("\(error)") }
            let dir = try makeTemporaryDirectory("confirm")
            writeStderr("tangle: \(v.finding.kind.rawValue) \(v.finding.fingerprint.prefix(8)): try \(n) of \(tries), tracing into \(dir)\n")
            let grace = 0.5
            let afterAll = UInt64(timeout * 1e9)
            _ = try Run.launch(command, traceDir: dir, timeout: runTimeout, grace: grace,
                               extraEnvironment: ["TANGLE_STEER=\(planPath)"],
                               stopWhen: {
                                   guard let o = SteeringPlan.outcome(at: planPath), o.complete else { return false }
                                   return SteeringPlan.now() >= o.completeTime + afterAll
                               }, stopReason: "every participant reached its point \(formatSeconds(timeout)) s ago")
            let outcome = SteeringPlan.outcome(at: planPath)
            if outcome?.complete == true { v.rendezvous += 1 }
            if outcome?.complete == true, let actual = try? actualDeadlock(in: dir, like: v.finding) {
                v.confirmedBy = (actual, dir, n)
                return
            }
            try? FileManager.default.removeItem(atPath: dir)
        }
    }

    /// The actual deadlock (or hang) of the run in `dir` whose stacks share a source line with
    /// `predicted`'s points; nil when there is none.
    func actualDeadlock(in dir: String, like predicted: Finding) throws -> Finding? {
        var options = AnalysisOptions()
        options.symbolDirectories = symbols
        options.keepEvents = false
        let report = try Analyzer.analyze(paths: [dir], options: options).report
        let lines = Self.sourceLines(predicted.stacks)
        return report.findings.first { f in
            f.confidence == .actual && [.deadlock, .selfDeadlock, .hang].contains(f.kind)
                && !Self.sourceLines(f.stacks).isDisjoint(with: lines)
        }
    }

    /// "file:line" of every application frame of `stacks`.
    static func sourceLines(_ stacks: [Stack]) -> Set<String> {
        var out = Set<String>()
        for s in stacks {
            for f in FrameClassifier.userFrames(s.frames) {
                if let file = f.file, let line = f.line { out.insert(((file as NSString).lastPathComponent) + ":\(line)") }
            }
        }
        return out
    }

    /// The files COMMAND runs, for resolving frames: its executable (through PATH) and, for a
    /// script run by an interpreter, nothing more (text frames cannot be steered).
    static func binaries(of command: [String]) -> [String] {
        let exe = command[0]
        if exe.contains("/") { return [URL(fileURLWithPath: exe).resolvingSymlinksInPath().path] }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let p = "\(dir)/\(exe)"
            if access(p, X_OK) == 0 { return [URL(fileURLWithPath: p).resolvingSymlinksInPath().path] }
        }
        return []
    }
}
