import CTangleSupport
import Foundation
import TangleAnalysis
import TangleBenchmarks
import TangleTraceFormat
import XCTest

/// Captures return addresses inside a known, non-inlined function. The line of the call that
/// produces them is returned with them (both on one line, so `pc - 1` must map back to it).
@inline(never)
func symbolizeTestsCaptureStack() -> (pcs: [UInt64], line: Int) {
    let line = #line; let pcs = Thread.callStackReturnAddresses.map { UInt64($0.uintValue) }
    return (pcs, line)
}

/// The recorder's own frame-pointer walk (CTangleSupport), as every trace stack is captured: the
/// first pc is the return address into this function.
@inline(never)
func symbolizeTestsRecorderWalk() -> (pcs: [UInt64], line: Int) {
    var lo: UInt = 0, hi: UInt = 0
    guard tangle_thread_stack_range(&lo, &hi) == 0 else { return ([], 0) }
    var buf = [UInt](repeating: 0, count: 32)
    let line = #line; let n = tangle_fp_walk(&buf, 32, 0, lo, hi)
    return (buf.prefix(Int(n)).map { UInt64($0) }, line)
}

/// The recorder's module table (tangle_modules), as the trace header carries it.
func symbolizeTestsRecorderModules() -> [ModuleInfo] {
    final class Box { var list: [ModuleInfo] = [] }
    let box = Box()
    _ = tangle_modules({ mp, ctx in
        guard let m = mp?.pointee, let ctx else { return }
        let box = Unmanaged<Box>.fromOpaque(ctx).takeUnretainedValue()
        var id = ""
        if let b = m.build_id { for i in 0..<m.build_id_len { id += String(format: "%02x", b[i]) } }
        box.list.append(ModuleInfo(path: m.path.map { String(cString: $0) } ?? "", buildID: id, bias: m.bias, low: m.lo, high: m.hi))
    }, Unmanaged.passUnretained(box).toOpaque())
    return box.list
}

/// A tiny C program, compiled once per test run with `cc -g -O2 -no-pie`: `leaf` prints its own
/// return address, which lies in `main` inside the inlined body of `middle` (from a header, so the
/// inlined frame and its caller are in different files).
private let cHeader = """
__attribute__((noinline)) void leaf(void);
static inline __attribute__((always_inline)) void middle(void) {
    leaf();
    __asm__ volatile("");
}
"""
private let cProgram = """
#include <stdio.h>
#include "inl.h"
__attribute__((noinline)) void leaf(void) {
    printf("%p\\n", __builtin_return_address(0));
    __asm__ volatile("");
}
int main(void) {
    middle();
    return 0;
}
"""
private let cCallLeafLine = 3     // `leaf();` in middle, inl.h
private let cCallMiddleLine = 8   // `middle();` in main, prog.c

/// The C fixture: built binaries and the address `leaf` printed (a file address: -no-pie).
private final class CFixture: @unchecked Sendable {
    let dir: String
    let binary: String
    let variant: String   // same program with one more global: another build id
    let returnAddress: UInt64
    let buildID: String
    let variantBuildID: String

    static let shared: CFixture? = try? CFixture()
    static let directory = NSTemporaryDirectory() + "tangle-symbolize-\(getpid())"
    nonisolated(unsafe) static var built = false
    /// The C compiler (`TANGLE_TEST_CC` overrides: e.g. the toolchain's clang, for LLVM's DWARF).
    static let cc = ProcessInfo.processInfo.environment["TANGLE_TEST_CC"] ?? "cc"

