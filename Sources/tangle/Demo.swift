import ArgumentParser
import Foundation
import TangleTrace

/// `tangle demo [--trace-dir DIR]` (interim, until the scenarios exist): records a small
/// multi-threaded, multi-process workload — this process and two children re-executed from the
/// same binary with TANGLE_TRACE set — then prints `tangle stats` of the directory.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Record a small multi-process, multi-threaded workload and print its trace statistics.")

    @Option(name: .long, help: "Where to write the trace (default: a fresh directory, printed).")
    var traceDir: String?

    @Option(name: .long, help: "Rounds per thread.")
    var rounds = 200

    func run() throws {
        let dir: String
        if let traceDir {
            dir = traceDir
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
                throw failUnusable("\(dir): cannot create the trace directory")
            }
        } else {
            var template = Array((NSTemporaryDirectory() + "/tangle-demo-XXXXXX").utf8CString)
            guard let p = mkdtemp(&template) else { throw failUnusable("cannot create a temporary directory") }
            dir = String(cString: p)
        }
        setenv("TANGLE_TRACE", dir, 1)
        guard Recorder.isEnabled, Recorder.directory == dir else {
            throw failUnusable("the recorder was read before TANGLE_TRACE could be set")
        }
        print("trace directory: \(dir)")
        Recorder.start(processObject: Recorder.newObjectID(), name: "demo")
        let lock = Recorder.newObjectID()
        let queue = Recorder.newObjectID()
        Recorder.record(.lockNew, object: lock, text: "demo.lock", a: LockType.lock.rawValue, b: 1)
        Recorder.record(.queueNew, object: queue, text: "demo.queue", a: 0, b: 1)

        // Two children, re-executed from this binary.
        var children: [(pid: pid_t, object: UInt64)] = []
        for index in 0..<2 {
            let object = Recorder.newObjectID()
            let args = ["tangle", "demo-child", "--index", String(index), "--lock", String(lock),
                        "--queue", String(queue), "--process-object", String(object), "--rounds", String(rounds)]
            var pid: pid_t = 0
            let argv = args.map { strdup($0) } + [nil]
            defer { argv.forEach { free($0) } }
            let rc = posix_spawn(&pid, "/proc/self/exe", nil, nil, argv, environ)
            if rc != 0 { throw failUnusable("cannot start a child: \(String(cString: strerror(rc)))") }
            Recorder.record(.processSpawn, object: object, text: "demo-child", a: UInt64(pid), b: 0)
            children.append((pid, object))
        }

        // Two producer threads here.
        let group = DispatchGroup()
        for t in 0..<2 {
            group.enter()
            Thread {
                demoProducer(thread: t, rounds: rounds, lock: lock, queue: queue)
                group.leave()
            }.start()
        }
        group.wait()

        for child in children {
            Recorder.record(.processJoinWait, object: child.object, a: UInt64(child.pid))
            var status: Int32 = 0
            while waitpid(child.pid, &status, 0) < 0 && errno == EINTR {}
            let exited = (status & 0x7f) == 0
            Recorder.record(.processJoinDone, object: child.object, a: UInt64(child.pid),
                            b: exited ? UInt64((status >> 8) & 0xff) : 0, c: exited ? 0 : UInt64(status & 0x7f))
        }
        Recorder.processExiting(status: 0, signal: 0)

        let stats = try TraceStats.compute(paths: [dir])
        print("tangle stats \(dir):")
        print(stats.text, terminator: "")
    }
}

@inline(never) func demoProducer(thread: Int, rounds: Int, lock: UInt64, queue: UInt64) {
    let me = Recorder.newObjectID()
    Recorder.threadStarted(object: me, name: "producer-\(thread)")
    for _ in 0..<rounds {
        Recorder.record(.lockAcquired, object: lock, a: 1)
        let msg = Recorder.newMessageID()
        Recorder.record(.queuePut, object: queue, a: msg, b: 48)
        Recorder.record(.lockReleased, object: lock)
        usleep(50)
    }
    Recorder.threadExited(object: me)
}

/// The demo's child process (hidden verb).
struct DemoChild: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "demo-child", shouldDisplay: false)

    @Option var index = 0
    @Option var lock: UInt64 = 0
    @Option var queue: UInt64 = 0
    @Option var processObject: UInt64 = 0
    @Option var rounds = 200

    func run() throws {
        Recorder.start(processObject: processObject, name: "demo-child-\(index)")
        let group = DispatchGroup()
        for t in 0..<2 {
            group.enter()
            Thread {
                demoConsumer(rounds: rounds / 2, lock: lock, queue: queue, thread: t)
                group.leave()
            }.start()
        }
        group.wait()
        Recorder.processExiting(status: 0, signal: 0)
    }
}

@inline(never) func demoConsumer(rounds: Int, lock: UInt64, queue: UInt64, thread: Int) {
    let me = Recorder.newObjectID()
    Recorder.threadStarted(object: me, name: "consumer-\(thread)")
    for i in 0..<rounds {
        if i % 10 == 0 {
            Recorder.record(.queueGetWait, object: queue)   // flushes: a wait
            usleep(200)
        }
        Recorder.record(.queueGet, object: queue, a: Recorder.newMessageID(), b: 48)
        Recorder.record(.lockWait, object: lock)
        Recorder.record(.lockAcquired, object: lock, a: 1)
        Recorder.record(.queueTaskDone, object: queue, a: UInt64(rounds - i - 1))
        Recorder.record(.lockReleased, object: lock)
    }
    Recorder.threadExited(object: me)
}
