import CTangleSupport
import Glibc
import TangleTraceFormat
import TangleRecorder

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
        case .full(let o): return "\(ObjectNames.label("queue", o)) is full"
        case .empty(let o): return "\(ObjectNames.label("queue", o)) is empty"
        case .closed(let o): return "\(ObjectNames.label("queue", o)) is closed: it was closed by this process and cannot be used any more"
        case .messageTooLarge(let o, let size, let cap):
            return "\(ObjectNames.label("queue", o)): a message of \(size) bytes (encoded, with its 16-byte header) does not fit in the queue's \(cap)-byte shared buffer; create the queue with a larger bufferSize"
        case .tooManyTaskDone(let o): return "\(ObjectNames.label("queue", o)): taskDone() called too many times (more than items put)"
        case .joinTimeout(let o, let n): return "\(ObjectNames.label("queue", o)): join timed out with \(n) unfinished tasks"
        }
    }
}

/// A FIFO queue of `Codable` messages shared by threads and processes (Python's
/// `multiprocessing.Queue`).
///
/// Messages are encoded with `BinaryCodec` (plain data: copied as bytes) into a byte ring in
/// anonymous shared memory. Producers serialise on one robust lock and consumers on another
/// (`tangle_queue_t` in sync_support.h), so a producer and a consumer never contend; each side
/// keeps its state in its own cache line. Waiters block on futexes that are only signalled when
/// someone waits. When tracing, each message carries a message id so the trace's `queue.put` and
/// `queue.get` name the same `msg`. `maxsize` bounds the number of messages (0 = only the buffer
/// bounds it: a `put` that does not fit waits for room). A message larger than the buffer throws
/// `QueueError.messageTooLarge`.
public class Queue<T: Codable>: ProcessTransferable, @unchecked Sendable {
    let region: SharedRegion
    let q: UnsafeMutablePointer<tangle_queue_t>
    let ring: UnsafeMutableRawPointer
    let capacity: Int
    /// The object id events name (unique across processes).
    public let object: UInt64
    /// Closed through this handle (local to the process, as in Python).
    private var closedLocally = false

    /// The state starts on the region's first 64-byte boundary (the region header takes 16 bytes).
    static var stateOffset: Int { 64 - SharedRegion.headerSize }
    static var headerSize: Int { stateOffset + MemoryLayout<tangle_queue_t>.stride }
    /// Positions live in 32 bits as [0, 2 × capacity).
    static var maxBufferSize: Int { 1 << 31 }

    /// A queue of at most `maxsize` messages (0 = no limit but the buffer) whose shared buffer holds
    /// `bufferSize` bytes of encoded messages (each takes 16 bytes + its encoding, rounded up to 8;
    /// at most 2 GiB).
    /// `name` nil: `queue@file.swift:line`, where it is created (ObjectNames).
    public convenience init(maxsize: Int = 0, bufferSize: Int = 1 << 20, name: String? = nil, fileID: String = #fileID, line: Int = #line) {
        self.init(maxsize: maxsize, bufferSize: bufferSize, name: name, joinable: false, fileID: fileID, line: line)
    }

    init(maxsize: Int, bufferSize: Int, name: String?, joinable: Bool, fileID: String, line: Int) {
        precondition(maxsize >= 0, "Queue: maxsize must be ≥ 0")
        precondition(bufferSize <= Queue.maxBufferSize, "Queue: bufferSize must be at most 2 GiB")
        let cap = max(256, (bufferSize + 7) & ~7)
        object = Recorder.newObjectID()
        region = SharedRegion(create: Queue.headerSize + cap, kind: .queue, object: object)
        q = (region.body + Queue.stateOffset).bindMemory(to: tangle_queue_t.self, capacity: 1)
        ring = region.body + Queue.headerSize
        capacity = cap
        q.pointee.capacity = UInt64(cap)
        q.pointee.maxsize = UInt64(maxsize)
        q.pointee.joinable = joinable ? 1 : 0
        q.pointee.layout = TANGLE_QUEUE_LAYOUT
        let name = ObjectNames.name(given: name, noun: "queue", fileID: fileID, line: line)
        ObjectNames.register(object, name)
        if _tracing { Recorder.record(.queueNew, object: object, text: name, a: UInt64(maxsize), b: joinable ? 1 : 0) }
    }

