/// Every kind of event of the trace format (docs/trace-format.md; schema 3 added `thread.spawn`).
///
/// The raw value is what the recorder stores in its fixed binary record; `name` is what the JSON
/// line carries under `"k"`. Raw values are private to one process (never written), so they may be
/// renumbered; names are the format and never change meaning within a schema version.
///
/// Besides the common fields (`t`, `pid`, `tid`, `seq`, `k`, `o`, `s`), an event has up to three
/// numeric arguments. `argumentKeys` names them in JSON: the recorder writes `a`, `b`, `c` under
/// those keys and the reader maps them back, so the analyzer reads `event.a` etc. by meaning.
public enum EventKind: UInt16, CaseIterable, Sendable {
    // Processes and threads.
    case processStart = 1     // o: process object; a: ppid, b: 1 when started by fork; text: name
    case processExit          // a: exit status, b: signal (0 = none)
    case threadStart          // o: thread object; a: parent tid; text: name
    case threadExit           // o: thread object
    case threadJoinWait       // o: thread object being joined
    case threadJoinDone       // o: thread object
    case processSpawn         // o: child process object; a: child pid; b: 1 = fork, 0 = spawn; text: entry name
    case processFork          // a: child pid; b: other threads running in the parent at fork time
    case processJoinWait      // o: child process object; a: child pid
    case processJoinDone      // o: child; a: child pid; b: exit status; c: signal. result in `r`
    case processTerminate     // o: child; a: child pid (SIGTERM sent)
    case processKill          // o: child; a: child pid (SIGKILL sent)

    // Locks: Lock, RLock, Semaphore, BoundedSemaphore share these (o: lock object).
    case lockNew              // a: type (LockType), b: initial value; text: name
    case lockWait             // about to block (the fast path did not get it); a: timeout ns (0 = none)
    case lockAcquired         // a: count held by this thread after acquiring (RLock depth, 1 for Lock)
    case lockReleased         // a: count left; b: pid of the owner it had when released by another thread (0 = self)
    case lockTimeout          // a blocking or non-blocking acquire gave up
    case lockOwnerDied        // acquired from an owner that died holding it; a: dead owner's pid

    // Queues and JoinableQueues (o: queue object).
    case queueNew             // a: maxsize (0 = unbounded), b: 1 = joinable; text: name
    case queuePutWait         // the queue is full: about to block in put
    case queuePut             // a: message id, b: payload size in bytes
    case queueGetWait         // the queue is empty: about to block in get
    case queueGet             // a: message id, b: payload size in bytes
    case queueTimeout         // a: 0 = put, 1 = get; result in `r` (timeout, empty, full, closed)
    case queueClose
    case queueTaskDone        // a: unfinished tasks left
    case queueJoinWait        // JoinableQueue.join is about to block; a: unfinished tasks
    case queueJoinDone

    // Pipes (o: pipe object; c: which end, 0 or 1).
    case pipeNew              // a: 1 = duplex
    case pipeSend             // a: message id, b: size, c: end
    case pipeRecvWait         // c: end
    case pipeRecv             // a: message id, b: size, c: end; r: eof
    case pipeClose            // c: end

    // Events, conditions, barriers.
    case eventNew
    case eventSet
    case eventClear
    case eventWait            // about to block
    case eventWake            // r: timeout
    case conditionNew         // a: the lock object it uses
    case conditionWait        // about to block (the lock is released)
    case conditionWake        // r: timeout (the lock is held again)
    case conditionNotify      // a: how many (0 = all)
    case barrierNew           // a: parties
    case barrierWait          // about to block; a: arrival index
    case barrierPass          // r: broken / timeout

    // Pools (o: pool object; a: task id).
    case poolNew              // a: worker count
    case poolSubmit           // a: task id, b: item count (map chunks)
    case poolTaskStart        // in the worker: a: task id
    case poolTaskDone         // in the worker: a: task id; r: ok or error
    case poolResultWait       // the caller blocks on a result; a: task id
    case poolResult           // the caller retrieved a result; a: task id; r: ok or error
    case poolClose
    case poolTerminate
    case poolJoinWait
    case poolJoinDone