    init() throws {
        dir = CFixture.directory
        CFixture.built = true
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let src = dir + "/prog.c"
        try cProgram.write(toFile: src, atomically: true, encoding: .utf8)
        try cHeader.write(toFile: dir + "/inl.h", atomically: true, encoding: .utf8)
        try (cProgram + "\nint tangle_variant = 42;\n").write(toFile: dir + "/variant.c", atomically: true, encoding: .utf8)
        binary = dir + "/prog"
        variant = dir + "/variant"
        try CFixture.run("/usr/bin/env", [CFixture.cc, "-g", "-O2", "-no-pie", "-fno-omit-frame-pointer", "-Wl,--build-id", src, "-o", binary])
        try CFixture.run("/usr/bin/env", [CFixture.cc, "-g", "-O2", "-no-pie", "-fno-omit-frame-pointer", "-Wl,--build-id", dir + "/variant.c", "-o", variant])
        let out = try CFixture.run(binary, [])
        let hex = out.trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: "0x", with: "")
        guard let addr = UInt64(hex, radix: 16) else { throw NSError(domain: "fixture", code: 1) }
        returnAddress = addr
        buildID = Symbolizer.buildID(ofFile: binary) ?? ""
        variantBuildID = Symbolizer.buildID(ofFile: variant) ?? ""
    }

    @discardableResult
    static func run(_ exe: String, _ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw NSError(domain: "fixture", code: Int(p.terminationStatus),
                          userInfo: [NSLocalizedDescriptionKey: "\(exe) \(args) failed"])
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// A module table entry for a copy of the program "loaded" at a made-up bias.
    func module(path: String, buildID: String? = nil) -> ModuleInfo {
        ModuleInfo(path: path, buildID: buildID ?? self.buildID, bias: CFixture.bias, low: CFixture.bias + 0x400000,
                   high: CFixture.bias + 0x600000)
    }
    static let bias: UInt64 = 0x7f00_0000_0000
    var pc: UInt64 { CFixture.bias + returnAddress }
}

final class SymbolizeTests: XCTestCase {
    /// One symbolizer (one libdw session) for the tests on the test process's own frames.
    private static let own = Symbolizer(modules: [getpid(): LiveModules.current()])

    /// The fixture's temporary directory goes when the class's tests are done.
    override class func tearDown() {
        if CFixture.built { try? FileManager.default.removeItem(atPath: CFixture.directory) }
        super.tearDown()
    }

    private func fixture() throws -> CFixture {
        guard let f = CFixture.shared else { throw XCTSkip("no C compiler to build the fixture") }
        return f
    }

    /// A known @inline(never) Swift function of this file: demangled name, this file, the line of the
    /// call (pc - 1 of a return address), the test binary as module; the caller is the test method.
    func testSymbolizesOwnSwiftFrames() throws {
        let (pcs, line) = symbolizeTestsCaptureStack()
        let stack = Self.own.symbolize(pid: getpid(), pcs: pcs)
        print("own stack:\n  " + stack.frames.prefix(12).map(FrameClassifier.describe).joined(separator: "\n  "))
        // One frame per pc, more where DWARF says code was inlined (at -O).
        XCTAssertGreaterThanOrEqual(stack.frames.count, pcs.count)
        XCTAssertEqual(stack.frames.filter { !$0.inlined }.count, pcs.count)
        let i = try XCTUnwrap(stack.frames.firstIndex { $0.function?.contains("symbolizeTestsCaptureStack") == true },
                              "frames: \(stack.frames.map(FrameClassifier.describe))")
        let f = stack.frames[i]
        XCTAssertEqual(f.function, "TangleAnalysisTests.symbolizeTestsCaptureStack()")
        XCTAssertEqual(f.file.map { ($0 as NSString).lastPathComponent }, "SymbolizeTests.swift")
        XCTAssertEqual(f.line, line)
        XCTAssertFalse(f.inlined)
        XCTAssertFalse(f.module.hasPrefix("lib"), "the test binary, not a library: \(f.module)")
        // The caller is this test method (at -O it may be inlined into XCTest's closure: still named).
        let caller = try XCTUnwrap(stack.frames[(i + 1)...].first { $0.function?.contains("testSymbolizesOwnSwiftFrames") == true },
                                   "frames: \(stack.frames.map(FrameClassifier.describe))")
        XCTAssertEqual(caller.function, "TangleAnalysisTests.SymbolizeTests.testSymbolizesOwnSwiftFrames()")
        XCTAssertEqual(caller.file.map { ($0 as NSString).lastPathComponent }, "SymbolizeTests.swift")
        // Above the capture are Foundation's frames (callStackReturnAddresses): not the user's.
        XCTAssertTrue(stack.frames[..<i].allSatisfy(FrameClassifier.isRuntimeFrame),
                      "\(stack.frames[..<i].map(FrameClassifier.describe))")
        XCTAssertEqual(FrameClassifier.firstUserFrame(stack.frames), f)
        XCTAssertEqual(FrameClassifier.userFrames(stack.frames).first, f)
        // Offsets are file addresses of the pcs themselves.
        let exe = LiveModules.current().first { $0.low <= pcs[i] && pcs[i] < $0.high }!
        XCTAssertEqual(f.offset, pcs[i] - exe.bias)
        // The same stack again comes from the cache and is identical.
        let before = Self.own.statistics
        XCTAssertEqual(Self.own.symbolize(pid: getpid(), pcs: pcs), stack)
        XCTAssertEqual(Self.own.statistics.cacheHits - before.cacheHits, pcs.count)
    }

