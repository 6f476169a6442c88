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
                inputs = try ArgumentCoding.decode([Input].self, fromRaw: raw)
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
                return .success(try ArgumentCoding.encode(outputs))
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

    static func lookup(_ name: String) -> Body? { lock.withLock { table[name] } }
    static func isRegistered(_ name: String) -> Bool { lock.withLock { table[name] != nil } }
    static var names: [String] { lock.withLock { table.keys.sorted() } }
}

/// Errors a pool returns in place of a task's result.
public enum PoolError: Error, CustomStringConvertible, Equatable {
    /// The function threw in the worker (`index`: the item of the chunk that threw).
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
            "pool task '\(function)' failed on item \(index) of its chunk: \(message)"
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
