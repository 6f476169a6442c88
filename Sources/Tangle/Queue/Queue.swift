import CTangleSupport
import Glibc

/// Errors of Queue / JoinableQueue.
public enum QueueError: Error, CustomStringConvertible, Equatable {
    /// `putNowait`, or a `put` whose timeout passed, on a full queue (Python's `queue.Full`).
    case full(object: UInt64)
    /// `getNowait`, or a `get` whose timeout passed, on an empty queue (Python's `queue.Empty`).
    case empty(object: UInt64)
    /// The queue was closed by this process (`close()`); it cannot be used through this handle.
    case closed(object: UInt64)
    /// One encoded message is bigger than the queue's shared buffer.
    case messageTooLarge(object: UInt64, size: Int, capacity: Int)
    /// `taskDone()` called more times than items were put (Python's ValueError).
    case tooManyTaskDone(object: UInt64)
    /// `join()` timed out with tasks still unfinished.
    case joinTimeout(object: UInt64, unfinished: Int)

    public var description: String {
        switch self {
        case .full(let o): return "queue \(o) is full"
        case .empty(let o): return "queue \(o) is empty"
        case .closed(let o): return "queue \(o) is closed: it was closed by this process and cannot be used any more"
        case .messageTooLarge(let o, let size, let cap):
            return "queue \(o): a message of \(size) bytes (encoded, with its 16-byte header) does not fit in the queue's \(cap)-byte shared buffer; create the queue with a larger bufferSize"
        case .tooManyTaskDone(let o): return "queue \(o): taskDone() called too many times (more than items put)"
        case .joinTimeout(let o, let n): return "queue \(o): join timed out with \(n) unfinished tasks"
        }
    }
}

/// The queue's shared header (128 bytes), followed by the ring of messages.
struct _QueueState {
    var lock: tangle_lock_t          // 16
    var capacity: UInt64             // ring bytes
    var head: UInt64                 // read position (monotonic)
    var tail: UInt64                 // write position (monotonic)
    var count: UInt64                // messages in the ring
    var maxsize: UInt64              // 0 = unbounded (bounded by the ring only)
    var unfinished: UInt64
    var notEmpty: UInt32             // futex words: bumped when a waiter must look again
    var notEmptyWaiters: UInt32
    var notFull: UInt32
    var notFullWaiters: UInt32
    var joinSeq: UInt32
    var joinWaiters: UInt32
    var joinable: UInt32
}

/// A FIFO queue of `Codable` messages shared by threads and processes (Python's
/// `multiprocessing.Queue`).
///
/// Messages are encoded with `BinaryCodec` into a ring buffer in anonymous shared memory guarded by
/// a robust lock; waiters block on futexes that are only signalled when someone waits. Each message
/// carries a message id so the trace's `queue.put` and `queue.get` name the same `msg`.
/// `maxsize` bounds the number of messages (0 = only the buffer bounds it: a `put` that does not fit
/// waits for room). A message larger than the buffer throws `QueueError.messageTooLarge`.
public class Queue<T: Codable>: ProcessTransferable, @unchecked Sendable {
    let region: SharedRegion
    let state: UnsafeMutablePointer<_QueueState>
    let ring: UnsafeMutableRawPointer
    let capacity: Int
    /// The object id events name (unique across processes).
    public let object: UInt64
    /// Closed through this handle (local to the process, as in Python).
    private var closedLocally = false

    static var headerSize: Int { 128 }

    /// A queue of at most `maxsize` messages (0 = no limit but the buffer) whose shared buffer holds
    /// `bufferSize` bytes of encoded messages (each takes 16 bytes + its encoding, rounded up to 8).
    public convenience init(maxsize: Int = 0, bufferSize: Int = 1 << 20, name: String? = nil) {
        self.init(maxsize: maxsize, bufferSize: bufferSize, name: name, joinable: false)
    }

    init(maxsize: Int, bufferSize: Int, name: String?, joinable: Bool) {
        precondition(MemoryLayout<_QueueState>.stride <= Queue.headerSize)
        precondition(maxsize >= 0, "Queue: maxsize must be ≥ 0")
        let cap = max(256, (bufferSize + 7) & ~7)
        object = Recorder.newObjectID()
        region = SharedRegion(create: Queue.headerSize + cap, kind: .queue, object: object)
        state = region.body.bindMemory(to: _QueueState.self, capacity: 1)
        ring = region.body + Queue.headerSize
        capacity = cap
        state.pointee.capacity = UInt64(cap)
        state.pointee.maxsize = UInt64(maxsize)
        state.pointee.joinable = joinable ? 1 : 0
        if _tracing {
            if let name { Recorder.record(.queueNew, object: object, text: name, a: UInt64(maxsize), b: joinable ? 1 : 0) }
            else { Recorder.record(.queueNew, object: object, a: UInt64(maxsize), b: joinable ? 1 : 0) }
        }
    }

