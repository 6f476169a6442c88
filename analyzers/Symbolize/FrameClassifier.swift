import Foundation

/// Where a frame's code comes from, so the analyzer can show (and fingerprint) the user's frame
/// rather than the recorder's, Tangle's or the system's.
public enum FrameOrigin: String, Sendable, Codable {
    /// The application (anything not recognized below, including its unsymbolized frames).
    case user
    /// Tangle's own runtime and recorder (`Tangle.`, `TangleRecorder.`, `TangleTraceFormat.`, and
    /// `TangleTrace.`, the recorder's module before the format had its own; the C shims `tangle_…`).
    case tangle
    /// The Swift runtime and standard library (`Swift.`, `_Concurrency.`, `swift_…`, libswift*.so).
    case swiftRuntime = "swift-runtime"
    /// libc, the dynamic loader, libdispatch, Foundation, XCTest, libstdc++, …
    case system
    /// An address outside every module.
    case unknown
}

public enum FrameClassifier {
    private static let tanglePrefixes = ["Tangle.", "TangleRecorder.", "TangleTraceFormat.", "TangleTrace.", "CTangleSupport.", "tangle_"]
    private static let swiftPrefixes = ["Swift.", "_Concurrency.", "_StringProcessing.", "Synchronization.",
                                        "swift_", "swift::", "__swift", "_swift_", "reabstraction thunk",
                                        "thunk for ", "protocol witness for Swift."]
    private static let systemPrefixes = ["Foundation.", "FoundationEssentials.", "FoundationInternationalization.",
                                         "XCTest.", "Dispatch.", "Testing.", "__libc_", "_start", "__GI_",
                                         "_dispatch_", "dispatch_", "start_thread", "clone"]
    private static let swiftModules = ["libswiftCore.so", "libswift_Concurrency.so", "libswiftDispatch.so",
                                       "libswiftSynchronization.so", "libswift_StringProcessing.so",
                                       "libswiftGlibc.so", "libswift_RegexParser.so", "libswiftRuntime.so"]
    private static let systemModulePrefixes = ["libc.so", "libc-", "ld-linux", "ld64.so", "libpthread", "libm.so",
                                               "libdl.so", "librt.so", "libdispatch.so", "libBlocksRuntime.so",
                                               "libFoundation", "lib_FoundationICU.so", "libXCTest.so",
                                               "libTesting.so", "libstdc++.so", "libgcc_s.so", "libdw", "libelf",
                                               "liblz4", "libz.so", "linux-vdso", "linux-gate", "python-stdlib"]

    /// A module a user never debugs: the system's and the toolchain's shared libraries.
    public static func isSystemModule(path: String) -> Bool {
        let name = (path as NSString).lastPathComponent
        return swiftModules.contains(where: { name.hasPrefix($0) })
            || systemModulePrefixes.contains(where: { name.hasPrefix($0) })
    }

    /// The origin of one frame, from its function name (closures count as the function they are
    /// in) and else its module.
    public static func origin(of frame: Frame) -> FrameOrigin {
        if frame.module == Symbolizer.unknownModule { return .unknown }
        if let f = frame.function {
            let owner = enclosingFunction(f)
            // SwiftPM renames an executable's `main` to `<module>_main`: the `tangle` CLI's own
            // entry point is not Tangle's runtime.
            if isTangleFunction(owner) { return .tangle }
            if swiftPrefixes.contains(where: { owner.hasPrefix($0) }) { return .swiftRuntime }
            if systemPrefixes.contains(where: { owner.hasPrefix($0) }) { return .system }
        }
        if swiftModules.contains(where: { frame.module.hasPrefix($0) }) { return .swiftRuntime }
        if systemModulePrefixes.contains(where: { frame.module.hasPrefix($0) }) { return .system }
        return .user
    }

    /// True for frames inside Tangle's runtime/recorder, the Swift runtime, libc, libdispatch,
    /// Foundation… and for unknown addresses: everything that is not the application's code.
    public static func isRuntimeFrame(_ frame: Frame) -> Bool { origin(of: frame) != .user }

