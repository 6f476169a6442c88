import CTangleSupport
import Glibc
import TangleRecorder

/// A fixed set of worker processes (Python's `multiprocessing.Pool`): ordered `map`, streaming
/// `imapUnordered`, `apply`, `applyAsync`. The functions are `PoolFunction`s (registered by name).
///
/// - A task's error is returned to whoever reads its result (`PoolError.taskFailed`) and never
///   kills the pool.
/// - A worker that dies mid-task (killed, crashed) is replaced; its task fails with
///   `PoolError.workerDied` instead of hanging.
/// - `close()` then `join()` finishes the submitted work and stops the workers; `terminate()`
///   stops them at once (unfinished tasks fail with `PoolError.terminated`); `Pool.with { … }`
///   always does one of the two.
///
/// Each worker is a spawned daemon `ChildProcess` connected to the pool by its own Unix socket; a
/// manager thread in the parent feeds idle workers one task (one chunk of items) at a time, so it
/// always knows which task a dead worker was running.
public final class Pool: @unchecked Sendable {
    /// The trace's object id of this pool.
    public let object: UInt64
    public let workerCount: Int

    let lock = CondLock()
    /// Tasks in flight per worker (see `manage`).
    static let depth = 2
    /// The largest task frame sent to a worker that is still busy (well below a Unix socket's
    /// default buffer, ~200 KB).
    static let queuedFrameLimit = 32 * 1024

    enum State { case running, closed, terminating, finished }

    final class Task {
        let id: UInt64
        let function: String
        let frame: [UInt8]
        /// The index of the task's first item in the whole input (errors name the item by it).
        let firstItem: Int
        /// Called under the pool's lock with the encoded `[Output]` or the error.
        let complete: (Result<UnsafeRawBufferPointer, PoolError>) -> Void
        init(id: UInt64, function: String, frame: [UInt8], firstItem: Int, complete: @escaping (Result<UnsafeRawBufferPointer, PoolError>) -> Void) {
            self.id = id
            self.function = function
            self.frame = frame
            self.firstItem = firstItem
            self.complete = complete
        }
    }

    final class Slot {
        let process: ChildProcess
        let fd: Int32
        /// Tasks sent and not yet answered, oldest (the running one) first.
        var busy: [Task] = []
        var inbox: [UInt8] = []
        var dead = false
        /// Tasks completed (for `maxTasksPerChild`).
        var completed = 0
        /// Reached `maxTasksPerChild`: no more tasks; its socket is shut down so it exits.
        var retiring = false
        init(process: ChildProcess, fd: Int32) {
            self.process = process
            self.fd = fd
        }
    }

    // Under `lock`.
    var state = State.running
    var pending: [Task] = []
    var pendingHead = 0
    var nextTaskID: UInt64 = 0
    var slots: [Slot] = []
    var workersStarted = false
    var startError: PoolError?
    var workerSerial = 0

    let wakeRead: Int32
    let wakeWrite: Int32

    /// Python's `maxtasksperchild`: a worker exits after this many tasks (chunks) and is replaced
    /// (nil: workers live as long as the pool).
    public let maxTasksPerChild: Int?
    /// How workers are started (`.fork`: a copy of the parent, as Python's fork context).
    public let startMethod: ChildProcess.StartMethod
    let initializerName: String?
    let encodeInit: ((Encoder) throws -> Void)?

    /// Starts `workers` worker processes (default: `CPUCount.available()`), started by `method`
    /// (default: `TangleRuntime.defaultStartMethod`), each replaced after `maxTasksPerChild` tasks
    /// when given. Throws when one cannot be started.
    public convenience init(workers: Int? = nil, maxTasksPerChild: Int? = nil, method: ChildProcess.StartMethod? = nil) throws {
        try self.init(workers: workers, maxTasksPerChild: maxTasksPerChild, method: method, initializerName: nil, encodeInit: nil)
    }

    /// A pool whose every worker runs `initializer(initArguments)` once before its first task
    /// (Python's `initializer` / `initargs`). Handles to Tangle objects in `initArguments` (an
    /// Event, a Queue, a Lock…) reach every worker — also the replacements of dead or retired ones.
    public convenience init<A: Codable>(
        workers: Int? = nil, initializer: PoolInitializer<A>, initArguments: A, maxTasksPerChild: Int? = nil,
        method: ChildProcess.StartMethod? = nil
    ) throws {
        try self.init(workers: workers, maxTasksPerChild: maxTasksPerChild, method: method,
                      initializerName: initializer.name, encodeInit: { try initArguments.encode(to: $0) })
    }

