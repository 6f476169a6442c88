import Glibc
import TangleTraceFormat
import TangleRecorder

/// The wire format between a pool and its workers: one Unix stream socket per worker, frames of
/// `[u32 body length][body]`, little endian.
///
/// - task (pool → worker): `[u64 task id][u16 name length][function name][encoded [Input]]`
/// - result (worker → pool): `[u64 task id][u8 0 = ok | 1 = failed][encoded [Output]]` or, when
///   failed, `[u32 item index][UTF-8 message]`
///
/// The pool shuts its sending side down to stop a worker (end of file: the worker exits 0).
enum PoolWire {
    static func appendU32(_ out: inout [UInt8], _ v: UInt32) {
        withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
    }

    static func appendU64(_ out: inout [UInt8], _ v: UInt64) {
        withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
    }

    static func readU32(_ p: UnsafeRawBufferPointer, _ at: Int) -> UInt32 {
        UInt32(littleEndian: p.loadUnaligned(fromByteOffset: at, as: UInt32.self))
    }

    static func readU64(_ p: UnsafeRawBufferPointer, _ at: Int) -> UInt64 {
        UInt64(littleEndian: p.loadUnaligned(fromByteOffset: at, as: UInt64.self))
    }

    /// A task frame, length prefix included.
    static func taskFrame(id: UInt64, function: String, payload: [UInt8]) -> [UInt8] {
        let name = Array(function.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(4 + 8 + 2 + name.count + payload.count)
        appendU32(&out, UInt32(8 + 2 + name.count + payload.count))
        appendU64(&out, id)
        withUnsafeBytes(of: UInt16(name.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: name)
        out.append(contentsOf: payload)
        return out
    }

    /// Sends all of `bytes` (MSG_NOSIGNAL: a dead peer is an error, not a SIGPIPE).
    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let n = send(fd, raw.baseAddress! + off, raw.count - off, Int32(MSG_NOSIGNAL))
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                off += n
            }
            return true
        }
    }

    /// Reads exactly `count` bytes (blocking); false at end of file or on error.
    static func readExactly(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Bool {
        var off = 0
        while off < count {
            let n = read(fd, buffer + off, count - off)
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            if n == 0 { return false }
            off += n
        }
        return true
    }
}

/// A worker's start arguments: its socket, the pool's object id and, when the pool has one, the
/// initializer's name and its arguments — encoded in the same stream as the socket, so handles to
/// Tangle objects in them reach the worker exactly as a child's spawn arguments do.
struct PoolWorkerArguments: Codable {
    var socket: InheritedDescriptor
    var pool: UInt64
    var initializer: String? = nil
    /// Parent side: encodes the initializer's arguments.
    var encodeInit: ((Encoder) throws -> Void)? = nil
    /// Worker side: the decoded initializer, ready to run.
    var runInit: (() throws -> Void)? = nil

    init(socket: InheritedDescriptor, pool: UInt64, initializer: String? = nil, encodeInit: ((Encoder) throws -> Void)? = nil) {
        self.socket = socket
        self.pool = pool
        self.initializer = initializer
        self.encodeInit = encodeInit
    }

    private enum CodingKeys: String, CodingKey { case socket, pool, initializer, initArguments }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(socket, forKey: .socket)
        try c.encode(pool, forKey: .pool)
        try c.encode(initializer ?? "", forKey: .initializer)
        if let encodeInit { try encodeInit(c.superEncoder(forKey: .initArguments)) }
    }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        socket = try c.decode(InheritedDescriptor.self, forKey: .socket)
        pool = try c.decode(UInt64.self, forKey: .pool)
        let name = try c.decode(String.self, forKey: .initializer)
        if !name.isEmpty {
            initializer = name
            guard let decodeInit = PoolInitializers.lookup(name) else { throw PoolError.unregisteredFunction(name) }
            runInit = try decodeInit(c.superDecoder(forKey: .initArguments))
        }
    }
}

/// A function every pool worker runs once before its first task (Python's `initializer`), with
/// arguments given to the pool (`initArguments`) — handles to Tangle objects (an Event, a Queue, a
/// Lock…) among them reach every worker, as a child's spawn arguments do. Register it, like a
/// `PoolFunction`, before `TangleRuntime.bootstrap()`.
///
/// ```swift
/// let setUp = PoolInitializer.register("set-up") { (args: WorkerShared) in shared = args }
/// let pool = try Pool(workers: 4, initializer: setUp, initArguments: WorkerShared(ready: event, log: queue))
/// ```
public struct PoolInitializer<Arguments: Codable>: Sendable {
    public let name: String

