/// A small JSON value, for the rare lines that are not flat events (header, stack, module).
public indirect enum JSONValue: Sendable, Equatable {
    case object([(String, JSONValue)])
    case array([JSONValue])
    case string(String)
    case uint(UInt64)
    case int(Int64)
    case double(Double)
    case bool(Bool)
    case null

    public static func == (l: JSONValue, r: JSONValue) -> Bool {
        switch (l, r) {
        case let (.object(a), .object(b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case let (.array(a), .array(b)): return a == b
        case let (.string(a), .string(b)): return a == b
        case let (.uint(a), .uint(b)): return a == b
        case let (.int(a), .int(b)): return a == b
        case let (.double(a), .double(b)): return a == b
        case let (.bool(a), .bool(b)): return a == b
        case (.null, .null): return true
        default: return false
        }
    }

    public subscript(key: String) -> JSONValue? {
        if case let .object(fields) = self {
            for (k, v) in fields where k == key { return v }
        }
        return nil
    }

    public var uint64: UInt64? {
        switch self {
        case let .uint(v): return v
        case let .int(v): return UInt64(bitPattern: v)
        case let .double(d): return d >= 0 && d < 1.8e19 ? UInt64(d) : nil
        default: return nil
        }
    }

    public var int64: Int64? {
        switch self {
        case let .uint(v): return Int64(bitPattern: v)
        case let .int(v): return v
        case let .double(d): return d > -9e18 && d < 9e18 ? Int64(d) : nil
        default: return nil
        }
    }

    public var string: String? {
        if case let .string(s) = self { return s }
        return nil
    }
}

/// Byte-level JSON parsing over a raw line (no Foundation).
public struct JSONParser {
    let p: UnsafePointer<UInt8>
    let end: Int
    var i = 0
    var depth = 0

    public init(_ line: UnsafeRawBufferPointer) {
        p = line.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? UnsafePointer(bitPattern: 1)!
        end = line.count
    }

    /// Parses one whole value (the whole line); nil when it is not valid JSON.
    public static func parse(_ line: UnsafeRawBufferPointer) -> JSONValue? {
        var parser = JSONParser(line)
        guard let v = parser.value() else { return nil }
        parser.ws()
        return parser.i == parser.end ? v : nil
    }

    public static func parse(_ s: String) -> JSONValue? {
        var s = s
        return s.withUTF8 { parse(UnsafeRawBufferPointer($0)) }
    }

    @inline(__always) mutating func ws() {
        while i < end {
            let c = p[i]
            if c == 32 || c == 9 || c == 13 || c == 10 { i += 1 } else { break }
        }
    }

    mutating func value() -> JSONValue? {
        ws()
        guard i < end else { return nil }
        switch p[i] {
        case UInt8(ascii: "{"):
            depth += 1
            if depth > 64 { return nil }
            defer { depth -= 1 }
            i += 1
            var fields: [(String, JSONValue)] = []
            ws()
            if i < end && p[i] == UInt8(ascii: "}") { i += 1; return .object(fields) }
            while true {
                ws()
                guard i < end, p[i] == 34, let k = string() else { return nil }
                ws()
                guard i < end, p[i] == UInt8(ascii: ":") else { return nil }
                i += 1
                guard let v = value() else { return nil }
                fields.append((k, v))
                ws()
                guard i < end else { return nil }
                if p[i] == UInt8(ascii: ",") { i += 1; continue }
                if p[i] == UInt8(ascii: "}") { i += 1; return .object(fields) }
                return nil
            }
        case UInt8(ascii: "["):
            depth += 1
            if depth > 64 { return nil }
            defer { depth -= 1 }
            i += 1
            var items: [JSONValue] = []
            ws()
            if i < end && p[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            while true {
                guard let v = value() else { return nil }
                items.append(v)
                ws()
                guard i < end else { return nil }
                if p[i] == UInt8(ascii: ",") { i += 1; continue }
                if p[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                return nil
            }
        case 34:
            return string().map { .string($0) }
        case UInt8(ascii: "t"):
            if literal("true") { return .bool(true) }
            return nil
        case UInt8(ascii: "f"):
            if literal("false") { return .bool(false) }
            return nil
        case UInt8(ascii: "n"):
            if literal("null") { return .null }
            return nil
        default:
            return number()
        }
    }

    mutating func literal(_ s: StaticString) -> Bool {
        let n = s.utf8CodeUnitCount
        guard end - i >= n else { return false }
        for k in 0..<n where p[i + k] != s.utf8Start[k] { return false }
        i += n
        return true
    }

    /// A string starting at the quote under `i`.
    mutating func string() -> String? {
        i += 1
        let start = i
        var plain = true
        while i < end {
            let c = p[i]
            if c == 34 { break }
            if c == 92 { plain = false; i += 2; continue }
            if c < 32 { return nil }
            i += 1
        }
        guard i < end else { return nil }
        if plain {
            let s = String(decoding: UnsafeBufferPointer(start: p + start, count: i - start), as: UTF8.self)
            i += 1
            return s
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(i - start)
        var j = start
        while j < i {
            let c = p[j]
            if c != 92 { bytes.append(c); j += 1; continue }
            j += 1
            guard j < i else { return nil }
            switch p[j] {
            case UInt8(ascii: "n"): bytes.append(10)
            case UInt8(ascii: "t"): bytes.append(9)
            case UInt8(ascii: "r"): bytes.append(13)
            case UInt8(ascii: "b"): bytes.append(8)
            case UInt8(ascii: "f"): bytes.append(12)
            case UInt8(ascii: "/"): bytes.append(47)
            case 92: bytes.append(92)
            case 34: bytes.append(34)
            case UInt8(ascii: "u"):
                guard j + 4 < i else { return nil }
                var v: UInt32 = 0
                for k in 1...4 {
                    let h = p[j + k]
                    let d: UInt32
                    switch h {
                    case 48...57: d = UInt32(h - 48)
                    case 97...102: d = UInt32(h - 87)
                    case 65...70: d = UInt32(h - 55)
                    default: return nil
                    }
                    v = v << 4 | d
                }
                j += 4
                // (surrogate pairs are replaced, names never need them)
                let scalar = Unicode.Scalar(v) ?? "\u{FFFD}"
                bytes.append(contentsOf: Array(String(Character(scalar)).utf8))
            default: return nil
            }
            j += 1
        }
        i += 1
        return String(decoding: bytes, as: UTF8.self)
    }

    mutating func number() -> JSONValue? {
        let start = i
        var neg = false
        if i < end && p[i] == UInt8(ascii: "-") { neg = true; i += 1 }
        var v: UInt64 = 0
        var digits = 0
        var overflow = false
        while i < end, p[i] >= 48, p[i] <= 57 {
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(p[i] - 48))
            if o1 || o2 { overflow = true }
            v = a
            digits += 1
            i += 1
        }
        if digits == 0 { return nil }
        var isFloat = false
        if i < end && (p[i] == UInt8(ascii: ".") || p[i] == UInt8(ascii: "e") || p[i] == UInt8(ascii: "E")) {
            isFloat = true
            i += 1
            while i < end, (p[i] >= 48 && p[i] <= 57) || p[i] == UInt8(ascii: "e") || p[i] == UInt8(ascii: "E")
                    || p[i] == UInt8(ascii: "+") || p[i] == UInt8(ascii: "-") || p[i] == UInt8(ascii: ".") { i += 1 }
        }
        if isFloat || overflow {
            let s = String(decoding: UnsafeBufferPointer(start: p + start, count: i - start), as: UTF8.self)
            guard let d = Double(s) else { return nil }
            return .double(d)
        }
        if neg {
            if v > UInt64(Int64.max) + 1 { return .double(-Double(v)) }
            return .int(v == UInt64(Int64.max) + 1 ? Int64.min : -Int64(v))
        }
        return .uint(v)
    }
}
