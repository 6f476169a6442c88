import CTangleSupport
import Glibc
import TangleTraceFormat
import TangleRecorder

/// A worker process (Python's `multiprocessing.Process`; named `ChildProcess` so that it compiles
/// beside `Foundation.Process`). It runs a registered entry point with Codable arguments — started
/// by *spawn* (posix_spawn re-executing this program; the safe default) or by *fork* (opt-in) — or,
/// with `init(name:daemon:fork:)`, a closure in a forked copy of this process.
///
/// ```swift
/// let child = ChildProcess(entryPoint: "consumer", arguments: ConsumerArgs(queue: q, count: 10))
/// try child.start()
/// let status = child.join()          // .exited(0)
/// ```
public final class ChildProcess: @unchecked Sendable {
    public enum StartMethod: String, Sendable {
        /// posix_spawn of /proc/self/exe; the child runs the program's bootstrap, which routes it to
        /// the entry point. Nothing of the parent's memory is shared: the safe default.
        case spawn
        /// fork(2): the child is a copy of the parent (its heap, its locks in whatever state other
        /// threads left them). Fast, but only safe when the parent runs no other threads at the time
        /// — Tangle records `proc.fork` with the number of other threads so the analyzer can warn.
        case fork
    }

    /// How a child ended.
    public enum ExitStatus: Equatable, Sendable, CustomStringConvertible {
        case exited(Int32)
        case signaled(Int32)

        /// Python's `exitcode`: the exit status, or minus the signal number.
        public var code: Int32 {
            switch self {
            case let .exited(s): s
            case let .signaled(sig): -sig
            }
        }

        public var description: String {
            switch self {
            case let .exited(s): "exited(\(s))"
            case let .signaled(sig): "signaled(\(sig))"
            }
        }
    }

    public let name: String
    public let daemon: Bool
    public let method: StartMethod
    /// The entry point it runs (nil for a forked closure).
    public let entryPoint: String?
    /// The trace's object id of this process.
    public let object: UInt64

    let identity: String
    private let encodeArguments: (() throws -> [UInt8])?
    /// The static type of the arguments given (checked against the entry point's registration).
    private var argumentType: String?
    private let forkBody: (() throws -> Void)?

    let lock = CondLock()
    private var _pid: Int32 = 0
    var pidfd: Int32 = -1
    private var _status: ExitStatus?
    var started = false

    /// A child that runs the entry point registered as `entryPoint` with `arguments`. Handles to
    /// Tangle objects inside `arguments` are passed to the child (their descriptors stay open at the
    /// same numbers there).
    public init<A: Encodable>(
        entryPoint: String, arguments: A, name: String? = nil, daemon: Bool = false, method: StartMethod? = nil
    ) {
        let (identity, defaultName) = ProcessState.shared.nextChildIdentity()
        self.identity = identity
        self.name = name ?? defaultName
        self.daemon = daemon
        self.method = method ?? TangleRuntime.defaultStartMethod
        self.entryPoint = entryPoint
        self.object = Recorder.newObjectID()
        self.encodeArguments = { try ArgumentCoding.encode(arguments) }
        self.argumentType = A.self == NoArguments.self ? "()" : "\(A.self)"
        self.forkBody = nil
    }

    /// A child that runs the entry point registered as `entryPoint`, which takes no arguments.
    public convenience init(entryPoint: String, name: String? = nil, daemon: Bool = false, method: StartMethod? = nil) {
        self.init(entryPoint: entryPoint, arguments: NoArguments(), name: name, daemon: daemon, method: method)
    }

    /// A child that runs `body` in a forked copy of this process and exits (status 0, or 1 when it
    /// throws; call `CurrentProcess.exit(_:)` inside for another status). See `StartMethod.fork`.
    public init(name: String? = nil, daemon: Bool = false, fork body: @escaping () throws -> Void) {
        let (identity, defaultName) = ProcessState.shared.nextChildIdentity()
        self.identity = identity
        self.name = name ?? defaultName
        self.daemon = daemon
        self.method = .fork
        self.entryPoint = nil
        self.object = Recorder.newObjectID()
        self.encodeArguments = nil
        self.forkBody = body
    }

