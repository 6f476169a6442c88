import TangleTraceFormat

/// What the symbolizer's benchmark (Benchmarks/TangleBenchmarks) asks of it beyond symbolizing:
/// package-only, so that measuring needs no benchmark code in the library.
extension Symbolizer {
    /// Compile units indexed for an opened module path (nil when not opened or not found).
    package func compileUnitCount(path: String) -> Int? {
        withModules { slots in slots.first(where: { $0.path == path })?.dwarf?.compileUnitCount }
    }

    /// File addresses inside `count` functions of `module`'s file, spread over its symbol table
    /// (empty when the file has no DWARF).
    package static func sampleFunctionAddresses(of module: ModuleInfo, count: Int) -> [UInt64] {
        guard case .success(let dw) = DwarfModule.open(path: module.path, debugDirectories: []) else { return [] }
        return dw.sampleFunctionAddresses(count: count)
    }
}
