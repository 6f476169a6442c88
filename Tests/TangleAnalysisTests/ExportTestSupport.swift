import Foundation
import XCTest
import TangleTestSupport

/// Small helpers shared by the Export* tests: temp dirs, subprocesses, locating tools.
enum ExportTestSupport {
    static func tempDir(_ name: String) throws -> String {
        makeTempDir("tangle-export-\(name)")
    }

    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs `path args…` to completion (stdin /dev/null), capturing both outputs via files.
    static func run(_ path: String, _ args: [String], environment: [String: String]? = nil, cwd: String? = nil) throws -> Output {
        let dir = try tempDir("run")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = FileManager.default.createFile(atPath: dir + "/out", contents: nil)
        _ = FileManager.default.createFile(atPath: dir + "/err", contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        if let environment { p.environment = environment }
        if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: dir + "/out"))
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: dir + "/err"))
        try p.run()
        p.waitUntilExit()
        let out = (try? String(contentsOfFile: dir + "/out", encoding: .utf8)) ?? ""
        let err = (try? String(contentsOfFile: dir + "/err", encoding: .utf8)) ?? ""
        return Output(status: p.terminationStatus, stdout: out, stderr: err)
    }

    /// The repository root (this file is Tests/TangleAnalysisTests/ExportTestSupport.swift).
    static var repoRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    /// The SARIF 2.1.0 schema: $TANGLE_SARIF_SCHEMA, else ../shared/schemas beside the repo.
    static var sarifSchema: String? {
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["TANGLE_SARIF_SCHEMA"] { candidates.append(env) }
        candidates.append(repoRoot + "/../shared/schemas/sarif-schema-2.1.0.json")
        candidates.append("/work/shared/schemas/sarif-schema-2.1.0.json")
        return candidates.first { FileManager.default.fileExists(atPath: $0) }
    }

    /// The `tangle` executable built next to the test bundle (swift test builds it), or $TANGLE_BIN.
    static var tangleBinary: String? {
        if let env = ProcessInfo.processInfo.environment["TANGLE_BIN"], FileManager.default.isExecutableFile(atPath: env) { return env }
        var dir = URL(fileURLWithPath: CommandLine.arguments.first ?? "").deletingLastPathComponent()
        for _ in 0..<4 {
            let p = dir.appendingPathComponent("tangle").path
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: p, isDirectory: &isDir), !isDir.boolValue, FileManager.default.isExecutableFile(atPath: p) { return p }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }

    static func python(_ script: String, _ args: [String]) throws -> Output? {
        guard let py = which("python3") else { return nil }
        return try run(py, ["-c", script] + args)
    }
}
