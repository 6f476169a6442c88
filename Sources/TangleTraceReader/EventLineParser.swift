import Glibc
import TangleTraceFormat

/// The fast path of the reader: one flat JSON object (an event line) parsed at byte level into
/// fixed fields, without building any JSON value. Lines it cannot handle (nested values: header,
/// stack, module records) are reported as `.nested` and go through `JSONParser`.
struct EventLineFields {
    var time: UInt64 = 0
    var hasTime = false
    /// Schema 2: `dt`, ns after the previous event line's time (`deltaNegative`: a `-` sign, invalid).
    var delta: UInt64 = 0
    var hasDelta = false
    var deltaNegative = false
    var deltaCount = 0
    var pid: Int64 = 0
    var hasPid = false
    var tid: Int64 = 0
    var hasTid = false
    var seq: UInt64 = 0
    var hasSeq = false
    /// Schema 3: `tp`, the template this line declares (what run lines then refer to).
    var template: UInt64 = 0
    var hasTemplate = false
    var object: UInt64 = 0
    var stack: UInt64 = 0
    var kindStart = 0, kindLen = -1
    var resultStart = 0, resultLen = -1
    var nameStart = 0, nameLen = -1, nameEscaped = false
    // Other numeric keys (the kind's argument keys): up to 6 kept.
    var extraCount = 0
    var extraKeyStart: (Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0)
    var extraKeyLen: (Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0)
    var extraValue: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0)
    var ignoredKeys = 0
}

enum EventLineStatus { case ok, nested, invalid }

@inline(__always) private func isWS(_ c: UInt8) -> Bool { c == 32 || c == 9 || c == 13 }

