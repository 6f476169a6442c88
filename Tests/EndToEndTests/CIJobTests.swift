import Foundation
import XCTest
import TangleTestSupport

/// The GitHub Actions job of docs/ci.md, its steps run as a shell script with the real `tangle`
/// binary on real traced programs (`tangle-scenarios`): a finding that is in the baseline lets the
/// job pass, a new one fails it at the `tangle check` gate, and the tests' own failure fails it at
/// the last step — whatever the findings.
final class CIJobTests: XCTestCase {
    /// The job's steps (docs/ci.md, "A complete GitHub Actions job"), in order, with the same flags;
    /// `continue-on-error` on the tests' step is the `|| tests=$?`.
    static let job = #"""
    set -u
    tests=0
    "$TANGLE" run --fail-on none --timeout 60 --grace 2 --trace-dir "$WORK/trace" \
        --format junit -o "$WORK/tangle-junit.xml" -- /bin/sh -c "$APP" || tests=$?
    "$TANGLE" analyze "$WORK/trace" --format sarif -o "$WORK/tangle.sarif" || true
    gate=0
    "$TANGLE" check "$WORK/trace" --baseline "$WORK/baseline.json" \
        --suppressions "$WORK/suppressions.txt" --fail-on warning || gate=$?
    echo "tests=$tests gate=$gate"
    [ "$gate" -eq 0 ] || exit 1          # Gate on new findings
    [ "$tests" -eq 0 ] || exit 1         # Fail when the tests failed
    exit 0
    """#

    struct JobRun { var status: Int32; var tests: Int; var gate: Int; var output: String }

    private var work = ""
    private var tangle = ""
    private var scenarios = ""

    override func setUpWithError() throws {
        tangle = try ScenarioEndToEndTests.binary("tangle")
        scenarios = try ScenarioEndToEndTests.binary("tangle-scenarios")
        work = makeTempDir("tangle-ci-job")
        let dir = work
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        // The accepted run: the baseline is made once from it (docs/ci.md, "The baseline"), and a
        // suppression that matches nothing, to see it reported as stale.
        let base = try sh("\"$TANGLE\" run --trace-dir \"$WORK/accepted\" -- \"$SCN\" unjoined-child >/dev/null 2>&1; "
                          + "\"$TANGLE\" baseline \"$WORK/accepted\" --output \"$WORK/baseline.json\"")
        XCTAssertEqual(base.status, 0, base.output)
        let baseline = try String(contentsOfFile: work + "/baseline.json", encoding: .utf8)
        XCTAssertTrue(baseline.contains("unjoined-child"), baseline)
        try "fingerprint 0123456789abcdef an old bug, fixed since\n".write(toFile: work + "/suppressions.txt", atomically: true, encoding: .utf8)
    }

    private func sh(_ script: String, app: String = "") throws -> (status: Int32, output: String) {
        try runTool("/bin/sh", ["-c", script], environment: [
            "SWIFT_BACKTRACE": "enable=no", "TANGLE": tangle, "SCN": scenarios, "WORK": work, "APP": app,
        ])
    }

    private func runJob(app: String) throws -> JobRun {
        try? FileManager.default.removeItem(atPath: work + "/trace")
        let r = try sh(Self.job, app: app)
        let last = r.output.split(separator: "\n").last { $0.hasPrefix("tests=") }.map(String.init) ?? ""
        let fields = Dictionary(uniqueKeysWithValues: last.split(separator: " ").compactMap { kv -> (String, Int)? in
            let p = kv.split(separator: "=")
            return p.count == 2 ? (String(p[0]), Int(p[1]) ?? -1) : nil
        })
        return JobRun(status: r.status, tests: fields["tests"] ?? -1, gate: fields["gate"] ?? -1, output: r.output)
    }

    /// The job in docs/ci.md is the one run here (same steps, same flags).
    func testTheDocumentedJobHasTheseSteps() throws {
        let doc = try String(contentsOfFile: ScenarioEndToEndTests.repoRoot + "/docs/ci.md", encoding: .utf8)
        XCTAssertTrue(doc.contains("tangle run --fail-on none --timeout 900"), "the tests' step must not fail on findings")
        XCTAssertTrue(doc.contains(".build/release/tangle check .tangle/trace\n          --baseline .tangle/baseline.json"), "the gate is tangle check")
        XCTAssertTrue(doc.contains("if: steps.tests.outcome == 'failure'"))
    }

    /// A finding in the baseline: the tests pass, the gate calls it known, the job passes; the
    /// suppression that matched nothing is reported as stale.
    func testKnownFindingPasses() throws {
        let r = try runJob(app: "\"$SCN\" unjoined-child")
        XCTAssertEqual(r.tests, 0, "tangle run --fail-on none exits with the tests' own status\n\(r.output)")
        XCTAssertEqual(r.gate, 0, r.output)
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("known") || r.output.contains("baseline"), r.output)
        XCTAssertTrue(r.output.contains("0123456789abcdef"), "the stale suppression is listed\n\(r.output)")
        // Without --fail-on none the same run exits 1 (findings): the old job failed here.
        try? FileManager.default.removeItem(atPath: work + "/trace2")
        let old = try sh("\"$TANGLE\" run --trace-dir \"$WORK/trace2\" -- \"$SCN\" unjoined-child")
        XCTAssertEqual(old.status, 1, old.output)
        XCTAssertTrue(old.output.contains("exit status 1: findings"), old.output)
    }

    /// A new finding (2 messages lost) next to the known one: the tests still pass, the gate fails.
    func testNewFindingFailsTheGate() throws {
        let r = try runJob(app: "\"$SCN\" unjoined-child && \"$SCN\" lost-messages")
        XCTAssertEqual(r.tests, 0, r.output)
        XCTAssertEqual(r.gate, 1, r.output)
        XCTAssertEqual(r.status, 1, r.output)
        XCTAssertTrue(r.output.contains("lost"), r.output)
    }

    /// The tests' own failure (exit 1, only known findings): the gate passes, the job fails on it.
    func testTheTestsOwnFailureFailsTheJob() throws {
        let r = try runJob(app: "\"$SCN\" unjoined-child; exit 1")
        XCTAssertEqual(r.tests, 1, r.output)
        XCTAssertEqual(r.gate, 0, r.output)
        XCTAssertEqual(r.status, 1, r.output)
        XCTAssertTrue(r.output.contains("exit status 1: /bin/sh's own"), r.output)
    }
}
