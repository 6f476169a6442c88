import CDW
import Glibc
import TangleTraceFormat
import TangleTraceReader

/// libdwfl's `find_debuginfo` callback, looking where `dwfl_standard_find_debuginfo` looks, but
/// opening every candidate the way the reader opens trace files: without blocking, regular files
/// only (`RawTraceFile.openRegular`).
///
/// Why not the standard finder: the places it tries are built from the module path a trace names
/// and from the debuglink name inside that file, and it opens them with a plain `open`: a FIFO
/// planted at one of them would hang the analysis, a device would be read forever.
///
/// Where it looks, in order (the standard order, debuglink CRCs not checked): the build-id tree
/// `DIR/.build-id/xx/rest.debug` under each debug directory; then the debuglink name beside the
/// file, in its `.debug` folder, and under each debug directory followed by the file's folder.
enum SafeDebugFinder {
    /// The debug directories searched after the standard ones, by module path (set before the
    /// module is reported; the callback has no other way to reach them).
    private static let directories = LockedDirectories()

    static func register(path: String, debugDirectories: [String]) {
        directories.set(path, ["/usr/lib/debug"] + debugDirectories)
    }

    static let callback: @convention(c) (
        OpaquePointer?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafePointer<CChar>?, Dwarf_Addr,
        UnsafePointer<CChar>?, UnsafePointer<CChar>?, GElf_Word, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
    ) -> Int32 = { mod, _, _, _, fileName, debuglink, _, found in
        guard let mod else { return -1 }
        let file = fileName.map { String(cString: $0) } ?? ""
        let roots = directories.get(file) ?? ["/usr/lib/debug"]
        var candidates: [String] = []
        var bits: UnsafePointer<UInt8>? = nil
        var vaddr: GElf_Addr = 0
        let n = dwfl_module_build_id(mod, &bits, &vaddr)
        if n > 1, let bits {
            let hex = LiveModules.hex(UnsafeRawBufferPointer(start: bits, count: Int(n)))
            let head = hex.prefix(2), rest = hex.dropFirst(2)
            candidates += roots.map { "\($0)/.build-id/\(head)/\(rest).debug" }
        }
        if let debuglink, debuglink.pointee != 0 {
            let link = String(cString: debuglink)
            let folder = file.contains("/") ? String(file[..<file.lastIndex(of: "/")!]) : "."
            candidates += [folder + "/" + link, folder + "/.debug/" + link]
            candidates += roots.map { $0 + (folder.hasPrefix("/") ? folder : "/" + folder) + "/" + link }
        }
        for path in candidates where path != file {
            guard let fd = try? RawTraceFile.openRegular(path) else { continue }
            found?.pointee = strdup(path)
            return fd
        }
        return -1
    }

    private final class LockedDirectories: @unchecked Sendable {
        private var mutex = pthread_mutex_t()
        private var byPath: [String: [String]] = [:]
        init() { pthread_mutex_init(&mutex, nil) }
        func set(_ path: String, _ dirs: [String]) {
            pthread_mutex_lock(&mutex); byPath[path] = dirs; pthread_mutex_unlock(&mutex)
        }
        func get(_ path: String) -> [String]? {
            pthread_mutex_lock(&mutex); defer { pthread_mutex_unlock(&mutex) }
            return byPath[path]
        }
    }
}
