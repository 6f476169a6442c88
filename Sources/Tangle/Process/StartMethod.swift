import Synchronization

/// The process-wide default start method (Python's `set_start_method` / `get_start_method`) and
/// start contexts (Python's `get_context`): children and pool workers started without an explicit
/// `method` use the default, `.spawn` unless the program set another.
extension TangleRuntime {
    private static let startMethod = Mutex<(method: ChildProcess.StartMethod, set: Bool)>((.spawn, false))

    /// The start method of children and pool workers started without one.
    public static var defaultStartMethod: ChildProcess.StartMethod { startMethod.withLock { $0.method } }

    /// Sets the default start method once (Python's `set_start_method`): a second call throws
    /// `ProcessError.startMethodAlreadySet` unless `force` is true.
    public static func setStartMethod(_ method: ChildProcess.StartMethod, force: Bool = false) throws {
        try startMethod.withLock { state in
            if state.set && !force && state.method != method {
                throw ProcessError.startMethodAlreadySet(current: state.method.rawValue)
            }
            state = (method, true)
        }
    }

    /// A context that starts children and pools by `method` (Python's `get_context`), without
    /// changing the default.
    public static func context(_ method: ChildProcess.StartMethod? = nil) -> StartContext {
        StartContext(method: method ?? defaultStartMethod)
    }
}

/// Starts children and pools by one start method (Python's `multiprocessing.get_context(m)`).
public struct StartContext: Sendable {
    public let method: ChildProcess.StartMethod

    public func process<A: Encodable>(entryPoint: String, arguments: A, name: String? = nil, daemon: Bool = false) -> ChildProcess {
        ChildProcess(entryPoint: entryPoint, arguments: arguments, name: name, daemon: daemon, method: method)
    }

    public func process(entryPoint: String, name: String? = nil, daemon: Bool = false) -> ChildProcess {
        ChildProcess(entryPoint: entryPoint, name: name, daemon: daemon, method: method)
    }

    public func pool(workers: Int? = nil, maxTasksPerChild: Int? = nil) throws -> Pool {
        try Pool(workers: workers, maxTasksPerChild: maxTasksPerChild, method: method)
    }

    public func pool<A: Codable>(workers: Int? = nil, initializer: PoolInitializer<A>, initArguments: A, maxTasksPerChild: Int? = nil) throws -> Pool {
        try Pool(workers: workers, initializer: initializer, initArguments: initArguments, maxTasksPerChild: maxTasksPerChild, method: method)
    }
}