    public required init(from decoder: Decoder) throws {
        region = try SharedRegion.decodeHandle(from: decoder, kind: .queue, typeName: "Queue", objectType: .queue)
        object = region.object
        guard Queue.headerSize + SharedRegion.headerSize <= region.size else {
            throw SyncError.handleNotInherited(type: "Queue", fd: -1, object: object)
        }
        q = (region.body + Queue.stateOffset).bindMemory(to: tangle_queue_t.self, capacity: 1)
        ring = region.body + Queue.headerSize
        capacity = Int(q.pointee.capacity)
        guard q.pointee.layout == TANGLE_QUEUE_LAYOUT, Queue.headerSize + capacity + SharedRegion.headerSize <= region.size else {
            throw SyncError.handleNotInherited(type: "Queue", fd: -1, object: object)
        }
    }

    public func encode(to encoder: Encoder) throws { try region.encodeHandle(to: encoder) }

    // MARK: state

    /// Messages in the queue (approximate while others use it).
    public var qsize: Int { Int(tangle_queue_count(q)) }
    public var isEmpty: Bool { qsize == 0 }
    public var isFull: Bool {
        let m = q.pointee.maxsize
        return m > 0 && UInt64(tangle_queue_count(q)) >= m
    }
    public var maxsize: Int { Int(q.pointee.maxsize) }

    /// Polling before a wait: pauses, then sched_yields (see tangle_queue_poll_nonempty).
    static var spins: Int32 { 1000 }
    static var yields: Int32 { 20 }

    /// Sleeps last at most 100 ms, then the sleeper looks again: a process SIGKILLed between
    /// publishing a change and waking the sleepers cannot leave them asleep for ever.
    @inline(__always) static func slice(_ left: Int64) -> Int64 {
        left < 0 || left > 100_000_000 ? 100_000_000 : left
    }

    @inline(__always) func checkOpen() throws {
        if closedLocally { throw QueueError.closed(object: object) }
    }

    // MARK: ring copy helpers (offsets in [0, capacity); a record may wrap around the end)

    @inline(__always) private func ringWrite(_ off: Int, _ src: UnsafeRawPointer, _ n: Int) {
        let first = min(n, capacity - off)
        (ring + off).copyMemory(from: src, byteCount: first)
        if first < n { ring.copyMemory(from: src + first, byteCount: n - first) }
    }

    @inline(__always) private func ringRead(_ off: Int, _ dst: UnsafeMutableRawPointer, _ n: Int) {
        let first = min(n, capacity - off)
        dst.copyMemory(from: ring + off, byteCount: first)
        if first < n { (dst + first).copyMemory(from: ring, byteCount: n - first) }
    }

    @inline(__always) private func wrapped(_ off: Int) -> Int { off >= capacity ? off - capacity : off }

    // MARK: put

    /// Puts `item`, blocking while the queue is full until `timeout` passes (nil = no limit;
    /// then throws `QueueError.full`).
    public func put(_ item: T, timeout: Duration? = nil) throws {
        _steer()
        try put(item, ns: timeoutNanoseconds(timeout))
    }

    /// Puts `item` or throws `QueueError.full` at once.
    public func putNowait(_ item: T) throws { try put(item, ns: 0) }

    /// Plain-data messages (`Int`, `Double`, structs of them …) are copied as their bytes instead of
    /// going through `BinaryCodec`: every process of a session runs the same executable, so the
    /// layout is the same on both sides.
    @inline(__always) var copiesRawBytes: Bool { _isPOD(T.self) && MemoryLayout<T>.size <= 256 }

    private func put(_ item: T, ns: Int64) throws {
        try checkOpen()
        if copiesRawBytes {
            try withUnsafeBytes(of: item) { try putEncoded($0, ns: ns) }
        } else {
            try BinaryCodec.withEncoded(item) { try putEncoded($0, ns: ns) }
        }
    }

    private func putEncoded(_ payload: UnsafeRawBufferPointer, ns: Int64) throws {
        let n = payload.count
        let need = 16 + ((n + 7) & ~7)
        guard need <= capacity else {
            throw QueueError.messageTooLarge(object: object, size: need, capacity: capacity)
        }
        // Ids only matter to the trace: an untraced putter leaves 0.
        tangle_queue_lock(&q.pointee.tail_lock)
        var r = tangle_queue_reserve(q, UInt64(need))
        if r < 0 { r = try putWaitForRoom(need, ns: ns) }
        writeReserved(payload, at: r, need: need)
    }

