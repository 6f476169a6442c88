import TangleTraceFormat

/// What kind of object an id names, as far as the trace told us.
enum ObjectKind: String, Sendable {
    case lock, rlock, semaphore, boundedSemaphore = "bounded-semaphore"
    case queue, joinableQueue = "joinable-queue", pipe, event, condition, barrier, pool
    case sharedMemory = "shared-memory", manager, process, thread, unknown

    var isMutex: Bool { self == .lock || self == .rlock }
    var isSemaphore: Bool { self == .semaphore || self == .boundedSemaphore }
    var isQueue: Bool { self == .queue || self == .joinableQueue }

    /// The word used in explanations.
    var noun: String {
        switch self {
        case .lock: "lock"
        case .rlock: "rlock"
        case .semaphore: "semaphore"
        case .boundedSemaphore: "bounded semaphore"
        case .queue: "queue"
        case .joinableQueue: "joinable queue"
        case .pipe: "pipe"
        case .event: "event"
        case .condition: "condition"
        case .barrier: "barrier"
        case .pool: "pool"
        case .sharedMemory: "shared memory"
        case .manager: "manager"
        case .process: "process"
        case .thread: "thread"
        case .unknown: "object"
        }
    }

    init(objectType: UInt64) {
        switch ObjectType(rawValue: objectType) {
        case .process: self = .process
        case .thread: self = .thread
        case .lock: self = .lock
        case .queue: self = .queue
        case .pipe: self = .pipe
        case .event: self = .event
        case .condition: self = .condition
        case .barrier: self = .barrier
        case .pool: self = .pool
        case .sharedMemory: self = .sharedMemory
        case .manager: self = .manager
        case nil: self = .unknown
        }
    }
}

/// A blocking wait that has been announced (`*-wait`) and not completed yet.
struct PendingWait {
    var event: TraceEvent
    /// For condition waits: the object's notify count when the wait began; for barrier waits, the
    /// barrier's generation.
    var generation: UInt64 = 0
    /// For pipe receives: the end received on.
    var end: Int = 0
}

/// A lock a thread holds, with where it took it.
struct HeldLock {
    var lock: UInt64
    var depth: UInt64
    var event: TraceEvent
    /// The thread's clock when it took the lock (shared storage, copied only on write).
    var clock: VectorClock
}

final class ThreadState {
    let index: Int
    let pid: Int32
    let tid: Int32
    @exclusivity(unchecked) var name: String?
    @exclusivity(unchecked) var object: UInt64 = 0
    @exclusivity(unchecked) var firstTime: UInt64
    @exclusivity(unchecked) var lastTime: UInt64
    @exclusivity(unchecked) var lastSeq: UInt64 = 0
    @exclusivity(unchecked) var seenSeq = false
    /// The wait the thread is blocked in now (the innermost one).
    @exclusivity(unchecked) var wait: PendingWait? { didSet { isWaiting = wait != nil } }
    /// `wait != nil`, without copying the wait (the per-event check).
    @exclusivity(unchecked) private(set) var isWaiting = false
    /// Waits still pending around `wait` (a condition wait around the re-acquire of its lock).
    @exclusivity(unchecked) var outerWaits: [PendingWait] = []
    /// A runtime thread that only relays (a pool's manager, `thread.start` internal = 1): it never
    /// blocks or wakes anyone by itself, so it counts neither for quiescence nor as a waker.
    @exclusivity(unchecked) var isInternal = false
    /// How the last wait ended (for confirming hangs seen at a quiescent point).
    @exclusivity(unchecked) var exited = false
    @exclusivity(unchecked) var held: [HeldLock] = []
    /// What this thread knows of the others (its own slot is `ownCounter`).
    @exclusivity(unchecked) var clock = VectorClock()
    @exclusivity(unchecked) var ownCounter: UInt32 = 1
    @exclusivity(unchecked) var events = 0
    /// Locks released by `cond.wait` (re-taken on wake).
    @exclusivity(unchecked) var condReleased: [HeldLock] = []

    init(index: Int, pid: Int32, tid: Int32, first: TraceEvent) {
        self.index = index
        self.pid = pid
        self.tid = tid
        self.firstTime = first.time
        self.lastTime = first.time
    }

    var own: UInt32 { ownCounter }

    @inline(__always) func tick() { ownCounter &+= 1 }

    @inline(__always) func stamp() -> ClockStamp { ClockStamp(clock: clock, thread: index, own: ownCounter) }

