import ArgumentParser
import Foundation

/// A fresh directory `$TMPDIR/tangle-<purpose>-XXXXXX` (`/tmp` when TMPDIR is unset or empty), for
/// trace directories the verbs create themselves (run, demo, bench). Unusable-input exit (2) when it
/// cannot be made.
func makeTemporaryDirectory(_ purpose: String) throws -> String {
    let base = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
    var template = Array("\(base)/tangle-\(purpose)-XXXXXX".utf8CString)
    guard let p = mkdtemp(&template) else {
        throw failUnusable("cannot create a temporary directory in \(base): \(String(cString: strerror(errno)))")
    }
    return String(cString: p)
}

/// CLOCK_MONOTONIC in nanoseconds: the clock every trace event is stamped with.
@inline(__always) func monotonicNow() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
