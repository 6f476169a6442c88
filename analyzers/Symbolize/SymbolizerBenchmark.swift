import Foundation
import TangleTrace

/// What symbolizing costs, measured on the calling process's own binaries (the analyzer's bench and
/// the symbolizer's tests print it).
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
    /// Symbolizes `samples` addresses spread over the executable's code, cold then warm.
    public static func run(samples: Int = 200) -> SymbolizerBenchmarkResult {
        let modules = LiveModules.current()
        let pid = getpid()
        guard let exe = modules.first else {
            return SymbolizerBenchmarkResult(module: "?", compileUnits: 0, firstLookupMs: 0, coldPerFrameUs: 0,
                                             coldIndexedPerFrameUs: 0, warmPerFrameNs: 0, samples: 0)
        }
        func spread(_ m: ModuleInfo, _ n: Int) -> [UInt64] {
            let step = max(1, (m.high - m.low) / UInt64(n + 1))
            return (1...n).map { m.low + UInt64($0) * step }
        }
        func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

        let sym = Symbolizer(modules: [pid: modules])
        let addrs = spread(exe, samples + 1)
        var t0 = now()
        _ = sym.symbolize(pid: pid, pcs: [addrs[0]])
        let first = Double(now() - t0) / 1e6
        t0 = now()
        for a in addrs.dropFirst() { _ = sym.symbolize(pid: pid, pcs: [a]) }
        let cold = Double(now() - t0) / Double(samples) / 1e3
        t0 = now()
        for a in addrs.dropFirst() { _ = sym.symbolize(pid: pid, pcs: [a + 2]) }
        let coldIndexed = Double(now() - t0) / Double(samples) / 1e3
        let rounds = 20
        t0 = now()
        for _ in 0..<rounds { for a in addrs.dropFirst() { _ = sym.symbolize(pid: pid, pcs: [a]) } }
        let warm = Double(now() - t0) / Double(samples * rounds)

        var fFirst: Double? = nil, fCold: Double? = nil
        if let f = modules.first(where: { ($0.path as NSString).lastPathComponent.hasPrefix("libFoundation.so") }) {
            let n = min(samples, 50)
            let fa = spread(f, n + 1)
            t0 = now()
            _ = sym.symbolize(pid: pid, pcs: [fa[0]])
            fFirst = Double(now() - t0) / 1e6
            t0 = now()
            for a in fa.dropFirst() { _ = sym.symbolize(pid: pid, pcs: [a]) }
            fCold = Double(now() - t0) / Double(n) / 1e3
        }
        let cus = sym.compileUnitCount(path: exe.path) ?? 0
        return SymbolizerBenchmarkResult(
            module: (exe.path as NSString).lastPathComponent, compileUnits: cus, firstLookupMs: first,
            coldPerFrameUs: cold, coldIndexedPerFrameUs: coldIndexed, warmPerFrameNs: warm, foundationFirstLookupMs: fFirst,
            foundationColdPerFrameUs: fCold, samples: samples)
    }
}

extension Symbolizer {
    /// Compile units indexed for an opened module path (nil when not opened or not found).
    func compileUnitCount(path: String) -> Int? {
        withModules { slots in slots.first(where: { $0.path == path })?.dwarf?.compileUnitCount }
    }
}
