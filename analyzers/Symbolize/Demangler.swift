import Foundation

/// Demangles symbol names: Swift through the runtime's own `swift_demangle` (libswiftCore, looked up
/// with `dlsym`; flags 0; the result is malloc'ed and freed here), C++ through `__cxa_demangle` when
/// the process has it. Names that are neither are returned unchanged.
///
/// `simplify` turns the full demangled form into the short, stable form the reports show:
/// `TangleAnalysisTests.SymbolizeTests.capture(depth: Swift.Int) -> [Swift.UInt64]` becomes
/// `TangleAnalysisTests.SymbolizeTests.capture(depth:)`. Unlike `swift demangle --simplified` it keeps
/// the module prefix, which frame classification (`Tangle.`, `Swift.`, …) and fingerprints rely on.
public enum Demangler {
    private typealias SwiftDemangleFn = @convention(c) (
        UnsafePointer<CChar>?, Int, UnsafeMutablePointer<CChar>?, UnsafeMutablePointer<Int>?, UInt32
    ) -> UnsafeMutablePointer<CChar>?
    private typealias CxaDemangleFn = @convention(c) (
        UnsafePointer<CChar>?, UnsafeMutablePointer<CChar>?, UnsafeMutablePointer<Int>?, UnsafeMutablePointer<Int32>?
    ) -> UnsafeMutablePointer<CChar>?

