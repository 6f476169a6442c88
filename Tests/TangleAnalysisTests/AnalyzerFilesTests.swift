import Foundation
import XCTest
@testable import TangleAnalysis
import TangleTestSupport

/// `Analyzer.analyze(paths:)` on trace files written to disk and read back by the real reader.
final class AnalyzerFilesTests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws {
        dir = makeTempDir("tangle-analyzer-tests")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// The missing poison pill read from .jsonl files gives the same hang as in memory.
    func testHangFromFiles() throws {
        let b = TraceBuilder()
        Scenarios.producerConsumer(b, items: 4, pills: 1)
        let r = try Analyzer.analyze(paths: [b.writeJSONL(to: dir)]).report
        XCTAssertEqual(r.kinds(), [.hang], "\(r.findings.map(\.title))")
        XCTAssertEqual(r.stats.files, 4)
        XCTAssertEqual(r.stats.events, b.events.count)
        XCTAssertEqual(r.processes.count, 4)
        XCTAssertTrue(r.problems.isEmpty, "\(r.problems)")
    }

    /// A clean run read from files: no finding, no problem.
    func testCleanFromFiles() throws {
        let b = TraceBuilder()
        Scenarios.producerConsumer(b, items: 6, pills: 2)
        let r = try Analyzer.analyze(paths: [b.writeJSONL(to: dir)]).report
        XCTAssertEqual(r.findings.map(\.title), [])
        XCTAssertTrue(r.problems.isEmpty, "\(r.problems)")
        XCTAssertTrue(r.processes.allSatisfy { $0.end == "exited 0" }, "\(r.processes)")
    }

    /// One process's file missing: analyzed as far as it goes, the gap is reported, and the waits
    /// that process could have ended are not reported as hangs.
    func testMissingProcessFile() throws {
        let b = TraceBuilder()
        Scenarios.producerConsumer(b, items: 4, pills: 1)
        let r = try Analyzer.analyze(paths: [b.writeJSONL(to: dir, skip: [b.pid(2)])]).report
        XCTAssertEqual(r.stats.files, 3)
        XCTAssertTrue(r.problems.contains { $0.kind == .missingProcess || $0.kind == .unmatchedMessages }, "\(r.problems)")
    }

    /// A file cut in the middle of a line: the prefix is analyzed and the truncation reported.
    func testTruncatedFile() throws {
        let b = TraceBuilder()
        Scenarios.producerConsumer(b, items: 4, pills: 2)
        let r = try Analyzer.analyze(paths: [b.writeJSONL(to: dir, cut: [b.pid(1): 15])]).report
        XCTAssertFalse(r.problems.isEmpty)
        XCTAssertEqual(r.findings.count, 0, "\(r.findings.map(\.title))")
    }

    /// Not a trace at all: an error naming the file.
    func testNotATraceThrowsNamingTheFile() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/1-1.jsonl"
        try Data("hello, world\n".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try Analyzer.analyze(paths: [path])) { error in
            XCTAssertTrue("\(error)".contains("1-1.jsonl"), "\(error)")
        }
        XCTAssertThrowsError(try Analyzer.analyze(paths: [dir + "/nothing-here"]))
    }

    /// Events written out of order inside a file (within the reorder window) are merged back.
    func testReorderedWithinFile() throws {
        let b = TraceBuilder()
        Scenarios.producerConsumer(b, items: 4, pills: 1)
        // Swap two adjacent events of different threads of the same process file.
        let main = b.pid(1)
        let idx = b.events.indices.filter { b.events[$0].pid == main }
        if idx.count > 4 { b.events.swapAt(idx[2], idx[3]) }
        let r = try Analyzer.analyze(paths: [b.writeJSONL(to: dir)]).report
        XCTAssertEqual(r.kinds(), [.hang])
    }
}