/// Parses a flat JSON object of numbers, strings, booleans and nulls.
func parseEventLine(_ p: UnsafePointer<UInt8>, _ end: Int, _ f: inout EventLineFields) -> EventLineStatus {
    var i = 0
    while i < end && isWS(p[i]) { i += 1 }
    guard i < end, p[i] == UInt8(ascii: "{") else { return .invalid }
    i += 1
    while i < end && isWS(p[i]) { i += 1 }
    if i < end && p[i] == UInt8(ascii: "}") { i += 1; return trailing(p, i, end) }
    while true {
        while i < end && isWS(p[i]) { i += 1 }
        guard i < end, p[i] == 34 else { return .invalid }
        i += 1
        let ks = i
        let kl: Int
        if let n = shortKey(p, i, end) {
            // `"key":` with no escape and no space (what the recorder writes), found in one word.
            kl = n
            i += n + 2
        } else {
            while i < end && p[i] != 34 {
                if p[i] == 92 { return .nested }  // an escaped key: leave it to the generic parser
                i += 1
            }
            guard i < end else { return .invalid }
            kl = i - ks
            i += 1
            while i < end && isWS(p[i]) { i += 1 }
            guard i < end, p[i] == UInt8(ascii: ":") else { return .invalid }
            i += 1
        }
        while i < end && isWS(p[i]) { i += 1 }
        guard i < end else { return .invalid }
        let c = p[i]
        if c == 34 {
            // A string value.
            i += 1
            let vs = i
            var escaped = false
            while i < end {
                if end - i >= 8 {
                    // Eight bytes at a time up to the first quote, backslash or control byte (the
                    // lowest flagged byte of these zero-byte tests is exact).
                    let x = UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self)
                    let q = x ^ 0x2222_2222_2222_2222, b = x ^ 0x5C5C_5C5C_5C5C_5C5C
                    let m = ((q &- 0x0101_0101_0101_0101) & ~q) | ((b &- 0x0101_0101_0101_0101) & ~b)
                        | ((x &- 0x2020_2020_2020_2020) & ~x)
                    let flagged = m & 0x8080_8080_8080_8080
                    if flagged == 0 { i += 8; continue }
                    i += flagged.trailingZeroBitCount >> 3
                }
                let d = p[i]
                if d == 34 { break }
                if d == 92 { escaped = true; i += 2; continue }
                if d < 32 { return .invalid }
                i += 1
            }
            guard i < end else { return .invalid }
            let vl = i - vs
            i += 1
            if kl == 1 && p[ks] == UInt8(ascii: "k") {
                if escaped { return .nested }
                f.kindStart = vs; f.kindLen = vl
            } else if kl == 1 && p[ks] == UInt8(ascii: "r") {
                f.resultStart = vs; f.resultLen = vl
            } else if kl == 4 && p[ks] == UInt8(ascii: "n") && p[ks + 1] == UInt8(ascii: "a") && p[ks + 2] == UInt8(ascii: "m") && p[ks + 3] == UInt8(ascii: "e") {
                f.nameStart = vs; f.nameLen = vl; f.nameEscaped = escaped
            } else {
                f.ignoredKeys += 1
            }
        } else if (c >= 48 && c <= 57) || c == UInt8(ascii: "-") {
            var neg = false
            if c == UInt8(ascii: "-") { neg = true; i += 1 }
            var v: UInt64 = 0
            let ds = i
            // Up to eight digits at a time (SWAR: count the leading digits of a word, align them to
            // its top so the bytes below act as leading zeros), then one by one near the line end.
            while end - i >= 8 {
                let x = UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self)
                let nd = ((x & 0xF0F0_F0F0_F0F0_F0F0) ^ 0x3030_3030_3030_3030)
                    | (((x &+ 0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0) ^ 0x3030_3030_3030_3030)
                let n = nd == 0 ? 8 : nd.trailingZeroBitCount >> 3
                if n == 0 { break }
                var y = (x &- 0x3030_3030_3030_3030) &<< UInt64((8 - n) &* 8)
                y = (y &* 10 &+ (y >> 8)) & 0x00FF_00FF_00FF_00FF
                y = (y &* 100 &+ (y >> 16)) & 0x0000_FFFF_0000_FFFF
                y = (y &* 10000 &+ (y >> 32)) & 0xFFFF_FFFF
                v = v &* pow10(n) &+ y
                i += n
                if n < 8 { break }
            }
            while i < end {
                let d = p[i] &- 48
                if d > 9 { break }
                v = v &* 10 &+ UInt64(d)
                i += 1
            }
            if i == ds { return .invalid }
            if i - ds > 19 { return .nested }  // could overflow: let the generic parser decide
            if i < end && (p[i] == UInt8(ascii: ".") || p[i] == UInt8(ascii: "e") || p[i] == UInt8(ascii: "E")) {
                return .nested
            }
            if neg { v = 0 &- v }
            switch kl {
            case 1:
                switch p[ks] {
                case UInt8(ascii: "t"): f.time = v; f.hasTime = true
                case UInt8(ascii: "o"): f.object = v
                case UInt8(ascii: "s"): f.stack = v
                default: addExtra(&f, ks, kl, v)
                }
            case 2 where p[ks] == UInt8(ascii: "d") && p[ks + 1] == UInt8(ascii: "t"):
                f.delta = v; f.hasDelta = true; f.deltaNegative = neg && v != 0; f.deltaCount &+= 1
            case 2 where p[ks] == UInt8(ascii: "t") && p[ks + 1] == UInt8(ascii: "p") && !neg:
                f.template = v; f.hasTemplate = true
            case 3:
                if p[ks + 1] == UInt8(ascii: "i") && p[ks + 2] == UInt8(ascii: "d") && p[ks] == UInt8(ascii: "p") {
                    f.pid = Int64(bitPattern: v); f.hasPid = true
                } else if p[ks + 1] == UInt8(ascii: "i") && p[ks + 2] == UInt8(ascii: "d") && p[ks] == UInt8(ascii: "t") {
                    f.tid = Int64(bitPattern: v); f.hasTid = true
                } else if p[ks] == UInt8(ascii: "s") && p[ks + 1] == UInt8(ascii: "e") && p[ks + 2] == UInt8(ascii: "q") {
                    f.seq = v; f.hasSeq = true
                } else {
                    addExtra(&f, ks, kl, v)
                }
            default:
                addExtra(&f, ks, kl, v)
            }
        } else if c == UInt8(ascii: "{") || c == UInt8(ascii: "[") {
            return .nested
        } else if c == UInt8(ascii: "t") && end - i >= 4 && p[i + 1] == UInt8(ascii: "r") && p[i + 2] == UInt8(ascii: "u") && p[i + 3] == UInt8(ascii: "e") {
            i += 4; f.ignoredKeys += 1
        } else if c == UInt8(ascii: "f") && end - i >= 5 && p[i + 1] == UInt8(ascii: "a") && p[i + 2] == UInt8(ascii: "l") && p[i + 3] == UInt8(ascii: "s") && p[i + 4] == UInt8(ascii: "e") {
            i += 5; f.ignoredKeys += 1
        } else if c == UInt8(ascii: "n") && end - i >= 4 && p[i + 1] == UInt8(ascii: "u") && p[i + 2] == UInt8(ascii: "l") && p[i + 3] == UInt8(ascii: "l") {
            i += 4; f.ignoredKeys += 1
        } else {
            return .invalid
        }
        while i < end && isWS(p[i]) { i += 1 }
        guard i < end else { return .invalid }
        if p[i] == UInt8(ascii: ",") { i += 1; continue }
        if p[i] == UInt8(ascii: "}") { i += 1; return trailing(p, i, end) }
        return .invalid
    }
}