    deinit {
        if pidfd >= 0 { close(pidfd) }
    }

    /// The child's pid (0 before `start`).
    public var pid: Int32 { lock.withLock { _pid } }

    /// How it ended, once reaped (by `join`, `isAlive` or `exitCode`).
    public var status: ExitStatus? {
        _ = reapIfExited()
        return lock.withLock { _status }
    }

    /// Python's `exitcode`: nil while running, the status, or minus the terminating signal.
    public var exitCode: Int32? { status?.code }

    /// True between `start` and the child's end (reaps it when it has ended).
    public var isAlive: Bool {
        guard lock.withLock({ started }) else { return false }
        return reapIfExited() == nil
    }

    // MARK: start

    /// Starts the child. Throws when the entry point is not registered in this executable, when an
    /// argument cannot be encoded or names a closed descriptor, or when spawn/fork fails.
    public func start() throws {
        try lock.withLock {
            if started { throw ProcessError.alreadyStarted(name) }
            started = true
        }
        TangleRuntime.ensureStarted()
        if let entryPoint, method == .spawn, !EntryPoint.isBuiltIn(entryPoint), !TangleRuntime.childrenCanBeRouted {
            // The spawned child would re-run this program's main without ever reaching the entry
            // point (or find it unregistered): say so here, not as the child's exit status.
            lock.withLock { started = false }
            throw ProcessError.bootstrapMissing(name, entry: entryPoint)
        }
        if let entryPoint, !EntryPoint.isRegistered(entryPoint) {
            EntryPoint.runTestHooksOnce()
            if !EntryPoint.isRegistered(entryPoint) {
                lock.withLock { started = false }
                throw ProcessError.unregisteredEntryPoint(entryPoint, registered: EntryPoint.registeredNames)
            }
        }
        // (An entry point without arguments ignores what it is given: nothing to check.)
        if let entryPoint, let given = argumentType, let expected = EntryPoint.lookup(entryPoint)?.argumentType,
           expected != "()", given != expected {
            lock.withLock { started = false }
            throw ProcessError.argumentTypeMismatch(name, entry: entryPoint, expected: expected, given: given)
        }
        do {
            switch method {
            case .spawn: try startSpawned()
            case .fork: try startForked()
            }
        } catch {
            lock.withLock { started = false }
            throw error
        }
        let fd = tangle_pidfd_open(_pid)
        lock.withLock { pidfd = fd }
        ProcessState.shared.lock.withLock { ProcessState.shared.children[object] = self }
    }

    private func encoded() throws -> ([UInt8], [Int32]) {
        guard let encodeArguments else { return ([], []) }
        let (bytes, fds): ([UInt8], [Int32])
        do {
            (bytes, fds) = try HandleTransfer.collectingDescriptors { try encodeArguments() }
        } catch {
            throw ProcessError.argumentEncodingFailed(name, "\(error)")
        }
        for fd in fds where fcntl(fd, F_GETFD) < 0 {
            throw ProcessError.invalidDescriptor(name, fd)
        }
        return (bytes, fds)
    }

