import Foundation
import TangleTraceFormat
@testable import TangleAnalysis

/// A small generator DSL for hand-made traces (like Go's internal/trace testdata generators):
/// every call appends one event at the next tick of a global clock, with per-thread sequence numbers,
/// so the order of calls is the merged order of the trace.
final class TraceBuilder {
    var events: [TraceEvent] = []
    var headers: [TraceHeader] = []
    var stacks: [(pid: Int32, id: UInt32, pcs: [UInt64])] = []
    var time: UInt64
    private var seqs: [UInt64: UInt64] = [:]
    private var counters: [Int32: UInt64] = [:]
    private var msgCounter: UInt64 = 0
    /// Added to every pid (to check that fingerprints do not depend on pids).
    let pidBase: Int32

    init(pidBase: Int32 = 0, startTime: UInt64 = 1_000_000_000) {
        self.pidBase = pidBase
        self.time = startTime
    }

    func pid(_ p: Int32) -> Int32 { p + pidBase }

    /// A new object id in the scheme `(pid << 28) | counter`.
    func newObject(_ pid: Int32) -> UInt64 {
        let n = (counters[pid] ?? 0) + 1
        counters[pid] = n
        return (UInt64(UInt32(bitPattern: pid)) << 28) | n
    }

    func newMessage() -> UInt64 {
        msgCounter += 1
        return msgCounter
    }

    /// Advance the clock (e.g. to make a child stay a zombie for a while).
    func sleep(_ ns: UInt64) { time += ns }

    @discardableResult
    func ev(_ pid: Int32, _ tid: Int32?, _ kind: EventKind, o: UInt64 = 0, a: UInt64 = 0, b: UInt64 = 0,
            c: UInt64 = 0, r: WaitResult = .ok, text: String? = nil, stack: UInt32 = 0) -> TraceEvent {
        time += 1000
        let tid = tid ?? pid
        let key = TraceModel.threadKey(pid, tid)
        let seq = seqs[key] ?? 0
        seqs[key] = seq + 1
        let e = TraceEvent(time: time, pid: pid, tid: tid, seq: seq, kind: kind, object: o, stack: stack, result: r,
                           a: a, b: b, c: c, text: text)
        events.append(e)
        return e
    }

    /// `ev` on the process's main thread.
    @discardableResult
    func ev(_ pid: Int32, _ kind: EventKind, o: UInt64 = 0, a: UInt64 = 0, b: UInt64 = 0,
            c: UInt64 = 0, r: WaitResult = .ok, text: String? = nil, stack: UInt32 = 0) -> TraceEvent {
        ev(pid, pid, kind, o: o, a: a, b: b, c: c, r: r, text: text, stack: stack)
    }

    func acquire(_ pid: Int32, _ l: UInt64, depth: UInt64 = 1, stack: UInt32 = 0) {
        acquire(pid, pid, l, depth: depth, stack: stack)
    }

    func release(_ pid: Int32, _ l: UInt64, depth: UInt64 = 0, owner: UInt64 = 0) {
        release(pid, pid, l, depth: depth, owner: owner)
    }

    @discardableResult
    func put(_ pid: Int32, _ q: UInt64, stack: UInt32 = 0) -> UInt64 { put(pid, pid, q, stack: stack) }

    func get(_ pid: Int32, _ q: UInt64, _ m: UInt64) { get(pid, pid, q, m) }

    // MARK: Processes and threads

    /// A root process: header + proc.start.
    @discardableResult
    func root(_ p: Int32, name: String? = nil) -> Int32 {
        let pid = pid(p)
        headers.append(TraceHeader(pid: pid, ppid: 999_999, executable: "/bin/app", argv0: "app", bootID: "boot", startTime: time))
        ev(pid, .processStart, o: 0, a: 999_999, text: name)
        return pid
    }

    /// `parent` spawns `child` (already offset pids), which writes its header and proc.start.
    @discardableResult
    func spawn(_ parent: Int32, _ child: Int32, name: String? = nil, tid: Int32? = nil, fork: Bool = false,
               start: Bool = true) -> UInt64 {
        let obj = newObject(parent)
        ev(parent, tid, .processSpawn, o: obj, a: UInt64(child), b: fork ? 1 : 0, text: name)
        if start {
            headers.append(TraceHeader(pid: child, ppid: parent, executable: "/bin/app", argv0: "app", bootID: "boot",
                                       startTime: time, processObject: obj))
            ev(child, .processStart, o: obj, a: UInt64(parent), b: fork ? 1 : 0, text: name)
        }
        return obj
    }

    func exit(_ pid: Int32, status: UInt64 = 0, signal: UInt64 = 0) {
        ev(pid, .processExit, a: status, b: signal)
    }

    func join(_ parent: Int32, _ child: Int32, obj: UInt64, tid: Int32? = nil, status: UInt64 = 0, signal: UInt64 = 0) {
        ev(parent, tid, .processJoinWait, o: obj, a: UInt64(child))
        ev(parent, tid, .processJoinDone, o: obj, a: UInt64(child), b: status, c: signal)
    }

    /// A new thread `tid` of `pid`, started by `parent` (tid).
    @discardableResult
    func thread(_ pid: Int32, _ tid: Int32, parent: Int32? = nil, name: String? = nil) -> UInt64 {
        let obj = newObject(pid)
        ev(pid, tid, .threadStart, o: obj, a: UInt64(parent ?? pid), text: name)
        return obj
    }

    /// Spawns process 2 of `parent`, named `name`, holding a handle on `object`.
    func child(of parent: Int32, _ name: String, attached object: UInt64, type: ObjectType, end: UInt64 = 0) -> Int32 {
        let child = pid(2)
        _ = spawn(parent, child, name: name)
        attach(child, object, type: type, end: end)
        return child
    }

