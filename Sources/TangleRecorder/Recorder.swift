import CTangleSupport
import Glibc
import Synchronization
import TangleTraceFormat

/// The recorder: every traced operation calls `Recorder.record`. On when `TANGLE_TRACE=<dir>` is
/// set (read once, lazily; children inherit it); off and near-free otherwise.
///
/// Hot path: `record` appends a fixed 64-byte binary record (plus 8 bytes per stack frame) to the
/// calling thread's ring buffer (C, lock-free, `trace_support.c`). A flusher thread formats JSON
/// lines with a raw byte writer and compresses them into one LZ4 frame per process
/// (`<dir>/<pid>-<start>.jsonl.lz4`, mode 0600) every 50 ms, when a buffer is half full, and
/// synchronously before every blocking wait (`EventKind.isWait`) and at exit. The format is in
/// docs/trace-format.md.
public enum Recorder {
    /// The trace directory, or nil when tracing is off.
    public static let directory: String? = {
        guard let p = getenv("TANGLE_TRACE"), p.pointee != 0 else { return nil }
        return String(cString: p)
    }()

    private static let enabledFlag: Bool = directory != nil

    /// True when `TANGLE_TRACE=<dir>` is set. Cheap to test.
    public static var isEnabled: Bool { enabledFlag }

    private static let objectCounter = Atomic<UInt64>(0)
    private static let messageCounter = Atomic<UInt64>(0)

    // MARK: recording

    /// Records one event. `stack`: capture the caller's stack (frame-pointer walk, interned).
    ///
    /// Transparent (inlined into the caller even in debug builds, so it adds no frame): the
    /// defaults are filled in at the call site — a non-inlined function with default arguments
    /// calls one generator function per defaulted argument on every event — and the caller calls
    /// the C recorder itself, so `tangle_trace_append`'s return address is already the caller's
    /// (skip 0). That call is the only one, also when the recorder starts or a full ring is
    /// drained and the event retried: every way through records the same stack.
    @_transparent
    public static func record(
        _ kind: EventKind, object: UInt64 = 0, a: UInt64 = 0, b: UInt64 = 0, c: UInt64 = 0,
        result: WaitResult = .ok, stack: Bool = true
    ) {
        if tangle_trace_state != 1 && !startRecording() { return }
        _ = append(kind, tangle_append_meta(kind.rawValue, result.rawValue, stack ? 1 : 0, 0, 0), stack, nil, object, a, b, c)
    }

    /// The C recorder, timed now or at `time`, through the entry that takes stacks or (`stack`
    /// false) the stackless one; when the ring is full, drains and records again (once), then
    /// wakes the flusher or flushes before a wait as the event asks. False when the event was
    /// lost (a `dropped` event says so). Transparent: the C call is made from the caller's own
    /// frame, on the retry too, so `meta`'s `skip` counts the caller's frames only and both
    /// attempts take the same stack. `stack` and `time` are constants at the call sites, so one
    /// C call is compiled in.
    @_transparent @usableFromInline
    static func append(
        _ kind: EventKind, _ meta: UInt64, _ stack: Bool, _ time: Time?, _ object: UInt64, _ a: UInt64,
        _ b: UInt64, _ c: UInt64
    ) -> Bool {
        var retried = false
        while true {
            let rc: Int32
            if let time {
                rc = tangle_trace_append_at(meta, time.ring, object, a, b, c)
            } else {
                rc = stack ? tangle_trace_append(meta, object, a, b, c) : tangle_trace_append_plain(meta, object, a, b, c)
            }
            if rc >= 0 {
                if rc != 0 || kind.isWait { afterAppend(rc, kind) }
                return true
            }
            if !makeRoom(rc, retried: retried) { return false }
            retried = true
        }
    }

    /// `record` when the recorder is not running: false when tracing is off (or the recorder
    /// closed or failed), else starts it.
    @usableFromInline @inline(never)
    static func startRecording() -> Bool { isRunning() }

    /// After an append that asks for more: wake the flusher (the ring is half full), flush
    /// before a blocking wait.
    @usableFromInline @inline(never)
    static func afterAppend(_ rc: Int32, _ kind: EventKind) {
        if rc == 1 { tangle_trace_wake() }
        if kind.isWait { flush() }
    }

    /// The ring is full and the flusher is not draining it (busy machine: descheduled), or the
    /// buffer could not be allocated: drain it ourselves. True: record again (once). False: the
    /// event is lost, and a `dropped` event says so.
    @usableFromInline @inline(never)
    static func makeRoom(_ rc: Int32, retried: Bool) -> Bool {
        flush()
        if rc == -1 && !retried { return true }
        tangle_trace_lock()
        Writer.shared?.writeDropped(count: 1)
        tangle_trace_unlock()
        return false
    }

