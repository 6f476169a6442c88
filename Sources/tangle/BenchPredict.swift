import ArgumentParser
import Foundation
import TangleAnalysis
import TangleTraceFormat

/// `tangle bench predict [--json]`: the lock-order engine on generated traces with a dense acyclic
/// lock order plus one inversion — does it find the inversion, how long, how much memory.
///
/// The traces are generated in memory, event by event, and fed straight to an `AnalysisSession`
/// (no files, no reader: the figure is the model and the passes). Each case is one process whose
/// threads run critical sections over 2–4 distinct locks taken in increasing index order (so every
/// pair of locks ends up nested by some thread: a dense acyclic order); half-way, one thread takes
/// lock `hi` and then lock `lo` (lo < hi), the only inversion, after another thread took lo then hi.
/// Sections never overlap, so nothing deadlocks: the finding must be predicted. Each case runs in a
/// fresh process of this binary, so its peak RSS (VmHWM) is its own.
struct BenchPredict: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Lock-order prediction on generated dense lock orders with one inversion: found, seconds, peak RSS.")

    @Flag(name: .long, help: "Print one JSON object.")
    var json = false

    @Option(name: .long, help: "Random seed of the generated traces.")
    var seed: UInt64 = 13

    @Option(name: .long, help: "Run only this case (1-based; for profiling).")
    var only: Int?

    struct Case {
        var events: Int
        var locks: Int
        var threads: Int
    }

    static let cases = [
        Case(events: 200_000, locks: 40, threads: 8),
        Case(events: 200_000, locks: 100, threads: 8),
        Case(events: 200_000, locks: 400, threads: 8),
        Case(events: 2_000_000, locks: 1000, threads: 8),
        Case(events: 200_000, locks: 100, threads: 100),
        // The peer of the first case with ten times the events: memory follows the lock graph.
        Case(events: 2_000_000, locks: 40, threads: 8),
    ]

    func run() throws {
        var rows: [[String: Any]] = []
        if let only {
            guard (1...Self.cases.count).contains(only) else { throw failUnusable("--only must be 1…\(Self.cases.count)") }
            rows.append(Self.measure(Self.cases[only - 1], seed: seed))
        } else {
            // Each case in a fresh process of this binary, so each peak RSS is that case's own.
            let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            for i in Self.cases.indices {
                let p = Process()
                let pipe = Pipe()
                p.executableURL = exe
                p.arguments = ["bench", "predict", "--json", "--seed", String(seed), "--only", String(i + 1)]
                p.standardOutput = pipe
                try p.run()
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                p.waitUntilExit()
                guard p.terminationStatus == 0,
                      let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                      let cases = obj["cases"] as? [[String: Any]], let row = cases.first
                else { throw failUnusable("bench predict: case \(i + 1) failed (status \(p.terminationStatus))") }
                rows.append(row)
            }
        }
        if json {
            let out: [String: Any] = ["seed": seed, "cases": rows]
            let data = try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys])
            FileHandle.standardOutput.write(data + Data("\n".utf8))
        } else {
            print("lock-order prediction, seed \(seed) (target: found, < 2 s each; one process per case)")
            for r in rows {
                let line = String(format: "%9d events %5d locks %4d threads: %6.3f s (%6.3f CPU-s), peak RSS %6.1f MB, found %@ (%d finding(s), %d problem(s), %d lock-order edges)",
                                  r["events"] as! Int, r["locks"] as! Int, r["threads"] as! Int, r["seconds"] as! Double, r["cpu_seconds"] as! Double,
                                  r["peak_rss_mb"] as! Double, (r["found"] as! Bool) ? "yes" : "NO",
                                  r["findings"] as! Int, r["problems"] as! Int, r["edges"] as! Int)
                print(line)
            }
        }
    }

    /// Runs one case in this process.
    static func measure(_ c: Case, seed: UInt64) -> [String: Any] {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let c0 = cpuSeconds()
        let (report, names, events, edges) = analyze(c, seed: seed)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        let cpu = cpuSeconds() - c0
        let found = report.findings.contains {
            $0.kind == .lockOrderInversion && $0.title.contains("'\(names.lo)'") && $0.title.contains("'\(names.hi)'")
        }
        return [
            "events": events, "locks": c.locks, "threads": c.threads,
            "seconds": (seconds * 1000).rounded() / 1000,
            "cpu_seconds": (cpu * 1000).rounded() / 1000,
            "peak_rss_mb": (peakRSSMB() * 10).rounded() / 10,
            "found": found,
            "findings": report.findings.count,
            "problems": report.problems.count,
            "edges": edges,
            "target_seconds": 2,
        ]
    }

    /// Generates one case's trace into a session and finishes it.
    static func analyze(_ c: Case, seed: UInt64) -> (Report, (lo: String, hi: String), Int, Int) {
        var options = AnalysisOptions()
        options.keepEvents = false
        let session = AnalysisSession(options: options)
        var gen = Generator(c, seed: seed)
        session.addHeader(TraceHeader(pid: gen.pid, ppid: 1, executable: "/bench/predict", argv0: "predict",
                                      bootID: "bench", startTime: gen.time))
        while let e = gen.next() { session.consume(e) }
        let result = session.finish()
        let edges = result.report.problems.compactMap { p -> Int? in
            // "the graph has N edges" (graphs past the export limit), else the exported edge count.
            guard p.kind == .analysisBound, let r = p.detail.range(of: "the graph has ") else { return nil }
            return Int(p.detail[r.upperBound...].prefix { $0.isNumber })
        }.first ?? result.context.lockOrder.count
        return (result.report, ("k\(gen.lo)", "k\(gen.hi)"), gen.count, edges)
    }

    /// The event stream of one case (a state machine: memory does not grow with the trace).
    struct Generator {
        let c: Case
        let pid: Int32 = 100
        var time: UInt64 = 1_000_000_000
        var count = 0
        var rng: SplitMix64
        let lo: Int, hi: Int
        private var seqs: [UInt64]
        private var pending: [TraceEvent] = []
        private var phase = 0
        private var inverted = false

        init(_ c: Case, seed: UInt64) {
            self.c = c
            rng = SplitMix64(seed: seed ^ UInt64(c.events) ^ (UInt64(c.locks) << 32) ^ (UInt64(c.threads) << 48))
            lo = c.locks / 3
            hi = 2 * c.locks / 3
            seqs = Array(repeating: 0, count: c.threads + 1)
        }

        func lockID(_ i: Int) -> UInt64 { (UInt64(UInt32(bitPattern: pid)) << 28) | UInt64(i + 1) }
        func threadObject(_ i: Int) -> UInt64 { (UInt64(UInt32(bitPattern: pid)) << 28) | UInt64(c.locks + 1 + i) }

        private mutating func emit(_ thread: Int, _ kind: EventKind, o: UInt64 = 0, a: UInt64 = 0, b: UInt64 = 0, text: String? = nil) {
            time += 1000
            let e = TraceEvent(time: time, pid: pid, tid: pid + Int32(thread), seq: seqs[thread], kind: kind, object: o,
                               a: a, b: b, text: text)
            seqs[thread] += 1
            pending.append(e)
        }

        private mutating func section(_ thread: Int, _ locks: [Int]) {
            for l in locks { emit(thread, .lockAcquired, o: lockID(l), a: 1) }
            for l in locks.reversed() { emit(thread, .lockReleased, o: lockID(l)) }
        }

        mutating func next() -> TraceEvent? {
            if pending.isEmpty { refill() }
            guard !pending.isEmpty else { return nil }
            count += 1
            return pending.removeFirst()
        }

        private mutating func refill() {
            pending.removeAll(keepingCapacity: true)
            switch phase {
            case 0:
                emit(0, .processStart, a: 1, text: "predict")
                for i in 0..<c.locks { emit(0, .lockNew, o: lockID(i), a: LockType.lock.rawValue, b: 1, text: "k\(i)") }
                for t in 1...c.threads { emit(t, .threadStart, o: threadObject(t), a: UInt64(pid), text: "w\(t)") }
                // lo then hi by the first worker: the order the inversion contradicts.
                section(1, [lo, hi])
                phase = 1
            case 1:
                let closing = c.threads * 2 + 4
                if count + closing >= c.events {
                    for t in 1...c.threads { emit(t, .threadExit, o: threadObject(t)) }
                    emit(0, .processExit)
                    phase = 2
                    return
                }
                if !inverted && count >= c.events / 2 {
                    inverted = true
                    section(c.threads, [hi, lo])
                    return
                }
                let thread = 1 + Int(rng.next() % UInt64(c.threads))
                let k = 2 + Int(rng.next() % 3)
                var picked: [Int] = []
                while picked.count < k {
                    let l = Int(rng.next() % UInt64(c.locks))
                    if !picked.contains(l) { picked.append(l) }
                }
                section(thread, picked.sorted())
            default:
                return
            }
        }
    }
}

/// A small seeded generator (the benchmark's traces are reproducible from `--seed`).
struct SplitMix64 {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// User + system CPU time of this process (the machine is shared: wall time includes waiting).
private func cpuSeconds() -> Double {
    var ru = rusage()
    getrusage(RUSAGE_SELF.rawValue, &ru)
    return Double(ru.ru_utime.tv_sec) + Double(ru.ru_utime.tv_usec) / 1e6
        + Double(ru.ru_stime.tv_sec) + Double(ru.ru_stime.tv_usec) / 1e6
}

private func peakRSSMB() -> Double {
    guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        return (line.split(separator: " ").dropFirst().first.flatMap { Double($0) } ?? 0) / 1024
    }
    return 0
}