    public required init(from decoder: Decoder) throws {
        region = try SharedRegion.decodeHandle(from: decoder, kind: .queue, typeName: "Queue", objectType: .queue)
        object = region.object
        state = region.body.bindMemory(to: _QueueState.self, capacity: 1)
        ring = region.body + Queue.headerSize
        capacity = Int(state.pointee.capacity)
        guard Queue.headerSize + capacity + SharedRegion.headerSize <= region.size else {
            throw SyncError.handleNotInherited(type: "Queue", fd: -1, object: object)
        }
    }

    public func encode(to encoder: Encoder) throws { try region.encodeHandle(to: encoder) }

    // MARK: state

    /// Messages in the queue (approximate while others use it).
    public var qsize: Int { Int(state.pointee.count) }
    public var isEmpty: Bool { qsize == 0 }
    public var isFull: Bool {
        let m = state.pointee.maxsize
        return m > 0 && state.pointee.count >= m
    }
    public var maxsize: Int { Int(state.pointee.maxsize) }

    @inline(__always) var lockPointer: UnsafeMutablePointer<tangle_lock_t> {
        UnsafeMutableRawPointer(state).assumingMemoryBound(to: tangle_lock_t.self)
    }

    @inline(__always) func lockQueue() {
        let l = lockPointer
        if tangle_lock_try(l) != 0 { return }
        if tangle_lock_spin(l, 400) != 0 { return }
        var dead: Int32 = 0
        // EOWNERDEAD: a process died inside a critical section; indices are published last, so
        // the ring is consistent and we simply continue holding the lock.
        _ = tangle_lock_acquire_slow(l, -1, &dead)
    }

    @inline(__always) func unlockQueue() { _ = tangle_lock_release(lockPointer) }

    @inline(__always) private func checkOpen() throws {
        if closedLocally { throw QueueError.closed(object: object) }
    }

    /// Waits on the futex word at `word` (registered as a waiter in `waiters`) with the lock held;
    /// returns with the lock held. False when the deadline passed.
    private func waitLocked(_ word: UnsafeMutablePointer<UInt32>, _ waiters: UnsafeMutablePointer<UInt32>, _ end: UInt64?) -> Bool {
        waiters.pointee += 1
        let seq = word.pointee
        unlockQueue()
        var ok = true
        if let left = remaining(end) {
            _ = tangle_futex_wait(word, seq, left)
        } else {
            ok = false
        }
        lockQueue()
        waiters.pointee -= 1
        return ok
    }

    @inline(__always) private func signal(_ word: UnsafeMutablePointer<UInt32>, _ waiters: UnsafeMutablePointer<UInt32>, _ n: Int32) {
        if waiters.pointee > 0 {
            word.pointee &+= 1
            _ = tangle_futex_wake(word, n)
        }
    }

    // MARK: ring copy helpers

    @inline(__always) private func ringWrite(_ pos: UInt64, _ src: UnsafeRawPointer, _ n: Int) {
        let off = Int(pos % UInt64(capacity))
        let first = min(n, capacity - off)
        (ring + off).copyMemory(from: src, byteCount: first)
        if first < n { ring.copyMemory(from: src + first, byteCount: n - first) }
    }

    @inline(__always) private func ringRead(_ pos: UInt64, _ dst: UnsafeMutableRawPointer, _ n: Int) {
        let off = Int(pos % UInt64(capacity))
        let first = min(n, capacity - off)
        dst.copyMemory(from: ring + off, byteCount: first)
        if first < n { (dst + first).copyMemory(from: ring, byteCount: n - first) }
    }

    // MARK: put

    /// Puts `item`, blocking while the queue is full until `timeout` passes (nil = no limit;
    /// then throws `QueueError.full`).
    public func put(_ item: T, timeout: Duration? = nil) throws {
        try put(item, ns: timeoutNanoseconds(timeout))
    }

    /// Puts `item` or throws `QueueError.full` at once.
    public func putNowait(_ item: T) throws { try put(item, ns: 0) }

    /// Plain-data messages (`Int`, `Double`, structs of them …) are copied as their bytes instead of
    /// going through `BinaryCodec`: every process of a session runs the same executable, so the
    /// layout is the same on both sides.
    @inline(__always) private var copiesRawBytes: Bool { _isPOD(T.self) && MemoryLayout<T>.size <= 256 }