    public init(_ name: String) { self.name = name }

    @discardableResult
    public static func register(_ name: String, _ body: @escaping (Arguments) throws -> Void) -> PoolInitializer {
        PoolInitializers.lock.withLock {
            PoolInitializers.table[name] = { decoder in
                let arguments = try Arguments(from: decoder)
                return { try body(arguments) }
            }
        }
        return PoolInitializer(name)
    }
}

enum PoolInitializers {
    typealias Decode = (Decoder) throws -> () throws -> Void
    nonisolated(unsafe) static var table: [String: Decode] = [:]
    static let lock = CondLock()
    static func lookup(_ name: String) -> Decode? {
        if let d = lock.withLock({ table[name] }) { return d }
        EntryPoint.runTestHooksOnce()
        return lock.withLock { table[name] }
    }
}

/// The worker side: read a task, run it, send the result, until the pool closes the socket.
enum PoolWorker {
    static let entryName = "tangle.pool-worker"

    static func run(_ args: PoolWorkerArguments) {
        let fd = args.socket.fd
        Recorder.record(.handleAttach, object: args.pool, a: ObjectType.pool.rawValue)
        if let runInit = args.runInit {
            do {
                try runInit()
            } catch {
                FD.printError("tangle: pool \(args.pool): the initializer '\(args.initializer ?? "")' failed: \(error)")
                close(fd)
                CurrentProcess.exit(70)
            }
        }
        var buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 8)
        defer { buffer.deallocate() }
        var header: UInt32 = 0
        while true {
            // Idle until the manager sends the next task: a wait on the pool's owner, recorded
            // only when nothing is there to read yet.
            var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&ready, 1, 0) == 0 { Recorder.record(.poolTaskWait, object: args.pool, stack: false) }
            guard withUnsafeMutableBytes(of: &header, { PoolWire.readExactly(fd, $0.baseAddress!, 4) }) else { break }
            let length = Int(UInt32(littleEndian: header))
            if length > buffer.count {
                buffer.deallocate()
                buffer = .allocate(byteCount: max(length, buffer.count * 2), alignment: 8)
            }
            guard length >= 10, PoolWire.readExactly(fd, buffer.baseAddress!, length) else { break }
            let body = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[0..<length])
            let task = PoolWire.readU64(body, 0)
            let nameLength = Int(UInt16(littleEndian: body.loadUnaligned(fromByteOffset: 8, as: UInt16.self)))
            guard 10 + nameLength <= length else { break }
            let name = String(decoding: body[10..<(10 + nameLength)], as: UTF8.self)
            let payload = UnsafeRawBufferPointer(rebasing: body[(10 + nameLength)...])

            Recorder.record(.poolTaskStart, object: args.pool, a: task)
            let outcome: PoolFunctions.Outcome
            if let function = PoolFunctions.lookup(name) {
                outcome = function(payload)
            } else {
                outcome = .failure(index: 0, message: "\(PoolError.unregisteredFunction(name))")
            }
            var frame: [UInt8] = []
            switch outcome {
            case let .success(bytes):
                frame.reserveCapacity(4 + 9 + bytes.count)
                PoolWire.appendU32(&frame, UInt32(9 + bytes.count))
                PoolWire.appendU64(&frame, task)
                frame.append(0)
                frame.append(contentsOf: bytes)
            case let .failure(index, message):
                let text = Array(message.utf8)
                PoolWire.appendU32(&frame, UInt32(9 + 4 + text.count))
                PoolWire.appendU64(&frame, task)
                frame.append(1)
                PoolWire.appendU32(&frame, UInt32(clamping: index))
                frame.append(contentsOf: text)
            }
            // Recorded before the result becomes visible to the pool (the ordering rule).
            if case .success = outcome {
                Recorder.record(.poolTaskDone, object: args.pool, a: task)
            } else {
                Recorder.record(.poolTaskDone, object: args.pool, a: task, result: .error)
            }
            if !PoolWire.sendAll(fd, frame) { break }
        }
        Recorder.record(.handleClose, object: args.pool, a: ObjectType.pool.rawValue)
        close(fd)
    }
}
