import Glibc
import XCTest
@testable import Tangle
import TangleRecorder

// Entry points the primitives tests run in spawned children (docs/runtime.md "Starting children
// from tests"): registered by this hook in the child before it looks its entry point up.
func primitivesTestEntryPoints() {
    objectNameTestEntryPoints()
    EntryPoint.register("prim.lock.count") { (a: LockCountArgs) in
        let shm = try SharedMemory(attach: a.shmName)
        let counter = shm.buffer(of: Int.self)
        for _ in 0..<a.times {
            try a.lock.withLock { counter[0] += 1 }
        }
        shm.close()
    }
    EntryPoint.register("prim.lock.hold") { (a: LockHoldArgs) in
        try a.lock.acquire()
        // It sleeps outside Tangle (no wait event flushes its buffer) and is SIGKILLed as soon as
        // `ready` is set: flush first so the trace keeps its acquire (the recorder otherwise
        // flushes every ~50 ms).
        Recorder.flush()
        a.ready.set()
        while true { sleep(1) }
    }
    EntryPoint.register("prim.rlock.hold") { (a: RLockHoldArgs) in
        try a.lock.acquire()
        try a.lock.acquire()
        a.ready.set()
        while true { sleep(1) }
    }
    EntryPoint.register("prim.queue.produce") { (a: QueueProduceArgs) in
        for i in 0..<a.count { try a.queue.put(a.base + i) }
    }
    EntryPoint.register("prim.queue.consume") { (a: QueueConsumeArgs) in
        var sum = 0
        while true {
            let v = try a.queue.get()
            try a.queue.taskDone()
            if v < 0 { break }
            sum += v
        }
        try a.results.put(sum)
    }
    EntryPoint.register("prim.pipe.send") { (a: PipeSendArgs) in
        for i in 0..<a.count { try a.conn.send("message \(i)") }
        a.conn.close()
    }
    EntryPoint.register("prim.pipe.echo") { (a: PipeEchoArgs) in
        while true {
            let s: String
            do { s = try a.conn.recv() } catch PipeError.eof { break }
            try a.conn.send(s.uppercased())
        }
    }
    EntryPoint.register("prim.event") { (a: EventArgs) in
        a.go.wait()
        try a.cond.withLock {
            a.flag[0] = 1
            try a.cond.notifyAll()
        }
        a.done.set()
    }
    EntryPoint.register("prim.barrier") { (a: BarrierArgs) in
        _ = try a.barrier.wait(timeout: .seconds(20))
        try a.results.put(1)
    }
    EntryPoint.register("prim.shm.write") { (a: ShmArgs) in
        let shm = a.shm
        let view = shm.buffer(of: UInt32.self)
        for i in 0..<view.count { view[i] = UInt32(i) * 3 }
        shm.close()
    }
    EntryPoint.register("prim.trace.workload") { (n: Int) in
        let q = Queue<Int>(name: "trace-q")
        let lock = Lock(name: "trace-lock")
        let (rx, tx) = try Pipe(String.self, duplex: false)
        let ready = Event(name: "trace-event")
        let producer = ChildProcess(entryPoint: "prim.queue.produce", arguments: QueueProduceArgs(queue: q, count: n, base: 0))
        try producer.start()
        for _ in 0..<n { _ = try q.get(timeout: .seconds(30)) }
        _ = producer.join(timeout: .seconds(30))
        for _ in 0..<10 { try lock.withLock {} }
        let sender = ChildProcess(fork: {
            rx.close()
            ready.wait()
            for i in 0..<5 { try tx.send("m\(i)") }
            tx.close()
        })
        try sender.start()
        tx.close()
        ready.set()
        while true {
            do { _ = try rx.recv(timeout: .seconds(30)) } catch PipeError.eof { break }
        }
        _ = sender.join(timeout: .seconds(30))
        // An owner SIGKILLed while holding a lock: the trace shows its acquire, no release, and the
        // survivor's lock.owner-died naming it.
        let doomed = Lock(name: "trace-doomed")
        let held = Event()
        let holder = ChildProcess(entryPoint: "prim.lock.hold", arguments: LockHoldArgs(lock: doomed, ready: held))
        try holder.start()
        guard held.wait(timeout: .seconds(30)) else { throw SyncError.timeout(object: held.object, what: "event") }
        holder.kill()
        _ = holder.join(timeout: .seconds(30))
        do { try doomed.acquire() } catch SyncError.ownerDied {}
        try doomed.acquire()
        try doomed.release()
    }
    EntryPoint.register("prim.manager") { (a: ManagerArgs) in
        for i in 0..<a.times {
            try a.dict.update("n", default: 0) { $0 += 1 }
            try a.list.append(a.tag * 1000 + i)
        }
    }
}

struct LockCountArgs: Codable { var lock: Lock; var shmName: String; var times: Int }
struct LockHoldArgs: Codable { var lock: Lock; var ready: Event }
struct RLockHoldArgs: Codable { var lock: RLock; var ready: Event }
struct QueueProduceArgs: Codable { var queue: Queue<Int>; var count: Int; var base: Int }
struct QueueConsumeArgs: Codable { var queue: JoinableQueue<Int>; var results: Queue<Int> }
struct PipeSendArgs: Codable { var conn: Connection<String>; var count: Int }
struct PipeEchoArgs: Codable { var conn: Connection<String> }
struct EventArgs: Codable { var go: Event; var done: Event; var cond: Condition; var flag: SharedList<Int> }
struct BarrierArgs: Codable { var barrier: Barrier; var results: Queue<Int> }
struct ShmArgs: Codable { var shm: SharedMemory }
struct ManagerArgs: Codable { var dict: SharedDictionary<String, Int>; var list: SharedList<Int>; var times: Int; var tag: Int }

/// Starts a spawned child running `entry` with `args`, returning it started.
func startChild<A: Encodable>(_ entry: String, _ args: A, method: ChildProcess.StartMethod = .spawn) throws -> ChildProcess {
    let child = ChildProcess(entryPoint: entry, arguments: args, method: method)
    try child.start()
    return child
}

/// Joins `child` (at most 30 s) and checks it exited with status 0.
func assertExitsCleanly(_ child: ChildProcess, file: StaticString = #filePath, line: UInt = #line) {
    let status = child.join(timeout: .seconds(30))
    XCTAssertEqual(status, .exited(0), "child \(child.name) ended with \(String(describing: status))", file: file, line: line)
    if status == nil { child.kill(); _ = child.join(timeout: .seconds(5)) }
}
