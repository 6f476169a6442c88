import Foundation
import TangleAnalysis
import TangleTraceFormat

/// What symbolizing costs, measured on the calling process's own binaries (the symbolizer's tests
/// print it). Outside the analyzer library: no product carries benchmark code.
public struct SymbolizerBenchmarkResult: Sendable, Codable, CustomStringConvertible {
    /// The module measured (the calling executable) and its number of compile units.
    public var module: String
    public var compileUnits: Int
    /// The first lookup in a fresh `Symbolizer`: open the file, index its compile units, look up.
    public var firstLookupMs: Double
    /// Mean cost of an address not yet in the cache, module already open (includes indexing the
    /// functions of each compile unit met for the first time).
    public var coldPerFrameUs: Double
    /// Mean cost of an address not yet in the cache whose compile unit is already indexed: the
    /// steady-state cost of a new address.
    public var coldIndexedPerFrameUs: Double
    /// Mean cost of an address answered from the cache.
    public var warmPerFrameNs: Double
    /// Same as `coldPerFrameUs` for addresses inside libFoundation (nil when not loaded).
    public var foundationFirstLookupMs: Double?
    public var foundationColdPerFrameUs: Double?
    /// Addresses measured per figure.
    public var samples: Int

    public var description: String {
        var s = "symbolize \(module) (\(compileUnits) CUs): first lookup \(fmt(firstLookupMs)) ms, cold \(fmt(coldPerFrameUs)) µs/frame (\(fmt(coldIndexedPerFrameUs)) µs once its CU is indexed), warm \(fmt(warmPerFrameNs)) ns/frame"
        if let f = foundationColdPerFrameUs, let o = foundationFirstLookupMs {
            s += "; libFoundation: first lookup \(fmt(o)) ms, cold \(fmt(f)) µs/frame"
        }
        return s + " (\(samples) addresses)"
    }

    private func fmt(_ x: Double) -> String { String(format: "%.2f", x) }
}

public enum SymbolizerBenchmark {
    /// Symbolizes `samples` return addresses (middles of functions spread over the symbol table)
    /// of the calling executable, cold then warm, plus addresses in libFoundation when loaded.
    public static func run(samples: Int = 200) -> SymbolizerBenchmarkResult {
        let modules = LiveModules.current()
        guard let exe = modules.first else { return empty("?") }
        let foundation = modules.first { ($0.path as NSString).lastPathComponent.hasPrefix("libFoundation.so") }
        return measure(table: modules, module: exe, extra: foundation, samples: samples)
    }

    /// The same for any ELF file (e.g. a large application binary), as if loaded at its link-time
    /// addresses in a process of its own.
    public static func run(file path: String, samples: Int = 200) -> SymbolizerBenchmarkResult {
        guard let id = Symbolizer.buildID(ofFile: path) else { return empty(path) }
        let m = ModuleInfo(path: path, buildID: id, bias: 0, low: 1, high: UInt64.max)
        return measure(table: [m], module: m, extra: nil, samples: samples)
    }

    private static func empty(_ name: String) -> SymbolizerBenchmarkResult {
        SymbolizerBenchmarkResult(module: name, compileUnits: 0, firstLookupMs: 0, coldPerFrameUs: 0,
                                  coldIndexedPerFrameUs: 0, warmPerFrameNs: 0, samples: 0)
    }

    private static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Return addresses (pc = file address + bias, + 1 since pc - 1 is looked up) inside functions.
    private static func returnAddresses(_ m: ModuleInfo, _ n: Int) -> [UInt64] {
        Symbolizer.sampleFunctionAddresses(of: m, count: n).map { $0 + m.bias + 1 }.filter { m.low <= $0 && $0 < m.high }
    }

    private static func measure(table: [ModuleInfo], module m: ModuleInfo, extra: ModuleInfo?,
                                samples: Int) -> SymbolizerBenchmarkResult {
        let pid: Int32 = 1
        let addrs = returnAddresses(m, samples + 1)
        guard addrs.count > 1 else { return empty(m.path) }
        let n = addrs.count - 1
        let sym = Symbolizer(modules: [pid: table])
        var t0 = now()
        _ = sym.symbolize(pid: pid, pcs: [addrs[0]])
        let first = Double(now() - t0) / 1e6
        t0 = now()
        for a in addrs.dropFirst() { _ = sym.symbolize(pid: pid, pcs: [a]) }
        let cold = Double(now() - t0) / Double(n) / 1e3
        t0 = now()
        for a in addrs.dropFirst() { _ = sym.symbolize(pid: pid, pcs: [a + 1]) }
        let coldIndexed = Double(now() - t0) / Double(n) / 1e3
        let rounds = 20
        t0 = now()
        for _ in 0..<rounds { for a in addrs.dropFirst() { _ = sym.symbolize(pid: pid, pcs: [a]) } }
        let warm = Double(now() - t0) / Double(n * rounds)

        var fFirst: Double? = nil, fCold: Double? = nil
        if let f = extra {
            let fa = returnAddresses(f, min(samples, 50) + 1)
            if fa.count > 1 {
                t0 = now()
                _ = sym.symbolize(pid: pid, pcs: [fa[0]])
                fFirst = Double(now() - t0) / 1e6
                t0 = now()
                for a in fa.dropFirst() { _ = sym.symbolize(pid: pid, pcs: [a]) }
                fCold = Double(now() - t0) / Double(fa.count - 1) / 1e3
            }
        }
        return SymbolizerBenchmarkResult(
            module: (m.path as NSString).lastPathComponent, compileUnits: sym.compileUnitCount(path: m.path) ?? 0,
            firstLookupMs: first, coldPerFrameUs: cold, coldIndexedPerFrameUs: coldIndexed, warmPerFrameNs: warm,
            foundationFirstLookupMs: fFirst, foundationColdPerFrameUs: fCold, samples: n)
    }
}
