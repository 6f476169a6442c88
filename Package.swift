// swift-tools-version:6.0
import PackageDescription

// No unsafe flags in any target: a package that depends on Tangle by URL and version could not
// build it otherwise. The recorder's frame-pointer walk needs none — Swift keeps frame pointers on
// Linux at every optimization level, and the C entry points that start a walk take their own frame's
// address, which makes the compiler keep theirs (docs/trace-format.md, "How stacks are captured").
let swiftSettings: [SwiftSetting] = [.swiftLanguageMode(.v5)]

let package = Package(
    name: "Tangle",
    products: [
        .library(name: "Tangle", targets: ["Tangle"]),
        .library(name: "TangleTrace", targets: ["TangleTrace"]),
        .library(name: "TangleAnalysis", targets: ["TangleAnalysis"]),
        .executable(name: "tangle", targets: ["tangle"]),
        .executable(name: "tangle-scenarios", targets: ["tangle-scenarios"]),
        .executable(name: "tangle-runtime-bench", targets: ["tangle-runtime-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(name: "CLZ4", path: "Sources/CLZ4"),
        .systemLibrary(name: "CDW", path: "Sources/CDW"),
        .target(name: "CTangleSupport", path: "Sources/CTangleSupport"),
        .target(
            name: "TangleTrace",
            dependencies: ["CLZ4", "CTangleSupport"],
            path: "Sources/TangleTrace",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Tangle",
            dependencies: [
                "TangleTrace", "CTangleSupport",
            ],
            path: "Sources/Tangle",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "TangleAnalysis",
            dependencies: ["TangleTrace", "CDW", "CTangleSupport"],
            path: "analyzers",
            exclude: ["Symbolize/README.md"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "tangle",
            dependencies: [
                "TangleAnalysis", "TangleTrace", "Tangle",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/tangle",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "tangle-scenarios",
            dependencies: ["Tangle", "TangleTrace"],
            path: "Sources/tangle-scenarios",
            swiftSettings: swiftSettings
        ),
        // The runtime benchmark's own binary: it links neither Foundation nor the analyzer, so the
        // spawn+join it measures is what an app linking only Tangle pays. `tangle bench runtime` runs it.
        .executableTarget(
            name: "tangle-runtime-bench",
            dependencies: ["Tangle", "TangleTrace"],
            path: "Benchmarks/RuntimeBench",
            swiftSettings: swiftSettings
        ),
        // Programs written the way an app would use Tangle, each with a bug the analyzer must
        // understand; the end-to-end tests run them under `tangle run`. Not a product.
        .executableTarget(
            name: "tangle-examples",
            dependencies: ["Tangle"],
            path: "Examples/UserPrograms",
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "TangleTraceTests", dependencies: ["TangleTrace", "Tangle"], swiftSettings: swiftSettings),
        .testTarget(name: "TangleTests", dependencies: ["Tangle", "TangleTrace"], swiftSettings: swiftSettings),
        .testTarget(name: "TangleAnalysisTests", dependencies: ["TangleAnalysis", "TangleTrace"], swiftSettings: swiftSettings),
        .testTarget(name: "EndToEndTests", dependencies: ["TangleAnalysis", "TangleTrace"],
                    exclude: ["GeneratedRegressions.txt"], swiftSettings: swiftSettings),
    ]
)

// Helpers shared by the test targets (seeded randomness, temporary directories): not a product.
package.targets.append(.target(name: "TangleTestSupport", path: "Tests/TangleTestSupport", swiftSettings: swiftSettings))
for target in package.targets where target.type == .test { target.dependencies.append("TangleTestSupport") }
