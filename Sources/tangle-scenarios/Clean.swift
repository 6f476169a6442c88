import Glibc
import Tangle

// Clean scenarios: correct programs that must produce no finding at all.

func registerCleanEntryPoints() {
    EntryPoint.register("scn.producer", cleanProducer)
    EntryPoint.register("scn.consumer", cleanConsumer)
    EntryPoint.register("scn.pipe-clean-reader", pipeCleanReader)
    EntryPoint.register("scn.manager-worker", managerWorker)
}

// MARK: producer-consumer-clean

/// Correct: 2 producers, 2 consumers, one pill per consumer (put after both producers were
/// joined), everyone joined.
let producerConsumerClean = Scenario(
    name: "producer-consumer-clean",
    summary: "2 producers, 2 consumers, one pill per consumer, all joined",
    hangs: false
) {
    let queue = Queue<Int?>(name: "work")
    let producers = try (0..<2).map { i in
        try spawn("scn.producer", ProduceArgs(queue: queue, base: i * 100, count: 20), name: "producer-\(i)")
    }
    let consumers = try (0..<2).map { i in
        try spawn("scn.consumer", ConsumeArgs(queue: queue), name: "consumer-\(i)")
    }
    for p in producers { try expectExit(p, p.join()) }
    for _ in consumers { try queue.put(nil) }
    for c in consumers { try expectExit(c, c.join()) }
}

struct ProduceArgs: Codable { var queue: Queue<Int?>; var base: Int; var count: Int }
struct ConsumeArgs: Codable { var queue: Queue<Int?> }

@inline(never) func cleanProducer(_ args: ProduceArgs) throws {
    for i in 0..<args.count { try args.queue.put(args.base + i) }
}

@inline(never) func cleanConsumer(_ args: ConsumeArgs) throws {
    var sum = 0
    while let item = try args.queue.get() { sum += item }
    _ = sum
}

// MARK: pipe-clean

/// Correct: the reader gets only the read end; the parent sends 3 messages and closes its write
/// end; the reader sees end of file and exits; joined.
let pipeClean = Scenario(
    name: "pipe-clean",
    summary: "one-way pipe, the reader holds only the read end, sees EOF, joined",
    hangs: false
) {
    let (receiver, sender) = try Tangle.Pipe(Int.self, duplex: false)
    let reader = try spawn("scn.pipe-clean-reader", PipeCleanArgs(receiver: receiver, expected: 3), name: "reader")
    receiver.close()
    for i in 0..<3 { try sender.send(i) }
    sender.close()
    try expectExit(reader, reader.join())
}

struct PipeCleanArgs: Codable { var receiver: Connection<Int>; var expected: Int }

@inline(never) func pipeCleanReader(_ args: PipeCleanArgs) throws {
    var got = 0
    while true {
        do {
            _ = try args.receiver.recv()
            got += 1
        } catch PipeError.eof {
            break
        }
    }
    args.receiver.close()
    if got != args.expected { throw ScenarioFailure("received \(got) messages, expected \(args.expected)") }
}

// MARK: manager-clean

/// Correct: 3 processes update a SharedDictionary and a SharedList; all joined; the parent checks
/// the totals.
let managerClean = Scenario(
    name: "manager-clean",
    summary: "SharedDictionary and SharedList updated by 3 processes, all joined",
    hangs: false
) {
    let counts = SharedDictionary<String, Int>()
    let log = SharedList<Int>()
    let workers = try (0..<3).map { i in
        try spawn("scn.manager-worker", ManagerArgs(counts: counts, log: log, index: i, rounds: 10), name: "worker-\(i)")
    }
    for w in workers { try expectExit(w, w.join()) }
    let total = try counts.get("total") ?? 0
    if total != 30 || log.count != 30 {
        throw ScenarioFailure("total \(total) and \(log.count) log entries, expected 30 and 30")
    }
}

struct ManagerArgs: Codable {
    var counts: SharedDictionary<String, Int>
    var log: SharedList<Int>
    var index: Int
    var rounds: Int
}

@inline(never) func managerWorker(_ args: ManagerArgs) throws {
    for r in 0..<args.rounds {
        try args.counts.update("total", default: 0) { $0 += 1 }
        try args.counts.update("worker-\(args.index)", default: 0) { $0 += 1 }
        try args.log.append(args.index * 100 + r)
    }
}
