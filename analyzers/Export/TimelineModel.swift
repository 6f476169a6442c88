import Foundation
import TangleTrace

/// The timeline the Perfetto and HTML exporters draw: per thread, lock holds (acquired → released)
/// and waits (`*-wait` → the thread's next event, which is the done event since a blocked thread
/// records nothing), short "op" slices for message put/get (so flow arrows have a slice to bind
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
        var name: String
        var category: String   // "hold", "wait", "op"
        var object: UInt64
        var unfinished: Bool
        var nested = true
        var eventSeq: UInt64
    }

    struct Flow {
        var id: Int
        var from: ThreadKey
        var fromTime: UInt64
        var to: ThreadKey
        var toTime: UInt64
        var name: String
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
    var threads: [ThreadInfo] = []
    var slices: [Slice] = []
    var flows: [Flow] = []
    var markers: [Marker] = []

    init(result: AnalysisResult) {
        let context = result.context
        let events = context.events
        guard let first = events.first else {
            markers = result.report.findings.map { Marker(thread: nil, time: 0, name: "\($0.kind.rawValue): \($0.title)", finding: $0) }
            return
        }
        start = events.reduce(first.time) { min($0, $1.time) }
        end = events.reduce(first.time) { max($0, $1.time) }

        // Thread bounds.
        var firstTime: [ThreadKey: UInt64] = [:], lastTime: [ThreadKey: UInt64] = [:]
        var threadExit: [ThreadKey: UInt64] = [:], processExit: [Int32: UInt64] = [:]
        for e in events {
            let k = ThreadKey(pid: e.pid, tid: e.tid)
            if firstTime[k] == nil { firstTime[k] = e.time }
            lastTime[k] = max(lastTime[k] ?? 0, e.time)
            if e.kind == .threadExit { threadExit[k] = e.time }
            if e.kind == .processExit { processExit[e.pid] = max(processExit[e.pid] ?? 0, e.time) }
        }
        var bound: [ThreadKey: UInt64] = [:]
        for (k, f) in firstTime {
            var b = end
            if let t = threadExit[k] { b = t } else if let p = processExit[k.pid] { b = p }
            b = max(b, lastTime[k] ?? f)
            bound[k] = b
        }
        threads = firstTime.keys.sorted().map { k in
            ThreadInfo(key: k, label: ExportSupport.threadLabel(pid: k.pid, tid: k.tid, context), first: firstTime[k]!, end: bound[k]!)
        }

        // Next event time per thread, to end waits and size op slices.
        var openWait: [ThreadKey: TraceEvent] = [:]
        var openHold: [ThreadKey: [UInt64: TraceEvent]] = [:]
        var pendingOps: [ThreadKey: [Int]] = [:]   // op slices waiting for the thread's next event
        var puts: [UInt64: (ThreadKey, UInt64, String)] = [:]
        var flowID = 0
        var slices: [Slice] = []

        func label(_ prefix: String, _ e: TraceEvent) -> String {
            let obj = ExportSupport.objectLabel(e.object, context)
            return obj.isEmpty ? prefix : "\(prefix) \(obj)"
        }

        for e in events {
            let k = ThreadKey(pid: e.pid, tid: e.tid)
            if let w = openWait.removeValue(forKey: k) {
                slices.append(Slice(thread: k, start: w.time, end: max(w.time, e.time), name: label("wait \(w.kind.name)", w),
                                    category: "wait", object: w.object, unfinished: false, eventSeq: w.seq))
            }
            if let ops = pendingOps.removeValue(forKey: k) {
                for i in ops { slices[i].end = min(slices[i].end, max(slices[i].start, e.time)) }
            }
            switch e.kind {
            case .lockAcquired, .lockOwnerDied:
                if openHold[k]?[e.object] == nil { openHold[k, default: [:]][e.object] = e }
            case .lockReleased:
                if e.a == 0 {
                    var owner = k
                    if openHold[k]?[e.object] == nil, let other = openHold.keys.sorted().first(where: { openHold[$0]?[e.object] != nil }) {
                        owner = other   // released by a non-owner: the owner's hold ends here
                    }
                    if let h = openHold[owner]?.removeValue(forKey: e.object) {
                        slices.append(Slice(thread: owner, start: h.time, end: max(h.time, e.time), name: label("hold", h),
                                            category: "hold", object: e.object, unfinished: false, eventSeq: h.seq))
                    }
                }
            case .queuePut, .pipeSend, .queueGet, .pipeRecv:
                let isPut = e.kind == .queuePut || e.kind == .pipeSend
                let opEnd = min(e.time + 1000, bound[k] ?? end)
                slices.append(Slice(thread: k, start: e.time, end: max(e.time, opEnd), name: label(isPut ? (e.kind == .queuePut ? "put" : "send") : (e.kind == .queueGet ? "get" : "recv"), e),
                                    category: "op", object: e.object, unfinished: false, eventSeq: e.seq))
                pendingOps[k, default: []].append(slices.count - 1)
                if e.result == .ok && e.a != 0 {
                    if isPut {
                        puts[e.a] = (k, e.time, label("message", e))
                    } else if let p = puts.removeValue(forKey: e.a) {
                        flowID += 1
                        flows.append(Flow(id: flowID, from: p.0, fromTime: p.1, to: k, toTime: e.time, name: p.2))
                    }
                }
            default: break
            }
            if e.kind.isWait { openWait[k] = e }
        }
        for (k, w) in openWait.sorted(by: { $0.key < $1.key }) {
            let b = bound[k] ?? end
            slices.append(Slice(thread: k, start: w.time, end: max(w.time, b), name: label("wait \(w.kind.name)", w) + " (never returned)",
                                category: "wait", object: w.object, unfinished: true, eventSeq: w.seq))
        }
        for k in openHold.keys.sorted() {
            for (obj, h) in openHold[k]!.sorted(by: { $0.key < $1.key }) {
                let b = bound[k] ?? end
                slices.append(Slice(thread: k, start: h.time, end: max(h.time, b), name: label("hold", h) + " (held at end)",
                                    category: "hold", object: obj, unfinished: true, eventSeq: h.seq))
            }
        }

        // Nesting per thread: sort by start, longer first, holds outside waits outside ops.
        func rank(_ c: String) -> Int { c == "hold" ? 0 : c == "wait" ? 1 : 2 }
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
                markers.append(Marker(thread: bound[k] == nil ? nil : k, time: min(max(last.time, start), end), name: "\(f.kind.rawValue): \(f.title)", finding: f))
            } else {
                markers.append(Marker(thread: nil, time: end, name: "\(f.kind.rawValue): \(f.title)", finding: f))
            }
        }
    }
}