    private init(workers: Int?, maxTasksPerChild: Int?, method: ChildProcess.StartMethod?, initializerName: String?,
                 encodeInit: ((Encoder) throws -> Void)?) throws {
        precondition(maxTasksPerChild.map { $0 > 0 } ?? true, "Pool: maxTasksPerChild must be > 0")
        workerCount = max(workers ?? CPUCount.available(), 1)
        self.maxTasksPerChild = maxTasksPerChild
        self.startMethod = method ?? TangleRuntime.defaultStartMethod
        self.initializerName = initializerName
        self.encodeInit = encodeInit
        if let initializerName, PoolInitializers.lookup(initializerName) == nil {
            throw PoolError.unregisteredFunction(initializerName)
        }
        object = Recorder.newObjectID()
        TangleRuntime.ensureStarted()
        var fds: [Int32] = [-1, -1]
        guard tangle_pipe2(&fds, O_CLOEXEC | O_NONBLOCK) == 0 else {
            throw PoolError.workerStartFailed("pipe2: \(String(cString: strerror(errno)))")
        }
        wakeRead = fds[0]
        wakeWrite = fds[1]
        Recorder.record(.poolNew, object: object, a: UInt64(workerCount))
        // Workers are spawned by the manager thread: their PR_SET_PDEATHSIG is tied to it, and it
        // lives as long as the pool.
        let manager = TangleThread(name: "pool-manager", runtimeInternal: true) { [self] in manage() }
        manager.start()
        let error: PoolError? = lock.withLock {
            while !workersStarted && startError == nil { _ = lock.wait(until: nil) }
            return startError
        }
        if let error {
            _ = lock.withLock { () -> Bool in
                while state != .finished { _ = lock.wait(until: nil) }
                return true
            }
            throw error
        }
    }

    deinit {
        Glibc.close(wakeRead)
        Glibc.close(wakeWrite)
    }

    /// Like `Pool(workers:)`, runs `body`, then always cleans up: `close()` + `join()` when `body`
    /// returns (the submitted work finishes), `terminate()` + `join()` when it throws.
    public static func with<R>(workers: Int? = nil, _ body: (Pool) throws -> R) throws -> R {
        let pool = try Pool(workers: workers)
        let result: R
        do {
            result = try body(pool)
        } catch {
            pool.terminate()
            pool.join()
            throw error
        }
        pool.close()
        pool.join()
        return result
    }

    // MARK: submitting

    /// A new batch id (from the task ids' counter, so that it names no other batch).
    func newBatch() -> UInt64 {
        lock.withLock {
            nextTaskID += 1
            return nextTaskID
        }
    }

    /// Queues one task (a chunk of encoded inputs). Records `pool.submit` before the task becomes
    /// visible to the manager.
    /// `batch`: the map or iterator the task belongs to (`newBatch()`; 0 for a single apply), so that
    /// a wait for "the results of this map" names its tasks.
    func submit(function: String, payload: [UInt8], items: Int, firstItem: Int = 0, batch: UInt64 = 0,
                complete: @escaping (UInt64, Result<UnsafeRawBufferPointer, PoolError>) -> Void) throws -> UInt64 {
        let id: UInt64 = try lock.withLock {
            guard state == .running else { throw PoolError.closed }
            nextTaskID += 1
            let id = nextTaskID
            Recorder.record(.poolSubmit, object: object, a: id, b: UInt64(items), c: batch)
            pending.append(Task(id: id, function: function, frame: PoolWire.taskFrame(id: id, function: function, payload: payload), firstItem: firstItem, complete: { complete(id, $0) }))
            return id
        }
        wake()
        return id
    }

