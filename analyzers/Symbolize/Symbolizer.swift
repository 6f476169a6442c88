import Foundation
import TangleTraceFormat

/// One symbolized stack: frames innermost first (an address whose code was inlined gives several
/// frames, the inlined ones first with `inlined = true`) and what could not be done, in words.
public struct SymbolizedStack: Sendable, Equatable {
    public var frames: [Frame]
    /// One entry per problem met in this stack (module missing / changed / stripped, addresses
    /// outside every module). Empty when every frame was symbolized as well as its binary allows.
    public var warnings: [String]

    public init(frames: [Frame], warnings: [String] = []) {
        self.frames = frames
        self.warnings = warnings
    }

    /// The warnings joined, for `Stack.warning`; nil when there are none.
    public var warning: String? { warnings.isEmpty ? nil : warnings.joined(separator: "; ") }
}

/// Turns the raw return addresses of trace stacks into functions, files and lines, offline.
///
/// Conventions (see analyzers/Symbolize/README.md):
/// - Every recorded pc is a **return address** (the recorder's frame-pointer walk starts at its
///   caller's return address), so the address looked up is `pc - 1`, inside the call instruction;
///   pass `firstIsExact: true` only for a stack whose first pc is an exact instruction address.
/// - A pc is matched to the module of its process whose executable range `[low, high)` holds it;
///   `pc - bias` is the *file address*, and `Frame.offset` is that file address of the pc itself.
/// - A module is opened once (libdwfl) from its recorded path, else from the `--symbols`
///   directories (by file name, then `.build-id/xx/rest`), and only when its GNU build id equals the
///   recorded one. A missing, changed or unreadable binary gives frames with `module` + `offset` only,
///   and a warning: frames are never guessed.
/// - Results are cached per (module file, address); modules per (path, build id).
///
/// Thread-safe (one lock: libdw handles are not).
public final class Symbolizer: @unchecked Sendable {
    /// What one looked-up address resolves to, before the per-pc module/offset are attached.
    struct CachedFrame {
        var function: String?
        var file: String?
        var line: Int?
        var inlined: Bool
    }

    /// One module file of the trace (shared by every process that mapped the same path + build id).
    final class ModuleSlot {
        let path: String
        let buildID: String
        let name: String
        var opened = false
        var dwarf: DwarfModule?
        /// Why frames of this module have no names (or less than full info), if they do not.
        var warning: String?
        var cache: [UInt64: [CachedFrame]] = [:]

        init(path: String, buildID: String) {
            self.path = path
            self.buildID = buildID
            self.name = (path as NSString).lastPathComponent
        }
    }

    struct Mapping {
        var low: UInt64
        var high: UInt64
        var bias: UInt64
        var slot: ModuleSlot
    }

    /// The name `Frame.module` takes for an address outside every module.
    public static let unknownModule = "[unknown]"

    private let lock = NSLock()
    private let searchDirectories: [String]
    private var processes: [Int32: [Mapping]] = [:]
    private var slots: [String: ModuleSlot] = [:]
    private var allWarnings: [String] = []
    private var warned: Set<String> = []
    private var lookups = 0
    private var cacheHits = 0

    /// - Parameters:
    ///   - modules: each process's module table (the trace headers' `modules`), by pid.
    ///   - searchDirectories: `--symbols DIR` values, where binaries that moved are looked for.
    public init(modules: [Int32: [ModuleInfo]], searchDirectories: [String] = []) {
        self.searchDirectories = searchDirectories
        for (pid, table) in modules { addLocked(pid: pid, modules: table) }
    }

    /// From the trace headers; a module with an empty path (the main executable as `dl_iterate_phdr`
    /// names it) takes the header's `executable`.
    public convenience init(headers: [Int32: TraceHeader], searchDirectories: [String] = []) {
        var tables: [Int32: [ModuleInfo]] = [:]
        for (pid, h) in headers {
            tables[pid] = h.modules.map { m in
                var m = m
                if m.path.isEmpty { m.path = h.executable }
                return m
            }
        }
        self.init(modules: tables, searchDirectories: searchDirectories)
    }

    /// Adds (or replaces) one process's module table, e.g. as a streaming reader meets its header.
    public func addProcess(pid: Int32, modules: [ModuleInfo]) {
        lock.lock()
        defer { lock.unlock() }
        addLocked(pid: pid, modules: modules)
    }

    /// Adds modules to one process's table (a `module` record: a library loaded after the header).
    public func addModules(pid: Int32, modules: [ModuleInfo]) {
        lock.lock()
        defer { lock.unlock() }
        addLocked(pid: pid, modules: modules, appending: true)
    }

