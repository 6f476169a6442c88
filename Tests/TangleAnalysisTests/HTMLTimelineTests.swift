import Foundation
import TangleTraceFormat
import TangleTraceReader
import XCTest
@testable import TangleAnalysis

/// The HTML timeline opens on the findings' window: the fixture's deadlock after a 4 s prelude
/// (a trace that ends 3 s after it, at `tangle run`'s stop) is drawn from just before its first
/// evidence to the stop, in seconds since the trace's start, with the hangs' lengths written on
/// them; the whole trace is the other, hidden view. Without the prelude the window is the trace.
final class HTMLTimelineTests: XCTestCase {
    static let prelude: UInt64 = 4_000_000_000   // (the fixture starts at 5 s)

    func result(prelude: Bool) -> AnalysisResult {
        var r = ExportFixtures.result()
        r.report.findings = ExportFixtures.findings().filter { $0.kind == .deadlock }   // Process-1 and -2
        let t0 = ExportFixtures.t0
        if prelude {
            let early = TraceEvent(time: t0 - Self.prelude, pid: ExportFixtures.mainPid, tid: ExportFixtures.mainPid, seq: 0,
                                   kind: .lockNew, object: ExportFixtures.oid(99), stack: 0, result: .ok, a: 0, b: 0, c: 0, text: "early")
            r.context.events.insert(early, at: 0)
        }
        r.context.traceEnd = t0 + 3_000_000_000
        return r
    }

    func testOpensOnTheFindingsWindow() throws {
        let html = try Exporter.render(.html, result: result(prelude: true), options: ExportOptions())
        XCTAssertTrue(html.contains("<div class=\"scroll\" id=\"tl-findings\"><svg"), "the findings' view is shown")
        XCTAssertTrue(html.contains("<div class=\"scroll\" id=\"tl-whole\" hidden><svg"), "the whole trace is the hidden view")
        XCTAssertTrue(html.contains("id=\"tlwhole\""), "a button shows the whole trace")
        let findingsView = try XCTUnwrap(html.range(of: "id=\"tl-findings\"").flatMap { r in html.range(of: "</svg>", range: r.upperBound..<html.endIndex).map { String(html[r.upperBound..<$0.lowerBound]) } })
        let axis = findingsView.matches(of: #/class="axis"[^>]*>([0-9.]+) s</text>/#).compactMap { Double($0.1) }
        XCTAssertEqual(axis.count, 5, findingsView)
        // The deadlock's evidence is 4.001 s after the start, the stop 7.000 s.
        XCTAssertEqual(axis.first ?? 0, 3.85, accuracy: 0.2, "the window starts just before the evidence: \(axis)")
        XCTAssertGreaterThan(axis.last ?? 0, 7.0, "the window runs to the stop: \(axis)")
        let labels = findingsView.matches(of: #/class="hanglabel[^"]*" data-length="([0-9.]+) s">([^<]+)</#).map { (Double($0.1) ?? 0, String($0.2)) }
        XCTAssertEqual(labels.count, 3, "Process-1's and Process-2's lock waits and main's get: \(labels)")
        for (s, text) in labels {
            XCTAssertEqual(s, 3.0, accuracy: 0.01, text)
            XCTAssertTrue(text.hasPrefix("never returned · ") && text.hasSuffix("until the trace ends"), text)
        }
        XCTAssertFalse(html.contains(" ms<"), "times are in seconds")
    }

    func testWholeTraceWhenTheFindingsCoverIt() throws {
        let html = try Exporter.render(.html, result: result(prelude: false), options: ExportOptions())
        XCTAssertFalse(html.contains("id=\"tl-findings\""))
        XCTAssertTrue(html.contains("<div class=\"scroll\" id=\"tl-whole\"><svg"))
        let axis = html.matches(of: #/class="axis"[^>]*>([0-9.]+) s</text>/#).compactMap { Double($0.1) }
        XCTAssertEqual(axis.first, 0)
    }
}
