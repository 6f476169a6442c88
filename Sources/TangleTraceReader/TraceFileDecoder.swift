import Glibc
import TangleTraceFormat

/// The semantic layer for one file: lines → header, stacks, modules and `TraceEvent`s. Restores
/// what the writer leaves out (pid from the header, `seq` when it is the previous one + 1, zero
/// arguments, and in schema 2 the absolute time of a `dt` line), skips and counts unknown kinds
/// and keys, reports invalid lines with their offset.
public final class TraceFileDecoder {
    public let raw: RawTraceFile
    public var path: String { raw.path }
    @exclusivity(unchecked) public private(set) var header: TraceHeader?
    /// Stack id → return addresses, for this file's process.
    @exclusivity(unchecked) public private(set) var stacks: [UInt32: [UInt64]] = [:]
    @exclusivity(unchecked) public private(set) var events: UInt64 = 0
    @exclusivity(unchecked) public private(set) var unknownKinds: [String: UInt64] = [:]
    @exclusivity(unchecked) public private(set) var unknownKeys: UInt64 = 0
    @exclusivity(unchecked) public private(set) var invalidLines: UInt64 = 0
    @exclusivity(unchecked) public private(set) var dropped: UInt64 = 0
    @exclusivity(unchecked) private var decodeProblems: [TraceProblem] = []
    @exclusivity(unchecked) private var lastSeq: [Int32: UInt64] = [:]
    // The last thread seen and its seq (saves the dictionary on runs of one thread's events).
    @exclusivity(unchecked) private var cachedTid: Int32 = 0
    @exclusivity(unchecked) private var cachedSeq: UInt64 = 0
    @exclusivity(unchecked) private var cachedValid = false
    private let kinds = KindTable.shared
    private let templates = LineTemplates()
    private let runTemplates = RunTemplates()
    /// The run line being read (`dt,tp` pairs from `runPos` to `runEnd`): its bytes are the
    /// current line's, valid until the next `raw.nextLine()`, or `runCopy`'s for a line the
    /// generic parser read.
    @exclusivity(unchecked) private var runActive = false
    @exclusivity(unchecked) private var runPos = UnsafePointer<UInt8>(bitPattern: 1)!
    @exclusivity(unchecked) private var runEnd = UnsafePointer<UInt8>(bitPattern: 1)!
    @exclusivity(unchecked) private var runCopy: UnsafeMutablePointer<UInt8>?
    @exclusivity(unchecked) private var runCopyCapacity = 0
    private let writer = TraceEventWriter()
    /// Where `next()` decodes into (uninitialized between calls).
    private let scratch = UnsafeMutablePointer<TraceEvent>.allocate(capacity: 1)
    @exclusivity(unchecked) private var pid: Int32 = 0
    @exclusivity(unchecked) private var hasHeader = false
    /// What a `dt` counts from: the time of the last valid event line (any kind but header, stack
    /// and module, unknown kinds included), at first the header's `t`.
    @exclusivity(unchecked) private var timeBase: UInt64 = 0
    /// Called when a stack record is read (the stream uses it to publish stacks as they come).
    @exclusivity(unchecked) var onStack: ((Int32, UInt32, [UInt64]) -> Void)?
    /// Called when a text-frame stack record is read (`frames`: file, line, function).
    @exclusivity(unchecked) var onTextStack: ((Int32, UInt32, [TextFrame]) -> Void)?

