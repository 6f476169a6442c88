import Foundation
import XCTest
@testable import TangleAnalysis

/// The CI gate as a library: baseline file, suppressions (JSON and text), thresholds, stale entries.
final class ExportGateTests: XCTestCase {
    let report = Report(findings: ExportFixtures.findings())

    /// A baseline is sorted, one entry per fingerprint, stable bytes, and round-trips.
    func testBaselineIsStableAndRoundTrips() throws {
        var dup = report
        dup.findings.append(dup.findings[0])
        let b = Baseline(report: dup)
        XCTAssertEqual(b.findings.map(\.fingerprint), b.findings.map(\.fingerprint).sorted())
        XCTAssertEqual(b.findings.count, 4)
        let text = try b.encoded()
        XCTAssertEqual(text, try Baseline(report: Report(findings: report.findings.reversed())).encoded())
        let dir = try ExportTestSupport.tempDir("baseline")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try text.write(toFile: dir + "/b.json", atomically: true, encoding: .utf8)
        XCTAssertEqual(try Baseline.load(path: dir + "/b.json"), b)
        try "{\"nope\":1}".write(toFile: dir + "/bad.json", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try Baseline.load(path: dir + "/bad.json"))
        XCTAssertThrowsError(try Baseline.load(path: dir + "/missing.json"))
    }

    /// New findings fail (exit 1); known ones pass (0); suppressed ones pass; a suppression that
    /// matches nothing is stale (reported; fails only with failOnStale); baseline entries not seen
    /// are listed.
    func testGateNewKnownSuppressedStale() throws {
        let all = Baseline(report: report)
        XCTAssertEqual(Gate.evaluate(report: report, baseline: all).exitCode, 0)
        XCTAssertEqual(Gate.evaluate(report: report, baseline: all).known.count, 4)

        let empty = Baseline(findings: [])
        let fresh = Gate.evaluate(report: report, baseline: empty)
        XCTAssertEqual(fresh.exitCode, 1)
        XCTAssertEqual(fresh.new.count, 4)
        XCTAssertEqual(fresh.new.first?.kind, .deadlock, "ranked")
        XCTAssertTrue(fresh.render().contains("NEW   [error, actual, deadlock]"))

        // Baseline has all but the deadlock; the deadlock is suppressed by symbol glob; one stale.
        var partial = all
        partial.findings.removeAll { $0.kind == "deadlock" }
        partial.findings.append(.init(fingerprint: "gone-1234", kind: "zombie", title: "fixed long ago"))
        let supp = try SuppressionFile.parse("""
        # known deadlock in the transfer code, tracked in #42
        symbol App.Worker.transfer* kind=deadlock tracked in #42
        fingerprint deadbeefdeadbeef nothing matches this one
        """, path: "s.txt")
        let r = Gate.evaluate(report: report, baseline: partial, suppressions: supp)
        XCTAssertEqual(r.exitCode, 0)
        XCTAssertEqual(r.suppressed.count, 1)
        XCTAssertEqual(r.suppressed.first?.by.origin, "s.txt:2")
        XCTAssertEqual(r.staleSuppressions.map(\.fingerprint), ["deadbeefdeadbeef"])
        XCTAssertEqual(r.unseenBaseline.map(\.fingerprint), ["gone-1234"])
        XCTAssertTrue(r.render().contains("stale suppression: fingerprint deadbeefdeadbeef (s.txt:3)"))
        var strict = GateOptions()
        strict.failOnStale = true
        XCTAssertEqual(Gate.evaluate(report: report, baseline: partial, suppressions: supp, options: strict).exitCode, 1)
    }

    /// --fail-on and --confidence: findings below the thresholds are reported, not failing.
    func testThresholds() throws {
        let empty = Baseline(findings: [])
        var o = GateOptions()
        o.failOn = .error
        let r = Gate.evaluate(report: report, baseline: empty, options: o)
        XCTAssertEqual(Set(r.new.map(\.kind)), [.deadlock, .hang])
        XCTAssertEqual(r.belowThreshold.count, 2)
        o.failOn = .note
        o.confidence = .predicted
        XCTAssertEqual(Gate.evaluate(report: report, baseline: empty, options: o).new.map(\.kind), [.lockOrderInversion])
        o.confidence = .actual
        var onlyPredicted = report
        onlyPredicted.findings.removeAll { $0.confidence == .actual }
        XCTAssertEqual(Gate.evaluate(report: onlyPredicted, baseline: empty, options: o).exitCode, 0)
    }

    /// Suppressions in JSON (object or array), fingerprint prefixes, and the errors of bad files.
    func testSuppressionFormats() throws {
        let json = try SuppressionFile.parse("""
        {"suppressions": [{"fingerprint": "lo-5d2c8e11", "reason": "prefix of the inversion"},
                          {"symbol": "*.audit()*", "reason": "audit code"}]}
        """)
        let r = Gate.evaluate(report: report, baseline: Baseline(findings: []), suppressions: json)
        XCTAssertEqual(r.suppressed.count, 1)
        XCTAssertEqual(r.staleSuppressions.count, 0, "both match the inversion")
        let arr = try SuppressionFile.parse(#"[{"fingerprint": "zb-0f0e0d0c0b0a0908", "reason": "zombie ok"}]"#)
        XCTAssertEqual(arr.entries.count, 1)
        XCTAssertThrowsError(try SuppressionFile.parse("fingerprint abc"), "a reason is required")
        XCTAssertThrowsError(try SuppressionFile.parse("symbol x kind=nope because"), "unknown kind")
        XCTAssertThrowsError(try SuppressionFile.parse("ignore everything please"))
        XCTAssertThrowsError(try SuppressionFile.parse(#"{"suppressions": [{"reason": "neither"}]}"#))
        XCTAssertThrowsError(try SuppressionFile.parse("{not json"))
    }
}
