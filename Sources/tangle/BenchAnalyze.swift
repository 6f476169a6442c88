import ArgumentParser
import Foundation
import TangleAnalysis
import TangleTraceFormat
import TangleRecorder
import TangleTraceReader

/// `tangle bench analyze [--json]`: end-to-end analysis speed (decompress, parse, merge, model, every
/// pass) on a generated trace of ≥ 10 million events, and peak memory.
///
/// The trace is written by the real recorder: `--processes` child processes of this binary (each
/// started with `TANGLE_TRACE=<tmpdir>`) run a lock/queue workload on three threads — a producer
/// that takes a lock (sometimes two, nested in one order) around each put, and two consumers that get,
/// take another lock and release it, blocking (`queue.get-wait`) when the queue is empty — and end
/// with one poison pill per consumer, so the trace is clean and every pass runs over all of it.
struct BenchAnalyze: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "analyze",
        abstract: "Events per second of `tangle analyze` end to end on a generated ≥10M-event trace, and peak RSS.")

    @Flag(name: .long, help: "Print one JSON object.")
    var json = false

    @Option(name: .long, help: "Events to generate (total over all processes).")
    var events = 10_000_000

    @Option(name: .long, help: "Traced processes writing the trace.")
    var processes = 4

    @Option(name: .long, help: "Analyze this trace directory instead of generating one.")
    var trace: String?

    @Flag(name: .long, help: "Keep the generated trace directory (its path is printed).")
    var keep = false

    @Flag(name: .customLong("no-formats"), help: "Skip the peak RSS of `tangle analyze --format F` per output format.")
    var noFormats = false

    @Option(name: .customLong("child-events"), help: .hidden)
    var childEvents: Int?

    @Option(name: .customLong("child-index"), help: .hidden)
    var childIndex: Int = 0

    func run() throws {
        if let n = childEvents {
            BenchAnalyzeChild.run(events: n, index: childIndex)
            return
        }
        var generated = false
        let dir: String
        var genSeconds = 0.0
        if let trace {
            dir = trace
        } else {
            guard events >= 1000, processes >= 1 else { throw failUnusable("--events must be ≥ 1000 and --processes ≥ 1") }
            dir = try makeTemporaryDirectory("bench-analyze")
            generated = true
            let g0 = Date()
            try generate(into: dir)
            genSeconds = Date().timeIntervalSince(g0)
        }
        defer { if generated && !keep { try? FileManager.default.removeItem(atPath: dir) } }

        // Peak RSS of `tangle analyze --format F` per format, each in a process of its own. First,
        // while this process is small: a child's ru_maxrss starts at its parent's high-water mark
        // (posix_spawn execs from the parent's address space, and exec records that mark).
        var formatRSS: [(String, Double)] = []
        if !noFormats {
            for f in ["text", "json"] + ExportFormat.allCases.map(\.rawValue) {
                formatRSS.append((f, try analyzeRSS(dir: dir, format: f)))
            }
        }

        // The reader alone (decompress, parse, merge), to attribute the time.
        let r0 = cpuSeconds()
        var readCount = 0
        do {
            let stream = try TraceEventStream(paths: [dir])
            while try stream.next() != nil { readCount += 1 }
        } catch {
            throw failUnusable("\(error)")
        }
        let readCPU = cpuSeconds() - r0

        var options = AnalysisOptions()
        options.keepEvents = false
        let cpu0 = cpuSeconds()
        let t0 = DispatchTime.now().uptimeNanoseconds
        let result: AnalysisResult
        do {
            result = try Analyzer.analyze(paths: [dir], options: options)
        } catch {
            throw failUnusable("\(error)")
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        let cpu = cpuSeconds() - cpu0
        let n = result.report.stats.events
        let bytes = traceBytes(dir)
        let rss = peakRSSMB()
        let perSecond = Double(n) / max(seconds, 1e-9)
        var out: [String: Any] = [
            "events": n,
            "events_per_s": Int(perSecond),
            "events_per_cpu_s": Int(Double(n) / max(cpu, 1e-9)),
            "seconds": (seconds * 1000).rounded() / 1000,
            "cpu_seconds": (cpu * 1000).rounded() / 1000,
            "peak_rss_mb": (rss * 10).rounded() / 10,
            "trace_bytes": bytes,
            "files": result.report.stats.files,
            "processes": result.report.stats.processes,
            "threads": result.report.stats.threads,
            "findings": result.report.findings.count,
            "problems": result.report.problems.count,
            "generate_seconds": (genSeconds * 1000).rounded() / 1000,
            "target_events_per_s": 3_000_000,
            "read_events_per_s": Int(Double(readCount) / max(readCPU, 1e-9)),
            "model_ns_per_event": readCount == 0 ? 0 : Int(max(0, cpu - readCPU) * 1e9 / Double(readCount)),
        ]
        if keep && generated { out["trace_dir"] = dir }
        for (f, mb) in formatRSS { out["peak_rss_mb_" + f.replacingOccurrences(of: "-", with: "_")] = (mb * 10).rounded() / 10 }
        if !formatRSS.isEmpty { out["target_peak_rss_mb_per_format"] = 200 }
        if json {
            let data = try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys])
            FileHandle.standardOutput.write(data + Data("\n".utf8))
        } else {
            print("analyzed \(n) events (\(result.report.stats.files) files, \(bytes / 1_000_000) MB compressed) in \(String(format: "%.2f", seconds)) s")
            print("  \(String(format: "%.2f", perSecond / 1e6)) M events/s end to end (target ≥ 3 M/s per core; \(String(format: "%.2f", Double(n) / max(cpu, 1e-9) / 1e6)) M per CPU-second)")
            print("  the reader alone: \(String(format: "%.2f", Double(readCount) / max(readCPU, 1e-9) / 1e6)) M events per CPU-second; the model and passes add \(readCount == 0 ? 0 : Int(max(0, cpu - readCPU) * 1e9 / Double(readCount))) ns/event")
            print("  peak RSS \(String(format: "%.1f", rss)) MB; \(result.report.findings.count) finding(s), \(result.report.problems.count) problem(s)")
            for (f, mb) in formatRSS {
                print("  peak RSS of tangle analyze --format \(f): \(String(format: "%.1f", mb)) MB (target ≤ 200 MB at 10 M events; the analysis alone: \(String(format: "%.1f", rss)) MB)")
            }
            if generated { print("  (trace generated in \(String(format: "%.1f", genSeconds)) s by \(processes) traced processes)") }
            if keep && generated { print("  trace directory: \(dir)") }
        }
    }

    private func generate(into dir: String) throws {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var env = ProcessInfo.processInfo.environment
        env["TANGLE_TRACE"] = dir
        let per = max(1000, events / processes)
        var children: [Process] = []
        for i in 0..<processes {
            let p = Process()
            p.executableURL = exe
            p.arguments = ["bench", "analyze", "--child-events", String(per), "--child-index", String(i)]
            p.environment = env
            try p.run()
            children.append(p)
        }
        for p in children {
            p.waitUntilExit()
            if p.terminationStatus != 0 { throw failUnusable("a trace-writing child exited with status \(p.terminationStatus)") }
        }
    }

    private func traceBytes(_ dir: String) -> Int {
        let fm = FileManager.default
        let names = (try? fm.contentsOfDirectory(atPath: dir)) ?? []
        return names.reduce(0) { sum, name in
            sum + (((try? fm.attributesOfItem(atPath: dir + "/" + name))?[.size] as? NSNumber)?.intValue ?? 0)
        }
    }

    /// Runs `tangle analyze --format F DIR` (output to /dev/null) and returns its peak RSS in MB.
    private func analyzeRSS(dir: String, format: String) throws -> Double {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let args = [exe, "analyze", "--format", format, dir]
        let argv = args.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, exe, &actions, nil, argv, environ)
        guard rc == 0 else { throw failUnusable("cannot run \(exe) analyze: \(String(cString: strerror(rc)))") }
        var status: Int32 = 0
        var ru = rusage()
        while wait4(pid, &status, 0, &ru) < 0 && errno == EINTR {}
        let exitCode = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        guard exitCode == 0 || exitCode == 1 else { throw failUnusable("tangle analyze --format \(format) exited with \(exitCode)") }
        return Double(ru.ru_maxrss) / 1024
    }

    private func cpuSeconds() -> Double {
        var ru = rusage()
        getrusage(RUSAGE_SELF.rawValue, &ru)
        return Double(ru.ru_utime.tv_sec) + Double(ru.ru_utime.tv_usec) / 1e6
            + Double(ru.ru_stime.tv_sec) + Double(ru.ru_stime.tv_usec) / 1e6
    }

    /// VmHWM from /proc/self/status (peak resident set), in MB.
    private func peakRSSMB() -> Double {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let digits = line.split(separator: " ").dropFirst().first.flatMap { Double($0) } ?? 0
            return digits / 1024
        }
        return 0
    }
}

