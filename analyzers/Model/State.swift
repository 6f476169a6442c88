import TangleTrace

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
    /// For condition waits: the object's notify count when the wait began.
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
    var name: String?
    var object: UInt64 = 0
    var firstTime: UInt64
    var lastTime: UInt64
    var lastSeq: UInt64 = 0
    var seenSeq = false
    var lastEvent: TraceEvent
    var wait: PendingWait?
    /// How the last wait ended (for confirming hangs seen at a quiescent point).
    var exited = false
    var held: [HeldLock] = []
    var clock = VectorClock()
    var events = 0
    /// Locks released by `cond.wait` (re-taken on wake).
    var condReleased: [HeldLock] = []

    init(index: Int, pid: Int32, tid: Int32, first: TraceEvent) {
        self.index = index
        self.pid = pid
        self.tid = tid
        self.firstTime = first.time
        self.lastTime = first.time
        self.lastEvent = first
        clock.set(index, 1)
    }

    var own: UInt32 { clock[index] }

    func tick() { clock.set(index, clock[index] &+ 1) }

    func heldIndex(_ lock: UInt64) -> Int? { held.firstIndex { $0.lock == lock } }
}

final class ProcessState {
    let pid: Int32
    var ppid: Int32 = 0
    var header: TraceHeader?
    var file: String?
    var name: String?
    var object: UInt64 = 0
    var spawn: TraceEvent?
    var spawnClock: VectorClock?
    var start: TraceEvent?
    var exit: TraceEvent?
    var joinDone: TraceEvent?
    var joinedBy: Int32 = 0
    var signalled: TraceEvent?
    var forked = false
    var threads: [Int] = []
    /// Handle keys (see `TraceModel.handleKey`) this process holds.
    var handles: Set<UInt64> = []
    /// Handle keys this process explicitly closed (`handle.close`, `pipe.close`).
    var closedHandles: Set<UInt64> = []
    /// Queues this process closed for putting (`queue.close`).
    var closedQueues: Set<UInt64> = []
    var firstTime: UInt64 = .max
    var lastTime: UInt64 = 0
    var events = 0
    var exitClock: VectorClock?
    var children: [Int32] = []
    var spawnOrder = 0

    init(pid: Int32) { self.pid = pid }

    var hasEvents: Bool { events > 0 }

    /// Exited, killed, or reaped: its threads can no longer act.
    var isDead: Bool { exit != nil || joinDone != nil || signalled != nil }

    /// Exit status and signal as best known: (status, signal), nil when unknown.
    var outcome: (status: Int32, signal: Int32)? {
        if let e = exit { return (Int32(truncatingIfNeeded: e.a), Int32(truncatingIfNeeded: e.b)) }
        if let j = joinDone, j.result == .ok { return (Int32(truncatingIfNeeded: j.b), Int32(truncatingIfNeeded: j.c)) }
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
    var clock: VectorClock
    var object: UInt64
    /// For pipes: the destination end.
    var end: Int
}

struct PoolTask {
    var submit: TraceEvent?
    var submitClock: VectorClock?
    var workerPid: Int32 = 0
    var done: TraceEvent?
    var doneClock: VectorClock?
    var retrieved: TraceEvent?
}

final class ObjectState {
    let id: UInt64
    var kind: ObjectKind
    var name: String?
    var creatorPid: Int32 = 0
    var created: TraceEvent?

    // Locks and semaphores.
    var owner: Int = -1
    var depth: UInt64 = 0
    var ownerEvent: TraceEvent?
    var semValue: Int64 = 1
    var semClock = VectorClock()

    // Queues.
    var maxsize: UInt64 = 0
    var pendingCount = 0
    var puts = 0
    var gets = 0
    var taskDones = 0
    var putters: Set<Int32> = []
    var getters: Set<Int32> = []
    var getsByPid: [Int32: Int] = [:]
    var taskDonesByPid: [Int32: Int] = [:]
    var taskDoneClock = VectorClock()
    var lastGet: [Int32: TraceEvent] = [:]

    // Pipes: per destination end.
    var pipePending: [Int] = [0, 0]
    var senders: [Set<Int32>] = [[], []]
    var duplex = false

    // Events, conditions, barriers.
    var isSet = false
    var setClock = VectorClock()
    var setters: Set<Int32> = []
    var condLock: UInt64 = 0
    var notifies: UInt64 = 0
    var notifiers: Set<Int32> = []
    var parties: UInt64 = 0
    var arrived: UInt64 = 0
    var arrivedThreads: Set<Int> = []
    var barrierClock = VectorClock()

    // Pools.
    var tasks: [UInt64: PoolTask] = [:]
    var workers: Set<Int32> = []
    var poolClosed: TraceEvent?

    // Shared memory.
    var unlinked: TraceEvent?
    var shmHolders: Set<Int32> = []

    // Releasers of semaphores.
    var releasers: Set<Int32> = []

    init(id: UInt64, kind: ObjectKind) {
        self.id = id
        self.kind = kind
    }
}
