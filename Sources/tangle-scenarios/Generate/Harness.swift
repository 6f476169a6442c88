import Glibc
import TangleTraceReader

// The harness: runs one generated program traced, in its own process group, watches the slot
// table until the program ends or goes quiet (no slot changed for `quietMs` while nothing is still
// starting) or the timeout hits, takes the ground truth from the table at that moment, then stops
// the program the way `tangle run` does (SIGTERM to the group so the recorders flush, SIGKILL after
// the grace, the trace cut at the SIGTERM) and analyzes the trace with the real analyzer
// (`tangle analyze --format json`).

struct HarnessOptions: Sendable {
    var tangle: String
    var timeout: Double = 10
    var quietMs: Int = 300
    var grace: Double = 1
    var keep: String?
}

/// What became of one thread, from the slot table when the harness decided.
enum ThreadFate: String, Sendable {
    /// In an op, its process alive, nothing changed for the quiet period: blocked for good.
    case blocked
    case finished
    /// Its process ended while it was still in an op (an unjoined thread of an exiting process).
    case gone
    case unstarted
    /// Still moving when the timeout hit: no verdict.
    case running
}

struct ThreadTruth: Sendable {
    var ref: ThreadRef
    var fate: ThreadFate
    var op: Int
    var object: UInt64
    var pid: Int32
    var threadName: String { ref.thread == 0 ? "MainThread" : "T\(ref.thread)" }
}

struct RunResult: @unchecked Sendable {
    var program: Program
    var threads: [ThreadTruth] = []
    /// A copy of the slot table when the harness decided.
    var table: SlotTable?
    /// The program ended by itself (every process exited) without being stopped.
    var completed = false
    /// The harness saw it go quiet (or end); false when the timeout hit while it still moved.
    var decided = false
    var mainStatus: Int32 = 0
    var report: JSON?
    var error: String?
    var seconds: Double = 0
    var traceDir = ""
    /// Seconds until the verdict, to stop the program, to analyze.
    var phases: [Double] = []

    var blocked: [ThreadTruth] { threads.filter { $0.fate == .blocked } }
}

func monotonicNs() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// This executable, resolved.
func selfExecutable() -> String {
    var buf = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buf, buf.count - 1)
    return n > 0 ? String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
}

/// True when `pid` has ended (gone, or a zombie nobody reaped yet).
func processEnded(_ pid: Int32) -> Bool {
    guard let state = statState("/proc/\(pid)/stat") else { return true }
    return state == UInt8(ascii: "Z") || state == UInt8(ascii: "X")
}

/// The kernel's state letter of one thread (R running/runnable, S sleeping, …), nil when gone.
func taskState(pid: Int32, tid: Int32) -> UInt8? { statState("/proc/\(pid)/task/\(tid)/stat") }

private func statState(_ path: String) -> UInt8? {
    let fd = open(path, O_RDONLY)
    if fd < 0 { return nil }
    var buf = [UInt8](repeating: 0, count: 512)
    let n = read(fd, &buf, buf.count)
    close(fd)
    // "pid (comm) S …": the state follows the last ')'.
    guard n > 0, let close = buf[0..<n].lastIndex(of: UInt8(ascii: ")")), close + 2 < n else { return nil }
    return buf[close + 2]
}

/// Makes this process the reaper of the orphans of its descendants (prctl is variadic in C, so it
/// is called through its address with the one signature it needs).
func becomeSubreaper() {
    typealias Prctl = @convention(c) (Int32, UInt, UInt, UInt, UInt) -> Int32
    guard let sym = dlsym(nil, "prctl") else { return }   // RTLD_DEFAULT
    _ = unsafeBitCast(sym, to: Prctl.self)(36 /* PR_SET_CHILD_SUBREAPER */, 1, 0, 0, 0)
}

enum Harness {
    nonisolated(unsafe) static var counter = 0
    static let counterLock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    static let setup: Void = { pthread_mutex_init(counterLock, nil) }()

    static func uniqueName() -> String {
        _ = setup
        pthread_mutex_lock(counterLock)
        counter += 1
        let n = counter
        pthread_mutex_unlock(counterLock)
        return "tangle-gen-\(getpid())-\(n)"
    }

