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

    private enum State { case running, closed, terminating, finished }

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

    private final class Slot {
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
    private var state = State.running
    private var pending: [Task] = []
    private var pendingHead = 0
    private var nextTaskID: UInt64 = 0
    private var slots: [Slot] = []
    private var workersStarted = false
    private var startError: PoolError?
    private var workerSerial = 0

    private let wakeRead: Int32
    private let wakeWrite: Int32

    /// Python's `maxtasksperchild`: a worker exits after this many tasks (chunks) and is replaced
    /// (nil: workers live as long as the pool).
    public let maxTasksPerChild: Int?
    /// How workers are started (`.fork`: a copy of the parent, as Python's fork context).
    public let startMethod: ChildProcess.StartMethod
    private let initializerName: String?
    private let encodeInit: ((Encoder) throws -> Void)?

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

    private func wake() {
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

    // MARK: the manager thread

    private func startWorker() throws -> Slot {
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw PoolError.workerStartFailed("socketpair: \(String(cString: strerror(errno)))")
        }
        let serial = lock.withLock { () -> Int in
            workerSerial += 1
            return workerSerial
        }
        let process = ChildProcess(
            entryPoint: PoolWorker.entryName,
            arguments: PoolWorkerArguments(socket: InheritedDescriptor(pair[1]), pool: object, initializer: initializerName, encodeInit: encodeInit),
            name: "PoolWorker-\(serial)", daemon: true, method: startMethod)
        do {
            try process.start()
        } catch {
            Glibc.close(pair[0])
            Glibc.close(pair[1])
            throw PoolError.workerStartFailed("\(error)")
        }
        Glibc.close(pair[1])
        return Slot(process: process, fd: pair[0])
    }

    private func manage() {
        // Start the workers.
        var started: [Slot] = []
        do {
            for _ in 0..<workerCount { started.append(try startWorker()) }
        } catch {
            for s in started {
                s.process.kill()
                s.process.join()
                Glibc.close(s.fd)
            }
            lock.withLock {
                startError = error as? PoolError ?? .workerStartFailed("\(error)")
                state = .finished
                lock.broadcast()
            }
            return
        }
        lock.withLock {
            slots = started
            workersStarted = true
            lock.broadcast()
        }

        var pollfds: [pollfd] = []
        var drain = [UInt8](repeating: 0, count: 256)
        var receive = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            // Hand pending tasks to idle workers; decide whether to stop.
            var sends: [(Slot, Task)] = []
            let stop: State? = lock.withLock {
                if state == .terminating { return .terminating }
                // Up to `Pool.depth` tasks per worker, one round at a time (every idle worker gets
                // one before any gets a second): the next task waits in the worker's socket while
                // the current one runs, so a worker never idles for the round trip to the manager.
                // Only a small frame is queued behind a running task: it fits in the socket's
                // buffer, so sending it cannot block the manager while that worker blocks writing
                // a large result the manager has not read yet (a deadlock, with big chunks).
                for round in 1...Pool.depth {
                    for slot in slots where !slot.dead && !slot.retiring && slot.busy.count < round && pendingHead < pending.count {
                        if let m = maxTasksPerChild, slot.completed + slot.busy.count >= m { continue }
                        if !slot.busy.isEmpty && pending[pendingHead].frame.count > Pool.queuedFrameLimit { continue }
                        let task = pending[pendingHead]
                        pendingHead += 1
                        slot.busy.append(task)
                        sends.append((slot, task))
                    }
                }
                if pendingHead > 64 && pendingHead * 2 > pending.count {
                    pending.removeFirst(pendingHead)
                    pendingHead = 0
                }
                if state == .closed && pendingHead == pending.count && sends.isEmpty && slots.allSatisfy({ $0.busy.isEmpty }) {
                    return .closed
                }
                return nil
            }
            if let stop {
                shutDown(terminating: stop == .terminating)
                return
            }
            // Which worker holds which task (recorded before the worker can see it): a task queued
            // behind a running one is that worker's, not any idle worker's.
            for (slot, task) in sends {
                Recorder.record(.poolTaskSend, object: object, a: task.id, b: UInt64(UInt32(bitPattern: slot.process.pid)), stack: false)
            }
            var unsent: [Task] = []
            var gone: [Slot] = []
            for (slot, task) in sends where gone.contains(where: { $0 === slot }) || !PoolWire.sendAll(slot.fd, task.frame) {
                // The worker is gone before it got the task: give the task to another worker.
                gone.append(slot)
                lock.withLock { slot.busy.removeAll { $0 === task } }
                Recorder.record(.poolTaskSend, object: object, a: task.id, b: 0, stack: false)
                unsent.append(task)
            }
            if !unsent.isEmpty { lock.withLock { pending.insert(contentsOf: unsent, at: pendingHead) } }

            let current = lock.withLock { slots }
            pollfds.removeAll(keepingCapacity: true)
            pollfds.append(pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0))
            for slot in current { pollfds.append(pollfd(fd: slot.fd, events: Int16(POLLIN), revents: 0)) }
            // The manager only relays between the owner and the workers: its thread is recorded as
            // internal, and its waits are not the program's (the analyzer reads the owner's result
            // waits and the workers' tasks instead).
            let r = poll(&pollfds, nfds_t(pollfds.count), -1)
            if r < 0 { continue }
            if pollfds[0].revents != 0 {
                while drain.withUnsafeMutableBytes({ read(wakeRead, $0.baseAddress, $0.count) }) > 0 {}
            }
            var died: [Slot] = []
            for (i, slot) in current.enumerated() where pollfds[i + 1].revents != 0 {
                var n = 0
                repeat {
                    n = receive.withUnsafeMutableBytes { recv(slot.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                    if n > 0 { slot.inbox.append(contentsOf: receive[0..<n]) }
                } while n == receive.count
                if n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) { died.append(slot) }
                deliverFrames(slot)
            }
            for slot in died { replace(slot) }
            retireFinished()
        }
    }

    /// Completes the tasks whose result frames are in `slot.inbox`.
    private func deliverFrames(_ slot: Slot) {
        var offset = 0
        lock.withLock {
            slot.inbox.withUnsafeBytes { raw in
                while raw.count - offset >= 4 {
                    let length = Int(PoolWire.readU32(raw, offset))
                    guard raw.count - offset - 4 >= length, length >= 9 else { break }
                    let body = UnsafeRawBufferPointer(rebasing: raw[(offset + 4)..<(offset + 4 + length)])
                    offset += 4 + length
                    let id = PoolWire.readU64(body, 0)
                    guard let task = slot.busy.first, task.id == id else { continue }
                    slot.busy.removeFirst()
                    slot.completed += 1
                    if let m = maxTasksPerChild, slot.completed >= m { slot.retiring = true }
                    if body[8] == 0 {
                        task.complete(.success(UnsafeRawBufferPointer(rebasing: body[9...])))
                    } else {
                        let index = body.count >= 13 ? Int(PoolWire.readU32(body, 9)) : 0
                        let message = body.count > 13 ? String(decoding: body[13...], as: UTF8.self) : ""
                        task.complete(.failure(.taskFailed(function: task.function, index: task.firstItem + index, message: message)))
                    }
                }
            }
            if offset > 0 { slot.inbox.removeFirst(offset) }
            lock.broadcast()
        }
    }

    /// Workers that reached `maxTasksPerChild` and are idle: shut their socket down (they exit at
    /// end of file, and `replace` starts their successor when their socket closes).
    private func retireFinished() {
        guard maxTasksPerChild != nil else { return }
        let done = lock.withLock { slots.filter { $0.retiring && $0.busy.isEmpty && !$0.dead } }
        for slot in done where slot.inbox.isEmpty {
            Glibc.shutdown(slot.fd, Int32(SHUT_WR))
        }
    }

    /// A worker's socket reached end of file: reap it, fail its task, start a replacement unless
    /// the pool is stopping.
    private func replace(_ slot: Slot) {
        let status = slot.process.join(timeout: .seconds(5)) ?? {
            slot.process.kill()
            return slot.process.join()
        }()
        Glibc.close(slot.fd)
        let needReplacement = lock.withLock { () -> Bool in
            slot.dead = true
            slots.removeAll { $0 === slot }
            if let task = slot.busy.first {
                // The running task failed with its worker; the ones still queued in its socket
                // were never started: they go to another worker.
                task.complete(.failure(.workerDied(function: task.function, pid: slot.process.pid, status: "\(status!)")))
                for queued in slot.busy.dropFirst() { Recorder.record(.poolTaskSend, object: object, a: queued.id, b: 0, stack: false) }
                pending.insert(contentsOf: slot.busy.dropFirst(), at: pendingHead)
                slot.busy.removeAll()
                lock.broadcast()
            }
            return state == .running || (state == .closed && pendingHead < pending.count)
        }
        guard needReplacement else { return }
        do {
            let fresh = try startWorker()
            lock.withLock { slots.append(fresh) }
        } catch {
            FD.printError("tangle: pool \(object): cannot replace a dead worker: \(error)")
        }
    }

    private func shutDown(terminating: Bool) {
        let current = lock.withLock { () -> [Slot] in
            if terminating {
                for slot in slots {
                    for task in slot.busy { task.complete(.failure(.terminated)) }
                    slot.busy.removeAll()
                }
                while pendingHead < pending.count {
                    pending[pendingHead].complete(.failure(.terminated))
                    pendingHead += 1
                }
                lock.broadcast()
            }
            return slots
        }
        for slot in current {
            if terminating { slot.process.terminate() } else { Glibc.shutdown(slot.fd, Int32(SHUT_WR)) }
        }
        for slot in current {
            if slot.process.join(timeout: .seconds(terminating ? 2 : 30)) == nil {
                slot.process.kill()
                slot.process.join()
            }
            Glibc.close(slot.fd)
        }
        lock.withLock {
            slots.removeAll()
            state = .finished
            lock.broadcast()
        }
    }
}

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
