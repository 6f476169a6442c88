import Glibc
import TangleTraceFormat

/// Recently decoded event lines by their text after the leading `{"dt":N`: the recorder repeats
/// the same line end for a thread doing the same thing (a lock taken and released in a loop), and
/// such a line is then decoded by comparing bytes instead of parsing them. An entry holds exactly
/// what decoding that text gave (it contains no time), so a hit decodes to the same event.
struct LineTemplate {
    var hash: UInt64 = 0
    /// Length of the text (-1: empty entry).
    var length = -1
    var kind: EventKind = .dropped
    var pid: Int32 = 0
    var tid: Int32 = 0
    var hasSeq = false
    var seq: UInt64 = 0
    var object: UInt64 = 0
    var stack: UInt32 = 0
    var result: WaitResult = .ok
    var a: UInt64 = 0
    var b: UInt64 = 0
    var c: UInt64 = 0
    var text: String?
    /// Unknown keys the text has (counted again at each use).
    var unknownKeys: UInt64 = 0
    /// The run template the text declares (`"tp":N`), -1 when none: a hit declares it again.
    var declares = -1
    /// A run template of a kind this reader does not know: its name (each use is counted as one
    /// unknown event, as the line itself was).
    var unknownKind: String?
}

/// Schema 3 run templates: `"tp":N` on an event line declares template N (the line's event
/// without its time and seq); each `dt,N` pair of a later run line is that event again, `dt` ns
/// after the previous event line, with the next seq of its thread.
final class RunTemplates {
    /// Template numbers the reader accepts (the recorder uses 0..<256).
    static let capacity = 4096
    let entries: UnsafeMutablePointer<LineTemplate>
    /// Entries below this are initialized (empty or declared): a file opening touches only the
    /// templates its lines declare, not the whole table (files are opened once per pass).
    private var initialized = 0

    init() {
        entries = .allocate(capacity: Self.capacity)
    }

    deinit {
        entries.deinitialize(count: initialized)
        entries.deallocate()
    }

    /// Makes entries up to `n` initialized (as empty) before one is declared.
    @inline(__always) private func reach(_ n: Int) {
        guard n >= initialized else { return }
        (entries + initialized).initialize(repeating: LineTemplate(), count: n + 1 - initialized)
        initialized = n + 1
    }

    /// Template `n`, when a line declared it.
    @inline(__always) func find(_ n: UInt64) -> UnsafeMutablePointer<LineTemplate>? {
        guard n < UInt64(initialized) else { return nil }
        let e = entries + Int(n)
        return e.pointee.length >= 0 ? e : nil
    }

    /// Declares template `n` as `event` (its time and seq are not part of it). False when `n` is
    /// out of range.
    func declare(_ n: UInt64, _ event: UnsafePointer<TraceEvent>, unknownKeys: UInt64) -> Bool {
        guard n < UInt64(Self.capacity) else { return false }
        reach(Int(n))
        let e = event.pointee
        entries[Int(n)] = LineTemplate(hash: 0, length: 0, kind: e.kind, pid: e.pid, tid: e.tid, hasSeq: false, seq: 0,
                                       object: e.object, stack: e.stack, result: e.result, a: e.a, b: e.b, c: e.c,
                                       text: e.text, unknownKeys: unknownKeys, declares: -1)
        return true
    }

    /// Declares template `n` as an event of a kind this reader does not know.
    func declareUnknown(_ n: UInt64, kind name: String) -> Bool {
        guard n < UInt64(Self.capacity) else { return false }
        reach(Int(n))
        var t = LineTemplate()
        t.length = 0
        t.unknownKind = name
        entries[Int(n)] = t
        return true
    }

    /// Declares template `n` as what a cached line decodes to (a line seen again declares again).
    func declare(_ n: Int, _ line: LineTemplate) {
        var t = line
        t.hash = 0
        t.length = 0
        t.hasSeq = false
        t.seq = 0
        t.declares = -1
        reach(n)
        entries[n] = t
    }
}

/// Whether the line starts with the writer's run line prefix, `{"k":"run","e":[` (16 bytes).
@inline(__always) public func isRunLine(_ p: UnsafePointer<UInt8>, _ n: Int) -> Bool {
    guard n >= 18 else { return false }
    let raw = UnsafeRawPointer(p)
    return raw.loadUnaligned(as: UInt64.self) == 0x7572_223A_226B_227B        // {"k":"ru
        && raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self) == 0x5B3A_2265_222C_226E  // n","e":[
}

final class LineTemplates {
    static let slots = 16
    static let maxLength = 192
    let entries: UnsafeMutablePointer<LineTemplate>
    let bytes: UnsafeMutablePointer<UInt8>

    init() {
        entries = .allocate(capacity: Self.slots)
        entries.initialize(repeating: LineTemplate(), count: Self.slots)
        bytes = .allocate(capacity: Self.slots * Self.maxLength)
    }

    deinit {
        entries.deinitialize(count: Self.slots)
        entries.deallocate()
        bytes.deallocate()
    }

