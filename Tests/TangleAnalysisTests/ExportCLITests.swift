import Foundation
import XCTest
import TangleTraceFormat
import TangleTraceReader
@testable import TangleAnalysis

/// The `tangle` verbs of the outputs area (check, baseline, run, watch), run as the built binary on
/// hand-made `.jsonl` traces.
final class ExportCLITests: XCTestCase {
    var tangle = ""
    var dir = ""

    override func setUpWithError() throws {
        guard let bin = ExportTestSupport.tangleBinary else {
            throw XCTSkip("the tangle executable was not found next to the test bundle (set TANGLE_BIN)")
        }
        tangle = bin
        dir = try ExportTestSupport.tempDir("cli")
    }

    override func tearDownWithError() throws {
        if !dir.isEmpty { try? FileManager.default.removeItem(atPath: dir) }
    }

    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    static var bootID: String {
        ((try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// One process's trace file as JSON lines: header, then `events` ("kind", object, extra JSON).
    static func writeTrace(dir: String, pid: Int32, ppid: Int32, start: UInt64, proc: UInt64,
                           events: [(dt: UInt64, tid: Int32, kind: String, o: UInt64, extra: String)]) throws {
        var header = ByteWriter()
        TraceLineEncoder.header(TraceHeader(schemaVersion: TraceHeader.selfContainedSchemaVersion, pid: pid, ppid: ppid,
                                            executable: "/usr/bin/app", argv0: "app", bootID: bootID,
                                            startTime: start, processObject: proc), into: &header)
        var text = String(decoding: header.array, as: UTF8.self)
        var seq: [Int32: Int] = [:]
        for e in events {
            let n = seq[e.tid, default: 0]
            seq[e.tid] = n + 1
            text += #"{"t":\#(start + e.dt),"pid":\#(pid),"tid":\#(e.tid),"seq":\#(n),"k":"\#(e.kind)","o":\#(e.o)\#(e.extra)}"# + "\n"
        }
        try text.write(toFile: "\(dir)/\(pid)-\(start).jsonl", atomically: true, encoding: .utf8)
    }

    /// A two-process lock deadlock: P1 holds A and waits for B, P2 holds B and waits for A.
    func writeDeadlock(_ traceDir: String, start: UInt64 = 1_000_000_000, p1: Int32 = 41001, p2: Int32 = 41002) throws {
        try FileManager.default.createDirectory(atPath: traceDir, withIntermediateDirectories: true)
        let a: UInt64 = (UInt64(p1) << 28) | 1, b: UInt64 = (UInt64(p1) << 28) | 2
        try Self.writeTrace(dir: traceDir, pid: p1, ppid: 1, start: start, proc: 0, events: [
            (0, p1, "proc.start", 0, #","name":"MainProcess""#),
            (10, p1, "lock.new", a, #","type":0,"name":"A""#),
            (20, p1, "lock.new", b, #","type":0,"name":"B""#),
            (30, p1, "proc.spawn", (UInt64(p1) << 28) | 3, #","child":\#(p2),"forked":0,"name":"Process-1""#),
            (40_000, p1, "lock.acquired", a, #","depth":1"#),
            (60_000, p1, "lock.wait", b, ""),
        ])
        try Self.writeTrace(dir: traceDir, pid: p2, ppid: p1, start: start + 1000, proc: (UInt64(p1) << 28) | 3, events: [
            (0, p2, "proc.start", (UInt64(p1) << 28) | 3, #","ppid":\#(p1),"name":"Process-1""#),
            (1000, p2, "handle.attach", a, #","type":2"#),
            (1100, p2, "handle.attach", b, #","type":2"#),
            (45_000, p2, "lock.acquired", b, #","depth":1"#),
            (65_000, p2, "lock.wait", a, ""),
        ])
    }

    /// baseline writes a stable file; check passes on known findings (0), fails on new ones (1),
    /// passes when they are suppressed, reports stale suppressions, and exits 2 on unusable input.
    func testBaselineAndCheckExitCodes() throws {
        let trace = dir + "/trace"
        try writeDeadlock(trace)
        let base = dir + "/baseline.json"
        let b1 = try ExportTestSupport.run(tangle, ["baseline", trace, "--output", base])
        XCTAssertEqual(b1.status, 0, b1.stderr)
        let first = try String(contentsOfFile: base, encoding: .utf8)
        _ = try ExportTestSupport.run(tangle, ["baseline", trace, "--output", base])
        XCTAssertEqual(try String(contentsOfFile: base, encoding: .utf8), first, "the baseline is stable across runs")
        let baseline = try Baseline.load(path: base)

        let known = try ExportTestSupport.run(tangle, ["check", trace, "--baseline", base])
        XCTAssertEqual(known.status, 0, known.stdout + known.stderr)

        try #"{"version":1,"tool":"tangle","findings":[]}"#.write(toFile: dir + "/empty.json", atomically: true, encoding: .utf8)
        let fresh = try ExportTestSupport.run(tangle, ["check", trace, "--baseline", dir + "/empty.json"])
        // The hand-made trace is an ABBA deadlock between two processes: the baseline holds it.
        XCTAssertEqual(baseline.findings.map(\.kind), ["deadlock"], "\(baseline.findings)")
        XCTAssertEqual(fresh.status, 1, fresh.stdout + fresh.stderr)
        XCTAssertTrue(fresh.stdout.contains("NEW"), fresh.stdout)
        // Suppress every finding by fingerprint: passes again, plus one stale entry reported.
        var lines = baseline.findings.map { "fingerprint \($0.fingerprint) known in this test" }
        lines.append("symbol NoSuchFunction* stale on purpose")
        try lines.joined(separator: "\n").write(toFile: dir + "/supp.txt", atomically: true, encoding: .utf8)
        let supp = try ExportTestSupport.run(tangle, ["check", trace, "--baseline", dir + "/empty.json", "--suppressions", dir + "/supp.txt"])
        XCTAssertEqual(supp.status, 0, supp.stdout + supp.stderr)
        XCTAssertTrue(supp.stdout.contains("stale suppression: symbol NoSuchFunction*"), supp.stdout)
        let strict = try ExportTestSupport.run(tangle, ["check", trace, "--baseline", dir + "/empty.json", "--suppressions", dir + "/supp.txt", "--fail-on-stale"])
        XCTAssertEqual(strict.status, 1)

        // Unusable input: exit 2.
        XCTAssertEqual(try ExportTestSupport.run(tangle, ["check", trace, "--baseline", dir + "/missing.json"]).status, 2)
        try "not json".write(toFile: dir + "/bad.json", atomically: true, encoding: .utf8)
        XCTAssertEqual(try ExportTestSupport.run(tangle, ["check", trace, "--baseline", dir + "/bad.json"]).status, 2)
        try FileManager.default.createDirectory(atPath: dir + "/nothing", withIntermediateDirectories: true)
        XCTAssertEqual(try ExportTestSupport.run(tangle, ["check", dir + "/nothing", "--baseline", base]).status, 2)
        XCTAssertEqual(try ExportTestSupport.run(tangle, ["check", trace, "--baseline", base, "--fail-on", "fatal"]).status, 2)
    }

    /// The trace the hanging shell command of `testRunStopsAHangingCommandAtTheTimeout` writes, made
    /// by the format's encoder with stand-in numbers the script replaces by its pid, parent, start
    /// time and queue id: a proc.start, a queue.new, then a get-wait that never returns.
    enum ShellTrace {
        static let pid: Int32 = 1_999_999_901
        static let ppid: Int32 = 1_999_999_902
        static let start: UInt64 = 1_999_999_903_000
        static let queue: UInt64 = 1_999_999_904

        static func lines() -> String {
            var out = ByteWriter()
            TraceLineEncoder.header(TraceHeader(pid: pid, ppid: ppid, executable: "/bin/sh", argv0: "sh", bootID: "",
                                                startTime: start), into: &out)
            var last = start
            for e in [TraceEvent(time: start, pid: pid, tid: pid, seq: 0, kind: .processStart, text: "MainProcess"),
                      TraceEvent(time: start + 1000, pid: pid, tid: pid, seq: 1, kind: .queueNew, object: queue, text: "results"),
                      TraceEvent(time: start + 2000, pid: pid, tid: pid, seq: 2, kind: .queueGetWait, object: queue)] {
                TraceLineEncoder.event(e, after: last, into: &out)
                last = e.time
            }
            return String(decoding: out.array, as: UTF8.self)
        }
    }

    /// `tangle run --timeout` on a traced command that hangs (it records a get-wait, then sleeps):
    /// ends within timeout + grace (+ analysis), reports the hang and exits 1 (findings); with
    /// `--fail-on none` the status is the timeout's, 124, and `--format json` says how it ended.
    /// Also the plain statuses: the command's exit status, 128+signal, 127 for a missing command.
    func testRunStopsAHangingCommandAtTheTimeout() throws {
        let script = """
        t=$(awk '{printf "%d", ($1 - 60) * 1000000000}' /proc/uptime)
        f="$TANGLE_TRACE/$$-$t.jsonl"
        q=$(( ($$ << 28) | 1 ))
        sed -e "s/\(ShellTrace.pid)/$$/g; s/\(ShellTrace.ppid)/$PPID/g; s/\(ShellTrace.start)/$t/g; s/\(ShellTrace.queue)/$q/g" > "$f" <<'EOF'
        \(ShellTrace.lines())EOF
        exec sleep 1000
        """
        let traceDir = dir + "/run-trace"
        let started = Date()
        let out = try ExportTestSupport.run(tangle, ["run", "--trace-dir", traceDir, "--timeout", "2", "--grace", "1", "--", "/bin/sh", "-c", script])
        let elapsed = Date().timeIntervalSince(started)
        XCTAssertLessThan(elapsed, 2 + 1 + 10, "run must end soon after timeout + grace")
        XCTAssertEqual(out.status, 1, "status \(out.status)\n\(out.stdout)\n\(out.stderr)")
        XCTAssertTrue(out.stderr.contains("timeout after 2 s"), out.stderr)
        XCTAssertTrue(out.stdout.hasPrefix("tangle: 1 finding"), "a report is printed: \(out.stdout)")
        XCTAssertTrue(out.stdout.contains("error hang [actual]") && out.stdout.contains("queue 'results'"), out.stdout)
        let files = try FileManager.default.contentsOfDirectory(atPath: traceDir)
        XCTAssertEqual(files.filter { $0.hasSuffix(".jsonl") }.count, 1, "the command wrote into TANGLE_TRACE")
        print("ExportCLITests: tangle run on a hang: status \(out.status) after \(String(format: "%.1f", elapsed)) s\n\(out.stdout)")
        let report = dir + "/run-none.json"
        let none = try ExportTestSupport.run(tangle, ["run", "--trace-dir", dir + "/run-none", "--timeout", "2", "--grace", "1", "--fail-on", "none",
                                                      "--format", "json", "-o", report, "--", "/bin/sh", "-c", script])
        XCTAssertEqual(none.status, 124, none.stderr)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report))) as? [String: Any])
        XCTAssertEqual((json["findings"] as? [[String: Any]])?.map { $0["kind"] as? String }, ["hang"])
        let ended = try XCTUnwrap((json["run"] as? [String: Any])?["ended"] as? [String: Any], "\(json.keys)")
        XCTAssertEqual(ended["how"] as? String, "timeout")
        XCTAssertEqual((json["run"] as? [String: Any])?["stopped_group"] as? Bool, true)

        XCTAssertEqual(try ExportTestSupport.run(tangle, ["run", "--", "/bin/sh", "-c", "exit 3"]).status, 3)
        XCTAssertEqual(try ExportTestSupport.run(tangle, ["run", "--", "/bin/sh", "-c", "kill -9 $$"]).status, 128 + 9)
        XCTAssertEqual(try ExportTestSupport.run(tangle, ["run", "--", "/bin/true"]).status, 0)
        XCTAssertEqual(try ExportTestSupport.run(tangle, ["run", "--", "/no/such/command"]).status, 127)
        // SIGTERM sent to tangle run (a cancelled CI job) goes to the command's group: it ends
        // promptly with the command's status, 128+SIGTERM.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tangle)
        p.arguments = ["run", "--", "/bin/sleep", "1000"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        usleep(1_000_000)   // time to install the forwarder
        kill(p.processIdentifier, SIGTERM)
        let t1 = Date()
        p.waitUntilExit()
        XCTAssertLessThan(Date().timeIntervalSince(t1), 10)
        XCTAssertEqual(p.terminationReason, .exit)
        XCTAssertEqual(p.terminationStatus, 128 + SIGTERM)
        // A trace dir that already holds a trace is refused.
        XCTAssertEqual(try ExportTestSupport.run(tangle, ["run", "--trace-dir", traceDir, "--", "/bin/true"]).status, 2)
    }

    /// `tangle run --timeout` on real hanging programs (tangle-scenarios, built next to tangle):
    /// the trace is cut at the stop, so the report explains the hang the timeout caught — a
    /// deadlock, not the owner-died/orphan noise of processes dying of SIGTERM — and the status is 1.
    func testRunExplainsARealHangAtTheTimeout() throws {
        let scenarios = URL(fileURLWithPath: tangle).deletingLastPathComponent().appendingPathComponent("tangle-scenarios").path
        guard FileManager.default.isExecutableFile(atPath: scenarios) else { throw XCTSkip("tangle-scenarios not built next to tangle") }
        for (name, kinds) in [("poison-pill-missing", ["deadlock", "hang"]), ("dining-philosophers", ["deadlock"])] {
            let trace = dir + "/" + name
            let t0 = Date()
            let out = try ExportTestSupport.run(tangle, ["run", "--trace-dir", trace, "--timeout", "3", "--grace", "2", "--format", "json", "--", scenarios, name])
            XCTAssertLessThan(Date().timeIntervalSince(t0), 3 + 2 + 15)
            XCTAssertEqual(out.status, 1, "\(name): \(out.stderr)")
            let report = try JSONDecoder().decode(Report.self, from: Data(out.stdout.utf8))
            XCTAssertTrue(report.findings.contains { kinds.contains($0.kind.rawValue) && $0.confidence == .actual }, "\(name): \(report.findings.map(\.kind))")
            XCTAssertFalse(report.findings.contains { $0.kind == .ownerDied }, "\(name): owner-died from the stop leaked in")
            XCTAssertTrue(FileManager.default.fileExists(atPath: trace + "/after-stop"), "the complete files are kept aside")
            // Every process was blocked when the timeout struck: the cut trace has no exit by the
            // stop's SIGTERM, the files kept aside do.
            let cutTrace = try TraceReader.load(paths: [trace])
            let kept = try TraceReader.load(paths: [trace + "/after-stop"])
            XCTAssertFalse(cutTrace.events.contains { $0.kind == .processExit && $0.b == UInt64(SIGTERM) }, "\(name): events after the stop were kept")
            XCTAssertTrue(kept.events.contains { $0.kind == .processExit && $0.b == UInt64(SIGTERM) }, "\(name)")
            XCTAssertLessThan(cutTrace.events.count, kept.events.count)
            XCTAssertEqual(cutTrace.events.map(\.time), kept.events.prefix(cutTrace.events.count).map(\.time), "\(name): the times before the stop are unchanged")
            // The cut trace is what later verbs see: check with an empty baseline fails on it too.
            try #"{"version":1,"tool":"tangle","findings":[]}"#.write(toFile: dir + "/empty.json", atomically: true, encoding: .utf8)
            XCTAssertEqual(try ExportTestSupport.run(tangle, ["check", trace, "--baseline", dir + "/empty.json", "--fail-on", "error"]).status, 1)
        }
    }

    /// Two real recorded runs of the same programs (tangle-scenarios: a predicted lock-order
    /// inversion and a hang stopped by the timeout) under `tangle run` give the same fingerprints
    /// (no pids, addresses or times in them), and the Perfetto export of a real trace is valid JSON
    /// with process/thread names, slices and paired message flows.
    func testFingerprintsAreEqualAcrossTwoRealRuns() throws {
        let scenarios = URL(fileURLWithPath: tangle).deletingLastPathComponent().appendingPathComponent("tangle-scenarios").path
        guard FileManager.default.isExecutableFile(atPath: scenarios) else { throw XCTSkip("tangle-scenarios not built next to tangle") }
        for name in ["lock-order-inversion", "lock-across-get"] {
            var fingerprints: [Set<String>] = []
            for i in 0..<2 {
                let trace = dir + "/\(name)-\(i)"
                let run = try ExportTestSupport.run(tangle, ["run", "--trace-dir", trace, "--timeout", "3", "--grace", "2", "--format", "perfetto",
                                                             "-o", trace + ".json", "--", scenarios, name])
                XCTAssertEqual(run.status, 1, run.stderr)
                let b = try ExportTestSupport.run(tangle, ["baseline", trace, "--output", "-"])
                XCTAssertEqual(b.status, 0, b.stderr)
                fingerprints.append(try JSONDecoder().decode(Baseline.self, from: Data(b.stdout.utf8)).fingerprints)
                let perfetto = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: trace + ".json"))) as? [String: Any])
                let events = try XCTUnwrap(perfetto["traceEvents"] as? [[String: Any]])
                XCTAssertGreaterThanOrEqual(events.filter { $0["name"] as? String == "process_name" }.count, 2)
                XCTAssertFalse(events.filter { $0["ph"] as? String == "X" }.isEmpty)
                let s = events.filter { $0["ph"] as? String == "s" }.compactMap { ($0["id"] as? NSNumber)?.intValue }
                let f = events.filter { $0["ph"] as? String == "f" }.compactMap { ($0["id"] as? NSNumber)?.intValue }
                XCTAssertEqual(Set(s), Set(f))
                XCTAssertFalse(events.filter { $0["ph"] as? String == "i" }.isEmpty, "findings as instant events")
            }
            XCTAssertFalse(fingerprints[0].isEmpty, "\(name) has a finding")
            XCTAssertEqual(fingerprints[0], fingerprints[1], "\(name): fingerprints differ between two runs")
            print("ExportCLITests: \(name) fingerprints in two runs: \(fingerprints[0].sorted())")
        }
    }

    /// `tangle watch`: reports (exit 1) when every live thread has been blocked longer than the
    /// grace period, both with --once and while following a directory that grows; exits 0 once
    /// every traced process has exited.
    func testWatchReportsAStallAndExitsWhenProcessesEnd() throws {
        // A live process to stand for the traced program (its pid is in the trace).
        let sleeper = Process()
        sleeper.executableURL = URL(fileURLWithPath: "/bin/sleep")
        sleeper.arguments = ["1000"]
        try sleeper.run()
        defer { if sleeper.isRunning { sleeper.terminate() } }
        let pid = sleeper.processIdentifier
        let trace = dir + "/watch"
        try FileManager.default.createDirectory(atPath: trace, withIntermediateDirectories: true)
        let q: UInt64 = (UInt64(pid) << 28) | 1

        // Blocked for 30 s already: --once reports at once.
        let old = Self.now() - 30_000_000_000
        try Self.writeTrace(dir: trace, pid: pid, ppid: getpid(), start: old, proc: 0, events: [
            (0, pid, "proc.start", 0, #","name":"MainProcess""#),
            (1000, pid, "queue.new", q, #","name":"results""#),
            (2000, pid, "queue.get-wait", q, ""),
        ])
        let once = try ExportTestSupport.run(tangle, ["watch", trace, "--grace", "5", "--once"])
        XCTAssertEqual(once.status, 1, once.stdout + once.stderr)
        XCTAssertTrue(once.stdout.contains("hang") || once.stdout.contains("deadlock"), once.stdout)

        // Following: the wait is recorded "now"; watch reports once it is older than the grace.
        try FileManager.default.removeItem(atPath: trace)
        try FileManager.default.createDirectory(atPath: trace, withIntermediateDirectories: true)
        let fresh = Self.now()
        try Self.writeTrace(dir: trace, pid: pid, ppid: getpid(), start: fresh, proc: 0, events: [
            (0, pid, "proc.start", 0, #","name":"MainProcess""#),
            (1000, pid, "queue.get-wait", q, ""),
        ])
        let notYet = try ExportTestSupport.run(tangle, ["watch", trace, "--grace", "30", "--once"])
        XCTAssertEqual(notYet.status, 0, "blocked for less than the grace period: " + notYet.stdout + notYet.stderr)
        let t0 = Date()
        let follow = try ExportTestSupport.run(tangle, ["watch", trace, "--grace", "1", "--interval", "0.2"])
        XCTAssertEqual(follow.status, 1, follow.stdout + follow.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 15)

        // The process ends (and recorded its exit): watch exits 0.
        sleeper.terminate()
        sleeper.waitUntilExit()
        let exitedDir = dir + "/watch-exited"
        try FileManager.default.createDirectory(atPath: exitedDir, withIntermediateDirectories: true)
        try Self.writeTrace(dir: exitedDir, pid: pid, ppid: getpid(), start: Self.now(), proc: 0, events: [
            (0, pid, "proc.start", 0, #","name":"MainProcess""#),
            (1000, pid, "proc.exit", 0, #","status":0,"signal":0"#),
        ])
        let done = try ExportTestSupport.run(tangle, ["watch", exitedDir, "--grace", "1", "--interval", "0.2"])
        XCTAssertEqual(done.status, 0, done.stdout + done.stderr)
        // Killed without an exit record (the blocked trace above, its process now gone): exit 0.
        let gone = try ExportTestSupport.run(tangle, ["watch", trace, "--grace", "30", "--interval", "0.2"])
        XCTAssertEqual(gone.status, 0, gone.stdout + gone.stderr)
        XCTAssertEqual(try ExportTestSupport.run(tangle, ["watch", dir + "/no-such-dir", "--once"]).status, 2)
    }
}
