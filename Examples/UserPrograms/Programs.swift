import Glibc
import Tangle

// MARK: Entry points of the children (registered before the bootstrap)

struct Job: Codable { var id: Int; var payload: String }

struct LedgerArgs: Codable { var ledger: Lock; var ready: Event }

struct RingArgs: Codable { var mine: Lock; var next: Lock; var ready: Barrier }

/// Each task parses its record and waits for a `commit` event that only exists inside the worker:
/// a stand-in for a task that blocks on something nobody will ever provide.
nonisolated(unsafe) var parseRecord = PoolFunction<Int, Int>("ex.parse-record")
nonisolated(unsafe) var checkRecord = PoolFunction<Int, Int>("ex.check-record")

struct InvalidRecord: Error, CustomStringConvertible {
    let id: Int
    var description: String { "record \(id) is invalid" }
}

/// Registers the children's entry points and pool functions (before the bootstrap).
func registerExampleEntryPoints() {
    EntryPoint.register("ex.bookkeeper") { (args: LedgerArgs) in
        try args.ledger.acquire()          // updates the ledger…
        args.ready.set()
        while true { sleep(60) }           // …and is terminated by its parent before it releases it
    }

    EntryPoint.register("ex.ring-member") { (args: RingArgs) in
        try args.mine.acquire()
        _ = try args.ready.wait()          // everyone holds its own lock now
        try args.next.acquire()            // and wants the next one: a ring
        try args.next.release()
        try args.mine.release()
    }

    parseRecord = PoolFunction.register("ex.parse-record") { (id: Int) -> Int in
        let commit = Event(name: "commit-\(id)")
        commit.wait()                      // bug: nobody else has this event
        return id
    }

    checkRecord = PoolFunction.register("ex.check-record") { (id: Int) -> Int in
        if id % 3 == 0 { throw InvalidRecord(id: id) }
        return id * 10
    }
}


// MARK: The programs

/// A job queue guarded by a Condition; the dispatcher returns early on an empty batch and never
/// notifies, so the worker thread waits forever.
func conditionNeverNotified() throws {
    let lock = Lock(name: "jobs-lock")
    let jobsReady = Condition(lock: lock, name: "jobs-ready")
    nonisolated(unsafe) var jobs: [Job] = []
    let worker = TangleThread(name: "job-worker") {
        do {
            try lock.acquire()
            while jobs.isEmpty { try jobsReady.wait() }
            jobs.removeAll()
            try lock.release()
        } catch {
            print("worker: \(error)")
        }
    }
    worker.start()
    let batch: [Job] = []
    if !batch.isEmpty {                // bug: the empty batch skips the notify below
        try lock.acquire()
        jobs.append(contentsOf: batch)
        try jobsReady.notifyAll()
        try lock.release()
    }
    worker.join()
}

/// Three parties are expected at the start line, but only two runner threads are started.
func barrierTooFewParties() throws {
    let startLine = Barrier(parties: 3, name: "start-line")
    var runners: [TangleThread<Never>] = []
    for i in 0..<2 {
        let t = TangleThread(name: "runner-\(i)") {
            _ = try? startLine.wait()
        }
        t.start()
        runners.append(t)
    }
    for t in runners { t.join() }
}

/// Every pool task blocks; the main process waits for the map's results.
func poolTasksHang() throws {
    let pool = try Pool(workers: 2)
    let parsed = try pool.map(parseRecord, [1, 2, 3, 4], chunkSize: 1)
    print(parsed)
    pool.close()
    pool.join()
}

/// Every result of imapUnordered is read, failures included: nothing is lost.
func poolErrorsAllRead() throws {
    let pool = try Pool(workers: 2)
    var ok = 0, failed = 0
    for result in try pool.imapUnordered(checkRecord, Array(1...9)) {
        switch result {
        case .success: ok += 1
        case .failure: failed += 1
        }
    }
    pool.close()
    pool.join()
    print("checked: \(ok) ok, \(failed) failed")
}

/// Three workers each take their own lock, then the next one's: a ring of three, with the main
/// process joining them behind it.
func lockRing() throws {
    let locks = (0..<3).map { Lock(name: "account-\($0)") }
    let ready = Barrier(parties: 3, name: "all-hold")
    var members: [ChildProcess] = []
    for i in 0..<3 {
        let p = ChildProcess(entryPoint: "ex.ring-member",
                             arguments: RingArgs(mine: locks[i], next: locks[(i + 1) % 3], ready: ready),
                             name: "teller-\(i)")
        try p.start()
        members.append(p)
    }
    for p in members { _ = p.join() }
}

/// The parent terminates a bookkeeper that holds the ledger lock, then takes the lock itself.
func terminateLockOwner() throws {
    let ledger = Lock(name: "ledger")
    let ready = Event(name: "bookkeeper-ready")
    let keeper = ChildProcess(entryPoint: "ex.bookkeeper", arguments: LedgerArgs(ledger: ledger, ready: ready), name: "bookkeeper")
    try keeper.start()
    ready.wait()
    keeper.terminate()
    _ = keeper.join()
    do {
        try ledger.acquire()
        try ledger.release()
    } catch SyncError.ownerDied {
        print("the ledger's owner died holding it")
    }
}

let programs: [(String, String, () throws -> Void)] = [
    ("condition-never-notified", "a Condition's waiter is never notified (hangs)", conditionNeverNotified),
    ("barrier-too-few-parties", "2 of 3 parties reach a Barrier (hangs)", barrierTooFewParties),
    ("pool-tasks-hang", "every Pool.map task blocks; main waits for the results (hangs)", poolTasksHang),
    ("pool-errors-all-read", "imapUnordered results, failures included, all read (clean)", poolErrorsAllRead),
    ("lock-ring", "three processes take two locks each in a ring; main joins them (hangs)", lockRing),
    ("terminate-lock-owner", "the parent terminates a lock's owner, then takes the lock", terminateLockOwner),
]