    /// Puts `payload` when it fits now; false (nothing recorded) when it does not. For the async put.
    func putEncodedIfRoom(_ payload: UnsafeRawBufferPointer) throws -> Bool {
        let n = payload.count
        let need = 16 + ((n + 7) & ~7)
        guard need <= capacity else {
            throw QueueError.messageTooLarge(object: object, size: need, capacity: capacity)
        }
        tangle_queue_lock(&q.pointee.tail_lock)
        let r = tangle_queue_reserve(q, UInt64(need))
        if r < 0 {
            tangle_queue_unlock(&q.pointee.tail_lock)
            return false
        }
        writeReserved(payload, at: r, need: need)
        return true
    }

    /// Writes the record at the reserved offset `r` (tail lock held), traces it, publishes it and
    /// releases the tail lock.
    @inline(__always)
    private func writeReserved(_ payload: UnsafeRawBufferPointer, at r: Int64, need: Int) {
        let n = payload.count
        // Ids only matter to the trace: an untraced putter leaves 0.
        let msg: UInt64 = _tracing ? Recorder.newMessageID() : 0
        // Write the record, trace it, then publish it (one store of the tail).
        let off = Int(r)
        if off + 16 <= capacity {
            (ring + off).storeBytes(of: UInt64(UInt32(n)), as: UInt64.self)
            (ring + off + 8).storeBytes(of: msg, as: UInt64.self)
        } else {
            var header: (UInt64, UInt64) = (UInt64(UInt32(n)), msg)
            withUnsafeBytes(of: &header) { ringWrite(off, $0.baseAddress!, 16) }
        }
        if n > 0 { ringWrite(wrapped(off + 16), payload.baseAddress!, n) }
        if _tracing { Recorder.record(.queuePut, object: object, a: msg, b: UInt64(n)) }
        tangle_queue_put_commit(q, UInt64(need))
    }

    /// Called with the tail lock held and no room: spins, then records `queue.put-wait` and sleeps
    /// until a record of `need` bytes fits. Returns its ring offset with the tail lock held, or
    /// throws `full` (lock released) once `ns` passed (0: at once).
    private func putWaitForRoom(_ need: Int, ns: Int64) throws -> Int64 {
        if ns == 0 {
            tangle_queue_unlock(&q.pointee.tail_lock)
            Recorder.record(.queueTimeout, object: object, a: 0, result: .full)
            throw QueueError.full(object: object)
        }
        tangle_queue_unlock(&q.pointee.tail_lock)
        _ = tangle_queue_poll_fits(q, UInt64(need), Queue.spins, Queue.yields)
        tangle_queue_lock(&q.pointee.tail_lock)
        var r = tangle_queue_reserve(q, UInt64(need))
        if r >= 0 { return r }
        tangle_queue_unlock(&q.pointee.tail_lock)
        Recorder.record(.queuePutWait, object: object)
        let end = deadline(after: ns)
        while true {
            guard let left = remaining(end) else {
                tangle_queue_lock(&q.pointee.tail_lock)
                r = tangle_queue_reserve(q, UInt64(need))
                if r >= 0 { return r }
                tangle_queue_unlock(&q.pointee.tail_lock)
                Recorder.record(.queueTimeout, object: object, a: 0, result: .timeout)
                throw QueueError.full(object: object)
            }
            tangle_queue_wait_room(q, UInt64(need), Queue.slice(left))
            tangle_queue_lock(&q.pointee.tail_lock)
            r = tangle_queue_reserve(q, UInt64(need))
            if r >= 0 { return r }
            tangle_queue_unlock(&q.pointee.tail_lock)
        }
    }

    // MARK: get

    /// Removes and returns the oldest message, blocking while the queue is empty until `timeout`
    /// passes (nil = no limit; then throws `QueueError.empty`).
    public func get(timeout: Duration? = nil) throws -> T {
        _steer()
        return try get(ns: timeoutNanoseconds(timeout))
    }

    /// Returns the oldest message or throws `QueueError.empty` at once.
    public func getNowait() throws -> T { try get(ns: 0) }

    private func get(ns: Int64) throws -> T {
        try checkOpen()
        tangle_queue_lock(&q.pointee.head_lock)
        var r = tangle_queue_peek(q)
        let waited = r < 0
        if waited { r = try getWaitForMessage(ns: ns) }
        return try readHeld(r, waited: waited)
    }