    /// Opens the file and reads its header. Throws when the file is not a trace at all (cannot be
    /// opened, not LZ4 / not JSON lines, or the first line is not a header).
    public init(path: String) throws {
        raw = try RawTraceFile(path: path)
        guard let line = raw.nextLine() else {
            // Nothing readable: an empty file (a writer that had not flushed its header yet) or
            // a file cut inside its first line. Not an error: it has no events.
            if raw.problems.isEmpty {
                decodeProblems.append(TraceProblem(kind: .empty, file: path, offset: 0, message: "empty file (no header yet)"))
            }
            return
        }
        guard let v = JSONParser.parse(line), v["k"]?.string == "header" else {
            throw TraceReadError(file: path, message: "not a Tangle trace: the first line (byte 0) is not a header record")
        }
        guard let h = TraceFileDecoder.header(from: v) else {
            throw TraceReadError(file: path, message: "invalid header record at byte 0 (missing v, pid or t)")
        }
        if h.schemaVersion > TraceHeader.currentSchemaVersion {
            decodeProblems.append(TraceProblem(kind: .invalidLine, file: path, offset: 0,
                message: "schema version \(h.schemaVersion) is newer than this reader's (\(TraceHeader.currentSchemaVersion)): reading what it knows"))
        }
        header = h
        pid = h.pid
        timeBase = h.startTime
        hasHeader = true
    }

    deinit {
        scratch.deallocate()
        runCopy?.deallocate()
    }

    public var problems: [TraceProblem] {
        var all = raw.problems + decodeProblems
        if invalidLines > 10 {
            all.append(TraceProblem(kind: .invalidLine, file: path, offset: 0, message: "\(invalidLines) invalid lines in all", count: invalidLines))
        }
        for (k, n) in unknownKinds.sorted(by: { $0.key < $1.key }) {
            all.append(TraceProblem(kind: .unknownKind, file: path, offset: 0, message: "\(n) events of unknown kind \"\(k)\" skipped", count: n))
        }
        if dropped > 0 {
            all.append(TraceProblem(kind: .dropped, file: path, offset: 0, message: "the recorder dropped \(dropped) events", count: dropped))
        }
        return all
    }

    static func header(from v: JSONValue) -> TraceHeader? {
        guard let ver = v["v"]?.int64, let pid = v["pid"]?.int64, let t = v["t"]?.uint64 else { return nil }
        var mods: [ModuleInfo] = []
        if case let .array(items)? = v["modules"] {
            for m in items { if let mi = module(from: m) { mods.append(mi) } }
        }
        return TraceHeader(
            schemaVersion: Int(ver), pid: Int32(truncatingIfNeeded: pid),
            ppid: Int32(truncatingIfNeeded: v["ppid"]?.int64 ?? 0),
            executable: v["exe"]?.string ?? "", argv0: v["argv0"]?.string ?? "",
            clock: v["clock"]?.string ?? "CLOCK_MONOTONIC", bootID: v["boot"]?.string ?? "",
            startTime: t, processObject: v["proc"]?.uint64 ?? 0, modules: mods)
    }

    static func module(from m: JSONValue) -> ModuleInfo? {
        guard let path = m["path"]?.string else { return nil }
        return ModuleInfo(path: path, buildID: m["build_id"]?.string ?? "", bias: m["bias"]?.uint64 ?? 0,
                          low: m["lo"]?.uint64 ?? 0, high: m["hi"]?.uint64 ?? 0)
    }

    private func invalid(_ message: String) {
        invalidLines += 1
        if invalidLines <= 10 {
            decodeProblems.append(TraceProblem(kind: .invalidLine, file: path, offset: raw.lineOffset,
                                               message: message + " (offset in the decompressed text)"))
        }
    }

    /// The next event of this file in file order, or nil at its end.
    public func next() -> TraceEvent? {
        nextEvent(into: scratch) ? scratch.move() : nil
    }

