import Foundation
import XCTest
@testable import TangleTraceFormat
@testable import TangleRecorder
@testable import TangleTraceReader
import TangleTestSupport

final class RecorderTests: XCTestCase {
    /// Every event kind recorded by a real child process reads back with its object, arguments,
    /// result, name and (where asked) an interned stack; the file is complete (not truncated).
    func testRoundTripOfEveryKind() throws {
        let dir = makeTempDir("roundtrip")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let child = TraceChild.start("roundtrip", traceDir: dir)
        XCTAssertEqual(child.wait().status, 0)
        let files = traceFiles(dir)
        XCTAssertEqual(files.count, 1)
        let attrs = try FileManager.default.attributesOfItem(atPath: files[0])
        XCTAssertEqual((attrs[.posixPermissions] as? NSNumber)?.intValue, 0o600)

        let trace = try TraceReader.load(paths: [dir])
        XCTAssertTrue(trace.truncated.isEmpty, "\(trace.problems)")
        XCTAssertEqual(trace.headers.count, 1)
        let header = try XCTUnwrap(trace.headers[child.pid])
        XCTAssertEqual(header.schemaVersion, TraceHeader.currentSchemaVersion)
        XCTAssertEqual(header.processObject, 77)
        XCTAssertEqual(header.ppid, getpid())
        XCTAssertEqual(header.clock, "CLOCK_MONOTONIC")
        XCTAssertFalse(header.bootID.isEmpty)
        XCTAssertFalse(header.modules.isEmpty)
        XCTAssertTrue(header.modules.contains { !$0.buildID.isEmpty && $0.low < $0.high })

        var byKind: [EventKind: TraceEvent] = [:]
        var lastTime: UInt64 = 0
        for (i, e) in trace.events.enumerated() {
            XCTAssertEqual(e.pid, child.pid)
            XCTAssertEqual(e.seq, UInt64(i), "one thread: seq counts up from 0 without gaps")
            XCTAssertGreaterThanOrEqual(e.time, lastTime)
            lastTime = e.time
            byKind[e.kind] = e
        }
        XCTAssertEqual(trace.events.first?.kind, .processStart)
        XCTAssertEqual(trace.events.first?.object, 77)
        XCTAssertEqual(trace.events.first?.text, "roundtrip")
        XCTAssertEqual(trace.events.last?.kind, .processExit)
        XCTAssertEqual(trace.events.last?.a, 3)
        for kind in EventKind.allCases where kind != .processStart && kind != .processExit {
            let want = TraceChildren.expectedEvent(kind)
            guard let got = byKind[kind] else { XCTFail("missing \(kind.name)"); continue }
            XCTAssertEqual(got.object, want.object, kind.name)
            XCTAssertEqual(got.a, want.a, kind.name)
            XCTAssertEqual(got.b, want.b, kind.name)
            XCTAssertEqual(got.c, want.c, kind.name)
            XCTAssertEqual(got.result, want.result, kind.name)
            XCTAssertEqual(got.text, want.text, kind.name)
            if kind.rawValue % 2 == 0 {
                XCTAssertNotEqual(got.stack, 0, kind.name)
                let pcs = trace.stacks[child.pid]?[got.stack]
                XCTAssertNotNil(pcs, "stack \(got.stack) of \(kind.name) has a stack record")
                XCTAssertFalse(pcs?.isEmpty ?? true)
                // every frame lies in a module's executable range
                if let pc = pcs?.first {
                    XCTAssertTrue(header.modules.contains { pc >= $0.low && pc < $0.high }, "first pc in a module")
                }
            } else {
                XCTAssertEqual(got.stack, 0, kind.name)
            }
        }
        XCTAssertEqual(trace.droppedEvents, want(dropped: EventKind.dropped))
    }

    private func want(dropped kind: EventKind) -> UInt64 { TraceChildren.expectedEvent(kind).a }

    /// A traced child that blocks for good, and the flag file it creates once blocked (waited for
    /// up to 3 s).
    private func startBlockedChild(_ dir: String) -> (TraceChild, String) {
        let ready = dir + "/ready.flag"
        let child = TraceChild.start("blocked", traceDir: dir, extraEnv: ["TANGLE_TEST_READY": ready])
        var waited = 0
        while !FileManager.default.fileExists(atPath: ready) && waited < 3000 {
            usleep(10_000)
            waited += 10
        }
        return (child, ready)
    }

