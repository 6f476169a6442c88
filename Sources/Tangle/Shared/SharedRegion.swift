import CTangleSupport
import Glibc
import TangleTraceFormat
import TangleRecorder

/// Errors of Tangle's cross-process primitives. Every message names the object and what went wrong.
public enum SyncError: Error, CustomStringConvertible, Equatable {
    /// The owner (pid) died holding the lock; the lock was recovered and is free again.
    case ownerDied(object: UInt64, pid: Int32)
    /// An RLock (or a Condition's lock) released / used by a thread that does not own it.
    case notOwner(object: UInt64, what: String)
    /// `release()` of a lock that is not held.
    case releasedUnlocked(object: UInt64)
    /// A BoundedSemaphore released more times than it was acquired.
    case boundedOverflow(object: UInt64, max: UInt32)
    /// A Barrier that was broken (timeout, abort or reset) while or before waiting.
    case brokenBarrier(object: UInt64)
    /// An operation gave up after its timeout.
    case timeout(object: UInt64, what: String)
    /// A handle whose descriptor is not open in this process (it was not passed through spawn).
    case handleNotInherited(type: String, fd: Int32, object: UInt64)
    /// A system call failed.
    case system(call: String, errno: Int32)

    public var description: String {
        switch self {
        case .ownerDied(let o, let pid):
            return "\(ObjectNames.label("lock", o)): its owner (pid \(pid)) died while holding it; the lock was recovered and is free again"
        case .notOwner(let o, let what): return "\(ObjectNames.label(what, o)): not owned by the calling thread"
        case .releasedUnlocked(let o): return "\(ObjectNames.label("lock", o)): release of an unlocked lock"
        case .boundedOverflow(let o, let max): return "\(ObjectNames.label("bounded semaphore", o)): released too many times (maximum value \(max))"
        case .brokenBarrier(let o): return "\(ObjectNames.label("barrier", o)) is broken"
        case .timeout(let o, let what): return "\(ObjectNames.label(what, o)): timed out"
        case .handleNotInherited(let type, let fd, let o):
            return "\(type) \(o): descriptor \(fd) is not open in this process (pid \(getpid())); pass the handle to a child through its spawn arguments, or use fork"
        case .system(let call, let e): return "\(call) failed: \(String(cString: strerror(e))) (errno \(e))"
        }
    }
}

/// `Recorder.isEnabled` without a cross-module call (a C copy set when a region is made or mapped).
@inline(__always)
var _tracing: Bool { tangle_sync_tracing != 0 }

/// Timeout in nanoseconds for the C layer: -1 = no limit.
@inline(__always)
func timeoutNanoseconds(_ timeout: Duration?) -> Int64 {
    guard let timeout else { return -1 }
    let (s, a) = timeout.components
    if s < 0 { return 0 }
    if s > Int64.max / 1_000_000_000 - 1 { return Int64.max / 2 }
    return s * 1_000_000_000 + a / 1_000_000_000
}

/// What a region holds (a sanity check when a child maps a handle's descriptor).
enum RegionKind: UInt32 {
    case lock = 1, semaphore, event, condition, barrier, queue, container, value
}

/// Anonymous shared memory (memfd + mmap MAP_SHARED) holding one primitive's state. Nothing has a
/// name, so nothing leaks: the memory lives while a process maps it or holds its descriptor.
/// A spawned child gets the descriptor at the same number (HandleTransfer) and maps it again; a
/// forked child inherits the mapping itself.
///
/// Layout: a 16-byte header (magic, kind, object id) then the primitive's state.
final class SharedRegion: @unchecked Sendable {
    static let magic: UInt32 = 0x54_4E_47_4C  // "TNGL"
    static let headerSize = 16

    let fd: Int32
    private(set) var base: UnsafeMutableRawPointer
    private(set) var size: Int
    let object: UInt64

    /// The primitive's state, after the header.
    var body: UnsafeMutableRawPointer { base + SharedRegion.headerSize }

