import Foundation

/// `tangle run -- python3 app.py`: turns on the Python adapter (adapters/python, package
/// `tangle_trace`) without changing the program, by putting its `_site` folder (a
/// `sitecustomize.py` that calls `tangle_trace.activate()` when TANGLE_TRACE is set) first on
/// PYTHONPATH. Spawned children inherit PYTHONPATH and TANGLE_TRACE, so they record too.
enum PythonAdapter {
    /// python, python3, python3.11, pypy3 …
    static func isPython(_ command: [String]) -> Bool {
        guard let first = command.first else { return false }
        let name = (first as NSString).lastPathComponent
        return name.hasPrefix("python") || name.hasPrefix("pypy")
    }

    /// The adapter's `_site` folder: $TANGLE_PYTHON_ADAPTER (adapters/python), else found beside
    /// this executable's checkout (…/.build/<config>/tangle → …/adapters/python), else nil.
    static func siteDirectory() -> String? {
        let fm = FileManager.default
        var roots: [String] = []
        if let explicit = ProcessInfo.processInfo.environment["TANGLE_PYTHON_ADAPTER"] { roots.append(explicit) }
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        var dir = exe
        for _ in 0..<6 {
            roots.append(dir.appendingPathComponent("adapters/python").path)
            roots.append(dir.appendingPathComponent("share/tangle/python").path)
            dir = dir.deletingLastPathComponent()
        }
        for root in roots where fm.fileExists(atPath: root + "/tangle_trace/_site/sitecustomize.py") {
            return root + "/tangle_trace/_site"
        }
        return nil
    }

    /// `env` with the adapter's site folder prepended to PYTHONPATH when `command` runs Python.
    static func environment(for command: [String], _ env: [String]) -> [String] {
        guard isPython(command) else { return env }
        guard let site = siteDirectory() else {
            FileHandle.standardError.write(Data("tangle: python adapter not found (set TANGLE_PYTHON_ADAPTER to adapters/python): only an installed tangle_trace records\n".utf8))
            return env
        }
        var out = env.filter { !$0.hasPrefix("PYTHONPATH=") }
        let old = env.first { $0.hasPrefix("PYTHONPATH=") }.map { String($0.dropFirst("PYTHONPATH=".count)) } ?? ""
        out.append("PYTHONPATH=" + (old.isEmpty ? site : site + ":" + old))
        return out
    }
}
