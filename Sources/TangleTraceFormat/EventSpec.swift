/// The one declared model of the trace's events: for every kind, its name, its arguments, the
/// object it concerns, and — for the kinds that block — how the wait ends and who can end it.
///
/// Everything that needs to know what a kind means reads it here: the writer and the reader (names
/// and argument keys), the recorder (which kinds flush before blocking), the analyzer (when a
/// thread is blocked, which event ends its wait, who can wake it) and docs/analyzers.md (its table
/// of waits is `EventSpec.waitsTable()`, checked by a test). Adding a primitive is one row per
/// kind here plus its runtime code. Modelled on Go's `internal/trace/tracev2/events.go`.
public struct EventSpec: Sendable {
    public let kind: EventKind
    /// The name under `"k"` in a JSON line.
    public let name: String
    /// The meanings of the numeric arguments `a`, `b`, `c` (nil: unused; written as `a`/`b`/`c`).
    public let arguments: [EventArgument?]
    /// What `o` names.
    public let object: ObjectType?
    /// Set for the kinds written just before a thread blocks: who can end the wait.
    public let wakers: WakerRule?
    /// For a wait: the kinds of the same thread that end it (its done, timeout, error or
    /// end-of-file event), on the same object. A thread's exit ends every wait (that is not a wake).
    public let endedBy: [EventKind]
    /// For a wait: the kinds the same thread may record while the wait is still pending (a
    /// condition wait releases and re-takes its lock). Any other event of that thread proves the
    /// thread ran although the wait's end is missing: the analyzer ends the wait and says so.
    public let inside: [EventKind]
    /// One line for docs: what the kind records.
    public let summary: String

    /// True for the kinds written just before a thread blocks. The recorder flushes the thread's
    /// buffer right after recording one, so a trace cut while the thread is blocked still shows
    /// what it was blocked on.
    public var beginsWait: Bool { wakers != nil }

    /// The JSON key of argument slot `i` (0 = `a`).
    public func key(_ i: Int) -> String? { arguments[i]?.rawValue }

    init(_ kind: EventKind, _ name: String, _ arguments: [EventArgument?] = [nil, nil, nil],
         object: ObjectType? = nil, wakers: WakerRule? = nil, endedBy: [EventKind] = [],
         inside: [EventKind] = [], _ summary: String) {
        precondition(arguments.count == 3)
        self.kind = kind
        self.name = name
        self.arguments = arguments
        self.object = object
        self.wakers = wakers
        self.endedBy = endedBy
        self.inside = inside
        self.summary = summary
    }
}

/// The meaning of a numeric argument; the raw value is its JSON key.
public enum EventArgument: String, Sendable, CaseIterable {
    case ppid, forked, status, signal, parent, `internal`, child, threads
    case type, value, timeout, depth, owner
    case max, joinable, msg, size, op, unfinished
    case duplex, end, lock, n, parties, index, workers, task, items, count, all, batch, worker
}

/// Who can end a wait: the wakers rule. AND rules name one waker that must act; OR rules name a
/// set of which any one may act. "Live" means a thread or process that has not ended.
public enum WakerRule: String, Sendable, CaseIterable {
    /// AND: the thread that owns the lock (a semaphore: OR, any live holder of a handle that released it or could).
    case lockOwner = "lock owner"
    /// OR: any live holder of the queue's handle that can still put (not closed for putting).
    case queuePutters = "queue putters"
    /// OR: any live holder of the queue's handle that can get (frees room).
    case queueGetters = "queue getters"
    /// OR: any live holder of the queue that got items and may call task_done.
    case queueTaskDone = "task_done callers"
    /// OR: any live holder of the other end of the pipe; none left means end-of-file (not a hang).
    case pipeWriters = "pipe writers"
    /// OR: any live holder of the event's handle (set).
    case eventSetters = "event setters"
    /// OR: any live holder of the condition's handle (notify).
    case conditionNotifiers = "condition notifiers"
    /// The parties that have not arrived: live holders of the barrier not waiting on it.
    case barrierAbsentees = "barrier parties not arrived"
    /// AND: the child process being joined.
    case child
    /// AND: the thread being joined.
    case thread
    /// The worker running the task (every worker of the pool while nobody started it).
    case poolTaskWorkers = "workers running the task"
    /// The pool's workers (a pool join ends when they have exited).
    case poolWorkers = "pool workers"
    /// A worker waiting for its next task: woken by the owner's submit, or — once the pool is
    /// closed — by the shutdown that follows the last running task's end.
    case poolOwner = "pool owner, or the workers finishing the last tasks"

    /// An idle wait: the waiter has nothing of the program's to do (a pool worker between tasks).
    /// It counts as blocked, so that the rest can be seen to be stuck, but it is never a member of
    /// a finding: it is waiting for work, not for a result.
    public var isIdle: Bool { self == .poolOwner }
}

extension EventKind {
    /// This kind's row of the table.
    @inline(__always) public var spec: EventSpec { EventSpec.table[Int(rawValue)] }

    /// The name under `"k"` in the JSON line.
    public var name: String { spec.name }

    /// JSON keys of the numeric arguments `a`, `b`, `c` (nil: the kind does not name it).
    public var argumentKeys: (a: String?, b: String?, c: String?) {
        let s = spec
        return (s.key(0), s.key(1), s.key(2))
    }

