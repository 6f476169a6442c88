import Glibc

// The ground truth's channel: a raw POSIX shared memory table the harness creates (shm_open, by
// name) and every process of the program maps. Each thread owns one slot and writes it alone
// (which op it is in, on which object, whether it finished) plus its own counters (puts, gets,
// task_done, sends, receives, joins, unread pool errors, locks held); the harness only reads.
// Written with plain stores: x86 keeps them in order, and the harness reads the table only after
// nothing changed for a while (or the program ended).

enum ThreadState: UInt64 {
    case unstarted = 0, running = 1, inOp = 2, finished = 3
}

/// Counter columns per object row (and per child row).
enum Counter: Int {
    /// Queue: items put. Pipe: messages sent on end 0. Child: started. Pool: failed results never read.
    case c0 = 0
    /// Queue: items got. Pipe: messages sent on end 1. Child: joined. Pool: results whose failure
    /// may or may not have been read (its lost errors are not judged).
    case c1 = 1
    /// JoinableQueue: task_done calls. Pipe: received at end 0.
    case c2 = 2
    /// Pipe: received at end 1.
    case c3 = 3
    /// Lock/RLock: depth held by this thread now.
    case held = 4
    /// Lock/RLock: acquires that failed with owner-died.
    case ownerDied = 5
}

struct SlotTable {
    static let magic: UInt64 = 0x7461_6E67_6C65_6731
    static let processWords = 8
    static let slotWords = 8
    static let rows = 12
    static let columns = 6
    static var processes: Int { Generator.maxProcesses }
    static var threads: Int { Generator.maxThreads }
    static var slotCount: Int { processes * threads }
    static var words: Int { 8 + processes * processWords + slotCount * slotWords + slotCount * rows * columns + rows }
    static var bytes: Int { words * 8 }

    let base: UnsafeMutablePointer<UInt64>

    /// Creates (harness) the table under `name` ("/tangle-gen-…"), zeroed.
    static func create(_ name: String) -> SlotTable? {
        shm_unlink(name)
        let fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0o600)
        if fd < 0 { return nil }
        defer { close(fd) }
        if ftruncate(fd, off_t(bytes)) != 0 { return nil }
        guard let t = map(fd) else { return nil }
        t.base[0] = magic
        return t
    }

    /// Maps (program) the table the harness created.
    static func attach(_ name: String) -> SlotTable? {
        let fd = shm_open(name, O_RDWR, 0)
        if fd < 0 { return nil }
        defer { close(fd) }
        guard let t = map(fd), t.base[0] == magic else { return nil }
        return t
    }

    private static func map(_ fd: Int32) -> SlotTable? {
        let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        if p == MAP_FAILED || p == nil { return nil }
        return SlotTable(base: p!.bindMemory(to: UInt64.self, capacity: words))
    }

    func unmap() { munmap(UnsafeMutableRawPointer(base), SlotTable.bytes) }

    // MARK: layout

    private func processBase(_ p: Int) -> UnsafeMutablePointer<UInt64> { base + 8 + p * SlotTable.processWords }
    private func slotIndex(_ t: ThreadRef) -> Int { t.process * SlotTable.threads + t.thread }
    private func slotBase(_ t: ThreadRef) -> UnsafeMutablePointer<UInt64> {
        base + 8 + SlotTable.processes * SlotTable.processWords + slotIndex(t) * SlotTable.slotWords
    }
    private func counterBase(_ t: ThreadRef) -> UnsafeMutablePointer<UInt64> {
        base + 8 + SlotTable.processes * SlotTable.processWords + SlotTable.slotCount * SlotTable.slotWords
            + slotIndex(t) * SlotTable.rows * SlotTable.columns
    }

    // MARK: process rows: [0] pid, [1] 1 once its main thread finished (the process is exiting)

    func setPid(_ p: Int, _ pid: Int32) { processBase(p)[0] = UInt64(pid) }
    func pid(_ p: Int) -> Int32 { Int32(truncatingIfNeeded: processBase(p)[0]) }
    func setExiting(_ p: Int) { processBase(p)[1] = 1 }
    func exiting(_ p: Int) -> Bool { processBase(p)[1] != 0 }

    // MARK: thread slots: [0] version, [1] state, [2] op index, [3] op code, [4] object id, [5] tid

    func publish(_ t: ThreadRef, state: ThreadState, op: Int = 0, code: Int = 0, object: UInt64 = 0) {
        let s = slotBase(t)
        s[1] = state.rawValue
        s[2] = UInt64(op)
        s[3] = UInt64(code)
        s[4] = object
        s[0] &+= 1
    }

    /// Changes only the object of the op in progress (a condition wait first takes its lock).
    func publishObject(_ t: ThreadRef, _ object: UInt64) {
        slotBase(t)[4] = object
        slotBase(t)[0] &+= 1
    }

    /// [5]: the thread's kernel tid, so that the harness can ask the kernel whether it sleeps.
    func setTid(_ t: ThreadRef, _ tid: Int32) { slotBase(t)[5] = UInt64(tid) }
    func tid(_ t: ThreadRef) -> Int32 { Int32(truncatingIfNeeded: slotBase(t)[5]) }

    func version(_ t: ThreadRef) -> UInt64 { slotBase(t)[0] }
    func state(_ t: ThreadRef) -> ThreadState { ThreadState(rawValue: slotBase(t)[1]) ?? .unstarted }
    func opIndex(_ t: ThreadRef) -> Int { Int(slotBase(t)[2]) }
    func opCode(_ t: ThreadRef) -> Int { Int(slotBase(t)[3]) }
    func object(_ t: ThreadRef) -> UInt64 { slotBase(t)[4] }

    // MARK: counters

    func add(_ t: ThreadRef, row: Int, _ c: Counter, _ n: Int = 1) {
        let p = counterBase(t) + row * SlotTable.columns + c.rawValue
        p.pointee = UInt64(bitPattern: Int64(Int64(bitPattern: p.pointee) + Int64(n)))
        slotBase(t)[0] &+= 1
    }

    func counter(_ t: ThreadRef, row: Int, _ c: Counter) -> Int {
        Int(Int64(bitPattern: (counterBase(t) + row * SlotTable.columns + c.rawValue).pointee))
    }

    /// Sum of a counter over every thread.
    func total(row: Int, _ c: Counter) -> Int {
        var n = 0
        for p in 0..<SlotTable.processes {
            for t in 0..<SlotTable.threads { n += counter(ThreadRef(process: p, thread: t), row: row, c) }
        }
        return n
    }

    /// Object ids, past the counters: the main process writes each object's trace id (row = object
    /// index; a child's row holds its process object) so that the harness can compare them.
    func setObjectID(row: Int, _ id: UInt64) { idBase[row] = id }
    func objectID(row: Int) -> UInt64 { idBase[row] }
    private var idBase: UnsafeMutablePointer<UInt64> { base + SlotTable.words - SlotTable.rows }
}
