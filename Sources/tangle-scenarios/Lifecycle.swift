import Glibc
import Synchronization
import Tangle

// Lifecycle and misuse scenarios: nothing hangs, but something is left behind or misused.

func registerLifecycleEntryPoints() {
    EntryPoint.register("scn.exit-at-once") { () throws in }
    EntryPoint.register("scn.get-some", getSome)
    EntryPoint.register("scn.get-all-done-some", getAllDoneSome)
    EntryPoint.register("scn.die-holding", dieHolding)
    EntryPoint.register("scn.shm-writer", shmWriter)
}

// MARK: zombie

/// Bug: the child exits at once but the parent does not reap it for 1.5 s (past the analyzer's
/// 1 s zombie threshold): a zombie process table entry the whole time.
let zombie = Scenario(
    name: "zombie",
    summary: "a child exits at once; the parent reaps it only 1.5 s later",
    hangs: false
) {
    let child = try spawn("scn.exit-at-once", NoArgs(), name: "short-lived")
    waitUntilZombie(child)
    sleepMs(1500)
    try expectExit(child, child.join())
}

struct NoArgs: Codable {}

// MARK: unjoined-child

/// Bug: the parent starts a child and exits without ever joining it.
let unjoinedChild = Scenario(
    name: "unjoined-child",
    summary: "the parent exits without joining its child",
    hangs: false
) {
    let child = try spawn("scn.exit-at-once", NoArgs(), name: "forgotten")
    waitUntilZombie(child)   // the child is gone (but not reaped) when the parent exits
    sleepMs(50)
}

// MARK: lost-messages

/// Bug: the producer puts 5 items, the consumer gets only 3, both exit cleanly: 2 messages are
/// lost with the queue.
let lostMessages = Scenario(
    name: "lost-messages",
    summary: "5 items put, 3 got, everyone exits: 2 messages lost",
    hangs: false
) {
    let queue = Queue<Int>(name: "events")
    let consumer = try spawn("scn.get-some", GetSomeArgs(queue: queue, count: 3), name: "consumer")
    for i in 0..<5 { try queue.put(i) }
    try expectExit(consumer, consumer.join())
}

struct GetSomeArgs: Codable { var queue: Queue<Int>; var count: Int }

@inline(never) func getSome(_ args: GetSomeArgs) throws {
    for _ in 0..<args.count { _ = try args.queue.get() }
}

// MARK: missing-task-done

/// Bug: the consumer of a JoinableQueue gets 4 items but marks only 2 done; a `join` on the queue
/// would never return (the producer never joins it here, so nothing hangs).
let missingTaskDone = Scenario(
    name: "missing-task-done",
    summary: "a JoinableQueue consumer gets 4 items and calls taskDone for 2",
    hangs: false
) {
    let queue = JoinableQueue<Int>(name: "tasks")
    let consumer = try spawn("scn.get-all-done-some", TaskArgs(queue: queue, count: 4, done: 2), name: "worker")
    for i in 0..<4 { try queue.put(i) }
    try expectExit(consumer, consumer.join())
}

struct TaskArgs: Codable { var queue: JoinableQueue<Int>; var count: Int; var done: Int }

@inline(never) func getAllDoneSome(_ args: TaskArgs) throws {
    for i in 0..<args.count {
        _ = try args.queue.get()
        if i < args.done { try args.queue.taskDone() }
    }
}

// MARK: owner-died

/// Bug: a child takes a Lock and is SIGKILLed while holding it; the parent's next acquire gets
/// owner-died (the state the lock protected may be half-updated).
let ownerDied = Scenario(
    name: "owner-died",
    summary: "a child is killed holding a Lock; the parent's acquire gets owner-died",
    hangs: false
) {
    let lock = Lock(name: "ledger")
    let holding = Event(name: "child-holds-lock")
    let child = try spawn("scn.die-holding", DieArgs(lock: lock, holding: holding), name: "holder")
    holding.wait()
    child.kill()
    try expectExit(child, child.join(), .signaled(SIGKILL))
    do {
        try lock.acquire()
        try lock.release()
        throw ScenarioFailure("the lock did not report its dead owner")
    } catch SyncError.ownerDied {
        // Expected: recovered, free again.
    }
}

struct DieArgs: Codable { var lock: Lock; var holding: Event }

@inline(never) func dieHolding(_ args: DieArgs) throws {
    try args.lock.acquire()
    args.holding.set()
    sleepMs(60_000)                // killed long before
    try args.lock.release()
}

// MARK: shm-leak

/// Bug: a named SharedMemory segment is created and used by two processes, both close it, nobody
/// unlinks it: it stays in /dev/shm after the program ends. (The scenario runner unlinks it after
/// the trace was taken.)
let shmLeak = Scenario(
    name: "shm-leak",
    summary: "a named SharedMemory is created, used and closed, never unlinked",
    hangs: false
) {
    let shm = try SharedMemory(create: 4096, name: "tangle-scenario-shm-leak-\(getpid())")
    let child = try spawn("scn.shm-writer", ShmArgs(shm: shm), name: "writer")
    try expectExit(child, child.join())
    let value = shm.buffer(of: Int.self)[0]
    if value != 42 { throw ScenarioFailure("shared memory holds \(value), not 42") }
    shm.close()                    // closed, never unlinked: the bug
}

struct ShmArgs: Codable { var shm: SharedMemory }

@inline(never) func shmWriter(_ args: ShmArgs) throws {
    args.shm.buffer(of: Int.self)[0] = 42
    args.shm.close()
}

// MARK: fork-with-threads

/// Bug: the process forks (opt-in fork) while two other threads are running: the child gets a copy
/// of whatever locks those threads held at that instant.
let forkWithThreads = Scenario(
    name: "fork-with-threads",
    summary: "fork while two busy threads run in the parent",
    hangs: false
) {
    try forkWhileBusy()
}

final class StopFlag: Sendable {
    let value = Atomic<Bool>(false)
}

@inline(never) func forkWhileBusy() throws {
    let stop = StopFlag()
    let running = Semaphore(0, name: "busy-started")
    let threads = (0..<2).map { i in
        TangleThread(name: "busy-\(i)") {
            try? running.release()
            var x: UInt64 = 0
            while !stop.value.load(ordering: .relaxed) {
                x &+= 1
                if x % 1_000_000 == 0 { sleepMs(1) }
            }
        }
    }
    for t in threads { t.start() }
    for _ in threads { try running.acquire() }
    let child = ChildProcess(name: "forked") {
        // A forked copy: do something trivial and exit.
        _ = getpid()
    }
    try child.start()
    try expectExit(child, child.join())
    stop.value.store(true, ordering: .relaxed)
    for t in threads { t.join() }
}
