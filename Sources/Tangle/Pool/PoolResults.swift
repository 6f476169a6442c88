import TangleRecorder

/// The future result of `Pool.applyAsync` (Python's `AsyncResult`).
public final class AsyncResult<T>: @unchecked Sendable {
    let pool: Pool
    /// The pool's task id (what `pool.submit` / `pool.result` carry in the trace).
    public internal(set) var taskID: UInt64 = 0
    /// Set under the pool's lock.
    var outcome: Result<T, PoolError>?

    init(pool: Pool) { self.pool = pool }

    /// True once the task finished (successfully or not).
    public var isReady: Bool { pool.lock.withLock { outcome != nil } }

    /// nil while running; then whether the task succeeded.
    public var isSuccessful: Bool? {
        pool.lock.withLock {
            guard let outcome else { return nil }
            if case .success = outcome { return true }
            return false
        }
    }

    /// Waits until the task finished or `timeout` passed. True when it finished.
    @discardableResult
    public func wait(timeout: Duration? = nil) -> Bool {
        let deadline = Clock.deadline(after: timeout)
        return pool.lock.withLock {
            while outcome == nil {
                if !pool.lock.wait(until: deadline) && outcome == nil { return false }
            }
            return true
        }
    }

    /// The task's result; throws its error (`PoolError.taskFailed`, `.workerDied`, `.terminated`)
    /// or `PoolError.timeout` when `timeout` passes first. Records `pool.result-wait` when it
    /// blocks and `pool.result`.
    public func get(timeout: Duration? = nil) throws -> T {
        _steer()
        let deadline = Clock.deadline(after: timeout)
        let lock = pool.lock
        lock.lock()
        if outcome == nil {
            lock.unlock()
            if let deadline, Clock.now() >= deadline {
                Recorder.record(.poolResult, object: pool.object, a: taskID, result: .timeout)
                throw PoolError.timeout
            }
            Recorder.record(.poolResultWait, object: pool.object, a: taskID)
            lock.lock()
            while outcome == nil {
                if !lock.wait(until: deadline) && outcome == nil {
                    lock.unlock()
                    Recorder.record(.poolResult, object: pool.object, a: taskID, result: .timeout)
                    throw PoolError.timeout
                }
            }
        }
        let result = outcome!
        lock.unlock()
        switch result {
        case let .success(value):
            Recorder.record(.poolResult, object: pool.object, a: taskID)
            return value
        case let .failure(error):
            Recorder.record(.poolResult, object: pool.object, a: taskID, result: .error)
            throw error
        }
    }
}

/// Collects the chunks of one `map` (under the pool's lock).
final class MapCollector<O: Decodable> {
    var outputs: [[O]]
    /// Per chunk: 0 = pending, 1 = ok, 2 = error.
    var finished: [UInt8]
    var done = 0
    var itemsDone = 0
    var error: PoolError?

    init(chunks: Int) {
        outputs = Array(repeating: [], count: chunks)
        finished = Array(repeating: 0, count: chunks)
    }

    func deliver(chunk: Int, items: Int, _ outcome: Result<UnsafeRawBufferPointer, PoolError>, function: String) {
        done += 1
        switch outcome {
        case let .success(raw):
            do {
                outputs[chunk] = try PoolCoding.decode(O.self, raw)
                finished[chunk] = 1
                itemsDone += items
            } catch {
                finished[chunk] = 2
                if self.error == nil { self.error = .taskFailed(function: function, index: 0, message: "cannot decode the results: \(error)") }
            }
        case let .failure(e):
            finished[chunk] = 2
            if error == nil { error = e }
        }
    }
}

/// The results of `Pool.imapUnordered`, in completion order: iterate it (each element is an
/// item's result or its chunk's error). Blocks in `next()` until a result arrives.
public final class PoolResults<O: Decodable>: Sequence, IteratorProtocol, @unchecked Sendable {
    let pool: Pool
    private let chunks: Int
    /// The batch its tasks were submitted in (what its waits name).
    let batch: UInt64
    // Under the pool's lock.
    /// Each result with its task id, and whether it is the first yielded of its task.
    private var buffer: [(Result<O, PoolError>, UInt64, Bool)] = []
    private var head = 0
    private var delivered = 0

    init(pool: Pool, chunks: Int, batch: UInt64) {
        self.pool = pool
        self.chunks = chunks
        self.batch = batch
    }

    func deliver(_ outcome: Result<UnsafeRawBufferPointer, PoolError>, task: UInt64, function: String) {
        delivered += 1
        switch outcome {
        case let .success(raw):
            do {
                for (i, o) in try PoolCoding.decode(O.self, raw).enumerated() { buffer.append((.success(o), task, i == 0)) }
            } catch {
                buffer.append((.failure(.taskFailed(function: function, index: 0, message: "cannot decode the results: \(error)")), task, true))
            }
        case let .failure(e):
            buffer.append((.failure(e), task, true))
        }
    }

    /// True when `next()` would not block (pool lock held).
    func readyLocked() -> Bool { head < buffer.count || delivered == chunks }

    /// The next result in completion order, blocking until one arrives (nil after the last).
    /// Records `pool.result-wait` (a: 0, any task) each time it blocks, and `pool.result` with the
    /// task id when it yields a task's first item.
    public func next() -> Result<O, PoolError>? {
        let lock = pool.lock
        lock.lock()
        var waited = false
        while head == buffer.count {
            if delivered == chunks {
                lock.unlock()
                return nil
            }
            if !waited {
                waited = true
                lock.unlock()
                Recorder.record(.poolResultWait, object: pool.object, c: batch)
                lock.lock()
                continue
            }
            _ = lock.wait(until: nil)
        }
        let (r, task, first) = buffer[head]
        head += 1
        if head > 1024 && head * 2 > buffer.count {
            buffer.removeFirst(head)
            head = 0
        }
        lock.unlock()
        if first {
            if case .success = r {
                Recorder.record(.poolResult, object: pool.object, a: task)
            } else {
                Recorder.record(.poolResult, object: pool.object, a: task, result: .error)
            }
        }
        return r
    }
}