/// The traced workload of one bench child: records through the real recorder.
enum BenchAnalyzeChild {
    final class Channel: @unchecked Sendable {
        let cond = NSCondition()
        /// The consumers' shared lock 'C' (really taken, so the trace is correct).
        let shared = NSLock()
        var items: [UInt64] = []
        var head = 0
        var count: Int { items.count - head }
    }

    static func run(events: Int, index: Int) {
        guard Recorder.isEnabled else { return }
        Recorder.start(processObject: Recorder.newObjectID(), name: "bench-\(index)")
        let queue = Recorder.newObjectID()
        let lockA = Recorder.newObjectID()
        let lockB = Recorder.newObjectID()
        let lockC = Recorder.newObjectID()
        Recorder.record(.queueNew, object: queue, text: "work", a: 0)
        Recorder.record(.lockNew, object: lockA, text: "A", a: LockType.lock.rawValue, b: 1)
        Recorder.record(.lockNew, object: lockB, text: "B", a: LockType.lock.rawValue, b: 1)
        Recorder.record(.lockNew, object: lockC, text: "C", a: LockType.lock.rawValue, b: 1)
        // ~3 events per produced item on the producer, ~3 per consumed item on the consumers.
        let items = max(10, events / 6)
        let ch = Channel()
        let consumers = 2
        let group = DispatchGroup()
        var threads: [Thread] = []
        let producerObject = Recorder.newObjectID()
        threads.append(Thread {
            Recorder.threadStarted(object: producerObject, name: "producer")
            produce(items: items, pills: consumers, queue: queue, lockA: lockA, lockB: lockB, ch: ch)
            Recorder.threadExited(object: producerObject)
            group.leave()
        })
        var objects = [producerObject]
        for c in 0..<consumers {
            let obj = Recorder.newObjectID()
            objects.append(obj)
            threads.append(Thread {
                Recorder.threadStarted(object: obj, name: "consumer-\(c)")
                consume(queue: queue, lock: lockC, ch: ch)
                Recorder.threadExited(object: obj)
                group.leave()
            })
        }
        for t in threads {
            group.enter()
            t.start()
        }
        group.wait()
        for obj in objects { Recorder.record(.threadJoinDone, object: obj) }
        Recorder.processExiting(status: 0, signal: 0)
    }

