import CDW
import Foundation
import TangleTraceReader

/// One ELF file opened with libdwfl, laid out at its own link-time addresses (base 0), so a lookup
/// takes the *file address* (`pc - load bias`) and the same object serves every process that mapped
/// the file, whatever its ASLR bias.
///
/// libdw 0.188 maps an address to its compile unit only through `.debug_aranges`, which swiftc does
/// not emit, so `dwfl_module_getsrc`/`dwfl_module_addrdie` find nothing in Swift code. Instead the
/// compile units are walked once (`dwfl_module_nextcu` + `dwarf_ranges`) into a sorted
/// address-range → CU index; a lookup then binary-searches it and asks that CU for the line row
/// (`dwarf_getsrc_die`) and the scope chain (`dwarf_getscopes`, for inlined frames).
///
/// Not thread-safe: the `Symbolizer` serializes every call.
final class DwarfModule {
    /// One frame of an address's inline chain, innermost first; all but the last are inlined.
    struct RawFrame {
        var symbol: String?   // as in the binary (mangled), nil when unknown
        var file: String?
        var line: Int?
        var inlined: Bool
    }

    let path: String
    /// Hex GNU build id of the file ("" when it has none).
    let buildID: String
    /// The file has a `.symtab` (function names for every function, not only exported ones).
    let hasSymtab: Bool
    /// The file (or a separate debug file found for it) has DWARF.
    var hasDwarf: Bool { dwarf != nil }

    private let dwfl: OpaquePointer
    private let module: OpaquePointer
    private let callbacks: UnsafeMutablePointer<Dwfl_Callbacks>
    private let debugPath: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
    /// module address = file address + elfBias (0 for a file reported at base 0, kept for safety).
    private var elfBias: UInt64 = 0
    private var dwarf: OpaquePointer?
    /// DWARF address = module address - dwarfBias.
    private var dwarfBias: UInt64 = 0
    private var cuIndexBuilt = false
    private var cus: [Dwarf_Die] = []
    private var ranges: [Span<Int>] = []
    /// Per CU (same index as `cus`), built on first use: the concrete functions' address ranges.
    private var functions: [Int: [Span<Dwarf_Die>]] = [:]

    /// Opens `path`; nil (with the reason) when it is not a readable ELF file.
    /// `debugDirectories` are searched for separate debug files (`.build-id/xx/….debug`, debuglink).
    static func open(path: String, debugDirectories: [String]) -> Result<DwarfModule, SymbolizeError> {
        // One process may analyze many traces (watch, the fuzz target, tests): a file already
        // opened (same path, inode, size and mtime) is not opened and indexed again.
        var st = stat()
        let key: String? = stat(path, &st) == 0
            ? "\(path)|\(st.st_dev)|\(st.st_ino)|\(st.st_size)|\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)|\(debugDirectories.joined(separator: ":"))"
            : nil
        if let key, let m = cache.get(key) { return .success(m) }
        let r = openUncached(path: path, debugDirectories: debugDirectories)
        if let key, case .success(let m) = r { cache.put(key, m) }
        return r
    }

    /// Opened modules by file identity, for the life of the process.
    private final class Cache: @unchecked Sendable {
        private let lock = NSLock()
        private var modules: [String: DwarfModule] = [:]
        func get(_ k: String) -> DwarfModule? { lock.lock(); defer { lock.unlock() }; return modules[k] }
        func put(_ k: String, _ m: DwarfModule) { lock.lock(); modules[k] = m; lock.unlock() }
    }
    private static let cache = Cache()

