import CTangleSupport
import Glibc
import TangleRecorder

/// Shared state words of Event / Condition / Barrier.
struct _SeqWords {
    var seq: UInt32       // the futex word
    var waiters: UInt32
}

/// Deadline helper: remaining ns (-1 = no limit), or nil when passed.
@inline(__always)
func remaining(_ deadline: UInt64?) -> Int64? {
    guard let deadline else { return -1 }
    let now = tangle_now_ns()
    return now >= deadline ? nil : Int64(deadline - now)
}

@inline(__always)
func deadline(after ns: Int64) -> UInt64? {
    ns < 0 ? nil : tangle_now_ns() &+ UInt64(ns)
}

/// A flag shared by threads and processes (Python's `Event`): `wait` blocks until it is set.
public final class Event: ProcessTransferable, @unchecked Sendable {
    let region: SharedRegion
    let words: UnsafeMutablePointer<_SeqWords>
    public let object: UInt64

    /// `name` nil: `event@file.swift:line`, where it is created (ObjectNames).
    public init(name: String? = nil, fileID: String = #fileID, line: Int = #line) {
        object = Recorder.newObjectID()
        region = SharedRegion(create: MemoryLayout<_SeqWords>.stride, kind: .event, object: object)
        words = region.body.bindMemory(to: _SeqWords.self, capacity: 1)
        let name = ObjectNames.name(given: name, noun: "event", fileID: fileID, line: line)
        ObjectNames.register(object, name)
        if Recorder.isEnabled { Recorder.record(.eventNew, object: object, text: name) }
    }

    public init(from decoder: Decoder) throws {
        region = try SharedRegion.decodeHandle(from: decoder, kind: .event, typeName: "Event", objectType: .event)
        object = region.object
        words = region.body.bindMemory(to: _SeqWords.self, capacity: 1)
    }

    public func encode(to encoder: Encoder) throws { try region.encodeHandle(to: encoder) }

    public var isSet: Bool { tangle_atomic_load32(&words.pointee.seq) != 0 }

    /// Sets the flag and wakes every waiter.
    public func set() {
        Recorder.record(.eventSet, object: object)
        tangle_atomic_store32(&words.pointee.seq, 1)
        if tangle_atomic_load32(&words.pointee.waiters) > 0 { _ = tangle_futex_wake(&words.pointee.seq, Int32.max) }
    }

    public func clear() {
        Recorder.record(.eventClear, object: object, stack: false)
        tangle_atomic_store32(&words.pointee.seq, 0)
    }

    /// Blocks until the flag is set or `timeout` passes (nil = no limit). Returns the flag.
    @discardableResult
    public func wait(timeout: Duration? = nil) -> Bool {
        _steer()
        if isSet {
            Recorder.record(.eventWake, object: object, stack: false)
            return true
        }
        let ns = timeoutNanoseconds(timeout)
        for _ in 0..<200 where ns != 0 {
            if isSet {
                Recorder.record(.eventWake, object: object, stack: false)
                return true
            }
            tangle_cpu_relax()
        }
        if ns != 0 { Recorder.record(.eventWait, object: object) }
        let end = deadline(after: ns)
        while !isSet {
            guard let left = remaining(end), ns != 0 else {
                Recorder.record(.eventWake, object: object, result: .timeout, stack: false)
                return false
            }
            _ = tangle_atomic_add32(&words.pointee.waiters, 1)
            _ = tangle_futex_wait(&words.pointee.seq, 0, left)
            _ = tangle_atomic_sub32(&words.pointee.waiters, 1)
        }
        Recorder.record(.eventWake, object: object, stack: false)
        return true
    }
}

/// A condition variable over a Lock or RLock, shared by threads and processes (Python's `Condition`).
/// `notify(n)` wakes at least one and usually at most `n` waiters (a waiter between releasing the
/// lock and sleeping may also return): wait in a loop on your predicate, or use `wait(for:)`.
public final class Condition: ProcessTransferable, @unchecked Sendable {
    let region: SharedRegion
    let words: UnsafeMutablePointer<_SeqWords>
    public let object: UInt64
    /// The lock this condition uses.
    public let lock: ConditionLock

    /// A condition over `lock` (a new RLock when nil, as in Python).
    /// `name` nil: `condition@file.swift:line`, where it is created (ObjectNames).
    public init(lock: ConditionLock? = nil, name: String? = nil, fileID: String = #fileID, line: Int = #line) {
        self.lock = lock ?? RLock(fileID: fileID, line: line)
        object = Recorder.newObjectID()
        region = SharedRegion(create: MemoryLayout<_SeqWords>.stride, kind: .condition, object: object)
        words = region.body.bindMemory(to: _SeqWords.self, capacity: 1)
        let name = ObjectNames.name(given: name, noun: "condition", fileID: fileID, line: line)
        ObjectNames.register(object, name)
        if Recorder.isEnabled { Recorder.record(.conditionNew, object: object, text: name, a: self.lock.object) }
    }

