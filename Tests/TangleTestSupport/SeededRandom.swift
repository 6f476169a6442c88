#if canImport(Glibc)
import Glibc
#endif
import XCTest

/// SplitMix64: a small, fast generator whose whole state is its seed, so that a random test that
/// failed can be replayed exactly (`TANGLE_TEST_SEED=<seed> swift test --filter …`).
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    public let seed: UInt64
    private var state: UInt64

    public init(seed: UInt64) {
        self.seed = seed
        state = seed
    }

    /// The seed in TANGLE_TEST_SEED, else a fresh one.
    public static func fromEnvironment() -> SeededGenerator {
        if let s = getenv("TANGLE_TEST_SEED").flatMap({ UInt64(String(cString: $0)) }) { return SeededGenerator(seed: s) }
        var system = SystemRandomNumberGenerator()
        return SeededGenerator(seed: system.next())
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// What to run to replay it.
    public var replay: String { "TANGLE_TEST_SEED=\(seed)" }
}

extension XCTestCase {
    /// A generator for this test, seeded from TANGLE_TEST_SEED or afresh; its seed is printed
    /// when the test fails.
    public func seededGenerator() -> SeededGenerator {
        let g = SeededGenerator.fromEnvironment()
        let name = self.name
        addTeardownBlock { [weak self] in
            if let run = self?.testRun, run.totalFailureCount > 0 {
                print("\(name): random seed \(g.seed); replay with \(g.replay) swift test --filter '\(name)'")
            }
        }
        return g
    }
}
