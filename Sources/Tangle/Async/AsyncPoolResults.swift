import CTangleSupport
import TangleRecorder

/// What the async iteration of pool results needs from `PoolResults` and `OrderedPoolResults`.
protocol _PoolResultStream: AnyObject {
    associatedtype Output: Decodable
    var pool: Pool { get }
    func readyLocked() -> Bool
    func awaitedLocked() -> UInt64
    func next() -> Result<Output, PoolError>?
}

extension _PoolResultStream {
    /// `next()` for a task: suspends (a waiter thread sleeps on the pool's condition) until the
    /// next result is there, recording `pool.result-wait` as the task; the result itself is taken
    /// by the blocking `next()`, which no longer blocks, as the task.
    func nextSuspending() async throws -> Result<Output, PoolError>? {
        let p = _tracingParticipant()
        let lock = pool.lock
        let (ready, task) = lock.withLock { (readyLocked(), awaitedLocked()) }
        if !ready {
            _as(p) { Recorder.record(.poolResultWait, object: pool.object, a: task) }
            let outcome = await Waiters.wait(until: nil) { [self] slice in
                lock.withLock {
                    if !readyLocked() { _ = lock.wait(until: tangle_now_ns() &+ UInt64(slice)) }
                    return readyLocked()
                }
            }
            if outcome != .ready {
                _as(p) { Recorder.record(.poolResult, object: pool.object, a: task, result: .error) }
                throw CancellationError()
            }
        }
        return _as(p) { next() }
    }
}

extension PoolResults: _PoolResultStream {
    func awaitedLocked() -> UInt64 { 0 }
}

extension OrderedPoolResults: _PoolResultStream {}

/// `for try await result in pool.imapUnordered(…)` in a task: suspends instead of blocking.
extension PoolResults: AsyncSequence, AsyncIteratorProtocol {
    public func makeAsyncIterator() -> PoolResults<O> { self }
    public func next() async throws -> Result<O, PoolError>? { try await nextSuspending() }
}

/// `for try await result in pool.imap(…)` in a task: suspends instead of blocking.
extension OrderedPoolResults: AsyncSequence, AsyncIteratorProtocol {
    public func makeAsyncIterator() -> OrderedPoolResults<O> { self }
    public func next() async throws -> Result<O, PoolError>? { try await nextSuspending() }
}
