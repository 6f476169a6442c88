import Foundation
import XCTest
import CTangleSupport
@testable import TangleTraceFormat
@testable import TangleRecorder
@testable import TangleTraceReader
import TangleTestSupport

// Children of the test binary: the C constructor in trace_support.c calls this before XCTest's
// main when TANGLE_TRACE_TEST_CHILD=<name> is set, and _exits with what it returns.
@_cdecl("tangle_trace_test_child")
func tangleTraceTestChild(_ name: UnsafePointer<CChar>) -> Int32 {
    let n = String(cString: name)
    guard let body = TraceChildren.all[n] else { return 99 }
    return body()
}

enum TraceChildren {
    static let all: [String: () -> Int32] = [
        "roundtrip": roundTrip,
        "blocked": blocked,
        "threads": manyThreads,
        "fork": forkChild,
        "stacks": repeatedStacks,
        "clock": bracketedTimes,
        "paths": twoPaths,
        "entries": entryPoints,
        "retry": retryAfterFullRing,
        "longname": longName,  // (SafeReadingTests)
    ]

    static func env(_ key: String) -> String? { ProcessInfo.processInfo.environment[key] }

    /// One event of every kind, args derived from the kind (see `expectedEvent`).
    static func roundTrip() -> Int32 {
        Recorder.start(processObject: 77, name: "roundtrip")
        for kind in EventKind.allCases where kind != .processStart && kind != .processExit {
            let e = expectedEvent(kind)
            if let text = e.text {
                Recorder.record(kind, object: e.object, text: text, a: e.a, b: e.b, c: e.c, result: e.result, stack: kind.rawValue % 2 == 0)
            } else {
                Recorder.record(kind, object: e.object, a: e.a, b: e.b, c: e.c, result: e.result, stack: kind.rawValue % 2 == 0)
            }
        }
        Recorder.processExiting(status: 3, signal: 0)
        return 0
    }

    /// Records events then blocks (after a wait event) until killed. Writes "ready" to the file
    /// named by TANGLE_TEST_READY once blocked.
    static func blocked() -> Int32 {
        Recorder.start(processObject: 5, name: "blocked")
        for i in 0..<1000 {
            Recorder.record(.queuePut, object: 42, a: UInt64(i + 1), b: 8)
        }
        Recorder.record(.queueGetWait, object: 42)   // flushes before returning
        if let ready = env("TANGLE_TEST_READY") {
            precondition(FileManager.default.createFile(atPath: ready, contents: Data("ready".utf8)), "cannot write the ready file")
        }
        while true { sleep(10) }
    }

    /// THREADS threads × EVENTS events each, at once.
    static func manyThreads() -> Int32 {
        let threads = Int(env("TANGLE_TEST_THREADS") ?? "8") ?? 8
        let events = Int(env("TANGLE_TEST_EVENTS") ?? "20000") ?? 20000
        var ts: [pthread_t] = []
        for t in 0..<threads {
            var tid = pthread_t()
            let arg = UnsafeMutableRawPointer(bitPattern: UInt(t * 1_000_000 + events + 1))
            pthread_create(&tid, nil, { arg in
                let v = Int(bitPattern: UInt(bitPattern: arg))
                let t = v / 1_000_000, n = v % 1_000_000 - 1
                for i in 0..<n {
                    Recorder.record(.lockAcquired, object: UInt64(t + 1), a: UInt64(i), stack: i % 3 == 0)
                    if i % 5000 == 4999 { Recorder.record(.lockWait, object: UInt64(t + 1)) }
                }
                return nil
            }, arg)
            ts.append(tid)
        }
        for t in ts { pthread_join(t, nil) }
        Recorder.processExiting(status: 0, signal: 0)
        return 0
    }

    /// Records, forks; the child records its own events into its own file.
    static func forkChild() -> Int32 {
        Recorder.start(processObject: 100, name: "forker")
        Recorder.record(.queuePut, object: 1, a: 1, b: 1)
        Recorder.flush()
        Recorder.record(.queuePut, object: 1, a: 2, b: 2)   // unflushed at fork time: the child must not carry it
        let pid = fork()
        if pid == 0 {
            Recorder.afterForkInChild(processObject: 101, name: "forked")
            Recorder.record(.queueGet, object: 1, a: 3, b: 3)
            Recorder.processExiting(status: 0, signal: 0)
            _exit(0)
        }
        Recorder.record(.processFork, a: UInt64(pid))
        var st: Int32 = 0
        waitpid(pid, &st, 0)
        Recorder.processExiting(status: 0, signal: 0)
        return 0
    }