    private static func openUncached(path: String, debugDirectories: [String]) -> Result<DwarfModule, SymbolizeError> {
        // The path comes from a trace header: open it ourselves, without blocking, and only if it
        // is a regular file (a FIFO would hang libdw's own open; a device would be read forever).
        let fd: Int32
        do { fd = try RawTraceFile.openRegular(path) } catch let e as TraceReadError {
            return .failure(.unreadable(path, e.message))
        } catch {
            return .failure(.unreadable(path, "\(error)"))
        }
        let callbacks = UnsafeMutablePointer<Dwfl_Callbacks>.allocate(capacity: 1)
        let debugPath = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: 1)
        // "-": don't insist on debuglink CRCs; then the standard places, then the user's dirs.
        debugPath.initialize(to: strdup((["-", ".debug", "/usr/lib/debug"] + debugDirectories).joined(separator: ":")))
        callbacks.initialize(to: Dwfl_Callbacks(
            find_elf: dwfl_build_id_find_elf,
            find_debuginfo: SafeDebugFinder.callback,
            section_address: dwfl_offline_section_address,
            debuginfo_path: debugPath))
        func cleanup() {
            free(debugPath.pointee)
            debugPath.deallocate()
            callbacks.deallocate()
        }
        SafeDebugFinder.register(path: path, debugDirectories: debugDirectories)
        guard let dwfl = dwfl_begin(callbacks) else {
            _ = Glibc.close(fd)
            cleanup()
            return .failure(.unreadable(path, String(cString: dwfl_errmsg(-1))))
        }
        dwfl_report_begin(dwfl)
        let name = (path as NSString).lastPathComponent
        let mod = dwfl_report_elf(dwfl, name, path, fd, 0, false)  // (libdwfl owns fd from here)
        dwfl_report_end(dwfl, nil, nil)
        guard let mod else {
            let msg = String(cString: dwfl_errmsg(-1))
            _ = Glibc.close(fd)  // (not consumed when the report failed)
            dwfl_end(dwfl)
            cleanup()
            return .failure(.unreadable(path, msg))
        }
        var bits: UnsafePointer<UInt8>? = nil
        var vaddr: GElf_Addr = 0
        let n = dwfl_module_build_id(mod, &bits, &vaddr)
        let id = (n > 0 && bits != nil) ? LiveModules.hex(UnsafeRawBufferPointer(start: bits, count: Int(n))) : ""
        var bias: GElf_Addr = 0
        let elf = dwfl_module_getelf(mod, &bias)
        let symtab = elf.map { DwarfModule.hasSection($0, type: UInt32(SHT_SYMTAB)) } ?? false
        let m = DwarfModule(path: path, buildID: id, hasSymtab: symtab, dwfl: dwfl, module: mod,
                            callbacks: callbacks, debugPath: debugPath)
        m.elfBias = bias
        var dwbias: Dwarf_Addr = 0
        m.dwarf = dwfl_module_getdwarf(mod, &dwbias)
        m.dwarfBias = dwbias
        return .success(m)
    }

    private init(path: String, buildID: String, hasSymtab: Bool, dwfl: OpaquePointer, module: OpaquePointer,
                 callbacks: UnsafeMutablePointer<Dwfl_Callbacks>,
                 debugPath: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) {
        self.path = path
        self.buildID = buildID
        self.hasSymtab = hasSymtab
        self.dwfl = dwfl
        self.module = module
        self.callbacks = callbacks
        self.debugPath = debugPath
    }

    deinit {
        dwfl_end(dwfl)
        free(debugPath.pointee)
        debugPath.deallocate()
        callbacks.deallocate()
    }

    private static func hasSection(_ elf: OpaquePointer, type: UInt32) -> Bool {
        var scn = elf_nextscn(elf, nil)
        while let s = scn {
            var shdr = GElf_Shdr()
            if gelf_getshdr(s, &shdr) != nil, shdr.sh_type == type { return true }
            scn = elf_nextscn(elf, s)
        }
        return false
    }

    /// Number of compile units indexed (builds the index).
    var compileUnitCount: Int {
        buildCUIndex()
        return cus.count
    }

    private func buildCUIndex() {
        guard !cuIndexBuilt else { return }
        cuIndexBuilt = true
        guard dwarf != nil else { return }
        var last: UnsafeMutablePointer<Dwarf_Die>? = nil
        var bias: Dwarf_Addr = 0
        while let cu = dwfl_module_nextcu(module, last, &bias) {
            last = cu
            var die = cu.pointee
            let index = cus.count
            var base: Dwarf_Addr = 0, start: Dwarf_Addr = 0, end: Dwarf_Addr = 0
            var off = dwarf_ranges(&die, 0, &base, &start, &end)
            var any = false
            while off > 0 {
                if end > start { ranges.append(Span(low: start, high: end, value: index)); any = true }
                off = dwarf_ranges(&die, off, &base, &start, &end)
            }
            if any { cus.append(die) }
        }
        ranges.sort { $0.low < $1.low }
    }

    /// The index (into `cus`) of the CU whose ranges contain the DWARF address `addr`.
    private func compileUnit(containing addr: UInt64) -> Int? {
        buildCUIndex()
        return DwarfModule.search(ranges, addr)?.value
    }

    /// The last entry with `low <= addr < high` of `list` sorted by `low` (looking back a few
    /// entries in case a long range encloses later short ones).
    private static func search<T>(_ list: [Span<T>], _ addr: UInt64) -> Span<T>? {
        var lo = 0, hi = list.count
        while lo < hi {  // first entry with low > addr
            let mid = (lo + hi) / 2
            if list[mid].low <= addr { lo = mid + 1 } else { hi = mid }
        }
        var i = lo - 1
        var steps = 0
        while i >= 0 && steps < 8 {
            if list[i].low <= addr && addr < list[i].high { return list[i] }
            i -= 1
            steps += 1
        }
        return nil
    }

    /// Walks one CU's DIE tree once, collecting every subprogram that has code (its ranges).
    /// This replaces `dwarf_getscopes`, which re-reads the CU's whole top level on every call
    /// (milliseconds per lookup in a Swift module, which is one big CU).
    private func functionIndex(cu index: Int) -> [Span<Dwarf_Die>] {
        if let f = functions[index] { return f }
        var list: [Span<Dwarf_Die>] = []
        func visitChildren(_ parent: inout Dwarf_Die, depth: Int) {
            var child = Dwarf_Die()
            guard depth < 64, dwarf_child(&parent, &child) == 0 else { return }
            while true {
                let tag = dwarf_tag(&child)
                if tag == DW_TAG_subprogram {
                    var base: Dwarf_Addr = 0, start: Dwarf_Addr = 0, end: Dwarf_Addr = 0
                    var off = dwarf_ranges(&child, 0, &base, &start, &end)
                    while off > 0 {
                        if end > start { list.append(Span(low: start, high: end, value: child)) }
                        off = dwarf_ranges(&child, off, &base, &start, &end)
                    }
                    // Functions nested in functions (C nested functions, some languages): rare but cheap.
                    if dwarf_haschildren(&child) > 0 { visitChildren(&child, depth: depth + 1) }
                } else if tag == DW_TAG_namespace || tag == DW_TAG_module || tag == DW_TAG_structure_type
                            || tag == DW_TAG_class_type || tag == DW_TAG_union_type || tag == DW_TAG_enumeration_type
                            || tag == DW_TAG_lexical_block {
                    if dwarf_haschildren(&child) > 0 { visitChildren(&child, depth: depth + 1) }
                }
                var next = Dwarf_Die()
                guard dwarf_siblingof(&child, &next) == 0 else { break }
                child = next
            }
        }
        var cu = cus[index]
        visitChildren(&cu, depth: 0)
        list.sort { $0.low < $1.low }
        functions[index] = list
        return list
    }

    /// The concrete scope chain at `addr`, outermost (the subprogram) first: then the inlined
    /// bodies and lexical blocks that contain it, innermost last.
    private func scopeChain(cu index: Int, addr: UInt64) -> [Dwarf_Die] {
        guard let fn = DwarfModule.search(functionIndex(cu: index), addr) else { return [] }
        var chain = [fn.value]
        var cur = fn.value
        descend: while chain.count < 256 {
            var child = Dwarf_Die()
            guard dwarf_child(&cur, &child) == 0 else { break }
            while true {
                let tag = dwarf_tag(&child)
                if (tag == DW_TAG_inlined_subroutine || tag == DW_TAG_lexical_block || tag == DW_TAG_try_block
                    || tag == DW_TAG_catch_block), dwarf_haspc(&child, addr) > 0 {
                    chain.append(child)
                    cur = child
                    continue descend
                }
                var next = Dwarf_Die()
                guard dwarf_siblingof(&child, &next) == 0 else { break descend }
                child = next
            }
        }
        return chain
    }

    /// The inline chain (innermost first) for the file address `fileAddress`; empty when nothing is
    /// known about it (no symbol, no DWARF).
    func lookup(fileAddress: UInt64) -> [RawFrame] {
        let modAddr = fileAddress &+ elfBias
        // ELF symbol table (or .dynsym): the containing function. dwfl_module_addrinfo scans the
        // whole table on every call (ms in libFoundation), so a sorted index is built once instead.
        let symName = symbol(containing: modAddr)
        guard dwarf != nil, modAddr >= dwarfBias, let cuIndex = compileUnit(containing: modAddr - dwarfBias) else {
            return symName.map { [RawFrame(symbol: $0, file: nil, line: nil, inlined: false)] } ?? []
        }
        let dwAddr = modAddr - dwarfBias
        var cu = cus[cuIndex]
        var file: String? = nil
        var line: Int? = nil
        if let row = dwarf_getsrc_die(&cu, dwAddr) {
            var n: Int32 = 0
            if dwarf_lineno(row, &n) == 0, n > 0 {
                line = Int(n)
                file = dwarf_linesrc(row, nil, nil).flatMap { DwarfModule.realFile($0) }
            }
        }

        var frames: [RawFrame] = []
        let chain = scopeChain(cu: cuIndex, addr: dwAddr)
        let count = chain.count
        if count > 0 {
            var files: OpaquePointer? = nil
            var nfiles = 0
            var filesLoaded = false
            var curFile = file
            var curLine = line
            for i in stride(from: count - 1, through: 0, by: -1) {
                var die = chain[i]
                let tag = dwarf_tag(&die)
                guard tag == DW_TAG_inlined_subroutine || tag == DW_TAG_subprogram else { continue }
                let name = DwarfModule.linkageName(&die)
                let isInlined = tag == DW_TAG_inlined_subroutine
                frames.append(RawFrame(symbol: isInlined ? name : (name ?? symName), file: curFile, line: curLine,
                                       inlined: isInlined))
                if !isInlined { break }
                // The call site of this inlined body is the location in the next function outwards.
                if !filesLoaded {
                    filesLoaded = true
                    if dwarf_getsrcfiles(&cu, &files, &nfiles) != 0 { files = nil }
                }
                var attr = Dwarf_Attribute()
                var value: Dwarf_Word = 0
                curFile = nil
                curLine = nil
                if dwarf_attr(&die, UInt32(DW_AT_call_file), &attr) != nil, dwarf_formudata(&attr, &value) == 0,
                   let files, Int(value) < nfiles, let f = dwarf_filesrc(files, Int(value), nil, nil) {
                    curFile = DwarfModule.realFile(f)
                }
                if dwarf_attr(&die, UInt32(DW_AT_call_line), &attr) != nil, dwarf_formudata(&attr, &value) == 0,
                   value > 0 {
                    curLine = Int(value)
                }
                if curLine == nil { curFile = nil }
            }
            // A chain that ended on an inlined body (no enclosing subprogram found): the containing
            // function is the ELF symbol.
            if let last = frames.last, last.inlined {
                frames.append(RawFrame(symbol: symName, file: curFile, line: curLine, inlined: false))
            }
        }
        if frames.isEmpty {
            if symName == nil && file == nil { return [] }
            frames.append(RawFrame(symbol: symName, file: file, line: line, inlined: false))
        }
        return frames
    }

    /// The start of every line-table row (file addresses, sorted, unique) of the compile units whose
    /// file table names a file called `fileName` (its last path component). `tangle confirm` looks
    /// each one up to find where a symbolized frame's source line is in this build.
    func lineRowAddresses(unitsWithFile fileName: String) -> [UInt64] {
        buildCUIndex()
        var out: [UInt64] = []
        for i in cus.indices {
            var cu = cus[i]
            var files: OpaquePointer? = nil
            var nfiles = 0
            guard dwarf_getsrcfiles(&cu, &files, &nfiles) == 0, let files else { continue }
            var hasFile = false
            for f in 0..<nfiles {
                if let name = dwarf_filesrc(files, f, nil, nil),
                   (String(cString: name) as NSString).lastPathComponent == fileName { hasFile = true; break }
            }
            guard hasFile else { continue }
            var lines: OpaquePointer? = nil
            var nlines = 0
            guard dwarf_getsrclines(&cu, &lines, &nlines) == 0, let lines else { continue }
            for l in 0..<nlines {
                var addr: Dwarf_Addr = 0
                guard let row = dwarf_onesrcline(lines, l), dwarf_lineaddr(row, &addr) == 0 else { continue }
                let modAddr = addr &+ dwarfBias
                guard modAddr >= elfBias else { continue }
                out.append(modAddr - elfBias)
            }
        }
        out.sort()
        var unique: [UInt64] = []
        unique.reserveCapacity(out.count)
        for a in out where unique.last != a { unique.append(a) }
        return unique
    }

    /// Function symbols sorted by address: (start, size, global, name) in module addresses.
    private var symbols: [(low: UInt64, size: UInt64, global: Bool, name: UnsafePointer<CChar>)]? = nil

    private func buildSymbolIndex() -> [(low: UInt64, size: UInt64, global: Bool, name: UnsafePointer<CChar>)] {
        if let s = symbols { return s }
        var list: [(low: UInt64, size: UInt64, global: Bool, name: UnsafePointer<CChar>)] = []
        let n = dwfl_module_getsymtab(module)
        if n > 0 {
            list.reserveCapacity(Int(n))
            for i in 1..<Int(n) {
                var sym = GElf_Sym()
                var addr: GElf_Addr = 0
                var shndx: GElf_Word = 0
                var elf: OpaquePointer? = nil
                var bias: Dwarf_Addr = 0
                guard let name = dwfl_module_getsym_info(module, Int32(i), &sym, &addr, &shndx, &elf, &bias),
                      name.pointee != 0 else { continue }
                let type = Int32(sym.st_info & 0xf)
                let bind = Int32(sym.st_info >> 4)
                guard type == STT_FUNC || type == STT_GNU_IFUNC || (type == STT_NOTYPE && sym.st_size > 0),
                      shndx != SHN_UNDEF, addr != 0 else { continue }
                list.append((addr, sym.st_size, bind != STB_LOCAL, name))
            }
        }
        // Deterministic choice among aliases: sized first, then global, then by name.
        list.sort { a, b in
            if a.low != b.low { return a.low < b.low }
            if (a.size > 0) != (b.size > 0) { return a.size > 0 }
            if a.global != b.global { return a.global }
            return strcmp(a.name, b.name) < 0
        }
        symbols = list
        return list
    }

    /// Up to `count` file addresses in the middle of functions, spread over the symbol table
    /// (benchmarks: realistic return addresses).
    func sampleFunctionAddresses(count: Int) -> [UInt64] {
        let list = buildSymbolIndex().filter { $0.size >= 8 }
        guard !list.isEmpty, count > 0 else { return [] }
        let step = max(1, list.count / count)
        return stride(from: 0, to: list.count, by: step).prefix(count).map { list[$0].low + list[$0].size / 2 - elfBias }
    }

    /// The function symbol containing the module address `addr`: a sized symbol that covers it, or
    /// a sizeless one at most 4 KiB before it with no other symbol in between. Nil otherwise: a
    /// symbol merely preceding the address is not evidence of where it is.
    private func symbol(containing addr: UInt64) -> String? {
        let list = buildSymbolIndex()
        var lo = 0, hi = list.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if list[mid].low <= addr { lo = mid + 1 } else { hi = mid }
        }
        guard lo > 0 else { return nil }
        // Entries sharing the nearest start come first in preference order; walk back to it.
        var i = lo - 1
        let nearest = list[i].low
        while i > 0 && list[i - 1].low == nearest { i -= 1 }
        let best = list[i]
        if best.size > 0 ? addr < best.low + best.size : addr - best.low < 4096 {
            return String(cString: best.name)
        }
        // An enclosing sized symbol that starts earlier (rare: overlapping ranges).
        var j = i - 1
        var steps = 0
        while j >= 0 && steps < 16 {
            if list[j].size > 0 && addr < list[j].low + list[j].size { return String(cString: list[j].name) }
            j -= 1
            steps += 1
        }
        return nil
    }

    /// The file name, or nil for Swift's "<compiler-generated>" pseudo-file.
    private static func realFile(_ f: UnsafePointer<CChar>) -> String? {
        f.pointee == 60 /* < */ ? nil : String(cString: f)
    }

    private static func linkageName(_ die: inout Dwarf_Die) -> String? {
        var attr = Dwarf_Attribute()
        for at in [DW_AT_linkage_name, DW_AT_MIPS_linkage_name, DW_AT_name] {
            if dwarf_attr_integrate(&die, UInt32(at), &attr) != nil, let s = dwarf_formstring(&attr) {
                return String(cString: s)
            }
        }
        return nil
    }
}

struct Span<T> {
    var low: UInt64
    var high: UInt64
    var value: T
}

enum SymbolizeError: Error {
    case unreadable(String, String)
}