    /// Decodes the next event of this file into uninitialized `dst` (no copy on the way); false at
    /// the end (`dst` left uninitialized).
    func nextEvent(into dst: UnsafeMutablePointer<TraceEvent>) -> Bool {
        guard hasHeader else { return false }
        if runActive && nextRunEvent(into: dst) { return true }
        while let line = raw.nextLine() {
            if line.isEmpty { continue }
            let p = line.baseAddress!.assumingMemoryBound(to: UInt8.self)
            if isRunLine(p, line.count) {
                runPos = p + 16
                runEnd = p + line.count
                runActive = true
                if nextRunEvent(into: dst) { return true }
                continue
            }
            // A `{"dt":N,…` line whose text after N was decoded recently: reuse that decoding.
            var restHash: UInt64 = 0
            var rest = 0
            if let (delta, r) = leadingDelta(p, line.count), line.count - r <= LineTemplates.maxLength {
                rest = r
                restHash = LineTemplates.hash(p + r, line.count - r)
                if let t = templates.find(p + r, line.count - r, restHash) {
                    if t.pointee.declares >= 0 { runTemplates.declare(t.pointee.declares, t.pointee) }
                    event(from: t, delta: delta, into: dst)
                    return true
                }
            }
            var fields = EventLineFields()
            switch parseEventLine(p, line.count, &fields) {
            case .invalid:
                invalid("invalid JSON line")
                continue
            case .nested:
                if let e = nestedLine(line) {
                    dst.initialize(to: e)
                    return true
                }
                if runActive && nextRunEvent(into: dst) { return true }
                continue
            case .ok:
                break
            }
            let unknownBefore = unknownKeys
            if event(from: p, fields, into: dst) {
                if fields.hasTemplate && !runTemplates.declare(fields.template, dst, unknownKeys: unknownKeys &- unknownBefore) {
                    invalid("template number \(fields.template) out of range (0..<\(RunTemplates.capacity))")
                }
                if rest > 0 && fields.deltaCount == 1 && !fields.hasTime && !fields.deltaNegative {
                    let t = templates.slot(p + rest, line.count - rest, restHash)
                    t.pointee.kind = dst.pointee.kind
                    t.pointee.pid = dst.pointee.pid
                    t.pointee.tid = dst.pointee.tid
                    t.pointee.hasSeq = fields.hasSeq
                    t.pointee.seq = fields.seq
                    t.pointee.object = dst.pointee.object
                    t.pointee.stack = dst.pointee.stack
                    t.pointee.result = dst.pointee.result
                    t.pointee.a = dst.pointee.a
                    t.pointee.b = dst.pointee.b
                    t.pointee.c = dst.pointee.c
                    t.pointee.text = dst.pointee.text
                    t.pointee.unknownKeys = unknownKeys &- unknownBefore
                    t.pointee.declares = fields.hasTemplate && fields.template < UInt64(RunTemplates.capacity) ? Int(fields.template) : -1
                }
                return true
            }
        }
        return false
    }

    /// The next event of the open run line; false at its end. A malformed entry ends the line
    /// there (the events before it stay) and is reported; an entry whose template no line
    /// declared is reported and skipped, its `dt` still counted.
    private func nextRunEvent(into dst: UnsafeMutablePointer<TraceEvent>) -> Bool {
        while true {
            var p = runPos
            let end = runEnd
            @inline(__always) func skipSpace() { while p < end && (p.pointee == 32 || p.pointee == 9 || p.pointee == 13) { p += 1 } }
            @inline(__always) func number() -> UInt64? {
                var v: UInt64 = 0
                let start = p
                while p < end {
                    let d = p.pointee &- 48
                    if d > 9 { break }
                    v = v &* 10 &+ UInt64(d)
                    p += 1
                }
                return p > start && p - start <= 19 ? v : nil
            }
            skipSpace()
            if p < end && p.pointee == UInt8(ascii: "]") {
                p += 1
                skipSpace()
                let closed = p < end && p.pointee == UInt8(ascii: "}")
                if closed { p += 1; skipSpace() }
                if !closed || p != end { invalid("invalid run line (after its last entry)") }
                runActive = false
                return false
            }
            guard let dt = number() else { return endRun("invalid run line (an entry's dt)") }
            skipSpace()
            guard p < end && p.pointee == UInt8(ascii: ",") else { return endRun("invalid run line (an entry without its template)") }
            p += 1
            skipSpace()
            guard let tp = number() else { return endRun("invalid run line (an entry's template)") }
            skipSpace()
            if p < end && p.pointee == UInt8(ascii: ",") {
                p += 1
            } else if !(p < end && p.pointee == UInt8(ascii: "]")) {
                return endRun("invalid run line (cut, or no ',' between entries)")
            }
            runPos = p
            guard let t = runTemplates.find(tp) else {
                timeBase &+= dt
                invalid("a run entry refers to template \(tp), which no line declared")
                continue
            }
            if let name = t.pointee.unknownKind {
                timeBase &+= dt
                unknownKinds[name, default: 0] += 1
                continue
            }
            event(from: t, delta: dt, into: dst)
            return true
        }
    }