/// The length of the key starting at `i` when the eight bytes there hold the whole key (up to six
/// bytes, no backslash) followed by `":`, else nil (the byte-wise path decides). The lowest byte
/// flagged by these zero-byte tests is exact, which is all that is used.
@inline(__always) private func shortKey(_ p: UnsafePointer<UInt8>, _ i: Int, _ end: Int) -> Int? {
    guard end - i >= 8 else { return nil }
    let w = UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self)
    let q = w ^ 0x2222_2222_2222_2222
    let quotes = (q &- 0x0101_0101_0101_0101) & ~q & 0x8080_8080_8080_8080
    if quotes == 0 { return nil }
    let n = quotes.trailingZeroBitCount >> 3
    if n > 6 { return nil }
    // the byte after the quote is the colon
    if (w >> UInt64((n + 1) * 8)) & 0xFF != UInt64(UInt8(ascii: ":")) { return nil }
    if n > 0 {
        let b = w ^ 0x5C5C_5C5C_5C5C_5C5C
        let slashes = (b &- 0x0101_0101_0101_0101) & ~b & 0x8080_8080_8080_8080
        if slashes & ((1 << UInt64(n * 8)) &- 1) != 0 { return nil }
    }
    return n
}

@inline(__always) private func pow10(_ n: Int) -> UInt64 {
    switch n {
    case 1: return 10
    case 2: return 100
    case 3: return 1000
    case 4: return 10000
    case 5: return 100_000
    case 6: return 1_000_000
    case 7: return 10_000_000
    default: return 100_000_000
    }
}

@inline(__always) private func trailing(_ p: UnsafePointer<UInt8>, _ i: Int, _ end: Int) -> EventLineStatus {
    var i = i
    while i < end && isWS(p[i]) { i += 1 }
    return i == end ? .ok : .invalid
}

@inline(__always) private func addExtra(_ f: inout EventLineFields, _ ks: Int, _ kl: Int, _ v: UInt64) {
    switch f.extraCount {
    case 0: f.extraKeyStart.0 = ks; f.extraKeyLen.0 = kl; f.extraValue.0 = v
    case 1: f.extraKeyStart.1 = ks; f.extraKeyLen.1 = kl; f.extraValue.1 = v
    case 2: f.extraKeyStart.2 = ks; f.extraKeyLen.2 = kl; f.extraValue.2 = v
    case 3: f.extraKeyStart.3 = ks; f.extraKeyLen.3 = kl; f.extraValue.3 = v
    case 4: f.extraKeyStart.4 = ks; f.extraKeyLen.4 = kl; f.extraValue.4 = v
    case 5: f.extraKeyStart.5 = ks; f.extraKeyLen.5 = kl; f.extraValue.5 = v
    default: f.ignoredKeys += 1; return
    }
    f.extraCount += 1
}

/// Byte tables for the kinds: names and argument keys, looked up by bytes without copying
/// anything reference-counted (flat, immortal storage).
final class KindTable: @unchecked Sendable {
    static let shared = KindTable()

    /// All names and keys, back to back.
    private let bytes: UnsafeMutablePointer<UInt8>
    /// Per raw kind value: (offset, length) of the name, then of keys a, b, c (length -1: none).
    private let spans: UnsafeMutablePointer<Int32>
    /// Open addressing: raw kind value + 1 (0 = empty).
    private let slots: UnsafeMutablePointer<UInt16>
    private let mask: Int
    let maxRaw: Int
    /// Raw kind value → kind (no `init(rawValue:)` switch per line).
    private let byRaw: UnsafeMutablePointer<EventKind>

