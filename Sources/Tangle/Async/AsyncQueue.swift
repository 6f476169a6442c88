import CTangleSupport
import Glibc
import TangleRecorder

/// The calling task's participant when tracing (nil otherwise: nothing to record).
@inline(__always)
func _tracingParticipant() -> TaskParticipant? {
    _tracing ? TaskParticipant.current() : nil
}

/// Runs `body` recording as `p` (as the calling thread when nil).
@inline(__always)
func _as<R>(_ p: TaskParticipant?, _ body: () throws -> R) rethrows -> R {
    if let p { return try p.with(body) }
    return try body()
}

/// A shared-memory pointer handed to a waiter thread (the object it belongs to outlives the wait:
/// the suspended caller holds it).
struct _Unsafe<P>: @unchecked Sendable {
    let p: P
    init(_ p: P) { self.p = p }
}

/// Async forms of the queue's blocking calls: they take the message at once when they can, else
/// record the same wait event as the blocking call (as the task, see `TaskParticipant`), suspend
/// while a waiter thread sleeps on the queue's futex (`Waiters`), and try again. Cancellation
/// ends the wait with `CancellationError` (the done event has `r: error`).
extension Queue {
    /// Removes and returns the oldest message, suspending while the queue is empty until
    /// `timeout` passes (nil = no limit; then throws `QueueError.empty`).
    public func get(timeout: Duration? = nil) async throws -> T {
        try checkOpen()
        let p = _tracingParticipant()
        if let v = try _as(p, { try getIfAvailable(waited: false) }) { return v }
        // A short spin: a producer in mid-put is cheaper to wait for than a thread hand-off.
        if tangle_queue_poll_nonempty(q, 1000, 0) != 0, let v = try _as(p, { try getIfAvailable(waited: false) }) { return v }
        let ns = timeoutNanoseconds(timeout)
        if ns == 0 {
            _as(p) { Recorder.record(.queueTimeout, object: object, a: 1, result: .empty) }
            throw QueueError.empty(object: object)
        }
        _as(p) { Recorder.record(.queueGetWait, object: object) }
        let end = deadline(after: ns)
        let qp = _Unsafe(q)
        while true {
            let outcome = await Waiters.wait(until: end) { slice in
                if tangle_queue_count(qp.p) > 0 { return true }
                tangle_queue_wait_nonempty(qp.p, slice)
                return tangle_queue_count(qp.p) > 0
            }
            if let v = try _as(p, { try getIfAvailable(waited: true) }) { return v }
            switch outcome {
            case .ready: continue
            case .timeout:
                _as(p) { Recorder.record(.queueTimeout, object: object, a: 1, result: .timeout) }
                throw QueueError.empty(object: object)
            case .cancelled:
                _as(p) { Recorder.record(.queueTimeout, object: object, a: 1, result: .error) }
                throw CancellationError()
            }
        }
    }

    /// Puts `item`, suspending while the queue is full until `timeout` passes (nil = no limit;
    /// then throws `QueueError.full`).
    public func put(_ item: T, timeout: Duration? = nil) async throws {
        try checkOpen()
        let p = _tracingParticipant()
        if try _as(p, { try putIfRoom(item) }) { return }
        let ns = timeoutNanoseconds(timeout)
        if ns == 0 {
            _as(p) { Recorder.record(.queueTimeout, object: object, a: 0, result: .full) }
            throw QueueError.full(object: object)
        }
        _as(p) { Recorder.record(.queuePutWait, object: object) }
        let end = deadline(after: ns)
        let qp = _Unsafe(q)
        let need = UInt64(try encodedNeed(item))
        while true {
            let outcome = await Waiters.wait(until: end) { slice in
                tangle_queue_wait_room(qp.p, need, slice)
                return true  // try again in the task (room is checked under the tail lock)
            }
            if try _as(p, { try putIfRoom(item) }) { return }
            switch outcome {
            case .ready: continue
            case .timeout:
                _as(p) { Recorder.record(.queueTimeout, object: object, a: 0, result: .timeout) }
                throw QueueError.full(object: object)
            case .cancelled:
                _as(p) { Recorder.record(.queueTimeout, object: object, a: 0, result: .error) }
                throw CancellationError()
            }
        }
    }

    private func putIfRoom(_ item: T) throws -> Bool {
        if copiesRawBytes {
            return try withUnsafeBytes(of: item) { try putEncodedIfRoom($0) }
        }
        return try BinaryCodec.withEncoded(item) { try putEncodedIfRoom($0) }
    }

    private func encodedNeed(_ item: T) throws -> Int {
        let n = copiesRawBytes ? MemoryLayout<T>.size : try BinaryCodec.withEncoded(item) { $0.count }
        return 16 + ((n + 7) & ~7)
    }
}

extension JoinableQueue {
    /// Suspends until every item put has been marked done (or `timeout` passes: throws
    /// `QueueError.joinTimeout`).
    public func join(timeout: Duration? = nil) async throws {
        try checkOpen()
        let p = _tracingParticipant()
        let first = unfinishedTasks
        if first == 0 {
            _as(p) { Recorder.record(.queueJoinDone, object: object, stack: false) }
            return
        }
        _as(p) { Recorder.record(.queueJoinWait, object: object, a: UInt64(first)) }
        let qp = _Unsafe(q)
        let outcome = await Waiters.wait(until: deadline(after: timeoutNanoseconds(timeout))) { slice in
            Queue<T>._joinStep(qp.p, slice)
        }
        switch outcome {
        case .ready:
            _as(p) { Recorder.record(.queueJoinDone, object: object, stack: false) }
        case .timeout:
            _as(p) { Recorder.record(.queueJoinDone, object: object, result: .timeout, stack: false) }
            throw QueueError.joinTimeout(object: object, unfinished: unfinishedTasks)
        case .cancelled:
            _as(p) { Recorder.record(.queueJoinDone, object: object, result: .error, stack: false) }
            throw CancellationError()
        }
    }
}
