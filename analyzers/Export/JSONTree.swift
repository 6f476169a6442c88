/// Writes a tree of `[String: Any]`, `[Any]`, strings, numbers and booleans as JSON text, keys
/// sorted, pretty-printed with two spaces (the layout `JSONSerialization` gives with
/// `[.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]`).
///
/// Why not `JSONSerialization`: it bridges every dictionary to `NSDictionary` and casts every
/// value dynamically, which made the SARIF export the largest cost of a whole analysis of a small
/// trace (docs/analyzers.md, "Safe on any trace"). This writes straight into one string.
enum JSONTree {
    struct UnsupportedValue: Error, CustomStringConvertible {
        let type: String
        var description: String { "a value of type \(type) cannot be written as JSON" }
    }

    static func text(_ value: Any) throws -> String {
        var out = ""
        out.reserveCapacity(4096)
        try write(value, indent: 0, into: &out)
        return out
    }

    private static func write(_ value: Any, indent: Int, into out: inout String) throws {
        switch value {
        case let s as String: quote(s, into: &out)
        case let b as Bool: out += b ? "true" : "false"
        case let n as Int: out += String(n)
        case let n as Int32: out += String(n)
        case let n as Int64: out += String(n)
        case let n as UInt: out += String(n)
        case let n as UInt32: out += String(n)
        case let n as UInt64: out += String(n)
        case let d as Double:
            guard d.isFinite else { throw UnsupportedValue(type: "non-finite Double") }
            if d == d.rounded(.towardZero) && abs(d) < 1e15 { out += String(Int64(d)) } else { out += "\(d)" }
        case let dict as [String: Any]:
            if dict.isEmpty { out += "{\n\n" + spaces(indent) + "}"; return }
            out += "{\n"
            let keys = dict.keys.sorted()
            for (i, key) in keys.enumerated() {
                out += spaces(indent + 2)
                quote(key, into: &out)
                out += " : "
                try write(dict[key]!, indent: indent + 2, into: &out)
                out += i == keys.count - 1 ? "\n" : ",\n"
            }
            out += spaces(indent) + "}"
        case let array as [Any]:
            if array.isEmpty { out += "[\n\n" + spaces(indent) + "]"; return }
            out += "[\n"
            for (i, element) in array.enumerated() {
                out += spaces(indent + 2)
                try write(element, indent: indent + 2, into: &out)
                out += i == array.count - 1 ? "\n" : ",\n"
            }
            out += spaces(indent) + "]"
        case Optional<Any>.none: out += "null"
        default: throw UnsupportedValue(type: String(describing: type(of: value)))
        }
    }

    @inline(__always) private static func spaces(_ n: Int) -> String { String(repeating: " ", count: n) }

    /// A JSON string: quotes, backslashes and control characters escaped; `/` and non-ASCII kept.
    static func quote(_ s: String, into out: inout String) {
        out += "\""
        var plain = true
        for b in s.utf8 where b < 0x20 || b == 0x22 || b == 0x5C { plain = false; break }
        if plain { out += s; out += "\""; return }
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}