    private enum CodingKeys: String, CodingKey { case region, lock, recursive }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let recursive = try c.decode(Bool.self, forKey: .recursive)
        lock = recursive ? try c.decode(RLock.self, forKey: .lock) : try c.decode(Lock.self, forKey: .lock)
        let sub = try c.superDecoder(forKey: .region)
        region = try SharedRegion.decodeHandle(from: sub, kind: .condition, typeName: "Condition", objectType: .condition)
        object = region.object
        words = region.body.bindMemory(to: _SeqWords.self, capacity: 1)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if let l = lock as? RLock {
            try c.encode(true, forKey: .recursive)
            try c.encode(l, forKey: .lock)
        } else if let l = lock as? Lock {
            try c.encode(false, forKey: .recursive)
            try c.encode(l, forKey: .lock)
        }
        try region.encodeHandle(to: c.superEncoder(forKey: .region))
    }

    public func acquire() throws { _ = try lock.acquire(timeout: nil) }
    public func acquire(timeout: Duration?) throws -> Bool { try lock.acquire(timeout: timeout) }
    public func release() throws { try lock.release() }

    public func withLock<R>(_ body: () throws -> R) throws -> R {
        _ = try lock.acquire(timeout: nil)
        defer { try? lock.release() }
        return try body()
    }

    /// Releases the lock, blocks until notified or `timeout` passes, re-acquires the lock.
    /// The caller must hold the lock. Returns false on timeout.
    @discardableResult
    public func wait(timeout: Duration? = nil) throws -> Bool {
        _steer()
        guard lock.isOwnedByCurrentThread else { throw SyncError.notOwner(object: lock.object, what: "Condition's lock") }
        _ = tangle_atomic_add32(&words.pointee.waiters, 1)
        let seq = tangle_atomic_load32(&words.pointee.seq)
        let ns = timeoutNanoseconds(timeout)
        Recorder.record(.conditionWait, object: object, a: ns < 0 ? 0 : UInt64(ns))
        let saved = try lock._releaseSaving()
        let end = deadline(after: ns)
        var notified = true
        while tangle_atomic_load32(&words.pointee.seq) == seq {
            guard let left = remaining(end) else { notified = false; break }
            _ = tangle_futex_wait(&words.pointee.seq, seq, left)
        }
        _ = tangle_atomic_sub32(&words.pointee.waiters, 1)
        try lock._restore(saved)
        Recorder.record(.conditionWake, object: object, result: notified ? .ok : .timeout, stack: false)
        return notified
    }

    /// Waits until `predicate` is true (checked with the lock held) or `timeout` passes.
    public func wait(for predicate: () throws -> Bool, timeout: Duration? = nil) throws -> Bool {
        let end = deadline(after: timeoutNanoseconds(timeout))
        while try !predicate() {
            guard let left = remaining(end) else { return false }
            try wait(timeout: left < 0 ? nil : .nanoseconds(left))
        }
        return true
    }

    /// Wakes up to `n` waiters. The caller must hold the lock.
    public func notify(_ n: Int = 1) throws {
        guard lock.isOwnedByCurrentThread || lock._isOwnedByCurrentTask else { throw SyncError.notOwner(object: lock.object, what: "Condition's lock") }
        Recorder.record(.conditionNotify, object: object, a: UInt64(max(n, 0)))
        guard tangle_atomic_load32(&words.pointee.waiters) > 0 else { return }
        _ = tangle_atomic_add32(&words.pointee.seq, 1)
        _ = tangle_futex_wake(&words.pointee.seq, Int32(clamping: n))
    }

    /// Wakes every waiter. The caller must hold the lock.
    public func notifyAll() throws {
        guard lock.isOwnedByCurrentThread || lock._isOwnedByCurrentTask else { throw SyncError.notOwner(object: lock.object, what: "Condition's lock") }
        Recorder.record(.conditionNotify, object: object, a: 0)
        guard tangle_atomic_load32(&words.pointee.waiters) > 0 else { return }
        _ = tangle_atomic_add32(&words.pointee.seq, 1)
        _ = tangle_futex_wake(&words.pointee.seq, Int32.max)
    }
}

struct _BarrierState {
    var lock: tangle_lock_t
    var parties: UInt32
    var count: UInt32
    var generation: UInt32   // futex word: changes when the barrier passes or breaks
    var broken: UInt32
    var waiters: UInt32
    /// Bit (g % 64) is 1 when generation g passed, 0 when it broke (a late waker reads its own).
    var outcomes: UInt64
}

/// A barrier for a fixed number of parties, shared by threads and processes (Python's `Barrier`,
/// without an action). A wait that times out breaks the barrier; `abort()` breaks it; every waiter
/// of a broken barrier gets `SyncError.brokenBarrier` until `reset()`.
public final class Barrier: ProcessTransferable, @unchecked Sendable {
    let region: SharedRegion
    let state: UnsafeMutablePointer<_BarrierState>
    public let object: UInt64