    /// The product path: the recorder's frame-pointer walk and module table (as in a trace header,
    /// the executable's empty path filled from the header), symbolized: the first frame is the
    /// walking function at the line of the walk, the second this test. LiveModules agrees with the
    /// recorder's table.
    func testRecorderWalkAndModuleTableSymbolize() throws {
        let (pcs, line) = symbolizeTestsRecorderWalk()
        XCTAssertGreaterThan(pcs.count, 2)
        var table = symbolizeTestsRecorderModules()
        let live = LiveModules.current()
        XCTAssertEqual(table.count, live.count)
        XCTAssertEqual(table.dropFirst().map(\.path), live.dropFirst().map(\.path))
        XCTAssertEqual(table.map(\.buildID), live.map(\.buildID))
        XCTAssertEqual(table.map(\.bias), live.map(\.bias))
        XCTAssertEqual(table.map(\.low), live.map(\.low))
        XCTAssertEqual(table.map(\.high), live.map(\.high))
        let exe = try XCTUnwrap(try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        table[0].path = ""
        let header = TraceHeader(pid: 4242, ppid: 1, executable: exe, argv0: exe, bootID: "", startTime: 0, modules: table)
        let sym = Symbolizer(headers: [4242: header])
        let stack = sym.symbolize(pid: 4242, pcs: pcs)
        let real = stack.frames.filter { !$0.inlined }
        XCTAssertEqual(real.first?.function, "TangleAnalysisTests.symbolizeTestsRecorderWalk()",
                       "\(stack.frames.map(FrameClassifier.describe))")
        XCTAssertEqual(real.first?.line, line)
        XCTAssertEqual(real.first?.file.map { ($0 as NSString).lastPathComponent }, "SymbolizeTests.swift")
        XCTAssertTrue(stack.frames.contains { $0.function == "TangleAnalysisTests.SymbolizeTests.testRecorderWalkAndModuleTableSymbolize()" })
        XCTAssertEqual(stack.warnings, [])
    }

    /// The C fixture at -O2: the return address lies in `middle`, inlined into `main`: two frames,
    /// the inlined one first with the call line of `leaf`, then `main` at the call of `middle`.
    func testInlinedFramesFromDWARF() throws {
        let fx = try fixture()
        let sym = Symbolizer(modules: [7: [fx.module(path: fx.binary)]])
        let stack = sym.symbolize(pid: 7, pcs: [fx.pc])
        XCTAssertEqual(stack.warnings, [])
        XCTAssertEqual(stack.frames.map(\.function), ["middle", "main"], "\(stack.frames.map(FrameClassifier.describe))")
        XCTAssertEqual(stack.frames.map(\.line), [cCallLeafLine, cCallMiddleLine])
        XCTAssertEqual(stack.frames.map(\.inlined), [true, false])
        XCTAssertEqual(stack.frames.map { ($0.file.map { ($0 as NSString).lastPathComponent }) }, ["inl.h", "prog.c"])
        XCTAssertEqual(stack.frames.map(\.module), ["prog", "prog"])
        XCTAssertEqual(stack.frames.map(\.offset), [fx.returnAddress, fx.returnAddress])
    }

    /// A stripped copy (same build id): module + offset only, and a warning saying it is stripped.
    func testStrippedBinaryGivesModuleOffsetAndWarning() throws {
        let fx = try fixture()
        let stripped = fx.dir + "/stripped/prog"
        try FileManager.default.createDirectory(atPath: fx.dir + "/stripped", withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: stripped)
        try CFixture.run("/usr/bin/env", ["strip", "-o", stripped, fx.binary])
        XCTAssertEqual(Symbolizer.buildID(ofFile: stripped), fx.buildID, "strip keeps the build id")
        let sym = Symbolizer(modules: [7: [fx.module(path: stripped)]])
        let stack = sym.symbolize(pid: 7, pcs: [fx.pc])
        XCTAssertEqual(stack.frames, [Frame(function: nil, file: nil, line: nil, module: "prog", offset: fx.returnAddress)])
        XCTAssertEqual(stack.warnings.count, 1)
        guard stack.warnings.count == 1 else { return }
        XCTAssertTrue(stack.warnings[0].contains("stripped"), stack.warnings[0])
        XCTAssertEqual(sym.warnings, stack.warnings)
        let reportStack = sym.stack(label: "blocked in get", pid: 7, tid: 8, pcs: [fx.pc])
        XCTAssertEqual(reportStack.frames, stack.frames)
        XCTAssertEqual(reportStack.warning, stack.warnings[0])
    }

    /// A stripped binary whose debug information was kept apart (`objcopy --only-keep-debug`) and
    /// put in `--symbols DIR` under `.build-id/xx/rest.debug`: full names and lines, no warning.
    func testSeparateDebugFileFoundByBuildID() throws {
        let fx = try fixture()
        let base = fx.dir + "/split"
        let ids = base + "/debug/.build-id/" + fx.buildID.prefix(2)
        try? FileManager.default.removeItem(atPath: base)
        try FileManager.default.createDirectory(atPath: ids, withIntermediateDirectories: true)
        try CFixture.run("/usr/bin/env", ["objcopy", "--only-keep-debug", fx.binary, ids + "/" + fx.buildID.dropFirst(2) + ".debug"])
        try CFixture.run("/usr/bin/env", ["strip", "-o", base + "/prog", fx.binary])
        let without = Symbolizer(modules: [7: [fx.module(path: base + "/prog")]])
        XCTAssertEqual(without.symbolize(pid: 7, pcs: [fx.pc]).frames.map(\.function), [nil])
        let with = Symbolizer(modules: [7: [fx.module(path: base + "/prog")]], searchDirectories: [base + "/debug"])
        let s = with.symbolize(pid: 7, pcs: [fx.pc])
        XCTAssertEqual(s.warnings, [])
        XCTAssertEqual(s.frames.map(\.function), ["middle", "main"])
        XCTAssertEqual(s.frames.map(\.line), [cCallLeafLine, cCallMiddleLine])
        // Only the debug file is left (the binary itself is gone): it alone is enough.
        let onlyDebug = Symbolizer(modules: [7: [fx.module(path: base + "/gone/prog")]], searchDirectories: [base + "/debug"])
        let d = onlyDebug.symbolize(pid: 7, pcs: [fx.pc])
        XCTAssertEqual(d.warnings, [])
        XCTAssertEqual(d.frames.map(\.function), ["middle", "main"])
    }

    /// A debuglink (`objcopy --add-gnu-debuglink`) beside the binary is followed; a FIFO planted
    /// where a debug file is looked for (beside the binary, or in the build-id tree of a search
    /// directory) is not opened: symbolizing returns, without the lines, instead of hanging.
    func testDebugLinkFollowedAndFIFOsNotOpened() throws {
        let fx = try fixture()
        let base = fx.dir + "/link"
        try? FileManager.default.removeItem(atPath: base)
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        try CFixture.run("/usr/bin/env", ["objcopy", "--only-keep-debug", fx.binary, base + "/prog.debug"])
        try CFixture.run("/usr/bin/env", ["objcopy", "--strip-debug", "--strip-unneeded", "--add-gnu-debuglink=" + base + "/prog.debug",
                                          fx.binary, base + "/prog"])
        let linked = Symbolizer(modules: [7: [fx.module(path: base + "/prog")]]).symbolize(pid: 7, pcs: [fx.pc])
        XCTAssertEqual(linked.frames.map(\.line), [cCallLeafLine, cCallMiddleLine], "the debuglink beside the binary is followed")

        // The same places, now FIFOs (nobody will ever open their write end).
        XCTAssertEqual(unlink(base + "/prog.debug"), 0)
        XCTAssertEqual(mkfifo(base + "/prog.debug", 0o600), 0)
        let ids = base + "/debug/.build-id/" + fx.buildID.prefix(2)
        try FileManager.default.createDirectory(atPath: ids, withIntermediateDirectories: true)
        XCTAssertEqual(mkfifo(ids + "/" + fx.buildID.dropFirst(2) + ".debug", 0o600), 0)
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var lines: [Int?] = []
        let module = fx.module(path: base + "/prog"), pc = fx.pc
        Thread.detachNewThread {
            let sym = Symbolizer(modules: [7: [module]], searchDirectories: [base + "/debug"])
            lines = sym.symbolize(pid: 7, pcs: [pc]).frames.map(\.line)
            done.signal()
        }
        XCTAssertEqual(done.wait(timeout: .now() + 30), .success, "symbolizing hung on a FIFO planted as a debug file")
        XCTAssertFalse(lines.contains { $0 != nil }, "no line can come from a FIFO: \(lines)")
    }

    /// The recorded path no longer exists; `--symbols DIR` holds the binary (by file name, or only
    /// under `.build-id/xx/rest`): it is found, checked and used.
    func testMovedBinaryFoundInSearchDirectory() throws {
        let fx = try fixture()
        let gone = "/nonexistent/build/prog"
        let missing = Symbolizer(modules: [7: [fx.module(path: gone)]])
        let m = missing.symbolize(pid: 7, pcs: [fx.pc])
        XCTAssertEqual(m.frames, [Frame(function: nil, file: nil, line: nil, module: "prog", offset: fx.returnAddress)])
        XCTAssertTrue(m.warnings.first?.contains("not found") == true, "\(m.warnings)")

        let byName = Symbolizer(modules: [7: [fx.module(path: gone)]], searchDirectories: ["/nonexistent2", fx.dir])
        let s = byName.symbolize(pid: 7, pcs: [fx.pc])
        XCTAssertEqual(s.warnings, [])
        XCTAssertEqual(s.frames.map(\.function), ["middle", "main"])

        // Deeper in the tree (a build directory's root): found by name a few levels down.
        let deep = fx.dir + "/tree/x86_64-unknown-linux-gnu/release"
        try FileManager.default.createDirectory(atPath: deep, withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: deep + "/prog")
        try FileManager.default.copyItem(atPath: fx.binary, toPath: deep + "/prog")
        let byTree = Symbolizer(modules: [7: [fx.module(path: gone)]], searchDirectories: [fx.dir + "/tree"])
        XCTAssertEqual(byTree.symbolize(pid: 7, pcs: [fx.pc]).frames.map(\.function), ["middle", "main"])

        let idDir = fx.dir + "/ids"
        let sub = idDir + "/.build-id/" + fx.buildID.prefix(2)
        try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: true)
        let target = sub + "/" + fx.buildID.dropFirst(2)
        try? FileManager.default.removeItem(atPath: target)
        try FileManager.default.copyItem(atPath: fx.binary, toPath: target)
        let byID = Symbolizer(modules: [7: [fx.module(path: "/elsewhere/renamed-prog")]], searchDirectories: [idDir])
        let t = byID.symbolize(pid: 7, pcs: [fx.pc])
        XCTAssertEqual(t.warnings, [])
        XCTAssertEqual(t.frames.map(\.function), ["middle", "main"])
        XCTAssertEqual(t.frames.first?.module, "renamed-prog")
    }

