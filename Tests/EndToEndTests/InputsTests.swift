import Foundation
import XCTest
import TangleTestSupport

/// What `tangle` does with input that holds no trace (issue 14, item 5): an empty directory, or one
/// whose `*.jsonl` files are not traces, is unusable input (exit 2, a message saying so), never
/// "no concurrency bugs found — 0 file(s)".
final class InputsTests: XCTestCase {
    private func tangle(_ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try ScenarioEndToEndTests.binary("tangle"))
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    private func directory(_ files: [String: String]) throws -> String {
        let dir = makeTempDir("tangle-inputs")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        for (name, text) in files { try text.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8) }
        return dir
    }

    func testEmptyDirectoryExits2() throws {
        let dir = try directory([:])
        let baseline = try directory(["baseline.json": #"{"findings":[],"tool":"tangle","version":1}"#]) + "/baseline.json"
        for verb in [["analyze", dir], ["check", dir, "--baseline", baseline], ["baseline", dir, "--output", "-"]] {
            let r = try tangle(verb)
            XCTAssertEqual(r.status, 2, "\(verb): \(r.stdout)\(r.stderr)")
            XCTAssertTrue(r.stderr.contains("no trace files"), "\(verb): \(r.stderr)")
            XCTAssertFalse(r.stdout.contains("no concurrency bugs found"), r.stdout)
        }
    }

    /// Files named like traces that hold none: empty ones (the case that used to pass as clean),
    /// and JSON lines of some other tool.
    func testDirectoryWithoutReadableTraceExits2() throws {
        let empty = try directory(["a.jsonl": "", "b.jsonl.lz4": ""])
        let baseline = try directory(["baseline.json": #"{"findings":[],"tool":"tangle","version":1}"#]) + "/baseline.json"
        for verb in [["analyze", empty], ["analyze", empty, "--format", "html", "-o", "/dev/null"],
                     ["check", empty, "--baseline", baseline], ["baseline", empty, "--output", "-"]] {
            let r = try tangle(verb)
            XCTAssertEqual(r.status, 2, "\(verb): \(r.stdout)\(r.stderr)")
            XCTAssertTrue(r.stderr.contains("no readable trace") && r.stderr.contains("2 file(s)"), "\(verb): \(r.stderr)")
            XCTAssertFalse(r.stdout.contains("no concurrency bugs found"), r.stdout)
        }
        let other = try directory(["events.jsonl": "{\"level\":\"info\",\"msg\":\"started\"}\n", "more.jsonl": "\n"])
        let r = try tangle(["analyze", other])
        XCTAssertEqual(r.status, 2, r.stdout + r.stderr)
        XCTAssertTrue(r.stderr.contains("not a Tangle trace"), r.stderr)
    }

    /// A real trace still analyzes (exit 0 on a clean one), and without a terminal on stderr no
    /// progress line is written.
    func testRealTraceStillReadsAndNoProgressLineOffTerminal() throws {
        let r = try tangle(["analyze", ScenarioEndToEndTests.corpus + "/producer-consumer-clean"])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertFalse(r.stderr.contains("reading"), r.stderr)
    }

    func testVersion() throws {
        let r = try tangle(["--version"])
        XCTAssertEqual(r.status, 0)
        XCTAssertTrue(r.stdout.hasPrefix("tangle "), r.stdout)
        XCTAssertNotNil(r.stdout.range(of: #"^tangle \d+\.\d+\.\d+\n$"#, options: .regularExpression), r.stdout)
    }
}
