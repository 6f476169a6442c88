import Glibc
import Tangle

// Races: the same program ends in a deadlock or not depending on who goes first, and an argument
// chooses who does — by a sleep that nothing traces, so the analyzer sees no order between the two
// sides (what luck of timing looks like in a trace). `tangle confirm` is tested on them:
//
//   tangle-scenarios race lock-across-get consumer-first   the consumer takes L and blocks in get;
//                                                          the producer waits for L: a deadlock
//   tangle-scenarios race lock-across-get producer-first   the producer puts under L first: no
//                                                          deadlock this run, predicted hold-and-wait
//   tangle-scenarios race lock-order                       A then B, and 200 ms later B then A: no
//                                                          deadlock this run, predicted inversion

func registerRaceEntryPoints() {
    EntryPoint.register("race.consumer", raceConsumer)
    EntryPoint.register("race.take-in-order", raceTakeInOrder)
}

/// How long the side that goes second waits (untraced) before it starts.
let raceDelayMs = 200

func raceMain(_ args: [String]) -> Int32 {
    do {
        switch args {
        case ["lock-across-get", "consumer-first"]: try lockAcrossGetRace(consumerFirst: true)
        case ["lock-across-get", "producer-first"]: try lockAcrossGetRace(consumerFirst: false)
        case ["lock-order"]: try lockOrderRace()
        default:
            printErr("usage: tangle-scenarios race lock-across-get consumer-first|producer-first | race lock-order\n")
            return 2
        }
    } catch {
        printErr("tangle-scenarios: race \(args.joined(separator: " ")) failed: \(error)\n")
        return 1
    }
    return 0
}

// MARK: lock-across-get, either order

struct RaceGetArgs: Codable { var lock: Lock; var queue: Queue<Int>; var delayMs: Int }

/// The consumer (a child) takes L and blocks in `get` holding it; the producer (the parent) takes
/// L to put. Whoever goes second waits `raceDelayMs` first.
func lockAcrossGetRace(consumerFirst: Bool) throws {
    let lock = Lock(name: "L")
    let queue = Queue<Int>(name: "jobs")
    let consumer = try spawn("race.consumer", RaceGetArgs(lock: lock, queue: queue, delayMs: consumerFirst ? 0 : raceDelayMs), name: "consumer")
    try racePutUnderLock(lock: lock, queue: queue, delayMs: consumerFirst ? raceDelayMs : 0)
    try expectExit(consumer, consumer.join())
}

@inline(never) func racePutUnderLock(lock: Lock, queue: Queue<Int>, delayMs: Int) throws {
    sleepMs(delayMs)
    try lock.acquire()            // the consumer may hold L while it waits for this very put
    try queue.put(42)
    try lock.release()
}

@inline(never) func raceConsumer(_ args: RaceGetArgs) throws {
    sleepMs(args.delayMs)
    try args.lock.acquire()
    let job = try args.queue.get()  // blocks holding L
    _ = job
    try args.lock.release()
}

// MARK: lock order, racing

struct RaceOrderArgs: Codable { var first: Lock; var second: Lock; var delayMs: Int }

/// Two processes started together take A then B and B then A; the second starts 200 ms later
/// (untraced), so this run does not deadlock, but nothing orders the two sections.
func lockOrderRace() throws {
    let a = Lock(name: "A"), b = Lock(name: "B")
    let p1 = try spawn("race.take-in-order", RaceOrderArgs(first: a, second: b, delayMs: 0), name: "a-then-b")
    let p2 = try spawn("race.take-in-order", RaceOrderArgs(first: b, second: a, delayMs: raceDelayMs), name: "b-then-a")
    try expectExit(p1, p1.join())
    try expectExit(p2, p2.join())
}

@inline(never) func raceTakeInOrder(_ args: RaceOrderArgs) throws {
    sleepMs(args.delayMs)
    try args.first.acquire()
    try args.second.acquire()       // the predicted point: holding the first, taking the second
    sleepMs(2)
    try args.second.release()
    try args.first.release()
}
