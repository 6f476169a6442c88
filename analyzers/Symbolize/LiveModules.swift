import Foundation
import TangleTraceFormat

/// The module table of the *calling* process, read the way the recorder reads it (`dl_iterate_phdr`:
/// path, GNU build id from the PT_NOTE in memory, load bias, executable PT_LOAD range). Used by the
/// symbolizer's tests and benchmark to symbolize the process's own return addresses; the analyzer
/// itself always uses the module tables of the trace headers.
///
/// `dl_iterate_phdr` is not in Swift's Glibc module, so it is looked up with `dlsym` and
/// `struct dl_phdr_info` / `Elf64_Phdr` are read at their fixed x86-64/aarch64 LP64 offsets.
public enum LiveModules {
    private typealias Callback = @convention(c) (UnsafeMutableRawPointer?, Int, UnsafeMutableRawPointer?) -> Int32
    private typealias IterateFn = @convention(c) (Callback, UnsafeMutableRawPointer?) -> Int32

    private final class Box { var modules: [ModuleInfo] = [] }

    public static func current() -> [ModuleInfo] {
        guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "dl_iterate_phdr") else { return [] }
        let iterate = unsafeBitCast(sym, to: IterateFn.self)
        let box = Box()
        let ctx = Unmanaged.passRetained(box)
        defer { ctx.release() }
        _ = iterate({ info, _, data in
            guard let info, let data else { return 0 }
            let box = Unmanaged<Box>.fromOpaque(data).takeUnretainedValue()
            if let m = LiveModules.module(info) { box.modules.append(m) }
            return 0
        }, ctx.toOpaque())
        return box.modules
    }

    private static func module(_ info: UnsafeMutableRawPointer) -> ModuleInfo? {
        let bias = info.load(fromByteOffset: 0, as: UInt64.self)
        let namePtr = info.load(fromByteOffset: 8, as: UnsafePointer<CChar>?.self)
        guard let phdrs = info.load(fromByteOffset: 16, as: UnsafeRawPointer?.self) else { return nil }
        let phnum = Int(info.load(fromByteOffset: 24, as: UInt16.self))
        var name = namePtr.map { String(cString: $0) } ?? ""
        if name.isEmpty {
            name = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        }
        var low = UInt64.max, high: UInt64 = 0
        var buildID = ""
        for i in 0..<phnum {
            let ph = phdrs + i * 56  // sizeof(Elf64_Phdr)
            let type = ph.load(fromByteOffset: 0, as: UInt32.self)
            let flags = ph.load(fromByteOffset: 4, as: UInt32.self)
            let vaddr = ph.load(fromByteOffset: 16, as: UInt64.self)
            let memsz = ph.load(fromByteOffset: 40, as: UInt64.self)
            if type == 1 /* PT_LOAD */ && flags & 1 /* PF_X */ != 0 {
                low = min(low, bias &+ vaddr)
                high = max(high, bias &+ vaddr &+ memsz)
            } else if type == 4 /* PT_NOTE */ && buildID.isEmpty, let p = UnsafeRawPointer(bitPattern: UInt(bias &+ vaddr)) {
                buildID = gnuBuildID(notes: p, size: Int(memsz)) ?? ""
            }
        }
        guard low < high else { return nil }
        return ModuleInfo(path: name, buildID: buildID, bias: bias, low: low, high: high)
    }

    /// Parses ELF notes for NT_GNU_BUILD_ID (type 3, owner "GNU").
    static func gnuBuildID(notes: UnsafeRawPointer, size: Int) -> String? {
        var off = 0
        func align4(_ x: Int) -> Int { (x + 3) & ~3 }
        while off + 12 <= size {
            let namesz = Int(notes.loadUnaligned(fromByteOffset: off, as: UInt32.self))
            let descsz = Int(notes.loadUnaligned(fromByteOffset: off + 4, as: UInt32.self))
            let type = notes.loadUnaligned(fromByteOffset: off + 8, as: UInt32.self)
            let nameOff = off + 12
            let descOff = nameOff + align4(namesz)
            guard descOff + descsz <= size else { return nil }
            if type == 3 && namesz == 4,
               notes.load(fromByteOffset: nameOff, as: UInt8.self) == UInt8(ascii: "G"),
               notes.load(fromByteOffset: nameOff + 1, as: UInt8.self) == UInt8(ascii: "N"),
               notes.load(fromByteOffset: nameOff + 2, as: UInt8.self) == UInt8(ascii: "U") {
                return hex(UnsafeRawBufferPointer(start: notes + descOff, count: descsz))
            }
            off = descOff + align4(descsz)
        }
        return nil
    }

    static func hex(_ bytes: UnsafeRawBufferPointer) -> String {
        let digits: [Character] = Array("0123456789abcdef")
        var s = ""
        s.reserveCapacity(bytes.count * 2)
        for b in bytes {
            s.append(digits[Int(b >> 4)])
            s.append(digits[Int(b & 15)])
        }
        return s
    }
}
