#if canImport(Glibc)
import Glibc
#endif

// The test targets' one temporary-directory helper (they used to carry five copies).

/// A fresh, empty directory `$TMPDIR/<tag>-XXXXXX` (`/tmp` when TMPDIR is unset or empty).
public func makeTempDir(_ tag: String) -> String {
    let base = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
    var template = Array("\(base)/\(tag)-XXXXXX".utf8CString)
    let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    precondition(p != nil, "cannot create a temporary directory in \(base)")
    return String(cString: p!)
}

/// Removes `path` and everything below it (no Foundation: usable in a child process the test
/// binary re-executes).
public func removeTree(_ path: String) {
    guard let dir = opendir(path) else { unlink(path); return }
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
        }
        if name == "." || name == ".." { continue }
        let child = path + "/" + name
        if unlink(child) != 0 { removeTree(child) }
    }
    closedir(dir)
    rmdir(path)
}