    private func addLocked(pid: Int32, modules: [ModuleInfo], appending: Bool = false) {
        var maps: [Mapping] = appending ? processes[pid] ?? [] : []
        for m in modules where m.low < m.high {
            let key = m.path + "\u{0}" + m.buildID
            let slot = slots[key] ?? ModuleSlot(path: m.path, buildID: m.buildID)
            slots[key] = slot
            maps.append(Mapping(low: m.low, high: m.high, bias: m.bias, slot: slot))
        }
        maps.sort { $0.low < $1.low }
        processes[pid] = maps
    }

    /// Every module-level warning met so far, once each (for the report's problems section).
    public var warnings: [String] {
        lock.lock()
        defer { lock.unlock() }
        return allWarnings
    }

    /// (addresses looked up, of which answered from the cache).
    public var statistics: (lookups: Int, cacheHits: Int) {
        lock.lock()
        defer { lock.unlock() }
        return (lookups, cacheHits)
    }

    /// Symbolizes one stack of process `pid`, innermost pc first. All pcs are return addresses
    /// (`pc - 1` is looked up) unless `firstIsExact`, which makes the first one an exact address.
    public func symbolize(pid: Int32, pcs: [UInt64], firstIsExact: Bool = false) -> SymbolizedStack {
        lock.lock()
        defer { lock.unlock() }
        var frames: [Frame] = []
        frames.reserveCapacity(pcs.count)
        var warnings: [String] = []
        var unknown = 0
        guard let maps = processes[pid] else {
            let w = "no module table for pid \(pid): its frames show raw addresses only"
            note(w)
            return SymbolizedStack(
                frames: pcs.map { Frame(function: nil, file: nil, line: nil, module: Symbolizer.unknownModule, offset: $0) },
                warnings: pcs.isEmpty ? [] : [w])
        }
        for (i, pc) in pcs.enumerated() {
            guard let map = mapping(maps, pc) else {
                unknown += 1
                frames.append(Frame(function: nil, file: nil, line: nil, module: Symbolizer.unknownModule, offset: pc))
                continue
            }
            let fileAddr = pc &- map.bias
            let exact = firstIsExact && i == 0
            let lookupAddr = exact || fileAddr == 0 ? fileAddr : fileAddr - 1
            let slot = map.slot
            let resolved = resolve(slot, lookupAddr)
            if let w = slot.warning, !warnings.contains(w) { warnings.append(w) }
            if resolved.isEmpty {
                frames.append(Frame(function: nil, file: nil, line: nil, module: slot.name, offset: fileAddr))
            } else {
                for r in resolved {
                    frames.append(Frame(function: r.function, file: r.file, line: r.line, module: slot.name,
                                        offset: fileAddr, inlined: r.inlined))
                }
            }
        }
        if unknown > 0 {
            warnings.append("\(unknown) frame\(unknown == 1 ? "" : "s") outside every module of pid \(pid) (shown as \(Symbolizer.unknownModule) with the raw address)")
        }
        return SymbolizedStack(frames: frames, warnings: warnings)
    }

    /// A report `Stack` for one recorded stack: frames symbolized, warnings joined into `warning`.
    public func stack(label: String, pid: Int32, tid: Int32, pcs: [UInt64]) -> Stack {
        let s = symbolize(pid: pid, pcs: pcs)
        return Stack(label: label, pid: pid, tid: tid, frames: s.frames, warning: s.warning)
    }

    /// Symbolizes many stacks of one process (e.g. the trace's stack table), sharing the cache.
    public func symbolize(pid: Int32, stacks: [UInt32: [UInt64]]) -> [UInt32: SymbolizedStack] {
        var out: [UInt32: SymbolizedStack] = [:]
        out.reserveCapacity(stacks.count)
        for (id, pcs) in stacks { out[id] = symbolize(pid: pid, pcs: pcs) }
        return out
    }

    /// The GNU build id (hex) of the ELF file at `path`: "" when it has none, nil when it is not a
    /// readable ELF file. What the module table's `build_id` is compared with.
    public static func buildID(ofFile path: String) -> String? {
        guard case .success(let m) = DwarfModule.open(path: path, debugDirectories: []) else { return nil }
        return m.buildID
    }

    /// Files called `name` under `dir`, at most `maxDepth` levels down, visiting at most
    /// `maxEntries` entries (a --symbols directory may be large); hidden directories are skipped.
    static func findFiles(named name: String, under dir: String, maxDepth: Int, maxEntries: Int) -> [String] {
        var found: [String] = []
        var visited = 0
        var queue: [(String, Int)] = [(dir, 0)]
        let fm = FileManager.default
        while !queue.isEmpty && visited < maxEntries {
            let (d, depth) = queue.removeFirst()
            guard let entries = try? fm.contentsOfDirectory(atPath: d) else { continue }
            for e in entries.sorted() {
                visited += 1
                if visited > maxEntries { break }
                let p = (d as NSString).appendingPathComponent(e)
                var isDir: ObjCBool = false
                guard fm.fileExists(atPath: p, isDirectory: &isDir) else { continue }
                if isDir.boolValue {
                    if depth + 1 <= maxDepth && !e.hasPrefix(".") { queue.append((p, depth + 1)) }
                } else if e == name {
                    found.append(p)
                }
            }
        }
        return found
    }