    private func startSpawned() throws {
        let (bytes, fds) = try encoded()
        var keep = fds
        var environment = Env.all().filter { entry in
            !ChildEnvironment.all.contains { entry.hasPrefix($0 + "=") }
        }
        environment.append("\(ChildEnvironment.entry)=\(entryPoint ?? "")")
        if !TangleRuntime.isBootstrapped {
            environment.append("\(ChildEnvironment.early)=1")
            if let hooks = TestEntryPoints.environmentValue { environment.append("\(ChildEnvironment.testEntryPoints)=\(hooks)") }
        }
        environment.append("\(ChildEnvironment.object)=\(object)")
        environment.append("\(ChildEnvironment.name)=\(name)")
        environment.append("\(ChildEnvironment.identity)=\(identity)")
        environment.append("\(ChildEnvironment.parent)=\(getpid())")
        if daemon { environment.append("\(ChildEnvironment.daemon)=1") }
        if !fds.isEmpty { environment.append("\(ChildEnvironment.descriptors)=\(fds.map(String.init).joined(separator: ","))") }
        var memfd: Int32 = -1
        defer { if memfd >= 0 { close(memfd) } }
        if bytes.count <= ArgumentPassing.environmentLimit {
            environment.append("\(ChildEnvironment.arguments)=\(Hex.encode(bytes))")
        } else {
            memfd = tangle_memfd_create("tangle-args")
            if memfd < 0 { throw ProcessError.spawnFailed(name, errno) }
            if !FD.writeAll(memfd, bytes) { throw ProcessError.spawnFailed(name, errno) }
            keep.append(memfd)
            environment.append("\(ChildEnvironment.argumentsFD)=\(memfd)")
        }
        let argv0 = CommandLine.arguments.first ?? "tangle-child"
        // The spawn is recorded once the pid is known, but timed now: before the child can record
        // its start (time order is what happens-before follows).
        let spawnTime = Recorder.time()
        let childPID: Int32
        if daemon && tangle_runtime_gettid() != getpid() {
            // PR_SET_PDEATHSIG fires when the *thread* that started the child exits: a daemon
            // started from a short-lived thread would die with that thread. Spawn it from a
            // thread that lives as long as the process.
            var result: Result<Int32, Error> = .failure(ProcessError.spawnFailed(name, EAGAIN))
            DaemonSpawner.run {
                result = Result { try Spawner.spawn(path: "/proc/self/exe", argv: [argv0], environment: environment, keep: keep) }
            }
            childPID = try result.get()
        } else {
            childPID = try Spawner.spawn(path: "/proc/self/exe", argv: [argv0], environment: environment, keep: keep)
        }
        lock.withLock { _pid = childPID }
        Recorder.record(.processSpawn, object: object, text: entryPoint ?? name, a: UInt64(childPID), b: 0, at: spawnTime)
    }

    private func startForked() throws {
        let bytes = try encoded().0
        // Other threads running now, not counting the recorder's own flusher thread (the recorder
        // makes itself fork-safe with pthread_atfork; counting it would flag every traced fork).
        let otherThreads = countThreads() - 1 - (Recorder.isEnabled ? 1 : 0)
        let parent = getpid()
        Recorder.flush()
        let forkTime = Recorder.time()  // (see startSpawned)
        let childPID = tangle_fork()
        if childPID < 0 { throw ProcessError.forkFailed(name, errno) }
        if childPID == 0 {
            TangleRuntime.becomeForkedChild(object: object, name: name, identity: identity, parent: parent, daemon: daemon)
            let status: Int32
            if let forkBody {
                do {
                    try forkBody()
                    status = 0
                } catch {
                    FD.printError("tangle: forked process \(name) (pid \(getpid())) threw: \(error)")
                    status = TangleRuntime.exitStatusEntryPointThrew
                }
            } else {
                status = TangleRuntime.runEntryPoint(entryPoint ?? "", bytes)
            }
            TangleRuntime.exitProcess(status)
        }
        lock.withLock { _pid = childPID }
        Recorder.record(.processSpawn, object: object, text: entryPoint ?? name, a: UInt64(childPID), b: 1, at: forkTime)
        Recorder.record(.processFork, object: object, text: nil, a: UInt64(childPID), b: UInt64(max(otherThreads, 0)), at: forkTime)
    }

    // MARK: join, signals

    /// Waits until the child ends, or until `timeout` passes (nil = forever). Returns how it ended,
    /// nil on timeout. Records `proc.join-wait` only when it really blocks, then `proc.join-done`
    /// with the status and signal (`r: timeout` when it gave up).
    @discardableResult
    public func join(timeout: Duration? = nil) -> ExitStatus? {
        _steer()
        let (wasStarted, childPID, fd) = lock.withLock { (started, _pid, pidfd) }
        precondition(wasStarted, "join() on process \(name) that was never started")
        let deadline = Clock.deadline(after: timeout)
        if let done = reapIfExited() {
            recordJoinDone(done, pid: childPID)
            return done
        }
        if let deadline, Clock.now() >= deadline {
            Recorder.record(.processJoinDone, object: object, a: UInt64(childPID), result: .timeout)
            return nil
        }
        Recorder.record(.processJoinWait, object: object, a: UInt64(childPID))
        while true {
            if fd >= 0 {
                _ = tangle_poll_readable(fd, Clock.pollTimeout(until: deadline))
            } else {
                usleep(1000)
            }
            if let done = reapIfExited() {
                recordJoinDone(done, pid: childPID)
                return done
            }
            if let deadline, Clock.now() >= deadline {
                Recorder.record(.processJoinDone, object: object, a: UInt64(childPID), result: .timeout)
                return nil
            }
        }
    }