    /// A cheap key of `n` ≥ 8 bytes: the length and four words (start, 8, 16, end: the thread, the
    /// kind, the arguments' end), independent multiplies. Only a prefilter: entries are compared
    /// byte for byte.
    @inline(__always) static func hash(_ p: UnsafePointer<UInt8>, _ n: Int) -> UInt64 {
        let raw = UnsafeRawPointer(p)
        let w0 = raw.loadUnaligned(as: UInt64.self)
        let wl = raw.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self)
        var h = (w0 &* 0x9E37_79B9_7F4A_7C15) ^ (wl &* 0xBF58_476D_1CE4_E5B9) ^ (UInt64(n) &* 0x94D0_49BB_1331_11EB)
        if n >= 24 {
            h ^= raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self) &* 0xD6E8_FEB8_6659_FD93
            h ^= raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self) &* 0xC2B2_AE3D_27D4_EB4F
        }
        return h ^ (h >> 29)
    }

    /// The entry for this text, when it is there.
    @inline(__always) func find(_ p: UnsafePointer<UInt8>, _ n: Int, _ h: UInt64) -> UnsafeMutablePointer<LineTemplate>? {
        let i = Int(truncatingIfNeeded: h >> 60) & (Self.slots - 1)
        let e = entries + i
        if e.pointee.length == n && e.pointee.hash == h && memcmp(bytes + i * Self.maxLength, p, n) == 0 { return e }
        return nil
    }

    /// Stores the text of an entry (the caller fills in the decoded fields).
    @inline(__always) func slot(_ p: UnsafePointer<UInt8>, _ n: Int, _ h: UInt64) -> UnsafeMutablePointer<LineTemplate> {
        let i = Int(truncatingIfNeeded: h >> 60) & (Self.slots - 1)
        (bytes + i * Self.maxLength).update(from: p, count: n)
        let e = entries + i
        e.pointee.hash = h
        e.pointee.length = n
        return e
    }
}

/// The `N` and the offset of the `,` after it when the line starts with `{"dt":N,` (N: 1 to 19
/// digits), else nil.
@inline(__always) func leadingDelta(_ p: UnsafePointer<UInt8>, _ n: Int) -> (delta: UInt64, rest: Int)? {
    // {"dt": = 7B 22 64 74 22 3A
    guard n > 16, UnsafeRawPointer(p).loadUnaligned(as: UInt32.self) == 0x7464_227B,
          p[4] == 0x22, p[5] == 0x3A else { return nil }
    var i = 6
    var v: UInt64 = 0
    while i < n {
        let d = p[i] &- 48
        if d > 9 { break }
        v = v &* 10 &+ UInt64(d)
        i += 1
    }
    guard i > 6, i - 6 <= 19, i < n, p[i] == UInt8(ascii: ",") else { return nil }
    return (v, i)
}

/// Initializes an event in place, field by field: building a `TraceEvent` value and moving it
/// into the memory costs an outlined, value-witness copy and destroy per event (docs/runtime.md
/// has the figure); writing the fields where they go costs nothing extra.
struct TraceEventWriter {
    private let time = MemoryLayout<TraceEvent>.offset(of: \TraceEvent.time)!
    private let pid = MemoryLayout<TraceEvent>.offset(of: \TraceEvent.pid)!
    private let tid = MemoryLayout<TraceEvent>.offset(of: \TraceEvent.tid)!
    private let seq = MemoryLayout<TraceEvent>.offset(of: \TraceEvent.seq)!
    private let kind = MemoryLayout<TraceEvent>.offset(of: \TraceEvent.kind)!
    private let object = MemoryLayout<TraceEvent>.offset(of: \TraceEvent.object)!
    private let stack = MemoryLayout<TraceEvent>.offset(of: \TraceEvent.stack)!
    private let result = MemoryLayout<TraceEvent>.offset(of: \TraceEvent.result)!
    private let a = MemoryLayout<TraceEvent>.offset(of: \TraceEvent.a)!
    private let b = MemoryLayout<TraceEvent>.offset(of: \TraceEvent.b)!
    private let c = MemoryLayout<TraceEvent>.offset(of: \TraceEvent.c)!
    private let text = MemoryLayout<TraceEvent>.offset(of: \TraceEvent.text)!

    @inline(__always)
    func initialize(_ dst: UnsafeMutablePointer<TraceEvent>, time t: UInt64, pid p: Int32, tid th: Int32, seq s: UInt64,
                    kind k: EventKind, object o: UInt64, stack st: UInt32, result r: WaitResult,
                    a va: UInt64, b vb: UInt64, c vc: UInt64, text tx: String?) {
        let raw = UnsafeMutableRawPointer(dst)
        raw.storeBytes(of: t, toByteOffset: time, as: UInt64.self)
        raw.storeBytes(of: p, toByteOffset: pid, as: Int32.self)
        raw.storeBytes(of: th, toByteOffset: tid, as: Int32.self)
        raw.storeBytes(of: s, toByteOffset: seq, as: UInt64.self)
        raw.storeBytes(of: k, toByteOffset: kind, as: EventKind.self)
        raw.storeBytes(of: o, toByteOffset: object, as: UInt64.self)
        raw.storeBytes(of: st, toByteOffset: stack, as: UInt32.self)
        raw.storeBytes(of: r, toByteOffset: result, as: WaitResult.self)
        raw.storeBytes(of: va, toByteOffset: a, as: UInt64.self)
        raw.storeBytes(of: vb, toByteOffset: b, as: UInt64.self)
        raw.storeBytes(of: vc, toByteOffset: c, as: UInt64.self)
        (raw + text).initializeMemory(as: String?.self, repeating: tx, count: 1)
    }
}
