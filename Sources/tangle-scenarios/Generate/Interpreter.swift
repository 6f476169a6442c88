import Glibc
import Tangle

// The interpreter: runs a generated program for real with the Tangle runtime. The main process
// (`tangle-scenarios gen-run SEED TABLE`) creates every object and starts the children through the
// registered entry point "gen.process" (spawn or fork), handing each the objects its threads use
// in its arguments; every process starts its own threads as TangleThreads. Each thread publishes
// in the slot table which op it is in and what it did (see Slots.swift).

struct GenArgs: Codable {
    var seed: UInt64
    var process: Int
    var table: String
    var handles: GenHandles
}

/// The objects handed to a process, by object index (nil: not handed).
struct GenHandles: Codable {
    var locks: [Lock?]
    var rlocks: [RLock?]
    var semaphores: [Tangle.Semaphore?]
    var bounded: [BoundedSemaphore?]
    var events: [Event?]
    var conditions: [Condition?]
    var barriers: [Barrier?]
    var queues: [Queue<Int>?]
    var joinables: [JoinableQueue<Int>?]
    var end0: [Connection<Int>?]
    var end1: [Connection<Int>?]

    init(count n: Int) {
        locks = Array(repeating: nil, count: n)
        rlocks = Array(repeating: nil, count: n)
        semaphores = Array(repeating: nil, count: n)
        bounded = Array(repeating: nil, count: n)
        events = Array(repeating: nil, count: n)
        conditions = Array(repeating: nil, count: n)
        barriers = Array(repeating: nil, count: n)
        queues = Array(repeating: nil, count: n)
        joinables = Array(repeating: nil, count: n)
        end0 = Array(repeating: nil, count: n)
        end1 = Array(repeating: nil, count: n)
    }

    /// Only the objects (and pipe ends) in `objects` / `ends`.
    func subset(objects: Set<Int>, ends: Set<[Int]>) -> GenHandles {
        var h = GenHandles(count: locks.count)
        for o in objects {
            h.locks[o] = locks[o]; h.rlocks[o] = rlocks[o]; h.semaphores[o] = semaphores[o]
            h.bounded[o] = bounded[o]; h.events[o] = events[o]; h.conditions[o] = conditions[o]
            h.barriers[o] = barriers[o]; h.queues[o] = queues[o]; h.joinables[o] = joinables[o]
            if ends.contains([o, 0]) { h.end0[o] = end0[o] }
            if ends.contains([o, 1]) { h.end1[o] = end1[o] }
        }
        return h
    }
}

struct GenTaskFailure: Error, CustomStringConvertible {
    var description: String { "generated task failed on purpose" }
}

nonisolated(unsafe) var genTaskFunction = PoolFunction<Int, Int>("gen.task")

/// Registers the interpreter's entry point and pool function (before the bootstrap).
func registerGenerateEntryPoints() {
    EntryPoint.register("gen.process") { (args: GenArgs) throws in
        try runGeneratedProcess(args)
    }
    genTaskFunction = PoolFunction.register("gen.task") { (code: Int) -> Int in
        switch TaskFn(rawValue: code) ?? .ok {
        case .ok: return code
        case .fail: throw GenTaskFailure()
        case .block:
            // Blocks in a primitive nobody else holds: a wait the analyzer can see.
            _ = Event(name: "never-set").wait()
            return code
        }
    }
}

/// `tangle-scenarios gen-run SEED TABLE`: the main process of program SEED.
func genRunMain(_ args: [String]) -> Int32 {
    guard args.count == 2, let seed = UInt64(args[0]) else {
        printErr("usage: tangle-scenarios gen-run SEED TABLE\n")
        return 2
    }
    let program = Generator.program(seed: seed)
    guard let table = SlotTable.attach(args[1]) else {
        printErr("tangle-scenarios gen-run: cannot attach the slot table \(args[1])\n")
        return 2
    }
    var handles = GenHandles(count: program.objects.count)
    for (o, d) in program.objects.enumerated() {
        var id: UInt64 = 0
        switch d.kind {
        case .lock: let x = Lock(name: d.name); handles.locks[o] = x; id = x.object
        case .rlock: let x = RLock(name: d.name); handles.rlocks[o] = x; id = x.object
        case .semaphore: let x = Tangle.Semaphore(d.param, name: d.name); handles.semaphores[o] = x; id = x.object
        case .boundedSemaphore: let x = BoundedSemaphore(d.param, name: d.name); handles.bounded[o] = x; id = x.object
        case .event: let x = Event(name: d.name); handles.events[o] = x; id = x.object
        case .condition: let x = Condition(name: d.name); handles.conditions[o] = x; id = x.object
        case .barrier: let x = Barrier(parties: d.param, name: d.name); handles.barriers[o] = x; id = x.object
        case .queue, .boundedQueue: let x = Queue<Int>(maxsize: d.param, name: d.name); handles.queues[o] = x; id = x.object
        case .joinableQueue: let x = JoinableQueue<Int>(name: d.name); handles.joinables[o] = x; id = x.object
        case .pipe, .duplexPipe:
            do {
                let (a, b) = try Tangle.Pipe(Int.self, duplex: d.kind == .duplexPipe)
                handles.end0[o] = a; handles.end1[o] = b; id = a.object
            } catch {
                printErr("gen-run: pipe: \(error)\n")
                return 1
            }
        case .pool: id = 0   // created by its thread
        }
        table.setObjectID(row: o, id)
    }
    let run = ProcessRun(program: program, process: 0, table: table, tableName: args[1], handles: handles)
    run.runProcess()
    return 0
}

