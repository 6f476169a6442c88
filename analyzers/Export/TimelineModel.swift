import Foundation
import TangleTraceFormat

/// The timeline the Perfetto and HTML exporters draw: per thread, lock holds (acquired → released)
/// and waits (`*-wait` → the event that ends it by the event table, `EventSpec.ends`; the kinds
/// that may happen inside it keep it open; a wait that never returned lasts until the end of the
/// trace, or `tangle run`'s stop: `ExportContext.traceEnd`), short "op" slices for message put/get (so flow arrows have a slice to bind
/// to), message flows (put → get of the same message id) and finding markers.
///
/// Slices of one thread that nest properly are `nested`; a hold that would overlap another without
/// nesting (A acquired, B acquired, A released, B released) is marked not nested, and exporters
/// draw it on a separate (async) track, so thread tracks always nest.
struct TimelineModel {
    struct Slice {
        var thread: ThreadKey
        var start: UInt64
        var end: UInt64
        /// The kind of the event that opened the slice (the name is built from it on demand).
        var kind: EventKind
        var category: Category
        var object: UInt64
        var unfinished: Bool
        var nested = true
        var eventSeq: UInt64
    }

    enum Category: String { case hold, wait, op }

    struct Flow {
        var id: Int
        var from: ThreadKey
        var fromTime: UInt64
        var to: ThreadKey
        var toTime: UInt64
        var object: UInt64
    }

    struct Marker {
        var thread: ThreadKey?
        var time: UInt64
        var name: String
        var finding: Finding
    }

    struct ThreadInfo {
        var key: ThreadKey
        var label: String
        var first: UInt64
        var end: UInt64   // exited: its exit (or last event); still running at end of trace: trace end
    }

    var start: UInt64 = 0
    var end: UInt64 = 0
    let context: ExportContext
    private let names = NameCache()

    private final class NameCache {
        var slices: [String: String] = [:]
        var objects: [UInt64: String] = [:]
    }

    private func objectLabel(_ o: UInt64) -> String {
        if let l = names.objects[o] { return l }
        var l = ExportSupport.objectLabel(o, context)
        // Every slice of the object repeats its label: a long name (up to 4 KB) is cut here, once,
        // so that the timeline's size follows its events, not their names' lengths.
        if l.count > TimelineModel.maxLabel { l = String(l.prefix(TimelineModel.maxLabel - 1)) + "…" }
        names.objects[o] = l
        return l
    }

    /// "hold 'A'", "wait lock.wait 'B' (never returned)", "put 'tasks'", … (cached per kind/object).
    func name(_ s: Slice) -> String {
        let prefix: String
        switch s.category {
        case .hold: prefix = "hold"
        case .wait: prefix = "wait " + s.kind.name
        default:
            switch s.kind {
            case .queuePut: prefix = "put"
            case .pipeSend: prefix = "send"
            case .queueGet: prefix = "get"
            default: prefix = "recv"
            }
        }
        let obj = objectLabel(s.object)
        var n = obj.isEmpty ? prefix : prefix + " " + obj
        if s.unfinished { n += s.category == .hold ? " (held at end)" : " (never returned)" }
        return n
    }

    /// "kind: title", without saying the kind twice when the title already starts with it.
    static func markerName(_ f: Finding) -> String {
        f.title.lowercased().hasPrefix(f.kind.rawValue.replacingOccurrences(of: "-", with: " ")) || f.title.lowercased().hasPrefix(f.kind.rawValue)
            ? f.title : "\(f.kind.rawValue): \(f.title)"
    }

    /// Characters of an object's label in slice and flow names at most.
    static let maxLabel = 80

    func name(_ f: Flow) -> String {
        let obj = objectLabel(f.object)
        return obj.isEmpty ? "message" : "message " + obj
    }
    var threads: [ThreadInfo] = []
    var slices: [Slice] = []
    var flows: [Flow] = []
    var markers: [Marker] = []