    /// True for the events written just before a thread blocks: `spec.beginsWait`, spelled as a
    /// switch so that the recorder's hot path folds it away for a constant kind (a table load
    /// would cost the traced lock pair a few ns). `EventSpecTests` checks the two agree.
    @inline(__always) public var isWait: Bool {
        switch self {
        case .threadJoinWait, .processJoinWait, .lockWait, .queuePutWait, .queueGetWait, .queueJoinWait,
             .pipeRecvWait, .eventWait, .conditionWait, .barrierWait, .poolResultWait, .poolJoinWait, .poolTaskWait:
            true
        default:
            false
        }
    }
}

extension TraceEvent {
    /// The argument with this meaning (0 when the kind does not carry it). Passes read arguments
    /// by meaning through this, never by position.
    @inline(__always) public subscript(_ argument: EventArgument) -> UInt64 {
        switch EventSpec.slot(kind, argument) {
        case 0: a
        case 1: b
        case 2: c
        default: 0
        }
    }

    /// An argument that holds a pid (`child`, `owner`, `ppid`).
    @inline(__always) public func pid(_ argument: EventArgument) -> Int32 {
        Int32(truncatingIfNeeded: self[argument])
    }

    /// An argument that holds a 32-bit status or signal.
    @inline(__always) public func int32(_ argument: EventArgument) -> Int32 {
        Int32(truncatingIfNeeded: self[argument])
    }

    /// The pipe end the event is about (0 or 1).
    @inline(__always) public var pipeEnd: Int { Int(self[.end] & 1) }
}

extension EventSpec {
    /// Every kind's row, indexed by raw value (index 0 unused).
    public static let table: [EventSpec] = {
        var rows = [EventSpec?](repeating: nil, count: EventKind.allCases.map { Int($0.rawValue) }.max()! + 1)
        for s in specs { rows[Int(s.kind.rawValue)] = s }
        for k in EventKind.allCases { precondition(rows[Int(k.rawValue)] != nil, "no spec for \(k)") }
        rows[0] = rows[1]
        return rows.map { $0! }
    }()

    /// slot[kind * argumentCount + argument]: 0, 1, 2 or -1 (not carried).
    private static let slots: [Int8] = {
        let n = EventArgument.allCases.count
        var out = [Int8](repeating: -1, count: table.count * n)
        for (raw, s) in table.enumerated() {
            for (i, a) in s.arguments.enumerated() {
                if let a, let j = EventArgument.allCases.firstIndex(of: a) { out[raw * n + j] = Int8(i) }
            }
        }
        return out
    }()

    private static let argumentIndex: [EventArgument: Int] = {
        var d: [EventArgument: Int] = [:]
        for (i, a) in EventArgument.allCases.enumerated() { d[a] = i }
        return d
    }()

    @inline(__always) static func slot(_ kind: EventKind, _ argument: EventArgument) -> Int8 {
        slots.withUnsafeBufferPointer { $0[Int(kind.rawValue) * EventArgument.allCases.count + argumentOrdinal(argument)] }
    }

    @inline(__always) static func argumentOrdinal(_ a: EventArgument) -> Int {
        switch a {
        case .ppid: 0
        case .forked: 1
        case .status: 2
        case .signal: 3
        case .parent: 4
        case .internal: 5
        case .child: 6
        case .threads: 7
        case .type: 8
        case .value: 9
        case .timeout: 10
        case .depth: 11
        case .owner: 12
        case .max: 13
        case .joinable: 14
        case .msg: 15
        case .size: 16
        case .op: 17
        case .unfinished: 18
        case .duplex: 19
        case .end: 20
        case .lock: 21
        case .n: 22
        case .parties: 23
        case .index: 24
        case .workers: 25
        case .task: 26
        case .items: 27
        case .count: 28
        case .all: 29
        case .batch: 30
        case .worker: 31
        }
    }

    /// The kinds that end `wait` (its own done, timeout, error or end-of-file events).
    public static func ends(_ end: EventKind, wait: EventKind) -> Bool {
        table[Int(wait.rawValue)].endedBy.contains(end)
    }
}

extension EventSpec {
    /// The table of waits in docs/analyzers.md, made from the rows (a test checks the doc has it).
    public static func waitsTable() -> String {
        var lines = [
            "| wait | on | wakers (who can end it) | ended by | may happen inside it |",
            "| --- | --- | --- | --- | --- |",
        ]
        for s in table.dropFirst() where s.beginsWait {
            let on = s.object.map { "\($0)" } ?? "—"
            let wakers = (s.wakers?.rawValue ?? "") + ((s.wakers?.isIdle ?? false) ? " (idle: never in a finding)" : "")
            let ends = s.endedBy.map { "`\($0.name)`" }.joined(separator: ", ")
            let inside = s.inside.isEmpty ? "—" : s.inside.map { "`\($0.name)`" }.joined(separator: ", ")
            lines.append("| `\(s.name)` | \(on) | \(wakers) | \(ends) | \(inside) |")
        }
        return lines.joined(separator: "\n")
    }

    /// The table of kinds in docs/trace-format.md, made from the rows (a test checks the doc has it).
    public static func kindsTable() -> String {
        var lines = [
            "| kind (`k`) | `a` key | `b` key | `c` key | `o` | wait: ended by | meaning |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for s in table.dropFirst() {
            let keys = (0..<3).map { s.key($0).map { "`\($0)`" } ?? "—" }
            let o = s.object.map { "\($0)" } ?? "—"
            let wait = s.beginsWait ? s.endedBy.map { "`\($0.name)`" }.joined(separator: ", ") : ""
            lines.append("| `\(s.name)` | \(keys[0]) | \(keys[1]) | \(keys[2]) | \(o) | \(wait) | \(s.summary) |")
        }
        return lines.joined(separator: "\n")
    }
}