    /// The file at the recorded path has another build id (rebuilt since the run): no names from
    /// it, a warning naming both ids; a search directory holding the right binary fixes it.
    func testBuildIDMismatchWarnsAndInventsNothing() throws {
        let fx = try fixture()
        XCTAssertFalse(fx.buildID.isEmpty)
        XCTAssertNotEqual(fx.buildID, fx.variantBuildID)
        guard !fx.buildID.isEmpty else { return }
        let sym = Symbolizer(modules: [7: [fx.module(path: fx.variant, buildID: fx.buildID)]])
        let stack = sym.symbolize(pid: 7, pcs: [fx.pc])
        XCTAssertEqual(stack.frames, [Frame(function: nil, file: nil, line: nil, module: "variant", offset: fx.returnAddress)])
        XCTAssertEqual(stack.warnings.count, 1)
        guard stack.warnings.count == 1 else { return }
        XCTAssertTrue(stack.warnings[0].contains("build id mismatch"), stack.warnings[0])
        XCTAssertTrue(stack.warnings[0].contains(fx.buildID) && stack.warnings[0].contains(fx.variantBuildID))

        let ids = fx.dir + "/ids2/.build-id/" + fx.buildID.prefix(2)
        try FileManager.default.createDirectory(atPath: ids, withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: ids + "/" + fx.buildID.dropFirst(2))
        try FileManager.default.copyItem(atPath: fx.binary, toPath: ids + "/" + fx.buildID.dropFirst(2))
        let fixed = Symbolizer(modules: [7: [fx.module(path: fx.variant, buildID: fx.buildID)]],
                               searchDirectories: [fx.dir + "/ids2"])
        XCTAssertEqual(fixed.symbolize(pid: 7, pcs: [fx.pc]).frames.map(\.function), ["middle", "main"])
    }

