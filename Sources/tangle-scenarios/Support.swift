import Glibc
import Tangle

/// One scenario: its name (the CLI argument), what it reproduces, and its program (run in the main
/// process; it starts the children it needs through the runtime).
struct Scenario: Sendable {
    let name: String
    let summary: String
    /// True when the program never ends by itself (it must be stopped from outside).
    let hangs: Bool
    let run: @Sendable () throws -> Void
}

/// Every scenario, in the order `--list` prints them.
let allScenarios: [Scenario] = [
    poisonPillMissing, lockAcrossGet, pipeOwnWriter, joinBeforeGet,
    lockOrderInversion, lockOrderGated, lockOrderOrdered,
    diningPhilosophers, selfDeadlock,
    zombie, unjoinedChild, lostMessages, missingTaskDone,
    poolLostError, ownerDied, shmLeak, forkWithThreads,
    poolClean, producerConsumerClean, pipeClean, managerClean,
]

/// Registers the entry points of every scenario's children (before the bootstrap).
func registerScenarioEntryPoints() {
    registerHangEntryPoints()
    registerLockOrderEntryPoints()
    registerLifecycleEntryPoints()
    registerCleanEntryPoints()
    registerPoolEntryPoints()
    registerGenerateEntryPoints()
    registerRaceEntryPoints()
}

func scenariosMain(_ args: [String]) -> Int32 {
    let rest = Array(args.dropFirst())
    // Generated programs (Generate/): the harness, and the main process of one program.
    if rest.first == "generate" { return generateMain(Array(rest.dropFirst())) }
    if rest.first == "gen-run" { return genRunMain(Array(rest.dropFirst())) }
    if rest.first == "race" { return raceMain(Array(rest.dropFirst())) }  // (Races.swift: who goes first)
    if rest.isEmpty || rest.contains("--help") || rest.contains("-h") {
        printOut("usage: tangle-scenarios --list | NAME\n")
        printOut("Runs one concurrency-bug scenario for real (set TANGLE_TRACE=<dir> to trace it).\n")
        printOut("Scenarios that hang never end: stop them from outside (tangle demo / tangle run --timeout).\n")
        return rest.isEmpty ? 2 : 0
    }
    if rest[0] == "--list" {
        let width = allScenarios.map(\.name.count).max() ?? 0
        for s in allScenarios {
            let pad = String(repeating: " ", count: width - s.name.count)
            printOut("\(s.name)\(pad)  \(s.hangs ? "[hangs] " : "")\(s.summary)\n")
        }
        return 0
    }
    if rest[0] == "--names" {
        for s in allScenarios { printOut(s.name + "\n") }
        return 0
    }
    guard rest.count == 1, let scenario = allScenarios.first(where: { $0.name == rest[0] }) else {
        printErr("tangle-scenarios: unknown scenario '\(rest.joined(separator: " "))' (try --list)\n")
        return 2
    }
    do {
        try scenario.run()
    } catch {
        printErr("tangle-scenarios: \(scenario.name) failed: \(error)\n")
        return 1
    }
    return 0
}

func printOut(_ s: String) { writeAll(1, s) }
func printErr(_ s: String) { writeAll(2, s) }

private func writeAll(_ fd: Int32, _ s: String) {
    var bytes = Array(s.utf8)
    var off = 0
    while off < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress! + off, $0.count - off) }
        if n <= 0 { if errno == EINTR { continue }; return }
        off += n
    }
}

/// Sleeps `ms` milliseconds (nanosleep, restarted on EINTR).
func sleepMs(_ ms: Int) {
    var req = timespec(tv_sec: ms / 1000, tv_nsec: (ms % 1000) * 1_000_000)
    var rem = timespec()
    while nanosleep(&req, &rem) != 0 && errno == EINTR { req = rem }
}

/// Starts a child running `entry` with `arguments`.
@discardableResult
func spawn<A: Encodable>(_ entry: String, _ arguments: A, name: String) throws -> ChildProcess {
    let child = ChildProcess(entryPoint: entry, arguments: arguments, name: name)
    try child.start()
    return child
}

/// The status of a child must be what the scenario expects, or the scenario did not do what it says.
struct ScenarioFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

func expectExit(_ child: ChildProcess, _ status: ChildProcess.ExitStatus?, _ expected: ChildProcess.ExitStatus = .exited(0)) throws {
    if status != expected {
        throw ScenarioFailure("\(child.name) ended with \(status.map { "\($0)" } ?? "nothing") instead of \(expected)")
    }
}

/// Waits (up to `limitMs`) until `child` has exited but is not reaped yet — a zombie — by reading
/// /proc/<pid>/stat. Out of band on purpose: nothing is recorded, so the analyzer sees no
/// happens-before edge (it models "the other process happened to be done by then").
func waitUntilZombie(_ child: ChildProcess, limitMs: Int = 5000) {
    let path = "/proc/\(child.pid)/stat"
    var waited = 0
    while waited < limitMs {
        let fd = open(path, O_RDONLY)
        if fd < 0 { return }
        var buf = [UInt8](repeating: 0, count: 512)
        let n = read(fd, &buf, buf.count)
        close(fd)
        if n <= 0 { return }
        // "pid (comm) S ...": the state follows the last ')'.
        if let close = buf[0..<n].lastIndex(of: UInt8(ascii: ")")), close + 2 < n {
            let state = buf[close + 2]
            if state == UInt8(ascii: "Z") || state == UInt8(ascii: "X") { return }
        }
        sleepMs(2)
        waited += 2
    }
}
