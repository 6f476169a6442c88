import CTangleSupport
import Glibc
import Synchronization
import TangleRecorder

/// The program-wide side of the runtime: the bootstrap every Tangle program calls first in `main`
/// (the analogue of Python's `if __name__ == "__main__":`), the child path it routes to, and the
/// exit path. See docs/runtime.md.
public enum TangleRuntime {
    /// Exit status of a child asked to run an entry point its executable never registered.
    public static let exitStatusUnregisteredEntryPoint: Int32 = 64
    /// Exit status of a child whose arguments were missing or could not be decoded.
    public static let exitStatusBadArguments: Int32 = 65
    /// Exit status of a child whose entry point threw (the error is printed on standard error).
    public static let exitStatusEntryPointThrew: Int32 = 1

    /// Call first in `main`, after registering entry points (`EntryPoint.register`) and pool
    /// functions (`PoolFunction.register`). In a child started by Tangle it runs the requested entry
    /// point with its decoded arguments and exits: a child never returns from here, so it never
    /// runs the parent's `main`. In the parent it starts the recorder (`MainProcess`) and installs
    /// the exit path, then returns.
    public static func bootstrap() {
        if Env.get(ChildEnvironment.entry) != nil {
            runChild(early: false)
        }
        bootstrapped.store(true, ordering: .releasing)
        ensureStarted()
    }

    /// True once `bootstrap()` has run in this process. Children of a process that never called it
    /// (a test runner) are routed before `main` by a C constructor instead.
    public static var isBootstrapped: Bool { bootstrapped.load(ordering: .acquiring) }

    private static let bootstrapped = Atomic<Bool>(false)

    /// True when a spawned child of this process will reach its entry point: the program called
    /// `bootstrap()`, or it is a test binary that registered its children's entry points
    /// (`registerTestEntryPoints`): they are routed before main.
    static var childrenCanBeRouted: Bool {
        isBootstrapped || (!TestEntryPoints.isEmpty && !_pretendNoTestHooks.load(ordering: .relaxed))
    }

    /// For the runtime's own tests: behave as a program without test hooks.
    static let _pretendNoTestHooks = Atomic<Bool>(false)
    private static let started = Atomic<Bool>(false)

    /// Starts the recorder for the main process and installs the exit path, once. Called by
    /// `bootstrap()` and by every API that starts something (so a test binary needs no bootstrap).
    static func ensureStarted() {
        if started.load(ordering: .acquiring) { return }
        let first = ProcessState.shared.lock.withLock { () -> Bool in
            if started.load(ordering: .relaxed) { return false }
            if ProcessState.shared.object == 0 { ProcessState.shared.object = Recorder.newObjectID() }
            started.store(true, ordering: .releasing)
            return true
        }
        guard first else { return }
        let state = ProcessState.shared
        Recorder.start(processObject: state.object, name: state.name)
        _ = tangle_on_exit(tangleOnExit)
    }

    // MARK: child path