    /// An instant on the recorder's clock, for an event recorded later but timed at it
    /// (`record(…, at:)`).
    public struct Time: Sendable {
        @usableFromInline let ring: UInt64
    }

    /// Now, on the recorder's clock (starts the recorder when tracing is on, so the clock is the
    /// one its rings use).
    public static func time() -> Time {
        _ = isRunning()
        return Time(ring: tangle_trace_now())
    }

    /// Records one event that carries a name (slow path: the text goes through a side table), or
    /// one timed at `time`, taken before what it records happened: an event that can only be
    /// recorded afterwards (a spawn or fork, once the child's pid is known) but must come before
    /// everything the other side records (the child's `proc.start`) — time order is what the
    /// analyzer's happens-before follows.
    @inline(never)
    public static func record(
        _ kind: EventKind, object: UInt64 = 0, text: String?, a: UInt64 = 0, b: UInt64 = 0,
        c: UInt64 = 0, result: WaitResult = .ok, stack: Bool = true, at time: Time? = nil
    ) {
        guard isRunning() else { return }
        let id = text.map { TextTable.put($0) } ?? 0
        // skip 1: the return address into this function; the first frame kept is our caller.
        let meta = tangle_append_meta(kind.rawValue, result.rawValue, stack ? 1 : 0, 1, id)
        if !append(kind, meta, stack, time, object, a, b, c) && id != 0 { _ = TextTable.take(id) }
    }

    /// For the recorder's own entry points (start, threadStarted, …): the stack starts at their
    /// caller, not inside the recorder.
    @inline(never)
    static func recordFromRecorder(
        _ kind: EventKind, object: UInt64 = 0, text: String? = nil, a: UInt64 = 0, b: UInt64 = 0,
        c: UInt64 = 0, result: WaitResult = .ok, stack: Bool = true
    ) {
        guard isRunning() else { return }
        let id = text.map { TextTable.put($0) } ?? 0
        // skip 2: the return addresses into this function and into the recorder's entry point.
        let meta = tangle_append_meta(kind.rawValue, result.rawValue, stack ? 1 : 0, 2, id)
        if !append(kind, meta, stack, nil, object, a, b, c) && id != 0 { _ = TextTable.take(id) }
    }

    /// True when events can be recorded now (starting the recorder on first use). The running
    /// state is tested first: one plain load on the hot path (`enabledFlag` is a lazy global).
    @inline(__always)
    private static func isRunning() -> Bool {
        if tangle_trace_state == 1 { return true }
        guard enabledFlag else { return false }
        ensureStarted()
        return tangle_trace_state == 1
    }

    /// `(pid << 28) | per-process counter`: unique across processes, even when tracing is off.
    public static func newObjectID() -> UInt64 {
        let n = objectCounter.add(1, ordering: .relaxed).newValue
        return (UInt64(UInt32(bitPattern: currentPID())) << 28) | (n & 0xFFF_FFFF)
    }

    /// Same scheme as `newObjectID`, separate counter.
    public static func newMessageID() -> UInt64 {
        let n = messageCounter.add(1, ordering: .relaxed).newValue
        return (UInt64(UInt32(bitPattern: currentPID())) << 28) | (n & 0xFFF_FFFF)
    }

    @inline(__always) static func currentPID() -> Int32 {
        let p = tangle_trace_pid
        return p != 0 ? p : getpid()
    }

    /// Synchronous: everything recorded so far (by every thread) reaches write(2).
    public static func flush() {
        guard enabledFlag, tangle_trace_state == 1 else { return }
        tangle_trace_lock()
        Writer.shared?.drain(flushFrame: true)
        tangle_trace_unlock()
    }

    /// Compressed bytes written to this process's file so far, and events formatted (for benchmarks).
    public static var written: (bytes: UInt64, events: UInt64) {
        guard enabledFlag, tangle_trace_state == 1 else { return (0, 0) }
        tangle_trace_lock()
        defer { tangle_trace_unlock() }
        guard let w = Writer.shared else { return (0, 0) }
        return (w.bytesWritten, w.events)
    }

    /// This process's trace file, when tracing is on and started.
    public static var filePath: String? {
        guard enabledFlag, tangle_trace_state == 1 || tangle_trace_state == 3 else { return nil }
        tangle_trace_lock()
        defer { tangle_trace_unlock() }
        return Writer.shared?.path
    }

    // MARK: lifecycle

