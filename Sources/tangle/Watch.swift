import ArgumentParser
import Foundation
import TangleAnalysis
import TangleTraceFormat
import TangleTraceReader

/// `tangle watch DIR [--grace SECONDS] [--interval SECONDS] [--once]`
struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Follow a trace directory that is still being written and report a deadlock or hang as soon as it sets in.",
        discussion: """
        Every --interval seconds tangle re-reads the directory (files without an end mark are read \
        up to their last complete line). Once some live thread has recorded nothing for --grace \
        seconds it asks the analyzer, whose model of waits says which threads are blocked (a thread \
        is live when neither it nor its process recorded an exit and, on the same boot, the process \
        still exists). Ages compare the events' CLOCK_MONOTONIC times with now.

        It reports when either
          - the analyzer reports an actual deadlock, self-deadlock or hang whose participants have \
        all been idle for at least --grace seconds and whose waiting participants are blocked, or
          - every live thread has been blocked for at least --grace seconds (nobody is progressing); \
        the analyzer's findings are printed when it has any, else the blocked threads.
        Choose --grace longer than the longest timeout your program waits with on purpose.

        Exit status: 1 a deadlock/hang was reported; 0 every traced process exited (or --once found \
        nothing); 2 unusable input (no such directory; with --once, no trace files).
        """)

    @Argument(help: "The trace directory (TANGLE_TRACE of the running program).")
    var directory: String

    @Option(name: .long, help: "Seconds every participant must have been blocked before reporting.")
    var grace: Double = 5

    @Option(name: .long, help: "Seconds between two reads of the directory.")
    var interval: Double = 1

    @Flag(name: .long, help: "Check once and exit (1 if a deadlock/hang is established, else 0).")
    var once = false

    @OptionGroup var report: ReportOptions

    @Option(name: .long, help: "Extra directories to find the traced binaries in (for symbols).")
    var symbols: [String] = []

    func validate() throws {
        if grace < 0 { throw ValidationError("--grace must not be negative") }
        if interval <= 0 { throw ValidationError("--interval must be positive") }
    }

    func run() throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw failUnusable("\(directory): no such directory")
        }
        let graceNs = UInt64(grace * 1e9)
        var announced = false
        var options = AnalysisOptions()
        options.symbolDirectories = symbols
        // Re-analyze only when the files changed (names and sizes); liveness is checked every time.
        var cached: (signature: [String], result: AnalysisResult)?
        while true {
            let signature = TraceDirectory.signature(directory)
            let result: AnalysisResult
            do {
                if let c = cached, c.signature == signature {
                    result = c.result
                } else {
                    _ = try findTraceFiles([directory])
                    result = try Analyzer.analyze(paths: [directory], options: options)
                    cached = (signature, result)
                }
            } catch {
                if once { throw failUnusable("\(error)") }
                if !announced { writeStderr("tangle: watching \(directory): waiting for trace files\n"); announced = true }
                usleep(UInt32(min(interval, 60) * 1e6))
                continue
            }
            let pids = Set(result.threads.map(\.pid)).union(result.context.headers.keys)
            if !announced { writeStderr("tangle: watching \(directory) (\(pids.count) processes so far)\n"); announced = true }
            let gone = TraceDirectory.gonePids(pids, headers: result.context.headers)
            let live = StallCheck.liveThreads(result, gone: gone)

            if !live.isEmpty || pids.isEmpty {
                let verdict = StallCheck.check(result, gone: gone, now: monotonicNow(), graceNs: graceNs)
                var shown = result
                switch verdict {
                case .progressing: break
                case .stuck(let findings), .everyoneBlocked(let findings):
                    shown.report.findings = findings
                    let who = if case .stuck = verdict { "the participants" } else { "every live thread" }
                    let seconds = String(format: "%.1f", Double(graceNs) / 1e9)
                    writeStderr("tangle: \(who) blocked for at least \(seconds) s\n")
                    try writeOutput(try ReportOutput.render(shown, as: report.format, options: report.exportOptions), to: report.output)
                    throw ExitCode(1)
                }
            }
            if !pids.isEmpty && live.isEmpty {
                writeStderr("tangle: every traced process (\(pids.count)) has exited\n")
                return
            }
            if once {
                writeStderr("tangle: no deadlock or hang established (\(live.count) live threads)\n")
                return
            }
            usleep(UInt32(min(interval, 60) * 1e6))
        }
    }
}

/// What watch asks of the machine, not of the trace: whether the files changed, and which traced
/// processes no longer exist.
enum TraceDirectory {
    /// Names and sizes of the directory's trace files: equal signatures, equal contents (the
    /// recorder only appends).
    static func signature(_ dir: String) -> [String] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".jsonl.lz4") || $0.hasSuffix(".jsonl") }.sorted()
        return names.map { name in
            var st = stat()
            return stat(dir + "/" + name, &st) == 0 ? "\(name):\(st.st_size)" : name
        }
    }

    /// The pids recorded on this boot that no longer exist: a process SIGKILLed leaves no exit
    /// record. Checked on every round, even when the files did not change.
    static func gonePids(_ pids: Set<Int32>, headers: [Int32: TraceHeader]) -> Set<Int32> {
        let myBoot = (try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        guard !myBoot.isEmpty else { return [] }
        return pids.filter { pid in headers[pid]?.bootID == myBoot && kill(pid, 0) != 0 && errno == ESRCH }
    }
}
