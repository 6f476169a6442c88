import CTangleSupport
import Glibc
import XCTest
@testable import Tangle

// Entry points and helpers of the async tests (AsyncTests).

func asyncTestEntryPoints() {
    poolFeatureFunctions()
    // Exits with the sum of its arguments (started through its typed handle).
    EntryPoint.register("typed.sum") { (a: TypedSumArgs) in CurrentProcess.exit(a.x + a.y) }
    // Adds 1 to the value `times` times under its lock, and sets its own slot of the array.
    EntryPoint.register("shared.add") { (a: SharedAddArgs) in
        for _ in 0..<a.times { try a.value.withLock { $0 += 1 } }
        try a.array.withLock { $0[a.slot] = Double(a.slot) + 0.5 }
    }
    // Two children add to a named SharedValue (a traced run).
    EntryPoint.register("shared.traced") {
        let value = SharedValue<Int>(0, name: "hits")
        let array = SharedArray<Double>(repeating: 0, count: 2, name: "slots")
        let children = try (0..<2).map { i in
            let c = ChildProcess(entryPoint: "shared.add", arguments: SharedAddArgs(value: value, array: array, times: 100, slot: i))
            try c.start()
            return c
        }
        for c in children { c.join() }
        if try value.load() != 200 { CurrentProcess.exit(3) }
    }
    // A pool used through imap and imapUnordered (each result read by iteration) and an async get.
    EntryPoint.register("async.pool-traced") {
        let pool = try Pool(workers: 2)
        for r in try pool.imap(squareFn, Array(0..<6)) { _ = try r.get() }
        for r in try pool.imapUnordered(squareFn, Array(0..<5)) { _ = try r.get() }
        let done = Event()
        let result = try pool.applyAsync(slowFn, 30)
        Task {
            _ = try await result.get()
            await done.set()
        }
        done.wait()
        pool.close()
        pool.join()
    }
    // Puts `count` messages after the event is set (a process the tasks wait for).
    EntryPoint.register("async.put-after") { (a: AsyncPutArgs) in
        a.go.wait()
        for i in 0..<a.count { try a.queue.put(i) }
    }
    // Takes the lock, then puts a message: blocks on the lock while a task holds it.
    EntryPoint.register("async.put-under-lock") { (a: AsyncLockPutArgs) in
        try a.lock.acquire()
        try a.queue.put(42)
        try a.lock.release()
    }
    // The deadlock: a task (named "handler") holds the lock across an async get whose only
    // producer is a child process that needs the lock first.
    EntryPoint.register("async.deadlock") {
        let lock = Lock(name: "ledger")
        let queue = Queue<Int>(name: "replies")
        let holding = Event(name: "handler-holds-ledger")
        let task = Task {
            try await withTaskParticipant(named: "handler") {
                try await lock.acquire()
                await holding.set()
                _ = try await queue.get()   // never comes: the producer waits for the lock
                try await lock.release()
            }
        }
        holding.wait()
        let worker = ChildProcess(entryPoint: "async.put-under-lock", arguments: AsyncLockPutArgs(lock: lock, queue: queue), name: "producer")
        try worker.start()
        worker.join()
        _ = task
    }
    // A task named "worker" takes and releases a lock, gets from a queue fed later by a thread and
    // waits for an event, all through the async calls.
    EntryPoint.register("async.traced") {
        let lock = Lock(name: "L"), queue = Queue<Int>(name: "Q"), event = Event(name: "E")
        let feeder = TangleThread(name: "feeder") {
            usleep(100_000)
            try? queue.put(1)
            usleep(50_000)
            event.set()
        }
        feeder.start()
        let done = Event()
        Task {
            try await withTaskParticipant(named: "worker") {
                try await lock.acquire()
                try await lock.release()
                _ = try await queue.get()
                try await event.wait()
            }
            await done.set()
        }
        done.wait()
        feeder.join()
    }
}

struct SharedAddArgs: Codable { var value: SharedValue<Int>; var array: SharedArray<Double>; var times: Int; var slot: Int }
struct TypedSumArgs: Codable { var x: Int32; var y: Int32 }
struct AsyncPutArgs: Codable { var queue: Queue<Int>; var go: Event; var count: Int }
struct AsyncLockPutArgs: Codable { var lock: Lock; var queue: Queue<Int> }

/// A task executor with one thread: a task that blocks it stops every other task on it — the
/// smallest cooperative pool, where a blocking call deadlocks at once.
final class OneThreadExecutor: TaskExecutor, @unchecked Sendable {
    private let lock = CondLock()
    private var jobs: [UnownedJob] = []

    init() {
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        pthread_create(&thread, nil, { raw in
            let me = Unmanaged<OneThreadExecutor>.fromOpaque(raw!).takeRetainedValue()
            me.loop()
            return nil
        }, context)
        pthread_detach(thread)
    }

    func enqueue(_ job: UnownedJob) {
        lock.withLock {
            jobs.append(job)
            lock.broadcast()
        }
    }

    private func loop() {
        while true {
            let job: UnownedJob = lock.withLock {
                while jobs.isEmpty { _ = lock.wait(until: nil) }
                return jobs.removeFirst()
            }
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}

/// Runs `body` as a task on `executor` and waits (this thread blocks: it is not the executor's)
/// at most `seconds` for it; nil when it did not finish (deadlocked).
func runOn<R: Sendable>(_ executor: OneThreadExecutor, seconds: Double, _ body: @escaping @Sendable () async throws -> R) -> Result<R, Error>? {
    let done = CondLock()
    nonisolated(unsafe) var result: Result<R, Error>?
    Task(executorPreference: executor) {
        let r: Result<R, Error>
        do { r = .success(try await body()) } catch { r = .failure(error) }
        done.withLock {
            result = r
            done.broadcast()
        }
    }
    let deadline = tangle_now_ns() + UInt64(seconds * 1e9)
    return done.withLock {
        while result == nil { if !done.wait(until: deadline) { break } }
        return result
    }
}
