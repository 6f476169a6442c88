import Glibc

/// The fast path of the reader: one flat JSON object (an event line) parsed at byte level into
/// fixed fields, without building any JSON value. Lines it cannot handle (nested values: header,
/// stack, module records) are reported as `.nested` and go through `JSONParser`.
struct EventLineFields {
    var time: UInt64 = 0
    var hasTime = false
    var pid: Int64 = 0
    var hasPid = false
    var tid: Int64 = 0
    var hasTid = false
    var seq: UInt64 = 0
    var hasSeq = false
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
        while i < end && p[i] != 34 {
            if p[i] == 92 { return .nested }  // an escaped key: leave it to the generic parser
            i += 1
        }
        guard i < end else { return .invalid }
        let kl = i - ks
        i += 1
        while i < end && isWS(p[i]) { i += 1 }
        guard i < end, p[i] == UInt8(ascii: ":") else { return .invalid }
        i += 1
        while i < end && isWS(p[i]) { i += 1 }
        guard i < end else { return .invalid }
        let c = p[i]
        if c == 34 {
            // A string value.
            i += 1
            let vs = i
            var escaped = false
            while i < end {
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

/// Byte tables for the kinds: names and argument keys, looked up by bytes.
final class KindTable: @unchecked Sendable {
    static let shared = KindTable()

    struct Entry {
        let kind: EventKind
        let name: [UInt8]
        let keys: ([UInt8]?, [UInt8]?, [UInt8]?)
    }

    private var slots: [Entry?]
    private let mask: Int
    let byRaw: [Entry?]

    private init() {
        var raw: [Entry?] = Array(repeating: nil, count: Int(EventKind.allCases.map(\.rawValue).max()!) + 1)
        let size = 512
        var s: [Entry?] = Array(repeating: nil, count: size)
        mask = size - 1
        for k in EventKind.allCases {
            let keys = k.argumentKeys
            let e = Entry(kind: k, name: Array(k.name.utf8), keys: (keys.a.map { Array($0.utf8) }, keys.b.map { Array($0.utf8) }, keys.c.map { Array($0.utf8) }))
            raw[Int(k.rawValue)] = e
            var h = e.name.withUnsafeBufferPointer { KindTable.hash($0.baseAddress!, $0.count) } & (size - 1)
            while s[h] != nil { h = (h + 1) & (size - 1) }
            s[h] = e
        }
        slots = s
        byRaw = raw
    }

    @inline(__always) static func hash(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int {
        var h: UInt32 = 2166136261
        for i in 0..<n { h = (h ^ UInt32(p[i])) &* 16777619 }
        return Int(h)
    }

    @inline(__always) func lookup(_ p: UnsafePointer<UInt8>, _ n: Int) -> Entry? {
        var h = KindTable.hash(p, n) & mask
        while let e = slots[h] {
            if e.name.count == n && e.name.withUnsafeBufferPointer({ memcmp($0.baseAddress!, p, n) == 0 }) { return e }
            h = (h + 1) & mask
        }
        return nil
    }
}

@inline(__always) func bytesEqual(_ p: UnsafePointer<UInt8>, _ n: Int, _ lit: StaticString) -> Bool {
    n == lit.utf8CodeUnitCount && memcmp(p, lit.utf8Start, n) == 0
}

@inline(__always) func bytesEqual(_ p: UnsafePointer<UInt8>, _ n: Int, _ a: [UInt8]?) -> Bool {
    guard let a, a.count == n else { return false }
    return a.withUnsafeBufferPointer { memcmp($0.baseAddress!, p, n) == 0 }
}