    /// The oldest message when there is one now; nil (nothing recorded) when the queue is empty.
    /// For the async get (`waited`: it slept before, so it passes the wake-up on).
    func getIfAvailable(waited: Bool) throws -> T? {
        tangle_queue_lock(&q.pointee.head_lock)
        let r = tangle_queue_peek(q)
        if r < 0 {
            tangle_queue_unlock(&q.pointee.head_lock)
            return nil
        }
        return try readHeld(r, waited: waited)
    }

    /// Reads, traces and frees the record at offset `r` (head lock held; released by the commit).
    @inline(__always)
    private func readHeld(_ r: Int64, waited: Bool) throws -> T {
        let off = Int(r)
        let n: Int
        let msg: UInt64
        if off + 16 <= capacity {
            n = Int(UInt32(truncatingIfNeeded: (ring + off).load(as: UInt64.self)))
            msg = (ring + off + 8).load(as: UInt64.self)
        } else {
            var header: (UInt64, UInt64) = (0, 0)
            withUnsafeMutableBytes(of: &header) { ringRead(off, $0.baseAddress!, 16) }
            n = Int(UInt32(truncatingIfNeeded: header.0))
            msg = header.1
        }
        let need = UInt64(16 + ((n + 7) & ~7))
        let at = wrapped(off + 16)
        if copiesRawBytes && n == MemoryLayout<T>.size {
            // Copy the value out of the ring before the record is freed.
            let value: T
            if at + n <= capacity {
                value = (ring + at).loadUnaligned(as: T.self)
            } else {
                value = withUnsafeTemporaryAllocation(byteCount: max(n, 1), alignment: 16) { buffer in
                    ringRead(at, buffer.baseAddress!, n)
                    return buffer.baseAddress!.loadUnaligned(as: T.self)
                }
            }
            tangle_queue_get_commit(q, need)
            if waited { tangle_queue_pass_on(q) }
            if _tracing { Recorder.record(.queueGet, object: object, a: msg, b: UInt64(n)) }
            return value
        }
        return try withUnsafeTemporaryAllocation(byteCount: max(n, 1), alignment: 8) { buffer in
            if n > 0 { ringRead(at, buffer.baseAddress!, n) }
            tangle_queue_get_commit(q, need)
            if waited { tangle_queue_pass_on(q) }
            if _tracing { Recorder.record(.queueGet, object: object, a: msg, b: UInt64(n)) }
            if copiesRawBytes {
                throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "queue \(object): a \(n)-byte message for a \(MemoryLayout<T>.size)-byte \(T.self)"))
            }
            return try BinaryCodec.decode(T.self, fromRaw: UnsafeRawBufferPointer(start: buffer.baseAddress, count: n))
        }
    }

    /// Called with the head lock held on an empty queue: spins, then records `queue.get-wait` and
    /// sleeps until a message arrives. Returns its ring offset with the head lock held, or throws
    /// `empty` (lock released) once `ns` passed (0: at once).
    private func getWaitForMessage(ns: Int64) throws -> Int64 {
        if ns == 0 {
            tangle_queue_unlock(&q.pointee.head_lock)
            Recorder.record(.queueTimeout, object: object, a: 1, result: .empty)
            throw QueueError.empty(object: object)
        }
        tangle_queue_unlock(&q.pointee.head_lock)
        _ = tangle_queue_poll_nonempty(q, Queue.spins, Queue.yields)
        tangle_queue_lock(&q.pointee.head_lock)
        var r = tangle_queue_peek(q)
        if r >= 0 { return r }
        tangle_queue_unlock(&q.pointee.head_lock)
        Recorder.record(.queueGetWait, object: object)
        let end = deadline(after: ns)
        while true {
            guard let left = remaining(end) else {
                tangle_queue_lock(&q.pointee.head_lock)
                r = tangle_queue_peek(q)
                if r >= 0 { return r }
                tangle_queue_unlock(&q.pointee.head_lock)
                Recorder.record(.queueTimeout, object: object, a: 1, result: .timeout)
                throw QueueError.empty(object: object)
            }
            tangle_queue_wait_nonempty(q, Queue.slice(left))
            tangle_queue_lock(&q.pointee.head_lock)
            r = tangle_queue_peek(q)
            if r >= 0 { return r }
            tangle_queue_unlock(&q.pointee.head_lock)
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

    /// Items put and not yet marked done: puts (in the tail word) minus `done`.
    @inline(__always) private func unfinishedNow() -> UInt32 {
        UInt32(truncatingIfNeeded: tangle_atomic_load64(&q.pointee.tail) >> 32)
            &- UInt32(truncatingIfNeeded: tangle_atomic_load64(&q.pointee.done))
    }

    func taskDoneImpl() throws {
        try checkOpen()
        tangle_queue_lock(&q.pointee.join_lock)
        let left = unfinishedNow()
        guard left > 0 else {
            tangle_queue_unlock(&q.pointee.join_lock)
            throw QueueError.tooManyTaskDone(object: object)
        }
        Recorder.record(.queueTaskDone, object: object, a: UInt64(left - 1))
        tangle_atomic_store64(&q.pointee.done, q.pointee.done &+ 1)
        if left == 1 && q.pointee.join_waiters > 0 {
            q.pointee.join_seq &+= 1
            _ = tangle_futex_wake(&q.pointee.join_seq, Int32.max)
        }
        tangle_queue_unlock(&q.pointee.join_lock)
    }

    func joinImpl(ns: Int64) throws {
        try checkOpen()
        tangle_queue_lock(&q.pointee.join_lock)
        let first = unfinishedNow()
        if first > 0 {
            Recorder.record(.queueJoinWait, object: object, a: UInt64(first))
            let end = deadline(after: ns)
            while unfinishedNow() > 0 {
                // Registered and the sequence read under join_lock, which taskDone holds to wake.
                q.pointee.join_waiters += 1
                let seq = q.pointee.join_seq
                tangle_queue_unlock(&q.pointee.join_lock)
                let left = remaining(end)
                if let left { _ = tangle_futex_wait(&q.pointee.join_seq, seq, Queue.slice(left)) }
                tangle_queue_lock(&q.pointee.join_lock)
                q.pointee.join_waiters -= 1
                if left == nil {
                    let n = unfinishedNow()
                    if n == 0 { break }
                    tangle_queue_unlock(&q.pointee.join_lock)
                    Recorder.record(.queueJoinDone, object: object, result: .timeout, stack: false)
                    throw QueueError.joinTimeout(object: object, unfinished: Int(n))
                }
            }
        }
        tangle_queue_unlock(&q.pointee.join_lock)
        Recorder.record(.queueJoinDone, object: object, stack: false)
    }

    /// Unfinished tasks (items put and not yet marked done; approximate).
    var unfinishedTasks: Int { Int(unfinishedNow()) }

    /// One slice of a join's sleep, for the async join's waiter thread: true when no task is
    /// unfinished (the same registration under join_lock as `joinImpl`).
    static func _joinStep(_ q: UnsafeMutablePointer<tangle_queue_t>, _ slice: Int64) -> Bool {
        func unfinished() -> UInt32 {
            UInt32(truncatingIfNeeded: tangle_atomic_load64(&q.pointee.tail) >> 32)
                &- UInt32(truncatingIfNeeded: tangle_atomic_load64(&q.pointee.done))
        }
        tangle_queue_lock(&q.pointee.join_lock)
        if unfinished() == 0 {
            tangle_queue_unlock(&q.pointee.join_lock)
            return true
        }
        q.pointee.join_waiters += 1
        let seq = q.pointee.join_seq
        tangle_queue_unlock(&q.pointee.join_lock)
        _ = tangle_futex_wait(&q.pointee.join_seq, seq, slice)
        tangle_queue_lock(&q.pointee.join_lock)
        q.pointee.join_waiters -= 1
        let n = unfinished()
        tangle_queue_unlock(&q.pointee.join_lock)
        return n == 0
    }
}

/// A Queue whose consumers mark each item done (`taskDone`), so a producer can `join` until every
/// item put has been processed (Python's `JoinableQueue`).
public final class JoinableQueue<T: Codable>: Queue<T>, @unchecked Sendable {
    public init(maxsize: Int = 0, bufferSize: Int = 1 << 20, name: String? = nil, fileID: String = #fileID, line: Int = #line) {
        super.init(maxsize: maxsize, bufferSize: bufferSize, name: name, joinable: true, fileID: fileID, line: line)
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
