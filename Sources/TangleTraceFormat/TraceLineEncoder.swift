/// The one writer of trace lines (docs/trace-format.md). The recorder's file, `TraceCut`'s rewrite,
/// `tangle cat` (`EventJSON`) and the test fixtures all write through it, so each key and the
/// header's version are spelled here only. The reader's half is `EventLineParser` and
/// `LineTemplates` (TangleTraceReader).
///
/// Lines are built from pieces, each appending to a `ByteWriter`, because the recorder writes most
/// events as a `dt,tp` pair on a run line and must choose per event; the pieces the recorder calls
/// per event are inlinable (it lives in another module).
public enum TraceLineEncoder {
    // MARK: header and modules

    /// The header line (`header.schemaVersion` as `v`), the modules that fit `moduleBudget` bytes
    /// inside it; returns the modules left over, to be written as module lines (`module`).
    /// `ringClock` and `stackDepth`: what the recorder adds (absent from older files).
    @discardableResult
    public static func header(_ header: TraceHeader, ringClock: String? = nil, stackDepth: Int? = nil,
                              moduleBudget: Int = TraceLimits.maxHeaderModuleBytes,
                              into out: inout ByteWriter) -> [ModuleInfo] {
        out.ascii("{\"k\":\"header\",\"v\":")
        out.int(Int64(header.schemaVersion))
        out.ascii(",\"pid\":")
        out.int(Int64(header.pid))
        out.ascii(",\"ppid\":")
        out.int(Int64(header.ppid))
        out.ascii(",\"exe\":")
        out.jsonString(header.executable)
        out.ascii(",\"argv0\":")
        out.jsonString(header.argv0)
        out.ascii(",\"clock\":")
        out.jsonString(header.clock)
        if let ringClock {
            out.ascii(",\"ring_clock\":")
            out.jsonString(ringClock)
        }
        out.ascii(",\"boot\":")
        out.jsonString(header.bootID)
        out.ascii(",\"t\":")
        out.uint(header.startTime)
        out.ascii(",\"proc\":")
        out.uint(header.processObject)
        if let stackDepth {
            out.ascii(",\"stack_depth\":")
            out.uint(UInt64(stackDepth))
        }
        out.ascii(",\"modules\":[")
        var first = true
        var spill: [ModuleInfo] = []
        let start = out.count
        for m in header.modules {
            // A bounded header line: modules past the budget follow as module records.
            if out.count - start > moduleBudget { spill.append(m); continue }
            if !first { out.byte(44) }
            first = false
            moduleFields(m, into: &out)
        }
        out.ascii("]}\n")
        return spill
    }

    /// A module loaded after the header (or spilled from it): `{"k":"module","t":…,"module":{…}}`.
    public static func module(_ m: ModuleInfo, time: UInt64, into out: inout ByteWriter) {
        out.ascii("{\"k\":\"module\",\"t\":")
        out.uint(time)
        out.ascii(",\"module\":")
        moduleFields(m, into: &out)
        out.ascii("}\n")
    }

    static func moduleFields(_ m: ModuleInfo, into out: inout ByteWriter) {
        out.ascii("{\"path\":")
        out.jsonString(m.path)
        out.ascii(",\"build_id\":")
        out.jsonString(m.buildID)
        out.ascii(",\"bias\":")
        out.uint(m.bias)
        out.ascii(",\"lo\":")
        out.uint(m.low)
        out.ascii(",\"hi\":")
        out.uint(m.high)
        out.byte(125)
    }

    // MARK: stacks

    /// `{"k":"stack","pid":…,"id":…,"pcs":[`: the addresses follow, comma-separated, then `stackEnd`.
    public static func stackStart(pid: Int32, id: UInt32, into out: inout ByteWriter) {
        out.ascii("{\"k\":\"stack\",\"pid\":")
        out.int(Int64(pid))
        out.ascii(",\"id\":")
        out.uint(UInt64(id))
        out.ascii(",\"pcs\":[")
    }

    public static func stackEnd(into out: inout ByteWriter) { out.ascii("]}\n") }

