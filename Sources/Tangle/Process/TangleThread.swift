import CTangleSupport
import Glibc
import TangleRecorder

/// A thread started through Tangle (Python's `threading.Thread`), traced like a process:
/// `thread.start` / `thread.exit` in the thread, `thread.join-wait` (only when `join` really blocks)
/// and `thread.join-done` in the joiner.
///
/// ```swift
/// let t = TangleThread(name: "producer") { … }
/// t.start()
/// t.join()
/// ```
///
/// A body may throw: its error is what `join` throws (typed: `Failure` is the body's error type,
/// `Never` for a body that does not throw, so its `join` needs no `try`). The thread ends normally
/// either way (`thread.exit`).
public final class TangleThread<Failure: Error>: @unchecked Sendable {
    public let name: String
    /// The trace's object id of this thread.
    public let object: UInt64

    private let body: () throws(Failure) -> Void
    /// The body's error, once it threw.
    private var failure: Failure?
    /// A runtime thread that only relays for an object (a pool's manager): recorded as such, so
    /// that the analyzer never counts it as a thread that could wake or block anyone.
    private let runtimeInternal: Bool
    let lock = CondLock()
    var started = false
    var finished = false
    private var _tid: Int32 = 0

    public convenience init(name: String? = nil, _ body: @escaping () throws(Failure) -> Void) {
        self.init(name: name, runtimeInternal: false, body)
    }

    init(name: String?, runtimeInternal: Bool, _ body: @escaping () throws(Failure) -> Void) {
        self.name = name ?? ProcessState.shared.nextThreadName()
        self.object = Recorder.newObjectID()
        self.runtimeInternal = runtimeInternal
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
        let context = Unmanaged.passRetained(_ThreadStart { [self] in run() }).toOpaque()
        var thread = pthread_t()
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
        let rc = pthread_create(&thread, &attr, { raw in
            let start = Unmanaged<_ThreadStart>.fromOpaque(raw!).takeRetainedValue()
            start.run()
            return nil
        }, context)
        pthread_attr_destroy(&attr)
        if rc != 0 {
            Unmanaged<_ThreadStart>.fromOpaque(context).release()
            fatalError("pthread_create failed for thread \(name): \(rc)")
        }
    }

    private func run() {
        lock.withLock { _tid = tangle_runtime_gettid() }
        Recorder.threadStarted(object: object, name: name, internal: runtimeInternal)
        var thrown: Failure?
        do throws(Failure) { try body() } catch { thrown = error }
        Recorder.threadExited(object: object)
        lock.withLock {
            failure = thrown
            finished = true
            lock.broadcast()
        }
    }

    /// Waits until the thread's body returned, or `timeout` passed (nil = forever). True when it
    /// finished; throws the body's error when it threw (`thread.join-done` has `r: error`).
    @discardableResult
    public func join(timeout: Duration? = nil) throws(Failure) -> Bool {
        _steer()
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
        let error = lock.withLock { failure }
        Recorder.record(.threadJoinDone, object: object, result: !done ? .timeout : error != nil ? .error : .ok)
        if let error { throw error }
        return done
    }

    /// The body's error after it threw (nil while running or when it returned).
    public var error: Failure? { lock.withLock { failure } }
}

/// What a new pthread runs (non-generic: a C thread entry cannot name a generic type).
final class _ThreadStart {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}
