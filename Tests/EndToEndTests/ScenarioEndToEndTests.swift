import Foundation
import TangleAnalysis
import XCTest

/// End-to-end: every scenario of `tangle-scenarios` runs for real (through `tangle demo`, which
/// uses `tangle run --timeout`: own process group, SIGTERM at the timeout, SIGKILL after the grace),
/// its trace is analyzed here with `Analyzer.analyze`, and the findings are compared with
/// `traces/<name>/expected.json`: the same kinds, confidences and counts, and nothing else.
///
/// The binaries come from the build's products directory (the directory of this test bundle):
/// `swift test` builds every product of the package, `tangle` and `tangle-scenarios` included.
/// All scenarios run once, in parallel (most of a run is waiting), the first time a test needs them.
final class ScenarioEndToEndTests: XCTestCase {
    // MARK: the shared run

    struct Run {
        var base: String
        var demoStatus: Int32
        var demoOutput: String
        var seconds: Double
    }

    nonisolated(unsafe) static var runs: [String: Run] = [:]
    static let runsLock = NSCondition()
    nonisolated(unsafe) static var inProgress: Set<String> = []

    static var repoRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    static var corpus: String { repoRoot + "/traces" }

    static var productsDir: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        // Linux: <products>/TanglePackageTests.xctest is the test executable itself.
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        if dir.lastPathComponent == "MacOS" { dir = dir.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent() }
        return dir.path
    }

    static func binary(_ name: String) throws -> String {
        let path = productsDir + "/" + name
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw XCTSkip("\(path) was not built (run `swift build --product \(name)` with the same build path)")
        }
        return path
    }

    /// Runs `tangle demo --trace-dir <tmp> --quiet` with `arguments` once per `key` and returns it.
    static func demo(_ key: String, _ arguments: [String]) throws -> Run {
        runsLock.lock()
        while inProgress.contains(key) { runsLock.wait() }
        if let r = runs[key] {
            runsLock.unlock()
            return r
        }
        inProgress.insert(key)
        runsLock.unlock()
        defer {
            runsLock.lock()
            inProgress.remove(key)
            runsLock.broadcast()
            runsLock.unlock()
        }
        let tangle = try binary("tangle")
        let scenarios = try binary("tangle-scenarios")
        let base = NSTemporaryDirectory() + "tangle-e2e-\(key)-\(getpid())"
        try? FileManager.default.removeItem(atPath: base)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tangle)
        p.arguments = ["demo", "--trace-dir", base, "--quiet", "--corpus", corpus] + arguments
        var env = ProcessInfo.processInfo.environment
        env["TANGLE_SCENARIOS"] = scenarios
        env.removeValue(forKey: "TANGLE_TRACE")
        p.environment = env
        let out = Foundation.Pipe()
        p.standardOutput = out
        p.standardError = out
        let started = Date()
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let r = Run(base: base, demoStatus: p.terminationStatus, demoOutput: String(decoding: data, as: UTF8.self),
                    seconds: Date().timeIntervalSince(started))
        runsLock.lock()
        runs[key] = r
        runsLock.unlock()
        return r
    }

    static let fingerprintScenarios = ["lock-order-inversion", "poison-pill-missing"]

    /// Every scenario, in parallel; at the same time, a second run of the fingerprint scenarios.
    static func allScenarios() throws -> Run {
        let second = Thread { _ = try? demo("again", fingerprintScenarios.flatMap { ["--scenario", $0] }) }
        runsLock.lock()
        let first = runs["all"] == nil && runs["again"] == nil
        runsLock.unlock()
        if first { second.start() }
        let all = try demo("all", ["--jobs", "5"])
        if first { _ = try demo("again", fingerprintScenarios.flatMap { ["--scenario", $0] }) }
        return all
    }

    override class func tearDown() {
        runsLock.lock()
        for r in runs.values { try? FileManager.default.removeItem(atPath: r.base) }
        runs = [:]
        runsLock.unlock()
        super.tearDown()
    }

    // MARK: expectations

    struct Expected: Decodable {
        struct Entry: Decodable, Hashable { var kind: String; var confidence: String; var count: Int }
        var scenario: String
        var hangs: Bool
        var findings: [Entry]
    }

    static func expected(_ name: String) throws -> Expected {
        let path = "\(corpus)/\(name)/expected.json"
        guard let data = FileManager.default.contents(atPath: path) else { throw XCTSkip("no \(path)") }
        return try JSONDecoder().decode(Expected.self, from: data)
    }

    static func counts(_ report: Report) -> [String: Int] {
        var c: [String: Int] = [:]
        for f in report.findings { c["\(f.kind.rawValue)/\(f.confidence.rawValue)", default: 0] += 1 }
        return c
    }

    static func counts(_ expected: Expected) -> [String: Int] {
        var c: [String: Int] = [:]
        for e in expected.findings { c["\(e.kind)/\(e.confidence)", default: 0] += e.count }
        return c
    }

    /// Runs (once, with all the others) and checks scenario `name`: the analysis of its trace has
    /// exactly the expected findings; it hung until the timeout exactly when it is meant to.
    func checkScenario(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let run = try Self.allScenarios()
        let expected = try Self.expected(name)
        let dir = "\(run.base)/\(name)"
        let log = (try? String(contentsOfFile: "\(run.base)/\(name).log", encoding: .utf8)) ?? ""
        // How the scenario ended, as `tangle run --format json` says it (its "run" key).
        let report = try XCTUnwrap(FileManager.default.contents(atPath: "\(run.base)/\(name).run.json"), "\(name): no run report; log:\n\(log)")
        let ended = try XCTUnwrap(((try JSONSerialization.jsonObject(with: report) as? [String: Any])?["run"] as? [String: Any])?["ended"] as? [String: Any])
        let hung = ended["how"] as? String == "timeout"
        XCTAssertEqual(hung, expected.hangs, "\(name): ended \(ended), expected hangs=\(expected.hangs); log:\n\(log)", file: file, line: line)
        if !expected.hangs {
            XCTAssertTrue(ended["how"] as? String == "exited" && ended["status"] as? Int == 0, "\(name) did not exit 0: \(ended); log:\n\(log)", file: file, line: line)
        }
        let result = try Analyzer.analyze(paths: [dir])
        let got = Self.counts(result.report)
        XCTAssertEqual(got, Self.counts(expected),
                       "\(name): findings differ; report titles: \(result.report.findings.map { "[\($0.kind.rawValue)/\($0.confidence.rawValue)] \($0.title)" })",
                       file: file, line: line)
        for f in result.report.findings {
            XCTAssertFalse(f.fingerprint.isEmpty, "\(name): a finding without fingerprint", file: file, line: line)
            XCTAssertFalse(f.participants.isEmpty, "\(name): a finding without participants", file: file, line: line)
        }
    }

    // MARK: one test per scenario

    func testPoisonPillMissing() throws { try checkScenario("poison-pill-missing") }
    func testLockAcrossGet() throws { try checkScenario("lock-across-get") }
    func testPipeOwnWriter() throws { try checkScenario("pipe-own-writer") }
    func testJoinBeforeGet() throws { try checkScenario("join-before-get") }
    func testLockOrderInversion() throws { try checkScenario("lock-order-inversion") }
    func testLockOrderGated() throws { try checkScenario("lock-order-gated") }
    func testLockOrderOrdered() throws { try checkScenario("lock-order-ordered") }
    func testDiningPhilosophers() throws { try checkScenario("dining-philosophers") }
    func testSelfDeadlock() throws { try checkScenario("self-deadlock") }
    func testZombie() throws { try checkScenario("zombie") }
    func testUnjoinedChild() throws { try checkScenario("unjoined-child") }
    func testLostMessages() throws { try checkScenario("lost-messages") }
    func testMissingTaskDone() throws { try checkScenario("missing-task-done") }
    func testPoolLostError() throws { try checkScenario("pool-lost-error") }
    func testOwnerDied() throws { try checkScenario("owner-died") }
    func testShmLeak() throws { try checkScenario("shm-leak") }
    func testForkWithThreads() throws { try checkScenario("fork-with-threads") }
    func testPoolClean() throws { try checkScenario("pool-clean") }
    func testProducerConsumerClean() throws { try checkScenario("producer-consumer-clean") }
    func testPipeClean() throws { try checkScenario("pipe-clean") }
    func testManagerClean() throws { try checkScenario("manager-clean") }

    /// Every scenario `tangle-scenarios --list` names has an expected.json and a test above, and the
    /// demo's own self-check agreed (exit status 0).
    func testEveryScenarioIsCoveredAndDemoSelfCheckPasses() throws {
        let scenarios = try Self.binary("tangle-scenarios")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: scenarios)
        p.arguments = ["--names"]
        let out = Foundation.Pipe()
        p.standardOutput = out
        try p.run()
        let names = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .split(separator: "\n").map(String.init)
        p.waitUntilExit()
        XCTAssertEqual(names.count, 21)
        for n in names {
            XCTAssertNotNil(FileManager.default.contents(atPath: "\(Self.corpus)/\(n)/expected.json"), "no expected.json for \(n)")
        }
        let run = try Self.allScenarios()
        XCTAssertEqual(run.demoStatus, 0, "tangle demo's self-check failed:\n\(run.demoOutput)")
        print("e2e: all scenarios ran and were analyzed in \(String(format: "%.1f", run.seconds)) s")
    }

    /// The same bug has the same fingerprints in two separate runs (different pids, times, object
    /// ids, addresses of nothing but the same binary).
    func testFingerprintsStableAcrossRuns() throws {
        let names = Self.fingerprintScenarios
        let first = try Self.allScenarios()
        let second = try Self.demo("again", names.flatMap { ["--scenario", $0] })
        for name in names {
            let a = try Analyzer.analyze(paths: ["\(first.base)/\(name)"]).report.findings.map(\.fingerprint).sorted()
            let b = try Analyzer.analyze(paths: ["\(second.base)/\(name)"]).report.findings.map(\.fingerprint).sorted()
            XCTAssertFalse(a.isEmpty, "\(name) produced no finding")
            XCTAssertEqual(a, b, "\(name): fingerprints differ between two runs")
        }
    }

    // MARK: the committed corpus

    /// The recorded traces under traces/<name>/ (a regression corpus that does not depend on timing)
    /// still produce exactly their expected findings.
    func testCommittedCorpus() throws {
        let fm = FileManager.default
        let names = try fm.contentsOfDirectory(atPath: Self.corpus).filter {
            fm.fileExists(atPath: "\(Self.corpus)/\($0)/expected.json")
        }.sorted()
        XCTAssertGreaterThanOrEqual(names.count, 21)
        var checked = 0
        for name in names {
            let dir = "\(Self.corpus)/\(name)"
            let traces = try fm.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".jsonl.lz4") }
            guard !traces.isEmpty else {
                XCTFail("\(name): no recorded trace in \(dir) (regenerate: see traces/README.md)")
                continue
            }
            let expected = try Self.expected(name)
            let report = try Analyzer.analyze(paths: [dir]).report
            XCTAssertEqual(Self.counts(report), Self.counts(expected),
                           "\(name) (committed trace): \(report.findings.map { "[\($0.kind.rawValue)/\($0.confidence.rawValue)] \($0.title)" })")
            checked += 1
        }
        XCTAssertEqual(checked, names.count)
    }
}