    private func put(_ item: T, ns: Int64) throws {
        try checkOpen()
        if copiesRawBytes {
            try withUnsafeBytes(of: item) { try putEncoded($0, ns: ns) }
        } else {
            try BinaryCodec.withEncoded(item) { try putEncoded($0, ns: ns) }
        }
    }

    private func putEncoded(_ payload: UnsafeRawBufferPointer, ns: Int64) throws {
        do {
            let n = payload.count
            let need = 16 + ((n + 7) & ~7)
            guard need <= capacity else {
                throw QueueError.messageTooLarge(object: object, size: need, capacity: capacity)
            }
            let msg = Recorder.newMessageID()
            let s = state
            lockQueue()
            if !hasRoom(need) {
                // Spin a little outside the lock before declaring a wait.
                if ns != 0 {
                    unlockQueue()
                    var spins = 0
                    while spins < 2000 && !hasRoomRacy(need) { tangle_cpu_relax(); spins += 1 }
                    lockQueue()
                }
                if !hasRoom(need) {
                    if ns == 0 {
                        unlockQueue()
                        Recorder.record(.queueTimeout, object: object, a: 0, result: .full)
                        throw QueueError.full(object: object)
                    }
                    Recorder.record(.queuePutWait, object: object)
                    let end = deadline(after: ns)
                    while !hasRoom(need) {
                        if !waitLocked(&s.pointee.notFull, &s.pointee.notFullWaiters, end) {
                            unlockQueue()
                            Recorder.record(.queueTimeout, object: object, a: 0, result: .timeout)
                            throw QueueError.full(object: object)
                        }
                    }
                }
            }
            // Write the record, trace it, then publish the new tail.
            var header: (UInt32, UInt32, UInt64) = (UInt32(n), 0, msg)
            let tail = s.pointee.tail
            withUnsafeBytes(of: &header) { ringWrite(tail, $0.baseAddress!, 16) }
            if n > 0 { ringWrite(tail + 16, payload.baseAddress!, n) }
            if _tracing { Recorder.record(.queuePut, object: object, a: msg, b: UInt64(n)) }
            // One store makes the record visible (a getter looks at head != tail); the counters
            // follow. A process dying in between leaves the ring consistent.
            tangle_atomic_store64(&s.pointee.tail, tail + UInt64(need))
            s.pointee.unfinished += 1
            s.pointee.count += 1
            signal(&s.pointee.notEmpty, &s.pointee.notEmptyWaiters, 1)
            unlockQueue()
        }
    }

    @inline(__always) private func hasRoom(_ need: Int) -> Bool {
        let s = state.pointee
        if s.maxsize > 0 && s.count >= s.maxsize { return false }
        return UInt64(capacity) - (s.tail - s.head) >= UInt64(need)
    }

    @inline(__always) private func hasRoomRacy(_ need: Int) -> Bool {
        let tail = tangle_atomic_load64(&state.pointee.tail)
        let head = tangle_atomic_load64(&state.pointee.head)
        let count = tangle_atomic_load64(&state.pointee.count)
        let m = state.pointee.maxsize
        if m > 0 && count >= m { return false }
        return UInt64(capacity) &- (tail &- head) >= UInt64(need)
    }

    // MARK: get

    /// Removes and returns the oldest message, blocking while the queue is empty until `timeout`
    /// passes (nil = no limit; then throws `QueueError.empty`).
    public func get(timeout: Duration? = nil) throws -> T {
        try get(ns: timeoutNanoseconds(timeout))
    }

    /// Returns the oldest message or throws `QueueError.empty` at once.
    public func getNowait() throws -> T { try get(ns: 0) }

