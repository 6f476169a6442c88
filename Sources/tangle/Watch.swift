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

    @Option(name: .long, help: "Report format: \(TextSummary.formatNames.joined(separator: ", ")).")
    var format: String = "text"

    @Option(name: [.short, .long], help: "Write the report here instead of stdout.")
    var output: String?

    @Option(name: .long, help: "Extra directories to find the traced binaries in (for symbols).")
    var symbols: [String] = []

    func validate() throws {
        if grace < 0 { throw ValidationError("--grace must not be negative") }
        if interval <= 0 { throw ValidationError("--interval must be positive") }
        if !TextSummary.formatNames.contains(format) { throw ValidationError("--format must be one of \(TextSummary.formatNames.joined(separator: ", "))") }
    }

    func run() throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw failUnusable("\(directory): no such directory")
        }
        let graceNs = UInt64(grace * 1e9)
        var announced = false
        // Re-read and re-analyze only when the files changed (names and sizes).
        var cachedState: (signature: [String], state: WatchState)?
        var cachedResult: (signature: [String], result: AnalysisResult)?
        while true {
            var state: WatchState
            let signature = WatchState.signature(directory)
            do {
                if let c = cachedState, c.signature == signature {
                    state = c.state
                    state.refreshLiveness()
                } else {
                    state = try WatchState.read(directory)
                    cachedState = (signature, state)
                }
            } catch {
                if once { throw failUnusable("\(error)") }
                if !announced { writeStderr("tangle: watching \(directory): waiting for trace files\n"); announced = true }
                usleep(UInt32(min(interval, 60) * 1e6))
                continue
            }
            if !announced { writeStderr("tangle: watching \(directory) (\(state.pids.count) processes so far)\n"); announced = true }

            if !state.liveThreads.isEmpty || state.pids.isEmpty {
                let now = monotonicNow()
                let idle: (WatchState.Key) -> Bool = { k in
                    guard let last = state.last[k] else { return false }
                    return now >= last.time && now - last.time >= graceNs
                }
                if state.liveThreads.contains(where: idle) {
                    // Someone has been quiet for the grace period: ask the analyzer who is blocked.
                    let result: AnalysisResult
                    if let c = cachedResult, c.signature == signature {
                        result = c.result
                    } else {
                        result = try analyzeOrFail([directory], symbols: symbols, progressLine: false)
                        cachedResult = (signature, result)
                    }
                    var blockedSince: [WatchState.Key: BlockedThread] = [:]
                    for b in result.blocked { blockedSince[WatchState.Key(pid: b.pid, tid: b.tid)] = b }
                    let blockedLong = state.liveThreads.filter { k in
                        guard let b = blockedSince[k] else { return false }
                        return idle(k) && now >= b.since && now - b.since >= graceNs
                    }
                    let stuck = result.report.findings.filter { f in
                        guard f.confidence == .actual, [.deadlock, .selfDeadlock, .hang].contains(f.kind) else { return false }
                        return f.participants.allSatisfy { p in
                            let k = WatchState.Key(pid: p.pid, tid: p.tid)
                            guard let last = state.last[k] else { return true }
                            let quiet = now >= last.time && now - last.time >= graceNs
                            if p.role == "waits" { return quiet && blockedSince[k] != nil }
                            return quiet || !state.liveThreads.contains(k)
                        }
                    }
                    let everyoneBlocked = !blockedLong.isEmpty && blockedLong.count == state.liveThreads.count
                    if !stuck.isEmpty || everyoneBlocked {
                        var shown = result
                        if !stuck.isEmpty {
                            shown.report.findings = stuck
                        } else if shown.report.findings.isEmpty {
                            shown.report.findings = [stallFinding(blockedLong.compactMap { blockedSince[$0] }, now: now, result: result)]
                        }
                        let seconds = String(format: "%.1f", Double(graceNs) / 1e9)
                        writeStderr("tangle: \(stuck.isEmpty ? "every live thread" : "the participants") blocked for at least \(seconds) s\n")
                        if let text = try TextSummary.render(format: format, result: shown, options: ExportOptions()) {
                            try writeOutput(text, to: output)
                        }
                        throw ExitCode(1)
                    }
                }
            }
            if !state.pids.isEmpty && state.liveThreads.isEmpty {
                writeStderr("tangle: every traced process (\(state.pids.count)) has exited\n")
                return
            }
            if once {
                writeStderr("tangle: no deadlock or hang established (\(state.liveThreads.count) live threads)\n")
                return
            }
            usleep(UInt32(min(interval, 60) * 1e6))
        }
    }

    /// A hang finding built by watch itself when every live thread is blocked but the analyzer
    /// reported nothing (labelled as such; its fingerprint is built from the wait kinds and objects).
    func stallFinding(_ blocked: [BlockedThread], now: UInt64, result: AnalysisResult) -> Finding {
        let ctx = result.context
        var participants: [Participant] = []
        var evidence: [EvidenceEvent] = []
        var parts: [String] = []
        for b in blocked.sorted(by: { ($0.pid, $0.tid) < ($1.pid, $1.tid) }) {
            let e = b.wait
            let obj = ctx.objectNames[e.object].map { "'\($0)'" } ?? (e.object == 0 ? "" : "#\(e.object & 0x0FFF_FFFF)")
            let age = String(format: "%.1f", Double(now - b.since) / 1e9)
            participants.append(Participant(pid: b.pid, tid: b.tid, process: ctx.processNames[b.pid] ?? "pid \(b.pid)",
                                            thread: ctx.threadNames[b.tid], role: "waits", detail: "\(e.kind.name) \(obj) for \(age) s",
                                            object: e.object, objectName: ctx.objectNames[e.object]))
            evidence.append(EvidenceEvent(time: e.time, pid: b.pid, tid: b.tid, seq: e.seq, kind: e.kind.name, object: e.object))
            parts.append("\(e.kind.name) \(ctx.objectNames[e.object] ?? "")")
        }
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in parts.sorted().joined(separator: "|").utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return Finding(
            kind: .hang, severity: .error, confidence: .actual,
            title: "every live thread (\(participants.count)) is blocked and nothing progresses",
            participants: participants, evidence: evidence, stacks: [],
            explanation: "tangle watch saw every live thread of the traced program blocked in a wait for at least the grace period, with no event recorded meanwhile. The analyzer did not explain it further; run `tangle analyze` on the directory for the wait-for graph.",
            fix: "Look at what each blocked thread waits for and which thread was supposed to wake it.",
            fingerprint: "watch-stall-" + String(h, radix: 16))
    }
}