    private func endRun(_ message: String) -> Bool {
        invalid(message)
        runActive = false
        return false
    }

    /// Starts reading a run line the fast parser declined (spaces, a key order of its own): its
    /// entries are copied in the writer's form, the `e` array's numbers two by two.
    private func startRun(_ v: JSONValue) {
        guard case let .array(items)? = v["e"] else { invalid("a run line without its \"e\" array"); return }
        var text = ""
        for (i, item) in items.enumerated() {
            guard let n = item.uint64 else { invalid("invalid run line (entry \(i / 2) is not a number)"); break }
            if i > 0 { text += "," }
            text += String(n)
        }
        if items.count % 2 != 0 { text += ",x" }  // (reported as a malformed entry at its place)
        text += "]}"
        let bytes = Array(text.utf8)
        if runCopyCapacity < bytes.count {
            runCopy?.deallocate()
            runCopy = .allocate(capacity: bytes.count)
            runCopyCapacity = bytes.count
        }
        runCopy!.update(from: bytes, count: bytes.count)
        runPos = UnsafePointer(runCopy!)
        runEnd = runPos + bytes.count
        runActive = true
    }

    /// `event(from:into:)` for a line whose text after `{"dt":N` is that of template `t`.
    @inline(__always) private func event(from t: UnsafeMutablePointer<LineTemplate>, delta: UInt64, into dst: UnsafeMutablePointer<TraceEvent>) {
        let time = timeBase &+ delta
        timeBase = time
        let seq = restoreSeq(t.pointee.tid, t.pointee.hasSeq ? t.pointee.seq : nil)
        unknownKeys &+= t.pointee.unknownKeys
        if t.pointee.kind == .dropped { dropped &+= t.pointee.a }
        events += 1
        writer.initialize(dst, time: time, pid: t.pointee.pid, tid: t.pointee.tid, seq: seq, kind: t.pointee.kind,
                          object: t.pointee.object, stack: t.pointee.stack, result: t.pointee.result,
                          a: t.pointee.a, b: t.pointee.b, c: t.pointee.c, text: t.pointee.text)
    }

    /// The seq of an event of `tid` without an explicit one: the previous + 1, or 0.
    @inline(__always) private func restoreSeq(_ tid: Int32, _ explicit: UInt64?) -> UInt64 {
        if !cachedValid || cachedTid != tid {
            if cachedValid { lastSeq[cachedTid] = cachedSeq }
            cachedTid = tid
            cachedValid = true
            if let explicit {
                cachedSeq = explicit
            } else {
                cachedSeq = lastSeq[tid].map { $0 &+ 1 } ?? 0
            }
            return cachedSeq
        }
        cachedSeq = explicit ?? (cachedSeq &+ 1)
        return cachedSeq
    }

    /// The line's absolute time: `t`, else the base + `dt` (nil: neither, or a negative `dt`).
    @inline(__always) private func lineTime(_ f: EventLineFields) -> UInt64? {
        if f.hasTime { return f.time }
        if f.hasDelta && !f.deltaNegative { return timeBase &+ f.delta }
        return nil
    }

