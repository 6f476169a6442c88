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
        // The trace format and its reader, for tools that read traces (the name the fuzz package and
        // earlier users depend on); the recorder comes with the runtime (`Tangle`).
        .library(name: "TangleTrace", targets: ["TangleTraceFormat", "TangleTraceReader"]),
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
        // The wire format: the event table, the header, the one line encoder, the LZ4 frame and its
        // block markers. What both the recorder and the reader agree on, and nothing else.
        .target(
            name: "TangleTraceFormat",
            dependencies: ["CLZ4"],
            path: "Sources/TangleTraceFormat",
            swiftSettings: swiftSettings
        ),
        // Writing traces: the per-thread rings (C) drained, merged and encoded into the file.
        .target(
            name: "TangleRecorder",
            dependencies: ["TangleTraceFormat", "CTangleSupport"],
            path: "Sources/TangleRecorder",
            swiftSettings: swiftSettings
        ),
        // Reading traces: LZ4 frame → lines → events → a time-ordered merge of files; `TraceCut`.
        .target(
            name: "TangleTraceReader",
            dependencies: ["TangleTraceFormat", "CLZ4"],
            path: "Sources/TangleTraceReader",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Tangle",
            dependencies: [
                "TangleTraceFormat", "TangleRecorder", "CTangleSupport",
            ],
            path: "Sources/Tangle",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "TangleAnalysis",
            dependencies: ["TangleTraceFormat", "TangleTraceReader", "CDW", "CTangleSupport"],
            path: "analyzers",
            exclude: ["Symbolize/README.md"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "tangle",
            dependencies: [
                "TangleAnalysis", "TangleTraceFormat", "TangleTraceReader", "TangleRecorder", "Tangle",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/tangle",
            // `tangle bench runtime`'s Python peer, compiled into the binary (no bundle to find at run time).
            resources: [.embedInCode("bench_runtime_peer.py")],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "tangle-scenarios",
            dependencies: ["Tangle", "TangleTraceReader"],
            path: "Sources/tangle-scenarios",
            swiftSettings: swiftSettings
        ),
        // The runtime benchmark's own binary: it links neither Foundation nor the analyzer, so the
        // spawn+join it measures is what an app linking only Tangle pays. `tangle bench runtime` runs it.
        .executableTarget(
            name: "tangle-runtime-bench",
            dependencies: ["Tangle"],
            path: "Benchmarks/RuntimeBench",
            swiftSettings: swiftSettings
        ),
        // Benchmark code of the libraries (what symbolizing costs), kept out of every product.
        .target(
            name: "TangleBenchmarks",
            dependencies: ["TangleAnalysis", "TangleTraceFormat"],
            path: "Benchmarks/TangleBenchmarks",
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
        .testTarget(name: "TangleTraceTests", dependencies: ["TangleTraceFormat", "TangleRecorder", "TangleTraceReader", "Tangle"], swiftSettings: swiftSettings),
        .testTarget(name: "TangleTests", dependencies: ["Tangle", "TangleTraceFormat", "TangleRecorder", "TangleTraceReader"], swiftSettings: swiftSettings),
        .testTarget(name: "TangleAnalysisTests", dependencies: ["TangleAnalysis", "TangleTraceFormat", "TangleTraceReader", "TangleBenchmarks"], swiftSettings: swiftSettings),
        .testTarget(name: "EndToEndTests", dependencies: ["TangleAnalysis"],
                    exclude: ["GeneratedRegressions.txt"], swiftSettings: swiftSettings),
    ]
)

// Helpers shared by the test targets (seeded randomness, temporary directories): not a product.
package.targets.append(.target(name: "TangleTestSupport", path: "Tests/TangleTestSupport", swiftSettings: swiftSettings))
for target in package.targets where target.type == .test { target.dependencies.append("TangleTestSupport") }