    private nonisolated(unsafe) static var startRecorded = false
    private nonisolated(unsafe) static var exitRecorded = false
    private nonisolated(unsafe) static var pendingProcessObject: UInt64 = 0

    /// Opens the file and writes the header; records `proc.start` (o: process object, a: ppid,
    /// b: forked, text: name) the first time it is called. Idempotent.
    public static func start(processObject: UInt64 = 0, name: String? = nil, forked: Bool = false) {
        guard enabledFlag else { return }
        tangle_trace_lock()
        let first = !startRecorded
        startRecorded = true
        if tangle_trace_state != 1 { pendingProcessObject = processObject }
        tangle_trace_unlock()
        ensureStarted()
        if first {
            let ppid = UInt64(UInt32(bitPattern: getppid()))
            recordFromRecorder(.processStart, object: processObject, text: name, a: ppid, b: forked ? 1 : 0)
        }
    }

    /// `internal`: a runtime thread that only relays (see `EventSpec`, `thread.start`).
    public static func threadStarted(object: UInt64, name: String?, internal: Bool = false) {
        guard enabledFlag else { return }
        recordFromRecorder(.threadStart, object: object, text: name, a: 0, b: `internal` ? 1 : 0)
    }

    public static func threadExited(object: UInt64) {
        guard enabledFlag else { return }
        recordFromRecorder(.threadExit, object: object)
    }

    /// Records `proc.exit` (a: status, b: signal), flushes, ends the frame. Later events are lost.
    public static func processExiting(status: Int32, signal: Int32) {
        guard enabledFlag, tangle_trace_state == 1 else { return }
        if !exitRecorded {
            exitRecorded = true
            recordFromRecorder(.processExit, a: UInt64(UInt32(bitPattern: status)), b: UInt64(UInt32(bitPattern: signal)), stack: false)
        }
        tangle_trace_lock()
        if tangle_trace_state == 1 {
            Writer.shared?.drain(flushFrame: false)
            Writer.shared?.end()
            tangle_trace_state = 3
        }
        tangle_trace_unlock()
    }

    /// In a forked child: start a new file, drop the parent's unflushed records, record
    /// `proc.start` with `forked` = 1. (A pthread_atfork handler already did the C-side reset.)
    public static func afterForkInChild(processObject: UInt64, name: String?) {
        guard enabledFlag else { return }
        tangle_trace_lock()
        if tangle_trace_state == 1 || tangle_trace_state == 3 { tangle_trace_state = 2 }
        tangle_trace_discard_all()
        startRecorded = false
        exitRecorded = false
        tangle_trace_unlock()
        start(processObject: processObject, name: name, forked: true)
    }

    private nonisolated(unsafe) static var hooksInstalled = false

    @inline(never)
    static func ensureStarted() {
        guard let dir = directory else { return }
        tangle_trace_lock()
        defer { tangle_trace_unlock() }
        let state = tangle_trace_state
        if state == 1 || state == 3 || state == 4 { return }
        if state == 2 {
            // A forked child: the parent's writer (file, stacks, names) is not ours. Leak it rather
            // than run its deinit on state another thread may have been changing at fork time.
            if let old = Writer.shared { _ = Unmanaged.passRetained(old) }
            Writer.shared = nil
            TextTable.resetAfterFork()
            startRecorded = false
            exitRecorded = false
        }
        tangle_trace_pid = getpid()
        _ = tangle_trace_clock_init()  // before the first record, once per process
        guard let w = Writer(directory: dir, processObject: pendingProcessObject) else {
            tangle_trace_state = 4
            return
        }
        Writer.shared = w
        tangle_trace_state = 1
        tangle_trace_install_atfork()
        if !hooksInstalled {
            hooksInstalled = true
            _ = tangle_trace_on_exit(recorderOnExit)
            _ = tangle_trace_install_signals(recorderOnSignal)
        }
        startFlusherThread()
    }

    private static func startFlusherThread() {
        var tid = pthread_t()
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
        let gen = tangle_trace_fork_generation
        let ctx = UnsafeMutableRawPointer(bitPattern: UInt(gen) + 1)
        _ = pthread_create(&tid, &attr, recorderFlusherMain, ctx)
        pthread_attr_destroy(&attr)
    }

    static func onSignal(_ sig: Int32) {
        guard tangle_trace_state == 1 else { return }
        guard tangle_trace_trylock_ms(200) != 0 else { return }
        if tangle_trace_state == 1, let w = Writer.shared {
            w.drain(flushFrame: false)
            w.writeSyntheticExit(status: 0, signal: sig)
            w.end()
            tangle_trace_state = 3
        }
        tangle_trace_unlock()
    }

