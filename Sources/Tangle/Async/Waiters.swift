import CTangleSupport
import Glibc
import Synchronization

/// How a wait handed to a waiter thread ended.
enum WaitOutcome: Sendable {
    /// The step said it is done (ready, or the operation completed in the waiter).
    case ready
    /// The deadline passed first.
    case timeout
    /// The task was cancelled first.
    case cancelled
}

/// Where Tangle's `async` calls block: a pool of dedicated waiter threads, one per blocked call,
/// that grows on demand and keeps up to `maxIdle` idle threads for the next call.
///
/// Why threads: every Tangle primitive waits in the kernel — a futex word in shared memory
/// (locks, semaphores, events, conditions, barriers, queues), a pipe or a pidfd — and another
/// process wakes it, so there is no readiness source a Swift executor could poll without a thread
/// asleep somewhere. Doing that sleep on a cooperative-pool thread is what stalls a server (the
/// pool has one thread per core), so the task hands the sleep to a waiter thread and suspends on
/// a continuation; the waiter resumes it when the step reports ready. One thread per blocked call
/// (not a fixed pool) because a fixed pool of N waiters would deadlock the N+1st waiter's waker
/// the same way; idle threads are reused, so a steady load does not pay for `pthread_create`.
///
/// A step sleeps at most `slice` (20 ms) per call, so a cancelled task's waiter notices within a
/// slice; the task itself records the wait and done events (its own trace identity, see
/// `TaskParticipant`) — the waiter never records.
enum Waiters {
    static let slice: Int64 = 20_000_000
    static let maxIdle = 8

    /// Runs `step(sliceNs)` on a waiter thread until it returns true, the deadline (monotonic ns)
    /// passes or the task is cancelled (unless `cancellable` is false: a condition's waiter must
    /// hold the lock again when it returns). `step` must not sleep longer than its argument.
    static func wait(until deadline: UInt64?, cancellable: Bool = true, _ step: @escaping @Sendable (Int64) -> Bool) async -> WaitOutcome {
        let cancel = Cancel()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (k: CheckedContinuation<WaitOutcome, Never>) in
                submit {
                    while true {
                        if cancellable && cancel.flag.load(ordering: .acquiring) { k.resume(returning: .cancelled); return }
                        var left = slice
                        if let deadline {
                            let now = tangle_now_ns()
                            if now >= deadline { k.resume(returning: .timeout); return }
                            left = min(left, Int64(deadline - now))
                        }
                        if step(left) { k.resume(returning: .ready); return }
                    }
                }
            }
        } onCancel: {
            cancel.flag.store(true, ordering: .releasing)
        }
    }

    /// Runs `body` on a waiter thread and returns its result (for a call that may block and has
    /// no slice form, e.g. a large pipe write).
    static func run<R: Sendable>(_ body: @escaping @Sendable () -> R) async -> R {
        await withCheckedContinuation { (k: CheckedContinuation<R, Never>) in
            submit { k.resume(returning: body()) }
        }
    }

    final class Cancel: Sendable {
        let flag = Atomic<Bool>(false)
    }

    // MARK: threads

    private final class Waiter: @unchecked Sendable {
        var job: (() -> Void)?
        let word = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
        init() { word.initialize(to: 0) }
    }

    private struct State {
        var idle: [Waiter] = []
        var generation: UInt64 = 0
    }
    private static let state = Mutex(State())

    private static func submit(_ job: @escaping () -> Void) {
        let reused: Waiter? = state.withLock { s in
            if s.generation != tangle_trace_fork_generation {
                // A forked child: the parent's idle threads do not exist here.
                s.idle.removeAll()
                s.generation = tangle_trace_fork_generation
            }
            return s.idle.popLast()
        }
        if let w = reused {
            w.job = job
            tangle_atomic_store32(w.word, 1)
            _ = tangle_futex_wake(w.word, 1)
            return
        }
        let w = Waiter()
        w.job = job
        tangle_atomic_store32(w.word, 1)
        start(w)
    }

    private static func start(_ w: Waiter) {
        var thread = pthread_t()
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
        pthread_attr_setstacksize(&attr, 256 * 1024)
        let context = Unmanaged.passRetained(w).toOpaque()
        let rc = pthread_create(&thread, &attr, { raw in
            let w = Unmanaged<Waiter>.fromOpaque(raw!).takeRetainedValue()
            Waiters.loop(w)
            return nil
        }, context)
        pthread_attr_destroy(&attr)
        if rc != 0 {
            Unmanaged<Waiter>.fromOpaque(context).release()
            fatalError("Tangle: pthread_create failed for a waiter thread: \(rc)")
        }
    }

    private static func loop(_ w: Waiter) {
        while true {
            while tangle_atomic_load32(w.word) == 0 { _ = tangle_futex_wait(w.word, 0, -1) }
            let job = w.job
            w.job = nil
            job?()
            tangle_atomic_store32(w.word, 0)
            let kept = state.withLock { s -> Bool in
                guard s.idle.count < maxIdle, s.generation == tangle_trace_fork_generation else { return false }
                s.idle.append(w)
                return true
            }
            if !kept {
                w.word.deallocate()
                return
            }
        }
    }
}