    func threadExit(_ pid: Int32, _ tid: Int32, obj: UInt64) { ev(pid, tid, .threadExit, o: obj) }

    func threadJoin(_ pid: Int32, _ tid: Int32? = nil, obj: UInt64) {
        ev(pid, tid, .threadJoinWait, o: obj)
        ev(pid, tid, .threadJoinDone, o: obj)
    }

    // MARK: Locks

    func lock(_ pid: Int32, _ name: String, type: LockType = .lock, value: UInt64 = 1) -> UInt64 {
        let o = newObject(pid)
        ev(pid, .lockNew, o: o, a: type.rawValue, b: value, text: name)
        return o
    }

    func acquire(_ pid: Int32, _ tid: Int32?, _ l: UInt64, depth: UInt64 = 1, stack: UInt32 = 0) {
        ev(pid, tid, .lockAcquired, o: l, a: depth, stack: stack)
    }

    /// Takes `outer`, then `inner` inside it, and releases both (one lock-order edge outer → inner).
    func nested(_ pid: Int32, _ tid: Int32?, _ outer: UInt64, _ inner: UInt64) {
        acquire(pid, tid, outer); acquire(pid, tid, inner); release(pid, tid, inner); release(pid, tid, outer)
    }

    func release(_ pid: Int32, _ tid: Int32?, _ l: UInt64, depth: UInt64 = 0, owner: UInt64 = 0) {
        ev(pid, tid, .lockReleased, o: l, a: depth, b: owner)
    }

    func attach(_ pid: Int32, _ o: UInt64, type: ObjectType, end: UInt64 = 0) {
        ev(pid, .handleAttach, o: o, a: type.rawValue, c: end)
    }

    // MARK: Queues

    func queue(_ pid: Int32, _ name: String, max: UInt64 = 0, joinable: Bool = false) -> UInt64 {
        let o = newObject(pid)
        ev(pid, .queueNew, o: o, a: max, b: joinable ? 1 : 0, text: name)
        return o
    }

    @discardableResult
    func put(_ pid: Int32, _ tid: Int32?, _ q: UInt64, stack: UInt32 = 0) -> UInt64 {
        let m = newMessage()
        ev(pid, tid, .queuePut, o: q, a: m, b: 8, stack: stack)
        return m
    }

    func get(_ pid: Int32, _ tid: Int32?, _ q: UInt64, _ m: UInt64) {
        ev(pid, tid, .queueGet, o: q, a: m, b: 8)
    }

    // MARK: Running the analysis

    func session(_ options: AnalysisOptions = AnalysisOptions()) -> AnalysisSession {
        let s = AnalysisSession(options: options)
        for h in headers { s.addHeader(h, file: "\(h.pid)-\(h.startTime).jsonl") }
        for st in stacks { s.addStack(pid: st.pid, id: st.id, pcs: st.pcs) }
        s.consume(events)
        return s
    }

    func analyze(_ options: AnalysisOptions = AnalysisOptions()) -> Report {
        session(options).finish().report
    }
}

extension Report {
    func kinds() -> [FindingKind] { findings.map(\.kind) }
    func count(_ k: FindingKind) -> Int { findings.filter { $0.kind == k }.count }
    func first(_ k: FindingKind) -> Finding? { findings.first { $0.kind == k } }
}

extension TraceBuilder {
    /// Writes the trace as plain `.jsonl` files, one per process (`<pid>-<start>.jsonl`), the way the
    /// recorder lays them out; returns the directory. `skip` leaves a process's file out; `cutLast`
    /// cuts that many bytes off the end of a process's file (a truncated write).
    func writeJSONL(to dir: String, skip: Set<Int32> = [], cut: [Int32: Int] = [:]) throws -> String {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for h in headers where !skip.contains(h.pid) {
            // Through the recorder's encoder: the fixture's lines are the format's, not a copy of it.
            var out = ByteWriter()
            var header = h
            header.schemaVersion = TraceHeader.selfContainedSchemaVersion
            TraceLineEncoder.header(header, into: &out)
            for st in stacks where st.pid == h.pid { TraceLineEncoder.stack(pid: st.pid, id: st.id, pcs: st.pcs, into: &out) }
            for e in events where e.pid == h.pid { TraceLineEncoder.event(e, into: &out) }
            var data = Data(out.array)
            if let n = cut[h.pid] { data = data.prefix(max(0, data.count - n)) }
            try data.write(to: URL(fileURLWithPath: "\(dir)/\(h.pid)-\(h.startTime).jsonl"))
        }
        return dir
    }
}

extension TraceBuilder {
    /// Writes the trace as `.jsonl.lz4` files compressed by the `lz4` tool at `lz4`; the file of
    /// each process in `cut` loses its end mark and content checksum (a writer killed after its
    /// last flush). Returns the paths of the cut files.
    @discardableResult
    func writeLZ4(to dir: String, lz4: String, cut: Set<Int32> = []) throws -> [String] {
        _ = try writeJSONL(to: dir)
        var cutFiles: [String] = []
        for name in try FileManager.default.contentsOfDirectory(atPath: dir) where name.hasSuffix(".jsonl") {
            let plain = dir + "/" + name
            let compressed = try ExportTestSupport.run(lz4, ["-q", "-f", plain, plain + ".lz4"])
            guard compressed.status == 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: compressed.stderr]) }
            try FileManager.default.removeItem(atPath: plain)
            guard cut.contains(where: { name.hasPrefix("\($0)-") }) else { continue }
            let data = try Data(contentsOf: URL(fileURLWithPath: plain + ".lz4"))
            try data.prefix(data.count - 8).write(to: URL(fileURLWithPath: plain + ".lz4"))
            cutFiles.append(plain + ".lz4")
        }
        return cutFiles
    }
}
