import Foundation
import XCTest

/// The Python adapter end to end (issue 17): every program of `adapters/python/examples/` — the
/// classic multiprocessing bugs and their clean counterparts — runs for real under
/// `tangle run --timeout 3 -- python3 app.py` (the adapter comes in through `tangle run`'s
/// sitecustomize, the program is unchanged), and its JSON report must hold exactly the findings of
/// its `expected.json` (kinds, confidences, counts), and it must hang exactly when `hangs` says so.
/// Also runs the adapter's own unit tests (`python3 -m unittest`). Skipped without python3.
final class PythonAdapterTests: XCTestCase {
    static var adapter: String { ScenarioEndToEndTests.repoRoot + "/adapters/python" }

    static func python() throws -> String {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let p = String(dir) + "/python3"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        throw XCTSkip("python3 is not on PATH")
    }

    struct Outcome {
        var name: String
        var log: String
        var report: [String: Any]?
    }

    /// Runs every example at once (most of a run is waiting for the timeout).
    func runExamples() throws -> [Outcome] {
        let python = try Self.python()
        let tangle = try ScenarioEndToEndTests.binary("tangle")
        let examples = Self.adapter + "/examples"
        let names = try FileManager.default.contentsOfDirectory(atPath: examples)
            .filter { FileManager.default.fileExists(atPath: examples + "/" + $0 + "/expected.json") }.sorted()
        XCTAssertGreaterThanOrEqual(names.count, 10, "examples missing in \(examples)")
        let base = NSTemporaryDirectory() + "tangle-python-e2e-\(getpid())"
        try? FileManager.default.removeItem(atPath: base)
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: base) }
        var running: [(String, Process, String)] = []
        for name in names {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: tangle)
            p.arguments = ["run", "--timeout", "3", "--grace", "1", "--trace-dir", base + "/" + name,
                           "--format", "json", "--output", base + "/" + name + ".json", "--",
                           python, examples + "/" + name + "/app.py"]
            var env = ProcessInfo.processInfo.environment
            env.removeValue(forKey: "TANGLE_TRACE")
            env["TANGLE_PYTHON_ADAPTER"] = Self.adapter
            p.environment = env
            let log = base + "/" + name + ".log"
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            let h = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            p.standardOutput = h
            p.standardError = h
            try p.run()
            running.append((name, p, log))
        }
        return running.map { name, p, log in
            p.waitUntilExit()
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            let data = try? Data(contentsOf: URL(fileURLWithPath: base + "/" + name + ".json"))
            let report = data.flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
            return Outcome(name: name, log: text, report: report)
        }
    }

    private func counts(_ findings: [[String: Any]]) -> [String: Int] {
        var c: [String: Int] = [:]
        for f in findings { c["\(f["kind"] ?? "?")/\(f["confidence"] ?? "?")", default: 0] += (f["count"] as? Int) ?? 1 }
        return c
    }

    func testExamplesGiveExactlyTheirExpectedFindings() throws {
        let outcomes = try runExamples()
        for o in outcomes {
            let expectedPath = Self.adapter + "/examples/" + o.name + "/expected.json"
            let expected = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: expectedPath))) as? [String: Any])
            guard let report = o.report else {
                XCTFail("\(o.name): no JSON report; log:\n\(o.log)")
                continue
            }
            let got = (report["findings"] as? [[String: Any]] ?? []).map { ["kind": $0["kind"] ?? "", "confidence": $0["confidence"] ?? ""] as [String: Any] }
            let titles = (report["findings"] as? [[String: Any]] ?? []).map { "\($0["kind"] ?? "")|\($0["title"] ?? "")" }
            XCTAssertEqual(counts(got), counts(expected["findings"] as? [[String: Any]] ?? []), "\(o.name): \(titles)\n\(o.log)")
            let hung = ((report["run"] as? [String: Any])?["ended"] as? [String: Any])?["how"] as? String == "timeout"
            XCTAssertEqual(hung, expected["hangs"] as? Bool, "\(o.name): hangs; log:\n\(o.log)")
            // Python stacks reach the report: every hang or deadlock shows the app's own frames.
            if let f = (report["findings"] as? [[String: Any]])?.first(where: { ["deadlock", "hang"].contains($0["kind"] as? String) }) {
                let stacks = f["stacks"] as? [[String: Any]] ?? []
                let files = stacks.flatMap { ($0["frames"] as? [[String: Any]] ?? []).compactMap { $0["file"] as? String } }
                XCTAssertTrue(files.contains { $0.hasSuffix("/" + o.name + "/app.py") }, "\(o.name): no app.py frame in \(stacks)")
            }
        }
    }

    func testAdapterUnitTests() throws {
        let python = try Self.python()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = ["-m", "unittest", "discover", "-s", "tests", "-t", "."]
        p.currentDirectoryURL = URL(fileURLWithPath: Self.adapter)
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "TANGLE_TRACE")
        p.environment = env
        let out = Foundation.Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, text)
        XCTAssertTrue(text.contains("OK"), text)
    }
}
