import Foundation

/// Runs `executable` with `arguments` and returns its status and its stdout and stderr together
/// (or nothing, with `capture: false`). The environment is the test's, without TANGLE_TRACE (a
/// child must not trace into the test's directory), plus `environment`.
public func runTool(_ executable: String, _ arguments: [String], cwd: String? = nil,
                    environment: [String: String] = [:], capture: Bool = true) throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    var env = ProcessInfo.processInfo.environment
    env.removeValue(forKey: "TANGLE_TRACE")
    for (k, v) in environment { env[k] = v }
    p.environment = env
    let out = Pipe()
    p.standardOutput = capture ? out : FileHandle.nullDevice
    p.standardError = capture ? out : FileHandle.nullDevice
    try p.run()
    let data = capture ? out.fileHandleForReading.readDataToEndOfFile() : Data()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// The path of `tool` on PATH (nil: not installed).
public func which(_ tool: String) -> String? {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        let path = "\(dir)/\(tool)"
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
}
