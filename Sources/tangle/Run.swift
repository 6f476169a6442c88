import ArgumentParser
import Foundation
import TangleAnalysis
import TangleTraceReader

/// CLOCK_MONOTONIC time at which `tangle run` first sent SIGTERM to the group (nil: never).
nonisolated(unsafe) var stopTime: UInt64?

/// The process group of the app `tangle run` started (0: none), for the signal forwarder.
nonisolated(unsafe) var runChildGroup: pid_t = 0

/// SIGINT/SIGTERM/SIGHUP sent to `tangle run` go to the app's whole process group.
private func runForwardSignal(_ sig: Int32) {
    if runChildGroup > 0 { kill(-runChildGroup, sig) }
}

/// `tangle run [--trace-dir DIR] [--timeout SECONDS] -- COMMAND…`
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a command with tracing on, stop it at a timeout, and analyze what it recorded.",
        discussion: """
        Runs COMMAND with TANGLE_TRACE set to a fresh trace directory (--trace-dir, which must not \
        already hold trace files, or a new temporary directory), in its own process group. \
        SIGINT/SIGTERM/SIGHUP received by tangle are forwarded to that group. When --timeout passes, \
        tangle sends SIGTERM to the whole group (the recorder flushes on SIGTERM), waits --grace \
        seconds, then sends SIGKILL. Processes still in the group after COMMAND exits get the same \
        treatment. When it stopped processes, tangle cuts the trace at the moment it sent SIGTERM \
        (what follows is the processes dying of the signal, which would hide the hang: a killed lock \
        owner hands its lock over, a killed waiter no longer waits): the files are rewritten (same names, \
        same format) up to that moment and the complete files are kept in DIR/after-stop/. Then tangle \
        analyzes the trace and prints the report (--format, --output).

        Exit status, first that applies:
          1    findings at or above --fail-on (default: any finding)
          124  the timeout stopped COMMAND (no findings), like timeout(1)
          N    COMMAND's own failure: its exit status, or 128+signal if a signal killed it
          0    COMMAND exited 0 and there were no findings
          126/127  COMMAND could not be executed / was not found; 2 unusable arguments or trace dir
        With --fail-on none, findings never set the status: it is COMMAND's own (0, N, 128+signal, \
        124 at the timeout), so a status is never ambiguous between "the tests failed" and "there are \
        findings". That is the mode for CI with a baseline: `tangle check` is the findings' gate \
        (docs/ci.md). When the status is not 0, the last line on stderr says which rule set it.
        A trace that cannot be analyzed (COMMAND recorded nothing) is a warning, not a failure.
        When tangle stopped processes, lifecycle findings about them (orphans, unjoined children, \
        lost messages, locks held at exit, …) are consequences of the stop: they are reported \
        (with a "stopped-by-tangle-run" trace problem) but do not make the status 1.
        """)

    @Option(name: .long, help: "Trace directory (default: a new temporary directory, printed on stderr).")
    var traceDir: String?

    @Option(name: .long, help: "Seconds before the command's process group is stopped (default: no timeout).")
    var timeout: Double?

    @Option(name: .long, help: "Seconds between SIGTERM and SIGKILL.")
    var grace: Double = 3

    @OptionGroup var report: ReportOptions

    @Option(name: .customLong("fail-on"), help: "Lowest severity of a finding that makes the exit status 1: note, warning or error; none: findings never set the status (COMMAND's own status, for a gate by `tangle check`).")
    var failOn: String = "note"

    @Option(name: .long, help: "Extra directories to find the traced binaries in (for symbols).")
    var symbols: [String] = []

    @Argument(parsing: .postTerminator, help: "The command to run, after --.")
    var command: [String] = []

    mutating func validate() throws {
        if command.first == "--" { command.removeFirst() }
        if command.isEmpty { throw ValidationError("give the command to run after --") }
        if let timeout, timeout <= 0 { throw ValidationError("--timeout must be positive") }
        if grace < 0 { throw ValidationError("--grace must not be negative") }
        if failOn != "none" && Severity(rawValue: failOn) == nil { throw ValidationError("--fail-on must be note, warning, error or none") }
    }

    func run() throws {
        let dir = try prepareTraceDir()
        writeStderr("tangle: tracing into \(dir)\n")
        let launched = try Run.launch(command, traceDir: dir, timeout: timeout, grace: grace)
        let (timedOut, stoppedGroup, how, appStatus, cutNote) = (launched.timedOut, launched.stoppedGroup, launched.how, launched.appStatus, launched.cutNote)

        // Analyze what was recorded.
        var findingsFail = false
        do {
            var options = AnalysisOptions()
            options.symbolDirectories = symbols
            options.keepEvents = false  // (the formats that show events get them from EvidenceWindows)
            _ = try findTraceFiles([dir])
            var result = try Analyzer.analyze(paths: [dir], options: options)
            if let f = report.format.exporter {
                try EvidenceWindows.fill(&result, format: f, paths: [dir], options: report.exportOptions)
            }
            // The trace ends at the stop for the waits that never returned (timelines draw them to here).
            if let stopTime { result.context.traceEnd = max(result.context.traceEnd, stopTime) }
            var artefacts = Set<String>()
            if stoppedGroup {
                // Processes tangle itself stopped: lifecycle findings about them are consequences
                // of the stop. They are still reported, but do not decide the exit status.
                artefacts = Run.stopArtefacts(result.report)
                result.report.problems.append(TraceProblemNote(
                    kind: .stoppedByTangleRun,
                    detail: "tangle run stopped the process group (SIGTERM, then SIGKILL after \(formatSeconds(grace)) s)\(timedOut ? " at the \(formatSeconds(timeout!)) s timeout" : " after the command exited")"
                        + (cutNote.map { "; " + $0 } ?? "")
                        + (artefacts.isEmpty ? "" : "; \(artefacts.count) lifecycle finding(s) about the stopped processes (orphans, unjoined children, lost messages, …) are consequences of the stop and do not set the exit status")))
            }
            let outcome = RunOutcome(command: command, ended: how, stoppedGroup: stoppedGroup,
                                     sharedMemoryNotUnlinked: result.sharedMemoryNotUnlinked)
            try writeOutput(try ReportOutput.render(result, as: report.format, options: report.exportOptions, run: outcome), to: report.output)
            if let threshold = Severity(rawValue: failOn) {  // (nil: --fail-on none)
                findingsFail = result.report.findings.contains { $0.severity >= threshold && !artefacts.contains($0.fingerprint + "|" + $0.title) }
            }
            if report.output != nil || report.format != .text {
                writeStderr("tangle: \(result.report.findings.count) finding(s)\n")
            }
        } catch let e as ExitCode {
            throw e
        } catch {
            writeStderr("tangle: warning: nothing to analyze in \(dir): \(error)\n")
        }
        // A temporary directory that stayed empty is removed; a trace is kept for later analysis.
        if traceDir == nil, ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? ["?"]).isEmpty {
            rmdir(dir)
        }

        // One line that says which rule set the status, so that 1 is never read the wrong way.
        if findingsFail {
            writeStderr("tangle: exit status 1: findings at or above --fail-on \(failOn) (\(command[0]) \(how))\n")
            throw ExitCode(1)
        }
        if timedOut {
            writeStderr("tangle: exit status 124: the timeout stopped \(command[0])\n")
            throw ExitCode(124)
        }
        if appStatus != 0 {
            writeStderr("tangle: exit status \(appStatus): \(command[0])'s own\n")
            throw ExitCode(appStatus)
        }
    }

    /// What `launch` saw: how COMMAND ended and whether tangle stopped it.
    struct Launched {
        var timedOut: Bool
        var stoppedGroup: Bool
        /// "exited with status N", "stopped by the timeout", "killed by signal N"
        var how: RunEnd
        /// COMMAND's own status (128+signal when a signal killed it).
        var appStatus: Int32
        /// Set when the trace was cut at the stop.
        var cutNote: String?
        /// When tangle sent SIGTERM (nil: it did not stop the group).
        var stopTime: UInt64?
    }

    /// Runs `command` with TANGLE_TRACE=`traceDir` (plus `extraEnvironment`, NAME=VALUE entries that
    /// replace ours) in its own process group, stops the group at `timeout` or when `stopWhen`
    /// (polled every 20 ms) says so, and cuts the trace at the stop. Shared by `tangle run` and
    /// `tangle confirm` (which adds its steering plan and stops a run once the steered deadlock had
    /// time to happen).
    static func launch(_ command: [String], traceDir dir: String, timeout: Double?, grace: Double,
                       extraEnvironment: [String] = [], stopWhen: (() -> Bool)? = nil,
                       stopReason: String = "stopping") throws -> Launched {
        stopTime = nil

        // The child's environment: ours with TANGLE_TRACE replaced.
        var env: [String] = []
        var e = environ
        while let p = e.pointee {
            let s = String(cString: p)
            if !s.hasPrefix("TANGLE_TRACE=") { env.append(s) }
            e += 1
        }
        env.append("TANGLE_TRACE=\(dir)")
        env.removeAll { s in extraEnvironment.contains { s.hasPrefix($0.prefix { $0 != "=" } + "=") } }
        env += extraEnvironment
        env = PythonAdapter.environment(for: command, env)

        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attr, 0)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attr, &defaults)

        let argv = command.map { strdup($0) } + [nil]
        let envp = env.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) }; envp.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, command[0], nil, &attr, argv, envp)
        if rc != 0 {
            writeStderr("tangle: cannot run \(command[0]): \(String(cString: strerror(rc)))\n")
            throw ExitCode(rc == ENOENT ? 127 : 126)
        }
        runChildGroup = pid
        for s in [SIGINT, SIGTERM, SIGHUP] { signal(s, runForwardSignal) }

        let started = monotonicNow()
        let deadline = timeout.map { started + UInt64($0 * 1e9) }
        var status: Int32 = 0
        var timedOut = false
        var stoppedGroup = false
        var reaped = false
        while !reaped {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { reaped = true; break }
            if r < 0 && errno != EINTR { break }
            if let stopWhen, stopWhen() {
                writeStderr("tangle: \(stopReason): stopping process group \(pid) (SIGTERM, then SIGKILL after \(formatSeconds(grace)) s)\n")
                reaped = stopGroup(pid, mainPid: pid, status: &status, grace: grace)
                stoppedGroup = true
                break
            }
            if let deadline, monotonicNow() >= deadline {
                timedOut = true
                writeStderr("tangle: timeout after \(formatSeconds(timeout!)) s: stopping process group \(pid) (SIGTERM, then SIGKILL after \(formatSeconds(grace)) s)\n")
                reaped = stopGroup(pid, mainPid: pid, status: &status, grace: grace)
                stoppedGroup = true
                break
            }
            usleep(20_000)
        }
        // Whatever is left in the group (workers the app did not join) is stopped too.
        if kill(-pid, 0) == 0 {
            writeStderr("tangle: processes were left in the group after \(command[0]) ended: stopping them\n")
            _ = stopGroup(pid, mainPid: reaped ? nil : pid, status: &status, grace: grace)
            stoppedGroup = true
        }
        runChildGroup = 0
        for s in [SIGINT, SIGTERM, SIGHUP] { signal(s, SIG_DFL) }

        let exited = (status & 0x7f) == 0
        let appStatus: Int32 = exited ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        let how = RunEnd(waitStatus: status, timedOut: timedOut)
        writeStderr("tangle: \(command[0]) \(how)\n")

        // Events after the stop are the processes dying of our signals: a killed lock owner hands
        // its lock over (owner-died), a killed waiter no longer waits. They would hide the very hang
        // the timeout caught, so the trace is cut at the stop (the full files are kept aside).
        var cutNote: String?
        if let stopTime {
            do {
                let cut = try TraceCut.cut(directory: dir, at: stopTime)
                if cut.dropped > 0 {
                    cutNote = "the trace was cut when tangle run sent SIGTERM: \(cut.dropped) later event(s) (the processes stopping) were moved aside with the complete files to \(dir)/\(Run.afterStopDirectory)/"
                    writeStderr("tangle: \(cutNote!)\n")
                }
            } catch {
                writeStderr("tangle: warning: could not cut the trace at the stop: \(error)\n")
            }
        }

        return Launched(timedOut: timedOut, stoppedGroup: stoppedGroup, how: how, appStatus: appStatus,
                        cutNote: cutNote, stopTime: stopTime)
    }

    static let afterStopDirectory = TraceCut.asideDirectory

    /// Findings (fingerprint|title) that only say a process killed by SIGTERM/SIGKILL did not clean
    /// up: what happens to every process tangle run stops.
    static func stopArtefacts(_ report: Report) -> Set<String> {
        let killed = Set(report.processes.filter { $0.ending?.isStopLike ?? false }.map(\.pid))
        let lifecycle: Set<FindingKind> = [.orphan, .unjoinedChild, .zombie, .lostMessages, .missingTaskDone, .lostPoolError, .shmLeak, .lockHeldAtExit]
        var out = Set<String>()
        for f in report.findings where lifecycle.contains(f.kind) && f.participants.contains(where: { killed.contains($0.pid) }) {
            out.insert(f.fingerprint + "|" + f.title)
        }
        return out
    }

    /// SIGTERM to the group, up to `grace` for it to empty, then SIGKILL. Reaps `mainPid` (its
    /// status goes to `status`) when given. Returns true when `mainPid` was reaped.
    static func stopGroup(_ group: pid_t, mainPid: pid_t?, status: inout Int32, grace: Double) -> Bool {
        var reaped = false
        if stopTime == nil { stopTime = monotonicNow() }
        kill(-group, SIGTERM)
        let end = monotonicNow() + UInt64(grace * 1e9)
        while monotonicNow() < end {
            if let mainPid, !reaped, waitpid(mainPid, &status, WNOHANG) == mainPid { reaped = true }
            if (mainPid == nil || reaped) && kill(-group, 0) != 0 { return reaped }
            usleep(20_000)
        }
        kill(-group, SIGKILL)
        if let mainPid, !reaped {
            while waitpid(mainPid, &status, 0) < 0 && errno == EINTR {}
            reaped = true
        }
        // Give the kernel a moment to take the killed processes out of the group.
        for _ in 0..<50 where kill(-group, 0) == 0 { usleep(10_000) }
        return reaped
    }

    func prepareTraceDir() throws -> String {
        if let traceDir {
            let abs = traceDir.hasPrefix("/") ? traceDir : FileManager.default.currentDirectoryPath + "/" + traceDir
            // Every directory created here is 0700, like the recorder's own (a trace names the
            // program's objects and binaries: not for other users).
            var prefix = ""
            for part in abs.split(separator: "/") {
                prefix += "/" + part
                if mkdir(prefix, 0o700) != 0 && errno != EEXIST {
                    throw failUnusable("\(traceDir): cannot create the trace directory: \(String(cString: strerror(errno)))")
                }
            }
            var st = stat()
            guard stat(abs, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
                throw failUnusable("\(traceDir): not a directory")
            }
            let names = (try? FileManager.default.contentsOfDirectory(atPath: abs)) ?? []
            if names.contains(where: { $0.hasSuffix(".jsonl.lz4") || $0.hasSuffix(".jsonl") }) {
                throw failUnusable("\(traceDir) already holds trace files: remove them or choose another --trace-dir")
            }
            return ExportPaths.normalize(abs)
        }
        return try makeTemporaryDirectory("run")
    }
}

func formatSeconds(_ s: Double) -> String {
    s == s.rounded() ? String(Int(s)) : String(format: "%.3g", s)
}