    // Shared memory (o: segment object; text: its name).
    case shmCreate            // a: size in bytes
    case shmAttach            // a: size
    case shmUnlink
    case shmClose

    // Handles: a process gained or gave up its access to an object (o: the object).
    case handleAttach         // a: object type (ObjectType), c: end for pipes
    case handleClose          // a: object type, c: end for pipes

    // Recorder bookkeeping.
    case dropped              // a: events that could not be recorded (never silent)

    // (Added in schema 3; kept last so earlier raw values stay.)
    case threadSpawn          // by the creating thread, before the thread exists: o: the new thread's object

    /// The name under `"k"` in the JSON line.
    public var name: String {
        switch self {
        case .processStart: "proc.start"
        case .processExit: "proc.exit"
        case .threadStart: "thread.start"
        case .threadExit: "thread.exit"
        case .threadJoinWait: "thread.join-wait"
        case .threadJoinDone: "thread.join-done"
        case .processSpawn: "proc.spawn"
        case .processFork: "proc.fork"
        case .processJoinWait: "proc.join-wait"
        case .processJoinDone: "proc.join-done"
        case .processTerminate: "proc.terminate"
        case .processKill: "proc.kill"
        case .lockNew: "lock.new"
        case .lockWait: "lock.wait"
        case .lockAcquired: "lock.acquired"
        case .lockReleased: "lock.released"
        case .lockTimeout: "lock.timeout"
        case .lockOwnerDied: "lock.owner-died"
        case .queueNew: "queue.new"
        case .queuePutWait: "queue.put-wait"
        case .queuePut: "queue.put"
        case .queueGetWait: "queue.get-wait"
        case .queueGet: "queue.get"
        case .queueTimeout: "queue.timeout"
        case .queueClose: "queue.close"
        case .queueTaskDone: "queue.task-done"
        case .queueJoinWait: "queue.join-wait"
        case .queueJoinDone: "queue.join-done"
        case .pipeNew: "pipe.new"
        case .pipeSend: "pipe.send"
        case .pipeRecvWait: "pipe.recv-wait"
        case .pipeRecv: "pipe.recv"
        case .pipeClose: "pipe.close"
        case .eventNew: "event.new"
        case .eventSet: "event.set"
        case .eventClear: "event.clear"
        case .eventWait: "event.wait"
        case .eventWake: "event.wake"
        case .conditionNew: "cond.new"
        case .conditionWait: "cond.wait"
        case .conditionWake: "cond.wake"
        case .conditionNotify: "cond.notify"
        case .barrierNew: "barrier.new"
        case .barrierWait: "barrier.wait"
        case .barrierPass: "barrier.pass"
        case .poolNew: "pool.new"
        case .poolSubmit: "pool.submit"
        case .poolTaskStart: "pool.task-start"
        case .poolTaskDone: "pool.task-done"
        case .poolResultWait: "pool.result-wait"
        case .poolResult: "pool.result"
        case .poolClose: "pool.close"
        case .poolTerminate: "pool.terminate"
        case .poolJoinWait: "pool.join-wait"
        case .poolJoinDone: "pool.join-done"
        case .shmCreate: "shm.create"
        case .shmAttach: "shm.attach"
        case .shmUnlink: "shm.unlink"
        case .shmClose: "shm.close"
        case .handleAttach: "handle.attach"
        case .handleClose: "handle.close"
        case .dropped: "dropped"
        case .threadSpawn: "thread.spawn"
        }
    }

