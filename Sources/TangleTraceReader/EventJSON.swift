import TangleTraceFormat
/// Writes a decoded event back as one self-contained JSON line (every common field explicit:
/// `t`, `pid`, `tid`, `seq`, `k`, then `o`, `s`, arguments, `r`, `name` when not default).
/// What `tangle cat` prints.
public enum EventJSON {
    public static func write(_ e: TraceEvent, into out: inout ByteWriter) {
        out.ascii("{\"t\":")
        out.uint(e.time)
        out.ascii(",\"pid\":")
        out.int(Int64(e.pid))
        out.ascii(",\"tid\":")
        out.int(Int64(e.tid))
        out.ascii(",\"seq\":")
        out.uint(e.seq)
        out.ascii(",\"k\":")
        out.jsonString(e.kind.name)
        if e.object != 0 { out.ascii(",\"o\":"); out.uint(e.object) }
        if e.stack != 0 { out.ascii(",\"s\":"); out.uint(UInt64(e.stack)) }
        let keys = e.kind.argumentKeys
        if e.a != 0 { out.byte(44); out.jsonString(keys.a ?? "a"); out.byte(58); out.uint(e.a) }
        if e.b != 0 { out.byte(44); out.jsonString(keys.b ?? "b"); out.byte(58); out.uint(e.b) }
        if e.c != 0 { out.byte(44); out.jsonString(keys.c ?? "c"); out.byte(58); out.uint(e.c) }
        if e.result != .ok { out.ascii(",\"r\":"); out.jsonString(e.result.name) }
        if let t = e.text { out.ascii(",\"name\":"); out.jsonString(t) }
        out.ascii("}\n")
    }

    public static func string(_ e: TraceEvent) -> String {
        var w = ByteWriter(capacity: 256)
        write(e, into: &w)
        w.count -= 1
        return String(decoding: w.array, as: UTF8.self)
    }
}
