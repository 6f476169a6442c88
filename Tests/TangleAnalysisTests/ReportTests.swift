import Foundation
import TangleTraceFormat
import XCTest
@testable import TangleAnalysis
import TangleTestSupport

final class ReportTests: XCTestCase {
    /// The same bug in two runs (other pids, object ids, times) has the same fingerprint; another
    /// bug has another.
    func testFingerprintIsStableAcrossRuns() throws {
        let a = TraceBuilder(pidBase: 0, startTime: 1_000_000_000)
        Scenarios.producerConsumer(a, items: 4, pills: 1)
        let b = TraceBuilder(pidBase: 5000, startTime: 9_000_000_000)
        Scenarios.producerConsumer(b, items: 7, pills: 1)
        let fa = try XCTUnwrap(a.analyze().first(.hang))
        let fb = try XCTUnwrap(b.analyze().first(.hang))
        XCTAssertEqual(fa.fingerprint, fb.fingerprint)
        XCTAssertEqual(fa.fingerprint.count, 16)

        let c = TraceBuilder()
        let main = c.root(1)
        let l = c.lock(main, "config")
        c.acquire(main, l)
        c.ev(main, .lockWait, o: l)
        XCTAssertNotEqual(try XCTUnwrap(c.analyze().findings.first).fingerprint, fa.fingerprint)
    }

    /// The JSON report has the documented keys, is deterministic, and round-trips.
    func testJSONReportIsStable() throws {
        let b = TraceBuilder()
        Scenarios.producerConsumer(b, items: 4, pills: 1)
        let result = b.session().finish()
        let one = try ReportRenderer.json(result.report)
        let two = try ReportRenderer.json(b.session().finish().report)
        XCTAssertEqual(one, two)
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(one.utf8)) as? [String: Any])
        let findings = try XCTUnwrap(obj["findings"] as? [[String: Any]])
        XCTAssertEqual(findings.count, 1)
        for key in ["kind", "severity", "confidence", "participants", "fingerprint", "explanation", "fix", "stacks", "evidence", "title"] {
            XCTAssertNotNil(findings[0][key], key)
        }
        XCTAssertEqual(findings[0]["confidence"] as? String, "actual")
        XCTAssertNotNil(obj["processes"])
        XCTAssertNotNil(obj["problems"])
        XCTAssertNotNil(obj["ruled_out"])
        let decoded = try JSONDecoder().decode(Report.self, from: Data(one.utf8))
        XCTAssertEqual(decoded, result.report)
    }

    /// Text output names the finding, the participants and the fix; plain when color is off.
    func testTextRendering() {
        let b = TraceBuilder()
        Scenarios.producerConsumer(b, items: 4, pills: 1)
        let text = ReportRenderer.text(b.session().finish().report, color: false)
        XCTAssertTrue(text.contains("hang"))
        XCTAssertTrue(text.contains("consumer-2"))
        XCTAssertTrue(text.contains("fix:"))
        XCTAssertFalse(text.contains("\u{1B}["))
        let colored = ReportRenderer.text(b.session().finish().report, color: true)
        XCTAssertTrue(colored.contains("\u{1B}["))
    }

    /// Stacks resolve to module+offset frames from the header's module table when the binary is
    /// not available, and the fingerprint then uses module names (stable across runs).
    func testUnsymbolizedStacksFallBackToModuleOffset() throws {
        let b = TraceBuilder()
        let main = b.root(1)
        b.headers[0].modules = [ModuleInfo(path: "/nonexistent/app", buildID: "abcd", bias: 0x400000, low: 0x400000, high: 0x500000)]
        b.stacks.append((pid: main, id: 1, pcs: [0x401234, 0x402000]))
        let l = b.lock(main, "config")
        b.acquire(main, l, stack: 1)
        b.ev(main, .lockWait, o: l, stack: 1)
        let f = try XCTUnwrap(b.analyze().findings.first)
        let frames = try XCTUnwrap(f.stacks.first?.frames)
        XCTAssertEqual(frames.first?.module, "app")
        XCTAssertEqual(frames.first?.offset, 0x1234)
        XCTAssertNotNil(f.stacks.first?.warning)
    }

    /// A trace cut in the middle (the parent's last events and end mark lost, as when a writer is
    /// killed) is analyzed as far as it goes: the reader notes the cut file as "truncated", and the
    /// report says so, naming the file.
    func testTruncatedTraceIsAnalyzedAsFarAsItGoes() throws {
        guard let lz4 = which("lz4") else { throw XCTSkip("lz4 not installed (scripts/setup.sh installs it)") }
        let b = TraceBuilder()
        Scenarios.producerConsumer(b, items: 5, pills: 2)
        // Drop the tail: the parent's joins and exit are gone; the consumers have exited.
        let main = b.pid(1)
        let tail = b.events.suffix(4)
        XCTAssertTrue(tail.allSatisfy { $0.pid == main }, "the tail is the parent's")
        b.events.removeLast(4)
        let d = try ExportTestSupport.tempDir("truncated")
        defer { try? FileManager.default.removeItem(atPath: d) }
        // No end mark (and no content checksum): the parent's writer was killed.
        let cutFile = try XCTUnwrap(try b.writeLZ4(to: d, lz4: lz4, cut: [main]).first)
        let r = try Analyzer.analyze(paths: [d]).report
        XCTAssertEqual(r.findings.map(\.title), [])
        let truncated = r.problems.filter { $0.kind == .truncated }
        XCTAssertEqual(truncated.count, 1, "\(r.problems)")
        XCTAssertEqual(truncated.first.flatMap(\.file).map { ($0 as NSString).lastPathComponent },
                       (cutFile as NSString).lastPathComponent, "\(r.problems)")
        XCTAssertEqual(r.stats.files, 4)
    }
}