    @inline(__always) func receive(_ s: ClockStamp) {
        clock.join(s.clock)
        if s.thread != index { clock.raise(s.thread, s.own) }
    }

    @inline(__always) func receive(_ c: VectorClock) { clock.join(c) }

    func heldIndex(_ lock: UInt64) -> Int? { held.firstIndex { $0.lock == lock } }
}

final class TracedProcess {
    let pid: Int32
    @exclusivity(unchecked) var ppid: Int32 = 0
    @exclusivity(unchecked) var header: TraceHeader?
    @exclusivity(unchecked) var file: String?
    @exclusivity(unchecked) var name: String?
    @exclusivity(unchecked) var object: UInt64 = 0
    @exclusivity(unchecked) var spawn: TraceEvent?
    @exclusivity(unchecked) var spawnClock: ClockStamp?
    @exclusivity(unchecked) var start: TraceEvent?
    @exclusivity(unchecked) var exit: TraceEvent?
    @exclusivity(unchecked) var joinDone: TraceEvent?
    @exclusivity(unchecked) var joinedBy: Int32 = 0
    @exclusivity(unchecked) var signalled: TraceEvent? { didSet { isSignalled = signalled != nil } }
    /// `signalled != nil`, without copying the event (the per-event check).
    @exclusivity(unchecked) private(set) var isSignalled = false
    @exclusivity(unchecked) var forked = false
    @exclusivity(unchecked) var threads: [Int] = []
    /// Handle keys (see `TraceModel.handleKey`) this process holds.
    @exclusivity(unchecked) var handles: Set<UInt64> = []
    /// Handle keys this process explicitly closed (`handle.close`, `pipe.close`).
    @exclusivity(unchecked) var closedHandles: Set<UInt64> = []
    /// Queues this process closed for putting (`queue.close`).
    @exclusivity(unchecked) var closedQueues: Set<UInt64> = []
    @exclusivity(unchecked) var firstTime: UInt64 = .max
    @exclusivity(unchecked) var lastTime: UInt64 = 0
    @exclusivity(unchecked) var events = 0
    @exclusivity(unchecked) var exitClock: VectorClock?
    @exclusivity(unchecked) var children: [Int32] = []
    @exclusivity(unchecked) var spawnOrder = 0

    init(pid: Int32) { self.pid = pid }

    var hasEvents: Bool { events > 0 }

    /// Started by a runtime-internal thread (a pool's worker, spawned by the pool's manager): the
    /// runtime ties its life to that thread (PR_SET_PDEATHSIG), so it ends with its parent.
    @exclusivity(unchecked) var diesWithParent = false
    /// The parent's end, for a child that ends with it.
    @exclusivity(unchecked) var parentEnded: TraceEvent?

    /// Exited, killed, or reaped: its threads can no longer act.
    var isDead: Bool { exit != nil || joinDone != nil || signalled != nil || parentEnded != nil }

    /// Exit status and signal as best known: (status, signal), nil when unknown.
    var outcome: (status: Int32, signal: Int32)? {
        if let e = exit { return (e.int32(.status), e.int32(.signal)) }
        if let j = joinDone, j.result == .ok { return (j.int32(.status), j.int32(.signal)) }
        return nil
    }

    var endTime: UInt64 {
        if let e = exit { return e.time }
        if let j = joinDone { return min(j.time, max(lastTime, j.time)) }
        return lastTime
    }
}

struct PendingMessage {
    var event: TraceEvent
    var clock: ClockStamp
    var object: UInt64
    /// For pipes: the destination end.
    var end: Int
}

/// Messages in flight by id: an open-addressing index (linear probing, backward-shift deletion)
/// into a slab of entries (free slots reused), so a put or a get moves an index entry, not the
/// whole message. Memory follows the messages in flight. Ids are `(pid << 28) | counter`: the
/// hash keeps runs of 8 consecutive ids in 8 consecutive buckets (one or two cache lines for a
/// producer's run of puts and a consumer's run of gets) and spreads the runs (SipHash would cost
/// more than the rest of a put or get).
final class MessageTable {
    private struct Bucket {
        var id: UInt64
        /// Slab slot + 1 (0: empty).
        var slot: Int32
    }
    @exclusivity(unchecked) private var buckets: UnsafeMutablePointer<Bucket>
    @exclusivity(unchecked) private var mask: Int
    @exclusivity(unchecked) private(set) var count = 0
    @exclusivity(unchecked) private var slab: [PendingMessage?] = []
    @exclusivity(unchecked) private var free: [Int] = []

