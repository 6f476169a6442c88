import Glibc

/// A function a `Pool` worker can run, registered by name (like an entry point: register it before
/// `TangleRuntime.bootstrap()`, so that the spawned workers, which re-execute the program, know it).
///
/// ```swift
/// let square = PoolFunction.register("square") { (x: Int) -> Int in x * x }
/// TangleRuntime.bootstrap()
/// let squares = try Pool.with { pool in try pool.map(square, Array(1...100)) }
/// ```
public struct PoolFunction<Input: Codable, Output: Codable>: Sendable {
    public let name: String

    /// Refers to a function registered elsewhere under `name` (with these types).
    public init(_ name: String) { self.name = name }

    /// Registers `body` under `name` and returns a typed reference to it.
    @discardableResult
    public static func register(_ name: String, _ body: @escaping (Input) throws -> Output) -> PoolFunction {
        let erased: PoolFunctions.Body = { raw in
            let inputs: [Input]
            do {
                inputs = try PoolCoding.decode(Input.self, raw)
            } catch {
                return .failure(index: 0, message: "cannot decode the inputs of '\(name)' as [\(Input.self)]: \(error)")
            }
            var outputs: [Output] = []
            outputs.reserveCapacity(inputs.count)
            for (i, input) in inputs.enumerated() {
                do {
                    outputs.append(try body(input))
                } catch {
                    return .failure(index: i, message: "\(type(of: error)): \(error)")
                }
            }
            do {
                return .success(try PoolCoding.encode(outputs[...]))
            } catch {
                return .failure(index: 0, message: "cannot encode the outputs of '\(name)': \(error)")
            }
        }
        PoolFunctions.lock.withLock { PoolFunctions.table[name] = erased }
        return PoolFunction(name)
    }
}

/// The registry behind `PoolFunction`.
enum PoolFunctions {
    enum Outcome {
        case success([UInt8])
        /// The item at `index` of the chunk threw (or the chunk could not be decoded).
        case failure(index: Int, message: String)
    }

    /// Runs the function on an encoded `[Input]`, returns the encoded `[Output]` or the failure.
    typealias Body = (UnsafeRawBufferPointer) -> Outcome

    nonisolated(unsafe) static var table: [String: Body] = [:]
    static let lock = CondLock()

    static func lookup(_ name: String) -> Body? {
        if let body = lock.withLock({ table[name] }) { return body }
        // A worker forked before the test hooks registered their functions in the parent.
        EntryPoint.runTestHooksOnce()
        return lock.withLock { table[name] }
    }
    static func isRegistered(_ name: String) -> Bool { lock.withLock { table[name] != nil } }
    static var names: [String] { lock.withLock { table.keys.sorted() } }
}

/// Errors a pool returns in place of a task's result.
public enum PoolError: Error, CustomStringConvertible, Equatable {
    /// The function threw in the worker (`index`: the item that threw, counted over the whole input).
    case taskFailed(function: String, index: Int, message: String)
    /// The worker running the task died (killed, crashed); the pool replaced it.
    case workerDied(function: String, pid: Int32, status: String)
    /// The pool was terminated before the task finished.
    case terminated
    /// `get(timeout:)` gave up.
    case timeout
    /// Work submitted to a pool after `close()` or `terminate()`.
    case closed
    /// The function is not registered in this executable.
    case unregisteredFunction(String)
    case workerStartFailed(String)

    public var description: String {
        switch self {
        case let .taskFailed(function, index, message):
            "pool task '\(function)' failed on item \(index) of its input: \(message)"
        case let .workerDied(function, pid, status):
            "the pool worker (pid \(pid)) running '\(function)' died (\(status)); it was replaced"
        case .terminated: "the pool was terminated before the task finished"
        case .timeout: "timed out waiting for a pool result"
        case .closed: "the pool is closed: no new work"
        case let .unregisteredFunction(name):
            "pool function '\(name)' is not registered; call PoolFunction.register(\"\(name)\") { … } before TangleRuntime.bootstrap()"
        case let .workerStartFailed(why): "cannot start a pool worker: \(why)"
        }
    }
}

/// How a chunk of items travels between the pool and its workers: plain numbers (Int, Double, …)
/// as their raw bytes (both sides are the same executable), everything else through `BinaryCodec`.
/// Format: `[u8 1][raw elements]` or `[u8 0][BinaryCodec of [T]]`.
enum PoolCoding {
    /// Standard library scalars whose bytes are their value (no references, no custom Codable).
    static func isRaw<T>(_ type: T.Type) -> Bool {
        let id = ObjectIdentifier(type)
        return id == ObjectIdentifier(Int.self) || id == ObjectIdentifier(Int64.self)
            || id == ObjectIdentifier(Int32.self) || id == ObjectIdentifier(Int16.self)
            || id == ObjectIdentifier(Int8.self) || id == ObjectIdentifier(UInt.self)
            || id == ObjectIdentifier(UInt64.self) || id == ObjectIdentifier(UInt32.self)
            || id == ObjectIdentifier(UInt16.self) || id == ObjectIdentifier(UInt8.self)
            || id == ObjectIdentifier(Double.self) || id == ObjectIdentifier(Float.self)
            || id == ObjectIdentifier(Bool.self)
            || (type is _PoolPlainArguments.Type && _isPOD(type))
    }

    static func encode<T: Encodable>(_ items: ArraySlice<T>) throws -> [UInt8] {
        if isRaw(T.self) {
            let bytes = items.count * MemoryLayout<T>.stride
            return [UInt8](unsafeUninitializedCapacity: 1 + bytes) { buffer, count in
                buffer[0] = 1
                items.withUnsafeBytes { src in
                    if bytes > 0 { UnsafeMutableRawPointer(buffer.baseAddress! + 1).copyMemory(from: src.baseAddress!, byteCount: bytes) }
                }
                count = 1 + bytes
            }
        }
        var out: [UInt8] = [0]
        out.append(contentsOf: try ArgumentCoding.encode(Array(items)))
        return out
    }

    static func decode<T: Decodable>(_ type: T.Type, _ raw: UnsafeRawBufferPointer) throws -> [T] {
        guard raw.count >= 1 else { throw PoolCodingError.empty }
        let body = UnsafeRawBufferPointer(rebasing: raw[1...])
        if raw[0] == 1 {
            guard isRaw(T.self), body.count % MemoryLayout<T>.stride == 0 else { throw PoolCodingError.mismatch("\(T.self)") }
            let n = body.count / MemoryLayout<T>.stride
            return [T](unsafeUninitializedCapacity: n) { buffer, count in
                if n > 0 { UnsafeMutableRawPointer(buffer.baseAddress!).copyMemory(from: body.baseAddress!, byteCount: body.count) }
                count = n
            }
        }
        return try ArgumentCoding.decode([T].self, fromRaw: body)
    }

    enum PoolCodingError: Error, CustomStringConvertible {
        case empty
        case mismatch(String)
        var description: String {
            switch self {
            case .empty: "empty chunk"
            case let .mismatch(t): "raw chunk does not hold \(t) values"
            }
        }
    }
}
