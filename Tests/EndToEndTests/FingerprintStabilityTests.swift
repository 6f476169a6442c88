import Foundation
import XCTest
import TangleTestSupport

/// Issue 14, item 3: a baseline survives ordinary edits. One small package depending on Tangle
/// (by path) is built three times with edits to its `main.swift` — the same bug after unrelated
/// functions and two more entry points were added above it (every entry point is a closure: their
/// ordinals shift) and the bug moved down; then a different bug — and each is run under
/// `tangle run`: the first two give the same fingerprint, the third another one.
final class FingerprintStabilityTests: XCTestCase {
    static let bug = """
    struct WorkerArgs: Codable { var jobs: Queue<Int?> }

    func consume(_ args: WorkerArgs) throws {
        while let job = try args.jobs.get() { _ = job }
    }

    """
    static let main = """
    let jobs = Queue<Int?>(name: "jobs")
    var workers: [ChildProcess] = []
    for _ in 0..<2 {
        let p = ChildProcess(entryPoint: "worker", arguments: WorkerArgs(jobs: jobs))
        try p.start()
        workers.append(p)
    }
    for i in 0..<4 { try jobs.put(i) }
    try jobs.put(nil)                    // one pill for two workers
    for w in workers { _ = w.join() }
    """
    static let unrelated = """
    struct Report: Codable { var lines: [String] }

    func formatReport(_ r: Report) -> String { r.lines.joined(separator: "\\n") }

    func checksum(_ s: String) -> Int { s.utf8.reduce(0) { ($0 &* 31) &+ Int($1) } }

    """

    /// The same bug, three versions of the file, and a different bug.
    static let versions: [String] = [
        "import Tangle\n\n" + bug + "EntryPoint.register(\"worker\") { (args: WorkerArgs) in try consume(args) }\nTangleRuntime.bootstrap()\n\n" + main,
        "import Tangle\n\n" + unrelated
            + "EntryPoint.register(\"report\") { (r: Report) in print(formatReport(r)) }\n"
            + "EntryPoint.register(\"checksum\") { (s: String) in print(checksum(s)) }\n\n"
            + "// moved down, below new code\n\n\n\n" + bug
            + "EntryPoint.register(\"worker\") { (args: WorkerArgs) in try consume(args) }\nTangleRuntime.bootstrap()\n\n" + main,
        "import Tangle\n\nTangleRuntime.bootstrap()\n\nlet gate = Barrier(parties: 2, name: \"start\")\n_ = try gate.wait()   // a different bug: one party of two\n",
    ]

    func testFingerprintsHoldUnderUnrelatedEditsAndDifferForAnotherBug() throws {
        let swift = try XCTUnwrap(which("swift"), "swift is needed")
        let tangle = try ScenarioEndToEndTests.binary("tangle")
        let base = makeTempDir("tangle-fingerprints")
        addTeardownBlock { removeTree(base) }
        let root = ScenarioEndToEndTests.repoRoot
        let package = try AppPackage(base: base, dependency: ".package(path: \"\(root)\")",
                                     packageName: URL(fileURLWithPath: root).lastPathComponent)

        var fingerprints: [[String]] = []
        for (i, source) in Self.versions.enumerated() {
            let built = try package.build(source, swift: swift)
            XCTAssertEqual(built.status, 0, "version \(i) did not build:\n\(built.output.suffix(3000))")
            guard built.status == 0 else { return }
            let run = try package.runTraced(tangle: tangle, report: base + "/report-\(i).json", extra: ["--grace", "1"])
            XCTAssertEqual(run.status, 1, "version \(i) must give findings: \(run.output.suffix(2000))")
            let findings = run.findings.filter { ["hang", "deadlock"].contains($0["kind"] as? String) }
            XCTAssertFalse(findings.isEmpty, "version \(i): no hang")
            fingerprints.append(findings.compactMap { $0["fingerprint"] as? String }.sorted())
        }
        XCTAssertEqual(fingerprints[0], fingerprints[1], "unrelated functions and entry points above the bug, the bug moved down: the fingerprint changed")
        XCTAssertTrue(Set(fingerprints[2]).isDisjoint(with: fingerprints[0]), "a different bug has the same fingerprint: \(fingerprints)")
    }
}
