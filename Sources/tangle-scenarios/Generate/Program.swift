// A generated program is data: processes → threads → op lists over named objects. The generator
// builds it from a seed, the interpreter runs it, and `text` prints it so that a mismatch can be
// read and replayed (`tangle-scenarios generate --count 1 --seed S`).

/// The kinds of object a program uses. Every primitive of the runtime has one (children and
/// threads are not objects: they are the program's processes and threads).
enum ObjKind: String, CaseIterable, Sendable {
    case lock, rlock, semaphore, boundedSemaphore = "bounded-semaphore", event, condition, barrier
    case queue, boundedQueue = "bounded-queue", joinableQueue = "joinable-queue"
    case pipe = "pipe-one-way", duplexPipe = "pipe-duplex", pool

    var isLock: Bool { self == .lock || self == .rlock }
    var isQueue: Bool { self == .queue || self == .boundedQueue || self == .joinableQueue }
    var isPipe: Bool { self == .pipe || self == .duplexPipe }
    var letter: String {
        switch self {
        case .lock: "L"
        case .rlock: "R"
        case .semaphore: "S"
        case .boundedSemaphore: "B"
        case .event: "E"
        case .condition: "C"
        case .barrier: "X"
        case .queue, .boundedQueue: "Q"
        case .joinableQueue: "J"
        case .pipe, .duplexPipe: "W"
        case .pool: "Pool"
        }
    }
}

/// One object: its kind, its parameter (semaphore value, barrier parties, queue maxsize, pool
/// workers) and its name (also its name in the trace).
struct ObjDecl: Sendable {
    var kind: ObjKind
    var param: Int
    var name: String

    var text: String {
        switch kind {
        case .semaphore, .boundedSemaphore: "\(name) = \(kind.rawValue)(\(param))"
        case .barrier: "\(name) = barrier(parties: \(param))"
        case .boundedQueue: "\(name) = queue(maxsize: \(param))"
        case .pool: "\(name) = pool(workers: \(param))"
        default: "\(name) = \(kind.rawValue)"
        }
    }
}

/// What a pool task does with its input: return it, throw, or block forever on an Event nobody else
/// holds (so that the worker is really blocked in a primitive, not sleeping).
enum TaskFn: Int, Sendable {
    case ok = 0, fail = 1, block = 2
    var text: String { ["ok", "fail", "block"][rawValue] }
}

/// One operation of a thread. Object operands are indexes into `Program.objects`; `child` is a
/// process index (1...), `thread` a thread index in the same process (1...).
enum Op: Sendable {
    case acquire(Int), release(Int)
    case set(Int), wait(Int)
    /// Takes the condition's lock, waits (no predicate, no timeout), releases.
    case condWait(Int)
    /// Takes the condition's lock, notifies one or all, releases.
    case condNotify(Int, all: Bool)
    case barrierWait(Int)
    case put(Int), get(Int), taskDone(Int), joinQueue(Int)
    /// Send on / receive from end 0 or 1 of a pipe (messages sent on one end arrive at the other).
    case send(Int, end: Int), recv(Int, end: Int)
    case startChild(Int), joinChild(Int)
    case startThread(Int), joinThread(Int)
    /// `map` over one item per function (throws when one fails).
    case poolMap(Int, [TaskFn])
    /// `applyAsync` of one task; `slot` names its AsyncResult for a later `poolGet`.
    case poolApply(Int, TaskFn, slot: Int)
    case poolGet(Int, slot: Int)
    /// `imapUnordered` over one item per function, every result read.
    case poolImap(Int, [TaskFn])
    /// `close()` then `join()`.
    case poolCloseJoin(Int)
    /// Closes this process's handle of a pipe end it does not use.
    case closeEnd(Int, end: Int)

    /// The object the op concerns (nil for children and threads).
    var object: Int? {
        switch self {
        case let .acquire(o), let .release(o), let .set(o), let .wait(o), let .condWait(o), let .condNotify(o, _),
             let .barrierWait(o), let .put(o), let .get(o), let .taskDone(o), let .joinQueue(o),
             let .send(o, _), let .recv(o, _), let .poolMap(o, _), let .poolApply(o, _, _), let .poolGet(o, _),
             let .poolImap(o, _), let .poolCloseJoin(o), let .closeEnd(o, _):
            return o
        case .startChild, .joinChild, .startThread, .joinThread:
            return nil
        }
    }