    private func event(from p: UnsafePointer<UInt8>, _ f: EventLineFields, into dst: UnsafeMutablePointer<TraceEvent>) -> Bool {
        guard f.kindLen >= 0 else { invalid("a line without \"k\""); return false }
        let kp = p + f.kindStart
        guard let kind = kinds.lookup(kp, f.kindLen) else {
            if bytesEqual(kp, f.kindLen, "header") { invalid("a second header"); return false }
            if bytesEqual(kp, f.kindLen, "blk") { return false }  // a block marker (checked by the raw layer)
            // An event line of a kind this reader does not know still moves the dt base.
            if !bytesEqual(kp, f.kindLen, "stack") && !bytesEqual(kp, f.kindLen, "module"), let t = lineTime(f) {
                timeBase = t
            }
            let name = String(decoding: UnsafeBufferPointer(start: kp, count: f.kindLen), as: UTF8.self)
            unknownKinds[name, default: 0] += 1
            if f.hasTemplate && !runTemplates.declareUnknown(f.template, kind: name) {
                invalid("template number \(f.template) out of range (0..<\(RunTemplates.capacity))")
            }
            return false
        }
        guard let time = lineTime(f), f.hasTid else { invalid("an event without \"t\" (or \"dt\") or \"tid\""); return false }
        timeBase = time
        let tid = Int32(truncatingIfNeeded: f.tid)
        let seq = restoreSeq(tid, f.hasSeq ? f.seq : nil)
        var result = WaitResult.ok
        if f.resultLen >= 0 {
            let rp = p + f.resultStart
            let name = String(decoding: UnsafeBufferPointer(start: rp, count: f.resultLen), as: UTF8.self)
            result = WaitResult(name: name) ?? .error
        }
        var a: UInt64 = 0, b: UInt64 = 0, c: UInt64 = 0
        var j = 0
        while j < f.extraCount {
            let ks: Int, n: Int, v: UInt64
            switch j {
            case 0: ks = f.extraKeyStart.0; n = f.extraKeyLen.0; v = f.extraValue.0
            case 1: ks = f.extraKeyStart.1; n = f.extraKeyLen.1; v = f.extraValue.1
            case 2: ks = f.extraKeyStart.2; n = f.extraKeyLen.2; v = f.extraValue.2
            case 3: ks = f.extraKeyStart.3; n = f.extraKeyLen.3; v = f.extraValue.3
            case 4: ks = f.extraKeyStart.4; n = f.extraKeyLen.4; v = f.extraValue.4
            default: ks = f.extraKeyStart.5; n = f.extraKeyLen.5; v = f.extraValue.5
            }
            let kp = p + ks
            if kinds.isKey(kind, 0, kp, n) || bytesEqual(kp, n, "a") { a = v }
            else if kinds.isKey(kind, 1, kp, n) || bytesEqual(kp, n, "b") { b = v }
            else if kinds.isKey(kind, 2, kp, n) || bytesEqual(kp, n, "c") { c = v }
            else { unknownKeys += 1 }
            j += 1
        }
        unknownKeys += UInt64(f.ignoredKeys)
        var text: String?
        if f.nameLen >= 0 {
            let np = p + f.nameStart
            if f.nameEscaped {
                var parser = JSONParser(UnsafeRawBufferPointer(start: np - 1, count: f.nameLen + 2))
                text = parser.string()
            } else {
                text = String(decoding: UnsafeBufferPointer(start: np, count: f.nameLen), as: UTF8.self)
            }
        }
        if kind == .dropped { dropped &+= a }
        events += 1
        writer.initialize(dst, time: time, pid: f.hasPid ? Int32(truncatingIfNeeded: f.pid) : pid, tid: tid, seq: seq,
                          kind: kind, object: f.object, stack: UInt32(truncatingIfNeeded: f.stack), result: result,
                          a: a, b: b, c: c, text: text)
        return true
    }

