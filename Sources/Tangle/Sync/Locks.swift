import CTangleSupport
import Glibc
import TangleTraceFormat
import TangleRecorder

/// What a Condition needs from its lock (Lock or RLock).
public protocol ConditionLock: AnyObject, Sendable {
    var object: UInt64 { get }
    func acquire(timeout: Duration?) throws -> Bool
    func release() throws
    /// True when the calling thread holds the lock.
    var isOwnedByCurrentThread: Bool { get }
    /// Releases completely (an RLock at any depth), returning what `_restore` needs.
    func _releaseSaving() throws -> UInt32
    /// Re-acquires (blocking) and restores the depth `_releaseSaving` returned.
    func _restore(_ saved: UInt32) throws
    /// True when the calling task (its `TaskParticipant`) holds the lock, taken by an async acquire.
    var _isOwnedByCurrentTask: Bool { get }
}

extension ConditionLock {
    public var _isOwnedByCurrentTask: Bool { false }
}

/// The shared part of Lock and RLock: a futex word with its owner, in anonymous shared memory.
public class _LockBase: @unchecked Sendable {
    let region: SharedRegion
    let state: UnsafeMutablePointer<tangle_lock_t>
    /// The object id events name (unique across processes).
    public let object: UInt64
    let type: LockType

    /// `name`: the program's, else `rlock@file.swift:line` from `fileID`/`line` (ObjectNames).
    init(type: LockType, name: String?, fileID: String, line: Int) {
        object = Recorder.newObjectID()
        region = SharedRegion(create: MemoryLayout<tangle_lock_t>.stride, kind: .lock, object: object)
        state = region.body.bindMemory(to: tangle_lock_t.self, capacity: 1)
        self.type = type
        let name = ObjectNames.name(given: name, noun: type == .rlock ? "rlock" : "lock", fileID: fileID, line: line)
        ObjectNames.register(object, name)
        if _tracing { Recorder.record(.lockNew, object: object, text: name, a: type.rawValue) }
    }

    init(attaching decoder: Decoder, type: LockType) throws {
        region = try SharedRegion.decodeHandle(from: decoder, kind: .lock, typeName: type == .lock ? "Lock" : "RLock", objectType: .lock)
        object = region.object
        state = region.body.bindMemory(to: tangle_lock_t.self, capacity: 1)
        self.type = type
    }

    public func encode(to encoder: Encoder) throws { try region.encodeHandle(to: encoder) }

    /// True while someone holds the lock.
    public var isLocked: Bool { tangle_atomic_load32(&state.pointee.word) != 0 }

    /// The pid of the process holding the lock (0 when free or unknown).
    public var ownerPID: Int32 { tangle_atomic_load_i32(&state.pointee.owner_pid) }

    public var isOwnedByCurrentThread: Bool {
        state.pointee.word != 0 && state.pointee.owner_pid == tangle_sync_pid() && state.pointee.owner_tid == tangle_sync_tid()
    }

    /// The slow path of an acquire: spin, then record `lock.wait` and block.
    /// Returns true when acquired; throws ownerDied after recovering the lock from a dead owner.
    @inline(never)
    final func acquireSlow(_ ns: Int64, depthAfter: UInt64) throws -> Bool {
        if ns != 0, tangle_lock_spin(state, 100) != 0 {
            Recorder.record(.lockAcquired, object: object, a: depthAfter)
            return true
        }
        if ns != 0 { Recorder.record(.lockWait, object: object, a: ns < 0 ? 0 : UInt64(ns)) }
        var dead: Int32 = 0
        let rc = tangle_lock_acquire_slow(state, ns, &dead)
        switch rc {
        case 0:
            Recorder.record(.lockAcquired, object: object, a: depthAfter)
            return true
        case EOWNERDEAD:
            // We hold it now; record what happened, then leave it free and usable.
            Recorder.record(.lockOwnerDied, object: object, a: UInt64(dead), result: .ownerDied)
            _ = tangle_lock_release(state)
            throw SyncError.ownerDied(object: object, pid: dead)
        default:
            Recorder.record(.lockTimeout, object: object, a: ns < 0 ? 0 : UInt64(ns), result: .timeout, stack: false)
            return false
        }
    }
}

/// A non-recursive lock shared by threads and processes (Python's `multiprocessing.Lock`).
///
/// Any thread or process may release it (as in Python); the trace then names the owner it had
/// (`lock.released` with `owner` = that pid) so the analyzer can report a non-owner release.
/// Robust: when the owner process dies holding it, the next acquirer gets `SyncError.ownerDied`
/// (within ~50 ms) and the lock is free again.
public final class Lock: _LockBase, ConditionLock, ProcessTransferable, @unchecked Sendable {
    /// A lock named `name` (nil: `lock@file.swift:line`, where it is created).
    public init(name: String? = nil, fileID: String = #fileID, line: Int = #line) {
        super.init(type: .lock, name: name, fileID: fileID, line: line)
    }