    private func get(ns: Int64) throws -> T {
        try checkOpen()
        let s = state
        lockQueue()
        if s.pointee.head == s.pointee.tail {
            if ns != 0 {
                unlockQueue()
                var spins = 0
                while spins < 4000 && tangle_atomic_load64(&s.pointee.tail) == tangle_atomic_load64(&s.pointee.head) { tangle_cpu_relax(); spins += 1 }
                lockQueue()
            }
            if s.pointee.head == s.pointee.tail {
                if ns == 0 {
                    unlockQueue()
                    Recorder.record(.queueTimeout, object: object, a: 1, result: .empty)
                    throw QueueError.empty(object: object)
                }
                Recorder.record(.queueGetWait, object: object)
                let end = deadline(after: ns)
                while s.pointee.head == s.pointee.tail {
                    if !waitLocked(&s.pointee.notEmpty, &s.pointee.notEmptyWaiters, end) {
                        unlockQueue()
                        Recorder.record(.queueTimeout, object: object, a: 1, result: .timeout)
                        throw QueueError.empty(object: object)
                    }
                }
            }
        }
        var header: (UInt32, UInt32, UInt64) = (0, 0, 0)
        let head = s.pointee.head
        withUnsafeMutableBytes(of: &header) { ringRead(head, $0.baseAddress!, 16) }
        let n = Int(header.0)
        let msg = header.2
        let need = 16 + ((n + 7) & ~7)
        return try withUnsafeTemporaryAllocation(byteCount: max(n, 1), alignment: 8) { buffer in
            if n > 0 { ringRead(head + 16, buffer.baseAddress!, n) }
            tangle_atomic_store64(&s.pointee.head, head + UInt64(need))
            if s.pointee.count > 0 { s.pointee.count -= 1 }
            signal(&s.pointee.notFull, &s.pointee.notFullWaiters, 1)
            unlockQueue()
            if _tracing { Recorder.record(.queueGet, object: object, a: msg, b: UInt64(n)) }
            if copiesRawBytes {
                guard n == MemoryLayout<T>.size else {
                    throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "queue \(object): a \(n)-byte message for a \(MemoryLayout<T>.size)-byte \(T.self)"))
                }
                return buffer.baseAddress!.loadUnaligned(as: T.self)
            }
            return try BinaryCodec.decode(T.self, fromRaw: UnsafeRawBufferPointer(start: buffer.baseAddress, count: n))
        }
    }

    // MARK: close

    /// Closes this process's handle: further use of it throws `QueueError.closed`. Other processes'
    /// handles are unaffected (as in Python); messages already put stay in the queue.
    public func close() {
        guard !closedLocally else { return }
        closedLocally = true
        Recorder.record(.queueClose, object: object)
        Recorder.record(.handleClose, object: object, a: ObjectType.queue.rawValue, stack: false)
    }

    public var isClosed: Bool { closedLocally }

    // MARK: joinable support (used by JoinableQueue)

    func taskDoneImpl() throws {
        try checkOpen()
        let s = state
        lockQueue()
        guard s.pointee.unfinished > 0 else {
            unlockQueue()
            throw QueueError.tooManyTaskDone(object: object)
        }
        s.pointee.unfinished -= 1
        let left = s.pointee.unfinished
        Recorder.record(.queueTaskDone, object: object, a: left)
        if left == 0 { signal(&s.pointee.joinSeq, &s.pointee.joinWaiters, Int32.max) }
        unlockQueue()
    }

    func joinImpl(ns: Int64) throws {
        try checkOpen()
        let s = state
        lockQueue()
        if s.pointee.unfinished > 0 {
            Recorder.record(.queueJoinWait, object: object, a: s.pointee.unfinished)
            let end = deadline(after: ns)
            while s.pointee.unfinished > 0 {
                if !waitLocked(&s.pointee.joinSeq, &s.pointee.joinWaiters, end) {
                    let left = s.pointee.unfinished
                    unlockQueue()
                    Recorder.record(.queueJoinDone, object: object, result: .timeout, stack: false)
                    throw QueueError.joinTimeout(object: object, unfinished: Int(left))
                }
            }
        }
        unlockQueue()
        Recorder.record(.queueJoinDone, object: object, stack: false)
    }

    /// Unfinished tasks (items put and not yet marked done; approximate).
    var unfinishedTasks: Int { Int(state.pointee.unfinished) }
}

/// A Queue whose consumers mark each item done (`taskDone`), so a producer can `join` until every
/// item put has been processed (Python's `JoinableQueue`).
public final class JoinableQueue<T: Codable>: Queue<T>, @unchecked Sendable {
    public init(maxsize: Int = 0, bufferSize: Int = 1 << 20, name: String? = nil) {
        super.init(maxsize: maxsize, bufferSize: bufferSize, name: name, joinable: true)
    }

    public required init(from decoder: Decoder) throws { try super.init(from: decoder) }

    /// Marks one item got earlier as processed. Throws `QueueError.tooManyTaskDone` when called more
    /// times than items were put.
    public func taskDone() throws { try taskDoneImpl() }

    /// Blocks until every item put has been marked done (or `timeout` passes: throws
    /// `QueueError.joinTimeout`).
    public func join(timeout: Duration? = nil) throws { try joinImpl(ns: timeoutNanoseconds(timeout)) }

    /// Items put and not yet marked done (approximate).
    public var unfinished: Int { unfinishedTasks }
}
