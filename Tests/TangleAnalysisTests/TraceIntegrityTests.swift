import Foundation
import XCTest
@testable import TangleAnalysis

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
        let reused = r.problems.filter { $0.kind == "reused-id" }
        XCTAssertEqual(reused.count, 1, "\(r.problems)")
        XCTAssertTrue(reused.first?.detail.contains("object id 55 was created as a lock") == true, "\(reused)")
        XCTAssertTrue(reused.first?.detail.contains("again as a queue") == true)
    }

    /// The same lost-messages trace as LZ4 files, whole and with one file cut before its end
    /// mark: only the cut one says that the run was cut.
    func testFindingsOnACutRunSayTheRunWasCut() throws {
        guard let lz4 = ExportTestSupport.which("lz4") else { throw XCTSkip("lz4 not installed (scripts/setup.sh installs it)") }
        let b = TraceBuilder()
        let main = b.root(1)
        let q = b.queue(main, "results")
        let c = b.pid(2)
        let co = b.spawn(main, c, name: "producer")
        b.attach(c, q, type: .queue)
        let ms = (0..<5).map { _ in b.put(c, q) }
        b.exit(c)
        for m in ms.prefix(3) { b.get(main, q, m) }
        b.join(main, c, obj: co)
        b.exit(main)
        var explanations: [Bool: String] = [:]
        for cut in [false, true] {
            let d = try b.writeJSONL(to: try dir("cutrun-\(cut)"))
            for name in try FileManager.default.contentsOfDirectory(atPath: d) {
                let plain = d + "/" + name
                XCTAssertEqual(try ExportTestSupport.run(lz4, ["-q", "-f", plain, plain + ".lz4"]).status, 0)
                try FileManager.default.removeItem(atPath: plain)
                if cut && name.hasPrefix("\(c)-") {
                    // No end mark (and no content checksum): a writer killed after its last flush.
                    let data = try Data(contentsOf: URL(fileURLWithPath: plain + ".lz4"))
                    try data.prefix(data.count - 8).write(to: URL(fileURLWithPath: plain + ".lz4"))
                }
            }
            let r = try Analyzer.analyze(paths: [d]).report
            XCTAssertEqual(r.findings.map(\.kind), [.lostMessages], "cut: \(cut)")
            XCTAssertEqual(r.problems.contains { $0.kind == "truncated" }, cut, "\(r.problems)")
            explanations[cut] = r.findings.first?.explanation
        }
        XCTAssertFalse(explanations[false]?.contains("The run was cut") ?? true)
        XCTAssertTrue(explanations[true]?.contains("The run was cut: the trace of process \(c) ends before its end mark") ?? false,
                      explanations[true] ?? "")
    }
}