    public required init(from decoder: Decoder) throws { try super.init(attaching: decoder, type: .lock) }

    /// Blocks until acquired.
    @inline(__always)
    public func acquire() throws { _ = try acquire(timeout: nil) }

    /// Acquires within `timeout` (nil = no limit). False on timeout.
    @inline(__always)
    public func acquire(timeout: Duration?) throws -> Bool {
        _steer()
        if tangle_lock_try(state) != 0 {
            if _tracing { Recorder.record(.lockAcquired, object: object, a: 1) }
            return true
        }
        return try acquireSlow(timeoutNanoseconds(timeout), depthAfter: 1)
    }

    /// Non-blocking acquire. False when someone holds it.
    public func tryAcquire() throws -> Bool {
        if tangle_lock_try(state) != 0 {
            if _tracing { Recorder.record(.lockAcquired, object: object, a: 1) }
            return true
        }
        return try acquireSlow(0, depthAfter: 1)
    }

    /// Releases the lock (by any thread or process). Throws when it is not held.
    @inline(__always)
    public func release() throws {
        if _tracing {
            let s = state.pointee
            if s.owner_tid != tangle_sync_tid() || s.owner_pid != tangle_sync_pid() {
                releasedByOther(s)
            } else {
                Recorder.record(.lockReleased, object: object, a: 0, b: 0, stack: false)
            }
        }
        if tangle_lock_release(state) == 0 {
            throw SyncError.releasedUnlocked(object: object)
        }
    }

    /// Runs `body` holding the lock.
    @inline(__always)
    public func withLock<R>(_ body: () throws -> R) throws -> R {
        try acquire()
        defer { try? release() }
        return try body()
    }

    public func _releaseSaving() throws -> UInt32 {
        guard isOwnedByCurrentThread else { throw SyncError.notOwner(object: object, what: "lock") }
        try release()
        return 1
    }

    public func _restore(_ saved: UInt32) throws {
        _ = try acquire(timeout: nil)
    }
}

/// A recursive lock (Python's `RLock`): the owning thread may acquire it again; it is free when
/// released as many times. Release by a thread that does not own it throws `SyncError.notOwner`.
public final class RLock: _LockBase, ConditionLock, ProcessTransferable, @unchecked Sendable {
    /// A recursive lock named `name` (nil: `rlock@file.swift:line`, where it is created).
    public init(name: String? = nil, fileID: String = #fileID, line: Int = #line) {
        super.init(type: .rlock, name: name, fileID: fileID, line: line)
    }

    public required init(from decoder: Decoder) throws { try super.init(attaching: decoder, type: .rlock) }

    /// Recursion depth held by the calling thread (0 when it does not own the lock).
    public var depth: Int { isOwnedByCurrentThread ? Int(state.pointee.depth) : 0 }

    public func acquire() throws { _ = try acquire(timeout: nil) }

    public func acquire(timeout: Duration?) throws -> Bool {
        _steer()
        return try acquire(ns: timeoutNanoseconds(timeout))
    }

    public func tryAcquire() throws -> Bool { try acquire(ns: 0) }

    @inline(__always)
    private func acquire(ns: Int64) throws -> Bool {
        if isOwnedByCurrentThread {
            state.pointee.depth += 1
            if _tracing { Recorder.record(.lockAcquired, object: object, a: UInt64(state.pointee.depth)) }
            return true
        }
        if tangle_lock_try(state) != 0 {
            state.pointee.depth = 1
            if _tracing { Recorder.record(.lockAcquired, object: object, a: 1) }
            return true
        }
        // depth is written after the slow path returns (before that, another owner may hold it)
        let got = try acquireSlowSettingDepth(ns)
        return got
    }

    private func acquireSlowSettingDepth(_ ns: Int64) throws -> Bool {
        if ns != 0, tangle_lock_spin(state, 100) != 0 {
            state.pointee.depth = 1
            Recorder.record(.lockAcquired, object: object, a: 1)
            return true
        }
        if ns != 0 { Recorder.record(.lockWait, object: object, a: ns < 0 ? 0 : UInt64(ns)) }
        var dead: Int32 = 0
        let rc = tangle_lock_acquire_slow(state, ns, &dead)
        switch rc {
        case 0:
            state.pointee.depth = 1
            Recorder.record(.lockAcquired, object: object, a: 1)
            return true
        case EOWNERDEAD:
            Recorder.record(.lockOwnerDied, object: object, a: UInt64(dead), result: .ownerDied)
            state.pointee.depth = 0
            _ = tangle_lock_release(state)
            throw SyncError.ownerDied(object: object, pid: dead)
        default:
            Recorder.record(.lockTimeout, object: object, a: ns < 0 ? 0 : UInt64(ns), result: .timeout, stack: false)
            return false
        }
    }

