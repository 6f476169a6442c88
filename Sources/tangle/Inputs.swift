import Foundation
import Synchronization
import TangleAnalysis
import TangleTraceReader

// Input checks and the progress line shared by analyze, check and baseline.

/// A set of paths where no file held a Tangle trace (every `*.jsonl` empty, or no header) is
/// unusable input, not a clean run: "no concurrency bugs found — 0 file(s)" would be a false green.
func requireReadableTrace(_ result: AnalysisResult, paths: [String]) throws {
    guard result.report.stats.files == 0 else { return }
    let found = (try? findTraceFiles(paths).count) ?? 0
    let why = result.report.problems.prefix(3).map { "\($0.file.map { $0 + ": " } ?? "")\($0.detail)" }
    throw failUnusable("no readable trace in \(paths.joined(separator: ", ")): \(found) file(s) named *.jsonl or *.jsonl.lz4, none holds a Tangle trace"
                       + (why.isEmpty ? "" : " (" + why.joined(separator: "; ") + (result.report.problems.count > 3 ? "; …" : "") + ")"))
}

/// A line on stderr, rewritten in place, while an analysis runs for more than a second — only
/// when stderr is a terminal (a CI log or a pipe gets nothing). Cleared when the analysis ends.
final class ProgressLine: @unchecked Sendable {
    let progress = AnalysisProgress()
    private let done = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    private let active: Bool

    init(paths: [String], enabled: Bool = isatty(2) != 0) {
        active = enabled
        guard enabled else { return }
        let files = (try? findTraceFiles(paths)) ?? []
        let bytes = files.reduce(UInt64(0)) { $0 + $1.bytes }
        let thread = Thread { [self] in
            let start = DispatchTime.now().uptimeNanoseconds
            var shown = false
            while !done.load(ordering: .relaxed) {
                usleep(250_000)
                let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                guard elapsed >= 1, !done.load(ordering: .relaxed) else { continue }
                let events = progress.events.load(ordering: .relaxed)
                let phase = progress.reading.load(ordering: .relaxed) ? "reading" : "running the passes on"
                let line = String(format: "tangle: %@ %d file(s) (%.1f MB): %llu events, %.1f s", phase, files.count, Double(bytes) / 1e6, events, elapsed)
                FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
                shown = true
            }
            if shown { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
            finished.signal()
        }
        thread.start()
    }

    /// Stops the line and clears it (before anything else is written).
    func stop() {
        guard active, !done.exchange(true, ordering: .relaxed) else { return }
        finished.wait()
    }
}
