import Glibc
import XCTest
@testable import Tangle

final class ProcessTests: XCTestCase {
    override class func setUp() {
        registerTangleTestsEntryPoints()
        super.setUp()
        // Children that are killed or signalled must not start swift-backtrace.
        setenv("SWIFT_BACKTRACE", "enable=no", 1)
    }

    /// A spawned child runs its entry point and its exit status reaches join.
    func testSpawnExitCodes() throws {
        for code: Int32 in [0, 3, 42] {
            let child = ChildProcess(entryPoint: "procs.exit-with", arguments: code)
            try child.start()
            XCTAssertGreaterThan(child.pid, 0)
            XCTAssertEqual(child.join(timeout: .seconds(20)), .exited(code))
            XCTAssertEqual(child.exitCode, code)
            XCTAssertFalse(child.isAlive)
        }
    }

    /// A child killed by a signal reports the signal (and Python's negative exitcode).
    func testSignalledChild() throws {
        let child = ChildProcess(entryPoint: "procs.raise", arguments: SIGUSR1)
        try child.start()
        XCTAssertEqual(child.join(timeout: .seconds(20)), .signaled(SIGUSR1))
        XCTAssertEqual(child.exitCode, -SIGUSR1)
    }

    /// An entry point that throws exits with status 1.
    func testThrowingEntryPoint() throws {
        let child = ChildProcess(entryPoint: "procs.throws")
        try child.start()
        XCTAssertEqual(child.join(timeout: .seconds(20)), .exited(TangleRuntime.exitStatusEntryPointThrew))
    }

    /// join(timeout:) gives up on a running child; terminate() ends it with SIGTERM.
    func testJoinTimeoutAndTerminate() throws {
        let child = ChildProcess(entryPoint: "procs.sleep")
        try child.start()
        XCTAssertTrue(child.isAlive)
        XCTAssertNil(child.join(timeout: .milliseconds(100)))
        XCTAssertNil(child.join(timeout: .zero))
        XCTAssertTrue(child.isAlive)
        child.terminate()
        XCTAssertEqual(child.join(timeout: .seconds(20)), .signaled(SIGTERM))
        XCTAssertFalse(child.isAlive)
        child.terminate()  // after the end: a no-op
    }

    /// kill() ends a child with SIGKILL.
    func testKill() throws {
        let child = ChildProcess(entryPoint: "procs.sleep")
        try child.start()
        child.kill()
        XCTAssertEqual(child.join(timeout: .seconds(20)), .signaled(SIGKILL))
    }

    /// Codable arguments arrive intact, small (environment) and large (memfd) ones, and the
    /// descriptor a handle asks for stays open at the same number in the child.
    func testArgumentsRoundTripAndDescriptorInheritance() throws {
        for size in [3, 50_000] {
            let (r, w) = makePipe()
            let args = EchoArgs(
                out: InheritedFD(w), text: String(repeating: "é", count: size),
                numbers: Array(0..<size), nested: ["pi": 3.25, "e": 2.5], optional: size == 3 ? nil : 7)
            try assertEchoes(args, reading: r, writer: w, method: nil)
        }
    }

    /// Starts `procs.echo` with `args` (by `method`), closes our copy of the writer `w`, and
    /// checks that what comes back on `r` decodes to `args` and the child exits 0.
    private func assertEchoes(_ args: EchoArgs, reading r: Int32, writer w: Int32, method: ChildProcess.StartMethod?,
                              file: StaticString = #filePath, line: UInt = #line) throws {
        let child = ChildProcess(entryPoint: "procs.echo", arguments: args, method: method)
        try child.start()
        close(w)
        let back = readToEnd(r)
        close(r)
        XCTAssertEqual(child.join(timeout: .seconds(20)), .exited(0), file: file, line: line)
        XCTAssertEqual(try BinaryCodec.decode(EchoArgs.self, from: back), args, file: file, line: line)
    }

