import TangleTraceFormat
import TangleTraceReader
import XCTest
@testable import TangleAnalysis

/// What `tangle watch` asks the analyzer: stuck for the grace period or not, from the analysis
/// alone (the clock and the processes gone from the machine are the caller's).
final class StallCheckTests: XCTestCase {
    private let second: UInt64 = 1_000_000_000

    /// Producer/consumer with one pill for two consumers: the second consumer and the parent's
    /// join block for good, the others exited.
    private func hang() -> (AnalysisResult, end: UInt64) {
        let b = TraceBuilder()
        Scenarios.producerConsumer(b, items: 4, pills: 1)
        let s = b.session()
        return (s.finish(), b.time)
    }

    func testAHangIsReportedOnceEveryParticipantWasQuietForTheGrace() {
        let (result, end) = hang()
        XCTAssertEqual(result.report.findings.map(\.kind), [.hang])
        guard case .stuck(let findings) = StallCheck.check(result, gone: [], now: end + 6 * second, graceNs: 5 * second) else {
            return XCTFail("not stuck 6 s after the last event with a 5 s grace")
        }
        XCTAssertEqual(findings.map(\.kind), [.hang])
        guard case .progressing = StallCheck.check(result, gone: [], now: end + 2 * second, graceNs: 5 * second) else {
            return XCTFail("reported before the grace period passed")
        }
    }

    /// Processes gone from the machine are not live: with every process gone nothing is live,
    /// and nothing is reported.
    func testGoneProcessesAreNotLive() {
        let (result, end) = hang()
        let pids = Set(result.threads.map(\.pid))
        XCTAssertFalse(StallCheck.liveThreads(result, gone: []).isEmpty)
        XCTAssertTrue(StallCheck.liveThreads(result, gone: pids).isEmpty)
        guard case .progressing = StallCheck.check(result, gone: pids, now: end + 60 * second, graceNs: 5 * second) else {
            return XCTFail("a verdict on processes that are gone")
        }
    }

    /// Every live thread blocked and no pass explaining it: one hang named by watch, its
    /// fingerprint from the waits (the analyzer's FNV-1a).
    func testEveryoneBlockedWithoutAFindingGivesAStall() {
        let b = TraceBuilder()
        let main = b.root(1)
        let q = b.queue(main, "results")
        b.ev(main, .queueGetWait, o: q)
        var result = b.session().finish()
        result.report.findings = []   // as if no pass had explained it
        guard case .everyoneBlocked(let findings) = StallCheck.check(result, gone: [], now: b.time + 10 * second, graceNs: 5 * second) else {
            return XCTFail("every live thread blocked, no verdict")
        }
        XCTAssertEqual(findings.count, 1)
        XCTAssertEqual(findings.first?.participants.map(\.role), [.waits])
        XCTAssertEqual(findings.first?.fingerprint, "watch-stall-" + String(FNV1a.hash("queue.get-wait results"), radix: 16))
    }
}