    /// Releases one level. Throws `SyncError.notOwner` when the calling thread does not own it.
    public func release() throws {
        guard isOwnedByCurrentThread else {
            if let p = TaskParticipant.existing(), heldBy(p.tid) { return releaseAsTask(p) }
            throw SyncError.notOwner(object: object, what: "RLock")
        }
        let left = state.pointee.depth - 1
        state.pointee.depth = left
        if _tracing { Recorder.record(.lockReleased, object: object, a: UInt64(left), stack: false) }
        if left == 0 { _ = tangle_lock_release(state) }
    }

    public func withLock<R>(_ body: () throws -> R) throws -> R {
        try acquire()
        defer { try? release() }
        return try body()
    }

    public func _releaseSaving() throws -> UInt32 {
        guard isOwnedByCurrentThread else { throw SyncError.notOwner(object: object, what: "RLock") }
        let saved = state.pointee.depth
        state.pointee.depth = 0
        if _tracing { Recorder.record(.lockReleased, object: object, a: 0, stack: false) }
        _ = tangle_lock_release(state)
        return saved
    }

    public func _restore(_ saved: UInt32) throws {
        _ = try acquire(ns: -1)
        state.pointee.depth = saved
    }
}

/// A counting semaphore shared by threads and processes (Python's `Semaphore`). Traced with the
/// lock events (`lock.new` type semaphore / bounded-semaphore).
public class Semaphore: ProcessTransferable, @unchecked Sendable {
    let region: SharedRegion
    let state: UnsafeMutablePointer<tangle_sem_t>
    public let object: UInt64

    /// A semaphore with `value` permits.
    /// A semaphore with `value` permits named `name` (nil: `semaphore@file.swift:line`).
    public convenience init(_ value: Int = 1, name: String? = nil, fileID: String = #fileID, line: Int = #line) {
        self.init(value: value, max: 0, name: name, type: .semaphore, fileID: fileID, line: line)
    }

    init(value: Int, max: UInt32, name: String?, type: LockType, fileID: String, line: Int) {
        precondition(value >= 0 && value <= Int(UInt32.max / 2), "Semaphore: initial value must be ≥ 0")
        object = Recorder.newObjectID()
        region = SharedRegion(create: MemoryLayout<tangle_sem_t>.stride, kind: .semaphore, object: object)
        state = region.body.bindMemory(to: tangle_sem_t.self, capacity: 1)
        state.pointee.value = UInt32(value)
        state.pointee.max = max
        let name = ObjectNames.name(given: name, noun: "semaphore", fileID: fileID, line: line)
        ObjectNames.register(object, name)
        if _tracing { Recorder.record(.lockNew, object: object, text: name, a: type.rawValue, b: UInt64(value)) }
    }

    public required init(from decoder: Decoder) throws {
        region = try SharedRegion.decodeHandle(from: decoder, kind: .semaphore, typeName: "Semaphore", objectType: .lock)
        object = region.object
        state = region.body.bindMemory(to: tangle_sem_t.self, capacity: 1)
    }

    public func encode(to encoder: Encoder) throws { try region.encodeHandle(to: encoder) }

    /// The current value (approximate while others use it).
    public var value: Int { Int(tangle_atomic_load32(&state.pointee.value)) }

    public func acquire() throws { _ = try acquire(timeout: nil) }

    /// Takes one permit within `timeout` (nil = no limit). False on timeout.
    public func acquire(timeout: Duration?) throws -> Bool {
        _steer()
        if tangle_sem_try(state) != 0 {
            if _tracing { Recorder.record(.lockAcquired, object: object, a: 1) }
            return true
        }
        let ns = timeoutNanoseconds(timeout)
        if ns != 0 { Recorder.record(.lockWait, object: object, a: ns < 0 ? 0 : UInt64(ns)) }
        if tangle_sem_acquire_slow(state, ns) == 0 {
            Recorder.record(.lockAcquired, object: object, a: 1)
            return true
        }
        Recorder.record(.lockTimeout, object: object, a: ns < 0 ? 0 : UInt64(ns), result: .timeout, stack: false)
        return false
    }

    public func tryAcquire() throws -> Bool { try acquire(timeout: .zero) }

    /// Returns one permit. A BoundedSemaphore throws when that would exceed its initial value.
    public func release() throws {
        if _tracing { Recorder.record(.lockReleased, object: object, a: 0, stack: false) }
        if tangle_sem_release(state, 1) != 0 {
            throw SyncError.boundedOverflow(object: object, max: state.pointee.max)
        }
    }

    public func withLock<R>(_ body: () throws -> R) throws -> R {
        try acquire()
        defer { try? release() }
        return try body()
    }
}

/// A semaphore that may not be released above its initial value (Python's `BoundedSemaphore`).
public final class BoundedSemaphore: Semaphore, @unchecked Sendable {
    public init(_ value: Int = 1, name: String? = nil, fileID: String = #fileID, line: Int = #line) {
        super.init(value: value, max: UInt32(value), name: name, type: .boundedSemaphore, fileID: fileID, line: line)
    }

    public required init(from decoder: Decoder) throws { try super.init(from: decoder) }
}