    /// Addresses outside every module, and a pid without a module table: "[unknown]" frames with
    /// the raw address, and a warning; known frames of the same stack are still symbolized.
    func testUnknownAddressesAndProcesses() throws {
        let fx = try fixture()
        let sym = Symbolizer(modules: [7: [fx.module(path: fx.binary)]])
        let stack = sym.symbolize(pid: 7, pcs: [0x1234, fx.pc])
        XCTAssertEqual(stack.frames.first, Frame(function: nil, file: nil, line: nil, module: "[unknown]", offset: 0x1234))
        XCTAssertEqual(stack.frames.dropFirst().map(\.function), ["middle", "main"])
        XCTAssertEqual(stack.warnings.count, 1)
        guard stack.warnings.count == 1 else { return }
        XCTAssertTrue(stack.warnings[0].contains("outside every module"), stack.warnings[0])
        XCTAssertEqual(FrameClassifier.origin(of: stack.frames[0]), .unknown)

        let none = sym.symbolize(pid: 8, pcs: [fx.pc])
        XCTAssertEqual(none.frames.map(\.module), ["[unknown]"])
        XCTAssertTrue(none.warnings.first?.contains("no module table for pid 8") == true)

        // A library loaded after the header (a `module` record) joins the process's table.
        sym.addModules(pid: 7, modules: [ModuleInfo(path: fx.binary, buildID: fx.buildID, bias: 0, low: 0x400000, high: 0x600000)])
        XCTAssertEqual(sym.symbolize(pid: 7, pcs: [fx.returnAddress]).frames.map(\.function), ["middle", "main"])
        XCTAssertEqual(sym.symbolize(pid: 7, pcs: [fx.pc]).frames.map(\.function), ["middle", "main"])
    }