    private init() {
        let all = EventKind.allCases
        maxRaw = Int(all.map(\.rawValue).max()!)
        var flat: [UInt8] = []
        var sp = [Int32](repeating: -1, count: (maxRaw + 1) * 8)
        for k in all {
            let base = Int(k.rawValue) * 8
            let keys = k.argumentKeys
            for (j, str) in [k.name, keys.a, keys.b, keys.c].enumerated() {
                guard let str else { continue }
                sp[base + j * 2] = Int32(flat.count)
                sp[base + j * 2 + 1] = Int32(str.utf8.count)
                flat.append(contentsOf: str.utf8)
            }
        }
        byRaw = .allocate(capacity: maxRaw + 1)
        byRaw.initialize(repeating: all[0], count: maxRaw + 1)
        for k in all { byRaw[Int(k.rawValue)] = k }
        bytes = .allocate(capacity: max(flat.count, 1))
        bytes.initialize(from: flat, count: flat.count)
        spans = .allocate(capacity: sp.count)
        spans.initialize(from: sp, count: sp.count)
        let size = 512
        mask = size - 1
        slots = .allocate(capacity: size)
        slots.initialize(repeating: 0, count: size)
        for k in all {
            let base = Int(k.rawValue) * 8
            var h = KindTable.hash(bytes + Int(sp[base]), Int(sp[base + 1])) & mask
            while slots[h] != 0 { h = (h + 1) & mask }
            slots[h] = k.rawValue + 1
        }
    }

    /// A cheap hash of a name: its length and up to two 8-byte words (first and last), never
    /// reading outside the `n` bytes.
    @inline(__always) static func hash(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int {
        var x: UInt64
        if n >= 8 {
            let raw = UnsafeRawPointer(p)
            x = raw.loadUnaligned(as: UInt64.self) &* 0x9E37_79B9_7F4A_7C15
            x ^= raw.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self) &* 0xC2B2_AE3D_27D4_EB4F
        } else {
            x = 0
            for i in 0..<n { x = (x << 8) | UInt64(p[i]) }
            x = x &* 0x9E37_79B9_7F4A_7C15
        }
        x ^= UInt64(n) &* 0x1656_67B1_9E37_79F9
        x ^= x >> 29
        x = x &* 0xBF58_476D_1CE4_E5B9
        return Int(truncatingIfNeeded: x >> 32)
    }

    /// The kind whose name is these bytes.
    @inline(__always) func lookup(_ p: UnsafePointer<UInt8>, _ n: Int) -> EventKind? {
        var h = KindTable.hash(p, n) & mask
        while true {
            let raw = Int(slots[h])
            if raw == 0 { return nil }
            let base = (raw - 1) * 8
            if Int(spans[base + 1]) == n && same(bytes + Int(spans[base]), p, n) {
                return byRaw[raw - 1]
            }
            h = (h + 1) & mask
        }
    }

    /// Whether the bytes are argument key `which` (0 = a, 1 = b, 2 = c) of `kind`.
    @inline(__always) func isKey(_ kind: EventKind, _ which: Int, _ p: UnsafePointer<UInt8>, _ n: Int) -> Bool {
        let base = Int(kind.rawValue) * 8 + 2 + which * 2
        let len = Int(spans[base + 1])
        return len == n && same(bytes + Int(spans[base]), p, n)
    }

    @inline(__always) private func same(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ n: Int) -> Bool {
        if n >= 8 {
            // Whole words, the last one overlapping the previous (no reads outside the n bytes).
            let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
            var i = 0
            while i + 8 < n {
                if ra.loadUnaligned(fromByteOffset: i, as: UInt64.self) != rb.loadUnaligned(fromByteOffset: i, as: UInt64.self) { return false }
                i += 8
            }
            return ra.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self) == rb.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self)
        }
        var i = 0
        while i < n {
            if a[i] != b[i] { return false }
            i += 1
        }
        return true
    }
}

@inline(__always) func bytesEqual(_ p: UnsafePointer<UInt8>, _ n: Int, _ lit: StaticString) -> Bool {
    if n != lit.utf8CodeUnitCount { return false }
    let q = lit.utf8Start
    for i in 0..<n where p[i] != q[i] { return false }
    return true
}

