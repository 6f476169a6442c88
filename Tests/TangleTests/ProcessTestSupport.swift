import CTangleSupport
import Glibc
import XCTest
@testable import Tangle
import TangleTestSupport

// Entry points and helpers of the processes area's tests (ProcessTests, BootstrapTests, PoolTests,
// CPUTests). Children of the test binary are routed before the test runner's main and run the
// registrations passed to TangleRuntime.registerTestEntryPoints (docs/runtime.md, "Starting
// children from tests"): every test class that starts children calls `registerTangleTestsEntryPoints`.

/// Registers the entry points and pool functions of every TangleTests child.
func registerTangleTestsEntryPoints() {
    TangleRuntime.registerTestEntryPoints(tangleTestsEntryPoints)
}

/// What the children of this test target run (one registration: it runs again in each child).
func tangleTestsEntryPoints() {
    processesTestEntryPoints()
    primitivesTestEntryPoints()
    asyncTestEntryPoints()
}

func processesTestEntryPoints() {
    EntryPoint.register("procs.exit-with") { (code: Int32) in
        CurrentProcess.exit(code)
    }
    EntryPoint.register("procs.sleep") {
        while true { sleep(100) }
    }
    EntryPoint.register("procs.raise") { (sig: Int32) in
        raise(sig)
    }
    EntryPoint.register("procs.throws") {
        throw TestFailure(message: "deliberate failure")
    }
    // Writes its arguments back, encoded, to the inherited descriptor (round trip + fd inheritance).
    EntryPoint.register("procs.echo") { (args: EchoArgs) in
        let bytes = try BinaryCodec.encode(args)
        _ = FD.writeAll(args.out.fd, bytes)
        close(args.out.fd)
    }
    // Reports its name, pid and parent pid.
    EntryPoint.register("procs.whoami") { (out: InheritedFD) in
        let text = "\(CurrentProcess.name) \(getpid()) \(getppid()) \(CurrentProcess.isChild)"
        _ = FD.writeAll(out.fd, Array(text.utf8))
        close(out.fd)
    }
    // Starts a daemon grandchild that sleeps, reports its pid, then exits or hangs.
    EntryPoint.register("procs.daemon-parent") { (args: DaemonParentArgs) in
        let grandchild = ChildProcess(entryPoint: "procs.sleep", daemon: true)
        try grandchild.start()
        _ = FD.writeAll(args.out.fd, Array("\(grandchild.pid)\n".utf8))
        close(args.out.fd)
        if args.hang { while true { sleep(100) } }
    }
    // Spawns `count` children that exit with 0..<count, joins each (a traced run).
    EntryPoint.register("procs.spawn-some") { (count: Int) in
        var children: [ChildProcess] = []
        for i in 0..<count {
            let c = ChildProcess(entryPoint: "procs.exit-with", arguments: Int32(i))
            try c.start()
            children.append(c)
        }
        let forked = ChildProcess(fork: { CurrentProcess.exit(9) })
        try forked.start()
        children.append(forked)
        for c in children { c.join() }
        let t = TangleThread(name: "worker") { usleep(1000) }
        t.start()
        t.join()
    }
    EntryPoint.register("procs.cpu-count") {
        CurrentProcess.exit(Int32(CPUCount.available()))
    }
    // A pool of `workers`: a map of 100 items in 10 chunks, an apply, a failing apply; close, join.
    EntryPoint.register("procs.pool-run") { (workers: Int) in
        let pool = try Pool(workers: workers)
        _ = try pool.map(squareFn, Array(0..<100), chunkSize: 10)
        _ = try pool.apply(squareFn, 3)
        _ = try? pool.apply(failOnNegativeFn, -1)
        pool.close()
        pool.join()
    }
    // Forks once with no other thread running, once while a TangleThread waits.
    EntryPoint.register("procs.fork-threads") { (_: Int) in
        let a = ChildProcess(fork: {})
        try a.start()
        a.join()
        let gate = CondLock()
        var open = false
        let t = TangleThread(name: "waiting") {
            gate.withLock { while !open { _ = gate.wait(until: nil) } }
        }
        t.start()
        let b = ChildProcess(fork: {})
        try b.start()
        b.join()
        gate.withLock { open = true; gate.broadcast() }
        t.join()
    }
    // Says it is running (after the bootstrap set PR_SET_PDEATHSIG), then sleeps.
    EntryPoint.register("procs.ready-then-sleep") { (out: InheritedFD) in
        _ = FD.writeAll(out.fd, [1])
        close(out.fd)
        while true { sleep(100) }
    }
    poolTestFunctions()
}

struct TestFailure: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// A descriptor handed to a child at the same number (what a pipe or queue handle does).
struct InheritedFD: Codable, Equatable {
    var fd: Int32
    init(_ fd: Int32) { self.fd = fd }
    init(from decoder: Decoder) throws {
        fd = try decoder.singleValueContainer().decode(Int32.self)
    }
    func encode(to encoder: Encoder) throws {
        HandleTransfer.inheritDescriptor(fd)
        var c = encoder.singleValueContainer()
        try c.encode(fd)
    }
}

struct EchoArgs: Codable, Equatable {
    var out: InheritedFD
    var text: String
    var numbers: [Int]
    var nested: [String: Double]
    var optional: Int?
}

struct DaemonParentArgs: Codable {
    var out: InheritedFD
    var hang: Bool
}

/// A pipe whose ends are close-on-exec (a child gets the write end only when it is passed).
func makePipe() -> (read: Int32, write: Int32) {
    var fds: [Int32] = [-1, -1]
    let rc = tangle_pipe2(&fds, O_CLOEXEC)
    precondition(rc == 0)
    return (fds[0], fds[1])
}

/// Everything readable from `fd` until end of file.
func readToEnd(_ fd: Int32) -> [UInt8] {
    FD.readAll(fd) ?? []
}

/// True when `pid` no longer exists or is a zombie (dead, not yet reaped by its new parent).
func processIsGone(_ pid: Int32) -> Bool {
    guard let stat = FD.readFile("/proc/\(pid)/stat") else { return true }
    // "pid (comm) S …": the state follows the last ')'.
    guard let close = stat.lastIndex(of: ")") else { return true }
    let rest = stat[stat.index(after: close)...].drop(while: { $0 == " " })
    return rest.first == "Z" || rest.first == "X"
}

/// Waits up to `seconds` for `condition`.
func eventually(seconds: Double = 10, _ condition: () -> Bool) -> Bool {
    let deadline = Clock.now() + UInt64(seconds * 1e9)
    while Clock.now() < deadline {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}