    /// Only the first pc of a stack may be exact: with `firstIsExact` the address itself is looked
    /// up, otherwise pc - 1. At a function's first byte the two differ.
    func testExactFirstPC() throws {
        let fx = try fixture()
        // The address right after the call is the return address; pc-1 is in the call (inlined
        // middle), the exact address may already belong to the next line of main.
        let sym = Symbolizer(modules: [7: [fx.module(path: fx.binary)]])
        let asReturn = sym.symbolize(pid: 7, pcs: [fx.pc])
        XCTAssertEqual(asReturn.frames.first?.line, cCallLeafLine)
        let exact = sym.symbolize(pid: 7, pcs: [fx.pc], firstIsExact: true)
        XCTAssertEqual(exact.frames.last?.function, "main")
    }

    /// Demangling goes through swift_demangle; the simplified form keeps module and type, drops
    /// parameter types, return types, generic signatures and specialization wrappers.
    func testDemangleAndSimplify() {
        XCTAssertTrue(Demangler.hasSwiftDemangler)
        XCTAssertEqual(Demangler.demangle("$sSi"), "Swift.Int")
        XCTAssertEqual(Demangler.demangle("main"), "main")
        XCTAssertEqual(Demangler.simplify("TangleAnalysisTests.SymbolizeTests.capture(depth: Swift.Int, _: [Swift.UInt64]) -> [Swift.UInt64]"),
                       "TangleAnalysisTests.SymbolizeTests.capture(depth:_:)")
        XCTAssertEqual(Demangler.simplify("closure #1 (Swift.Int) -> () in App.Worker.run() async throws -> ()"),
                       "closure #1 in App.Worker.run()")
        XCTAssertEqual(Demangler.simplify("generic specialization <Swift.Int> of Tangle.Queue.get(timeout: Swift.Double?) throws -> A"),
                       "Tangle.Queue.get(timeout:)")
        XCTAssertEqual(Demangler.simplify("App.Box.value.getter : Swift.Int"), "App.Box.value.getter")
        XCTAssertEqual(Demangler.simplify("App.map<A where A: Swift.Equatable>(_: [A], f: (A) -> A) -> [A]"), "App.map(_:f:)")
        XCTAssertEqual(Demangler.simplify("(extension in App):Swift.Array<A>.first2() -> A?"), "Swift.Array<A>.first2()")
        XCTAssertEqual(Demangler.simplify("static App.Demangler.(hasPrefix in _6F9B1C4D)([Swift.UInt8], Swift.Int) -> Swift.Bool"),
                       "static App.Demangler.hasPrefix(_:_:)")
        XCTAssertEqual(Demangler.simplify("App.(Helper in _0A1B).run(x: Swift.Int) -> ()"), "App.Helper.run(x:)")
        XCTAssertEqual(Demangler.simplify("main"), "main")
        XCTAssertEqual(Demangler.simplify("implicit closure #16 () throws -> () in implicit closure #15 (App.T) -> () throws -> () in variable initialization expression of static (extension in Gen):App.T.(__allTests__T in _A4328DCB) : [(Swift.String, (App.T) -> () throws -> ())]"),
                       "implicit closure #16 in implicit closure #15 in variable initialization expression of static App.T.__allTests__T")
        XCTAssertEqual(Demangler.simplify("partial apply forwarder for reabstraction thunk helper from @escaping @callee_guaranteed (@guaranteed App.T) -> (@owned @escaping @callee_guaranteed () -> ()) to @escaping @callee_guaranteed (@guaranteed App.T) -> ()"),
                       "reabstraction thunk helper from @escaping @callee_guaranteed")
    }

