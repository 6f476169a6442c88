import CTangleSupport
import Glibc
import Synchronization
import TangleRecorder

/// Async acquires of Lock, RLock and Semaphore. The owner a task's acquire writes into the lock is
/// the task's `TaskParticipant.tid` (same pid), not the thread's: the task may release it from
/// another thread after an `await`, and the trace's `lock.acquired` / `lock.released` are the
/// task's. A blocked acquire sleeps on a waiter thread (`Waiters`), which takes the lock there and
/// hands it to the task by rewriting the owner before resuming it.
extension _LockBase {
    /// True when the lock is held by this process under the owner id `tid`.
    @inline(__always)
    final func heldBy(_ tid: Int32) -> Bool {
        tangle_atomic_load32(&state.pointee.word) != 0 && state.pointee.owner_pid == tangle_sync_pid()
            && state.pointee.owner_tid == tid
    }

    public var _isOwnedByCurrentTask: Bool {
        guard let p = TaskParticipant.existing() else { return false }
        return heldBy(p.tid)
    }

    /// `lock.released` of a release whose owner is not the calling thread: the calling task's own
    /// (async-acquired) lock is recorded as the task's release; any other as a release by another.
    @inline(never)
    final func releasedByOther(_ s: tangle_lock_t) {
        if s.owner_tid >= (1 << 30), s.owner_pid == tangle_sync_pid(), let p = TaskParticipant.existing(), p.tid == s.owner_tid {
            p.with { Recorder.record(.lockReleased, object: object, a: 0, b: 0, stack: false) }
        } else {
            Recorder.record(.lockReleased, object: object, a: 0, b: UInt64(UInt32(bitPattern: s.owner_pid)), stack: false)
        }
    }

    /// The async acquire shared by Lock and RLock (`recursive`: RLock). `cancellable` false: keeps
    /// waiting through a cancellation (a condition's re-acquire). True when acquired.
    final func acquireAsTask(_ ns: Int64, recursive: Bool, cancellable: Bool = true) async throws -> Bool {
        let p = TaskParticipant.current()
        let tid = p?.tid ?? tangle_sync_tid()
        if recursive && heldBy(tid) {
            state.pointee.depth += 1
            let depth = UInt64(state.pointee.depth)
            _as(p) { Recorder.record(.lockAcquired, object: object, a: depth) }
            return true
        }
        if tangle_lock_try(state) != 0 || (ns != 0 && tangle_lock_spin(state, 100) != 0) {
            state.pointee.owner_tid = tid
            if recursive { state.pointee.depth = 1 }
            _as(p) { Recorder.record(.lockAcquired, object: object, a: 1) }
            return true
        }
        if ns == 0 {
            _as(p) { Recorder.record(.lockTimeout, object: object, result: .timeout, stack: false) }
            return false
        }
        _as(p) { Recorder.record(.lockWait, object: object, a: ns < 0 ? 0 : UInt64(ns)) }
        let sp = _Unsafe(state)
        let dead = _DeadOwner()
        let outcome = await Waiters.wait(until: deadline(after: ns), cancellable: cancellable) { slice in
            var d: Int32 = 0
            let rc = tangle_lock_acquire_slow(sp.p, slice, &d)
            if rc == 0 || rc == EOWNERDEAD {
                sp.p.pointee.owner_tid = tid  // the waiter took it for the task
                if rc == EOWNERDEAD { dead.pid.store(d, ordering: .releasing) }
                return true
            }
            return false
        }
        switch outcome {
        case .ready:
            let d = dead.pid.load(ordering: .acquiring)
            if d != 0 {
                _as(p) { Recorder.record(.lockOwnerDied, object: object, a: UInt64(d), result: .ownerDied) }
                if recursive { state.pointee.depth = 0 }
                _ = tangle_lock_release(state)
                throw SyncError.ownerDied(object: object, pid: d)
            }
            if recursive { state.pointee.depth = 1 }
            _as(p) { Recorder.record(.lockAcquired, object: object, a: 1) }
            return true
        case .timeout:
            _as(p) { Recorder.record(.lockTimeout, object: object, a: ns < 0 ? 0 : UInt64(ns), result: .timeout, stack: false) }
            return false
        case .cancelled:
            _as(p) { Recorder.record(.lockTimeout, object: object, a: ns < 0 ? 0 : UInt64(ns), result: .error, stack: false) }
            throw CancellationError()
        }
    }

