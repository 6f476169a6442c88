import ArgumentParser
import Foundation
import TangleRecorder
import TangleTraceReader

/// `tangle bench record [--json]`: the recorder's costs, measured in this process with tracing on
/// (into a fresh temporary directory, removed afterwards unless --keep).
struct BenchRecord: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "record",
        abstract: "Median ns per recorded event (no stack, 16-frame stack) vs untraced, and compressed bytes per event.")

    @Flag(name: .long, help: "Print one JSON object.")
    var json = false

    @Option(name: .long, help: "Events per timed mode.")
    var events = 1_000_000

    @Option(name: .long, help: "Events of the lock/queue-shaped size workload (per thread, 2 threads).")
    var sizeEvents = 200_000

    @Flag(name: .long, help: "Keep the trace directory (its path is printed).")
    var keep = false

    func run() throws {
        if events < 1000 || sizeEvents < 100 { throw failUnusable("--events must be ≥ 1000 and --size-events ≥ 100") }
        let dir = try makeTemporaryDirectory("bench")
        if getenv("TANGLE_TRACE") == nil { setenv("TANGLE_TRACE", dir, 1) }
        guard Recorder.isEnabled, let traceDir = Recorder.directory else {
            throw failUnusable("the recorder was read before TANGLE_TRACE could be set")
        }
        Recorder.start(processObject: Recorder.newObjectID(), name: "bench-record")

        let batch = 250
        let batches = max(4, events / batch)
        let untraced = timeLoop(batches: batches, batch: batch, mode: 0)
        let noStack = timeLoop(batches: batches, batch: batch, mode: 1)
        let withStack = deep(20) { timeLoop(batches: batches, batch: batch, mode: 2) }
        Recorder.flush()

        let size = sizeWorkload(perThread: sizeEvents)
        let decode = decodeRate(Recorder.filePath)
        var result: [String: Any] = [
            "untraced_ns": round2(untraced),
            "record_ns": round2(noStack),
            "record_stack_ns": round2(withStack),
            "record_overhead_ns": round2(noStack - untraced),
            "record_stack_overhead_ns": round2(withStack - untraced),
            "stack_depth": Int(ProcessInfo.processInfo.environment["TANGLE_STACK_DEPTH"] ?? "16") ?? 16,
            "bytes_per_event": round2(size.bytesPerEvent),
            "size_events": size.events,
            "decode_events_per_s": Int(decode),
            "size_bytes": size.bytes,
            "events_per_mode": batches * batch,
            "targets": ["record_ns": 60, "record_stack_ns": 150, "bytes_per_event": 16],
        ]
        if keep { result["trace_dir"] = traceDir }
        if json {
            let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
            FileHandle.standardOutput.write(data + Data("\n".utf8))
        } else {
            print("record, no stack:     \(fmt(noStack)) ns/event median (target ≤ 60; untraced loop \(fmt(untraced)) ns)")
            print("record, 16-frame stack: \(fmt(withStack)) ns/event median (target ≤ 150)")
            print("size, lock/queue workload: \(fmt(size.bytesPerEvent)) bytes/event (\(size.events) events, \(size.bytes) bytes; target ≤ 16)")
            print("reading it back (decompress, parse, merge; per core, CPU time): \(String(format: "%.2f", decode / 1e6)) M events/s")
            if keep { print("trace directory: \(traceDir)") }
        }
        Recorder.processExiting(status: 0, signal: 0)
        if !keep && traceDir == dir { try? FileManager.default.removeItem(atPath: dir) }
    }

    private func fmt(_ v: Double) -> String { String(format: "%.1f", v) }
    private func round2(_ v: Double) -> Double { (v * 100).rounded() / 100 }
}

/// Events per second of the streaming reader over this process's own file (best of 3).
func decodeRate(_ path: String?) -> Double {
    guard let path else { return 0 }
    var best = 0.0
    for _ in 0..<3 {
        guard let stream = try? TraceEventStream(paths: [path]) else { return 0 }
        // CPU time of this thread: the figure is per core, whatever else the machine runs.
        let t0 = threadCPUSeconds()
        var n = 0
        var sink: UInt64 = 0
        while let e = try? stream.next() { n += 1; sink &+= e.a }
        benchSink &+= sink
        let dt = threadCPUSeconds() - t0
        if dt > 0 { best = max(best, Double(n) / dt) }
    }
    return best
}

func threadCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Recurses `n` frames (each a real frame: not inlined, not a tail call), then runs `body`.
@inline(never) func deep<R>(_ n: Int, _ body: () -> R) -> R {
    if n <= 0 { return body() }
    let r = deep(n - 1, body)
    benchSink &+= 1
    return r
}

nonisolated(unsafe) var benchSink: UInt64 = 0

@inline(never) func benchWork(_ i: UInt64) -> UInt64 { i &* 2654435761 &+ 1 }

/// Median over batches of the ns per iteration. mode 0: untraced loop; 1: + record, no stack;
/// 2: + record with a stack.
@inline(never) func timeLoop(batches: Int, batch: Int, mode: Int) -> Double {
    let object = Recorder.newObjectID()
    var samples: [Double] = []
    samples.reserveCapacity(batches)
    var acc: UInt64 = 0
    for b in 0..<batches {
        let t0 = monotonicNow()
        var i = UInt64(b * batch)
        let end = i + UInt64(batch)
        switch mode {
        case 0:
            while i < end { acc &+= benchWork(i); i += 1 }
        case 1:
            while i < end { acc &+= benchWork(i); Recorder.record(.lockAcquired, object: object, a: 1, stack: false); i += 1 }
        default:
            while i < end { acc &+= benchWork(i); Recorder.record(.lockAcquired, object: object, a: 1, stack: true); i += 1 }
        }
        let t1 = monotonicNow()
        samples.append(Double(t1 - t0) / Double(batch))
    }
    benchSink &+= acc
    samples.sort()
    return samples[samples.count / 2]
}

/// A lock/queue-shaped workload on two threads (stacks on, as the runtime records them): per
/// round, acquire, put, release on one thread and get on the other's queue; returns the
/// compressed bytes per event it added to the file.
func sizeWorkload(perThread: Int) -> (bytesPerEvent: Double, events: UInt64, bytes: UInt64) {
    Recorder.flush()
    let before = Recorder.written
    let lock = Recorder.newObjectID()
    let queue = Recorder.newObjectID()
    let group = DispatchGroup()
    for t in 0..<2 {
        let thread = Thread {
            let me = Recorder.newObjectID()
            Recorder.threadStarted(object: me, name: "worker-\(t)")
            sizeWorker(rounds: perThread / 4, lock: lock, queue: queue, thread: t)
            Recorder.threadExited(object: me)
            group.leave()
        }
        group.enter()
        thread.start()
    }
    group.wait()
    Recorder.flush()
    let after = Recorder.written
    let events = after.events - before.events
    let bytes = after.bytes - before.bytes
    return (events == 0 ? 0 : Double(bytes) / Double(events), events, bytes)
}

@inline(never) func sizeWorker(rounds: Int, lock: UInt64, queue: UInt64, thread: Int) {
    var spin: UInt64 = 0
    for _ in 0..<rounds {
        benchAcquire(lock)
        let msg = Recorder.newMessageID()
        benchPut(queue, msg)
        benchRelease(lock)
        benchGet(queue, msg)
        // a little work between rounds, like a real producer/consumer
        for j in 0..<50 { spin &+= benchWork(UInt64(j)) }
    }
    benchSink &+= spin
}

@inline(never) func benchAcquire(_ lock: UInt64) { Recorder.record(.lockAcquired, object: lock, a: 1) }
@inline(never) func benchRelease(_ lock: UInt64) { Recorder.record(.lockReleased, object: lock) }
@inline(never) func benchPut(_ q: UInt64, _ msg: UInt64) { Recorder.record(.queuePut, object: q, a: msg, b: 64) }
@inline(never) func benchGet(_ q: UInt64, _ msg: UInt64) { Recorder.record(.queueGet, object: q, a: msg, b: 64) }