    /// A child SIGKILLed while blocked leaves a file whose prefix reads, is reported truncated,
    /// and reaches the wait event it recorded just before blocking.
    func testKilledWriterLeavesPrefixReachingLastWait() throws {
        let dir = makeTempDir("killed")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (child, ready) = startBlockedChild(dir)
        XCTAssertTrue(FileManager.default.fileExists(atPath: ready), "child never got blocked")
        kill(child.pid, SIGKILL)
        XCTAssertEqual(child.wait().signal, SIGKILL)
        let trace = try TraceReader.load(paths: [dir])
        XCTAssertEqual(trace.truncated.count, 1, "a killed writer's file has no end mark")
        let mine = trace.events.filter { $0.pid == child.pid }
        XCTAssertEqual(mine.last?.kind, .queueGetWait)
        XCTAssertEqual(mine.last?.object, 42)
        XCTAssertEqual(mine.filter { $0.kind == .queuePut }.count, 1000)
    }

    /// SIGTERM: the handler flushes, records proc.exit with the signal, ends the frame, and the
    /// process still dies of SIGTERM.
    func testSigtermFlushesAndEndsTheFile() throws {
        let dir = makeTempDir("term")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (child, _) = startBlockedChild(dir)
        kill(child.pid, SIGTERM)
        XCTAssertEqual(child.wait().signal, SIGTERM)
        let trace = try TraceReader.load(paths: [dir])
        XCTAssertTrue(trace.truncated.isEmpty, "\(trace.problems)")
        XCTAssertEqual(trace.events.last?.kind, .processExit)
        XCTAssertEqual(trace.events.last?.b, UInt64(SIGTERM))
    }

    /// Many threads recording at once lose no event: every thread's seq runs 0..<n with no gap.
    func testManyThreadsLoseNoEvent() throws {
        let threads = 8, events = 20000
        let (_, trace, dir) = try runTracedChild("threads", extraEnv: ["TANGLE_TEST_THREADS": "\(threads)", "TANGLE_TEST_EVENTS": "\(events)"])
        var perThread: [Int32: [TraceEvent]] = [:]
        for e in trace.events where e.kind == .lockAcquired || e.kind == .lockWait {
            perThread[e.tid, default: []].append(e)
        }
        XCTAssertEqual(perThread.count, threads)
        for (tid, evs) in perThread {
            XCTAssertEqual(evs.filter { $0.kind == .lockAcquired }.count, events, "thread \(tid)")
            for (i, e) in evs.enumerated() where e.seq != UInt64(i) {
                XCTFail("thread \(tid): event \(i) has seq \(e.seq)")
                break
            }
            let acquired = evs.filter { $0.kind == .lockAcquired }.map(\.a)
            XCTAssertEqual(acquired, (0..<UInt64(events)).map { $0 }, "thread \(tid) in order")
            // Stacks survive full rings (the thread that drains for the flusher records the event
            // with the stack it would have had): one call site, one non-zero id.
            let withStack = evs.filter { $0.kind == .lockAcquired && $0.a % 3 == 0 }.map(\.stack)
            XCTAssertEqual(Set(withStack).count, 1, "thread \(tid): \(Set(withStack))")
            XCTAssertFalse(withStack.contains(0), "thread \(tid): an event lost its stack")
            XCTAssertTrue(evs.filter { $0.kind == .lockAcquired && $0.a % 3 != 0 }.allSatisfy { $0.stack == 0 })
        }
        // merged order: time goes backwards only where the reader says an event came later than
        // its reorder window allowed (a thread preempted for > 250 ms inside `record`)
        let stream = try TraceEventStream(paths: [dir])
        var backwards: UInt64 = 0
        var last: UInt64 = 0
        while let e = try stream.next() {
            if e.time < last { backwards += 1 }
            last = max(last, e.time)
        }
        XCTAssertEqual(backwards, stream.lateEvents)
    }

    /// With 64-slot rings the threads fill them all the time and drain them themselves: still no
    /// event lost, none out of order, and none without the stack it asked for.
    func testTinyRingsLoseNothing() throws {
        let (_, trace, _) = try runTracedChild("threads", extraEnv: ["TANGLE_TEST_THREADS": "4", "TANGLE_TEST_EVENTS": "5000", "TANGLE_BUFFER_SLOTS": "64"])
        var perThread: [Int32: [TraceEvent]] = [:]
        for e in trace.events where e.kind == .lockAcquired { perThread[e.tid, default: []].append(e) }
        XCTAssertEqual(perThread.count, 4)
        for (tid, evs) in perThread {
            XCTAssertEqual(evs.map(\.a), (0..<UInt64(5000)).map { $0 }, "thread \(tid)")
            let withStack = evs.filter { $0.a % 3 == 0 }.map(\.stack)
            XCTAssertFalse(withStack.contains(0), "thread \(tid): an event lost its stack")
            XCTAssertEqual(Set(withStack).count, 1, "thread \(tid)")
        }
    }