    func wake() {
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    func checkRegistered(_ name: String) throws {
        if PoolFunctions.isRegistered(name) { return }
        EntryPoint.runTestHooksOnce()
        if !PoolFunctions.isRegistered(name) { throw PoolError.unregisteredFunction(name) }
    }

    /// Runs `function(input)` in a worker; the result (or the task's error) is read from the
    /// returned `AsyncResult`.
    public func applyAsync<I, O>(_ function: PoolFunction<I, O>, _ input: I) throws -> AsyncResult<O> {
        try checkRegistered(function.name)
        let result = AsyncResult<O>(pool: self)
        let payload = try PoolCoding.encode([input][...])
        let id = try submit(function: function.name, payload: payload, items: 1) { [result] _, outcome in
            switch outcome {
            case let .success(raw):
                do {
                    let outputs = try PoolCoding.decode(O.self, raw)
                    result.outcome = outputs.count == 1 ? .success(outputs[0]) : .failure(.taskFailed(function: function.name, index: 0, message: "expected 1 result, got \(outputs.count)"))
                } catch {
                    result.outcome = .failure(.taskFailed(function: function.name, index: 0, message: "cannot decode the result: \(error)"))
                }
            case let .failure(error):
                result.outcome = .failure(error)
            }
        }
        result.taskID = id
        return result
    }

    /// Runs `function(input)` in a worker and waits for its result.
    public func apply<I, O>(_ function: PoolFunction<I, O>, _ input: I) throws -> O {
        try applyAsync(function, input).get()
    }

    /// Python's default chunk size: items / (4 × workers), rounded up.
    func defaultChunkSize(_ count: Int) -> Int {
        let (q, r) = count.quotientAndRemainder(dividingBy: workerCount * 4)
        return max(q + (r > 0 ? 1 : 0), 1)
    }

    /// Applies `function` to every item in the workers, in chunks of `chunkSize` items (default:
    /// items / (4 × workers)), and returns the results in order. Throws the first task error.
    /// `progress(done, total)` is called on the calling thread as chunks complete.
    public func map<I, O>(
        _ function: PoolFunction<I, O>, _ items: [I], chunkSize: Int? = nil,
        progress: ((_ done: Int, _ total: Int) -> Void)? = nil
    ) throws -> [O] {
        if items.isEmpty { return [] }
        try checkRegistered(function.name)
        let size = max(chunkSize ?? defaultChunkSize(items.count), 1)
        let chunkCount = (items.count + size - 1) / size
        let collector = MapCollector<O>(chunks: chunkCount)
        var taskIDs: [UInt64] = []
        taskIDs.reserveCapacity(chunkCount)
        let batch = newBatch()
        for c in 0..<chunkCount {
            let range = (c * size)..<min((c + 1) * size, items.count)
            let payload = try PoolCoding.encode(items[range])
            let id = try submit(function: function.name, payload: payload, items: range.count, firstItem: range.lowerBound, batch: batch) { [collector] _, outcome in
                collector.deliver(chunk: c, items: range.count, outcome, function: function.name)
            }
            taskIDs.append(id)
        }
        // Wait for every chunk (or the first error).
        var reported = 0
        var waited = false
        lock.lock()
        while collector.done < chunkCount && collector.error == nil {
            if let progress, collector.itemsDone != reported {
                reported = collector.itemsDone
                lock.unlock()
                progress(reported, items.count)
                lock.lock()
                continue
            }
            if !waited {
                waited = true
                lock.unlock()
                // Waits for all of its tasks (task 0, all = 1, its batch).
                Recorder.record(.poolResultWait, object: object, b: 1, c: batch)
                lock.lock()
                continue
            }
            _ = lock.wait(until: nil)
        }
        let error = collector.error
        let finished = collector.finished
        let itemsDone = collector.itemsDone
        lock.unlock()
        // Every task of the map is retrieved now: finished ones with their result; after an error,
        // those still running are given up with it (their own errors will not be read).
        for (c, id) in taskIDs.enumerated() where finished[c] != 0 || error != nil {
            Recorder.record(.poolResult, object: object, a: id, result: finished[c] == 1 ? .ok : .error)
        }
        if let error { throw error }
        if let progress, itemsDone != reported { progress(itemsDone, items.count) }
        var out: [O] = []
        out.reserveCapacity(items.count)
        for chunk in collector.outputs { out.append(contentsOf: chunk) }
        return out
    }

    /// Applies `function` to every item, yielding results as they complete (any order): each
    /// element is the item's result or its chunk's error (one failure element per failed chunk).
    /// `chunkSize` defaults to 1, as in Python.
    public func imapUnordered<I, O>(_ function: PoolFunction<I, O>, _ items: [I], chunkSize: Int = 1) throws -> PoolResults<O> {
        try checkRegistered(function.name)
        let size = max(chunkSize, 1)
        let chunkCount = items.isEmpty ? 0 : (items.count + size - 1) / size
        let results = PoolResults<O>(pool: self, chunks: chunkCount, batch: newBatch())
        for c in 0..<chunkCount {
            let range = (c * size)..<min((c + 1) * size, items.count)
            let payload = try PoolCoding.encode(items[range])
            _ = try submit(function: function.name, payload: payload, items: range.count, firstItem: range.lowerBound,
                           batch: results.batch) { [results] id, outcome in
                results.deliver(outcome, task: id, function: function.name)
            }
        }
        return results
    }

    // MARK: close, terminate, join

    /// No more work: the workers exit once the submitted tasks are done. Records `pool.close`.
    public func close() {
        let changed = lock.withLock { () -> Bool in
            guard state == .running else { return false }
            state = .closed
            return true
        }
        if changed { Recorder.record(.poolClose, object: object) }
        wake()
    }

    /// Stops the workers now (SIGTERM); unfinished tasks fail with `PoolError.terminated`.
    /// Records `pool.terminate`.
    public func terminate() {
        let changed = lock.withLock { () -> Bool in
            guard state == .running || state == .closed else { return false }
            state = .terminating
            return true
        }
        if changed { Recorder.record(.poolTerminate, object: object) }
        wake()
    }

    /// Waits until the workers have exited (after `close()` or `terminate()`). Records
    /// `pool.join-wait` when it blocks and `pool.join-done`.
    public func join() {
        let blocked = lock.withLock { () -> Bool in
            precondition(state != .running, "Pool.join() before close() or terminate()")
            return state != .finished
        }
        if blocked {
            Recorder.record(.poolJoinWait, object: object)
            lock.withLock {
                while state != .finished { _ = lock.wait(until: nil) }
            }
        }
        Recorder.record(.poolJoinDone, object: object)
    }

    /// The pids of the current workers (replaced workers have new pids).
    public var workerPIDs: [Int32] {
        lock.withLock { slots.filter { !$0.dead }.map { $0.process.pid } }
    }
}
