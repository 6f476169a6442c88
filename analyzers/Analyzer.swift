import Synchronization
import TangleTraceFormat
import TangleTraceReader

/// Options of one analysis run.
public struct AnalysisOptions: Sendable {
    /// Report a zombie when an exited child stays unreaped longer than this while its parent lives.
    public var zombieThresholdNs: UInt64 = 1_000_000_000
    /// Extra directories to find binaries in when the traced paths moved (`--symbols DIR`).
    public var symbolDirectories: [String] = []
    /// Keep the merged events for exporters (timeline, LLM); off for bounded-memory runs.
    public var keepEvents: Bool = true
    /// Events each file's reorder window holds while merging (see `TraceEventStream`).
    public var reorderWindow: Int = 1024
    /// Where the analysis is, for a progress line (the CLI polls it from another thread).
    public var progress: AnalysisProgress?
    public init() {}
}

/// How far an analysis got: events read so far, then whether the passes are running.
/// Updated every 64 Ki events (an atomic store, nothing per event).
public final class AnalysisProgress: Sendable {
    public let events = Atomic<UInt64>(0)
    /// Set when every event is read and the passes run.
    public let reading = Atomic<Bool>(true)
    public init() {}
}

public struct AnalysisResult: Sendable {
    public var report: Report
    public var context: ExportContext
    /// The threads blocked at the end of the trace, by the model's rules of waits (what `watch`
    /// asks instead of guessing from last events).
    public var blocked: [BlockedThread]
    /// Names of the shared memory segments the trace created and never unlinked (what a runner
    /// that must leave the machine clean unlinks after the run).
    public var sharedMemoryNotUnlinked: [String] = []
    /// Every thread's last event and whether it or its process recorded its exit (what `watch`
    /// compares with the clock).
    public var threads: [ThreadActivity] = []
    public init(report: Report, context: ExportContext, blocked: [BlockedThread] = []) {
        self.report = report
        self.context = context
        self.blocked = blocked
    }
}

/// A thread blocked at the end of the trace: its innermost wait, and since when it has been
/// waiting (the outermost pending wait's time: a condition wait that is re-taking its lock counts
/// from the condition wait).
public struct BlockedThread: Sendable, Equatable {
    public var pid: Int32
    public var tid: Int32
    public var wait: TraceEvent
    public var since: UInt64
}

/// A thread as the end of the trace leaves it.
public struct ThreadActivity: Sendable, Equatable, Hashable {
    public var pid: Int32
    public var tid: Int32
    /// CLOCK_MONOTONIC time of its last event.
    public var lastTime: UInt64
    /// It recorded its exit, or its process did.
    public var exited: Bool
}

/// The analyzer's single entry point: every CLI verb (analyze, check, run, watch, demo) calls it.
public enum Analyzer {
    /// Reads the trace files or directories at `paths` and runs every pass.
    /// Throws only for unusable input (nothing readable at all, or a file that is not a trace; the
    /// error names the file); damage is in `report.problems`.
    public static func analyze(paths: [String], options: AnalysisOptions = AnalysisOptions()) throws -> AnalysisResult {
        let inputs = paths
        let stream = try TraceEventStream(paths: paths, window: options.reorderWindow)
        let session = AnalysisSession(options: options)
        var known: Set<Int32> = []
        var lastPid: Int32 = .min
        var paths: [Int32: String] = [:]
        func register(_ pid: Int32) {
            guard let h = stream.headers[pid] else { return }
            if paths[pid] == nil {
                for d in stream.decoders { if let dh = d.header { paths[dh.pid] = d.path } }
            }
            session.addHeader(h, file: paths[pid])
            known.insert(pid)
        }
        // Pids known to be registered, direct-mapped (saves hashing at every switch of process).
        var knownCache = [Int32](repeating: 0, count: 64)
        // Events are moved out of the stream into `e` and consumed in place (no copies).
        var reuse = ObjectReuseCheck()
        let e = UnsafeMutablePointer<TraceEvent>.allocate(capacity: 1)
        defer { e.deallocate() }
        var read: UInt64 = 0
        while try stream.next(into: e) {
            read &+= 1
            if read & 0xFFFF == 0 { options.progress?.events.store(read, ordering: .relaxed) }
            let pid = e.pointee.pid
            if pid != lastPid {
                let slot = Int(UInt32(bitPattern: pid) & 63)
                if knownCache[slot] != pid || pid == 0 {
                    if !known.contains(pid) { register(pid) }
                    if known.contains(pid) { knownCache[slot] = pid }
                }
                lastPid = pid
            }
            if read == 1 { reuse.start = e.pointee.time }
            if ObjectReuseCheck.isCreation(e.pointee) { reuse.note(e.pointee) }  // (TraceIntegrity.swift)
            session.consume(e.pointee)
            e.deinitialize(count: 1)
        }
        options.progress?.events.store(read, ordering: .relaxed)
        options.progress?.reading.store(false, ordering: .relaxed)
        // Files with a header and no events, and module tables completed by later records.
        for d in stream.decoders { if let h = d.header { paths[h.pid] = d.path } }
        for (pid, h) in stream.headers.sorted(by: { $0.key < $1.key }) {
            if known.contains(pid) {
                session.updateHeader(h)
            } else {
                session.addHeader(h, file: paths[pid])
            }
        }
        for (pid, table) in stream.stacks {
            for (id, pcs) in table { session.addStack(pid: pid, id: id, pcs: pcs) }
        }
        for (pid, table) in stream.textStacks {
            for (id, frames) in table { session.addTextStack(pid: pid, id: id, frames: frames) }
        }
        for p in stream.allProblems where p.kind != .dropped {
            var detail = p.message
            if p.offset > 0 { detail += " (at byte \(p.offset))" }
            if p.count > 1 { detail += " ×\(p.count)" }
            session.addProblem(TraceProblemNote(kind: ProblemKind(p.kind), file: p.file, detail: detail))
        }
        if stream.lateEvents > 0 {
            session.addProblem(TraceProblemNote(
                kind: .reordered,
                detail: "\(stream.lateEvents) event(s) arrived later than the reorder window (\(options.reorderWindow) events per file) and were analyzed out of time order"))
        }
        for p in reuse.problems { session.addProblem(p) }
        var result = session.finish()
        // Processes whose file was cut (TraceIntegrity.swift).
        var cutPids: [Int32: String] = [:]
        let cutFiles = Set(stream.allProblems.filter { $0.kind == .truncated }.map(\.file))
        for d in stream.decoders where cutFiles.contains(d.path) { if let h = d.header { cutPids[h.pid] = d.path } }
        CutRunNote.apply(&result, cutPids: cutPids)
        // A directory `tangle run` cut at its stop: the trace lasts until the stop.
        for p in inputs { if let stop = TraceCut.stopTime(directory: p) { result.context.traceEnd = max(result.context.traceEnd, stop) } }
        return result
    }
}
