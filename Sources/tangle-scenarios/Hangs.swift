import Glibc
import Tangle

// Scenarios that really block forever: each ends blocked inside the runtime's blocking call and is
// stopped from outside (SIGTERM to its process group by `tangle run --timeout` / `tangle demo`).

func registerHangEntryPoints() {
    EntryPoint.register("scn.pill-consumer", pillConsumer)
    EntryPoint.register("scn.lock-get-worker", lockAcrossGetWorker)
    EntryPoint.register("scn.pipe-reader", pipeReader)
    EntryPoint.register("scn.bounded-producer", boundedProducer)
    EntryPoint.register("scn.philosopher", philosopher)
}

// MARK: poison-pill-missing

/// Bug: two consumers each stop at a `nil` pill, but the producer puts only ONE pill, then joins
/// both. One consumer waits in `get` forever; the producer waits forever in `join` on it.
let poisonPillMissing = Scenario(
    name: "poison-pill-missing",
    summary: "2 consumers, 1 poison pill: one consumer blocks in get, the producer in join",
    hangs: true
) {
    let queue = Queue<Int?>(name: "work")
    let first = try spawn("scn.pill-consumer", PillArgs(queue: queue), name: "consumer-1")
    for item in 0..<10 { try queue.put(item) }
    try queue.put(nil)          // one pill for two consumers: the bug
    // Out of band (nothing traced): let consumer-1 drain everything, pill included, before
    // consumer-2 starts, so the run is the same every time (consumer-1 exits, consumer-2 blocks;
    // otherwise consumer-2 might get the pill and sit as a zombie while we join consumer-1).
    while queue.qsize > 0 { sleepMs(1) }
    let second = try spawn("scn.pill-consumer", PillArgs(queue: queue), name: "consumer-2")
    for c in [first, second] { c.join() }
}

struct PillArgs: Codable { var queue: Queue<Int?> }

@inline(never) func pillConsumer(_ args: PillArgs) throws {
    while let item = try args.queue.get() {
        _ = item
        sleepMs(5)
    }
}

// MARK: lock-across-get

/// Bug: the worker holds lock L while blocking in `get`; the only producer must take L before it
/// puts the item. Worker waits on the queue, the parent waits on L: a deadlock.
let lockAcrossGet = Scenario(
    name: "lock-across-get",
    summary: "a worker holds a lock across a blocking get; the producer needs that lock to put",
    hangs: true
) {
    let lock = Lock(name: "L")
    let queue = Queue<Int>(name: "jobs")
    let holding = Event(name: "worker-holds-L")
    let worker = try spawn("scn.lock-get-worker", LockGetArgs(lock: lock, queue: queue, holding: holding), name: "worker")
    holding.wait()
    try producePutUnderLock(lock: lock, queue: queue)
    worker.join()
}

@inline(never) func producePutUnderLock(lock: Lock, queue: Queue<Int>) throws {
    try lock.acquire()            // blocks forever: the worker holds L
    try queue.put(42)
    try lock.release()
}

struct LockGetArgs: Codable { var lock: Lock; var queue: Queue<Int>; var holding: Event }

@inline(never) func lockAcrossGetWorker(_ args: LockGetArgs) throws {
    try args.lock.acquire()
    args.holding.set()
    let job = try args.queue.get()  // blocks forever, holding L
    _ = job
    try args.lock.release()
}

// MARK: pipe-own-writer

/// Bug: the receiver reads a one-way pipe until end of file but still holds its own inherited copy
/// of the write end, so end of file never comes after the parent's 3 messages and close.
let pipeOwnWriter = Scenario(
    name: "pipe-own-writer",
    summary: "the receiver waits for EOF while it still holds its own copy of the write end",
    hangs: true
) {
    let (receiver, sender) = try Tangle.Pipe(Int.self, duplex: false)
    let reader = try spawn("scn.pipe-reader", PipeArgs(receiver: receiver, sender: sender), name: "reader")
    receiver.close()
    for i in 0..<3 { try sender.send(i) }
    sender.close()
    reader.join()
}

struct PipeArgs: Codable {
    var receiver: Connection<Int>
    /// The bug: the child is handed the write end too and never closes it.
    var sender: Connection<Int>?
}

@inline(never) func pipeReader(_ args: PipeArgs) throws {
    var got = 0
    while true {
        do {
            _ = try args.receiver.recv()
            got += 1
        } catch PipeError.eof {
            break
        }
    }
    withExtendedLifetime(args.sender) {}
    _ = got
}

// MARK: join-before-get

/// Bug: the parent joins a child before draining the bounded queue the child fills: the child
/// blocks in `put` (queue full, only the parent could get) while the parent blocks in `join`.
let joinBeforeGet = Scenario(
    name: "join-before-get",
    summary: "the parent joins a child that is blocked putting into a full queue only the parent reads",
    hangs: true
) {
    let queue = Queue<Int>(maxsize: 1, name: "results")
    let child = try spawn("scn.bounded-producer", BoundedArgs(queue: queue, count: 3), name: "producer")
    child.join()                 // the bug: join before get
    for _ in 0..<3 { _ = try queue.get() }
}

struct BoundedArgs: Codable { var queue: Queue<Int>; var count: Int }

@inline(never) func boundedProducer(_ args: BoundedArgs) throws {
    for i in 0..<args.count { try args.queue.put(i) }
}

// MARK: dining-philosophers

/// Bug: five philosophers each take their left fork, wait until all hold one (a barrier), then
/// take their right fork: a real five-way deadlock on five locks.
let diningPhilosophers = Scenario(
    name: "dining-philosophers",
    summary: "5 processes take left fork then right fork: a real 5-way lock cycle",
    hangs: true
) {
    let forks = (0..<5).map { Lock(name: "fork-\($0)") }
    let table = Barrier(parties: 5, name: "table")
    let philosophers = try (0..<5).map { i in
        try spawn("scn.philosopher", PhilosopherArgs(index: i, left: forks[i], right: forks[(i + 1) % 5], table: table),
                  name: "philosopher-\(i)")
    }
    for p in philosophers { p.join() }
}

struct PhilosopherArgs: Codable { var index: Int; var left: Lock; var right: Lock; var table: Barrier }

@inline(never) func philosopher(_ args: PhilosopherArgs) throws {
    try args.left.acquire()
    _ = try args.table.wait()      // everyone holds the left fork now
    try args.right.acquire()       // blocks forever
    try args.right.release()
    try args.left.release()
}

// MARK: self-deadlock

/// Bug: a thread acquires a non-recursive Lock it already holds: it waits for itself forever.
let selfDeadlock = Scenario(
    name: "self-deadlock",
    summary: "one thread acquires a non-recursive Lock twice",
    hangs: true
) {
    let lock = Lock(name: "config")
    try lock.acquire()
    try reacquire(lock)
}

@inline(never) func reacquire(_ lock: Lock) throws {
    try lock.acquire()             // blocks forever
    try lock.release()
}