    /// A whole stack line.
    public static func stack(pid: Int32, id: UInt32, pcs: [UInt64], into out: inout ByteWriter) {
        stackStart(pid: pid, id: id, into: &out)
        for (i, pc) in pcs.enumerated() {
            if i > 0 { out.byte(44) }
            out.uint(pc)
        }
        stackEnd(into: &out)
    }

    // MARK: run lines

    /// `{"k":"run","e":[`: `(dt, template)` pairs follow (`runPair`), then `runEnd`.
    @inlinable @inline(__always)
    public static func runStart(into out: inout ByteWriter) { out.ascii("{\"k\":\"run\",\"e\":[") }

    /// One pair of a run line; `first`: no comma before it.
    @inlinable @inline(__always)
    public static func runPair(dt: UInt64, template: Int, first: Bool, into out: inout ByteWriter) {
        if !first { out.byte(44) }
        out.uint(dt)
        out.byte(44)
        out.uint(UInt64(template))
    }

    @inlinable @inline(__always)
    public static func runEnd(into out: inout ByteWriter) { out.ascii("]}\n") }

    /// A whole run line of `pairs` (dt, template, dt, template, …).
    public static func run(pairs: [UInt64], into out: inout ByteWriter) {
        runStart(into: &out)
        for (i, v) in pairs.enumerated() {
            if i > 0 { out.byte(44) }
            out.uint(v)
        }
        runEnd(into: &out)
    }

    // MARK: event lines

    /// An event line's start: `{"dt":<t - last>` when time did not go backwards, else `{"t":<t>`.
    @inlinable @inline(__always)
    public static func time(_ t: UInt64, after last: UInt64, into out: inout ByteWriter) {
        if t >= last {
            out.ascii("{\"dt\":")
            out.uint(t &- last)
        } else {
            absoluteTime(t, into: &out)
        }
    }

    /// `{"t":<t>`: an event line's start with its absolute time.
    @inlinable @inline(__always)
    public static func absoluteTime(_ t: UInt64, into out: inout ByteWriter) {
        out.byte(123)
        timeKey(t, into: &out)
    }

    /// `"t":<t>`, the key alone (`TraceCut` puts it in place of a line's `dt`).
    @inlinable @inline(__always)
    public static func timeKey(_ t: UInt64, into out: inout ByteWriter) {
        out.ascii("\"t\":")
        out.uint(t)
    }

    /// `,"seq":N` (omitted by the recorder when it is the tid's previous seq + 1).
    @inlinable @inline(__always)
    public static func seq(_ seq: UInt64, into out: inout ByteWriter) {
        out.ascii(",\"seq\":")
        out.uint(seq)
    }

    /// `,"tp":N`: this line declares template N.
    @inlinable @inline(__always)
    public static func template(_ slot: Int, into out: inout ByteWriter) {
        out.ascii(",\"tp\":")
        out.uint(UInt64(slot))
    }

    /// `,"tid":…,"k":"<name>"` then `o`, `s` and the kind's argument keys, each only when non-zero:
    /// what every event line carries after its time (and seq). Reserves its own room.
    @inlinable @inline(__always)
    public static func fields(tid: Int32, kindRaw: UInt16, object: UInt64, stack: UInt32, a: UInt64, b: UInt64,
                              c: UInt64, kinds: KindPrefixTable = .shared, into out: inout ByteWriter) {
        out.reserve(256)
        let k = kinds.entry(kindRaw)
        let stride = KindPrefixTable.stride
        out.ascii(",\"tid\":")
        out.int(Int64(tid))
        out.unchecked(k + 1, Int(k[0]))       // ,"k":"<name>"
        if object != 0 { out.ascii(",\"o\":"); out.uint(object) }
        if stack != 0 { out.ascii(",\"s\":"); out.uint(UInt64(stack)) }
        if a != 0 { let e = k + stride; out.unchecked(e + 1, Int(e[0])); out.uint(a) }
        if b != 0 { let e = k + 2 * stride; out.unchecked(e + 1, Int(e[0])); out.uint(b) }
        if c != 0 { let e = k + 3 * stride; out.unchecked(e + 1, Int(e[0])); out.uint(c) }
    }

