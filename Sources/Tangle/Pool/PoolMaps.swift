import TangleRecorder

/// Argument structs that travel as their bytes when they are plain data (both sides run the same
/// executable): a pair of Ints costs what two Ints do.
protocol _PoolPlainArguments {}

/// The arguments of a two-argument pool function (what `starmap` sends for each tuple).
public struct PoolArguments2<A: Codable, B: Codable>: Codable, _PoolPlainArguments {
    public var a: A
    public var b: B
    public init(_ a: A, _ b: B) { self.a = a; self.b = b }
}

/// The arguments of a three-argument pool function.
public struct PoolArguments3<A: Codable, B: Codable, C: Codable>: Codable, _PoolPlainArguments {
    public var a: A
    public var b: B
    public var c: C
    public init(_ a: A, _ b: B, _ c: C) { self.a = a; self.b = b; self.c = c }
}

extension PoolFunction {
    /// Registers a two-argument function, for `Pool.starmap` (Python's `starmap` unpacks each
    /// tuple into the arguments).
    @discardableResult
    public static func register<A, B>(_ name: String, _ body: @escaping (A, B) throws -> Output) -> PoolFunction
    where Input == PoolArguments2<A, B> {
        register(name) { (p: PoolArguments2<A, B>) in try body(p.a, p.b) }
    }

    /// Registers a three-argument function, for `Pool.starmap`.
    @discardableResult
    public static func register<A, B, C>(_ name: String, _ body: @escaping (A, B, C) throws -> Output) -> PoolFunction
    where Input == PoolArguments3<A, B, C> {
        register(name) { (p: PoolArguments3<A, B, C>) in try body(p.a, p.b, p.c) }
    }
}

extension Pool {
    /// Python's `starmap`: `function(a, b)` for every `(a, b)`, results in order.
    public func starmap<A, B, O>(_ function: PoolFunction<PoolArguments2<A, B>, O>, _ items: [(A, B)], chunkSize: Int? = nil) throws -> [O] {
        try map(function, items.map { PoolArguments2($0.0, $0.1) }, chunkSize: chunkSize)
    }

    /// Python's `starmap` for three-argument functions.
    public func starmap<A, B, C, O>(_ function: PoolFunction<PoolArguments3<A, B, C>, O>, _ items: [(A, B, C)], chunkSize: Int? = nil) throws -> [O] {
        try map(function, items.map { PoolArguments3($0.0, $0.1, $0.2) }, chunkSize: chunkSize)
    }

    /// Python's `imap`: every item is submitted now (in chunks of `chunkSize`, default 1), and the
    /// results are yielded lazily **in input order** as they arrive — the first result is there
    /// as soon as its chunk is, not when the whole map is done. A failed chunk yields one failure
    /// in its place.
    public func imap<I, O>(_ function: PoolFunction<I, O>, _ items: some Sequence<I>, chunkSize: Int = 1) throws -> OrderedPoolResults<O> {
        try checkRegistered(function.name)
        let all = Array(items)
        let size = max(chunkSize, 1)
        let chunkCount = all.isEmpty ? 0 : (all.count + size - 1) / size
        let results = OrderedPoolResults<O>(pool: self, chunks: chunkCount)
        for c in 0..<chunkCount {
            let range = (c * size)..<min((c + 1) * size, all.count)
            let payload = try PoolCoding.encode(all[range])
            let id = try submit(function: function.name, payload: payload, items: range.count, firstItem: range.lowerBound) { [results] _, outcome in
                results.deliver(chunk: c, outcome, function: function.name)
            }
            lock.withLock { results.taskIDs[c] = id }
        }
        return results
    }
}

/// The results of `Pool.imap`, in input order: iterate it (each element is an item's result or
/// its chunk's error). `next()` blocks until the next chunk in order is there.
public final class OrderedPoolResults<O: Decodable>: Sequence, IteratorProtocol, @unchecked Sendable {
    let pool: Pool
    // Under the pool's lock.
    var taskIDs: [UInt64]
    private var chunks: [[Result<O, PoolError>]?]
    private var chunk = 0
    // The iterating thread's own: the chunk being yielded and the next item in it.
    private var current: [Result<O, PoolError>] = []
    private var item = 0

    init(pool: Pool, chunks: Int) {
        self.pool = pool
        taskIDs = Array(repeating: 0, count: chunks)
        self.chunks = Array(repeating: nil, count: chunks)
    }

    func deliver(chunk c: Int, _ outcome: Result<UnsafeRawBufferPointer, PoolError>, function: String) {
        switch outcome {
        case let .success(raw):
            do {
                chunks[c] = try PoolCoding.decode(O.self, raw).map { .success($0) }
            } catch {
                chunks[c] = [.failure(.taskFailed(function: function, index: 0, message: "cannot decode the results: \(error)"))]
            }
        case let .failure(e):
            chunks[c] = [.failure(e)]
        }
    }

    /// True when `next()` would not block (pool lock held), and the task it would wait for.
    func readyLocked() -> Bool { item < current.count || chunk >= chunks.count || chunks[chunk] != nil }
    func awaitedLocked() -> UInt64 { chunk < taskIDs.count ? taskIDs[chunk] : 0 }

    /// The next result in input order (nil after the last). Records `pool.result-wait` with the
    /// awaited task's id when it blocks, and `pool.result` when it takes a task's results. The
    /// items of a taken chunk are yielded without the pool's lock.
    public func next() -> Result<O, PoolError>? {
        if item < current.count {
            defer { item += 1 }
            return current[item]
        }
        let lock = pool.lock
        lock.lock()
        guard chunk < chunks.count else {
            lock.unlock()
            return nil
        }
        let id = taskIDs[chunk]
        if chunks[chunk] == nil {
            lock.unlock()
            Recorder.record(.poolResultWait, object: pool.object, a: id)
            lock.lock()
            while chunks[chunk] == nil { _ = lock.wait(until: nil) }
        }
        current = chunks[chunk]!
        chunks[chunk] = []  // taken: free it
        chunk += 1
        lock.unlock()
        if case .failure = current[0] {
            Recorder.record(.poolResult, object: pool.object, a: id, result: .error)
        } else {
            Recorder.record(.poolResult, object: pool.object, a: id)
        }
        item = 1
        return current[0]
    }
}
