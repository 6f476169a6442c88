// swift-tools-version:6.0
import PackageDescription

// Frame pointers everywhere we compile, so the recorder's frame-pointer walk sees our frames.
let cFramePointers: [CSetting] = [.unsafeFlags(["-fno-omit-frame-pointer", "-mno-omit-leaf-frame-pointer"])]
let swiftFramePointers: [SwiftSetting] = [
    .unsafeFlags(["-Xcc", "-fno-omit-frame-pointer"]),
    .swiftLanguageMode(.v5),
]

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
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
    ],
    targets: [
        .systemLibrary(name: "CLZ4", path: "Sources/CLZ4"),
        .systemLibrary(name: "CDW", path: "Sources/CDW"),
        .target(name: "CTangleSupport", path: "Sources/CTangleSupport", cSettings: cFramePointers),
        .target(
            name: "TangleTrace",
            dependencies: ["CLZ4", "CTangleSupport"],
            path: "Sources/TangleTrace",
            swiftSettings: swiftFramePointers
        ),
        .target(
            name: "Tangle",
            dependencies: [
                "TangleTrace", "CTangleSupport",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Sources/Tangle",
            swiftSettings: swiftFramePointers
        ),
        .target(
            name: "TangleAnalysis",
            dependencies: ["TangleTrace", "CDW", "CTangleSupport"],
            path: "analyzers",
            exclude: ["Symbolize/README.md"],
            swiftSettings: swiftFramePointers
        ),
        .executableTarget(
            name: "tangle",
            dependencies: [
                "TangleAnalysis", "TangleTrace", "Tangle",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/tangle",
            swiftSettings: swiftFramePointers
        ),
        .executableTarget(
            name: "tangle-scenarios",
            dependencies: ["Tangle", "TangleTrace"],
            path: "Sources/tangle-scenarios",
            swiftSettings: swiftFramePointers
        ),
        // The runtime benchmark's own binary: it links neither Foundation nor the analyzer, so the
        // spawn+join it measures is what an app linking only Tangle pays. `tangle bench runtime` runs it.
        .executableTarget(
            name: "tangle-runtime-bench",
            dependencies: ["Tangle", "TangleTrace"],
            path: "Benchmarks/RuntimeBench",
            swiftSettings: swiftFramePointers
        ),
        // Programs written the way an app would use Tangle, each with a bug the analyzer must
        // understand; the end-to-end tests run them under `tangle run`. Not a product.
        .executableTarget(
            name: "tangle-examples",
            dependencies: ["Tangle"],
            path: "Examples/UserPrograms",
            swiftSettings: swiftFramePointers
        ),
        .testTarget(name: "TangleTraceTests", dependencies: ["TangleTrace", "Tangle"], swiftSettings: swiftFramePointers),
        .testTarget(name: "TangleTests", dependencies: ["Tangle", "TangleTrace"], swiftSettings: swiftFramePointers),
        .testTarget(name: "TangleAnalysisTests", dependencies: ["TangleAnalysis", "TangleTrace"], swiftSettings: swiftFramePointers),
        .testTarget(name: "EndToEndTests", dependencies: ["TangleAnalysis", "TangleTrace"], swiftSettings: swiftFramePointers),
    ]
)