    static func run(seed: UInt64, options: HarnessOptions) -> RunResult {
        let started = monotonicNs()
        var result = RunResult(program: Generator.program(seed: seed))
        let name = uniqueName()
        let shmName = "/" + name
        guard let table = SlotTable.create(shmName) else {
            result.error = "cannot create the slot table \(shmName): \(String(cString: strerror(errno)))"
            return result
        }
        defer { table.unmap(); shm_unlink(shmName) }
        var template = Array(((options.keep ?? "/tmp") + "/seed-\(seed)-XXXXXX").utf8CString)
        if options.keep != nil { mkdir(options.keep!, 0o755) }
        guard let d = mkdtemp(&template) else {
            result.error = "cannot create a trace directory: \(String(cString: strerror(errno)))"
            return result
        }
        let dir = String(cString: d)
        result.traceDir = dir

        // The program: `tangle-scenarios gen-run SEED TABLE`, traced into DIR, its own process group.
        var env: [String] = []
        var e = environ
        while let p = e.pointee {
            let s = String(cString: p)
            if !s.hasPrefix("TANGLE_TRACE=") && !s.hasPrefix("SWIFT_BACKTRACE=") { env.append(s) }
            e += 1
        }
        env += ["TANGLE_TRACE=\(dir)", "SWIFT_BACKTRACE=enable=no"]
        guard let pid = spawnProcess([selfExecutable(), "gen-run", String(seed), shmName], env: env,
                                     output: dir + "/program.log", newGroup: true) else {
            result.error = "cannot start the program: \(String(cString: strerror(errno)))"
            if options.keep == nil { removeTree(dir) }
            return result
        }

        // Watch until it ends, goes quiet, or the timeout hits.
        let program = result.program
        var lastVersions: [UInt64] = []
        var lastChange = monotonicNs()
        let deadline = started + UInt64(options.timeout * 1e9)
        var reaped = false
        var status: Int32 = 0
        while true {
            // Reap the group: the main process and, the harness being their subreaper, the
            // children it left behind (so that an orphan's exit ends the group).
            var st: Int32 = 0
            while case let r = waitpid(-pid, &st, WNOHANG), r > 0 { if r == pid { status = st; reaped = true } }
            let now = monotonicNs()
            if reaped && kill(-pid, 0) != 0 {
                result.completed = true
                result.decided = true
                break
            }
            var versions: [UInt64] = []
            for p in 0..<program.processes.count {
                versions.append(UInt64(bitPattern: Int64(table.pid(p))))
                for t in 0..<program.processes[p].threads.count { versions.append(table.version(ThreadRef(process: p, thread: t))) }
            }
            if versions != lastVersions {
                lastVersions = versions
                lastChange = now
            }
            let quietFor = now - lastChange
            if quietFor >= UInt64(options.quietMs) * 1_000_000 && (!starting(program, table) || quietFor > 3_000_000_000)
                && (!runnable(program, table) || quietFor > 3_000_000_000) {
                result.decided = true
                break
            }
            if now >= deadline { break }
            usleep(5_000)
        }

        let decidedAt = monotonicNs()
        // The ground truth, before anything is stopped.
        let copy = UnsafeMutablePointer<UInt64>.allocate(capacity: SlotTable.words)
        copy.update(from: table.base, count: SlotTable.words)
        let snapshot = SlotTable(base: copy)
        result.table = snapshot
        var ended: [Bool] = []
        for p in 0..<program.processes.count {
            let ppid = snapshot.pid(p)
            ended.append(ppid == 0 || result.completed || processEnded(ppid))
        }
        for p in 0..<program.processes.count {
            for t in 0..<program.processes[p].threads.count {
                let ref = ThreadRef(process: p, thread: t)
                let fate: ThreadFate
                switch snapshot.state(ref) {
                case .unstarted: fate = .unstarted
                case .finished: fate = .finished
                case .running, .inOp:
                    if ended[p] || snapshot.exiting(p) { fate = .gone }
                    else if result.decided && snapshot.state(ref) == .inOp { fate = .blocked }
                    else { fate = .running }
                }
                result.threads.append(ThreadTruth(ref: ref, fate: fate, op: snapshot.opIndex(ref),
                                                  object: snapshot.object(ref), pid: snapshot.pid(p)))
            }
        }
        // A thread between ops while the program went quiet is stuck outside every traced
        // operation (a child forked while other threads ran, stuck on a lock one of them held): it
        // may be the waker of any blocked thread, and no trace can say, so there is no verdict.
        // So is a child or thread that its parent started and that never began (a child forked while
        // other threads ran, stuck before its first op).
        // And so is a process every thread of which finished but that has not ended: it is stuck in
        // its exit (a child forked while other threads ran, on a lock one of them held at the fork).
        let stuckInExit = program.processes.indices.contains { p in
            !ended[p] && !result.threads.filter { $0.ref.process == p }.isEmpty
                && result.threads.filter { $0.ref.process == p }.allSatisfy { $0.fate == .finished }
        }
        if result.decided && !result.completed
            && (result.threads.contains(where: { $0.fate == .running }) || Self.starting(program, snapshot) || stuckInExit) {
            result.decided = false
            for i in result.threads.indices where result.threads[i].fate == .blocked { result.threads[i].fate = .running }
        }

        // Stop what is left, like `tangle run`: SIGTERM, grace, SIGKILL; then cut the trace there.
        if !result.completed {
            let stopTime = monotonicNs()
            kill(-pid, SIGTERM)
            let end = stopTime + UInt64(options.grace * 1e9)
            while monotonicNs() < end {
                var st: Int32 = 0
                while case let r = waitpid(-pid, &st, WNOHANG), r > 0 { if r == pid { status = st; reaped = true } }
                if reaped && kill(-pid, 0) != 0 { break }
                usleep(5_000)
            }
            kill(-pid, SIGKILL)
            if !reaped { while waitpid(pid, &status, 0) < 0 && errno == EINTR {} }
            for _ in 0..<100 where kill(-pid, 0) == 0 {
                var st: Int32 = 0
                while waitpid(-pid, &st, WNOHANG) > 0 {}
                usleep(5_000)
            }
            do {
                _ = try TraceCut.cut(directory: dir, at: stopTime)
            } catch {
                result.error = "cannot cut the trace: \(error)"
            }
        } else {
            result.mainStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        }

        let stoppedAt = monotonicNs()
        // The analyzer's view.
        let reportFile = dir + ".report.json"
        let st = runAndWait([options.tangle, "analyze", "--format", "json", "--output", reportFile, dir], output: dir + ".analyze.log")
        if st == 0 || st == 1, let bytes = readFile(reportFile), let json = JSON.parse(bytes) {
            result.report = json
        } else if result.error == nil {
            result.error = "tangle analyze failed (status \(st)): \(String(decoding: readFile(dir + ".analyze.log") ?? [], as: UTF8.self).prefix(300))"
        }
        unlink(dir + ".analyze.log")
        if options.keep == nil {
            unlink(reportFile)
            removeTree(dir)
        }
        result.seconds = Double(monotonicNs() - started) / 1e9
        result.phases = [decidedAt - started, stoppedAt - decidedAt, monotonicNs() - stoppedAt].map { Double($0 / 1_000_000) / 1000 }
        return result
    }

