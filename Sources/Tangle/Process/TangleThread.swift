import CTangleSupport
import Glibc
import TangleTrace

/// A thread started through Tangle (Python's `threading.Thread`), traced like a process:
/// `thread.start` / `thread.exit` in the thread, `thread.join-wait` (only when `join` really blocks)
/// and `thread.join-done` in the joiner.
///
/// ```swift
/// let t = TangleThread(name: "producer") { … }
/// t.start()
/// t.join()
/// ```
public final class TangleThread: @unchecked Sendable {
    public let name: String
    /// The trace's object id of this thread.
    public let object: UInt64

    private let body: () -> Void
    let lock = CondLock()
    var started = false
    var finished = false
    private var _tid: Int32 = 0

    public init(name: String? = nil, _ body: @escaping () -> Void) {
        self.name = name ?? ProcessState.shared.nextThreadName()
        self.object = Recorder.newObjectID()
        self.body = body
    }

    /// The kernel thread id once it runs (0 before).
    public var tid: Int32 { lock.withLock { _tid } }

    public var isAlive: Bool { lock.withLock { started && !finished } }

    /// Starts the thread (a detached pthread; `join` waits on its end). Starting twice is a
    /// programming error.
    public func start() {
        lock.withLock {
            precondition(!started, "thread \(name) was already started")
            started = true
        }
        TangleRuntime.ensureStarted()
        // Before the thread exists: its `thread.start` comes after this in time, which is what
        // tells the analyzer that the thread's work happens after everything its creator did first.
        Recorder.record(.threadSpawn, object: object)
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
        let rc = pthread_create(&thread, &attr, { raw in
            let me = Unmanaged<TangleThread>.fromOpaque(raw!).takeRetainedValue()
            me.run()
            return nil
        }, context)
        pthread_attr_destroy(&attr)
        if rc != 0 {
            Unmanaged<TangleThread>.fromOpaque(context).release()
            fatalError("pthread_create failed for thread \(name): \(rc)")
        }
    }

    private func run() {
        lock.withLock { _tid = tangle_runtime_gettid() }
        Recorder.threadStarted(object: object, name: name)
        body()
        Recorder.threadExited(object: object)
        lock.withLock {
            finished = true
            lock.broadcast()
        }
    }

    /// Waits until the thread's body returned, or `timeout` passed (nil = forever). True when it
    /// finished.
    @discardableResult
    public func join(timeout: Duration? = nil) -> Bool {
        let deadline = Clock.deadline(after: timeout)
        let done = lock.withLock { () -> Bool in
            precondition(started, "join() on thread \(name) that was never started")
            if finished { return true }
            if let deadline, Clock.now() >= deadline { return false }
            lock.unlock()
            Recorder.record(.threadJoinWait, object: object)
            lock.lock()
            while !finished {
                if !lock.wait(until: deadline) && !finished { return false }
            }
            return true
        }
        Recorder.record(.threadJoinDone, object: object, result: done ? .ok : .timeout)
        return done
    }
}