    /// 1000 events from one call site, then a fork; parent and child record 10 more from that same
    /// site (same return addresses in both: fork keeps the address space).
    static func repeatedStacks() -> Int32 {
        Recorder.start(processObject: 200, name: "stacks")
        var pid: pid_t = -1
        for round in 0..<2 {
            if round == 1 {
                Recorder.flush()
                pid = fork()
                if pid == 0 { Recorder.afterForkInChild(processObject: 201, name: "stacks-child") }
            }
            for i in 0..<(round == 0 ? 1000 : 10) {
                Recorder.record(.lockAcquired, object: 7, a: UInt64(i % 3 + 1))
            }
            if round == 1 && pid == 0 {
                Recorder.processExiting(status: 0, signal: 0)
                _exit(0)
            }
        }
        var st: Int32 = 0
        waitpid(pid, &st, 0)
        Recorder.processExiting(status: 0, signal: 0)
        return 0
    }

    /// 3000 events, each bracketed by CLOCK_MONOTONIC readings carried in its own `a` (before)
    /// and in the next event's `a` (after); drains, sleeps and a second thread in between.
    static func bracketedTimes() -> Int32 {
        Recorder.start(processObject: 300, name: "clock")
        let other = Thread {
            for i in 0..<500 { Recorder.record(.lockReleased, object: 8, a: UInt64(i)) }
        }
        other.start()
        for i in 0..<3000 {
            let before = tangle_now_ns()
            Recorder.record(.queuePut, object: 9, a: before, b: 1)
            let after = tangle_now_ns()
            Recorder.record(.queueGet, object: 9, a: after, b: 1)
            if i % 500 == 0 { usleep(3000) }
            if i % 700 == 0 { Recorder.flush() }
        }
        Recorder.processExiting(status: 0, signal: 0)
        return 0
    }

    /// 2000 events from one call site (`pathInner`) reached alternately through `pathOuterA` and
    /// `pathOuterB` (`a` says which): the inner frames, and their addresses, are the same both
    /// ways; only the frame two levels up differs.
    static func twoPaths() -> Int32 {
        Recorder.start(processObject: 400, name: "paths")
        for i in 0..<2000 {
            if i % 2 == 0 { pathOuterA(1) } else { pathOuterB(2) }
        }
        Recorder.processExiting(status: 0, signal: 0)
        return 0
    }

    @inline(never) static func pathOuterA(_ which: UInt64) { pathMiddle(which) }
    @inline(never) static func pathOuterB(_ which: UInt64) { pathMiddle(which) }
    @inline(never) static func pathMiddle(_ which: UInt64) { pathInner(which) }
    @inline(never) static func pathInner(_ which: UInt64) { Recorder.record(.lockAcquired, object: 9, a: which) }

    /// One plain, one named and one timed event from the same function (`recordThree`).
    static func entryPoints() -> Int32 {
        Recorder.start(processObject: 500, name: "entries")
        recordThree()
        Recorder.processExiting(status: 0, signal: 0)
        return 0
    }

    @inline(never) static func recordThree() {
        let time = Recorder.time()
        Recorder.record(.lockAcquired, object: 1, a: 1)
        Recorder.record(.lockNew, object: 2, text: "named", a: 1)
        Recorder.record(.processFork, object: 3, text: nil, a: 4, at: time)
    }

    /// A stack seen for the first time, recorded when the ring is full (run with a 64-slot ring
    /// while another thread holds the writer lock, so nothing drains): the record fails, the retry
    /// walks through the memo of the failed attempt, and the writer, which has never seen that
    /// stack, must get its addresses from the memo. `retrySite` also walks its own stack and
    /// records frames 1–3 of that walk in an event without a stack (queue.get: a, b, c).
    static func retryAfterFullRing() -> Int32 {
        Recorder.start(processObject: 600, name: "retry")
        Recorder.flush()
        let held = DispatchSemaphore(value: 0)
        let holder = Thread {
            tangle_trace_lock()
            held.signal()
            usleep(200_000)
            tangle_trace_unlock()
        }
        holder.start()
        held.wait()
        for i in 0..<63 { Recorder.record(.queuePut, object: 1, a: UInt64(i), b: 1, stack: false) }
        retrySite()
        Recorder.processExiting(status: 0, signal: 0)
        return 0
    }

