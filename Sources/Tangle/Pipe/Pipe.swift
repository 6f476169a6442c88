import CTangleSupport
import Glibc
import TangleTraceFormat
import TangleRecorder

/// Errors of Pipe connections.
public enum PipeError: Error, CustomStringConvertible, Equatable {
    /// Every write end is closed (the receiver's own copy included) and nothing is left to read.
    case eof(object: UInt64, end: Int)
    /// `recv(timeout:)` gave up.
    case timeout(object: UInt64, end: Int)
    /// This connection was closed by this process.
    case closed(object: UInt64, end: Int)
    /// `send` on a receive-only end, or `recv` on a send-only end of a one-way pipe.
    case wrongDirection(object: UInt64, end: Int, operation: String)
    /// The other end is closed: nobody can read what is sent (EPIPE).
    case brokenPipe(object: UInt64, end: Int)
    /// A frame that is not a Tangle message (length beyond the limit).
    case corrupt(object: UInt64, end: Int, detail: String)
    case system(call: String, errno: Int32)

    public var description: String {
        switch self {
        case .eof(let o, let e): return "\(ObjectNames.label("pipe", o)) end \(e): end of file (every write end is closed)"
        case .timeout(let o, let e): return "\(ObjectNames.label("pipe", o)) end \(e): recv timed out"
        case .closed(let o, let e): return "\(ObjectNames.label("pipe", o)) end \(e) is closed: it was closed by this process and cannot be used any more"
        case .wrongDirection(let o, let e, let op): return "\(ObjectNames.label("pipe", o)) end \(e): cannot \(op) on this end of a one-way pipe"
        case .brokenPipe(let o, let e): return "\(ObjectNames.label("pipe", o)) end \(e): the other end is closed (broken pipe)"
        case .corrupt(let o, let e, let d): return "\(ObjectNames.label("pipe", o)) end \(e): corrupt frame: \(d)"
        case .system(let call, let e): return "\(call) failed: \(String(cString: strerror(e))) (errno \(e))"
        }
    }
}

/// Python's `multiprocessing.Pipe`: a pair of connections. One-way (`duplex: false`) returns
/// `(receiver, sender)` over pipe(2); two-way returns two connections over a socketpair.
///
/// When Foundation is imported too, write `Tangle.Pipe(…)` (Foundation has a `Pipe` class).
/// `name` nil: `pipe@file.swift:line`, where it is created (ObjectNames).
public func Pipe<T: Codable>(_ type: T.Type = T.self, duplex: Bool = true, name: String? = nil,
                             fileID: String = #fileID, line: Int = #line) throws -> (Connection<T>, Connection<T>) {
    tangle_sync_ignore_sigpipe()
    var fds: [Int32] = [-1, -1]
    let rc = duplex ? tangle_sync_socketpair(&fds) : tangle_sync_pipe(&fds)
    guard rc == 0 else { throw PipeError.system(call: duplex ? "socketpair" : "pipe2", errno: tangle_sync_errno()) }
    let object = Recorder.newObjectID()
    let name = ObjectNames.name(given: name, noun: "pipe", fileID: fileID, line: line)
    ObjectNames.register(object, name)   // one per connection (each releases it)
    ObjectNames.register(object, name)
    Recorder.record(.pipeNew, object: object, text: name, a: duplex ? 1 : 0)
    let first = Connection<T>(fd: fds[0], object: object, end: 0, readable: true, writable: duplex, socket: duplex)
    let second = Connection<T>(fd: fds[1], object: object, end: 1, readable: duplex, writable: true, socket: duplex)
    Recorder.record(.handleAttach, object: object, a: ObjectType.pipe.rawValue, c: 0, stack: false)
    Recorder.record(.handleAttach, object: object, a: ObjectType.pipe.rawValue, c: 1, stack: false)
    return (first, second)
}

/// One end of a Pipe. Messages are framed `[u32 length][u64 message id][BinaryCodec bytes]`.
/// Passing a connection to a spawned child keeps its descriptor open there; closing it (or the
/// connection being deinitialised) closes this process's copy — end of file reaches the receiver
/// only once every process closed every copy of the write end, its own included.
public final class Connection<T: Codable>: ProcessTransferable, @unchecked Sendable {
    public let object: UInt64
    /// 0 or 1 (in a one-way pipe: 0 receives, 1 sends).
    public let end: Int
    public let readable: Bool
    public let writable: Bool
    let socket: Bool
    var fd: Int32
    private var buffer: [UInt8] = []
    private var start = 0        // unread bytes are buffer[start..<buffer.count]
    var sawEOF = false
    let mutex = _ConnMutex()

