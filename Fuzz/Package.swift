// swift-tools-version:6.0
import PackageDescription

// The libFuzzer target over the whole reading side (bytes → reader → analyzer → every format).
// A package of its own, depending on Tangle by path, so that it is in none of Tangle's products.
// Built and run by `make fuzz` (swift build -Xswiftc -sanitize=fuzzer,address).
let package = Package(
    name: "TangleFuzz",
    dependencies: [.package(name: "Tangle", path: "..")],
    targets: [
        .target(name: "CFuzzMain", path: "Sources/CFuzzMain"),
        .executableTarget(
            name: "tangle-fuzz",
            dependencies: ["CFuzzMain", .product(name: "TangleAnalysis", package: "Tangle"), .product(name: "TangleTrace", package: "Tangle")],
            path: "Sources/TangleFuzz",
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
    ]
)
