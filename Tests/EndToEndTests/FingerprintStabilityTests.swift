import Foundation
import XCTest
import TangleTestSupport

/// Issue 14, item 3: a baseline survives ordinary edits. One small package depending on Tangle
/// (by path) is built three times with edits to its `main.swift` — the same bug after unrelated
/// functions and two more entry points were added above it (every entry point is a closure: their
/// ordinals shift) and the bug moved down; then a different bug — and each is run under
/// `tangle run`: the first two give the same fingerprint, the third another one.
final class FingerprintStabilityTests: XCTestCase {
    static let bug = """
    struct WorkerArgs: Codable { var jobs: Queue<Int?> }

    func consume(_ args: WorkerArgs) throws {
        while let job = try args.jobs.get() { _ = job }
    }

    """
    static let main = """
    let jobs = Queue<Int?>(name: "jobs")
    var workers: [ChildProcess] = []
    for _ in 0..<2 {
        let p = ChildProcess(entryPoint: "worker", arguments: WorkerArgs(jobs: jobs))
        try p.start()
        workers.append(p)
    }
    for i in 0..<4 { try jobs.put(i) }
    try jobs.put(nil)                    // one pill for two workers
    for w in workers { _ = w.join() }
    """
    static let unrelated = """
    struct Report: Codable { var lines: [String] }

    func formatReport(_ r: Report) -> String { r.lines.joined(separator: "\\n") }

    func checksum(_ s: String) -> Int { s.utf8.reduce(0) { ($0 &* 31) &+ Int($1) } }

    """

    /// The same bug, three versions of the file, and a different bug.
    static let versions: [String] = [
        "import Tangle\n\n" + bug + "EntryPoint.register(\"worker\") { (args: WorkerArgs) in try consume(args) }\nTangleRuntime.bootstrap()\n\n" + main,
        "import Tangle\n\n" + unrelated
            + "EntryPoint.register(\"report\") { (r: Report) in print(formatReport(r)) }\n"
            + "EntryPoint.register(\"checksum\") { (s: String) in print(checksum(s)) }\n\n"
            + "// moved down, below new code\n\n\n\n" + bug
            + "EntryPoint.register(\"worker\") { (args: WorkerArgs) in try consume(args) }\nTangleRuntime.bootstrap()\n\n" + main,
        "import Tangle\n\nTangleRuntime.bootstrap()\n\nlet gate = Barrier(parties: 2, name: \"start\")\n_ = try gate.wait()   // a different bug: one party of two\n",
    ]

    func testFingerprintsHoldUnderUnrelatedEditsAndDifferForAnotherBug() throws {
        let swift = try XCTUnwrap(ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":")
            .map { "\($0)/swift" }.first { FileManager.default.isExecutableFile(atPath: $0) }, "swift is needed")
        let tangle = try ScenarioEndToEndTests.binary("tangle")
        let base = NSTemporaryDirectory() + "tangle-fingerprints-\(getpid())"
        try? FileManager.default.removeItem(atPath: base)
        let app = base + "/app"
        try FileManager.default.createDirectory(atPath: app + "/Sources/app", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: base + "/tmp", withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: base) }
        try """
        // swift-tools-version:6.0
        import PackageDescription

        let package = Package(
            name: "app",
            dependencies: [.package(path: "\(ScenarioEndToEndTests.repoRoot)")],
            targets: [
                .executableTarget(name: "app", dependencies: [.product(name: "Tangle", package: "\(URL(fileURLWithPath: ScenarioEndToEndTests.repoRoot).lastPathComponent)")],
                                  swiftSettings: [.swiftLanguageMode(.v5)]),
            ]
        )
        """.write(toFile: app + "/Package.swift", atomically: true, encoding: .utf8)

        var fingerprints: [[String]] = []
        for (i, source) in Self.versions.enumerated() {
            try source.write(toFile: app + "/Sources/app/main.swift", atomically: true, encoding: .utf8)
            var (status, out) = try runTool(swift, ["build", "--package-path", app, "--scratch-path", app + "/.build",
                                                "--cache-path", base + "/cache", "--config-path", base + "/config",
                                                "--security-path", base + "/security"], environment: ["TMPDIR": base + "/tmp"])
            XCTAssertEqual(status, 0, "version \(i) did not build:\n\(out.suffix(3000))")
            guard status == 0 else { return }
            let report = base + "/report-\(i).json"
            (status, out) = try runTool(tangle, ["run", "--timeout", "3", "--grace", "1", "--format", "json", "--output", report, "--",
                                             app + "/.build/debug/app"], environment: ["SWIFT_BACKTRACE": "enable=no"])
            XCTAssertEqual(status, 1, "version \(i) must give findings: \(out.suffix(2000))")
            let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report))) as? [String: Any])
            let findings = (json["findings"] as? [[String: Any]] ?? []).filter { ["hang", "deadlock"].contains($0["kind"] as? String) }
            XCTAssertFalse(findings.isEmpty, "version \(i): no hang")
            fingerprints.append(findings.compactMap { $0["fingerprint"] as? String }.sorted())
        }
        XCTAssertEqual(fingerprints[0], fingerprints[1], "unrelated functions and entry points above the bug, the bug moved down: the fingerprint changed")
        XCTAssertTrue(Set(fingerprints[2]).isDisjoint(with: fingerprints[0]), "a different bug has the same fingerprint: \(fingerprints)")
    }
}