    /// JSON keys of the numeric arguments `a`, `b`, `c` (nil: the kind does not use it).
    public var argumentKeys: (a: String?, b: String?, c: String?) {
        switch self {
        case .processStart: ("ppid", "forked", nil)
        case .processExit: ("status", "signal", nil)
        case .threadStart: ("parent", nil, nil)
        case .processSpawn: ("child", "forked", nil)
        case .processFork: ("child", "threads", nil)
        case .processJoinWait, .processTerminate, .processKill: ("child", nil, nil)
        case .processJoinDone: ("child", "status", "signal")
        case .lockNew: ("type", "value", nil)
        case .lockWait: ("timeout", nil, nil)
        case .lockAcquired: ("depth", nil, nil)
        case .lockReleased: ("depth", "owner", nil)
        case .lockOwnerDied: ("owner", nil, nil)
        case .queueNew: ("max", "joinable", nil)
        case .queuePut, .queueGet: ("msg", "size", nil)
        case .queueTimeout: ("op", nil, nil)
        case .queueTaskDone, .queueJoinWait: ("unfinished", nil, nil)
        case .pipeNew: ("duplex", nil, nil)
        case .pipeSend, .pipeRecv: ("msg", "size", "end")
        case .pipeRecvWait, .pipeClose: (nil, nil, "end")
        case .conditionNew: ("lock", nil, nil)
        case .conditionNotify: ("n", nil, nil)
        case .barrierNew: ("parties", nil, nil)
        case .barrierWait: ("index", nil, nil)
        case .poolNew: ("workers", nil, nil)
        case .poolSubmit: ("task", "items", nil)
        case .poolTaskStart, .poolTaskDone, .poolResultWait, .poolResult: ("task", nil, nil)
        case .shmCreate, .shmAttach: ("size", nil, nil)
        case .handleAttach, .handleClose: ("type", nil, "end")
        case .dropped: ("count", nil, nil)
        default: (nil, nil, nil)
        }
    }

    /// True for the events written just before a thread blocks. The recorder flushes the thread's
    /// buffer to the file right after recording one, so a trace cut while the thread is blocked
    /// still shows what it was blocked on.
    public var isWait: Bool {
        switch self {
        case .threadJoinWait, .processJoinWait, .lockWait, .queuePutWait, .queueGetWait, .queueJoinWait,
             .pipeRecvWait, .eventWait, .conditionWait, .barrierWait, .poolResultWait, .poolJoinWait:
            true
        default:
            false
        }
    }

    private static let byName: [String: EventKind] = {
        var table: [String: EventKind] = [:]
        for kind in EventKind.allCases { table[kind.name] = kind }
        return table
    }()

    /// The kind named `name`, or nil for a kind this reader does not know (readers skip those).
    public init?(name: String) {
        guard let kind = EventKind.byName[name] else { return nil }
        self = kind
    }
}

/// The outcome of a blocking operation, under `"r"` in its done event (absent when `ok`).
public enum WaitResult: UInt8, Sendable {
    case ok = 0
    case timeout = 1
    case eof = 2        // pipe end-of-file; queue closed
    case error = 3      // a pool task that threw; a barrier that broke
    case empty = 4      // non-blocking get on an empty queue
    case full = 5       // non-blocking put on a full queue
    case ownerDied = 6

    public var name: String {
        switch self {
        case .ok: "ok"
        case .timeout: "timeout"
        case .eof: "eof"
        case .error: "error"
        case .empty: "empty"
        case .full: "full"
        case .ownerDied: "owner-died"
        }
    }

    public init?(name: String) {
        switch name {
        case "ok": self = .ok
        case "timeout": self = .timeout
        case "eof": self = .eof
        case "error": self = .error
        case "empty": self = .empty
        case "full": self = .full
        case "owner-died": self = .ownerDied
        default: return nil
        }
    }
}

/// `a` of `lock.new`.
public enum LockType: UInt64, Sendable {
    case lock = 0, rlock = 1, semaphore = 2, boundedSemaphore = 3
}

/// `a` of `handle.attach` / `handle.close`: what kind of object the handle is to.
public enum ObjectType: UInt64, Sendable {
    case process = 0, thread = 1, lock = 2, queue = 3, pipe = 4, event = 5, condition = 6, barrier = 7
    case pool = 8, sharedMemory = 9, manager = 10
}
