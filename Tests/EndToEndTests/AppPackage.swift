import Foundation
import TangleTestSupport

/// A user's package that depends on Tangle, in a scratch directory of its own, built and run
/// under `tangle run` the way a user would (FingerprintStabilityTests, VersionedDependencyTests).
/// SwiftPM's caches and temporary files stay inside `base` (docs: PITFALLS, SwiftPM).
struct AppPackage {
    /// The scratch directory (removed by the caller's teardown); the package is `base/app`.
    let base: String
    var app: String { base + "/app" }

    /// Creates `base/app` with a Package.swift depending on Tangle through `dependency` (a
    /// `.package(…)` expression) whose package is named `packageName`.
    init(base: String, dependency: String, packageName: String) throws {
        self.base = base
        try FileManager.default.createDirectory(atPath: base + "/app/Sources/app", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: base + "/tmp", withIntermediateDirectories: true)
        try """
        // swift-tools-version:6.0
        import PackageDescription

        let package = Package(
            name: "app",
            dependencies: [\(dependency)],
            targets: [
                .executableTarget(name: "app", dependencies: [.product(name: "Tangle", package: "\(packageName)")],
                                  swiftSettings: [.swiftLanguageMode(.v5)]),
            ]
        )
        """.write(toFile: app + "/Package.swift", atomically: true, encoding: .utf8)
    }

    /// Writes `source` as the app's main.swift and builds it with `swift` (debug).
    func build(_ source: String, swift: String) throws -> (status: Int32, output: String) {
        try source.write(toFile: app + "/Sources/app/main.swift", atomically: true, encoding: .utf8)
        return try runTool(swift, ["build", "--package-path", app, "--scratch-path", app + "/.build",
                                   "--cache-path", base + "/cache", "--config-path", base + "/config",
                                   "--security-path", base + "/security"], environment: ["TMPDIR": base + "/tmp"])
    }

    /// Runs the built app under `tangle run --timeout 3 --format json --output report`; returns
    /// tangle's status and output and the report's findings.
    func runTraced(tangle: String, report: String, extra: [String] = []) throws -> (status: Int32, output: String, findings: [[String: Any]]) {
        let r = try runTool(tangle, ["run", "--timeout", "3"] + extra + ["--format", "json", "--output", report, "--", app + "/.build/debug/app"],
                            environment: ["SWIFT_BACKTRACE": "enable=no"])
        let json = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report)))) as? [String: Any]
        return (r.status, r.output, json?["findings"] as? [[String: Any]] ?? [])
    }
}