    /// The same, with the child started by fork.
    func testForkedEntryPoint() throws {
        let (r, w) = makePipe()
        let args = EchoArgs(out: InheritedFD(w), text: "fork", numbers: [1, 2], nested: [:], optional: 1)
        try assertEchoes(args, reading: r, writer: w, method: .fork)
    }

    /// A forked closure: its exit status, a throwing closure, a signal.
    func testForkClosure() throws {
        let a = ChildProcess(fork: { CurrentProcess.exit(7) })
        try a.start()
        XCTAssertEqual(a.join(timeout: .seconds(20)), .exited(7))
        let b = ChildProcess(fork: { throw TestFailure(message: "forked failure") })
        try b.start()
        XCTAssertEqual(b.join(timeout: .seconds(20)), .exited(1))
        let c = ChildProcess(fork: { raise(SIGUSR2) })
        try c.start()
        XCTAssertEqual(c.join(timeout: .seconds(20)), .signaled(SIGUSR2))
    }

    /// Names: Process-N by default, a given name otherwise; the child knows its own name and parent.
    func testNamesAndCurrentProcess() throws {
        XCTAssertEqual(CurrentProcess.name, "MainProcess")
        XCTAssertFalse(CurrentProcess.isChild)
        let (r, w) = makePipe()
        let child = ChildProcess(entryPoint: "procs.whoami", arguments: InheritedFD(w), name: "reporter")
        try child.start()
        close(w)
        let text = String(decoding: readToEnd(r), as: UTF8.self)
        close(r)
        XCTAssertEqual(child.join(timeout: .seconds(20)), .exited(0))
        XCTAssertEqual(text, "reporter \(child.pid) \(getpid()) true")

        let unnamed = ChildProcess(entryPoint: "procs.exit-with", arguments: Int32(0))
        XCTAssertTrue(unnamed.name.hasPrefix("Process-"), unnamed.name)
        XCTAssertNotEqual(unnamed.name, ChildProcess(entryPoint: "procs.exit-with", arguments: Int32(0)).name)
    }

    /// Starting twice is an error; a closed descriptor in the arguments is an error at start.
    func testBadUse() throws {
        let child = ChildProcess(entryPoint: "procs.exit-with", arguments: Int32(0))
        try child.start()
        XCTAssertThrowsError(try child.start()) { error in
            XCTAssertEqual(error as? ProcessError, .alreadyStarted(child.name))
        }
        child.join()
        let (r, w) = makePipe()
        close(r)
        close(w)
        let bad = ChildProcess(entryPoint: "procs.echo", arguments: EchoArgs(out: InheritedFD(w), text: "", numbers: [], nested: [:], optional: nil))
        XCTAssertThrowsError(try bad.start()) { error in
            guard case .invalidDescriptor(_, let fd)? = error as? ProcessError else { return XCTFail("\(error)") }
            XCTAssertEqual(fd, w)
        }
    }

    /// A daemon child ends when its parent exits normally (exit path: terminated and reaped).
    func testDaemonEndsWithParentExit() throws {
        let (r, w) = makePipe()
        let parent = ChildProcess(entryPoint: "procs.daemon-parent", arguments: DaemonParentArgs(out: InheritedFD(w), hang: false))
        try parent.start()
        close(w)
        let text = String(decoding: readToEnd(r), as: UTF8.self)
        close(r)
        let grandchild = Int32(text.split(separator: "\n").first ?? "") ?? 0
        XCTAssertGreaterThan(grandchild, 0, text)
        XCTAssertEqual(parent.join(timeout: .seconds(20)), .exited(0))
        XCTAssertTrue(eventually { processIsGone(grandchild) }, "daemon \(grandchild) outlived its parent")
    }