    /// The stack from the first application frame on (innermost first): the recorder's, Tangle's and
    /// the system's frames above it are dropped. Empty when no frame is the application's.
    public static func userFrames(_ frames: [Frame]) -> ArraySlice<Frame> {
        guard let i = frames.firstIndex(where: { !isRuntimeFrame($0) }) else { return [] }
        return frames[i...]
    }

    /// The innermost application frame, the one a finding should point at.
    public static func firstUserFrame(_ frames: [Frame]) -> Frame? {
        frames.first(where: { !isRuntimeFrame($0) })
    }

    /// Tangle's runtime, recorder or C shims. `tangle_` names only the C shims (no module dot):
    /// a Swift module such as `tangle_scenarios` is an application. SwiftPM renames an
    /// executable's `main` to `<module>_main`: the `tangle` CLI's entry point is not the runtime.
    static func isTangleFunction(_ owner: Substring) -> Bool {
        if owner.hasSuffix("_main") { return false }
        if owner.hasPrefix("tangle_") { return !owner.contains(".") }
        return tanglePrefixes.contains(where: { owner.hasPrefix($0) })
    }

    /// "closure #1 in static closure #2 in static Tangle.Pool.map(_:)" → "Tangle.Pool.map(_:)".
    static func enclosingFunction(_ name: String) -> Substring {
        var s = Substring(name)
        while true {
            if s.hasPrefix("static ") {
                s = s.dropFirst(7)
            } else if s.hasPrefix("closure #") || s.hasPrefix("implicit closure #") {
                guard let r = s.range(of: " in ") else { break }
                s = s[r.upperBound...]
            } else {
                break
            }
        }
        return s
    }

    /// A function name as a fingerprint sees it: what an unrelated edit elsewhere in the file can
    /// change is dropped — closure ordinals ("closure #2 in f()" → "closure in f()": a new entry
    /// point above shifts them), specialization and partial-apply wrappers, `merged` and `(extension
    /// in M)` qualifiers. Nil for a thunk (compiler glue, no code of the program's own).
    public static func stableName(_ name: String) -> String? {
        var s = name
        for thunk in ["reabstraction thunk", "thunk for ", "dispatch thunk of ", "protocol witness for ", "outlined "]
            where s.hasPrefix(thunk) { return nil }
        for wrapper in ["partial apply for ", "merged "] where s.hasPrefix(wrapper) { s.removeFirst(wrapper.count) }
        // "generic specialization <Int> of f()", "function signature specialization <…> of f()".
        while let r = s.range(of: "specialization <"), let close = matchingClose(s, from: r.upperBound) {
            var start = r.lowerBound
            for lead in ["generic ", "function signature "] where s[..<start].hasSuffix(lead) {
                start = s.index(start, offsetBy: -lead.count)
            }
            var end = s.index(after: close)
            if s[end...].hasPrefix(" of ") { end = s.index(end, offsetBy: 4) }
            s.removeSubrange(start..<end)
        }
        s = s.replacingOccurrences(of: #"(implicit )?closure #\d+"#, with: "$1closure", options: .regularExpression)
        s = s.replacingOccurrences(of: #"\(extension in [^)]*\):"#, with: "", options: .regularExpression)
        return s
    }

    /// The index of the `>` closing the `<` just before `from`.
    private static func matchingClose(_ s: String, from: String.Index) -> String.Index? {
        var depth = 1
        var i = from
        while i < s.endIndex {
            if s[i] == "<" { depth += 1 }
            if s[i] == ">" { depth -= 1; if depth == 0 { return i } }
            i = s.index(after: i)
        }
        return nil
    }

    /// One line for a frame: `function (file:line) [module+0xoffset]`, with `[inlined]` when so.
    public static func describe(_ frame: Frame) -> String {
        var s = frame.function ?? "???"
        if let file = frame.file {
            s += " (\((file as NSString).lastPathComponent)\(frame.line.map { ":\($0)" } ?? ""))"
        }
        s += " [\(frame.module)+0x\(String(frame.offset, radix: 16))]"
        if frame.inlined { s += " [inlined]" }
        return s
    }
}