    /// Runs `body` on the module slots under the lock (benchmarks, tests).
    func withModules<T>(_ body: ([ModuleSlot]) -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body(Array(slots.values))
    }

    // MARK: - internals (lock held)

    private func mapping(_ maps: [Mapping], _ pc: UInt64) -> Mapping? {
        var lo = 0, hi = maps.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if maps[mid].low <= pc { lo = mid + 1 } else { hi = mid }
        }
        guard lo > 0 else { return nil }
        let m = maps[lo - 1]
        return pc < m.high ? m : nil
    }

    private func note(_ w: String) {
        if warned.insert(w).inserted { allWarnings.append(w) }
    }

    private func resolve(_ slot: ModuleSlot, _ addr: UInt64) -> [CachedFrame] {
        lookups += 1
        if let hit = slot.cache[addr] {
            cacheHits += 1
            return hit
        }
        if !slot.opened { open(slot) }
        var result: [CachedFrame] = []
        if let dw = slot.dwarf {
            result = dw.lookup(fileAddress: addr).map { raw in
                CachedFrame(function: raw.symbol.map { Demangler.displayName($0) }, file: raw.file, line: raw.line,
                            inlined: raw.inlined)
            }
        }
        slot.cache[addr] = result
        return result
    }

    private func open(_ slot: ModuleSlot) {
        slot.opened = true
        let name = slot.name
        if name.hasPrefix("linux-vdso") || name.hasPrefix("linux-gate") || name == "[vdso]" {
            return  // the kernel's vDSO: no file to read; module+offset says enough
        }
        var candidates: [String] = []
        if !slot.path.isEmpty { candidates.append(slot.path) }
        for dir in searchDirectories {
            candidates.append((dir as NSString).appendingPathComponent(name))
            if slot.buildID.count > 2 {
                let id = slot.buildID
                let sub = ".build-id/\(id.prefix(2))/\(id.dropFirst(2))"
                candidates.append((dir as NSString).appendingPathComponent(sub))
                candidates.append((dir as NSString).appendingPathComponent(sub + ".debug"))
            }
        }
        var mismatch: (path: String, id: String)? = nil
        var unreadable: (path: String, why: String)? = nil
        var seen: Set<String> = []
        /// Opens `path` and adopts it if its build id matches; false to go on searching.
        func attempt(_ path: String) -> Bool {
            guard seen.insert(path).inserted, FileManager.default.fileExists(atPath: path) else { return false }
            switch DwarfModule.open(path: path, debugDirectories: searchDirectories) {
            case .failure(.unreadable(_, let why)):
                if unreadable == nil { unreadable = (path, why) }
                return false
            case .success(let dw):
                // No build id recorded: nothing to check against; the path is all we have.
                guard slot.buildID.isEmpty || dw.buildID == slot.buildID else {
                    if mismatch == nil { mismatch = (path, dw.buildID) }
                    return false
                }
                slot.dwarf = dw
                if !dw.hasSymtab && !dw.hasDwarf && !FrameClassifier.isSystemModule(path: slot.path) {
                    slot.warning = "\(name): no symbol table and no debug info (stripped binary \(path)); its frames show module+offset, named only where a function is exported"
                } else if !dw.hasDwarf && !FrameClassifier.isSystemModule(path: slot.path) {
                    slot.warning = "\(name): no debug info in \(path) (build with -g); its frames have function names but no file:line"
                }
                if let w = slot.warning { note(w) }
                return true
            }
        }
        for path in candidates where attempt(path) { return }
        // Last resort: a file of that name deeper in a --symbols directory (e.g. the root of a
        // build tree, `.build/` holding `x86_64-unknown-linux-gnu/release/app`), a few levels down.
        for dir in searchDirectories {
            for path in Symbolizer.findFiles(named: name, under: dir, maxDepth: 4, maxEntries: 50_000) where attempt(path) {
                return
            }
        }
        let searched = searchDirectories.isEmpty ? "" : " nor in --symbols \(searchDirectories.joined(separator: ", "))"
        let w: String
        if let mismatch {
            w = "\(name): build id mismatch: the trace recorded \(slot.buildID) but \(mismatch.path) has \(mismatch.id.isEmpty ? "none" : mismatch.id) (rebuilt or replaced since the run; pass --symbols DIR holding the binary that ran); its frames show module+offset only"
        } else if let unreadable {
            w = "\(name): cannot read \(unreadable.path) (\(unreadable.why)); its frames show module+offset only"
        } else {
            w = "\(name): binary not found at \(slot.path)\(searched); its frames show module+offset only"
        }
        slot.warning = w
        note(w)
    }
}