    /// `,"r":"<result>"` for a result other than `ok` (a raw value no reader knows: "error").
    public static func result(_ raw: UInt8, into out: inout ByteWriter) {
        guard raw != 0 else { return }
        out.ascii(",\"r\":")
        out.jsonString(WaitResult(rawValue: raw)?.name ?? "error")
    }

    /// `,"name":"…"`.
    public static func name(_ text: String, into out: inout ByteWriter) {
        out.ascii(",\"name\":")
        out.jsonString(text)
    }

    @inlinable @inline(__always)
    public static func lineEnd(into out: inout ByteWriter) { out.ascii("}\n") }

    /// A self-contained event line, every common field explicit (`t`, `pid`, `tid`, `seq`, `k`,
    /// then `o`, `s`, arguments, `r`, `name` when not default): what `tangle cat` prints and what
    /// fixtures write; the recorder's lines are the same keys, with `dt`, `seq` and `pid` left to
    /// the reader where they follow from the previous line or the header.
    public static func event(_ e: TraceEvent, into out: inout ByteWriter) {
        absoluteTime(e.time, into: &out)
        out.ascii(",\"pid\":")
        out.int(Int64(e.pid))
        seqFirstFields(e, into: &out)
    }

    /// `event` without `pid`, and with `dt` after `last` (a line of a file whose header names the pid).
    public static func event(_ e: TraceEvent, after last: UInt64, into out: inout ByteWriter) {
        time(e.time, after: last, into: &out)
        seqFirstFields(e, into: &out)
    }

    private static func seqFirstFields(_ e: TraceEvent, into out: inout ByteWriter) {
        seq(e.seq, into: &out)
        fields(tid: e.tid, kindRaw: e.kind.rawValue, object: e.object, stack: e.stack, a: e.a, b: e.b, c: e.c, into: &out)
        result(e.result.rawValue, into: &out)
        if let t = e.text { name(t, into: &out) }
        lineEnd(into: &out)
    }
}

/// Per event kind raw value (0..<count), four entries of `stride` bytes: `,"k":"<name>"`, then the
/// `,"<key>":` of a, b and c (`a`/`b`/`c` when the kind names none); each a length byte and the
/// bytes (formatting an event copies bytes: no String work per event).
public final class KindPrefixTable: @unchecked Sendable {
    public static let shared = KindPrefixTable()
    @usableFromInline static let stride = 64
    @usableFromInline let count: Int
    @usableFromInline let base: UnsafeMutablePointer<UInt8>

    public init() {
        var maxRaw = 0
        for k in EventKind.allCases { maxRaw = max(maxRaw, Int(k.rawValue)) }
        count = maxRaw + 2
        base = .allocate(capacity: count * 4 * KindPrefixTable.stride)
        base.initialize(repeating: 0, count: count * 4 * KindPrefixTable.stride)
        for raw in 0..<count {
            let kind = EventKind(rawValue: UInt16(raw))
            let keys: (a: String?, b: String?, c: String?) = kind?.argumentKeys ?? (nil, nil, nil)
            set(raw, 0, ",\"k\":\"" + (kind?.name ?? "unknown") + "\"")
            set(raw, 1, ",\"" + (keys.a ?? "a") + "\":")
            set(raw, 2, ",\"" + (keys.b ?? "b") + "\":")
            set(raw, 3, ",\"" + (keys.c ?? "c") + "\":")
        }
    }

    private func set(_ raw: Int, _ field: Int, _ text: String) {
        let bytes = Array(text.utf8)
        precondition(bytes.count < KindPrefixTable.stride, "event kind name too long")
        let p = base + (raw * 4 + field) * KindPrefixTable.stride
        p[0] = UInt8(bytes.count)
        for (i, c) in bytes.enumerated() { p[1 + i] = c }
    }

    /// The `,"k":` entry of `raw` (unknown raw values share the last, "unknown", row).
    @inlinable @inline(__always) func entry(_ raw: UInt16) -> UnsafePointer<UInt8> {
        let r = Int(raw) < count - 1 ? Int(raw) : count - 1
        return UnsafePointer(base + r * 4 * KindPrefixTable.stride)
    }
}