    private static let swiftDemangle: SwiftDemangleFn? = {
        var sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "swift_demangle")  // RTLD_DEFAULT
        if sym == nil, let handle = dlopen("libswiftCore.so", RTLD_NOW | RTLD_GLOBAL) {
            sym = dlsym(handle, "swift_demangle")
        }
        return sym.map { unsafeBitCast($0, to: SwiftDemangleFn.self) }
    }()

    private static let cxaDemangle: CxaDemangleFn? = {
        dlsym(UnsafeMutableRawPointer(bitPattern: 0), "__cxa_demangle").map { unsafeBitCast($0, to: CxaDemangleFn.self) }
    }()

    /// True when `swift_demangle` could be found (it always can in a Swift process linking libswiftCore).
    public static var hasSwiftDemangler: Bool { swiftDemangle != nil }

    /// Whether `name` looks like a mangled Swift symbol.
    public static func isSwiftMangled(_ name: String) -> Bool {
        name.hasPrefix("$s") || name.hasPrefix("$S") || name.hasPrefix("_$s") || name.hasPrefix("_$S")
            || name.hasPrefix("$e") || name.hasPrefix("_T0") || name.hasPrefix("@__swiftmacro_")
    }

    /// The full demangled name, or `name` itself when it is not mangled or cannot be demangled.
    public static func demangle(_ name: String) -> String {
        if isSwiftMangled(name), let fn = swiftDemangle {
            let out: String? = name.withCString { cs in
                guard let res = fn(cs, strlen(cs), nil, nil, 0) else { return nil }
                defer { free(res) }
                return String(cString: res)
            }
            return out ?? name
        }
        if name.hasPrefix("_Z"), let fn = cxaDemangle {
            var status: Int32 = 0
            let out: String? = name.withCString { cs in
                guard let res = fn(cs, nil, nil, &status) else { return nil }
                defer { free(res) }
                return status == 0 ? String(cString: res) : nil
            }
            return out ?? name
        }
        return name
    }

    /// The short form of a demangled name (see the type's comment). Returns `full` unchanged when
    /// it does not look like a Swift signature. Works on UTF-8 bytes (fast even at -Onone).
    public static func simplify(_ full: String) -> String {
        let b = Array(full.utf8)
        var start = 0
        // Specialization and thunk wrappers say how the compiler built the code, not which function
        // it is: drop them so that the same source function has the same name at -Onone and -O.
        var changed = true
        while changed {
            changed = false
            for prefix in specializationPrefixes where hasPrefix(b, start, prefix) {
                if let of = find(b, start, b.count, Array(" of ".utf8)) {
                    start = of + 4
                    changed = true
                }
            }
            for prefix in droppedPrefixes where hasPrefix(b, start, prefix) {
                start += prefix.count
                changed = true
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(b.count - start)
        var segStart = start
        let sep = Array(" in ".utf8)
        while true {
            let segEnd = find(b, segStart, b.count, sep) ?? b.count
            if !out.isEmpty { out.append(contentsOf: sep) }
            simplifySegment(b, segStart, segEnd, into: &out)
            if segEnd >= b.count { break }
            segStart = segEnd + sep.count
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static let specializationPrefixes = ["generic specialization ", "function signature specialization ",
                                                 "generic partial specialization "].map { Array($0.utf8) }
    private static let droppedPrefixes = ["merged ", "partial apply for ", "partial apply forwarder for "].map { Array($0.utf8) }
    private static let closurePrefixes = ["implicit closure #", "closure #"].map { Array($0.utf8) }
    private static let extensionPrefix = Array("(extension in ".utf8)

    private static func hasPrefix(_ b: [UInt8], _ at: Int, _ p: [UInt8]) -> Bool {
        guard at + p.count <= b.count else { return false }
        for k in 0..<p.count where b[at + k] != p[k] { return false }
        return true
    }

    private static func isOpen(_ c: UInt8) -> Bool { c == 40 || c == 91 || c == 60 }  // ( [ <
    private static func isClose(_ b: [UInt8], _ i: Int) -> Bool {
        let c = b[i]
        return c == 41 || c == 93 || (c == 62 && !(i > 0 && b[i - 1] == 45))  // ) ] > but not ->
    }

    /// First index of `needle` in b[from..<to] outside (), [], <>.
    private static func find(_ b: [UInt8], _ from: Int, _ to: Int, _ needle: [UInt8]) -> Int? {
        var depth = 0
        var i = from
        while i < to {
            if isOpen(b[i]) { depth += 1 }
            else if isClose(b, i) { depth = max(0, depth - 1) }
            else if depth == 0 && b[i] == needle[0] && i + needle.count <= to && hasPrefix(b, i, needle) { return i }
            i += 1
        }
        return nil
    }

    /// Index of the bracket closing the one at `open`, or nil.
    private static func matching(_ b: [UInt8], _ open: Int, _ to: Int) -> Int? {
        var depth = 0
        var i = open
        while i < to {
            if isOpen(b[i]) { depth += 1 }
            else if isClose(b, i) {
                depth -= 1
                if depth == 0 { return i }
            }
            i += 1
        }
        return nil
    }

    private static func simplifySegment(_ b: [UInt8], _ from: Int, _ to: Int, into out: inout [UInt8]) {
        var s = from
        for p in closurePrefixes where hasPrefix(b, s, p) {
            // "closure #1 (Swift.Int) -> () " → "closure #1"
            var e = s + p.count
            while e < to, b[e] >= 48, b[e] <= 57 { e += 1 }
            out.append(contentsOf: b[s..<e])
            return
        }
        if hasPrefix(b, s, extensionPrefix), let close = matching(b, s, to) {
            s = close + 1
            if s < to, b[s] == 58 { s += 1 }  // ':'
        }
        // The first top-level "(" opens the parameter list; generic parameters right before it go.
        var depth = 0
        var i = s
        var genericStart: Int? = nil
        while i < to {
            let c = b[i]
            if c == 60 {  // <
                if depth == 0 { genericStart = i }
                depth += 1
            } else if c == 62 && depth > 0 && !(i > 0 && b[i - 1] == 45) {
                depth -= 1
            } else if c == 40 && depth == 0 {  // (
                guard let close = matching(b, i, to) else { break }
                // "(extension in Module):" says where an extension was declared: drop it.
                if hasPrefix(b, i, extensionPrefix), close + 1 < to, b[close + 1] == 58 {
                    out.append(contentsOf: b[s..<i])
                    s = close + 2
                    i = s
                    genericStart = nil
                    continue
                }
                // "(name in _0123ABCD)" names a private declaration: keep "name", go on.
                if i == s || b[i - 1] == 46 || b[i - 1] == 32, let inPos = find(b, i + 1, close, privateIn) {
                    out.append(contentsOf: b[s..<i])
                    out.append(contentsOf: b[(i + 1)..<inPos])
                    s = close + 1
                    i = s
                    genericStart = nil
                    continue
                }
                // A "(" after a space starts a function *type* ("… @callee_guaranteed (A) -> B"),
                // not a parameter list: the name ends before it.
                if i > s && b[i - 1] == 32 {
                    out.append(contentsOf: b[s..<(i - 1)])
                    return
                }
                let nameEnd = (genericStart != nil && i > s && b[i - 1] == 62) ? genericStart! : i
                out.append(contentsOf: b[s..<nameEnd])
                out.append(40)
                var p = i + 1
                while p < close {
                    let e = find(b, p, close, commaSpace) ?? close
                    appendLabel(b, p, e, into: &out)
                    p = e + 2
                }
                out.append(41)
                return
            } else if c == 32 && depth == 0 && hasPrefix(b, i, spaceColonSpace) {
                // "Module.X.prop.getter : Swift.Int" — no parameter list before the type.
                out.append(contentsOf: b[s..<i])
                return
            }
            i += 1
        }
        out.append(contentsOf: b[s..<to])
    }

    private static let commaSpace = Array(", ".utf8)
    private static let privateIn = Array(" in _".utf8)
    private static let spaceColonSpace = Array(" : ".utf8)

    /// "label: Type" → "label:", "Type" → "_:".
    private static func appendLabel(_ b: [UInt8], _ from: Int, _ to: Int, into out: inout [UInt8]) {
        var s = from
        while s < to && b[s] == 32 { s += 1 }
        guard s < to else { return }
        var i = s
        while i < to, b[i] == 95 || (b[i] >= 48 && b[i] <= 57) || (b[i] | 0x20 >= 97 && b[i] | 0x20 <= 122) || b[i] >= 0x80 {
            i += 1
        }
        if i > s && i + 1 < to && b[i] == 58 && b[i + 1] == 32 {
            out.append(contentsOf: b[s...i])
        } else {
            out.append(contentsOf: [95, 58])
        }
    }

    /// Demangle then simplify.
    public static func displayName(_ symbol: String) -> String {
        let d = demangle(symbol)
        return isSwiftMangled(symbol) ? simplify(d) : d
    }
}
