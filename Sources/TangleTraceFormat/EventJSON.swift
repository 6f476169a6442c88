/// A decoded event written back as one self-contained JSON line (`TraceLineEncoder.event`: every
/// common field explicit). What `tangle cat` prints; the name `tangle cat` and earlier users know.
public enum EventJSON {
    public static func write(_ e: TraceEvent, into out: inout ByteWriter) {
        TraceLineEncoder.event(e, into: &out)
    }

    /// The line without its newline.
    public static func string(_ e: TraceEvent) -> String {
        var w = ByteWriter(capacity: 256)
        write(e, into: &w)
        w.count -= 1
        return String(decoding: w.array, as: UTF8.self)
    }
}