func runGeneratedProcess(_ args: GenArgs) throws {
    let program = Generator.program(seed: args.seed)
    guard let table = SlotTable.attach(args.table) else { throw ScenarioFailure("cannot attach \(args.table)") }
    ProcessRun(program: program, process: args.process, table: table, tableName: args.table, handles: args.handles).runProcess()
}

/// The calling thread's kernel tid, from /proc/thread-self (gettid is not in Swift's Glibc).
func currentTid() -> Int32 {
    var buf = [CChar](repeating: 0, count: 64)
    let n = readlink("/proc/thread-self", &buf, buf.count - 1)
    guard n > 0 else { return 0 }
    let s = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return Int32(s.split(separator: "/").last ?? "") ?? 0
}

/// One process of a running program.
final class ProcessRun: @unchecked Sendable {
    let program: Program
    let process: Int
    let table: SlotTable
    let tableName: String
    let handles: GenHandles
    // Used by thread 0 only (children and threads are started and joined there).
    var children: [Int: ChildProcess] = [:]
    var threads: [Int: TangleThread<Never>] = [:]
    // Used by the one thread that runs a pool's ops.
    var pools: [Int: Pool] = [:]
    var results: [Int: (AsyncResult<Int>, TaskFn)] = [:]

    init(program: Program, process: Int, table: SlotTable, tableName: String, handles: GenHandles) {
        self.program = program
        self.process = process
        self.table = table
        self.tableName = tableName
        self.handles = handles
    }

    static func childRow(_ k: Int) -> Int { Generator.maxObjects + k }

    func runProcess() {
        table.setPid(process, getpid())
        runThread(0)
        table.setExiting(process)
    }

    func runThread(_ t: Int) {
        let me = ThreadRef(process: process, thread: t)
        table.setTid(me, currentTid())
        table.publish(me, state: .running)
        for (i, op) in program.processes[process].threads[t].ops.enumerated() {
            table.publish(me, state: .inOp, op: i, code: op.code, object: objectID(op))
            do {
                try execute(op, me)
            } catch SyncError.ownerDied {
                if let o = op.object { table.add(me, row: o, .ownerDied) }
            } catch {
                // The op failed (EOF, an over-released bounded semaphore, a failed map…): it ended.
            }
            table.publish(me, state: .running, op: i + 1)
        }
        // Results never read: a failure counts only once it really happened. (Only the thread that
        // runs a program's pool ops touches `pools` and `results`.)
        let ownsPool = program.processes[process].threads[t].ops.contains { if case .poolCloseJoin = $0 { true } else { $0.code >= 18 && $0.code <= 22 } }
        for (o, _) in ownsPool ? pools : [:] {
            for (_, (r, _)) in results {
                if r.isSuccessful == false { table.add(me, row: o, .c0) } else if !r.isReady { table.add(me, row: o, .c1) }
            }
        }
        table.publish(me, state: .finished, op: program.processes[process].threads[t].ops.count)
    }

    func objectID(_ op: Op) -> UInt64 {
        switch op {
        case let .startChild(k), let .joinChild(k): return table.objectID(row: ProcessRun.childRow(k))
        case let .startThread(t), let .joinThread(t): return threads[t]?.object ?? 0
        case let .poolMap(o, _), let .poolApply(o, _, _), let .poolGet(o, _), let .poolImap(o, _), let .poolCloseJoin(o):
            return pools[o]?.object ?? 0
        default:
            return op.object.map { table.objectID(row: $0) } ?? 0
        }
    }

    private func pool(_ o: Int, _ me: ThreadRef) throws -> Pool {
        if let p = pools[o] { return p }
        let p = try Pool(workers: program.objects[o].param)
        pools[o] = p
        table.setObjectID(row: o, p.object)
        table.publishObject(me, p.object)
        return p
    }

