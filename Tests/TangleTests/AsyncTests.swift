import CTangleSupport
import Glibc
import Synchronization
import TangleTraceFormat
import TangleRecorder
import TangleTraceReader
import XCTest
@testable import Tangle
import TangleTestSupport

/// The async forms of the blocking calls: many tasks on a one-thread executor (they would
/// deadlock if any call blocked that thread), cancellation, and the trace a task leaves (its own
/// participant, named `task …`).
final class AsyncTests: XCTestCase {
    override class func setUp() {
        registerTangleTestsEntryPoints()
        super.setUp()
        setenv("SWIFT_BACKTRACE", "enable=no", 1)
    }

    /// 60-odd tasks on one thread wait on every kind of primitive — a queue fed by a child process,
    /// a lock held across a yield, a semaphore, a barrier, an event, a condition, a pipe, a thread
    /// and a child to join — and all finish. A blocking call in any of them would stop the thread
    /// and with it the task that was to wake it.
    func testManyTasksOnOneThreadAllFinish() throws {
        let executor = OneThreadExecutor()
        let queue = Queue<Int>()
        let go = Event()
        let child = ChildProcess(entryPoint: "async.put-after", arguments: AsyncPutArgs(queue: queue, go: go, count: 16))
        try child.start()
        let lock = Lock(), rlock = RLock(), sem = Semaphore(0), barrier = Barrier(parties: 8), event = Event()
        let cond = Condition(lock: Lock())
        let (rx, tx) = try Tangle.Pipe(Int.self)
        let thread = TangleThread(name: "sleeper") { usleep(50_000) }
        thread.start()
        let flag = Mutex(false)
        let result = runOn(executor, seconds: 60) { () async throws -> Int in
            try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<16 { group.addTask { try await queue.get() } }
                for i in 0..<8 {
                    group.addTask {
                        try await lock.acquire()
                        await Task.yield()     // others now wait for the lock
                        try await lock.release()
                        try await rlock.acquire()
                        try await rlock.acquire()
                        await Task.yield()
                        try await rlock.release()
                        try await rlock.release()
                        return i * 0
                    }
                }
                for _ in 0..<8 { group.addTask { try await sem.acquire(); return 0 } }
                for _ in 0..<8 { group.addTask { _ = try await barrier.wait(); return 0 } }
                for _ in 0..<4 { group.addTask { try await event.wait(); return 0 } }
                group.addTask {
                    try await cond.acquire()
                    let ok = try await cond.wait(for: { flag.withLock { $0 } }, timeout: .seconds(30))
                    try await cond.release()
                    return ok ? 0 : 1000
                }
                group.addTask { try await rx.recv() }
                group.addTask { try await thread.join() ? 0 : 1000 }
                group.addTask { try await child.join() == .exited(0) ? 0 : 1000 }
                // The wakers run after every waiter above is suspended on the one thread.
                group.addTask {
                    for _ in 0..<5 { await Task.yield() }
                    await go.set()
                    await event.set()
                    for _ in 0..<8 { try await sem.release() }
                    try await tx.send(1000)
                    try await cond.acquire()
                    flag.withLock { $0 = true }
                    try await cond.notifyAll()
                    try await cond.release()
                    return 0
                }
                var sum = 0
                for try await v in group { sum += v }
                return sum
            }
        }
        guard let result else {
            child.kill()
            return XCTFail("the tasks did not finish in 60 s: a call blocked the executor's only thread")
        }
        XCTAssertEqual(try result.get(), (0..<16).reduce(0, +) + 1000)
        XCTAssertFalse(lock.isLocked)
        XCTAssertFalse(rlock.isLocked)
    }

    /// Pool results iterated with `for try await` (imap and imapUnordered) suspend the task: on a
    /// one-thread executor, the task that sets the Event the pool tasks wait for still runs.
    func testAsyncPoolIterationDoesNotBlockTheThread() throws {
        let executor = OneThreadExecutor()
        let go = Event(), log = Queue<Int>(), pids = Queue<Int32>()
        let pool = try Pool(workers: 2, initializer: sharedInit, initArguments: WorkerShared(go: go, log: log, pids: pids))
        defer {
            pool.terminate()
            pool.join()
        }
        let result = runOn(executor, seconds: 60) { () async throws -> [Int] in
            try await withThrowingTaskGroup(of: [Int].self) { group in
                group.addTask {
                    var ordered: [Int] = []
                    for try await r in try pool.imap(useSharedFn, 0..<6) { ordered.append(try r.get()) }
                    var unordered: [Int] = []
                    for try await r in try pool.imapUnordered(useSharedFn, Array(6..<9)) { unordered.append(try r.get()) }
                    return ordered + unordered.sorted()
                }
                group.addTask {
                    for _ in 0..<5 { await Task.yield() }
                    await go.set()
                    return []
                }
                var all: [Int] = []
                for try await part in group { all += part }
                return all
            }
        }
        guard let result else { return XCTFail("the iteration blocked the executor's only thread") }
        XCTAssertEqual(try result.get(), (0..<9).map { $0 * 10 })
    }

    /// A cancelled task's wait ends with CancellationError promptly (a waiter notices within its
    /// 20 ms slice), and the primitive is left usable.
    func testCancellationEndsWaits() async throws {
        let queue = Queue<Int>()
        let lock = Lock()
        try await lock.acquire()
        let getter = Task { try await queue.get() }
        let locker = Task { try await lock.acquire() }
        usleep(50_000)
        let start = tangle_now_ns()
        getter.cancel()
        locker.cancel()
        do { _ = try await getter.value; XCTFail("get returned") } catch is CancellationError {}
        do { try await locker.value; XCTFail("acquire returned") } catch is CancellationError {}
        XCTAssertLessThan(tangle_now_ns() - start, 5_000_000_000)
        try await lock.release()
        try await queue.put(7)
        let v = try await queue.get()
        XCTAssertEqual(v, 7)
        let got = try await lock.acquire(timeout: .seconds(5))
        XCTAssertTrue(got)
        try await lock.release()
        // Timeouts still work.
        do { _ = try await queue.get(timeout: .milliseconds(30)); XCTFail("no message expected") } catch QueueError.empty {}
    }

    /// A deadlock between a task and a process, analyzed by `tangle analyze`: the task "handler"
    /// holds the lock across an async get whose producer (a child process) waits for the lock.
    /// The report names the task as a participant of the cycle.
    func testTaskProcessDeadlockIsAnalyzed() throws {
        let tangle = try productBinary("tangle")
        let dir = makeTempDir("tangle-async-deadlock")
        addTeardownBlock { if getenv("KEEP") == nil { removeTree(dir) } else { print("kept", dir) } }
        TangleRuntime.ensureStarted()
        _ = Recorder.isEnabled
        setenv("TANGLE_TRACE", dir, 1)
        let child = ChildProcess(entryPoint: "async.deadlock")
        do { try child.start() } catch { unsetenv("TANGLE_TRACE"); throw error }
        unsetenv("TANGLE_TRACE")
        // Until the producer waits for the lock (then both sides are blocked for good).
        let blocked = eventually(seconds: 30) {
            guard let trace = try? TraceReader.load(paths: [dir]) else { return false }
            return trace.events.contains { $0.kind == .lockWait && $0.pid != child.pid }
                && trace.events.contains { $0.kind == .queueGetWait && $0.tid >= 1 << 30 }
        }
        let trace = try TraceReader.load(paths: [dir])
        // The parent first: killing the producer first would end the parent's join and let it exit.
        child.kill()
        _ = child.join(timeout: .seconds(30))
        for spawn in trace.events where spawn.kind == .processSpawn && spawn.pid == child.pid { Glibc.kill(Int32(spawn.a), SIGKILL) }
        XCTAssertTrue(blocked, "the deadlock did not form")
        let (status, output) = runCommand(tangle, ["analyze", dir])
        XCTAssertNotEqual(status, 0, output)
        XCTAssertTrue(output.contains("deadlock"), output)
        XCTAssertTrue(output.contains("task handler"), "the task is not named: \(output)")
        print(output)
    }

    /// The events of a task's async calls are its own: a tid outside the kernel's range, a
    /// `thread.start` named `task worker` first and a `thread.exit` last, and the same wait/done
    /// kinds as the blocking calls.
    func testTaskEventsCarryItsIdentity() throws {
        let dir = makeTempDir("tangle-async-trace")
        addTeardownBlock { removeTree(dir) }
        TangleRuntime.ensureStarted()
        _ = Recorder.isEnabled
        setenv("TANGLE_TRACE", dir, 1)
        let child = ChildProcess(entryPoint: "async.traced")
        do { try child.start() } catch { unsetenv("TANGLE_TRACE"); throw error }
        unsetenv("TANGLE_TRACE")
        XCTAssertEqual(child.join(timeout: .seconds(60)), .exited(0))
        let trace = try TraceReader.load(paths: [dir])
        XCTAssertTrue(trace.truncated.isEmpty, "\(trace.problems)")
        let start = trace.events.first { $0.kind == .threadStart && $0.text == "task worker" }
        guard let start else { return XCTFail("no thread.start named 'task worker'") }
        XCTAssertGreaterThanOrEqual(start.tid, 1 << 30)
        let mine = trace.events.filter { $0.pid == start.pid && $0.tid == start.tid }
        let kinds = mine.map { $0.kind }
        XCTAssertEqual(kinds.first, .threadStart)
        XCTAssertEqual(kinds.last, .threadExit)
        for k: EventKind in [.lockAcquired, .lockReleased, .queueGetWait, .queueGet, .eventWait, .eventWake] {
            XCTAssertTrue(kinds.contains(k), "the task recorded no \(k): \(kinds)")
        }
        // The lock was released by its owner (no `owner` of another).
        XCTAssertTrue(mine.filter { $0.kind == .lockReleased }.allSatisfy { $0.b == 0 })
        XCTAssertFalse(trace.events.contains { $0.kind == .lockReleased && $0.tid != start.tid && $0.pid == start.pid })
    }
}

/// Runs `path` with `arguments`; its exit status and output (stdout and stderr).
func runCommand(_ path: String, _ arguments: [String]) -> (Int32, String) {
    let (r, w) = makePipe()
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    posix_spawn_file_actions_adddup2(&actions, w, 1)
    posix_spawn_file_actions_adddup2(&actions, w, 2)
    var pid: pid_t = 0
    let argv = ([path] + arguments).map { strdup($0) } + [nil]
    let rc = posix_spawn(&pid, path, &actions, nil, argv, environ)
    posix_spawn_file_actions_destroy(&actions)
    argv.forEach { free($0) }
    close(w)
    guard rc == 0 else { close(r); return (-1, "posix_spawn failed: \(rc)") }
    let out = String(decoding: readToEnd(r), as: UTF8.self)
    close(r)
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    return ((status >> 8) & 0xFF, out)
}

/// A product of this package built next to the test bundle (`swift test` builds them all).
func productBinary(_ name: String) throws -> String {
    var buf = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buf, buf.count - 1)
    let exe = n > 0 ? String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
    let dir = exe.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
    let path = dir + "/" + name
    guard access(path, X_OK) == 0 else { throw XCTSkip("\(path) was not built (swift build --product \(name))") }
    return path
}