    /// `lineTime` for a generically parsed line.
    private func nestedTime(_ v: JSONValue) -> UInt64? {
        if let t = v["t"]?.uint64 { return t }
        guard let d = v["dt"] else { return nil }
        switch d {
        case let .int(x) where x < 0: return nil
        case let .double(x) where x < 0: return nil
        default: return d.uint64.map { timeBase &+ $0 }
        }
    }

    /// Stack and module records, and any event line the fast parser declined.
    private func nestedLine(_ line: UnsafeRawBufferPointer) -> TraceEvent? {
        guard let v = JSONParser.parse(line), case .object = v else {
            invalid("invalid JSON line")
            return nil
        }
        let k = v["k"]?.string
        if k == "stack" {
            if let id = v["id"]?.uint64, let frames = TextFrame.frames(of: v) {
                let pid = v["pid"]?.int64.map { Int32(truncatingIfNeeded: $0) } ?? self.pid
                onTextStack?(pid, UInt32(truncatingIfNeeded: id), frames)
                return nil
            }
            guard let id = v["id"]?.uint64, case let .array(items)? = v["pcs"] else {
                invalid("a stack record without id or pcs")
                return nil
            }
            let pcs = items.compactMap(\.uint64)
            stacks[UInt32(truncatingIfNeeded: id)] = pcs
            let pid = v["pid"]?.int64.map { Int32(truncatingIfNeeded: $0) } ?? self.pid
            onStack?(pid, UInt32(truncatingIfNeeded: id), pcs)
            return nil
        }
        if k == "module" {
            if let m = v["module"].flatMap(TraceFileDecoder.module(from:)) {
                self.header?.modules.append(m)
            } else {
                invalid("a module record without a module")
            }
            return nil
        }
        if k == "header" { invalid("a second header"); return nil }
        if k == "run" { startRun(v); return nil }
        if k == "blk" { return nil }
        guard let k else { invalid("a line without \"k\""); return nil }
        let time = nestedTime(v)
        guard let kind = EventKind(name: k) else {
            if let time { timeBase = time }
            unknownKinds[k, default: 0] += 1
            if let tp = v["tp"]?.uint64, !runTemplates.declareUnknown(tp, kind: k) {
                invalid("template number \(tp) out of range (0..<\(RunTemplates.capacity))")
            }
            return nil
        }
        guard let t = time, let tidv = v["tid"]?.int64 else { invalid("an event without \"t\" (or \"dt\") or \"tid\""); return nil }
        timeBase = t
        let tid = Int32(truncatingIfNeeded: tidv)
        let seq = restoreSeq(tid, v["seq"]?.uint64)
        var e = TraceEvent(time: t, pid: v["pid"]?.int64.map { Int32(truncatingIfNeeded: $0) } ?? pid, tid: tid,
                           seq: seq, kind: kind, object: v["o"]?.uint64 ?? 0,
                           stack: UInt32(truncatingIfNeeded: v["s"]?.uint64 ?? 0))
        if let r = v["r"]?.string { e.result = WaitResult(name: r) ?? .error }
        let keys = kind.argumentKeys
        e.a = (keys.a.flatMap { v[$0]?.uint64 }) ?? v["a"]?.uint64 ?? 0
        e.b = (keys.b.flatMap { v[$0]?.uint64 }) ?? v["b"]?.uint64 ?? 0
        e.c = (keys.c.flatMap { v[$0]?.uint64 }) ?? v["c"]?.uint64 ?? 0
        e.text = v["name"]?.string
        if kind == .dropped { dropped &+= e.a }
        events += 1
        if let tp = v["tp"]?.uint64 {
            let declared = withUnsafePointer(to: e) { runTemplates.declare(tp, $0, unknownKeys: 0) }
            if !declared { invalid("template number \(tp) out of range (0..<\(RunTemplates.capacity))") }
        }
        return e
    }
}
