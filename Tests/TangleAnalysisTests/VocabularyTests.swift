import TangleTraceFormat
import TangleTraceReader
import XCTest
@testable import TangleAnalysis

/// The report's typed words keep the JSON's strings, and the one finding order is one order.
final class VocabularyTests: XCTestCase {
    /// Every sentence `ProcessSummary.end` can hold parses back to the value that wrote it.
    func testProcessEndRoundTripsThroughItsSentence() {
        let ends: [ProcessEnd] = [.exited(status: 0), .exited(status: 3), .killed(signal: "SIGTERM"), .killed(signal: "SIGKILL"),
                                  .killSent(by: 41), .terminateSent(by: 42), .endedWithParent, .noTraceFile, .runningAtEnd]
        for e in ends { XCTAssertEqual(ProcessEnd(parsing: e.description), e, e.description) }
        XCTAssertNil(ProcessEnd(parsing: "vanished"))
        XCTAssertEqual(ends.filter(\.isStopLike), [.killed(signal: "SIGTERM"), .killed(signal: "SIGKILL"), .killSent(by: 41),
                                                   .terminateSent(by: 42), .runningAtEnd])
    }

    /// Each reader problem keeps its word in the report.
    func testEveryReaderProblemKeepsItsWord() {
        let kinds: [TraceProblem.Kind] = [.truncated, .corrupt, .invalidLine, .unknownKind, .dropped, .empty, .lineTooLong, .damaged, .duplicateFile]
        for k in kinds { XCTAssertEqual(ProblemKind(k).rawValue, k.rawValue) }
    }

    /// The words encode as the strings docs/analyzers.md lists.
    func testWordsEncodeAsTheirStrings() throws {
        let p = Participant(pid: 1, tid: 1, process: "p", role: .couldWake, detail: "")
        let json = String(decoding: try JSONEncoder().encode(p), as: UTF8.self)
        XCTAssertTrue(json.contains(#""role":"could-wake""#), json)
        let r = RuledOut(kind: .lockOrderInversion, detail: "", reason: .reportedAsActual)
        XCTAssertTrue(String(decoding: try JSONEncoder().encode(r), as: UTF8.self).contains(#""reason":"reported-as-actual""#))
        XCTAssertEqual("\(ParticipantRole.diedHolding)", "died-holding")
    }

    /// The report's order and the exporters' ranking agree: actual before predicted, then
    /// severity, then deadlocks before hangs before the rest.
    func testOneFindingOrder() {
        func f(_ k: FindingKind, _ s: Severity, _ c: Confidence, _ fp: String) -> Finding {
            Finding(kind: k, severity: s, confidence: c, title: fp, participants: [], evidence: [], stacks: [],
                    explanation: "", fix: "", fingerprint: fp)
        }
        let findings = [f(.holdAndWait, .error, .predicted, "a"), f(.zombie, .warning, .actual, "b"), f(.hang, .error, .actual, "c"),
                        f(.selfDeadlock, .error, .actual, "d"), f(.deadlock, .error, .actual, "e")]
        let sorted = findings.sorted { $0.precedes($1) }
        XCTAssertEqual(sorted.map(\.fingerprint), ["e", "d", "c", "b", "a"])
        XCTAssertEqual(ExportSupport.ranked(findings).map(\.finding.fingerprint), sorted.map(\.fingerprint))
        XCTAssertEqual(ExportSupport.ranked(sorted).map(\.index), Array(0..<5), "ranking the report's order changes nothing")
    }
}