    init() {
        mask = 63
        buckets = .allocate(capacity: mask + 1)
        buckets.initialize(repeating: Bucket(id: 0, slot: 0), count: mask + 1)
    }

    deinit {
        buckets.deallocate()
    }

    var isEmpty: Bool { count == 0 }

    @inline(__always) private static func hash(_ id: UInt64) -> Int {
        var x = id >> 3
        x ^= x >> 31
        x = x &* 0x9E37_79B9_7F4A_7C15
        x ^= x >> 29
        return Int(truncatingIfNeeded: (x << 3) | (id & 7))
    }

    /// The bucket holding `id`, or the empty bucket where it would go.
    @inline(__always) private func find(_ id: UInt64) -> (bucket: Int, found: Bool) {
        var h = Self.hash(id) & mask
        while true {
            let b = buckets + h
            if b.pointee.slot == 0 { return (h, false) }
            if b.pointee.id == id { return (h, true) }
            h = (h &+ 1) & mask
        }
    }

    private func grow() {
        let old = buckets, oldCap = mask + 1
        mask = oldCap * 2 - 1
        buckets = .allocate(capacity: mask + 1)
        buckets.initialize(repeating: Bucket(id: 0, slot: 0), count: mask + 1)
        for i in 0..<oldCap where old[i].slot != 0 {
            buckets[find(old[i].id).bucket] = old[i]
        }
        old.deallocate()
    }

    /// Adds (or replaces) the message with this id.
    func insert(_ id: UInt64, _ m: PendingMessage) {
        let (b, found) = find(id)
        if found {
            slab[Int(buckets[b].slot) - 1] = m
            return
        }
        let i: Int
        if let f = free.popLast() {
            i = f
            slab[i] = m
        } else {
            i = slab.count
            slab.append(m)
        }
        buckets[b] = Bucket(id: id, slot: Int32(i + 1))
        count += 1
        if count * 2 > mask + 1 { grow() }
    }

    /// Removes and returns the message with this id.
    func remove(_ id: UInt64) -> PendingMessage? {
        let (b, found) = find(id)
        guard found else { return nil }
        let i = Int(buckets[b].slot) - 1
        // Backward-shift deletion: pull later entries of the probe run into the hole.
        var hole = b
        var j = (b &+ 1) & mask
        while buckets[j].slot != 0 {
            let home = Self.hash(buckets[j].id) & mask
            // Move j into the hole when its home is not in (hole, j] (cyclically).
            if (j &- home) & mask >= (j &- hole) & mask {
                buckets[hole] = buckets[j]
                hole = j
            }
            j = (j &+ 1) & mask
        }
        buckets[hole].slot = 0
        count -= 1
        let m = slab[i].take()
        free.append(i)
        if count == 0 {
            // Nothing in flight: give the slab back.
            slab.removeAll(keepingCapacity: true)
            free.removeAll(keepingCapacity: true)
        }
        return m
    }

    /// The messages in flight (in no particular order).
    var values: [PendingMessage] { slab.compactMap { $0 } }
}

struct PoolTask {
    var submit: TraceEvent?
    var submitClock: ClockStamp?
    var workerPid: Int32 = 0
    var done: TraceEvent?
    var doneClock: ClockStamp?
    var retrieved: TraceEvent?
}

final class ObjectState {
    let id: UInt64
    @exclusivity(unchecked) var kind: ObjectKind
    @exclusivity(unchecked) var name: String?
    @exclusivity(unchecked) var creatorPid: Int32 = 0
    @exclusivity(unchecked) var created: TraceEvent?

    // Locks and semaphores.
    @exclusivity(unchecked) var owner: Int = -1
    @exclusivity(unchecked) var depth: UInt64 = 0
    @exclusivity(unchecked) var ownerEvent: TraceEvent?
    @exclusivity(unchecked) var semValue: Int64 = 1
    @exclusivity(unchecked) var semClock = VectorClock()

