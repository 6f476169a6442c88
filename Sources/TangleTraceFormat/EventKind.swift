/// Every kind of event of the trace format (docs/trace-format.md). What each kind means — its name,
/// arguments, object, and whether and how it begins or ends a wait — is its row in `EventSpec`'s
/// table (`kind.spec`); the comments here only group the cases.
///
/// The raw value is what the recorder stores in its fixed binary record and what indexes the
/// table. It never leaves the process (files carry the kind's name), so renumbering between
/// builds is safe; the name is what must never change.
public enum EventKind: UInt16, CaseIterable, Sendable {
    // Processes and threads.
    case processStart = 1
    case processExit
    case threadStart
    case threadExit
    case threadJoinWait
    case threadJoinDone
    case processSpawn
    case processFork
    case processJoinWait
    case processJoinDone
    case processTerminate
    case processKill

    // Locks: Lock, RLock, Semaphore, BoundedSemaphore share these.
    case lockNew
    case lockWait
    case lockAcquired
    case lockReleased
    case lockTimeout
    case lockOwnerDied

    // Queues and JoinableQueues.
    case queueNew
    case queuePutWait
    case queuePut
    case queueGetWait
    case queueGet
    case queueTimeout
    case queueClose
    case queueTaskDone
    case queueJoinWait
    case queueJoinDone

    // Pipes.
    case pipeNew
    case pipeSend
    case pipeRecvWait
    case pipeRecv
    case pipeClose

    // Events, conditions, barriers.
    case eventNew
    case eventSet
    case eventClear
    case eventWait
    case eventWake
    case conditionNew
    case conditionWait
    case conditionWake
    case conditionNotify
    case barrierNew
    case barrierWait
    case barrierPass

    // Pools.
    case poolNew
    case poolSubmit
    case poolTaskStart
    case poolTaskDone
    case poolResultWait
    case poolResult
    case poolClose
    case poolTerminate
    case poolJoinWait
    case poolJoinDone

    // Shared memory.
    case shmCreate
    case shmAttach
    case shmUnlink
    case shmClose

    // Handles: a process gained or gave up its access to an object.
    case handleAttach
    case handleClose

    // Recorder bookkeeping.
    case dropped

    // Added by later schemas (appended only so that the list reads as history).
    case threadSpawn          // schema 3
    case poolTaskWait         // schema 4
    case poolTaskSend         // schema 4

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
