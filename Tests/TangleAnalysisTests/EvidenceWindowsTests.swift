import Foundation
import XCTest
@testable import TangleAnalysis

/// Exports from a second pass that keeps only what they show: the same LLM summary as with every
/// event kept, and a timeline capped with what it left out said in the output.
final class EvidenceWindowsTests: XCTestCase {
    /// A missing poison pill after `items` items (a hang at the end of a long trace), as files.
    private func trace(items: Int) throws -> String {
        let b = TraceBuilder()
        Scenarios.producerConsumer(b, items: items, pills: 1)
        let d = try ExportTestSupport.tempDir("windows")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
        return try b.writeJSONL(to: d)
    }

    func testLLMSummaryFromWindowsEqualsTheOneFromEveryEvent() throws {
        let d = try trace(items: 3000)
        var all = AnalysisOptions()
        all.keepEvents = true
        let full = try Analyzer.analyze(paths: [d], options: all)
        XCTAssertEqual(full.report.findings.map(\.kind), [.hang])
        var none = AnalysisOptions()
        none.keepEvents = false
        var windowed = try Analyzer.analyze(paths: [d], options: none)
        XCTAssertTrue(windowed.context.events.isEmpty)
        for format in [ExportFormat.llm, .llmJSON] {
            try EvidenceWindows.fill(&windowed, format: format, paths: [d])
            XCTAssertLessThan(windowed.context.events.count, 100, "a few windows, not the trace (\(full.context.events.count) events)")
            var eo = ExportOptions()
            eo.toolVersion = "test"
            XCTAssertEqual(try Exporter.render(format, result: windowed, options: eo),
                           try Exporter.render(format, result: full, options: eo), "\(format)")
        }
        for format in [ExportFormat.sarif, .junit, .dot] {
            try EvidenceWindows.fill(&windowed, format: format, paths: [d])
            XCTAssertTrue(windowed.context.events.isEmpty, "\(format) shows no events")
        }
    }

    func testTimelineIsCappedAndSaysWhatItLeftOut() throws {
        let d = try trace(items: 3000)
        var none = AnalysisOptions()
        none.keepEvents = false
        var r = try Analyzer.analyze(paths: [d], options: none)
        let total = r.report.stats.events
        XCTAssertGreaterThan(total, 6000)
        for format in [ExportFormat.perfetto, .html] {
            try EvidenceWindows.fill(&r, format: format, paths: [d], timelineCap: 400)
            XCTAssertLessThanOrEqual(r.context.events.count, 400)
            let note = try XCTUnwrap(r.context.eventsNote)
            XCTAssertTrue(note.contains("of \(total) events (cap 400)"), note)
            XCTAssertTrue(note.contains("left out"), note)
            let out = try Exporter.render(format, result: r, options: ExportOptions())
            XCTAssertTrue(out.contains("the timeline shows \(r.context.events.count) of \(total) events"), "\(format)")
            // The hang's wait, at the end, is among what is shown.
            XCTAssertTrue(r.context.events.contains { $0.kind == .queueGetWait && $0.time == r.context.events.map(\.time).max()! || $0.kind == .processJoinWait })
        }
        // Under the cap: everything, no note.
        try EvidenceWindows.fill(&r, format: .perfetto, paths: [d], timelineCap: 1_000_000)
        XCTAssertEqual(UInt64(r.context.events.count), UInt64(total))
        XCTAssertNil(r.context.eventsNote)
    }
}
