import Foundation
import XCTest
@testable import TangleAnalysis
import TangleTestSupport

/// An id reused with another type, and findings on a run that was cut (real files, read through
/// `Analyzer.analyze`).
final class TraceIntegrityTests: XCTestCase {
    private func dir(_ tag: String) throws -> String {
        let d = try ExportTestSupport.tempDir(tag)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
        return d
    }

    func testObjectIDReusedWithAnotherTypeIsAProblem() throws {
        let d = try dir("reused")
        let text = """
        {"k":"header","v":3,"pid":7,"t":1000}
        {"t":1001,"tid":7,"k":"proc.start","o":1}
        {"t":1002,"tid":7,"k":"lock.new","o":55,"name":"L"}
        {"t":1003,"tid":7,"k":"queue.new","o":55,"name":"q"}
        {"t":1004,"tid":7,"k":"lock.new","o":56,"name":"M"}
        {"t":1005,"tid":7,"k":"proc.exit","o":1}

        """
        XCTAssertTrue(FileManager.default.createFile(atPath: d + "/7-1000.jsonl", contents: Data(text.utf8)), "cannot write a test file")
        let r = try Analyzer.analyze(paths: [d]).report
        let reused = r.problems.filter { $0.kind == .reusedID }
        XCTAssertEqual(reused.count, 1, "\(r.problems)")
        XCTAssertTrue(reused.first?.detail.contains("object id 55 was created as a lock") == true, "\(reused)")
        XCTAssertTrue(reused.first?.detail.contains(" at +") == true && reused.first?.detail.contains("t=") == false, "times since the start, not raw clock values: \(reused)")
        XCTAssertTrue(reused.first?.detail.contains("again as a queue") == true)
    }

    /// The same lost-messages trace as LZ4 files, whole and with one file cut before its end
    /// mark: only the cut one says that the run was cut.
    func testFindingsOnACutRunSayTheRunWasCut() throws {
        guard let lz4 = which("lz4") else { throw XCTSkip("lz4 not installed (scripts/setup.sh installs it)") }
        let b = TraceBuilder()
        let c = Scenarios.lostMessages(b)
        var explanations: [Bool: String] = [:]
        for cut in [false, true] {
            let d = try dir("cutrun-\(cut)")
            try b.writeLZ4(to: d, lz4: lz4, cut: cut ? [c] : [])
            let r = try Analyzer.analyze(paths: [d]).report
            XCTAssertEqual(r.findings.map(\.kind), [.lostMessages], "cut: \(cut)")
            XCTAssertEqual(r.problems.contains { $0.kind == .truncated }, cut, "\(r.problems)")
            explanations[cut] = r.findings.first?.explanation
        }
        XCTAssertFalse(explanations[false]?.contains("The run was cut") ?? true)
        XCTAssertTrue(explanations[true]?.contains("The run was cut: the trace of process \(c) ends before its end mark") ?? false,
                      explanations[true] ?? "")
    }
}
