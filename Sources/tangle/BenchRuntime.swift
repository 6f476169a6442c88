import ArgumentParser
import Foundation

/// `tangle bench runtime [--json]`: the runtime's costs against Python's `multiprocessing`, on the
/// same machine in the same run. The Swift figures come from the `tangle-runtime-bench` executable
/// found beside `tangle` (it links only Tangle, so spawn + join is what an app pays); the Python
/// figures from `bench_runtime_peer.py` (embedded in the binary), run with python3 (skipped with a
/// message when python3 is absent).
struct BenchRuntime: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runtime",
        abstract: "Queue msgs/s, Lock acquire+release ns (traced and untraced), spawn+join ms, Pool.map ns/item — vs Python multiprocessing.",
        discussion: """
            Each Tangle figure is measured in a child of tangle-runtime-bench (found beside tangle; \
            `swift build -c release` builds it), traced or not; the Python peer runs an embedded \
            script with python3 from PATH (skipped, with a message, when there is none). The traced \
            lock is measured in three rounds alternating with Python's, each the best of 5 runs of \
            1 M pairs; each peer's figure is its best round, and --json prints the rounds too \
            (lock_pair_ns_rounds, python_lock_pair_ns_rounds). Release builds only give meaningful \
            figures. docs/runtime.md lists the keys and the budgets.
            """)

    @Flag(name: .long, help: "Print one JSON object.")
    var json = false

    @Flag(name: .long, help: "Fewer iterations (a quick, noisier run).")
    var quick = false

    @Flag(name: .long, help: "Skip the Python peer.")
    var noPython = false

    /// Lock measurement rounds after the first, alternating between the peers (see `run`).
    static let extraLockRounds = 2

    /// Keys every run prints (null when a measurement failed).
    static let keys = [
        "queue_msgs_per_s", "queue_msgs_per_s_untraced", "lock_pair_ns", "lock_pair_ns_untraced",
        "lock_pair_ns_on_thread", "spawn_join_ms", "spawn_join_ms_traced", "fork_join_ms", "pool_map_ns_per_item", "pool_map_ns_per_item_traced",
        "imap_ns_per_item", "starmap_ns_per_item", "shared_value_add_ns", "shared_value_add_ns_untraced",
        "async_queue_msgs_per_s", "async_queue_msgs_per_s_untraced",
    ]

    func run() throws {
        guard let bench = Self.findBenchBinary() else {
            throw failUnusable("cannot find tangle-runtime-bench beside \(Self.selfPath()); build it (swift build --product tangle-runtime-bench)")
        }
        var args = ["--json"]
        if quick { args.append("--quick") }
        let (swiftOut, swiftStatus) = try Self.capture(bench, args, environment: ["SWIFT_BACKTRACE": "enable=no"])
        var swiftFigures = (try? JSONSerialization.jsonObject(with: Data(swiftOut.utf8))) as? [String: Any] ?? [:]
        if swiftFigures.isEmpty {
            FileHandle.standardError.write(Data("tangle: tangle-runtime-bench printed no figures (status \(swiftStatus))\n".utf8))
        }
        for key in Self.keys where swiftFigures[key] == nil { swiftFigures[key] = NSNull() }

        var pythonFigures: [String: Any] = [:]
        var pythonNote: String?
        var python: String?
        if noPython {
            pythonNote = "skipped (--no-python)"
        } else if let found = Self.findInPath("python3") {
            python = found
        } else {
            pythonNote = "python3 not found: Python figures skipped"
        }
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("tangle-bench-\(getpid()).py")
        defer { try? FileManager.default.removeItem(at: script) }
        /// The Python peer's figures (nil when it failed).
        func runPython(_ extra: [String]) throws -> [String: Any]? {
            guard let python else { return nil }
            var pyArgs = [script.path] + extra
            if quick { pyArgs.append("--quick") }
            let (out, _) = try Self.capture(python, pyArgs, environment: [:])
            return (try? JSONSerialization.jsonObject(with: Data(out.utf8))) as? [String: Any]
        }
        if python != nil {
            try Self.pythonScript.write(to: script, atomically: true, encoding: .utf8)
            if let obj = try runPython([]) { pythonFigures = obj } else { pythonNote = "python3 failed" }
        }
        if let pythonNote { FileHandle.standardError.write(Data("tangle: \(pythonNote)\n".utf8)) }

        // The traced lock pair and Python's are within a few ns of each other, and this kind of
        // host drifts by 20–50% within seconds: one figure each, taken seconds apart, would compare
        // the drift more than the locks. So the lock is measured in rounds that alternate between
        // the peers (first round above: Tangle, then Python; then Python first, then Tangle first),
        // and each peer's figure is its best over the rounds — the same statistic for both.
        if !pythonFigures.isEmpty, let first = swiftFigures["lock_pair_ns"] as? Double,
           let pyFirst = pythonFigures["lock_pair_ns"] as? Double {
            var ours = [first], theirs = [pyFirst]
            for round in 1...Self.extraLockRounds {
                func tangleRound() throws {
                    let (out, _) = try Self.capture(bench, args + ["--only", "lock_pair_ns"], environment: ["SWIFT_BACKTRACE": "enable=no"])
                    let obj = (try? JSONSerialization.jsonObject(with: Data(out.utf8))) as? [String: Any]
                    if let v = obj?["lock_pair_ns"] as? Double { ours.append(v) }
                }
                func pythonRound() throws {
                    if let v = try runPython(["--only-lock"])?["lock_pair_ns"] as? Double { theirs.append(v) }
                }
                if round % 2 == 1 { try pythonRound(); try tangleRound() } else { try tangleRound(); try pythonRound() }
            }
            swiftFigures["lock_pair_ns"] = ours.min()
            swiftFigures["lock_pair_ns_rounds"] = ours
            pythonFigures["lock_pair_ns"] = theirs.min()
            pythonFigures["lock_pair_ns_untraced"] = theirs.min()
            pythonFigures["lock_pair_ns_rounds"] = theirs
        }

        var result: [String: Any] = swiftFigures
        for (k, v) in pythonFigures { result["python_" + k] = v }
        if json {
            let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
            FileHandle.standardOutput.write(data + Data("\n".utf8))
            return
        }
        func show(_ v: Any?) -> String {
            guard let n = v as? NSNumber else { return "—" }
            let d = n.doubleValue
            return d >= 1000 ? String(format: "%.0f", d) : String(format: "%.2f", d)
        }
        var lines = ["measurement                        Tangle        Python"]
        let rows: [(String, String, String)] = [
            ("queue msgs/s (traced)", "queue_msgs_per_s", "queue_msgs_per_s"),
            ("queue msgs/s (untraced)", "queue_msgs_per_s_untraced", "queue_msgs_per_s_untraced"),
            ("lock acquire+release ns (traced)", "lock_pair_ns", "lock_pair_ns"),
            ("lock acquire+release ns (untraced)", "lock_pair_ns_untraced", "lock_pair_ns_untraced"),
            ("  traced, paid by the thread", "lock_pair_ns_on_thread", "lock_pair_ns"),
            ("spawn+join ms", "spawn_join_ms", "spawn_join_ms"),
            ("spawn+join ms (traced)", "spawn_join_ms_traced", "spawn_join_ms"),
            ("fork+join ms", "fork_join_ms", "fork_join_ms"),
            ("Pool.map ns/item", "pool_map_ns_per_item", "pool_map_ns_per_item"),
            ("Pool.map ns/item (traced)", "pool_map_ns_per_item_traced", "pool_map_ns_per_item"),
            ("Pool.imap ns/item (chunks of 1000)", "imap_ns_per_item", "imap_ns_per_item"),
            ("Pool.starmap ns/item", "starmap_ns_per_item", "starmap_ns_per_item"),
            ("SharedValue += 1 under lock ns", "shared_value_add_ns", "shared_value_add_ns"),
            ("  untraced", "shared_value_add_ns_untraced", "shared_value_add_ns"),
            ("async queue msgs/s (traced)", "async_queue_msgs_per_s", "queue_msgs_per_s"),
            ("async queue msgs/s (untraced)", "async_queue_msgs_per_s_untraced", "queue_msgs_per_s_untraced"),
        ]
        for (label, k, pk) in rows {
            lines.append(label.padding(toLength: 34, withPad: " ", startingAt: 0)
                + show(result[k]).leftPadded(12) + show(result["python_" + pk]).leftPadded(14))
        }
        lines.append("(Python has no tracing: its traced and untraced rows are the same figure. Workers: \(result["workers"].map { "\($0)" } ?? "?").)")
        if let ours = result["lock_pair_ns_rounds"] as? [Double], let theirs = result["python_lock_pair_ns_rounds"] as? [Double] {
            lines.append("(Traced lock: best of \(ours.count) rounds alternating with Python's — Tangle \(ours.map { show($0) }.joined(separator: ", ")); Python \(theirs.map { show($0) }.joined(separator: ", ")) ns.)")
        }
        print(lines.joined(separator: "\n"))
    }

    static func selfPath() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    static func findBenchBinary() -> String? {
        let dir = (selfPath() as NSString).deletingLastPathComponent
        let candidate = dir + "/tangle-runtime-bench"
        return FileManager.default.isExecutableFile(atPath: candidate) ? candidate : nil
    }

    static func findInPath(_ name: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let p = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    /// Runs `path args`, returns its standard output and exit status (stderr passes through).
    static func capture(_ path: String, _ args: [String], environment: [String: String]) throws -> (String, Int32) {
        let process = Foundation.Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = args
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "TANGLE_TRACE")
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let pipe = Foundation.Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (String(decoding: data, as: UTF8.self), process.terminationStatus)
    }

    /// The Python peer: the same four measurements with `multiprocessing` (`bench_runtime_peer.py`,
    /// embedded by SwiftPM: found from a fresh clone and from an installed copy alike).
    static var pythonScript: String { String(decoding: PackageResources.bench_runtime_peer_py, as: UTF8.self) }
}

private extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