    /// A forked child writes its own file (ppid = the forker), starting with proc.start forked=1,
    /// without the parent's records that were unflushed at fork time.
    func testForkedChildWritesItsOwnFile() throws {
        let dir = makeTempDir("fork")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let child = TraceChild.start("fork", traceDir: dir)
        XCTAssertEqual(child.wait().status, 0)
        XCTAssertEqual(traceFiles(dir).count, 2)
        let trace = try TraceReader.load(paths: [dir])
        XCTAssertTrue(trace.truncated.isEmpty, "\(trace.problems)")
        let forkEvent = try XCTUnwrap(trace.events.first { $0.kind == .processFork })
        let grandchild = Int32(forkEvent.a)
        let h = try XCTUnwrap(trace.headers[grandchild])
        XCTAssertEqual(h.ppid, child.pid)
        XCTAssertEqual(h.processObject, 101)
        let mine = trace.events.filter { $0.pid == grandchild }
        XCTAssertEqual(mine.map(\.kind), [.processStart, .queueGet, .processExit])
        XCTAssertEqual(mine.first?.b, 1, "forked")
        XCTAssertEqual(mine.first?.seq, 0)
        let parents = trace.events.filter { $0.pid == child.pid && $0.kind == .queuePut }
        XCTAssertEqual(parents.map(\.a), [1, 2])
    }

    /// A stack recorded again and again is written once per file: later records carry only its
    /// hash and the writer names the id it gave it. A forked child's new file gets the stack's
    /// addresses again (its thread forgets what it sent to the parent's file).
    func testRepeatedStackIsWrittenOncePerFileAndAgainAfterFork() throws {
        let (child, trace, dir) = try runTracedChild("stacks")
        let parent = trace.events.filter { $0.pid == child.pid && $0.kind == .lockAcquired }
        XCTAssertEqual(parent.count, 1010)
        let ids = Set(parent.map(\.stack))
        XCTAssertEqual(ids.count, 1, "one call site, one stack id")
        let id = try XCTUnwrap(ids.first)
        XCTAssertNotEqual(id, 0)
        let pcs = try XCTUnwrap(trace.stacks[child.pid]?[id])
        XCTAssertFalse(pcs.isEmpty)

        let forked = try XCTUnwrap(trace.headers.keys.first { $0 != child.pid })
        let mine = trace.events.filter { $0.pid == forked && $0.kind == .lockAcquired }
        XCTAssertEqual(mine.count, 10)
        XCTAssertEqual(Set(mine.map(\.stack)).count, 1)
        let childID = try XCTUnwrap(mine.first?.stack)
        XCTAssertNotEqual(childID, 0, "the child's events keep their stack")
        XCTAssertEqual(trace.stacks[forked]?[childID], pcs, "same call site, same addresses")

        // Each file holds that stack's record once.
        for file in traceFiles(dir) {
            let raw = try RawTraceFile(path: file)
            var stackLines = 0
            while let line = raw.nextLine() {
                if String(decoding: line, as: UTF8.self).contains("\"k\":\"stack\"") { stackLines += 1 }
            }
            XCTAssertGreaterThan(stackLines, 0)
            XCTAssertLessThanOrEqual(stackLines, 4, "\(file): a stack line per distinct stack, not per event")
        }
    }

