import Glibc
import Tangle

/// What one measuring child is asked to measure; it writes the figure, as text, to `out`.
struct MeasureArgs: Codable {
    var kind: String
    var count: Int
    var out: InheritedDescriptor
}

let benchSquare = PoolFunction<Int, Int>("bench.square")
let benchAdd = PoolFunction<PoolArguments2<Int, Int>, Int>("bench.add")

enum RuntimeBench {
    static func registerEntryPoints() {
        EntryPoint.register("bench.noop") {}
        PrimitiveBenchmarks.registerEntryPoints()
        EntryPoint.register("bench.measure") { (args: MeasureArgs) in
            let value = try measure(args.kind, args.count)
            let text = Array("\(value)".utf8)
            _ = text.withUnsafeBytes { write(args.out.fd, $0.baseAddress, $0.count) }
            close(args.out.fd)
        }
        PoolFunction.register("bench.square") { (x: Int) -> Int in x &* x }
        PoolFunction.register("bench.add") { (a: Int, b: Int) -> Int in a &+ b }
    }

    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.isEmpty ? 0 : s[s.count / 2]
    }

    /// Runs in a measuring child (traced or not, as its environment says).
    static func measure(_ kind: String, _ n: Int) throws -> Double {
        switch kind {
        case "queue":
            // The primitives' measurement: a spawned producer puts `n` small messages through a
            // Queue<Int>; its start-up is not timed (it waits on an Event).
            return try PrimitiveBenchmarks.queueMessagesPerSecond(messages: n, method: .spawn)
        case "lock":
            return try PrimitiveBenchmarks.lockPairNanoseconds(iterations: n)
        case "asyncqueue":
            return try PrimitiveBenchmarks.asyncQueueMessagesPerSecond(messages: n)
        case "sharedvalue":
            return try PrimitiveBenchmarks.sharedValueAddNanoseconds(iterations: n)
        case "imap", "starmap":
            // The same chunk size as the Python peer's imap (1000); starmap: the default, as map's.
            let pool = try Pool()
            defer {
                pool.close()
                pool.join()
            }
            _ = try pool.map(benchSquare, Array(0..<1000))
            let items = Array(0..<n)
            let pairs = items.map { ($0, $0) }
            var best = Double.infinity
            for _ in 0..<3 {
                let t0 = now()
                var last = 0, count = 0
                if kind == "imap" {
                    for r in try pool.imap(benchSquare, items, chunkSize: 1000) { last = try r.get(); count += 1 }
                } else {
                    let out = try pool.starmap(benchAdd, pairs)
                    last = out.last ?? 0
                    count = out.count
                }
                best = min(best, Double(now() - t0) / Double(n))
                precondition(count == n && last == (kind == "imap" ? (n - 1) * (n - 1) : 2 * (n - 1)))
            }
            return best
        case "lockburst":
            return try PrimitiveBenchmarks.lockPairBurstNanoseconds(bursts: n)
        case "spawn", "fork":
            var times: [Double] = []
            for _ in 0..<n {
                let t0 = now()
                let child = kind == "spawn" ? ChildProcess(entryPoint: "bench.noop") : ChildProcess(fork: {})
                try child.start()
                child.join()
                times.append(Double(now() - t0) / 1e6)
            }
            return median(times)
        case "pool":
            let pool = try Pool()
            defer {
                pool.close()
                pool.join()
            }
            _ = try pool.map(benchSquare, Array(0..<1000))
            let items = Array(0..<n)
            var best = Double.infinity
            for _ in 0..<3 {
                let t0 = now()
                let out = try pool.map(benchSquare, items)
                best = min(best, Double(now() - t0) / Double(n))
                precondition(out.count == n && out[n - 1] == (n - 1) * (n - 1))
            }
            return best
        default:
            throw BenchError(message: "unknown measurement \(kind)")
        }
    }

    struct BenchError: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    /// Starts a measuring child (with TANGLE_TRACE=<traceDir> when `traced`) and reads its figure.
    static func run(_ kind: String, _ count: Int, traced: Bool, traceDir: String) -> Double? {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return nil }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        if traced { setenv("TANGLE_TRACE", traceDir, 1) } else { unsetenv("TANGLE_TRACE") }
        defer { unsetenv("TANGLE_TRACE") }
        let child = ChildProcess(entryPoint: "bench.measure", arguments: MeasureArgs(kind: kind, count: count, out: InheritedDescriptor(fds[1])))
        do {
            try child.start()
        } catch {
            close(fds[0]); close(fds[1])
            return nil
        }
        close(fds[1])
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 256)
        while true {
            let r = buf.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            if r <= 0 { break }
            bytes += buf[0..<r]
        }
        close(fds[0])
        let status = child.join()
        guard status == .exited(0) else {
            printError("tangle-runtime-bench: measurement \(kind) failed: \(status.map { "\($0)" } ?? "?")")
            return nil
        }
        return Double(String(decoding: bytes, as: UTF8.self))
    }

    static func printError(_ s: String) {
        let b = Array((s + "\n").utf8)
        _ = b.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }

    static func main(_ args: [String]) -> Int32 {
        let json = args.contains("--json")
        let quick = args.contains("--quick")
        var template = Array("/tmp/tangle-runtime-bench-XXXXXX".utf8CString)
        guard let p = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            printError("tangle-runtime-bench: cannot create a trace directory")
            return 2
        }
        let traceDir = String(cString: p)
        defer { removeTree(traceDir) }

        let q = quick ? 50_000 : 500_000
        let plan: [(key: String, kind: String, count: Int, traced: Bool)] = [
            ("queue_msgs_per_s", "queue", q, true),
            ("queue_msgs_per_s_untraced", "queue", q, false),
            // As many pairs per run as the Python peer takes (and the same best of 5).
            ("lock_pair_ns", "lock", quick ? 200_000 : 1_000_000, true),
            ("lock_pair_ns_untraced", "lock", quick ? 200_000 : 1_000_000, false),
            ("lock_pair_ns_on_thread", "lockburst", quick ? 200 : 2000, true),
            ("spawn_join_ms", "spawn", quick ? 5 : 30, false),
            ("spawn_join_ms_traced", "spawn", quick ? 5 : 20, true),
            ("fork_join_ms", "fork", quick ? 5 : 30, false),
            ("pool_map_ns_per_item", "pool", quick ? 100_000 : 1_000_000, false),
            ("pool_map_ns_per_item_traced", "pool", quick ? 100_000 : 1_000_000, true),
            ("imap_ns_per_item", "imap", quick ? 100_000 : 1_000_000, false),
            ("starmap_ns_per_item", "starmap", quick ? 100_000 : 1_000_000, false),
            ("shared_value_add_ns", "sharedvalue", quick ? 200_000 : 1_000_000, true),
            ("shared_value_add_ns_untraced", "sharedvalue", quick ? 200_000 : 1_000_000, false),
            ("async_queue_msgs_per_s", "asyncqueue", q, true),
            ("async_queue_msgs_per_s_untraced", "asyncqueue", q, false),
        ]
        // `--only KEY[,KEY…]`: just those figures (the lock rounds `tangle bench runtime` interleaves
        // with the Python peer's).
        var only: Set<String>?
        if let i = args.firstIndex(of: "--only"), i + 1 < args.count {
            only = Set(args[i + 1].split(separator: ",").map(String.init))
        }
        var results: [(String, Double?)] = []
        for step in plan where only?.contains(step.key) ?? true {
            results.append((step.key, run(step.kind, step.count, traced: step.traced, traceDir: traceDir)))
            removeTree(traceDir, keepRoot: true)
        }
        var out = ""
        if json {
            out = "{" + results.map { "\"\($0.0)\":\($0.1.map { format($0) } ?? "null")" }.joined(separator: ",")
                + (only == nil ? ",\"workers\":\(CPUCount.available())" : "") + "}\n"
        } else {
            for (k, v) in results { out += "\(k): \(v.map { format($0) } ?? "failed")\n" }
        }
        print(out, terminator: "")
        return results.allSatisfy { $0.1 != nil } ? 0 : 1
    }

    static func format(_ v: Double) -> String {
        if v >= 1000 { return "\(Int(v.rounded()))" }
        return "\((v * 100).rounded() / 100)"
    }

    static func removeTree(_ path: String, keepRoot: Bool = false) {
        guard let dir = opendir(path) else { return }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name == "." || name == ".." { continue }
            let child = path + "/" + name
            if unlink(child) != 0 { removeTree(child) }
        }
        closedir(dir)
        if !keepRoot { rmdir(path) }
    }
}
