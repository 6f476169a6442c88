import Foundation
import XCTest
import TangleTestSupport

/// A stranger's package depends on Tangle by URL and version, the way a release is used: a bare git
/// repository of this checkout tagged 0.1.0, a fresh package with `.package(url:from:)`, a plain
/// `swift build`, a hang run under `tangle run` — and the report names the app's own file:line.
/// (SwiftPM refuses such a dependency when a target of a product uses unsafe flags.)
final class VersionedDependencyTests: XCTestCase {
    func testAPackageDependsOnTangleByURLAndVersion() throws {
        let git = try XCTUnwrap(which("git"), "git is needed")
        let swift = try XCTUnwrap(which("swift"), "swift is needed")
        let tangle = ScenarioEndToEndTests.productsDir + "/tangle"
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: tangle), "\(tangle) was not built")
        let root = ScenarioEndToEndTests.repoRoot
        let base = NSTemporaryDirectory() + "tangle-dependency-\(getpid())"
        try? FileManager.default.removeItem(atPath: base)
        try FileManager.default.createDirectory(atPath: base + "/tmp", withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: base) }

        // The release: this checkout's HEAD, as a bare repository with a version tag.
        var (status, out) = try runTool(git, ["clone", "--quiet", "--bare", root, base + "/Tangle.git"])
        XCTAssertEqual(status, 0, out)
        (status, out) = try runTool(git, ["--git-dir", base + "/Tangle.git", "tag", "0.1.0", "HEAD"])
        XCTAssertEqual(status, 0, out)

        // The stranger's package.
        let app = base + "/app"
        try FileManager.default.createDirectory(atPath: app + "/Sources/app", withIntermediateDirectories: true)
        try """
        // swift-tools-version:6.0
        import PackageDescription

        let package = Package(
            name: "app",
            dependencies: [.package(url: "file://\(base)/Tangle.git", from: "0.1.0")],
            targets: [
                .executableTarget(name: "app", dependencies: [.product(name: "Tangle", package: "Tangle")],
                                  swiftSettings: [.swiftLanguageMode(.v5)]),
            ]
        )
        """.write(toFile: app + "/Package.swift", atomically: true, encoding: .utf8)
        try """
        import Tangle

        struct WorkerArgs: Codable { var jobs: Queue<Int?> }

        func consume(_ args: WorkerArgs) throws {
            while let job = try args.jobs.get() { _ = job }
        }

        EntryPoint.register("worker") { (args: WorkerArgs) in try consume(args) }
        TangleRuntime.bootstrap()

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
        """.write(toFile: app + "/Sources/app/main.swift", atomically: true, encoding: .utf8)

        (status, out) = try runTool(swift, ["build", "--package-path", app, "--scratch-path", app + "/.build",
                                        "--cache-path", base + "/cache", "--config-path", base + "/config",
                                        "--security-path", base + "/security"],
                                environment: ["TMPDIR": base + "/tmp"])
        XCTAssertEqual(status, 0, "swift build of a package depending on Tangle by URL and version failed:\n\(out.suffix(3000))")
        guard status == 0 else { return }

        let report = base + "/report.json"
        (status, out) = try runTool(tangle, ["run", "--timeout", "3", "--format", "json", "--output", report, "--",
                                         app + "/.build/debug/app"], environment: ["SWIFT_BACKTRACE": "enable=no"])
        XCTAssertEqual(status, 1, "a hang must give findings: \(out.suffix(2000))")
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report))) as? [String: Any])
        let findings = json["findings"] as? [[String: Any]] ?? []
        XCTAssertTrue(findings.contains { ["hang", "deadlock"].contains($0["kind"] as? String) }, "\(findings.map { $0["title"] ?? "" })")
        let frames = findings.flatMap { ($0["stacks"] as? [[String: Any]] ?? []) }.flatMap { $0["frames"] as? [[String: Any]] ?? [] }
        XCTAssertTrue(frames.contains { ($0["file"] as? String ?? "").hasSuffix("app/main.swift") && ($0["line"] as? Int ?? 0) > 0 },
                      "no frame of the app's own main.swift with a line: \(frames.prefix(12).map { "\($0["function"] ?? "?") \($0["file"] ?? "") \($0["line"] ?? "")" })")
    }
}
