import CTangleSupport
import Glibc
import TangleTraceFormat
import TangleRecorder

/// The shared header of a Manager-style container; the encoded value follows it.
struct _ContainerState {
    var lock: tangle_lock_t      // 16
    var version: UInt64          // bumped by every write
    var length: UInt64           // bytes of the encoded value
    var capacity: UInt64         // bytes available for it
    var pad: UInt64
}

/// A value of type `C` kept encoded (BinaryCodec) in anonymous shared memory under a robust lock:
/// every read decodes it (or reuses this process's copy when no one wrote since), every write
/// re-encodes it. The region grows (ftruncate) when a value outgrows it; other processes remap on
/// their next operation. Simple and correct, meant for small shared state (Python's Manager
/// containers), not for bulk data.
public class _SharedBox<C: Codable>: @unchecked Sendable {
    let region: SharedRegion
    public let object: UInt64
    private var cache: C
    private var cacheVersion: UInt64 = .max
    private let local = _ConnMutex()   // one thread of this process at a time (the cache)

    static var headerSize: Int { (MemoryLayout<_ContainerState>.stride + 15) & ~15 }

    init(initial: C, typeName: String) {
        object = Recorder.newObjectID()
        let bytes = (try? BinaryCodec.encode(initial)) ?? []
        let cap = max(4096, bytes.count * 2)
        region = SharedRegion(create: _SharedBox.headerSize + cap, kind: .container, object: object)
        cache = initial
        let s = state
        s.pointee.capacity = UInt64(cap)
        s.pointee.length = UInt64(bytes.count)
        s.pointee.version = 1
        bytes.withUnsafeBytes { if $0.count > 0 { data.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
        cacheVersion = 1
        Recorder.record(.handleAttach, object: object, text: typeName, a: ObjectType.manager.rawValue, stack: false)
    }

    public required init(from decoder: Decoder) throws {
        region = try SharedRegion.decodeHandle(from: decoder, kind: .container, typeName: "shared container", objectType: .manager)
        object = region.object
        let s = region.body.bindMemory(to: _ContainerState.self, capacity: 1)
        let (bytes, version) = try _SharedBox.lockedRead(region, s)
        cache = try BinaryCodec.decode(C.self, from: bytes)
        cacheVersion = version
    }

    public func encode(to encoder: Encoder) throws { try region.encodeHandle(to: encoder) }

    var state: UnsafeMutablePointer<_ContainerState> { region.body.bindMemory(to: _ContainerState.self, capacity: 1) }
    var data: UnsafeMutableRawPointer { region.body + _SharedBox.headerSize }

    private static func lock(_ s: UnsafeMutablePointer<_ContainerState>) {
        let l = UnsafeMutableRawPointer(s).assumingMemoryBound(to: tangle_lock_t.self)
        if tangle_lock_try(l) != 0 || tangle_lock_spin(l, 200) != 0 { return }
        var dead: Int32 = 0
        // A writer that died mid-update: the value is written before `length`/`version` are, so
        // the previous value is still whole.
        _ = tangle_lock_acquire_slow(l, -1, &dead)
    }

    private static func unlock(_ s: UnsafeMutablePointer<_ContainerState>) {
        _ = tangle_lock_release(UnsafeMutableRawPointer(s).assumingMemoryBound(to: tangle_lock_t.self))
    }

    /// Remaps when another process grew the region. Lock held.
    private static func ensureMapped(_ region: SharedRegion) throws {
        let s = region.body.bindMemory(to: _ContainerState.self, capacity: 1)
        let needed = SharedRegion.headerSize + headerSize + Int(s.pointee.capacity)
        if needed > region.size {
            try region.remap(to: needed)
        }
    }

    private static func lockedRead(_ region: SharedRegion, _ s0: UnsafeMutablePointer<_ContainerState>) throws -> ([UInt8], UInt64) {
        lock(s0)
        defer { unlock(region.body.bindMemory(to: _ContainerState.self, capacity: 1)) }
        try ensureMapped(region)
        let s = region.body.bindMemory(to: _ContainerState.self, capacity: 1)
        let n = Int(s.pointee.length)
        let bytes = [UInt8](UnsafeRawBufferPointer(start: region.body + headerSize, count: n))
        return (bytes, s.pointee.version)
    }

    /// Lock held: brings the cache up to date.
    private func refresh() throws {
        try _SharedBox.ensureMapped(region)
        let s = state
        if s.pointee.version != cacheVersion {
            cache = try BinaryCodec.decode(C.self, fromRaw: UnsafeRawBufferPointer(start: data, count: Int(s.pointee.length)))
            cacheVersion = s.pointee.version
        }
    }

    /// Reads the value under the lock.
    public func read<R>(_ body: (C) throws -> R) throws -> R {
        try local.withLock {
            _SharedBox.lock(state)
            defer { _SharedBox.unlock(state) }
            try refresh()
            return try body(cache)
        }
    }

    /// Read-modify-write under the lock: other processes see all of `body`'s changes or none.
    public func modify<R>(_ body: (inout C) throws -> R) throws -> R {
        try local.withLock {
            _SharedBox.lock(state)
            defer { _SharedBox.unlock(state) }
            try refresh()
            var value = cache
            let result = try body(&value)
            try BinaryCodec.withEncoded(value) { bytes in
                var s = state
                if UInt64(bytes.count) > s.pointee.capacity {
                    let cap = max(bytes.count * 2, Int(s.pointee.capacity) * 2)
                    try region.grow(to: SharedRegion.headerSize + _SharedBox.headerSize + cap)
                    s = state
                    s.pointee.capacity = UInt64(cap)
                }
                if bytes.count > 0 { data.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
                s.pointee.length = UInt64(bytes.count)
                s.pointee.version &+= 1
                cacheVersion = s.pointee.version
            }
            cache = value
            return result
        }
    }

    /// A copy of the whole value.
    public func snapshot() throws -> C { try read { $0 } }
}

/// A dictionary several processes update safely (Python's `Manager().dict()`): every operation is
/// atomic; use `update` for a read-modify-write of several keys.
public final class SharedDictionary<Key: Codable & Hashable, Value: Codable>: _SharedBox<[Key: Value]>, ProcessTransferable, @unchecked Sendable {
    public init(_ initial: [Key: Value] = [:]) { super.init(initial: initial, typeName: "SharedDictionary") }
    public required init(from decoder: Decoder) throws { try super.init(from: decoder) }

    public func get(_ key: Key) throws -> Value? { try read { $0[key] } }
    public func set(_ key: Key, _ value: Value?) throws { try modify { $0[key] = value } }
    @discardableResult
    public func removeValue(forKey key: Key) throws -> Value? { try modify { $0.removeValue(forKey: key) } }
    public var count: Int { (try? read { $0.count }) ?? 0 }
    public func keys() throws -> [Key] { try read { Array($0.keys) } }
    /// Atomic read-modify-write of the whole dictionary.
    public func update<R>(_ body: (inout [Key: Value]) throws -> R) throws -> R { try modify(body) }
    /// Atomic read-modify-write of one value (`defaultValue` when absent).
    public func update(_ key: Key, default defaultValue: Value, _ body: (inout Value) throws -> Void) throws {
        try modify { d in try body(&d[key, default: defaultValue]) }
    }
    public subscript(key: Key) -> Value? {
        get { try? get(key) }
        set { try? set(key, newValue) }
    }
}

public enum SharedListError: Error, Equatable, CustomStringConvertible {
    case indexOutOfRange(index: Int, count: Int)
    public var description: String {
        switch self {
        case .indexOutOfRange(let i, let n): return "shared list index \(i) out of range (count \(n))"
        }
    }
}

/// A list several processes update safely (Python's `Manager().list()`).
public final class SharedList<Element: Codable>: _SharedBox<[Element]>, ProcessTransferable, @unchecked Sendable {
    public init(_ initial: [Element] = []) { super.init(initial: initial, typeName: "SharedList") }
    public required init(from decoder: Decoder) throws { try super.init(from: decoder) }

    public func append(_ element: Element) throws { try modify { $0.append(element) } }
    public func append(contentsOf elements: [Element]) throws { try modify { $0.append(contentsOf: elements) } }
    /// Throws `SharedListError.indexOutOfRange` (Python's IndexError) for a bad index.
    public func get(_ index: Int) throws -> Element {
        try read { list in
            guard list.indices.contains(index) else { throw SharedListError.indexOutOfRange(index: index, count: list.count) }
            return list[index]
        }
    }
    public func set(_ index: Int, _ element: Element) throws {
        try modify { list in
            guard list.indices.contains(index) else { throw SharedListError.indexOutOfRange(index: index, count: list.count) }
            list[index] = element
        }
    }
    @discardableResult
    public func remove(at index: Int) throws -> Element {
        try modify { list in
            guard list.indices.contains(index) else { throw SharedListError.indexOutOfRange(index: index, count: list.count) }
            return list.remove(at: index)
        }
    }
    public var count: Int { (try? read { $0.count }) ?? 0 }
    /// Atomic read-modify-write of the whole list.
    public func update<R>(_ body: (inout [Element]) throws -> R) throws -> R { try modify(body) }
    public subscript(index: Int) -> Element {
        get { try! get(index) }
        set { try! set(index, newValue) }
    }
}