    /// Some thread in an op is runnable, not asleep in the kernel: on a loaded machine it may only
    /// be waiting for a CPU, so the quiet period proves nothing yet.
    static func runnable(_ program: Program, _ table: SlotTable) -> Bool {
        for p in program.processes.indices {
            let pid = table.pid(p)
            guard pid != 0 else { continue }
            for t in program.processes[p].threads.indices {
                let ref = ThreadRef(process: p, thread: t)
                guard table.state(ref) == .inOp, table.tid(ref) != 0 else { continue }
                if taskState(pid: pid, tid: table.tid(ref)) == UInt8(ascii: "R") { return true }
            }
        }
        return false
    }

    /// A child or thread was started (its starter went past the start op) but has not published
    /// anything yet: the program is not quiet, only slow to start.
    static func starting(_ program: Program, _ table: SlotTable) -> Bool {
        for p in program.processes.indices {
            let main = ThreadRef(process: p, thread: 0)
            let mainState = table.state(main)
            if mainState == .unstarted { continue }
            let past = { (i: Int) in mainState == .finished || table.opIndex(main) > i }
            for (i, op) in program.processes[p].threads[0].ops.enumerated() {
                switch op {
                case let .startThread(t) where past(i):
                    if table.state(ThreadRef(process: p, thread: t)) == .unstarted && !table.exiting(p) { return true }
                case let .startChild(k) where past(i):
                    if table.state(ThreadRef(process: k, thread: 0)) == .unstarted && table.counter(main, row: ProcessRun.childRow(k), .c0) > 0 {
                        return true
                    }
                default: break
                }
            }
        }
        return false
    }
}

// MARK: small process and file helpers (no Foundation)

/// posix_spawn of `argv` with `env`, stdout+stderr to `output`; its own process group when asked.
func spawnProcess(_ argv: [String], env: [String], output: String, newGroup: Bool) -> pid_t? {
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
    if newGroup { flags |= POSIX_SPAWN_SETPGROUP }
    posix_spawnattr_setflags(&attr, Int16(flags))
    posix_spawnattr_setpgroup(&attr, 0)
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigmask(&attr, &empty)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for s in [SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT] { sigaddset(&defaults, s) }
    posix_spawnattr_setsigdefault(&attr, &defaults)
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    let cargv = argv.map { strdup($0) } + [nil]
    let cenv = env.map { strdup($0) } + [nil]
    defer { cargv.forEach { free($0) }; cenv.forEach { free($0) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, argv[0], &actions, &attr, cargv, cenv)
    if rc != 0 { errno = rc; return nil }
    return pid
}

/// Runs `argv` to its end (output to `output`); its exit status, or -1.
func runAndWait(_ argv: [String], output: String) -> Int32 {
    var env: [String] = []
    var e = environ
    while let p = e.pointee { env.append(String(cString: p)); e += 1 }
    guard let pid = spawnProcess(argv, env: env, output: output, newGroup: false) else { return -1 }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return (status & 0x7f) == 0 ? (status >> 8) & 0xff : -1
}

func readFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY)
    if fd < 0 { return nil }
    defer { close(fd) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(fd, &buf, buf.count)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        out += buf[0..<n]
    }
    return out
}

func writeFile(_ path: String, _ text: String) -> Bool {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    if fd < 0 { return false }
    defer { close(fd) }
    let bytes = Array(text.utf8)
    var off = 0
    while off < bytes.count {
        let n = bytes[off...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n <= 0 { return false }
        off += n
    }
    return true
}

/// rm -r (the trace directory and its after-stop/ folder).
func removeTree(_ path: String) {
    if let d = opendir(path) {
        while let ent = readdir(d) {
            let name = withUnsafeBytes(of: ent.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name == "." || name == ".." { continue }
            let full = path + "/" + name
            var st = stat()
            if lstat(full, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR { removeTree(full) } else { unlink(full) }
        }
        closedir(d)
    }
    rmdir(path)
}