    /// Runs the child side: reads what the parent passed, starts the recorder, runs the entry point,
    /// exits. Never returns.
    static func runChild(early: Bool) -> Never {
        let entry = Env.get(ChildEnvironment.entry) ?? ""
        let object = UInt64(Env.get(ChildEnvironment.object) ?? "") ?? Recorder.newObjectID()
        let name = Env.get(ChildEnvironment.name) ?? "Process"
        let identity = Env.get(ChildEnvironment.identity) ?? ""
        let parent = Int32(Env.get(ChildEnvironment.parent) ?? "") ?? getppid()
        let daemon = Env.get(ChildEnvironment.daemon) == "1"
        let argsHex = Env.get(ChildEnvironment.arguments)
        let argsFD = Int32(Env.get(ChildEnvironment.argumentsFD) ?? "")
        let inherited = (Env.get(ChildEnvironment.descriptors) ?? "").split(separator: ",").compactMap { Int32($0) }
        TestEntryPoints.readEnvironment()
        // The descriptors passed to us lost FD_CLOEXEC on the way in (dup2(fd, fd)); make them
        // close-on-exec again, so that our own children get them only when we pass them on.
        for fd in inherited {
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
        // Grandchildren must not see these.
        for variable in ChildEnvironment.all { unsetenv(variable) }

        if daemon { watchParent(parent) }
        let state = ProcessState.shared
        state.lock.withLock {
            state.isChild = true
            state.isDaemon = daemon
            state.name = name
            state.object = object
            state.identity = identity
            state.parentPID = parent
        }
        started.store(true, ordering: .releasing)
        // Routed by main's bootstrap: main registered the entry points, so our own children can be
        // routed the same way. Routed early (a test binary): they must be routed early too.
        if !early { bootstrapped.store(true, ordering: .releasing) }
        Recorder.start(processObject: object, name: name)
        if early { EntryPoint.runTestHooksOnce() }

        let bytes: [UInt8]
        if let argsHex {
            guard let decoded = Hex.decode(argsHex) else {
                fail(ChildStartError.missingArguments(entry: entry, reason: "malformed \(ChildEnvironment.arguments)"))
            }
            bytes = decoded
        } else if let argsFD {
            lseek(argsFD, 0, SEEK_SET)
            guard let read = FD.readAll(argsFD) else {
                fail(ChildStartError.missingArguments(entry: entry, reason: "cannot read descriptor \(argsFD): errno \(errno)"))
            }
            close(argsFD)
            bytes = read
        } else {
            bytes = []
        }
        exitProcess(runEntryPoint(entry, bytes))
    }

    /// Runs a registered entry point in this (child) process and returns its exit status.
    static func runEntryPoint(_ entry: String, _ bytes: [UInt8]) -> Int32 {
        guard let registration = EntryPoint.lookup(entry) else {
            let error = ChildStartError.unregistered(entry: entry, known: EntryPoint.registeredNames)
            FD.printError(error.description)
            return error.exitStatus
        }
        do {
            try registration.body(bytes)
            return 0
        } catch let error as ChildStartError {
            FD.printError(error.description)
            return error.exitStatus
        } catch {
            FD.printError("tangle: entry point '\(entry)' in \(CurrentProcess.name) (pid \(getpid())) threw: \(error)")
            return exitStatusEntryPointThrew
        }
    }

    private static func fail(_ error: ChildStartError) -> Never {
        FD.printError(error.description)
        exitProcess(error.exitStatus)
    }

    /// A daemon child dies with its parent: PR_SET_PDEATHSIG, then a check that the parent did not
    /// already die before the call.
    static func watchParent(_ parent: Int32) {
        _ = tangle_set_pdeathsig(SIGKILL)
        if getppid() != parent { tangle_flush_and_exit(1) }
    }

    /// In a forked child: reset the runtime's state and start its own trace file.
    static func becomeForkedChild(object: UInt64, name: String, identity: String, parent: Int32, daemon: Bool) {
        let state = ProcessState.shared
        state.lock.reinitializeAfterFork()
        EntryPoint.reinitializeAfterFork()
        ObjectNames.reinitializeAfterFork()
        DaemonSpawner.reinitializeAfterFork()
        state.isChild = true
        state.isDaemon = daemon
        state.name = name
        state.object = object
        state.identity = identity
        state.parentPID = parent
        state.childCounter = 0
        state.children = [:]
        started.store(true, ordering: .releasing)
        Recorder.afterForkInChild(processObject: object, name: name)
        if daemon { watchParent(parent) }
    }

    // MARK: exit path

    /// Ends this process: daemon children are terminated and reaped, `proc.exit` is recorded, the
    /// trace flushed, stdio flushed, then `_exit(status)`.
    static func exitProcess(_ status: Int32) -> Never {
        cleanUpChildrenAtExit()
        Recorder.processExiting(status: status, signal: 0)
        tangle_flush_and_exit(status)
    }

    /// Daemon children end with their parent (SIGTERM, up to 1 s, then SIGKILL; each reaped and
    /// recorded). Non-daemon children are left running, unlike Python, which joins them: join them
    /// yourself (the analyzer reports children never joined).
    static func cleanUpChildrenAtExit() {
        let children = ProcessState.shared.lock.withLock { Array(ProcessState.shared.children.values) }
        let daemons = children.filter { $0.daemon }
        for child in daemons { child.terminate() }
        for child in daemons where child.join(timeout: .seconds(1)) == nil {
            child.kill()
            child.join()
        }
    }
}

/// on_exit(3) handler of the main process (and of a forked child that calls `exit`).
private func tangleOnExit(_ status: Int32, _: UnsafeMutableRawPointer?) {
    TangleRuntime.cleanUpChildrenAtExit()
    Recorder.processExiting(status: status, signal: 0)
}

/// The constructor in runtime_support.c calls this before `main` in a child whose parent never
/// called `bootstrap()` (a test binary): it registers the test targets' entry points and runs the
/// child. Never returns.
@_cdecl("tangle_run_child_early")
public func tangleRunChildEarly() {
    TangleRuntime.runChild(early: true)
}

/// The environment variables a parent sets for a spawned child (all removed by the child).
enum ChildEnvironment {
    static let entry = "TANGLE_CHILD"
    static let early = "TANGLE_CHILD_EARLY"
    static let object = "TANGLE_CHILD_OBJECT"
    static let name = "TANGLE_CHILD_NAME"
    static let identity = "TANGLE_CHILD_IDENTITY"
    static let parent = "TANGLE_CHILD_PARENT"
    static let daemon = "TANGLE_CHILD_DAEMON"
    static let arguments = "TANGLE_CHILD_ARGS"
    static let argumentsFD = "TANGLE_CHILD_ARGS_FD"
    /// Comma-separated descriptors the child inherited at their numbers.
    static let descriptors = "TANGLE_CHILD_FDS"
    /// The parent's test entry-point registrations (TestEntryPoints), for a child routed early.
    static let testEntryPoints = "TANGLE_CHILD_TEST_ENTRY_POINTS"
    static let all = [entry, early, object, name, identity, parent, daemon, arguments, argumentsFD, descriptors, testEntryPoints]
}

/// This process's identity and the children it started (until reaped).
final class ProcessState: @unchecked Sendable {
    static let shared = ProcessState()