    /// Creates a zero-filled region of `bodySize` bytes (plus header).
    init(create bodySize: Int, kind: RegionKind, object: UInt64) {
        tangle_sync_tracing = Recorder.isEnabled ? 1 : 0
        let total = SharedRegion.headerSize + bodySize
        let fd = tangle_sync_memfd("tangle-\(kind)", total)
        guard fd >= 0 else { fatalError("Tangle: memfd_create failed: \(String(cString: strerror(tangle_sync_errno())))") }
        guard let p = tangle_sync_map(fd, total) else {
            fatalError("Tangle: mmap of \(total) bytes failed: \(String(cString: strerror(tangle_sync_errno())))")
        }
        self.fd = fd
        self.base = p
        self.size = total
        self.object = object
        p.storeBytes(of: SharedRegion.magic, toByteOffset: 0, as: UInt32.self)
        p.storeBytes(of: kind.rawValue, toByteOffset: 4, as: UInt32.self)
        p.storeBytes(of: object, toByteOffset: 8, as: UInt64.self)
    }

    /// Maps the region behind an inherited descriptor `fd` (duplicated, so this object owns its
    /// own descriptor), checking it really is the `kind` region of `object`.
    init(attach fd: Int32, kind: RegionKind, object: UInt64, typeName: String) throws {
        tangle_sync_tracing = Recorder.isEnabled ? 1 : 0
        guard fd >= 0, tangle_sync_fd_valid(fd) != 0 else {
            throw SyncError.handleNotInherited(type: typeName, fd: fd, object: object)
        }
        let size = Int(tangle_sync_fd_size(fd))
        guard size >= SharedRegion.headerSize else { throw SyncError.handleNotInherited(type: typeName, fd: fd, object: object) }
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 3)
        guard copy >= 0 else { throw SyncError.system(call: "fcntl(F_DUPFD_CLOEXEC)", errno: errno) }
        guard let p = tangle_sync_map(copy, size) else {
            let e = tangle_sync_errno()
            close(copy)
            throw SyncError.system(call: "mmap", errno: e)
        }
        guard p.load(fromByteOffset: 0, as: UInt32.self) == SharedRegion.magic,
              p.load(fromByteOffset: 4, as: UInt32.self) == kind.rawValue,
              p.load(fromByteOffset: 8, as: UInt64.self) == object
        else {
            tangle_sync_unmap(p, size)
            close(copy)
            throw SyncError.handleNotInherited(type: typeName, fd: fd, object: object)
        }
        self.fd = copy
        self.base = p
        self.size = size
        self.object = object
    }

    /// Grows the underlying memory to at least `total` bytes (ftruncate). Call `remap` afterwards.
    func grow(to total: Int) throws {
        guard tangle_sync_resize(fd, total) == 0 else { throw SyncError.system(call: "ftruncate", errno: tangle_sync_errno()) }
        try remap(to: total)
    }

    /// Maps `total` bytes of the region again (another process grew it). Memory outside the old
    /// mapping becomes reachable; everything inside keeps its contents (it is the same memory).
    func remap(to total: Int) throws {
        guard total != size else { return }
        guard let p = tangle_sync_map(fd, total) else { throw SyncError.system(call: "mmap", errno: tangle_sync_errno()) }
        tangle_sync_unmap(base, size)
        base = p
        size = total
    }

    /// Current size of the underlying memory object.
    var objectSize: Int { Int(tangle_sync_fd_size(fd)) }

    deinit {
        tangle_sync_unmap(base, size)
        close(fd)
        ObjectNames.release(object)
    }
}

/// The Codable form of a region-backed handle: the descriptor number (kept open at the same number in
/// a spawned child) and the object id.
struct RegionHandle: Codable {
    var fd: Int32
    var object: UInt64
    /// The object's name (ObjectNames), so that the child's messages say it too.
    var name: String?
}

extension SharedRegion {
    /// Encodes the handle, asking the spawner to keep the descriptor open in the child.
    func encodeHandle(to encoder: Encoder) throws {
        HandleTransfer.inheritDescriptor(fd)
        try RegionHandle(fd: fd, object: object, name: ObjectNames.name(of: object)).encode(to: encoder)
    }

    /// Decodes a handle and maps its region, recording `handle.attach`.
    static func decodeHandle(from decoder: Decoder, kind: RegionKind, typeName: String, objectType: ObjectType) throws -> SharedRegion {
        let h = try RegionHandle(from: decoder)
        let region = try SharedRegion(attach: h.fd, kind: kind, object: h.object, typeName: typeName)
        if let name = h.name { ObjectNames.register(h.object, name) }
        Recorder.record(.handleAttach, object: h.object, a: objectType.rawValue)
        return region
    }
}
