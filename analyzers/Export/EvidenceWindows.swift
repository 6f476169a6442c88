import TangleTraceFormat
import TangleTraceReader

/// The events an output format shows, chosen in a second pass over the trace so that an export's
/// memory is bounded by the evidence it shows, not by the trace's length (the analysis itself runs
/// with `keepEvents` off):
/// - sarif, junit, dot, text, json: no events;
/// - llm, llm-json: per finding, the last `timelineEventsPerThread` events of each participant
///   thread up to the finding's last evidence (what its timeline shows), the first event (the
///   trace's start) and the objects' creation events (the primitives list);
/// - perfetto, html (a timeline holds everything it shows): at most `timelineCap` events — the last
///   ones up to the latest evidence of any finding (the end of the trace when there is none), plus
///   the start, end and creation events of threads, processes and objects (at most a quarter of the
///   cap); what was left out is said in the output (`ExportContext.eventsNote`).
public enum EvidenceWindows {
    /// Events a timeline keeps at most (perfetto, html): ~20 MB of events, ~100 MB of output.
    public static let timelineCap = 200_000

    public static func needsEvents(_ format: ExportFormat) -> Bool {
        switch format {
        case .llm, .llmJSON, .perfetto, .html: true
        case .sarif, .junit, .dot: false
        }
    }

    /// Fills `result.context.events` (and its note) with what `format` shows, reading `paths` again.
    public static func fill(_ result: inout AnalysisResult, format: ExportFormat, paths: [String],
                            options: ExportOptions = ExportOptions(), reorderWindow: Int = 1024,
                            timelineCap: Int = EvidenceWindows.timelineCap) throws {
        result.context.eventsNote = nil
        guard needsEvents(format) else { result.context.events = []; return }
        let stream = try TraceEventStream(paths: paths, window: reorderWindow)
        switch format {
        case .perfetto, .html: try timeline(&result, stream, cap: max(16, timelineCap))
        default: try windows(&result, stream, perThread: max(1, options.timelineEventsPerThread))
        }
    }

    /// A fixed-size ring of the last events pushed.
    struct Ring {
        var items: [TraceEvent] = []
        var next = 0
        let capacity: Int
        init(_ capacity: Int) { self.capacity = capacity }
        mutating func push(_ e: TraceEvent) {
            if items.count < capacity { items.append(e) } else { items[next] = e; next = (next + 1) % capacity }
        }
        var ordered: [TraceEvent] { Array(items[next...] + items[..<next]) }
    }

    @inline(__always) static func isAnchor(_ e: TraceEvent) -> Bool {
        if ObjectReuseCheck.isCreation(e) { return true }
        switch e.kind {
        case .processStart, .processExit, .processSpawn, .threadStart, .threadExit, .threadSpawn: return true
        default: return false
        }
    }

    private static func windows(_ result: inout AnalysisResult, _ stream: TraceEventStream, perThread: Int) throws {
        var byThread: [ThreadKey: [(finding: Int, horizon: UInt64)]] = [:]
        for (i, f) in result.report.findings.enumerated() {
            let horizon = f.evidence.map(\.time).max() ?? UInt64.max
            var keys = f.participants.map { ThreadKey(pid: $0.pid, tid: $0.tid) }
            keys += f.evidence.map { ThreadKey(pid: $0.pid, tid: $0.tid) }
            for k in Set(keys) { byThread[k, default: []].append((i, horizon)) }
        }
        var rings: [Int: [ThreadKey: Ring]] = [:]
        var kept: [TraceEvent] = []
        var first = true
        while let e = try stream.next() {
            if first || isAnchor(e) { kept.append(e); first = false }
            guard let list = byThread[ThreadKey(pid: e.pid, tid: e.tid)] else { continue }
            for (i, horizon) in list where e.time <= horizon {
                rings[i, default: [:]][ThreadKey(pid: e.pid, tid: e.tid), default: Ring(perThread)].push(e)
            }
        }
        for (_, threads) in rings { for (_, r) in threads { kept += r.items } }
        result.context.events = dedupedInOrder(kept)
    }

    private static func timeline(_ result: inout AnalysisResult, _ stream: TraceEventStream, cap: Int) throws {
        let horizon = result.report.findings.flatMap { $0.evidence.map(\.time) }.max() ?? UInt64.max
        var recent = Ring(cap - cap / 4)
        var anchors: [TraceEvent] = []
        var total: UInt64 = 0, before: UInt64 = 0, after: UInt64 = 0, anchorsLeft: UInt64 = 0
        while let e = try stream.next() {
            total += 1
            if e.time > horizon {
                after += 1
                if isAnchor(e) { if anchors.count < cap / 4 { anchors.append(e) } else { anchorsLeft += 1 } }
                continue
            }
            before += 1
            recent.push(e)
        }
        let shown = UInt64(recent.items.count)
        let kept = dedupedInOrder(anchors + recent.ordered)
        result.context.events = kept
        let leftOut = total - UInt64(kept.count)
        if leftOut > 0 {
            var note = "the timeline shows \(kept.count) of \(total) events (cap \(cap)): "
            note += before > shown ? "the last \(shown) up to " + (horizon == UInt64.max ? "the end of the trace" : "the findings' last evidence") + ", \(before - shown) before them left out" : "every event up to the findings' last evidence"
            if after > 0 { note += "; \(after) later events left out except \(anchors.count) thread, process and object starts and ends" + (anchorsLeft > 0 ? " (\(anchorsLeft) more left out)" : "") }
            result.context.eventsNote = note
        }
    }

    /// `events` without repeats, in merged order (time, pid, tid, seq).
    static func dedupedInOrder(_ events: [TraceEvent]) -> [TraceEvent] {
        let sorted = events.sorted { ($0.time, $0.pid, $0.tid, $0.seq) < ($1.time, $1.pid, $1.tid, $1.seq) }
        var out: [TraceEvent] = []
        out.reserveCapacity(sorted.count)
        for e in sorted {
            if let l = out.last, l.time == e.time, l.pid == e.pid, l.tid == e.tid, l.seq == e.seq { continue }
            out.append(e)
        }
        return out
    }
}