    func recordJoinDone(_ status: ExitStatus, pid: Int32) {
        switch status {
        case let .exited(code):
            Recorder.record(.processJoinDone, object: object, a: UInt64(pid), b: UInt64(UInt32(bitPattern: code)), c: 0)
        case let .signaled(sig):
            Recorder.record(.processJoinDone, object: object, a: UInt64(pid), b: 0, c: UInt64(sig))
        }
    }

    /// Reaps the child if it has ended (waitpid WNOHANG); its status, or nil while it runs.
    func reapIfExited() -> ExitStatus? {
        let result: ExitStatus? = lock.withLock {
            if let s = _status { return s }
            guard started, _pid > 0 else { return nil }
            var raw: Int32 = 0
            let r = waitpid(_pid, &raw, WNOHANG)
            if r == _pid {
                if tangle_wifsignaled(raw) != 0 {
                    _status = .signaled(tangle_wtermsig(raw))
                } else {
                    _status = .exited(tangle_wexitstatus(raw))
                }
                return _status
            }
            if r < 0 && errno == ECHILD {
                // Reaped behind our back (SIGCHLD ignored, or another waitpid(-1)): status unknown.
                _status = .exited(-1)
                return _status
            }
            return nil
        }
        if result != nil {
            ProcessState.shared.lock.withLock { _ = ProcessState.shared.children.removeValue(forKey: object) }
        }
        return result
    }

    /// Sends SIGTERM (Python's `terminate()`); records `proc.terminate`. No-op once reaped.
    public func terminate() { signal(SIGTERM, kind: .processTerminate) }

    /// Sends SIGKILL (Python's `kill()`); records `proc.kill`. No-op once reaped.
    public func kill() { signal(SIGKILL, kind: .processKill) }

    private func signal(_ sig: Int32, kind: EventKind) {
        lock.withLock {
            guard started, _pid > 0, _status == nil else { return }
            Recorder.record(kind, object: object, a: UInt64(_pid))
            // pidfd: never signals a recycled pid.
            if pidfd >= 0 {
                _ = tangle_pidfd_send_signal(pidfd, sig)
            } else {
                _ = Glibc.kill(_pid, sig)
            }
        }
    }
}

extension ChildProcess: CustomStringConvertible {
    public var description: String {
        let (p, s, st) = lock.withLock { (_pid, _status, started) }
        let state = s.map { "\($0)" } ?? (st ? "started" : "initial")
        return "<ChildProcess name='\(name)' pid=\(p) \(state)\(daemon ? " daemon" : "")>"
    }
}

/// The arguments of an entry point that takes none.
struct NoArguments: Codable {}

enum ArgumentPassing {
    /// Encoded arguments up to this size travel hex-encoded in an environment variable; larger ones
    /// in a memfd the child inherits (no size limit, no blocking, no SIGPIPE).
    static let environmentLimit = 8 * 1024
}

/// Errors of starting and managing child processes.
public enum ProcessError: Error, CustomStringConvertible, Equatable {
    case unregisteredEntryPoint(String, registered: [String])
    case alreadyStarted(String)
    case argumentEncodingFailed(String, String)
    /// A handle in the arguments names a descriptor that is not open (closed handle).
    case invalidDescriptor(String, Int32)
    case spawnFailed(String, Int32)
    case forkFailed(String, Int32)
    /// `TangleRuntime.setStartMethod` called again with another method (without `force`).
    case startMethodAlreadySet(current: String)
    /// A child was to be spawned, but this program never called `TangleRuntime.bootstrap()`.
    case bootstrapMissing(String, entry: String)
    /// The arguments' type is not the one the entry point was registered with.
    case argumentTypeMismatch(String, entry: String, expected: String, given: String)

