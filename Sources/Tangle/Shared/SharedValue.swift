import CTangleSupport
import Glibc
import TangleRecorder

/// The values of a `SharedValue` / `SharedArray` start 64 bytes into the region (the region's
/// 16-byte header, then padding): aligned for any trivial type.
private let valueOffset = 64 - SharedRegion.headerSize

/// One value of a trivial type in shared memory, seen by every process that has the handle
/// (Python's `multiprocessing.Value`).
///
/// With `lock: true` (the default, as in Python) it carries a `Lock` — a real, traced Tangle lock
/// (`lock.new` named after the value, `lock.wait` / `lock.acquired` / `lock.released`), so the
/// analyzer sees its holders and waiters like any lock's. `withLock { $0 += 1 }` is the atomic
/// update; `load()` / `store()` take the lock for one access, as Python's `.value` does; `value`
/// is the raw, unlocked access (Python's `RawValue`).
///
/// `T` must be trivial (`BitwiseCopyable`: numbers, fixed-size structs of them): the bytes are the
/// value in every process of the session (the same executable).
public final class SharedValue<T: BitwiseCopyable>: ProcessTransferable, @unchecked Sendable {
    let region: SharedRegion
    let pointer: UnsafeMutablePointer<T>
    /// The lock (nil when created with `lock: false`). Python's `get_lock()`.
    public let lock: Lock?
    public var object: UInt64 { region.object }

    public init(_ initial: T, lock: Bool = true, name: String? = nil) {
        precondition(MemoryLayout<T>.alignment <= 64, "SharedValue: alignment above 64 bytes")
        let object = Recorder.newObjectID()
        region = SharedRegion(create: valueOffset + MemoryLayout<T>.stride, kind: .value, object: object)
        pointer = (region.body + valueOffset).bindMemory(to: T.self, capacity: 1)
        pointer.initialize(to: initial)
        self.lock = lock ? Lock(name: name.map { "\($0).lock" } ?? "SharedValue-\(object & 0xFFF_FFFF).lock") : nil
    }

    private enum CodingKeys: String, CodingKey { case region, lock, size }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let size = try c.decode(Int.self, forKey: .size)
        region = try SharedRegion.decodeHandle(from: c.superDecoder(forKey: .region), kind: .value, typeName: "SharedValue", objectType: .sharedMemory)
        guard size == MemoryLayout<T>.size, region.size >= SharedRegion.headerSize + valueOffset + MemoryLayout<T>.stride else {
            throw SyncError.handleNotInherited(type: "SharedValue<\(T.self)>", fd: region.fd, object: region.object)
        }
        pointer = (region.body + valueOffset).bindMemory(to: T.self, capacity: 1)
        lock = try c.decodeIfPresent(Lock.self, forKey: .lock)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(MemoryLayout<T>.size, forKey: .size)
        try region.encodeHandle(to: c.superEncoder(forKey: .region))
        try c.encodeIfPresent(lock, forKey: .lock)
    }

    /// The raw value, without the lock (Python's `RawValue`; a torn read is possible for types
    /// wider than a word while another process writes).
    public var value: T {
        get { pointer.pointee }
        set { pointer.pointee = newValue }
    }

    /// Reads the value holding the lock (if any).
    public func load() throws -> T { try withLock { $0 } }

    /// Writes the value holding the lock (if any).
    public func store(_ newValue: T) throws { try withLock { $0 = newValue } }

    /// Runs `body` on the value holding the lock (without one when created with `lock: false`):
    /// `try counter.withLock { $0 += 1 }` is an atomic increment across processes.
    @inline(__always)
    public func withLock<R>(_ body: (inout T) throws -> R) throws -> R {
        guard let lock else { return try body(&pointer.pointee) }
        try lock.acquire()
        defer { try? lock.release() }
        return try body(&pointer.pointee)
    }
}

/// A fixed-size array of a trivial type in shared memory (Python's `multiprocessing.Array`), with
/// an optional traced `Lock` as `SharedValue` has.
public final class SharedArray<T: BitwiseCopyable>: ProcessTransferable, @unchecked Sendable {
    let region: SharedRegion
    let base: UnsafeMutablePointer<T>
    public let count: Int
    public let lock: Lock?
    public var object: UInt64 { region.object }

    /// An array of `count` copies of `repeating`.
    public convenience init(repeating: T, count: Int, lock: Bool = true, name: String? = nil) {
        self.init(count: count, lock: lock, name: name)
        base.initialize(repeating: repeating, count: count)
    }

    /// An array holding `elements`.
    public convenience init(_ elements: [T], lock: Bool = true, name: String? = nil) {
        self.init(count: elements.count, lock: lock, name: name)
        elements.withUnsafeBufferPointer { src in
            if let s = src.baseAddress { base.initialize(from: s, count: src.count) }
        }
    }

    private init(count: Int, lock: Bool, name: String?) {
        precondition(count >= 0 && MemoryLayout<T>.alignment <= 64, "SharedArray: bad count or alignment")
        let object = Recorder.newObjectID()
        region = SharedRegion(create: valueOffset + max(count, 1) * MemoryLayout<T>.stride, kind: .value, object: object)
        base = (region.body + valueOffset).bindMemory(to: T.self, capacity: max(count, 1))
        self.count = count
        self.lock = lock ? Lock(name: name.map { "\($0).lock" } ?? "SharedArray-\(object & 0xFFF_FFFF).lock") : nil
    }

    private enum CodingKeys: String, CodingKey { case region, lock, size, count }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let size = try c.decode(Int.self, forKey: .size)
        count = try c.decode(Int.self, forKey: .count)
        region = try SharedRegion.decodeHandle(from: c.superDecoder(forKey: .region), kind: .value, typeName: "SharedArray", objectType: .sharedMemory)
        guard size == MemoryLayout<T>.size, count >= 0,
              region.size >= SharedRegion.headerSize + valueOffset + count * MemoryLayout<T>.stride else {
            throw SyncError.handleNotInherited(type: "SharedArray<\(T.self)>", fd: region.fd, object: region.object)
        }
        base = (region.body + valueOffset).bindMemory(to: T.self, capacity: max(count, 1))
        lock = try c.decodeIfPresent(Lock.self, forKey: .lock)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(MemoryLayout<T>.size, forKey: .size)
        try c.encode(count, forKey: .count)
        try region.encodeHandle(to: c.superEncoder(forKey: .region))
        try c.encodeIfPresent(lock, forKey: .lock)
    }

    /// Raw element access, without the lock (bounds-checked).
    public subscript(index: Int) -> T {
        get { precondition(index >= 0 && index < count, "SharedArray index out of range"); return base[index] }
        set { precondition(index >= 0 && index < count, "SharedArray index out of range"); base[index] = newValue }
    }

    /// Runs `body` on the elements holding the lock (if any).
    public func withLock<R>(_ body: (UnsafeMutableBufferPointer<T>) throws -> R) throws -> R {
        let buffer = UnsafeMutableBufferPointer(start: base, count: count)
        guard let lock else { return try body(buffer) }
        try lock.acquire()
        defer { try? lock.release() }
        return try body(buffer)
    }

    /// A copy of the elements, read holding the lock.
    public func toArray() throws -> [T] { try withLock { Array($0) } }
}
