import CTangleSupport
import Glibc
import Synchronization

/// Named entry points a child process can run — Tangle's answer to Python pickling a function by
/// its module and name. Register every entry point *before* `TangleRuntime.bootstrap()` (a spawned
/// child re-executes the program, registers the same names, and the bootstrap runs the one the
/// parent asked for with the decoded arguments):
///
/// ```swift
/// struct ConsumerArgs: Codable { var queue: Queue<Int>; var count: Int }
/// EntryPoint.register("consumer") { (args: ConsumerArgs) in … }
/// TangleRuntime.bootstrap()
/// ```
public enum EntryPoint {
    /// The type-erased body: decodes its arguments from the bytes, then runs.
    typealias Body = @Sendable ([UInt8]) throws -> Void

    struct Registration {
        var body: Body
        var argumentType: String
    }

    nonisolated(unsafe) private static var table: [String: Registration] = builtIn()

    /// Entry points of the runtime itself (the pool worker), present in every program.
    private static func builtIn() -> [String: Registration] {
        let worker: Body = { bytes in
            let args = try ArgumentCoding.decode(PoolWorkerArguments.self, from: bytes)
            PoolWorker.run(args)
        }
        return [PoolWorker.entryName: Registration(body: worker, argumentType: "PoolWorkerArguments")]
    }
    private static let lock = CondLock()

    /// Registers `name` to run `body` with arguments of type `A` decoded from what the parent passed.
    /// Registering a name again replaces it. Returns a typed handle: `ChildProcess(handle,
    /// arguments: …)` only compiles with an `A` (the string form checks nothing before the child).
    @discardableResult
    public static func register<A: Decodable>(_ name: String, _ body: @escaping (A) throws -> Void) -> EntryPointHandle<A> {
        let erased: Body = { bytes in
            let args: A
            do {
                args = try ArgumentCoding.decode(A.self, from: bytes)
            } catch {
                throw ChildStartError.badArguments(entry: name, type: "\(A.self)", underlying: "\(error)")
            }
            try body(args)
        }
        lock.withLock { table[name] = Registration(body: erased, argumentType: "\(A.self)") }
        return EntryPointHandle(name)
    }

    /// Registers `name` to run `body`, which takes no arguments.
    @discardableResult
    public static func register(_ name: String, _ body: @escaping () throws -> Void) -> EntryPointHandle<Void> {
        lock.withLock { table[name] = Registration(body: { _ in try body() }, argumentType: "()") }
        return EntryPointHandle(name)
    }

    /// True when `name` is one of the runtime's own entry points (the pool worker).
    static func isBuiltIn(_ name: String) -> Bool { name.hasPrefix("tangle.") }

    /// True when `name` has been registered in this process.
    public static func isRegistered(_ name: String) -> Bool {
        lock.withLock { table[name] != nil }
    }

    /// Every registered name, sorted.
    public static var registeredNames: [String] {
        lock.withLock { table.keys.filter { !$0.hasPrefix("tangle.") }.sorted() }
    }

    static func lookup(_ name: String) -> Registration? {
        lock.withLock { table[name] }
    }

    static func reinitializeAfterFork() { lock.reinitializeAfterFork() }

    /// In a child routed before main (a test binary's): runs the test entry-point registrations
    /// its parent passed, once (docs/runtime.md, "Starting children from tests"). Elsewhere, and
    /// after the first call, nothing: a parent ran them when it registered them.
    static func runTestHooksOnce() {
        TestEntryPoints.runInherited()
    }
}

/// A registered entry point with its argument type, returned by `EntryPoint.register`: starting a
/// child with it (`ChildProcess(handle, arguments: …)`) type-checks the arguments at compile time.
public struct EntryPointHandle<Arguments>: Sendable {
    public let name: String
    init(_ name: String) { self.name = name }
}

extension ChildProcess {
    /// A child that runs the entry point `entry` with `arguments` of its registered type.
    public convenience init<A: Encodable>(_ entry: EntryPointHandle<A>, arguments: A, name: String? = nil, daemon: Bool = false,
                                          method: StartMethod? = nil) {
        self.init(entryPoint: entry.name, arguments: arguments, name: name, daemon: daemon, method: method)
    }

    /// A child that runs the entry point `entry`, which takes no arguments.
    public convenience init(_ entry: EntryPointHandle<Void>, name: String? = nil, daemon: Bool = false, method: StartMethod? = nil) {
        self.init(entryPoint: entry.name, name: name, daemon: daemon, method: method)
    }
}

/// Why a child could not run its entry point. The child prints the description on standard error
/// and exits with `exitStatus`.
enum ChildStartError: Error, CustomStringConvertible {
    case unregistered(entry: String, known: [String])
    case badArguments(entry: String, type: String, underlying: String)
    case missingArguments(entry: String, reason: String)

    var exitStatus: Int32 {
        switch self {
        case .unregistered: TangleRuntime.exitStatusUnregisteredEntryPoint
        case .badArguments, .missingArguments: TangleRuntime.exitStatusBadArguments
        }
    }

    var description: String {
        switch self {
        case let .unregistered(entry, known):
            "tangle: entry point '\(entry)' is not registered in this executable "
                + "(registered: \(known.isEmpty ? "none" : known.joined(separator: ", "))). "
                + "Register it with EntryPoint.register before TangleRuntime.bootstrap()."
        case let .badArguments(entry, type, underlying):
            "tangle: entry point '\(entry)' could not decode its arguments as \(type): \(underlying)"
        case let .missingArguments(entry, reason):
            "tangle: entry point '\(entry)' did not receive its arguments: \(reason)"
        }
    }
}
