import Foundation
import XCTest
import TangleAnalysis
import TangleTestSupport

/// The fuzz target's inputs replayed in `make test`: the seed corpus (real traces), every input
/// that once crashed (`Fuzz/regressions`), seeded mutations of the seeds, and traces with extreme
/// times through every format. A crash or trap fails the run; each input must end with 0, 1 or 2.
final class FuzzCorpusTests: XCTestCase {
    static let fuzzDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fuzz").path

    private func inputs(_ sub: String) -> [String] {
        let d = Self.fuzzDir + "/" + sub
        return ((try? FileManager.default.contentsOfDirectory(atPath: d)) ?? []).filter { !$0.hasPrefix(".") && $0 != "README.md" }
            .sorted().map { d + "/" + $0 }
    }

    private func workDir() throws -> String {
        let d = try ExportTestSupport.tempDir("fuzz-replay")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
        return d
    }

    private func run(_ bytes: [UInt8], in dir: String) -> Int32 {
        bytes.withUnsafeBytes { WholePipeline.run($0, directory: dir) }
    }

    func testSeedCorpusOfRealTracesReadsAndAnalyzes() throws {
        let files = inputs("corpus")
        XCTAssertGreaterThanOrEqual(files.count, 40, "the committed seed corpus")
        let dir = try workDir()
        for f in files {
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: f)))
            let status = run(bytes, in: dir)
            // Real traces are usable input: clean (0) or findings (1), never 2.
            XCTAssertTrue(status == 0 || status == 1, "\(f): status \(status)")
        }
    }

    func testEveryKeptCrashingInputEndsWithAStatus() throws {
        let dir = try workDir()
        for f in inputs("regressions") {
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: f)))
            let status = run(bytes, in: dir)
            XCTAssertTrue((0...2).contains(status), "\(f): status \(status)")
        }
    }

    /// Seeded mutations of every seed (byte flips, cuts, repeated and dropped ranges, long lines):
    /// TANGLE_TEST_SEED=N replays; the seed is printed first so that a crash can be replayed too.
    func testSeededMutationsOfTheSeeds() throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["TANGLE_TEST_SEED"] ?? "") ?? UInt64(time(nil))
        print("FuzzCorpusTests mutation seed: \(seed) (TANGLE_TEST_SEED=\(seed) replays)")
        var rng = SeededGenerator(seed: seed)
        let dir = try workDir()
        let rounds = Int(ProcessInfo.processInfo.environment["TANGLE_TEST_MUTATIONS"] ?? "") ?? 3
        for f in inputs("corpus") {
            let original = try [UInt8](Data(contentsOf: URL(fileURLWithPath: f)))
            for _ in 0..<rounds {
                var b = original
                for _ in 0..<(1 + Int(rng.next() % 4)) { mutate(&b, &rng) }
                let status = run(b, in: dir)
                XCTAssertTrue((0...2).contains(status), "seed \(seed), \(f): status \(status)")
            }
        }
    }

    private func mutate(_ b: inout [UInt8], _ rng: inout SeededGenerator) {
        guard !b.isEmpty else { b = [UInt8](repeating: 0x7b, count: 8); return }
        let i = Int(rng.next() % UInt64(b.count))
        switch rng.next() % 6 {
        case 0: b[i] ^= UInt8(truncatingIfNeeded: rng.next() | 1)
        case 1: b.removeSubrange(i...)
        case 2:
            let n = min(b.count - i, 1 + Int(rng.next() % 4096))
            b.insert(contentsOf: b[i..<(i + n)], at: i)
        case 3:
            let n = min(b.count - i, 1 + Int(rng.next() % 4096))
            b.removeSubrange(i..<(i + n))
        case 4:
            let digits: [UInt8] = Array("18446744073709551615".utf8)
            b.insert(contentsOf: digits, at: i)
        default:
            b.insert(contentsOf: [UInt8](repeating: UInt8(ascii: "x"), count: 1 << 16), at: i)
        }
    }

    /// Times at 0, near UInt64.max and jumping between them, through every format: no trap (the
    /// perfetto and html exporters used to trap on `time + 1000` and a Double → UInt64 conversion).
    func testExtremeTimestampsThroughEveryExporter() throws {
        let dir = try workDir()
        let max = UInt64.max
        var lines = ["{\"k\":\"header\",\"v\":3,\"pid\":7,\"t\":0}",
                     "{\"t\":0,\"tid\":7,\"k\":\"proc.start\",\"o\":1}",
                     "{\"t\":1,\"tid\":7,\"k\":\"lock.new\",\"o\":5,\"name\":\"L\"}",
                     "{\"t\":\(max - 500),\"tid\":7,\"k\":\"lock.acquired\",\"o\":5}",
                     "{\"t\":\(max - 10),\"tid\":7,\"k\":\"queue.new\",\"o\":6,\"name\":\"q\"}",
                     "{\"t\":\(max - 5),\"tid\":7,\"k\":\"queue.put\",\"o\":6,\"msg\":1,\"size\":8}",
                     "{\"t\":\(max),\"tid\":7,\"k\":\"queue.get-wait\",\"o\":6}",
                     "{\"t\":\(max),\"tid\":8,\"k\":\"lock.wait\",\"o\":5}"]
        lines.append("{\"dt\":\(max),\"tid\":7,\"k\":\"queue.get\",\"o\":6,\"msg\":1,\"size\":8}")
        let text = lines.joined(separator: "\n") + "\n"
        XCTAssertTrue(FileManager.default.createFile(atPath: dir + "/7-0.jsonl", contents: Data(text.utf8)), "cannot write a test file")
        var options = AnalysisOptions()
        options.keepEvents = true
        let result = try Analyzer.analyze(paths: [dir], options: options)
        XCTAssertEqual(result.context.events.count, 8)
        for format in ExportFormat.allCases {
            let out = try Exporter.render(format, result: result, options: ExportOptions())
            XCTAssertFalse(out.isEmpty, "\(format)")
        }
        XCTAssertFalse(ReportRenderer.text(result.report, color: false).isEmpty)
        XCTAssertFalse(try ReportRenderer.json(result.report).isEmpty)
    }
}
