import Foundation
import XCTest

/// `tangle bench runtime --json` keeps the interface issue 3 spells out: every figure it names,
/// the Python peer's under the same names prefixed `python_`, and the traced lock as the best of
/// the rounds that alternate with Python's. Runs the real command (`--quick`; the figures of a
/// debug build mean nothing, so only their presence and their relations are checked).
final class BenchRuntimeInterfaceTests: XCTestCase {
    static let issueKeys = [
        "queue_msgs_per_s", "queue_msgs_per_s_untraced", "lock_pair_ns", "lock_pair_ns_untraced",
        "spawn_join_ms", "pool_map_ns_per_item",
    ]

    func run(_ extra: [String]) throws -> (status: Int32, figures: [String: Any]) {
        let tangle = try ScenarioEndToEndTests.binary("tangle")
        _ = try ScenarioEndToEndTests.binary("tangle-runtime-bench")
        let process = Foundation.Process()
        process.executableURL = URL(fileURLWithPath: tangle)
        process.arguments = ["bench", "runtime", "--json", "--quick"] + extra
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let figures = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any], "one JSON object")
        return (process.terminationStatus, figures)
    }

    func positive(_ figures: [String: Any], _ key: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let v = figures[key] as? Double else { return XCTFail("\(key) is not a number: \(String(describing: figures[key]))", file: file, line: line) }
        XCTAssertGreaterThan(v, 0, key, file: file, line: line)
    }

    func testEveryFigureAndItsPythonPeer() throws {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        guard path.split(separator: ":").contains(where: { FileManager.default.isExecutableFile(atPath: "\($0)/python3") }) else {
            throw XCTSkip("python3 is not installed: the Python peer is skipped by design")
        }
        let (status, figures) = try run([])
        XCTAssertEqual(status, 0)
        for key in Self.issueKeys {
            positive(figures, key)
            positive(figures, "python_" + key)
        }
        positive(figures, "lock_pair_ns_on_thread")
        // Issue 16: the pool's imap / starmap, SharedValue under its lock, each beside Python's;
        // the async queue beside the blocking one.
        for key in ["imap_ns_per_item", "starmap_ns_per_item", "shared_value_add_ns"] {
            positive(figures, key)
            positive(figures, "python_" + key)
        }
        positive(figures, "async_queue_msgs_per_s")
        positive(figures, "async_queue_msgs_per_s_untraced")
        // The traced lock of both peers: the best of the alternating rounds, three each.
        for prefix in ["", "python_"] {
            let rounds = try XCTUnwrap(figures[prefix + "lock_pair_ns_rounds"] as? [Double], prefix + "rounds")
            XCTAssertEqual(rounds.count, 3, prefix + "rounds")
            XCTAssertEqual(figures[prefix + "lock_pair_ns"] as? Double, rounds.min(), prefix + "lock_pair_ns is the best round")
        }
        XCTAssertEqual(figures["python_lock_pair_ns_untraced"] as? Double, figures["python_lock_pair_ns"] as? Double,
                       "Python has no tracing: one figure")
    }

    func testWithoutPythonThereAreNoPythonFiguresAndNoRounds() throws {
        let (status, figures) = try run(["--no-python"])
        XCTAssertEqual(status, 0)
        for key in Self.issueKeys { positive(figures, key) }
        XCTAssertTrue(figures.keys.filter { $0.hasPrefix("python_") }.isEmpty, "\(figures.keys.sorted())")
        XCTAssertNil(figures["lock_pair_ns_rounds"])
    }
}