    // Queues.
    @exclusivity(unchecked) var maxsize: UInt64 = 0
    @exclusivity(unchecked) var pendingCount = 0
    @exclusivity(unchecked) var puts = 0
    @exclusivity(unchecked) var gets = 0
    @exclusivity(unchecked) var taskDones = 0
    @exclusivity(unchecked) var putters = PidSet()
    @exclusivity(unchecked) var getters = PidSet()
    /// Per-process get / task_done counts and last get (a short list: few processes use a queue).
    @exclusivity(unchecked) var users: [QueueUser] = []
    @exclusivity(unchecked) var taskDoneClock = VectorClock()

    @inline(__always) func user(_ pid: Int32) -> Int {
        if let last = users.indices.last, users[last].pid == pid { return last }
        if let i = users.firstIndex(where: { $0.pid == pid }) { return i }
        users.append(QueueUser(pid: pid))
        return users.count - 1
    }

    func gets(of pid: Int32) -> Int { users.first { $0.pid == pid }?.gets ?? 0 }
    func taskDones(of pid: Int32) -> Int { users.first { $0.pid == pid }?.taskDones ?? 0 }
    func lastGet(of pid: Int32) -> TraceEvent? { users.first { $0.pid == pid }?.lastGet }

    // Pipes: per destination end.
    @exclusivity(unchecked) var pipePending: [Int] = [0, 0]
    @exclusivity(unchecked) var senders: [PidSet] = [PidSet(), PidSet()]
    @exclusivity(unchecked) var duplex = false

    // Events, conditions, barriers.
    @exclusivity(unchecked) var isSet = false
    @exclusivity(unchecked) var setClock = VectorClock()
    @exclusivity(unchecked) var setters = PidSet()
    @exclusivity(unchecked) var condLock: UInt64 = 0
    @exclusivity(unchecked) var notifies: UInt64 = 0
    /// Condition waits pending on it, and the wakes notify granted that no waiter took yet.
    @exclusivity(unchecked) var condWaiting = 0
    @exclusivity(unchecked) var wakeCredits = 0
    @exclusivity(unchecked) var notifiers = PidSet()
    @exclusivity(unchecked) var parties: UInt64 = 0
    @exclusivity(unchecked) var arrived: UInt64 = 0
    /// Generations the barrier completed (a wait that began in an earlier one has passed).
    @exclusivity(unchecked) var barrierGeneration: UInt64 = 0
    /// Threads that ever arrived at the barrier (its known parties).
    @exclusivity(unchecked) var barrierParties: Set<Int> = []
    @exclusivity(unchecked) var barrierClock = VectorClock()

    // Pools.
    @exclusivity(unchecked) var tasks: [UInt64: PoolTask] = [:]
    @exclusivity(unchecked) var workers = PidSet()
    /// A worker has shown itself (waited for a task or ran one).
    @exclusivity(unchecked) var workersKnown = false
    /// Tasks submitted that no worker started yet.
    @exclusivity(unchecked) var pendingTasks = 0
    @exclusivity(unchecked) var poolClosed: TraceEvent?

    // Shared memory.
    @exclusivity(unchecked) var unlinked: TraceEvent?
    @exclusivity(unchecked) var shmHolders = PidSet()

    // Releasers of semaphores.
    @exclusivity(unchecked) var releasers = PidSet()

    init(id: UInt64, kind: ObjectKind) {
        self.id = id
        self.kind = kind
    }
}

struct QueueUser {
    var pid: Int32
    var gets = 0
    var taskDones = 0
    var lastGet: TraceEvent?
}

/// A small set of pids kept as an array: a handful of processes use any one object, and a linear
/// scan beats hashing on the hot path (every put/get inserts its pid).
struct PidSet: Sequence, Sendable {
    private(set) var items: [Int32] = []

    init() {}
    init<S: Sequence>(_ s: S) where S.Element == Int32 { for p in s { insert(p) } }

    @inline(__always) mutating func insert(_ pid: Int32) {
        if let last = items.last, last == pid { return }
        if !items.contains(pid) { items.append(pid) }
    }

    mutating func remove(_ pid: Int32) { items.removeAll { $0 == pid } }
    func contains(_ pid: Int32) -> Bool { items.contains(pid) }
    var isEmpty: Bool { items.isEmpty }
    var count: Int { items.count }
    func union(_ other: PidSet) -> PidSet {
        var r = self
        for p in other.items { r.insert(p) }
        return r
    }
    mutating func formUnion<S: Sequence>(_ s: S) where S.Element == Int32 { for p in s { insert(p) } }
    func makeIterator() -> IndexingIterator<[Int32]> { items.makeIterator() }
}