    /// Every entry point starts the stack at its caller: a plain event (recorded inline), a named
    /// one and a timed one from the same function have the same frames above that function, and
    /// their first addresses lie in it. The timed event carries the earlier time.
    func testEveryEntryPointStartsTheStackAtItsCaller() throws {
        let (child, trace, _) = try runTracedChild("entries")
        let stacks = try [EventKind.lockAcquired, .lockNew, .processFork].map { kind -> [UInt64] in
            let e = try XCTUnwrap(trace.events.first { $0.kind == kind }, "\(kind)")
            return try XCTUnwrap(trace.stacks[child.pid]?[e.stack], "\(kind) has no stack")
        }
        for s in stacks.dropFirst() {
            XCTAssertEqual(Array(s.dropFirst()), Array(stacks[0].dropFirst()), "the same frames above recordThree")
            XCTAssertLessThan(max(s[0], stacks[0][0]) - min(s[0], stacks[0][0]), 4096, "first addresses in one function")
        }
        let times = trace.events.filter { $0.pid == child.pid }
        let plain = try XCTUnwrap(times.first { $0.kind == .lockAcquired })
        let timed = try XCTUnwrap(times.first { $0.kind == .processFork })
        XCTAssertLessThan(timed.time, plain.time)
    }

    /// A first-seen stack whose record found the ring full is recorded on the retry, through the
    /// walk the failed attempt remembered, with the addresses a walk from the same place gives
    /// (frames above the call site: the first differs, it is the call of the walk itself).
    func testStackRecordedOnRetryAfterFullRingHasTheWalksAddresses() throws {
        let (child, trace, _) = try runTracedChild("retry", extraEnv: ["TANGLE_BUFFER_SLOTS": "64"])
        let mine = trace.events.filter { $0.pid == child.pid }
        XCTAssertEqual(mine.filter { $0.kind == .queuePut }.count, 63, "no event lost")
        XCTAssertFalse(mine.contains { $0.kind == .dropped })
        let event = try XCTUnwrap(mine.first { $0.kind == .lockAcquired })
        let walked = try XCTUnwrap(mine.first { $0.kind == .queueGet })
        let lastFill = try XCTUnwrap(mine.last { $0.kind == .queuePut })
        // It waited for the lock holder: the retry path, not the first attempt, recorded it.
        XCTAssertGreaterThan(event.time - lastFill.time, 50_000_000, "recorded after the ring drained")
        let stack = try XCTUnwrap(trace.stacks[child.pid]?[event.stack], "the event has a stack")
        XCTAssertGreaterThanOrEqual(stack.count, 4)
        XCTAssertEqual(Array(stack[1...3]), [walked.a, walked.b, walked.c], "the frames above retrySite")
    }

    /// A remembered walk is used only when every frame is still what it was: one call site reached
    /// alternately through two outer functions (same inner frames at the same addresses) records
    /// two stacks, each event the one of its own path, differing in the outer frame.
    func testStacksFollowTheirPathWhenOnlyAnOuterFrameDiffers() throws {
        let (child, trace, _) = try runTracedChild("paths")
        let events = trace.events.filter { $0.kind == .lockAcquired }
        XCTAssertEqual(events.count, 2000)
        let viaA = Set(events.filter { $0.a == 1 }.map(\.stack))
        let viaB = Set(events.filter { $0.a == 2 }.map(\.stack))
        XCTAssertEqual(viaA.count, 1, "one stack for the path through A: \(viaA)")
        XCTAssertEqual(viaB.count, 1, "one stack for the path through B: \(viaB)")
        let a = try XCTUnwrap(trace.stacks[child.pid]?[try XCTUnwrap(viaA.first)])
        let b = try XCTUnwrap(trace.stacks[child.pid]?[try XCTUnwrap(viaB.first)])
        XCTAssertNotEqual(a, b)
        XCTAssertGreaterThanOrEqual(min(a.count, b.count), 4)
        // Same inner frames (the call site, the middle function), then the outer ones differ.
        XCTAssertEqual(Array(a.prefix(2)), Array(b.prefix(2)))
        XCTAssertNotEqual(a[2], b[2])
    }