    init(fd: Int32, object: UInt64, end: Int, readable: Bool, writable: Bool, socket: Bool) {
        self.fd = fd
        self.object = object
        self.end = end
        self.readable = readable
        self.writable = writable
        self.socket = socket
    }

    private enum CodingKeys: String, CodingKey { case fd, object, end, readable, writable, socket, name }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        fd = try c.decode(Int32.self, forKey: .fd)
        object = try c.decode(UInt64.self, forKey: .object)
        end = try c.decode(Int.self, forKey: .end)
        readable = try c.decode(Bool.self, forKey: .readable)
        writable = try c.decode(Bool.self, forKey: .writable)
        socket = try c.decode(Bool.self, forKey: .socket)
        guard tangle_sync_fd_valid(fd) != 0 else {
            throw SyncError.handleNotInherited(type: "Pipe connection", fd: fd, object: object)
        }
        tangle_sync_ignore_sigpipe()
        if let name = try c.decodeIfPresent(String.self, forKey: .name) { ObjectNames.register(object, name) }
        Recorder.record(.handleAttach, object: object, a: ObjectType.pipe.rawValue, c: UInt64(end))
    }

    public func encode(to encoder: Encoder) throws {
        guard fd >= 0 else { throw PipeError.closed(object: object, end: end) }
        HandleTransfer.inheritDescriptor(fd)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(fd, forKey: .fd)
        try c.encode(object, forKey: .object)
        try c.encode(end, forKey: .end)
        try c.encode(readable, forKey: .readable)
        try c.encode(writable, forKey: .writable)
        try c.encode(socket, forKey: .socket)
        try c.encodeIfPresent(ObjectNames.name(of: object), forKey: .name)
    }

    deinit {
        if fd >= 0 {
            Recorder.record(.pipeClose, object: object, c: UInt64(end), stack: false)
            Recorder.record(.handleClose, object: object, a: ObjectType.pipe.rawValue, c: UInt64(end), stack: false)
            Glibc.close(fd)
        }
        ObjectNames.release(object)
    }

    /// The descriptor (-1 once closed).
    public var fileDescriptor: Int32 { fd }
    public var isClosed: Bool { fd < 0 }

    /// Sends one message.
    public func send(_ value: T) throws {
        guard fd >= 0 else { throw PipeError.closed(object: object, end: end) }
        guard writable else { throw PipeError.wrongDirection(object: object, end: end, operation: "send") }
        try BinaryCodec.withEncoded(value) { payload in
            let n = payload.count
            let msg = Recorder.newMessageID()
            try withUnsafeTemporaryAllocation(byteCount: n + 12, alignment: 8) { frame in
                let p = frame.baseAddress!
                p.storeBytes(of: UInt32(n).littleEndian, toByteOffset: 0, as: UInt32.self)
                p.storeBytes(of: msg.littleEndian, toByteOffset: 4, as: UInt64.self)
                if n > 0 { (p + 12).copyMemory(from: payload.baseAddress!, byteCount: n) }
                // Trace before the bytes become visible to the reader.
                if Recorder.isEnabled { Recorder.record(.pipeSend, object: object, a: msg, b: UInt64(n), c: UInt64(end)) }
                let rc = mutex.withLock { tangle_sync_write_all(fd, p, n + 12, socket ? 1 : 0) }
                if rc == EPIPE || rc == ECONNRESET {
                    // The send recorded above did not happen: say so (same msg, r: eof).
                    if Recorder.isEnabled { Recorder.record(.pipeSend, object: object, a: msg, b: UInt64(n), c: UInt64(end), result: .eof, stack: false) }
                    throw PipeError.brokenPipe(object: object, end: end)
                }
                if rc != 0 { throw PipeError.system(call: "write", errno: rc) }
            }
        }
    }

    var buffered: Int { buffer.count - start }

    /// Reads more bytes into the buffer (blocking). False at end of file.
    private func fill() throws -> Bool {
        if start > 0 {
            // Keep only the unread bytes (usually none or a partial frame).
            if start == buffer.count { buffer.removeAll(keepingCapacity: true) } else { buffer.removeFirst(start) }
            start = 0
        }
        let chunk = 65536
        let old = buffer.count
        var got = 0
        buffer.append(contentsOf: UnsafeRawBufferPointer(start: _zeroChunk, count: chunk))
        got = buffer.withUnsafeMutableBytes { Int(tangle_sync_read(fd, $0.baseAddress! + old, chunk)) }
        if got < 0 {
            let e = tangle_sync_errno()
            buffer.removeLast(chunk)
            throw PipeError.system(call: "read", errno: e)
        }
        buffer.removeLast(chunk - got)
        if got == 0 { sawEOF = true }
        return got > 0
    }

    /// Receives one message, blocking until one arrives, end of file (`PipeError.eof`) or `timeout`
    /// passes (`PipeError.timeout`; nil = no limit).
    public func recv(timeout: Duration? = nil) throws -> T {
        _steer()
        guard fd >= 0 else { throw PipeError.closed(object: object, end: end) }
        guard readable else { throw PipeError.wrongDirection(object: object, end: end, operation: "recv") }
        let ns = timeoutNanoseconds(timeout)
        let end = deadline(after: ns)
        var waited = false
        // Header.
        while buffered < 12 {
            if !sawEOF {
                let ready = tangle_sync_poll_readable(fd, 0)
                if ready == 0 {
                    if !waited {
                        waited = true
                        Recorder.record(.pipeRecvWait, object: object, c: UInt64(self.end))
                    }
                    guard let left = remaining(end), ns != 0 else {
                        Recorder.record(.pipeRecv, object: object, c: UInt64(self.end), result: .timeout, stack: false)
                        throw PipeError.timeout(object: object, end: self.end)
                    }
                    if tangle_sync_poll_readable(fd, left) == 0 { continue }
                }
                if try fill() { continue }
            }
            // End of file.
            Recorder.record(.pipeRecv, object: object, c: UInt64(self.end), result: .eof, stack: false)
            if buffered > 0 { throw PipeError.corrupt(object: object, end: self.end, detail: "\(buffered) bytes before end of file") }
            throw PipeError.eof(object: object, end: self.end)
        }
        let (n, msg): (Int, UInt64) = buffer.withUnsafeBytes { raw in
            (Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: start, as: UInt32.self))),
             UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: start + 4, as: UInt64.self)))
        }
        // Payload (the writer sent it whole; it arrives soon).
        while buffered < 12 + n {
            if try sawEOF || !fill() {
                Recorder.record(.pipeRecv, object: object, c: UInt64(self.end), result: .eof, stack: false)
                throw PipeError.corrupt(object: object, end: self.end, detail: "end of file inside a \(n)-byte message")
            }
        }
        let from = start + 12
        start += 12 + n
        if Recorder.isEnabled { Recorder.record(.pipeRecv, object: object, a: msg, b: UInt64(n), c: UInt64(self.end)) }
        return try buffer.withUnsafeBytes { raw in
            try BinaryCodec.decode(T.self, fromRaw: UnsafeRawBufferPointer(rebasing: raw[from..<(from + n)]))
        }
    }

    /// True when a `recv` would not block (a message, or end of file, is there), waiting up to
    /// `timeout` (nil = no limit; default: do not wait).
    public func poll(timeout: Duration? = .zero) throws -> Bool {
        guard fd >= 0 else { throw PipeError.closed(object: object, end: end) }
        guard readable else { throw PipeError.wrongDirection(object: object, end: end, operation: "poll") }
        if buffered > 0 || sawEOF { return true }
        return tangle_sync_poll_readable(fd, timeoutNanoseconds(timeout)) == 1
    }

    /// Closes this process's copy of the end. Further use throws `PipeError.closed`.
    public func close() {
        guard fd >= 0 else { return }
        Recorder.record(.pipeClose, object: object, c: UInt64(end))
        Recorder.record(.handleClose, object: object, a: ObjectType.pipe.rawValue, c: UInt64(end), stack: false)
        Glibc.close(fd)
        fd = -1
    }
}

/// 64 KB of zeros to grow a read buffer with (one memcpy instead of an element loop).
let _zeroChunk: UnsafeRawPointer = UnsafeRawPointer(calloc(65536, 1)!)

/// A small private mutex so two threads sending on one connection do not interleave frames.
final class _ConnMutex: @unchecked Sendable {
    private let m: UnsafeMutablePointer<pthread_mutex_t> = .allocate(capacity: 1)
    init() { pthread_mutex_init(m, nil) }
    deinit { pthread_mutex_destroy(m); m.deallocate() }
    @inline(__always) func withLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(m)
        defer { pthread_mutex_unlock(m) }
        return try body()
    }
}