    init(result: AnalysisResult) {
        let context = result.context
        self.context = context
        let events = context.events
        guard let first = events.first else {
            markers = result.report.findings.map { Marker(thread: nil, time: 0, name: TimelineModel.markerName($0), finding: $0) }
            return
        }
        start = events.reduce(first.time) { min($0, $1.time) }
        end = max(events.reduce(first.time) { max($0, $1.time) }, context.traceEnd)

        // Threads as dense indexes (one hash per run of events of the same thread).
        var index: [ThreadKey: Int] = [:]
        var keys: [ThreadKey] = []
        var firstTime: [UInt64] = [], lastTime: [UInt64] = [], threadExit: [UInt64?] = []
        var processExit: [Int32: UInt64] = [:]
        var eventThread = [Int](repeating: 0, count: events.count)
        var lastKey = ThreadKey(pid: -1, tid: -1), lastIndex = -1
        for (n, e) in events.enumerated() {
            let k = ThreadKey(pid: e.pid, tid: e.tid)
            var ti: Int
            if k == lastKey {
                ti = lastIndex
            } else if let i = index[k] {
                ti = i
            } else {
                ti = keys.count
                index[k] = ti
                keys.append(k)
                firstTime.append(e.time)
                lastTime.append(e.time)
                threadExit.append(nil)
            }
            lastKey = k
            lastIndex = ti
            eventThread[n] = ti
            if e.time > lastTime[ti] { lastTime[ti] = e.time }
            if e.kind == .threadExit { threadExit[ti] = e.time }
            if e.kind == .processExit { processExit[e.pid] = max(processExit[e.pid] ?? 0, e.time) }
        }
        var bound = [UInt64](repeating: end, count: keys.count)
        for ti in keys.indices {
            var b = end
            if let t = threadExit[ti] { b = t } else if let p = processExit[keys[ti].pid] { b = p }
            bound[ti] = max(b, lastTime[ti])
        }
        threads = keys.indices.sorted { keys[$0] < keys[$1] }.map { ti in
            ThreadInfo(key: keys[ti], label: ExportSupport.threadLabel(pid: keys[ti].pid, tid: keys[ti].tid, context), first: firstTime[ti], end: bound[ti])
        }

        // Waits end at the thread's next event; op slices are cut there too.
        var openWait = [TraceEvent?](repeating: nil, count: keys.count)
        var openHold = [[UInt64: TraceEvent]](repeating: [:], count: keys.count)
        var pendingOps = [[Int]](repeating: [], count: keys.count)
        var puts: [UInt64: (ThreadKey, UInt64, UInt64)] = [:]
        var flowID = 0
        var slices: [Slice] = []

        for (n, e) in events.enumerated() {
            let ti = eventThread[n]
            let k = keys[ti]
            // A wait ends at its own end event (the event table); what may happen inside it (a
            // condition wait re-taking its lock, …) keeps it open; anything else means the thread
            // went on, so the wait is over there too (a trace without its end event).
            if let w = openWait[ti], !w.kind.spec.inside.contains(e.kind) || EventSpec.ends(e.kind, wait: w.kind) {
                openWait[ti] = nil
                // Ended by a signal that killed the process, not by its own end: it never returned.
                // (Not any exit: a timeline's events may leave out the end event before it.)
                let died = e.kind == .processExit && e[.signal] != 0 && !EventSpec.ends(e.kind, wait: w.kind)
                slices.append(Slice(thread: k, start: w.time, end: max(w.time, e.time), kind: w.kind,
                                    category: .wait, object: w.object, unfinished: died, eventSeq: w.seq))
            }
            if !pendingOps[ti].isEmpty {
                for i in pendingOps[ti] { slices[i].end = min(slices[i].end, max(slices[i].start, e.time)) }
                pendingOps[ti].removeAll(keepingCapacity: true)
            }
            switch e.kind {
            case .lockAcquired, .lockOwnerDied:
                if openHold[ti][e.object] == nil { openHold[ti][e.object] = e }
            case .lockReleased:
                if e.a == 0 {
                    var owner = ti
                    if openHold[ti][e.object] == nil,
                       let other = keys.indices.filter({ openHold[$0][e.object] != nil }).min(by: { keys[$0] < keys[$1] }) {
                        owner = other   // released by a non-owner: the owner's hold ends here
                    }
                    if let h = openHold[owner].removeValue(forKey: e.object) {
                        slices.append(Slice(thread: keys[owner], start: h.time, end: max(h.time, e.time), kind: h.kind,
                                            category: .hold, object: e.object, unfinished: false, eventSeq: h.seq))
                    }
                }
            case .queuePut, .pipeSend, .queueGet, .pipeRecv:
                let isPut = e.kind == .queuePut || e.kind == .pipeSend
                let opEnd = min(e.time > UInt64.max - 1000 ? UInt64.max : e.time + 1000, bound[ti])  // (trace times can be anything)
                slices.append(Slice(thread: k, start: e.time, end: max(e.time, opEnd), kind: e.kind,
                                    category: .op, object: e.object, unfinished: false, eventSeq: e.seq))
                pendingOps[ti].append(slices.count - 1)
                if e.result == .ok && e.a != 0 {
                    if isPut {
                        puts[e.a] = (k, e.time, e.object)
                    } else if let p = puts.removeValue(forKey: e.a) {
                        flowID += 1
                        flows.append(Flow(id: flowID, from: p.0, fromTime: p.1, to: k, toTime: e.time, object: p.2))
                    }
                }
            default: break
            }
            if e.kind.isWait && openWait[ti] == nil { openWait[ti] = e }
        }
        let order = keys.indices.sorted { keys[$0] < keys[$1] }
        for ti in order {
            if let w = openWait[ti] {
                slices.append(Slice(thread: keys[ti], start: w.time, end: max(w.time, bound[ti]), kind: w.kind,
                                    category: .wait, object: w.object, unfinished: true, eventSeq: w.seq))
            }
        }
        for ti in order {
            for (obj, h) in openHold[ti].sorted(by: { $0.key < $1.key }) {
                slices.append(Slice(thread: keys[ti], start: h.time, end: max(h.time, bound[ti]), kind: h.kind,
                                    category: .hold, object: obj, unfinished: true, eventSeq: h.seq))
            }
        }
        var boundByKey: [ThreadKey: UInt64] = [:]
        for ti in keys.indices { boundByKey[keys[ti]] = bound[ti] }

        // Nesting per thread: sort by start, longer first, holds outside waits outside ops.
        func rank(_ c: Category) -> Int { c == .hold ? 0 : c == .wait ? 1 : 2 }
        slices.sort { a, b in
            if a.thread != b.thread { return a.thread < b.thread }
            if a.start != b.start { return a.start < b.start }
            if a.end != b.end { return a.end > b.end }
            if rank(a.category) != rank(b.category) { return rank(a.category) < rank(b.category) }
            return a.eventSeq < b.eventSeq
        }
        var stack: [Int] = []
        var current: ThreadKey?
        for i in slices.indices {
            if slices[i].thread != current { stack.removeAll(); current = slices[i].thread }
            while let top = stack.last, slices[top].end <= slices[i].start, slices[top].start < slices[i].start {
                stack.removeLast()
            }
            if let top = stack.last, slices[i].end > slices[top].end {
                slices[i].nested = false
            } else {
                stack.append(i)
            }
        }
        self.slices = slices

        // Finding markers: at the last evidence event, on its thread.
        for f in result.report.findings {
            if let last = f.evidence.max(by: { ($0.time, $0.seq) < ($1.time, $1.seq) }) {
                let k = ThreadKey(pid: last.pid, tid: last.tid)
                markers.append(Marker(thread: boundByKey[k] == nil ? nil : k, time: min(max(last.time, start), end), name: TimelineModel.markerName(f), finding: f))
            } else {
                markers.append(Marker(thread: nil, time: end, name: TimelineModel.markerName(f), finding: f))
            }
        }
    }
}