    /// A thread repeating events (1000 lock.acquired from one site, `a` cycling 1, 2, 3) is written
    /// as run pairs after one declaring line per template, and reads back as every event, in seq
    /// order with nondecreasing times and the same `a` sequence.
    func testRepeatedEventsAreWrittenAsRunPairs() throws {
        let dir = makeTempDir("runs")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let child = TraceChild.start("stacks", traceDir: dir)
        XCTAssertEqual(child.wait().status, 0)
        let file = try XCTUnwrap(traceFiles(dir).first { $0.hasPrefix(dir + "/\(child.pid)-") })
        let raw = try RawTraceFile(path: file)
        var pairs = 0, declarations = 0
        while let line = raw.nextLine() {
            let text = String(decoding: line, as: UTF8.self)
            if text.hasPrefix(#"{"k":"run","e":["#) {
                pairs += text.split(separator: ",").count / 2
            } else if text.contains(#""tp":"#) && text.contains("lock.acquired") {
                declarations += 1
            }
        }
        XCTAssertGreaterThanOrEqual(declarations, 3, "one declaring line per (a) template")
        XCTAssertGreaterThanOrEqual(pairs, 990, "the repeats are run pairs (declarations: \(declarations))")
        XCTAssertEqual(pairs + declarations, 1010, "every lock.acquired once")
        let trace = try TraceReader.load(paths: [file])
        XCTAssertTrue(trace.problems.isEmpty, "\(trace.problems)")
        let events = trace.events.filter { $0.kind == .lockAcquired }
        XCTAssertEqual(events.count, 1010)
        let cycle: (Int) -> UInt64 = { UInt64($0 % 3 + 1) }
        let expectedA: [UInt64] = (0..<1000).map(cycle) + (0..<10).map(cycle)
        XCTAssertEqual(events.map(\.a), expectedA)
        for tid in Set(trace.events.map(\.tid)) {
            let seqs = trace.events.filter { $0.tid == tid }.map(\.seq)
            XCTAssertEqual(seqs, Array(seqs[0]..<seqs[0] + UInt64(seqs.count)), "thread \(tid): every seq once, in order")
        }
        XCTAssertEqual(events.map(\.time), events.map(\.time).sorted())
        XCTAssertEqual(Set(events.map(\.stack)).count, 1)
    }

    /// Event times are CLOCK_MONOTONIC ns whichever clock the ring holds (TSC ticks converted by
    /// the writer, or ns with TANGLE_CLOCK=monotonic): each event lies between the clock readings
    /// taken just before and just after it (within 2 µs, for a loaded machine), in order.
    func testEventTimesAreMonotonicNanosecondsInBothClockModes() throws {
        for mode in ["", "monotonic"] {
            let (_, trace, dir) = try runTracedChild("clock", extraEnv: mode.isEmpty ? [:] : ["TANGLE_CLOCK": mode])
            // The mode really used: forced by TANGLE_CLOCK, else TSC wherever the kernel itself
            // derives CLOCK_MONOTONIC from it.
            let file = try XCTUnwrap(traceFiles(dir).first)
            let headerLine = try XCTUnwrap(RawTraceFile(path: file).nextLine()).map { $0 }
            let header = String(decoding: headerLine, as: UTF8.self)
            let source = (try? String(contentsOfFile: "/sys/devices/system/clocksource/clocksource0/current_clocksource", encoding: .utf8)) ?? ""
            let flags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
            let tscUsable = source == "tsc\n" && flags.contains(" constant_tsc") && flags.contains(" nonstop_tsc")
            let expected = mode.isEmpty && tscUsable ? "tsc" : "monotonic"
            XCTAssertTrue(header.contains("\"ring_clock\":\"\(expected)\""), "mode \(mode): \(header.prefix(300))")
            let mine = trace.events.filter { $0.object == 9 }
            XCTAssertEqual(mine.count, 6000)
            var worst: Int64 = 0
            for k in stride(from: 0, to: mine.count - 1, by: 2) {
                let put = mine[k], get = mine[k + 1]
                XCTAssertEqual(put.kind, .queuePut)
                XCTAssertEqual(get.kind, .queueGet)
                let early = Int64(put.a) - Int64(put.time)   // > 0: converted time before `before`
                let late = Int64(put.time) - Int64(get.a)     // > 0: converted time after `after`
                worst = max(worst, early, late)
                XCTAssertLessThan(early, 2_000, "mode \(mode): event \(k) \(early) ns before the reading taken before it")
                XCTAssertLessThan(late, 2_000, "mode \(mode): event \(k) \(late) ns after the reading taken after it")
                XCTAssertLessThanOrEqual(put.time, get.time &+ 2_000)
            }
            print("clock mode \(mode.isEmpty ? "default" : mode): worst distance outside the bracket \(worst) ns")
            XCTAssertEqual(trace.events.filter { $0.object == 8 }.count, 500)
        }
    }

    /// Object and message ids work with tracing off and carry the pid.
    func testIDsWithoutTracing() {
        let a = Recorder.newObjectID(), b = Recorder.newObjectID()
        XCTAssertNotEqual(a, b)
        XCTAssertEqual(a >> 28, UInt64(getpid()))
        XCTAssertNotEqual(Recorder.newMessageID(), Recorder.newMessageID())
    }
}