    static func onExit(_ status: Int32) {
        guard tangle_trace_state == 1 else { return }
        processExiting(status: status, signal: 0)
    }
}

private func recorderOnExit(_ status: Int32, _ arg: UnsafeMutableRawPointer?) {
    Recorder.onExit(status)
}

private func recorderOnSignal(_ sig: Int32) {
    Recorder.onSignal(sig)
}

private func recorderFlusherMain(_ arg: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    let gen = UInt64(UInt(bitPattern: arg)) &- 1
    var heads: UInt64 = 0
    while true {
        tangle_trace_wait(50)
        if tangle_trace_fork_generation != gen { return nil }  // (cannot happen: threads do not survive fork)
        let state = tangle_trace_state
        if state == 3 || state == 4 { return nil }
        if state != 1 { continue }
        tangle_trace_lock()
        let now = tangle_trace_heads()
        let recorded = now &- heads
        heads = now
        if tangle_trace_state == 1 { Writer.shared?.drain(flushFrame: true) }
        tangle_trace_unlock()
        // (A reaped buffer makes the sum drop: `recorded` wraps, which only means "follow".)
        if recorded >= Recorder.busySlots { heads = followBusyThreads(heads) }
    }
}

extension Recorder {
    /// Slots recorded between two flusher rounds that may mark a thread recording in a tight loop.
    static let busySlots: UInt64 = 1024
    /// While following, the rate checked over windows of this length…
    static let followWindowNanoseconds: UInt64 = 200_000
    /// …must stay at this many slots per window (1 M records/s), or the flusher sleeps again.
    static let followSlotsPerWindow: UInt64 = 200
}

/// After a busy round the flusher stays awake and drains as records come, as long as threads
/// record at least a million records a second: a sleeping flusher takes milliseconds to wake on a
/// virtual machine (its CPU halts), and a thread recording that fast meanwhile fills its ring
/// (8192 records) and drains it itself, doing both jobs on one core. Slower than that, waking at
/// half a ring is soon enough, and the flusher goes back to sleep rather than keep a CPU busy.
/// Activity is told by the buffers' heads, not by what this loop drained (a thread that drained
/// its own ring is busy too). The file is still flushed every ≤ 50 ms. Returns the heads' sum
/// last seen.
private func followBusyThreads(_ start: UInt64) -> UInt64 {
    var heads = start
    var windowStart = tangle_now_ns()
    var windowHeads = start
    var lastFlush = windowStart
    while true {
        for _ in 0..<200 { tangle_cpu_relax() }
        let now = tangle_now_ns()
        tangle_trace_lock()
        guard tangle_trace_state == 1, let w = Writer.shared else {
            tangle_trace_unlock()
            return heads
        }
        let h = tangle_trace_heads()
        if h != heads {
            heads = h
            let flush = now &- lastFlush > 50_000_000
            w.drain(flushFrame: flush, behind: true)
            if flush { lastFlush = now }
        }
        tangle_trace_unlock()
        if now &- windowStart >= Recorder.followWindowNanoseconds {
            // (A reaped buffer makes the sum drop: the difference wraps, which means "go on".)
            if heads &- windowHeads < Recorder.followSlotsPerWindow { return heads }
            windowStart = now
            windowHeads = heads
        }
    }
}

/// Names recorded with the text variant of `record`, until the flusher writes them.
enum TextTable {
    private nonisolated(unsafe) static var table: [UInt32: String] = [:]
    private nonisolated(unsafe) static var next: UInt32 = 0
    private nonisolated(unsafe) static var lock = pthread_mutex_t()
    private nonisolated(unsafe) static var lockReady = false
    private static let once: Void = {
        pthread_mutex_init(&lock, nil)
        lockReady = true
    }()

    static func put(_ s: String) -> UInt32 {
        _ = once
        pthread_mutex_lock(&lock)
        next &+= 1
        if next == 0 { next = 1 }
        let id = next
        table[id] = cappedTraceName(s)  // (a line never exceeds TraceLimits.maxLineBytes)
        pthread_mutex_unlock(&lock)
        return id
    }

    static func take(_ id: UInt32) -> String? {
        _ = once
        pthread_mutex_lock(&lock)
        let s = table.removeValue(forKey: id)
        pthread_mutex_unlock(&lock)
        return s
    }

    static func resetAfterFork() {
        _ = once
        pthread_mutex_init(&lock, nil)
        let old = table
        _ = Unmanaged.passRetained(Box(old))
        table = [:]
    }

    final class Box { let v: [UInt32: String]; init(_ v: [UInt32: String]) { self.v = v } }
}
