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
        let base = makeTempDir("tangle-dependency")
        addTeardownBlock { removeTree(base) }

        // The release: this checkout's HEAD, as a bare repository with a version tag.
        var (status, out) = try runTool(git, ["clone", "--quiet", "--bare", root, base + "/Tangle.git"])
        XCTAssertEqual(status, 0, out)
        (status, out) = try runTool(git, ["--git-dir", base + "/Tangle.git", "tag", "0.1.0", "HEAD"])
        XCTAssertEqual(status, 0, out)

        // The stranger's package.
        let package = try AppPackage(base: base, dependency: ".package(url: \"file://\(base)/Tangle.git\", from: \"0.1.0\")",
                                     packageName: "Tangle")
        let built = try package.build(FingerprintStabilityTests.versions[0], swift: swift)
        XCTAssertEqual(built.status, 0, "swift build of a package depending on Tangle by URL and version failed:\n\(built.output.suffix(3000))")
        guard built.status == 0 else { return }

        let run = try package.runTraced(tangle: tangle, report: base + "/report.json")
        XCTAssertEqual(run.status, 1, "a hang must give findings: \(run.output.suffix(2000))")
        let findings = run.findings
        XCTAssertTrue(findings.contains { ["hang", "deadlock"].contains($0["kind"] as? String) }, "\(findings.map { $0["title"] ?? "" })")
        let frames = findings.flatMap { ($0["stacks"] as? [[String: Any]] ?? []) }.flatMap { $0["frames"] as? [[String: Any]] ?? [] }
        XCTAssertTrue(frames.contains { ($0["file"] as? String ?? "").hasSuffix("app/main.swift") && ($0["line"] as? Int ?? 0) > 0 },
                      "no frame of the app's own main.swift with a line: \(frames.prefix(12).map { "\($0["function"] ?? "?") \($0["file"] ?? "") \($0["line"] ?? "")" })")
    }
}
