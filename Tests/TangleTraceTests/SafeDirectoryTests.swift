import Foundation
import XCTest
@testable import TangleTraceReader
import TangleTestSupport

/// Trace directories that other users may share: nothing followed through a planted symbolic
/// link; copies of a file read once.
final class SafeDirectoryTests: XCTestCase {
    private func dir(_ tag: String) -> String {
        let d = makeTempDir(tag)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
        return d
    }

    private func smallTrace(pid: Int32, start: UInt64) -> String {
        var text = "{\"k\":\"header\",\"v\":3,\"pid\":\(pid),\"t\":\(start)}\n"
        for i in 0..<20 { text += "{\"t\":\(start + 10 + UInt64(i) * 10),\"tid\":\(pid),\"k\":\"lock.acquired\",\"o\":5}\n" }
        return text
    }

    /// `after-stop` planted as a symlink to another directory: the cut refuses it, writes nothing
    /// there and leaves the trace files where they were.
    func testCutRefusesASymlinkedAfterStop() throws {
        let d = dir("cutlink")
        let elsewhere = dir("elsewhere")
        let file = try writeTraceLZ4(smallTrace(pid: 7, start: 1000), "7-1000.jsonl.lz4", in: d)
        XCTAssertEqual(symlink(elsewhere, d + "/" + TraceCut.asideDirectory), 0)
        XCTAssertThrowsError(try TraceCut.cut(directory: d, at: 1100)) { e in
            XCTAssertTrue("\(e)".contains("symbolic link"), "\(e)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: elsewhere), [], "nothing written through the link")
        XCTAssertEqual(try TraceReader.load(paths: [file]).events.count, 20, "the file is untouched")
    }

    /// A trace file that is a symlink (to a file outside the directory) is neither moved nor
    /// rewritten through; a real file next to it is cut as usual.
    func testCutDoesNotFollowASymlinkedTraceFile() throws {
        let d = dir("cutfile")
        let outside = dir("outside")
        let target = try writeTraceLZ4(smallTrace(pid: 8, start: 1000), "8-1000.jsonl.lz4", in: outside)
        let before = try Data(contentsOf: URL(fileURLWithPath: target))
        XCTAssertEqual(symlink(target, d + "/8-1000.jsonl.lz4"), 0)
        _ = try writeTraceLZ4(smallTrace(pid: 7, start: 1000), "7-1000.jsonl.lz4", in: d)
        let r = try TraceCut.cut(directory: d, at: 1100)
        XCTAssertEqual(r.files, 1)
        XCTAssertEqual(r.dropped, 11)  // times 1100…1200 of 1010…1200
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: target)), before, "the link's target is untouched")
        XCTAssertEqual(try TraceReader.load(paths: [d + "/7-1000.jsonl.lz4"]).events.count, 9)
        var st = stat()
        XCTAssertEqual(stat(d + "/" + TraceCut.asideDirectory, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o700)
    }

    /// A copy of a file under another name (same pid and start): read once, reported.
    func testDuplicateFileIsReadOnceAndReported() throws {
        let d = dir("dup")
        let text = smallTrace(pid: 7, start: 1000)
        let a = try writeTraceLZ4(text, "7-1000.jsonl.lz4", in: d)
        _ = try writeTraceLZ4(text, "7-1000.copy.jsonl.lz4", in: d)
        _ = try writeTraceLZ4(smallTrace(pid: 9, start: 1000), "9-1000.jsonl.lz4", in: d)
        let trace = try TraceReader.load(paths: [d])
        XCTAssertEqual(trace.events.count, 40, "each process's events once")
        let dups = trace.problems.filter { $0.kind == .duplicateFile }
        XCTAssertEqual(dups.count, 1, "\(trace.problems)")
        XCTAssertTrue(dups.first?.message.contains(a) == true || dups.first?.file == a, "\(dups)")
    }
}
