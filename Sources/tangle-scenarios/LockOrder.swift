import Glibc
import Tangle

// Lock-order scenarios: two processes take locks A and B in opposite orders. They never deadlock in
// these runs (the second one starts its nested acquisitions well after the first finished), but only
// `lock-order-inversion` could deadlock under another interleaving.

func registerLockOrderEntryPoints() {
    EntryPoint.register("scn.take-in-order", takeInOrder)
}

struct OrderArgs: Codable {
    var first: Lock
    var second: Lock
    /// Held around the nested acquisitions when set (a gate lock).
    var gate: Lock?
    /// Sleep before starting, so the two processes do not overlap.
    var delayMs: Int
}

@inline(never) func takeInOrder(_ args: OrderArgs) throws {
    sleepMs(args.delayMs)
    if let gate = args.gate { try gate.acquire() }
    try nestedAcquire(args.first, args.second)
    if let gate = args.gate { try gate.release() }
}

@inline(never) func nestedAcquire(_ outer: Lock, _ inner: Lock) throws {
    try outer.acquire()
    try inner.acquire()
    sleepMs(2)
    try inner.release()
    try outer.release()
}

/// Bug (predicted): process 1 takes A then B, process 2 takes B then A, after
/// process 1 happened to finish (checked out of band, without any synchronization the trace shows). It did not
/// deadlock this time; under another timing each holds one lock and waits for the other.
let lockOrderInversion = Scenario(
    name: "lock-order-inversion",
    summary: "A then B in one process, B then A in another, at different times (no deadlock this run)",
    hangs: false
) {
    let a = Lock(name: "A"), b = Lock(name: "B")
    let p1 = try spawn("scn.take-in-order", OrderArgs(first: a, second: b, gate: nil, delayMs: 0), name: "a-then-b")
    // By luck of timing, not by synchronization the analyzer could see: p1 is already done.
    waitUntilZombie(p1)
    let p2 = try spawn("scn.take-in-order", OrderArgs(first: b, second: a, gate: nil, delayMs: 0), name: "b-then-a")
    try expectExit(p1, p1.join())
    try expectExit(p2, p2.join())
}

/// Safe: the same opposite orders, but both processes hold gate lock G around them, so the two
/// nested sections can never run at the same time. No finding.
let lockOrderGated = Scenario(
    name: "lock-order-gated",
    summary: "the same opposite orders, both under a common gate lock G (safe)",
    hangs: false
) {
    let a = Lock(name: "A"), b = Lock(name: "B"), g = Lock(name: "G")
    let p1 = try spawn("scn.take-in-order", OrderArgs(first: a, second: b, gate: g, delayMs: 0), name: "a-then-b")
    let p2 = try spawn("scn.take-in-order", OrderArgs(first: b, second: a, gate: g, delayMs: 300), name: "b-then-a")
    try expectExit(p1, p1.join())
    try expectExit(p2, p2.join())
}

/// Safe: the same opposite orders, but the second process is only started after the first was
/// joined (happens-before: join → spawn), so they can never overlap. No finding.
let lockOrderOrdered = Scenario(
    name: "lock-order-ordered",
    summary: "the same opposite orders, the second process started only after the first was joined (safe)",
    hangs: false
) {
    let a = Lock(name: "A"), b = Lock(name: "B")
    let p1 = try spawn("scn.take-in-order", OrderArgs(first: a, second: b, gate: nil, delayMs: 0), name: "a-then-b")
    try expectExit(p1, p1.join())
    let p2 = try spawn("scn.take-in-order", OrderArgs(first: b, second: a, gate: nil, delayMs: 0), name: "b-then-a")
    try expectExit(p2, p2.join())
}