    /// `name` nil: `barrier@file.swift:line`, where it is created (ObjectNames).
    public init(parties: Int, name: String? = nil, fileID: String = #fileID, line: Int = #line) {
        precondition(parties > 0, "Barrier: parties must be > 0")
        object = Recorder.newObjectID()
        region = SharedRegion(create: MemoryLayout<_BarrierState>.stride, kind: .barrier, object: object)
        state = region.body.bindMemory(to: _BarrierState.self, capacity: 1)
        state.pointee.parties = UInt32(parties)
        let name = ObjectNames.name(given: name, noun: "barrier", fileID: fileID, line: line)
        ObjectNames.register(object, name)
        if Recorder.isEnabled { Recorder.record(.barrierNew, object: object, text: name, a: UInt64(parties)) }
    }

    public init(from decoder: Decoder) throws {
        region = try SharedRegion.decodeHandle(from: decoder, kind: .barrier, typeName: "Barrier", objectType: .barrier)
        object = region.object
        state = region.body.bindMemory(to: _BarrierState.self, capacity: 1)
    }

    public func encode(to encoder: Encoder) throws { try region.encodeHandle(to: encoder) }

    public var parties: Int { Int(state.pointee.parties) }
    public var isBroken: Bool { tangle_atomic_load32(&state.pointee.broken) != 0 }
    /// Parties currently waiting (approximate).
    public var waiting: Int { Int(state.pointee.count) }

    func lockInternal() {
        let l = withUnsafeMutablePointer(to: &state.pointee.lock) { $0 }
        if tangle_lock_try(l) != 0 || tangle_lock_spin(l, 200) != 0 { return }
        var dead: Int32 = 0
        _ = tangle_lock_acquire_slow(l, -1, &dead) // owner died: we hold it; the state is small and consistent
    }

    func unlockInternal() {
        _ = tangle_lock_release(withUnsafeMutablePointer(to: &state.pointee.lock) { $0 })
    }

    func breakLocked() {
        state.pointee.outcomes &= ~(UInt64(1) << UInt64(state.pointee.generation % 64))
        state.pointee.broken = 1
        state.pointee.count = 0
        tangle_atomic_store32(&state.pointee.generation, state.pointee.generation &+ 1)
        _ = tangle_futex_wake(&state.pointee.generation, Int32.max)
    }

    /// Waits for all parties. Returns this party's arrival index (0 ..< parties).
    @discardableResult
    public func wait(timeout: Duration? = nil) throws -> Int {
        lockInternal()
        if state.pointee.broken != 0 {
            unlockInternal()
            Recorder.record(.barrierPass, object: object, result: .error)
            throw SyncError.brokenBarrier(object: object)
        }
        let index = state.pointee.count
        state.pointee.count += 1
        if state.pointee.count == state.pointee.parties {
            Recorder.record(.barrierPass, object: object, a: UInt64(index))
            state.pointee.count = 0
            state.pointee.outcomes |= UInt64(1) << UInt64(state.pointee.generation % 64)
            tangle_atomic_store32(&state.pointee.generation, state.pointee.generation &+ 1)
            _ = tangle_futex_wake(&state.pointee.generation, Int32.max)
            unlockInternal()
            return Int(index)
        }
        let gen = state.pointee.generation
        unlockInternal()
        let ns = timeoutNanoseconds(timeout)
        Recorder.record(.barrierWait, object: object, a: UInt64(index))
        let end = deadline(after: ns)
        while tangle_atomic_load32(&state.pointee.generation) == gen {
            guard let left = remaining(end) else {
                lockInternal()
                if state.pointee.generation == gen { breakLocked() }
                unlockInternal()
                break
            }
            _ = tangle_futex_wait(&state.pointee.generation, gen, left)
        }
        lockInternal()
        let passed = state.pointee.generation != gen && state.pointee.outcomes & (UInt64(1) << UInt64(gen % 64)) != 0
        unlockInternal()
        if passed {
            Recorder.record(.barrierPass, object: object, a: UInt64(index), stack: false)
            return Int(index)
        }
        let timedOut = end != nil && remaining(end) == nil
        Recorder.record(.barrierPass, object: object, a: UInt64(index), result: timedOut ? .timeout : .error, stack: false)
        throw SyncError.brokenBarrier(object: object)
    }

    /// Breaks the barrier: current and future waiters get `brokenBarrier` until `reset()`.
    public func abort() {
        lockInternal()
        breakLocked()
        unlockInternal()
    }

    /// Returns the barrier to its initial state; parties waiting now get `brokenBarrier`.
    public func reset() {
        lockInternal()
        if state.pointee.count > 0 { breakLocked() }
        state.pointee.broken = 0
        state.pointee.count = 0
        unlockInternal()
    }
}
