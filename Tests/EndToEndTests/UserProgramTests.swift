import Foundation
import XCTest
import TangleTestSupport

/// The six ways the analyzer once misread a primitive's wait, each on a program written the way an
/// app would use Tangle (`Examples/UserPrograms`, not a demo scenario), run for real under
/// `tangle run --timeout` and judged by its JSON report.
final class UserProgramTests: XCTestCase {
    struct Outcome {
        var status: Int32
        var findings: [[String: Any]]
        var processes: [[String: Any]]
    }

    private func run(_ program: String, timeout: Int = 3) throws -> Outcome {
        let tangle = ScenarioEndToEndTests.productsDir + "/tangle"
        let examples = ScenarioEndToEndTests.productsDir + "/tangle-examples"
        for path in [tangle, examples] {
            guard FileManager.default.isExecutableFile(atPath: path) else {
                XCTFail("\(path) was not built (swift build builds it)")
                throw CocoaError(.fileNoSuchFile)
            }
        }
        let dir = NSTemporaryDirectory() + "tangle-user-\(program)-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        let report = dir + ".json"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: report) }
        let status = try runTool(tangle, ["run", "--timeout", "\(timeout)", "--trace-dir", dir, "--format", "json", "--output", report, "--", examples, program],
                                 environment: ["SWIFT_BACKTRACE": "enable=no"], capture: false).status
        let data = try Data(contentsOf: URL(fileURLWithPath: report))
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        return Outcome(status: status,
                       findings: json["findings"] as? [[String: Any]] ?? [],
                       processes: json["processes"] as? [[String: Any]] ?? [])
    }

    private func participants(_ f: [String: Any]) -> [[String: Any]] { f["participants"] as? [[String: Any]] ?? [] }
    private func titles(_ o: Outcome) -> [String] { o.findings.map { "\($0["kind"] ?? "")|\($0["title"] ?? "")" } }

    /// Flaw 1: a thread blocked in `Condition.wait` (which releases the condition's lock inside the
    /// wait) counts as blocked: the hang on the condition is found, with the waiter in it.
    func testConditionWaitNeverNotifiedIsFound() throws {
        let o = try run("condition-never-notified")
        XCTAssertEqual(o.status, 1, "\(titles(o))")
        let waiters = o.findings.filter { ["hang", "deadlock"].contains($0["kind"] as? String) }
            .flatMap { participants($0) }.filter { $0["role"] as? String == "waits" }
        XCTAssertTrue(waiters.contains { $0["thread"] as? String == "job-worker" && ($0["detail"] as? String ?? "").contains("condition 'jobs-ready'") },
                      "\(titles(o))")
    }

    /// Flaw 2: a barrier reached by too few parties is a hang that says how many came, with both
    /// arrived parties in it, not "waiting for each other".
    func testBarrierWithTooFewPartiesIsAHangCountingParties() throws {
        let o = try run("barrier-too-few-parties")
        XCTAssertEqual(o.findings.count, 1, "\(titles(o))")
        let f = try XCTUnwrap(o.findings.first)
        XCTAssertEqual(f["kind"] as? String, "hang")
        XCTAssertTrue((f["title"] as? String ?? "").contains("2 of 3 parties reached barrier 'start-line'; 1 never came"), "\(titles(o))")
        let waitingRunners = Set(participants(f).filter { ($0["detail"] as? String ?? "").contains("barrier 'start-line'") }.compactMap { $0["thread"] as? String })
        XCTAssertEqual(waitingRunners, ["runner-0", "runner-1"])
    }

    /// Flaw 3: when pool tasks hang, the process waiting for the results is in the finding with the
    /// workers, and there is one finding, not one per worker.
    func testHungPoolTasksAreOneFindingWithTheWaitingProcess() throws {
        let o = try run("pool-tasks-hang")
        let actual = o.findings.filter { $0["confidence"] as? String == "actual" }
        XCTAssertEqual(actual.count, 1, "\(titles(o))")
        let f = try XCTUnwrap(actual.first)
        let root = try XCTUnwrap(o.processes.first { ($0["ppid"] as? Int).map { ppid in !o.processes.contains { $0["pid"] as? Int == ppid } } ?? false }?["pid"] as? Int)
        let waits = participants(f).filter { $0["role"] as? String == "waits" }
        XCTAssertTrue(waits.contains { $0["pid"] as? Int == root && ($0["detail"] as? String ?? "").contains("pool") }, "main's result wait missing: \(waits)")
        XCTAssertEqual(Set(waits.compactMap { $0["pid"] as? Int }).subtracting([root]).count, 2, "both workers: \(waits)")
    }

    /// Flaw 4: results read by iterating imapUnordered count as retrieved: a program that reads
    /// every failed result gets no lost-pool-error.
    func testImapUnorderedErrorsReadAreNotLost() throws {
        let o = try run("pool-errors-all-read", timeout: 20)
        XCTAssertEqual(o.status, 0, "\(titles(o))")
        XCTAssertFalse(o.findings.contains { $0["kind"] as? String == "lost-pool-error" }, "\(titles(o))")
    }

    /// Flaw 5: a title counts every member of the ring it reports (three tellers), and those
    /// blocked behind it (the joining main process); the fix speaks of lock order.
    func testRingTitleCountsEveryMember() throws {
        let o = try run("lock-ring")
        let f = try XCTUnwrap(o.findings.first { $0["kind"] as? String == "deadlock" }, "\(titles(o))")
        let title = f["title"] as? String ?? ""
        XCTAssertTrue(title.hasPrefix("3 threads each wait for a lock another holds"), title)
        XCTAssertTrue(title.contains("1 more blocked behind them"), title)
        XCTAssertFalse(title.hasPrefix("deadlock:"), title)
        XCTAssertTrue((f["fix"] as? String ?? "").contains("one global order"), "\(f["fix"] ?? "")")
        XCTAssertEqual(participants(f).filter { $0["role"] as? String == "waits" }.count, 4)
    }

    /// Flaw 6: when the program terminates a lock's owner, the later acquirer's owner-died is part
    /// of the finding (with the dead owner), not folded away.
    func testAcquirerOfTerminatedOwnersLockIsInTheFinding() throws {
        let o = try run("terminate-lock-owner")
        let died = o.findings.filter { $0["kind"] as? String == "owner-died" }
        XCTAssertEqual(died.count, 1, "\(titles(o))")
        let roles = Set(died.flatMap { participants($0) }.compactMap { $0["role"] as? String })
        XCTAssertTrue(roles.isSuperset(of: ["acquires", "died-holding"]), "\(roles)")
    }
}
