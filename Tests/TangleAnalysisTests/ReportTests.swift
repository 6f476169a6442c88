import Foundation
import TangleTraceFormat
import XCTest
@testable import TangleAnalysis

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

    /// A trace cut in the middle (last events lost) is analyzed as far as it goes.
    func testTruncatedTraceIsAnalyzedAsFarAsItGoes() {
        let b = TraceBuilder()
        Scenarios.producerConsumer(b, items: 5, pills: 2)
        // Drop the tail: the parent's joins and exit are gone; the consumers have exited.
        let cut = b.events.prefix(b.events.count - 4)
        let s = AnalysisSession()
        for h in b.headers { s.addHeader(h) }
        s.consume(cut)
        s.addProblem(TraceProblemNote(kind: "truncated", file: "1-0.jsonl.lz4", detail: "cut"))
        let r = s.finish().report
        XCTAssertEqual(r.findings.map(\.title), [])
        XCTAssertEqual(r.problems.map(\.kind), ["truncated"])
    }
}
