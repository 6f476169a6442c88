import CTangleSupport

// Async forms of the calls that never block (set, release, notify, task_done). They exist so that
// everything a task does is recorded as the task: called from a task, the synchronous forms record
// as the cooperative thread that happens to run it, and the analyzer would take that thread for a
// live participant that could still wake the others. In an async context Swift picks these.

extension Event {
    /// Sets the flag and wakes every waiter (recorded as the calling task).
    public func set() async { _as(_tracingParticipant()) { set() } }
    public func clear() async { _as(_tracingParticipant()) { clear() } }
}

extension Lock {
    /// Releases the lock (recorded as the calling task).
    public func release() async throws { try _as(_tracingParticipant()) { try release() } }
}

extension RLock {
    public func release() async throws { try _as(_tracingParticipant()) { try release() } }
}

extension Semaphore {
    /// Returns one permit (recorded as the calling task).
    public func release() async throws { try _as(_tracingParticipant()) { try release() } }
}

extension Condition {
    /// Wakes up to `n` waiters; the task must hold the lock.
    public func notify(_ n: Int = 1) async throws { try _as(_tracingParticipant()) { try notify(n) } }
    public func notifyAll() async throws { try _as(_tracingParticipant()) { try notifyAll() } }
    public func release() async throws { try _as(_tracingParticipant()) { try release() } }
}

extension JoinableQueue {
    /// Marks one item got earlier as processed (recorded as the calling task).
    public func taskDone() async throws { try _as(_tracingParticipant()) { try taskDone() } }
}
