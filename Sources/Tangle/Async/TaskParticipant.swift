import CTangleSupport
import Glibc
import Synchronization
import TangleRecorder

/// The trace identity of a Swift task that uses Tangle's `async` calls: a participant of its own,
/// like a thread, so the analyzer can say "task `name` holds lock L and waits for queue Q".
///
/// Why not the thread: a task hops between the cooperative pool's threads at every `await`, and
/// the thread it ran on goes on to run other tasks — a wait recorded under a thread's tid would
/// pin that thread in the wait-for graph while it is busy elsewhere, and a lock taken on one
/// thread would be released on another. So every task gets a stable, tid-like id (`tid`,
/// `1 << 30` + a counter: outside the kernel's range, whose `pid_max` is at most 2^22) and a small
/// ring of its own in the recorder. Tangle's async calls record their events into that ring
/// (`with`), from whichever thread runs the task at that moment — threads take turns, never two at
/// once, because one task runs on one thread at a time. The ring starts with `thread.start`
/// (name `task <name>`) and ends with `thread.exit` (docs/trace-format.md, "Tasks").
///
/// A task is found by its `UnsafeCurrentTask` in a process-wide table. `withTaskParticipant`
/// names it and ends it when its body returns; a task that never called it gets `task <n>` on its
/// first async call, and keeps it until the table evicts it (at 4096 entries, the oldest half: a
/// long-lived task may then appear under a second id).
public final class TaskParticipant: @unchecked Sendable {
    /// The tid-like id its events carry (`tid` in the trace).
    public let tid: Int32
    /// The object id of its `thread.start` / `thread.exit`.
    public let object: UInt64
    /// The name the trace gives it (`task <name>`).
    public let name: String
    private var ring: UnsafeMutablePointer<tangle_tbuf>?
    private let generation: UInt64
    private var ended = false

    private static let counter = Atomic<Int32>(0)

    init(name: String?) {
        let n = TaskParticipant.counter.add(1, ordering: .relaxed).newValue
        tid = (1 << 30) | n
        object = Recorder.newObjectID()
        self.name = "task " + (name ?? "\(n)")
        generation = tangle_trace_fork_generation
        if Recorder.isEnabled {
            _ = Recorder.time()  // starts the recorder: the ring must be one the writer knows
            ring = tangle_trace_ring_create(tid, 256)
            let parent = UInt64(UInt32(bitPattern: tangle_sync_tid()))
            with { Recorder.record(.threadStart, object: object, text: self.name, a: parent, stack: false) }
        }
    }

    deinit { end() }

    /// Records `thread.exit` and hands the ring back to the writer. Idempotent.
    func end() {
        guard !ended else { return }
        ended = true
        guard let ring, generation == tangle_trace_fork_generation else { return }
        with { Recorder.record(.threadExit, object: object, stack: false) }
        self.ring = nil
        tangle_trace_ring_end(ring)
    }

    /// Runs `body` (synchronous: no suspension inside) with this task's ring as the calling
    /// thread's, so everything `body` records is the task's.
    @inline(__always)
    func with<R>(_ body: () throws -> R) rethrows -> R {
        guard let ring, generation == tangle_trace_fork_generation else { return try body() }
        let own = tangle_trace_ring_use(ring)
        defer { tangle_trace_ring_restore(own) }
        return try body()
    }

    // MARK: the table

    private struct Table {
        var byTask: [UnsafeCurrentTask: TaskParticipant] = [:]
        var order: [UnsafeCurrentTask] = []
    }
    private static let table = Mutex(Table())
    private static let limit = 4096

    /// The participant of the calling task (created on first use), or nil outside a task. Each
    /// thread remembers the last task it looked up (a task usually makes several calls in a row
    /// on one thread): no lock then.
    static func current() -> TaskParticipant? {
        withUnsafeCurrentTask { task in
            guard let task else { return nil }
            let generation = tableGeneration.load(ordering: .acquiring)
            if let raw = pthread_getspecific(cacheKey) {
                let entry = Unmanaged<CacheEntry>.fromOpaque(raw).takeUnretainedValue()
                if entry.task == task && entry.generation == generation { return entry.participant }
                Unmanaged<CacheEntry>.fromOpaque(raw).release()
                pthread_setspecific(cacheKey, nil)
            }
            let p = table.withLock { t in
                if let p = t.byTask[task] { return p }
                let p = TaskParticipant(name: nil)
                insert(p, for: task, into: &t)
                return p
            }
            let entry = CacheEntry(task: task, participant: p, generation: generation)
            pthread_setspecific(cacheKey, Unmanaged.passRetained(entry).toOpaque())
            return p
        }
    }

    private final class CacheEntry {
        let task: UnsafeCurrentTask
        let participant: TaskParticipant
        let generation: UInt64
        init(task: UnsafeCurrentTask, participant: TaskParticipant, generation: UInt64) {
            self.task = task
            self.participant = participant
            self.generation = generation
        }
    }

    /// Bumped whenever the table changes a task's participant (bind, unbind, eviction): the
    /// threads' remembered lookups are then stale.
    private static let tableGeneration = Atomic<UInt64>(0)

    private static let cacheKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { raw in
            if let raw { Unmanaged<AnyObject>.fromOpaque(raw).release() }
        }
        return key
    }()

    /// The calling task's participant when it already has one (never creates one).
    static func existing() -> TaskParticipant? {
        withUnsafeCurrentTask { task in
            guard let task else { return nil }
            if let raw = pthread_getspecific(cacheKey) {
                let entry = Unmanaged<CacheEntry>.fromOpaque(raw).takeUnretainedValue()
                if entry.task == task && entry.generation == tableGeneration.load(ordering: .acquiring) { return entry.participant }
            }
            return table.withLock { $0.byTask[task] }
        }
    }

    private static func insert(_ p: TaskParticipant, for task: UnsafeCurrentTask, into t: inout Table) {
        if t.byTask.count >= limit {
            let old = t.order.prefix(limit / 2)
            for k in old { t.byTask[k] = nil }
            t.order.removeFirst(old.count)
            tableGeneration.add(1, ordering: .releasing)
        }
        t.byTask[task] = p
        t.order.append(task)
    }

    fileprivate static func bind(_ p: TaskParticipant) {
        withUnsafeCurrentTask { task in
            guard let task else { return }
            table.withLock { t in
                if t.byTask[task] != nil { t.order.removeAll { $0 == task } }
                t.byTask[task] = nil
                insert(p, for: task, into: &t)
            }
            tableGeneration.add(1, ordering: .releasing)
        }
    }

    fileprivate static func unbind(_ p: TaskParticipant) {
        withUnsafeCurrentTask { task in
            guard let task else { return }
            table.withLock { t in
                if t.byTask[task] === p {
                    t.byTask[task] = nil
                    t.order.removeAll { $0 == task }
                }
            }
            tableGeneration.add(1, ordering: .releasing)
        }
    }
}

/// Runs `body` as a named participant of the trace: every Tangle `async` call the current task
/// makes inside it is recorded under `task <name>` (see `TaskParticipant`), which ends
/// (`thread.exit`) when `body` returns. Child tasks are participants of their own.
public func withTaskParticipant<R>(named name: String, _ body: () async throws -> R) async rethrows -> R {
    let p = TaskParticipant(name: name)
    TaskParticipant.bind(p)
    defer {
        TaskParticipant.unbind(p)
        p.end()
    }
    return try await body()
}