    @inline(never) static func retrySite() {
        var lo: UInt = 0, hi: UInt = 0
        precondition(tangle_thread_stack_range(&lo, &hi) == 0)
        // (Called here, not in a closure, so that its frame 0 is retrySite's.)
        let pcs = UnsafeMutablePointer<UInt>.allocate(capacity: 8)
        defer { pcs.deallocate() }
        precondition(tangle_fp_walk(pcs, 8, 0, lo, hi) >= 4)
        Recorder.record(.lockAcquired, object: 2, a: 1)
        Recorder.record(.queueGet, object: 3, a: UInt64(pcs[1]), b: UInt64(pcs[2]), c: UInt64(pcs[3]), stack: false)
    }

    static func expectedEvent(_ kind: EventKind) -> TraceEvent {
        let r = UInt64(kind.rawValue)
        let keys = kind.argumentKeys
        return TraceEvent(
            time: 0, pid: 0, tid: 0, seq: 0, kind: kind, object: 1000 + r,
            result: kind.isWait ? .ok : WaitResult(rawValue: UInt8(r % 7)) ?? .ok,
            a: keys.a != nil ? r * 10 + 1 : (r % 3 == 0 ? 5 : 0),
            b: keys.b != nil ? r * 10 + 2 : 0,
            c: keys.c != nil ? r * 10 + 3 : 0,
            text: r % 4 == 0 ? "name \"\(kind.name)\"\n\\é" : nil)
    }
}

/// Starting a child of the test binary and waiting for it.
struct TraceChild {
    let pid: pid_t

    static func start(_ name: String, traceDir: String, extraEnv: [String: String] = [:]) -> TraceChild {
        var env = ProcessInfo.processInfo.environment
        env["TANGLE_TRACE_TEST_CHILD"] = name
        env["TANGLE_TRACE"] = traceDir
        env["SWIFT_BACKTRACE"] = "enable=no"
        for (k, v) in extraEnv { env[k] = v }
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        let argv = [strdup("trace-test-child"), nil]
        defer { envp.forEach { free($0) }; argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, "/proc/self/exe", nil, nil, argv, envp)
        precondition(rc == 0, "posix_spawn failed: \(rc)")
        return TraceChild(pid: pid)
    }

    /// Waits; returns (exit status, signal).
    func wait() -> (status: Int32, signal: Int32) {
        var st: Int32 = 0
        while waitpid(pid, &st, 0) < 0 && errno == EINTR {}
        if st & 0x7f == 0 { return ((st >> 8) & 0xff, 0) }
        return (0, st & 0x7f)
    }
}

extension XCTestCase {
    /// Runs test child `name` (see `TraceChildren`) with a trace directory of its own (removed
    /// when the test ends), checks that it exits 0 and that its trace reads without problems, and
    /// returns the child, the trace and the directory.
    func runTracedChild(_ name: String, extraEnv: [String: String] = [:], file: StaticString = #filePath,
                        line: UInt = #line) throws -> (TraceChild, LoadedTrace, String) {
        let dir = makeTempDir(name)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        let child = TraceChild.start(name, traceDir: dir, extraEnv: extraEnv)
        XCTAssertEqual(child.wait().status, 0, file: file, line: line)
        let trace = try TraceReader.load(paths: [dir])
        XCTAssertTrue(trace.problems.isEmpty, "\(trace.problems)", file: file, line: line)
        return (child, trace, dir)
    }
}

func traceFiles(_ dir: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".jsonl.lz4") }.sorted().map { dir + "/" + $0 }
}

/// Writes `text` as a plain .jsonl trace file.
func writeTraceText(_ text: String, _ name: String, in dir: String) -> String {
    let path = dir + "/" + name
    XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(text.utf8)), "cannot write a test file")
    return path
}

/// Writes `text` as one finished LZ4 frame (the recorder's frame writer).
func writeTraceLZ4(_ text: String, _ name: String, in dir: String) throws -> String {
    let path = dir + "/" + name
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    XCTAssertGreaterThanOrEqual(fd, 0)
    let w = try XCTUnwrap(LZ4FrameWriter(fd: fd))
    var bytes = Array(text.utf8)
    bytes.withUnsafeMutableBufferPointer { w.append($0.baseAddress!, $0.count) }
    w.end()
    close(fd)
    return path
}