    /// Frame classes: Tangle's runtime and closures inside it, the Swift runtime, the system, the
    /// user's code (including a user closure passed into Tangle).
    func testFrameClassification() {
        func f(_ name: String?, _ module: String = "app") -> Frame {
            Frame(function: name, file: nil, line: nil, module: module, offset: 0)
        }
        XCTAssertEqual(FrameClassifier.origin(of: f("TangleTrace.Recorder.record(_:object:a:b:c:result:stack:)")), .tangle)
        XCTAssertEqual(FrameClassifier.origin(of: f("TangleRecorder.Recorder.record(_:object:a:b:c:result:stack:)")), .tangle)
        XCTAssertEqual(FrameClassifier.origin(of: f("closure #2 in Tangle.Pool.map(_:)")), .tangle)
        XCTAssertEqual(FrameClassifier.origin(of: f("static Tangle.Recorder.flush()")), .tangle)
        XCTAssertEqual(FrameClassifier.origin(of: f("tangle_fp_walk")), .tangle)
        XCTAssertEqual(FrameClassifier.origin(of: f("tangle_main", "tangle")), .user)
        // An application module whose name starts with tangle_ (the scenarios) is user code; a
        // closure inside a static Tangle function is Tangle's.
        XCTAssertEqual(FrameClassifier.origin(of: f("tangle_scenarios.nestedAcquire(_:_:)", "tangle-scenarios")), .user)
        XCTAssertEqual(FrameClassifier.origin(of: f("closure #1 in static Tangle.EntryPoint.register(_:_:)")), .tangle)
        XCTAssertEqual(FrameClassifier.origin(of: f("Swift.Array.append(_:)")), .swiftRuntime)
        XCTAssertEqual(FrameClassifier.origin(of: f(nil, "libswiftCore.so")), .swiftRuntime)
        XCTAssertEqual(FrameClassifier.origin(of: f("__libc_start_call_main", "libc.so.6")), .system)
        XCTAssertEqual(FrameClassifier.origin(of: f(nil, "libdispatch.so")), .system)
        XCTAssertEqual(FrameClassifier.origin(of: f("closure #1 in App.main()")), .user)
        XCTAssertEqual(FrameClassifier.origin(of: f("TangleAnalysisTests.Foo.bar()")), .user)
        XCTAssertEqual(FrameClassifier.origin(of: f(nil)), .user)
        let stack = [f("TangleTrace.Recorder.record()"), f("Tangle.Lock.acquire()"), f("App.work()"), f("App.main()"),
                     f("__libc_start_main", "libc.so.6")]
        XCTAssertEqual(FrameClassifier.firstUserFrame(stack)?.function, "App.work()")
        XCTAssertEqual(FrameClassifier.userFrames(stack).map(\.function), ["App.work()", "App.main()", "__libc_start_main"])
    }