    /// A daemon child dies when its parent is killed (PR_SET_PDEATHSIG).
    func testDaemonEndsWithParentKilled() throws {
        let (r, w) = makePipe()
        let parent = ChildProcess(entryPoint: "procs.daemon-parent", arguments: DaemonParentArgs(out: InheritedFD(w), hang: true))
        try parent.start()
        close(w)
        let text = String(decoding: readToEnd(r), as: UTF8.self)
        close(r)
        let grandchild = Int32(text.split(separator: "\n").first ?? "") ?? 0
        XCTAssertGreaterThan(grandchild, 0, text)
        XCTAssertFalse(processIsGone(grandchild))
        parent.kill()
        XCTAssertEqual(parent.join(timeout: .seconds(20)), .signaled(SIGKILL))
        XCTAssertTrue(eventually { processIsGone(grandchild) }, "daemon \(grandchild) outlived its killed parent")
    }

    /// glibc's posix_spawn_file_actions_adddup2(fd, fd) clears FD_CLOEXEC in the child only: the
    /// mechanism Tangle relies on to keep a handle's descriptor at its number.
    func testAdddup2SameFDClearsCloexecInChildOnly() throws {
        let (r, w) = makePipe()
        let (r2, w2) = makePipe()
        defer { close(r2); close(w2) }
        let script = "if [ -e /proc/self/fd/\(w) ]; then echo kept > /proc/self/fd/\(w); fi; if [ -e /proc/self/fd/\(w2) ]; then echo leaked; fi"
        let pid = try Spawner.spawn(path: "/bin/sh", argv: ["sh", "-c", script], environment: Env.all(), keep: [w])
        XCTAssertNotEqual(fcntl(w, F_GETFD) & FD_CLOEXEC, 0, "the parent's descriptor must stay close-on-exec")
        close(w)
        let text = String(decoding: readToEnd(r), as: UTF8.self)
        close(r)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        XCTAssertEqual(text, "kept\n")
    }

    /// TangleThread: runs, join waits, join with timeout gives up on a running thread.
    func testThreads() {
        let gate = CondLock()
        var open = false
        var ran = false
        let t = TangleThread(name: "gated") {
            gate.withLock {
                while !open { _ = gate.wait(until: nil) }
            }
            ran = true
        }
        t.start()
        XCTAssertFalse(t.join(timeout: .milliseconds(50)))
        XCTAssertTrue(t.isAlive)
        gate.withLock { open = true; gate.broadcast() }
        XCTAssertTrue(t.join(timeout: .seconds(10)))
        XCTAssertTrue(ran)
        XCTAssertFalse(t.isAlive)
        XCTAssertTrue(TangleThread { }.name.hasPrefix("Thread-"))
    }

    /// activeChildren lists started children until they are reaped.
    func testActiveChildren() throws {
        let child = ChildProcess(entryPoint: "procs.sleep")
        try child.start()
        XCTAssertTrue(CurrentProcess.activeChildren.contains { $0 === child })
        child.kill()
        child.join()
        XCTAssertFalse(CurrentProcess.activeChildren.contains { $0 === child })
    }
}

extension ProcessTests {
    /// A daemon child started from a thread that then exits keeps running (PR_SET_PDEATHSIG follows
    /// the thread that spawned it, so Tangle spawns it from a long-lived thread).
    func testDaemonOutlivesStartingThread() throws {
        var child: ChildProcess?
        let t = TangleThread(name: "short-lived") {
            // The thread stays until the child runs (its death signal is armed), then exits.
            let (r, w) = makePipe()
            let c = ChildProcess(entryPoint: "procs.ready-then-sleep", arguments: InheritedFD(w), daemon: true)
            try? c.start()
            close(w)
            _ = readToEnd(r)
            close(r)
            child = c
        }
        t.start()
        t.join()
        let c = try XCTUnwrap(child)
        XCTAssertGreaterThan(c.pid, 0)
        usleep(200_000)
        XCTAssertTrue(c.isAlive, "the daemon died with the thread that started it")
        c.kill()
        XCTAssertEqual(c.join(timeout: .seconds(20)), .signaled(SIGKILL))
    }
}