    @inline(never) static func produce(items: Int, pills: Int, queue: UInt64, lockA: UInt64, lockB: UInt64, ch: Channel) {
        for i in 0..<(items + pills) {
            let msg = Recorder.newMessageID()
            let pill: UInt64 = i < items ? 0 : 1 << 63
            Recorder.record(.lockAcquired, object: lockA, a: 1)
            let nested = i % 16 == 0
            if nested { Recorder.record(.lockAcquired, object: lockB, a: 1) }
            ch.cond.lock()
            while ch.count > 4096 { ch.cond.wait() }
            Recorder.record(.queuePut, object: queue, a: msg, b: 64)
            ch.items.append(msg | pill)
            ch.cond.broadcast()
            ch.cond.unlock()
            if nested { Recorder.record(.lockReleased, object: lockB) }
            Recorder.record(.lockReleased, object: lockA)
        }
    }

    @inline(never) static func consume(queue: UInt64, lock: UInt64, ch: Channel) {
        while true {
            ch.cond.lock()
            if ch.count == 0 {
                Recorder.record(.queueGetWait, object: queue)
                while ch.count == 0 { ch.cond.wait() }
            }
            let item = ch.items[ch.head]
            let msg = item & ~(1 << 63)
            ch.head += 1
            if ch.head > 65536 && ch.head * 2 > ch.items.count {
                ch.items.removeFirst(ch.head)
                ch.head = 0
            }
            Recorder.record(.queueGet, object: queue, a: msg, b: 64)
            ch.cond.broadcast()
            ch.cond.unlock()
            if item >> 63 == 1 { return }   // the poison pill
            ch.shared.lock()
            Recorder.record(.lockAcquired, object: lock, a: 1)
            Recorder.record(.lockReleased, object: lock)
            ch.shared.unlock()
        }
    }
}
