import CTangleSupport
import Glibc
import TangleTraceFormat
import TangleRecorder

/// Async waits of Event, Condition and Barrier: the same events as the blocking calls, recorded
/// as the task; the sleep on the futex word happens on a waiter thread (`Waiters`).
extension Event {
    /// Suspends until the flag is set or `timeout` passes (nil = no limit). Returns the flag.
    @discardableResult
    public func wait(timeout: Duration? = nil) async throws -> Bool {
        let p = _tracingParticipant()
        if isSet {
            _as(p) { Recorder.record(.eventWake, object: object, stack: false) }
            return true
        }
        let ns = timeoutNanoseconds(timeout)
        if ns == 0 {
            _as(p) { Recorder.record(.eventWake, object: object, result: .timeout, stack: false) }
            return false
        }
        _as(p) { Recorder.record(.eventWait, object: object) }
        let wp = _Unsafe(words)
        let outcome = await Waiters.wait(until: deadline(after: ns)) { slice in
            if tangle_atomic_load32(&wp.p.pointee.seq) != 0 { return true }
            _ = tangle_atomic_add32(&wp.p.pointee.waiters, 1)
            _ = tangle_futex_wait(&wp.p.pointee.seq, 0, slice)
            _ = tangle_atomic_sub32(&wp.p.pointee.waiters, 1)
            return tangle_atomic_load32(&wp.p.pointee.seq) != 0
        }
        switch outcome {
        case .ready:
            _as(p) { Recorder.record(.eventWake, object: object, stack: false) }
            return true
        case .timeout:
            _as(p) { Recorder.record(.eventWake, object: object, result: .timeout, stack: false) }
            return false
        case .cancelled:
            _as(p) { Recorder.record(.eventWake, object: object, result: .error, stack: false) }
            throw CancellationError()
        }
    }
}

extension Condition {
    /// Releases the lock (which the task took with an async `acquire`), suspends until notified or
    /// `timeout` passes, re-acquires the lock. Returns false on timeout. On cancellation it still
    /// re-acquires the lock, then throws `CancellationError`.
    @discardableResult
    public func wait(timeout: Duration? = nil) async throws -> Bool {
        guard let base = lock as? _LockBase else { throw SyncError.notOwner(object: lock.object, what: "Condition's lock") }
        let p = TaskParticipant.current()
        guard base.heldBy(p?.tid ?? tangle_sync_tid()) else {
            throw SyncError.notOwner(object: lock.object, what: "Condition's lock (acquire it with the async acquire in a task)")
        }
        let tp = _tracing ? p : nil
        _ = tangle_atomic_add32(&words.pointee.waiters, 1)
        let seq = tangle_atomic_load32(&words.pointee.seq)
        let ns = timeoutNanoseconds(timeout)
        _as(tp) { Recorder.record(.conditionWait, object: object, a: ns < 0 ? 0 : UInt64(ns)) }
        let saved = base.releaseSavingAsTask(tp)
        let wp = _Unsafe(words)
        let outcome = await Waiters.wait(until: deadline(after: ns)) { slice in
            if tangle_atomic_load32(&wp.p.pointee.seq) != seq { return true }
            _ = tangle_futex_wait(&wp.p.pointee.seq, seq, slice)
            return tangle_atomic_load32(&wp.p.pointee.seq) != seq
        }
        _ = tangle_atomic_sub32(&words.pointee.waiters, 1)
        _ = try await base.acquireAsTask(-1, recursive: base.type == .rlock, cancellable: false)
        if base.type == .rlock { base.state.pointee.depth = saved }
        let result: WaitResult = outcome == .ready ? .ok : outcome == .timeout ? .timeout : .error
        _as(tp) { Recorder.record(.conditionWake, object: object, result: result, stack: false) }
        if outcome == .cancelled { throw CancellationError() }
        return outcome == .ready
    }

    /// Waits until `predicate` is true (checked with the lock held) or `timeout` passes.
    public func wait(for predicate: () throws -> Bool, timeout: Duration? = nil) async throws -> Bool {
        let end = deadline(after: timeoutNanoseconds(timeout))
        while try !predicate() {
            guard let left = remaining(end) else { return false }
            try await wait(timeout: left < 0 ? nil : .nanoseconds(left))
        }
        return true
    }

    /// Acquires the condition's lock as the task.
    public func acquire() async throws {
        guard let base = lock as? _LockBase else { throw SyncError.notOwner(object: lock.object, what: "Condition's lock") }
        _ = try await base.acquireAsTask(-1, recursive: base.type == .rlock)
    }
}

extension Barrier {
    /// Suspends until all parties arrived. Returns this party's arrival index (0 ..< parties).
    /// A timeout breaks the barrier (as the blocking wait does); a cancellation too.
    @discardableResult
    public func wait(timeout: Duration? = nil) async throws -> Int {
        let p = _tracingParticipant()
        lockInternal()
        if state.pointee.broken != 0 {
            unlockInternal()
            _as(p) { Recorder.record(.barrierPass, object: object, result: .error) }
            throw SyncError.brokenBarrier(object: object)
        }
        let index = state.pointee.count
        state.pointee.count += 1
        if state.pointee.count == state.pointee.parties {
            _as(p) { Recorder.record(.barrierPass, object: object, a: UInt64(index)) }
            state.pointee.count = 0
            state.pointee.outcomes |= UInt64(1) << UInt64(state.pointee.generation % 64)
            tangle_atomic_store32(&state.pointee.generation, state.pointee.generation &+ 1)
            _ = tangle_futex_wake(&state.pointee.generation, Int32.max)
            unlockInternal()
            return Int(index)
        }
        let gen = state.pointee.generation
        unlockInternal()
        _as(p) { Recorder.record(.barrierWait, object: object, a: UInt64(index)) }
        let sp = _Unsafe(state)
        let outcome = await Waiters.wait(until: deadline(after: timeoutNanoseconds(timeout))) { slice in
            if tangle_atomic_load32(&sp.p.pointee.generation) != gen { return true }
            _ = tangle_futex_wait(&sp.p.pointee.generation, gen, slice)
            return tangle_atomic_load32(&sp.p.pointee.generation) != gen
        }
        lockInternal()
        if outcome != .ready && state.pointee.generation == gen { breakLocked() }
        let passed = state.pointee.generation != gen && state.pointee.outcomes & (UInt64(1) << UInt64(gen % 64)) != 0
        unlockInternal()
        if passed {
            _as(p) { Recorder.record(.barrierPass, object: object, a: UInt64(index), stack: false) }
            return Int(index)
        }
        let result: WaitResult = outcome == .timeout ? .timeout : .error
        _as(p) { Recorder.record(.barrierPass, object: object, a: UInt64(index), result: result, stack: false) }
        if outcome == .cancelled { throw CancellationError() }
        throw SyncError.brokenBarrier(object: object)
    }
}