    /// A short code for the slot table and the text.
    var code: Int {
        switch self {
        case .acquire: 1
        case .release: 2
        case .set: 3
        case .wait: 4
        case .condWait: 5
        case .condNotify: 6
        case .barrierWait: 7
        case .put: 8
        case .get: 9
        case .taskDone: 10
        case .joinQueue: 11
        case .send: 12
        case .recv: 13
        case .startChild: 14
        case .joinChild: 15
        case .startThread: 16
        case .joinThread: 17
        case .poolMap: 18
        case .poolApply: 19
        case .poolGet: 20
        case .poolImap: 21
        case .poolCloseJoin: 22
        case .closeEnd: 23
        }
    }

    func text(_ p: Program) -> String {
        func n(_ o: Int) -> String { p.objects[o].name }
        func fns(_ f: [TaskFn]) -> String { "[" + f.map(\.text).joined(separator: ", ") + "]" }
        switch self {
        case let .acquire(o): return "acquire \(n(o))"
        case let .release(o): return "release \(n(o))"
        case let .set(o): return "set \(n(o))"
        case let .wait(o): return "wait \(n(o))"
        case let .condWait(o): return "cond-wait \(n(o))"
        case let .condNotify(o, all): return all ? "notify-all \(n(o))" : "notify \(n(o))"
        case let .barrierWait(o): return "barrier-wait \(n(o))"
        case let .put(o): return "put \(n(o))"
        case let .get(o): return "get \(n(o))"
        case let .taskDone(o): return "task-done \(n(o))"
        case let .joinQueue(o): return "join \(n(o))"
        case let .send(o, e): return "send \(n(o)).\(e)"
        case let .recv(o, e): return "recv \(n(o)).\(e)"
        case let .startChild(c): return "start \(p.processes[c].name) (\(p.processes[c].fork ? "fork" : "spawn"))"
        case let .joinChild(c): return "join \(p.processes[c].name)"
        case let .startThread(t): return "start thread T\(t)"
        case let .joinThread(t): return "join thread T\(t)"
        case let .poolMap(o, f): return "map \(n(o)) \(fns(f))"
        case let .poolApply(o, f, s): return "r\(s) = apply-async \(n(o)) \(f.text)"
        case let .poolGet(_, s): return "get r\(s)"
        case let .poolImap(o, f): return "imap-unordered \(n(o)) \(fns(f))"
        case let .poolCloseJoin(o): return "close+join \(n(o))"
        case let .closeEnd(o, e): return "close \(n(o)).\(e)"
        }
    }
}

struct ThreadDecl: Sendable {
    var ops: [Op]
}

struct ProcessDecl: Sendable {
    var name: String
    /// Started by fork (true) or spawn (false); the main process is neither.
    var fork: Bool
    var threads: [ThreadDecl]
}

struct Program: Sendable {
    var seed: UInt64
    var objects: [ObjDecl]
    /// processes[0] is the main process; it creates every object and starts every child.
    var processes: [ProcessDecl]

    /// The objects each process uses (it is handed those, and only those, when it starts).
    func objectsUsed(by process: Int) -> Set<Int> {
        var s = Set<Int>()
        for t in processes[process].threads { for op in t.ops { if let o = op.object { s.insert(o) } } }
        return s
    }

    /// The pipe ends each process uses (object, end).
    func endsUsed(by process: Int) -> Set<[Int]> {
        var s = Set<[Int]>()
        for t in processes[process].threads {
            for op in t.ops {
                switch op {
                case let .send(o, e), let .recv(o, e): s.insert([o, e])
                default: break
                }
            }
        }
        return s
    }

    /// The program as text: objects, then each process and thread with numbered ops.
    var text: String {
        var out = "program seed \(seed): \(processes.count) processes, \(objects.count) objects\n"
        out += "  objects: " + objects.map(\.text).joined(separator: "; ") + "\n"
        for p in processes {
            out += "  \(p.name)\(p.name == "P0" ? " (main)" : p.fork ? " (fork)" : " (spawn)")\n"
            for (ti, t) in p.threads.enumerated() {
                let ops = t.ops.enumerated().map { "\($0.offset):\($0.element.text(self))" }
                out += "    T\(ti): " + (ops.isEmpty ? "(nothing)" : ops.joined(separator: "; ")) + "\n"
            }
        }
        return out
    }
}