    /// Releases an RLock level (or a Lock) the task `p` holds.
    final func releaseAsTask(_ p: TaskParticipant) {
        let left = state.pointee.depth > 0 ? state.pointee.depth - 1 : 0
        state.pointee.depth = left
        p.with { Recorder.record(.lockReleased, object: object, a: UInt64(left), stack: false) }
        if left == 0 { _ = tangle_lock_release(state) }
    }

    /// Releases completely for a condition's wait, returning the depth to restore.
    final func releaseSavingAsTask(_ p: TaskParticipant?) -> UInt32 {
        let saved = max(state.pointee.depth, 1)
        state.pointee.depth = 0
        _as(p) { Recorder.record(.lockReleased, object: object, a: 0, stack: false) }
        _ = tangle_lock_release(state)
        return saved
    }
}

final class _DeadOwner: Sendable {
    let pid = Atomic<Int32>(0)
}

extension Lock {
    /// Suspends until acquired (the task owns it: release it with `release()` from the task).
    public func acquire() async throws { _ = try await acquireAsTask(-1, recursive: false) }

    /// Acquires within `timeout` (nil = no limit), suspending meanwhile. False on timeout.
    public func acquire(timeout: Duration?) async throws -> Bool {
        try await acquireAsTask(timeoutNanoseconds(timeout), recursive: false)
    }

    /// Runs `body` holding the lock.
    public func withLock<R>(_ body: () async throws -> R) async throws -> R {
        try await acquire()
        defer { try? release() }
        return try await body()
    }
}

extension RLock {
    /// Suspends until acquired (again, when the task holds it already).
    public func acquire() async throws { _ = try await acquireAsTask(-1, recursive: true) }

    public func acquire(timeout: Duration?) async throws -> Bool {
        try await acquireAsTask(timeoutNanoseconds(timeout), recursive: true)
    }

    public func withLock<R>(_ body: () async throws -> R) async throws -> R {
        try await acquire()
        defer { try? release() }
        return try await body()
    }
}

extension Semaphore {
    /// Takes one permit, suspending while there is none.
    public func acquire() async throws { _ = try await acquire(timeout: nil) }

    /// Takes one permit within `timeout` (nil = no limit). False on timeout.
    public func acquire(timeout: Duration?) async throws -> Bool {
        let p = _tracingParticipant()
        if tangle_sem_try(state) != 0 {
            _as(p) { Recorder.record(.lockAcquired, object: object, a: 1) }
            return true
        }
        let ns = timeoutNanoseconds(timeout)
        if ns == 0 {
            _as(p) { Recorder.record(.lockTimeout, object: object, result: .timeout, stack: false) }
            return false
        }
        _as(p) { Recorder.record(.lockWait, object: object, a: ns < 0 ? 0 : UInt64(ns)) }
        let sp = _Unsafe(state)
        let outcome = await Waiters.wait(until: deadline(after: ns)) { slice in
            tangle_sem_acquire_slow(sp.p, slice) == 0
        }
        switch outcome {
        case .ready:
            _as(p) { Recorder.record(.lockAcquired, object: object, a: 1) }
            return true
        case .timeout:
            _as(p) { Recorder.record(.lockTimeout, object: object, a: UInt64(max(ns, 0)), result: .timeout, stack: false) }
            return false
        case .cancelled:
            _as(p) { Recorder.record(.lockTimeout, object: object, a: UInt64(max(ns, 0)), result: .error, stack: false) }
            throw CancellationError()
        }
    }

    public func withLock<R>(_ body: () async throws -> R) async throws -> R {
        try await acquire()
        defer { try? release() }
        return try await body()
    }
}