    private func execute(_ op: Op, _ me: ThreadRef) throws {
        let h = handles
        switch op {
        case let .acquire(o):
            if let l = h.locks[o] { try l.acquire(); table.add(me, row: o, .held) }
            else if let l = h.rlocks[o] { try l.acquire(); table.add(me, row: o, .held) }
            else if let s = h.bounded[o] { try s.acquire() }
            else if let s = h.semaphores[o] { try s.acquire() }
        case let .release(o):
            if let l = h.locks[o] { try l.release(); table.add(me, row: o, .held, -1) }
            else if let l = h.rlocks[o] { try l.release(); table.add(me, row: o, .held, -1) }
            else if let s = h.bounded[o] { try s.release() }
            else if let s = h.semaphores[o] { try s.release() }
        case let .set(o): h.events[o]?.set()
        case let .wait(o): _ = h.events[o]?.wait()
        case let .condWait(o):
            guard let c = h.conditions[o] else { return }
            if let l = c.lock as? _LockBase { table.publishObject(me, l.object) }
            try c.acquire()
            table.publishObject(me, c.object)
            defer { try? c.release() }
            _ = try c.wait()
        case let .condNotify(o, all):
            guard let c = h.conditions[o] else { return }
            if let l = c.lock as? _LockBase { table.publishObject(me, l.object) }
            try c.acquire()
            table.publishObject(me, c.object)
            defer { try? c.release() }
            if all { try c.notifyAll() } else { try c.notify() }
        case let .barrierWait(o): _ = try h.barriers[o]?.wait()
        case let .put(o):
            if let q = h.joinables[o] { try q.put(o) } else if let q = h.queues[o] { try q.put(o) } else { return }
            table.add(me, row: o, .c0)
        case let .get(o):
            if let q = h.joinables[o] { _ = try q.get() } else if let q = h.queues[o] { _ = try q.get() } else { return }
            table.add(me, row: o, .c1)
        case let .taskDone(o):
            guard let q = h.joinables[o] else { return }
            // Counted first: task_done never blocks, and a join it releases may end the process
            // before this thread gets to count it.
            table.add(me, row: o, .c2)
            try q.taskDone()
        case let .joinQueue(o): try h.joinables[o]?.join()
        case let .send(o, e):
            guard let c = e == 0 ? h.end0[o] : h.end1[o] else { return }
            try c.send(e)
            table.add(me, row: o, e == 0 ? .c0 : .c1)
        case let .recv(o, e):
            guard let c = e == 0 ? h.end0[o] : h.end1[o] else { return }
            _ = try c.recv()
            table.add(me, row: o, e == 0 ? .c2 : .c3)
        case let .closeEnd(o, e):
            (e == 0 ? h.end0[o] : h.end1[o])?.close()
        case let .startChild(k):
            let decl = program.processes[k]
            let args = GenArgs(seed: program.seed, process: k, table: tableName,
                               handles: h.subset(objects: program.objectsUsed(by: k), ends: program.endsUsed(by: k)))
            let child = ChildProcess(entryPoint: "gen.process", arguments: args, name: decl.name, method: decl.fork ? .fork : .spawn)
            table.setObjectID(row: ProcessRun.childRow(k), child.object)
            table.publishObject(me, child.object)
            children[k] = child
            try child.start()
            table.add(me, row: ProcessRun.childRow(k), .c0)
        case let .joinChild(k):
            guard let child = children[k] else { return }
            _ = child.join()
            table.add(me, row: ProcessRun.childRow(k), .c1)
        case let .startThread(t):
            let thread = TangleThread(name: "T\(t)") { [self] in runThread(t) }
            threads[t] = thread
            table.publishObject(me, thread.object)
            thread.start()
        case let .joinThread(t):
            threads[t]?.join()
        case let .poolMap(o, fns):
            // map throws at the first failed chunk; a second failure may come after it and then
            // nobody reads it. Whether it does is timing: the pool's lost errors are not judged.
            if fns.filter({ $0 == .fail }).count >= 2 { table.add(me, row: o, .c1) }
            _ = try pool(o, me).map(genTaskFunction, fns.map(\.rawValue))
        case let .poolImap(o, fns):
            for r in try pool(o, me).imapUnordered(genTaskFunction, fns.map(\.rawValue)) { _ = r }
        case let .poolApply(o, fn, slot):
            results[slot] = (try pool(o, me).applyAsync(genTaskFunction, fn.rawValue), fn)
        case let .poolGet(_, slot):
            guard let (r, _) = results.removeValue(forKey: slot) else { return }
            _ = try r.get()
        case let .poolCloseJoin(o):
            let p = try pool(o, me)
            p.close()
            p.join()
        }
    }
}