/// What watch needs of a trace: each thread's last event and who has exited.
struct WatchState {
    struct Key: Hashable { var pid: Int32; var tid: Int32 }
    var pids: Set<Int32> = []
    var last: [Key: TraceEvent] = [:]
    var exitedThreads: Set<Key> = []
    var exitedPids: Set<Int32> = []
    var liveThreads: [Key] = []

    /// Names and sizes of the directory's trace files: equal signatures, equal contents (the
    /// recorder only appends).
    static func signature(_ dir: String) -> [String] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".jsonl.lz4") || $0.hasSuffix(".jsonl") }.sorted()
        return names.map { name in
            var st = stat()
            return stat(dir + "/" + name, &st) == 0 ? "\(name):\(st.st_size)" : name
        }
    }

    static func read(_ dir: String) throws -> WatchState {
        let stream = try TraceEventStream(paths: [dir])
        var s = WatchState()
        while let e = try stream.next() {
            let k = Key(pid: e.pid, tid: e.tid)
            s.pids.insert(e.pid)
            if let prev = s.last[k], (prev.time, prev.seq) > (e.time, e.seq) { continue }
            s.last[k] = e
            if e.kind == .threadExit { s.exitedThreads.insert(k) }
            if e.kind == .processExit { s.exitedPids.insert(e.pid) }
        }
        for (pid, h) in stream.headers {
            s.pids.insert(pid)
            s.boots[pid] = h.bootID
        }
        s.recordedExits = s.exitedPids
        s.refreshLiveness()
        return s
    }

    var boots: [Int32: String] = [:]
    var recordedExits: Set<Int32> = []

    /// Which processes are gone: recorded their exit, or (same boot) no longer exist — a process
    /// SIGKILLed leaves no exit record. Called on every check, even when the files did not change.
    mutating func refreshLiveness() {
        let myBoot = (try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        exitedPids = recordedExits
        for pid in pids where !exitedPids.contains(pid) {
            let boot = boots[pid] ?? ""
            if !myBoot.isEmpty && boot == myBoot && kill(pid, 0) != 0 && errno == ESRCH { exitedPids.insert(pid) }
        }
        liveThreads = last.keys.filter { !exitedThreads.contains($0) && !exitedPids.contains($0.pid) }
            .sorted { ($0.pid, $0.tid) < ($1.pid, $1.tid) }
    }
}
