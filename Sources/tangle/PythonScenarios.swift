import Foundation

/// The Python adapter's example programs (adapters/python/examples/<name>/app.py with its
/// expected.json) as demo scenarios named `python-<name>`, run as `tangle run -- python3 app.py`.
/// Present only when python3 is on PATH and the adapter is found (see `PythonAdapter`).
enum PythonScenarios {
    static let prefix = "python-"

    static var python: String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let p = String(dir) + "/python3"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    static var examplesDirectory: String? {
        guard let site = PythonAdapter.siteDirectory() else { return nil }
        let dir = URL(fileURLWithPath: site).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("examples").path
        return FileManager.default.fileExists(atPath: dir) ? dir : nil
    }

    /// The scenarios, with `hangs` from each expected.json and the summary from app.py's docstring.
    static func infos() -> [ScenarioRunner.Info] {
        guard python != nil, let dir = examplesDirectory,
              let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return [] }
        return names.sorted().compactMap { n in
            guard let data = FileManager.default.contents(atPath: "\(dir)/\(n)/expected.json"),
                  let expected = try? JSONDecoder().decode(ScenarioRunner.Expected.self, from: data),
                  let source = try? String(contentsOfFile: "\(dir)/\(n)/app.py", encoding: .utf8) else { return nil }
            let doc = source.split(separator: "\n").first.map { $0.replacingOccurrences(of: "\"\"\"", with: "") } ?? ""
            return ScenarioRunner.Info(name: prefix + n, hangs: expected.hangs, summary: "[python] " + doc)
        }
    }

    /// `python3 <examples>/<name>/app.py` for a scenario of this kind, else nil.
    static func command(for scenario: String) -> [String]? {
        guard scenario.hasPrefix(prefix), let python, let dir = examplesDirectory else { return nil }
        return [python, "\(dir)/\(scenario.dropFirst(prefix.count))/app.py"]
    }

    static func expectedPath(for scenario: String) -> String? {
        guard scenario.hasPrefix(prefix), let dir = examplesDirectory else { return nil }
        return "\(dir)/\(scenario.dropFirst(prefix.count))/expected.json"
    }
}
