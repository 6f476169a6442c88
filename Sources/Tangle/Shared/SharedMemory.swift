import CTangleSupport
import Glibc
import TangleTraceFormat
import TangleRecorder

/// A named block of shared memory (Python's `multiprocessing.shared_memory.SharedMemory`):
/// `shm_open` + `mmap`. Create it with a size (and optionally a name), attach to it by name in any
/// process, `close()` in every process, and `unlink()` once (the creator, usually) so the name does
/// not outlive the program. Traced: `shm.create`, `shm.attach`, `shm.close`, `shm.unlink` with the
/// name as text; the object id is derived from the name, so every process names the same object.
///
/// Its `Codable` form is the name and size: a child decoding it attaches by name.
public final class SharedMemory: ProcessTransferable, @unchecked Sendable {
    public enum Error: Swift.Error, CustomStringConvertible, Equatable {
        case exists(name: String)
        case notFound(name: String)
        case closed(name: String)
        case badSize(name: String, size: Int)
        case system(call: String, name: String, errno: Int32)

        public var description: String {
            switch self {
            case .exists(let n): return "shared memory \"\(n)\" already exists"
            case .notFound(let n): return "shared memory \"\(n)\" does not exist (never created, or unlinked)"
            case .closed(let n): return "shared memory \"\(n)\" is closed in this process"
            case .badSize(let n, let s): return "shared memory \"\(n)\": bad size \(s) (must be > 0 when creating)"
            case .system(let c, let n, let e): return "shared memory \"\(n)\": \(c) failed: \(String(cString: strerror(e))) (errno \(e))"
            }
        }
    }

    /// The name without the leading slash.
    public let name: String
    /// Size in bytes.
    public let size: Int
    public let object: UInt64
    private var base: UnsafeMutableRawPointer?
    private var fd: Int32

    private static let counter = _AtomicCounter()

    /// Creates a new segment of `size` bytes (zero-filled). `name` nil: a unique one is made up.
    public init(create size: Int, name: String? = nil) throws {
        guard size > 0 else { throw Error.badSize(name: name ?? "", size: size) }
        let n = name.map(SharedMemory.strip) ?? "tangle-\(getpid())-\(SharedMemory.counter.next())"
        let fd = tangle_sync_shm_create("/" + n, size)
        guard fd >= 0 else {
            let e = tangle_sync_errno()
            throw e == EEXIST ? Error.exists(name: n) : Error.system(call: "shm_open", name: n, errno: e)
        }
        guard let p = tangle_sync_map(fd, size) else {
            let e = tangle_sync_errno()
            Glibc.close(fd)
            _ = tangle_sync_shm_unlink("/" + n)
            throw Error.system(call: "mmap", name: n, errno: e)
        }
        self.name = n
        self.size = size
        self.fd = fd
        self.base = p
        self.object = SharedMemory.objectID(n)
        Recorder.record(.shmCreate, object: object, text: n, a: UInt64(size))
    }

    /// Attaches to the existing segment `name`.
    public init(attach name: String) throws {
        let n = SharedMemory.strip(name)
        let fd = tangle_sync_shm_attach("/" + n)
        guard fd >= 0 else {
            let e = tangle_sync_errno()
            throw e == ENOENT ? Error.notFound(name: n) : Error.system(call: "shm_open", name: n, errno: e)
        }
        let size = Int(tangle_sync_fd_size(fd))
        guard size > 0, let p = tangle_sync_map(fd, size) else {
            let e = tangle_sync_errno()
            Glibc.close(fd)
            throw Error.system(call: "mmap", name: n, errno: e)
        }
        self.name = n
        self.size = size
        self.fd = fd
        self.base = p
        self.object = SharedMemory.objectID(n)
        Recorder.record(.shmAttach, object: object, text: n, a: UInt64(size))
    }

    private enum CodingKeys: String, CodingKey { case name }

    public convenience init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(attach: try c.decode(String.self, forKey: .name))
        Recorder.record(.handleAttach, object: object, a: ObjectType.sharedMemory.rawValue, stack: false)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
    }

    deinit {
        if let base { tangle_sync_unmap(base, size) }
        if fd >= 0 { Glibc.close(fd) }
    }

    /// The bytes (valid until `close()`).
    public var buffer: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base, count: base == nil ? 0 : size)
    }

    /// A typed view of the whole segment (as many `T` as fit). Valid until `close()`.
    public func buffer<T>(of type: T.Type) -> UnsafeMutableBufferPointer<T> {
        guard let base else { return UnsafeMutableBufferPointer(start: nil, count: 0) }
        let n = size / MemoryLayout<T>.stride
        return UnsafeMutableBufferPointer(start: base.bindMemory(to: T.self, capacity: n), count: n)
    }

    public var isClosed: Bool { base == nil }

    /// Unmaps the segment in this process (others keep it).
    public func close() {
        guard let b = base else { return }
        Recorder.record(.shmClose, object: object, text: name)
        tangle_sync_unmap(b, size)
        Glibc.close(fd)
        base = nil
        fd = -1
    }

    /// Removes the name; the memory lives on while some process maps it.
    public func unlink() throws {
        Recorder.record(.shmUnlink, object: object, text: name)
        if tangle_sync_shm_unlink("/" + name) != 0 {
            let e = tangle_sync_errno()
            throw e == ENOENT ? Error.notFound(name: name) : Error.system(call: "shm_unlink", name: name, errno: e)
        }
    }

    private static func strip(_ name: String) -> String {
        name.hasPrefix("/") ? String(name.dropFirst()) : name
    }

    /// FNV-1a of the name with the top bit set (process-based object ids never set it).
    static func objectID(_ name: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in name.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h | (1 << 63)
    }
}

final class _AtomicCounter: @unchecked Sendable {
    private let p: UnsafeMutablePointer<UInt32> = .allocate(capacity: 1)
    init() { p.initialize(to: 0) }
    func next() -> UInt32 { tangle_atomic_add32(p, 1) + 1 }
}