    public var description: String {
        switch self {
        case let .unregisteredEntryPoint(entry, registered):
            "entry point '\(entry)' is not registered (registered: \(registered.isEmpty ? "none" : registered.joined(separator: ", "))); "
                + "call EntryPoint.register(\"\(entry)\") { … } before TangleRuntime.bootstrap()"
        case let .alreadyStarted(name): "process \(name) was already started"
        case let .argumentEncodingFailed(name, why): "cannot encode the arguments of \(name): \(why)"
        case let .invalidDescriptor(name, fd): "cannot pass descriptor \(fd) to \(name): it is not open (a closed handle?)"
        case let .spawnFailed(name, err): "cannot spawn \(name): \(String(cString: strerror(err)))"
        case let .forkFailed(name, err): "cannot fork \(name): \(String(cString: strerror(err)))"
        case let .startMethodAlreadySet(current): "the start method is already set (to \(current)); pass force: true to change it"
        case let .argumentTypeMismatch(name, entry, expected, given):
            "cannot start \(name): entry point '\(entry)' takes \(expected), but it was given \(given) "
                + "(start it with the handle EntryPoint.register returned to have this checked at compile time)"
        case let .bootstrapMissing(name, entry):
            "cannot spawn \(name) to run entry point '\(entry)': this program never called TangleRuntime.bootstrap(); "
                + "call it first in main, after registering entry points (a spawned child re-executes the program "
                + "and is routed to its entry point by the bootstrap; a test target calls "
                + "TangleRuntime.registerTestEntryPoints(_:) instead)"
        }
    }
}

/// posix_spawn with descriptors kept at their numbers (runtime_support.c).
enum Spawner {
    static func spawn(path: String, argv: [String], environment: [String], keep: [Int32]) throws -> Int32 {
        var cArgv: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        var cEnv: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        defer {
            for p in cArgv { free(p) }
            for p in cEnv { free(p) }
        }
        var pid: Int32 = 0
        let rc = cArgv.withUnsafeMutableBufferPointer { a in
            cEnv.withUnsafeMutableBufferPointer { e in
                keep.withUnsafeBufferPointer { k in
                    tangle_spawn(&pid, path, a.baseAddress, e.baseAddress, k.baseAddress, Int32(k.count), 1)
                }
            }
        }
        if rc != 0 { throw ProcessError.spawnFailed(argv.first ?? path, rc) }
        return pid
    }
}

/// A thread that lives as long as the process and performs the posix_spawn of daemon children
/// requested from other threads than the main one (see `startSpawned`).
enum DaemonSpawner {
    private final class Request {
        let work: () -> Void
        var done = false
        init(_ work: @escaping () -> Void) { self.work = work }
    }

    private static let lock = CondLock()
    nonisolated(unsafe) private static var queue: [Request] = []
    nonisolated(unsafe) private static var running = false

    static func run(_ work: @escaping () -> Void) {
        let request = Request(work)
        lock.withLock {
            if !running {
                running = true
                var thread = pthread_t()
                var attr = pthread_attr_t()
                pthread_attr_init(&attr)
                pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
                _ = pthread_create(&thread, &attr, { _ in DaemonSpawner.serve() }, nil)
                pthread_attr_destroy(&attr)
            }
            queue.append(request)
            lock.broadcast()
            while !request.done { _ = lock.wait(until: nil) }
        }
    }

    private static func serve() -> Never {
        while true {
            let request = lock.withLock { () -> Request in
                while queue.isEmpty { _ = lock.wait(until: nil) }
                return queue.removeFirst()
            }
            request.work()
            lock.withLock {
                request.done = true
                lock.broadcast()
            }
        }
    }

    /// In a forked child: the serving thread does not exist there.
    static func reinitializeAfterFork() {
        lock.reinitializeAfterFork()
        queue = []
        running = false
    }
}
