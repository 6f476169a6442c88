import Foundation
import XCTest
import TangleAnalysis

/// The CLI on input it must not trust: a device, a FIFO named by a trace's module table. Each run
/// has a watchdog: a hang fails the test instead of stalling the suite.
final class SafeInputTests: XCTestCase {
    private func tangle(_ args: [String], seconds: Double = 60) throws -> (status: Int32, stderr: String) {
        guard let bin = ExportTestSupport.tangleBinary else { throw XCTSkip("the tangle binary is not built") }
        let d = try ExportTestSupport.tempDir("safe-cli")
        defer { try? FileManager.default.removeItem(atPath: d) }
        XCTAssertTrue(FileManager.default.createFile(atPath: d + "/err", contents: nil), "cannot write a test file")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin)
        p.arguments = args
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = FileHandle.nullDevice
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: d + "/err"))
        try p.run()
        let deadline = Date().addingTimeInterval(seconds)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            XCTFail("tangle \(args.joined(separator: " ")) did not end within \(seconds) s")
            return (-1, "")
        }
        XCTAssertEqual(p.terminationReason, .exit, "ended by a signal")
        return (p.terminationStatus, (try? String(contentsOfFile: d + "/err", encoding: .utf8)) ?? "")
    }

    /// `tangle run --trace-dir` creates every missing directory 0700, like the recorder's own.
    func testRunCreatesTraceDirectoriesPrivate() throws {
        let d = try ExportTestSupport.tempDir("run-mode")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
        let r = try tangle(["run", "--trace-dir", d + "/x/y", "--", "/bin/true"])
        XCTAssertEqual(r.status, 0, r.stderr)
        for p in [d + "/x", d + "/x/y"] {
            var st = stat()
            XCTAssertEqual(stat(p, &st), 0)
            XCTAssertEqual(st.st_mode & 0o777, 0o700, p)
        }
    }

    func testStatsOnDevZeroEndsWithAClearError() throws {
        let r = try tangle(["stats", "/dev/zero"])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("/dev/zero: not a regular file"), r.stderr)
    }

    /// A trace whose module table names a FIFO (and a stack in it, so the symbolizer wants it):
    /// every format ends (no open that waits for a writer) and the finding is still reported.
    func testModulePathThatIsAFIFODoesNotHangAnyFormat() throws {
        let d = try ExportTestSupport.tempDir("fifo-module")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
        let fifo = d + "/libhostile.so"
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let text = """
        {"k":"header","v":3,"pid":7,"ppid":1,"exe":"\(fifo)","t":1000,"modules":[{"path":"\(fifo)","build_id":"","bias":4096,"lo":4096,"hi":1048576}]}
        {"k":"stack","pid":7,"id":1,"pcs":[8192,12288]}
        {"t":1001,"tid":7,"k":"proc.start","o":1}
        {"t":1002,"tid":7,"k":"queue.new","o":6,"name":"q"}
        {"t":1003,"tid":7,"k":"queue.get-wait","o":6,"s":1}

        """
        let traces = d + "/traces"
        try FileManager.default.createDirectory(atPath: traces, withIntermediateDirectories: true)
        XCTAssertTrue(FileManager.default.createFile(atPath: traces + "/7-1000.jsonl", contents: Data(text.utf8)), "cannot write a test file")
        for format in ["text", "json"] + ExportFormat.allCases.map(\.rawValue) {
            let r = try tangle(["analyze", "--format", format, traces], seconds: 60)
            XCTAssertEqual(r.status, 1, "\(format): the hang is still found; \(r.stderr)")
        }
    }
}