    let lock = CondLock()
    var name = "MainProcess"
    var object: UInt64 = 0
    /// Python's `_identity` joined by ":" ("" in the main process, "1:2" in Process-1's 2nd child).
    var identity = ""
    var childCounter = 0
    var threadCounter = 0
    var isChild = false
    var isDaemon = false
    var parentPID: Int32 = 0
    var children: [UInt64: ChildProcess] = [:]

    /// The next child's identity and default name (`Process-1`, `Process-1:2`, …).
    func nextChildIdentity() -> (identity: String, name: String) {
        lock.withLock {
            childCounter += 1
            let id = identity.isEmpty ? "\(childCounter)" : "\(identity):\(childCounter)"
            return (id, "Process-\(id)")
        }
    }

    func nextThreadName() -> String {
        lock.withLock {
            threadCounter += 1
            return "Thread-\(threadCounter)"
        }
    }
}

/// The process this code runs in.
public enum CurrentProcess {
    public static var pid: Int32 { getpid() }
    public static var parentPID: Int32 { getppid() }
    /// `MainProcess` in the main process, the child's name (`Process-1`, …) in a child.
    public static var name: String { ProcessState.shared.lock.withLock { ProcessState.shared.name } }
    /// The trace's object id of this process (what its `proc.start` and its parent's `proc.spawn` carry).
    public static var object: UInt64 {
        TangleRuntime.ensureStarted()
        return ProcessState.shared.lock.withLock { ProcessState.shared.object }
    }
    /// True in a process started by Tangle (spawn or fork).
    public static var isChild: Bool { ProcessState.shared.lock.withLock { ProcessState.shared.isChild } }
    public static var isDaemon: Bool { ProcessState.shared.lock.withLock { ProcessState.shared.isDaemon } }

    /// Children started by this process and not yet reaped (each call reaps those that ended,
    /// like Python's `active_children()`).
    public static var activeChildren: [ChildProcess] {
        let all = ProcessState.shared.lock.withLock { Array(ProcessState.shared.children.values) }
        return all.filter { $0.isAlive }.sorted { $0.pid < $1.pid }
    }

    /// Ends the process through Tangle's exit path (daemon children terminated, `proc.exit`
    /// recorded, the trace and stdio flushed).
    public static func exit(_ status: Int32 = 0) -> Never {
        TangleRuntime.exitProcess(status)
    }
}
