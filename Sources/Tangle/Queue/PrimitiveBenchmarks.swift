import CTangleSupport
import Glibc
import TangleRecorder

/// Measurements of the primitives for `tangle bench runtime` (the benchmark binary calls these;
/// tracing is on or off according to `TANGLE_TRACE` in the measuring process and its children).
///
/// Package-only, not runtime API. It stays in this module because the figures depend on it: moved
/// into the benchmark binary, `Queue<Int>`'s generic path is no longer specialized and the untraced
/// queue figure fell from 15–30 M to 2–3 M msgs/s (2026-12-04, release, 3 alternating runs).
package enum PrimitiveBenchmarks {
    /// Small messages per second through a `Queue<Int>` from a child process to this one.
    /// The child is forked (no entry point to register) unless `method` is `.spawn`, which needs
    /// `registerEntryPoints()` called before `TangleRuntime.bootstrap()`. The child's start-up is
    /// not timed: it waits on an Event the parent sets when it starts the clock.
    package static func queueMessagesPerSecond(messages: Int = 1_000_000, method: ChildProcess.StartMethod = .fork) throws -> Double {
        let queue = Queue<Int>(maxsize: 0, bufferSize: 1 << 20, name: "bench")
        let go = Event(name: "bench-go")
        let child: ChildProcess
        if method == .fork {
            child = ChildProcess(fork: { try produce(queue, go, messages) })
        } else {
            child = ChildProcess(entryPoint: "tangle.bench.queue-producer",
                                 arguments: QueueBenchArgs(queue: queue, go: go, messages: messages), method: method)
        }
        try child.start()
        let start = tangle_now_ns()
        go.set()
        var sum = 0
        for _ in 0..<messages { sum &+= try queue.get() }
        let elapsed = tangle_now_ns() - start
        _ = child.join(timeout: .seconds(60))
        precondition(sum == messages &* (messages &- 1) / 2, "queue benchmark: lost messages")
        return Double(messages) / (Double(elapsed) / 1e9)
    }

    /// `queueMessagesPerSecond` with the consumer a Swift task using the async `get` (a spawned
    /// producer; the task runs on the global executor, this thread waits for it).
    package static func asyncQueueMessagesPerSecond(messages: Int = 1_000_000) throws -> Double {
        let queue = Queue<Int>(maxsize: 0, bufferSize: 1 << 20, name: "bench")
        let go = Event(name: "bench-go")
        let child = ChildProcess(entryPoint: "tangle.bench.queue-producer",
                                 arguments: QueueBenchArgs(queue: queue, go: go, messages: messages), method: .spawn)
        try child.start()
        let done = CondLock()
        nonisolated(unsafe) var result: Result<(Int, UInt64), Error>?
        Task {
            let r: Result<(Int, UInt64), Error>
            do {
                let start = tangle_now_ns()
                await go.set()
                var sum = 0
                for _ in 0..<messages { sum &+= try await queue.get() }
                r = .success((sum, tangle_now_ns() - start))
            } catch {
                r = .failure(error)
            }
            done.withLock {
                result = r
                done.broadcast()
            }
        }
        let (sum, elapsed) = try done.withLock { () -> Result<(Int, UInt64), Error> in
            while result == nil { _ = done.wait(until: nil) }
            return result!
        }.get()
        _ = child.join(timeout: .seconds(60))
        precondition(sum == messages &* (messages &- 1) / 2, "async queue benchmark: lost messages")
        return Double(messages) / (Double(elapsed) / 1e9)
    }

    /// ns per `withLock { $0 += 1 }` of a `SharedValue<Int>` (its lock taken and released), best
    /// of 5 runs of `iterations` (Python's peer: `with v.get_lock(): v.value += 1`).
    package static func sharedValueAddNanoseconds(iterations: Int = 1_000_000) throws -> Double {
        let value = SharedValue<Int>(0, name: "bench")
        var best = Double.infinity
        for _ in 0..<5 {
            let start = tangle_now_ns()
            for _ in 0..<iterations { try value.withLock { $0 &+= 1 } }
            best = min(best, Double(tangle_now_ns() - start) / Double(iterations))
        }
        precondition(value.value == 5 * iterations, "shared value benchmark: lost increments")
        return best
    }

    /// Best of 5 (the Python peer's statistic, over as many runs): ns for one uncontended `Lock`
    /// acquire + release in this process, over `iterations` pairs per run.
    package static func lockPairNanoseconds(iterations: Int = 1_000_000) throws -> Double {
        let lock = Lock(name: "bench")
        var best = Double.infinity
        for _ in 0..<5 {
            let start = tangle_now_ns()
            for _ in 0..<iterations {
                try lock.acquire()
                try lock.release()
            }
            best = min(best, Double(tangle_now_ns() - start) / Double(iterations))
        }
        return best
    }

    /// What the recording thread itself pays: ns per acquire + release over bursts of 1000 pairs
    /// (2000 events: they fit in the thread's ring), each burst followed by an untimed
    /// `Recorder.flush()`. The sustained figure (`lockPairNanoseconds` traced) is bounded by the
    /// flusher instead when a thread does nothing but take locks. Median of the bursts.
    package static func lockPairBurstNanoseconds(bursts: Int = 2000) throws -> Double {
        let lock = Lock(name: "bench")
        var samples: [Double] = []
        samples.reserveCapacity(bursts)
        for _ in 0..<bursts {
            let start = tangle_now_ns()
            for _ in 0..<1000 {
                try lock.acquire()
                try lock.release()
            }
            samples.append(Double(tangle_now_ns() - start) / 1000)
            Recorder.flush()
        }
        samples.sort()
        return samples[samples.count / 2]
    }

    /// Registers the spawn entry point of `queueMessagesPerSecond(method: .spawn)`.
    package static func registerEntryPoints() {
        EntryPoint.register("tangle.bench.queue-producer") { (a: QueueBenchArgs) in
            try produce(a.queue, a.go, a.messages)
        }
    }

    struct QueueBenchArgs: Codable {
        var queue: Queue<Int>
        var go: Event
        var messages: Int
    }

    private static func produce(_ queue: Queue<Int>, _ go: Event, _ messages: Int) throws {
        go.wait()
        for i in 0..<messages { try queue.put(i) }
    }
}