    /// The headers' form: an empty module path (main executable) takes the header's executable.
    func testInitFromHeadersFillsExecutablePath() throws {
        let fx = try fixture()
        var m = fx.module(path: "")
        m.path = ""
        let h = TraceHeader(pid: 9, ppid: 1, executable: fx.binary, argv0: "prog", bootID: "b", startTime: 0, modules: [m])
        let sym = Symbolizer(headers: [9: h])
        XCTAssertEqual(sym.symbolize(pid: 9, pcs: [fx.pc]).frames.map(\.function), ["middle", "main"])
    }

    /// Prints what a frame costs (first lookup with module open, cold, warm). Asserts what the
    /// figures stand for, not how fast they are: the module measured is this test binary, every
    /// one of the 100 addresses asked for was measured, and a second lookup of an address is
    /// answered by the cache (cheaper than reading DWARF, in the same run).
    func testMeasureCost() {
        let r = SymbolizerBenchmark.run(samples: 100)
        print("SymbolizerBenchmark: \(r)")
        XCTAssertEqual(r.module, (LiveModules.current().first.map { ($0.path as NSString).lastPathComponent }) ?? "?")
        XCTAssertEqual(r.samples, 100, "\(r)")
        XCTAssertGreaterThan(r.compileUnits, 0)
        XCTAssertGreaterThan(r.firstLookupMs, 0)
        XCTAssertLessThan(r.warmPerFrameNs, r.coldPerFrameUs * 1000, "a cached frame costs less than a DWARF lookup: \(r)")
    }
}
