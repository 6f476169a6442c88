import Glibc

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
    private var pid: Int32 = 0
    private var hasHeader = false
    /// What a `dt` counts from: the time of the last valid event line (any kind but header, stack
    /// and module, unknown kinds included), at first the header's `t`.
    @exclusivity(unchecked) private var timeBase: UInt64 = 0
    /// Called when a stack record is read (the stream uses it to publish stacks as they come).
    var onStack: ((Int32, UInt32, [UInt64]) -> Void)?

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
        guard hasHeader else { return nil }
        while let line = raw.nextLine() {
            if line.isEmpty { continue }
            let p = line.baseAddress!.assumingMemoryBound(to: UInt8.self)
            var fields = EventLineFields()
            switch parseEventLine(p, line.count, &fields) {
            case .invalid:
                invalid("invalid JSON line")
                continue
            case .nested:
                if let e = nestedLine(line) { return e }
                continue
            case .ok:
                break
            }
            if let e = event(from: p, fields) { return e }
        }
        return nil
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

    private func event(from p: UnsafePointer<UInt8>, _ f: EventLineFields) -> TraceEvent? {
        guard f.kindLen >= 0 else { invalid("a line without \"k\""); return nil }
        let kp = p + f.kindStart
        guard let kind = kinds.lookup(kp, f.kindLen) else {
            if bytesEqual(kp, f.kindLen, "header") { invalid("a second header"); return nil }
            // An event line of a kind this reader does not know still moves the dt base.
            if !bytesEqual(kp, f.kindLen, "stack") && !bytesEqual(kp, f.kindLen, "module"), let t = lineTime(f) {
                timeBase = t
            }
            let name = String(decoding: UnsafeBufferPointer(start: kp, count: f.kindLen), as: UTF8.self)
            unknownKinds[name, default: 0] += 1
            return nil
        }
        guard let time = lineTime(f), f.hasTid else { invalid("an event without \"t\" (or \"dt\") or \"tid\""); return nil }
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
        return TraceEvent(time: time, pid: f.hasPid ? Int32(truncatingIfNeeded: f.pid) : pid, tid: tid, seq: seq,
                          kind: kind, object: f.object, stack: UInt32(truncatingIfNeeded: f.stack), result: result,
                          a: a, b: b, c: c, text: text)
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
        guard let k else { invalid("a line without \"k\""); return nil }
        let time = nestedTime(v)
        guard let kind = EventKind(name: k) else {
            if let time { timeBase = time }
            unknownKinds[k, default: 0] += 1
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
        return e
    }
}
