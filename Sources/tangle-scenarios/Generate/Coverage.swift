// Coverage: per primitive, how many programs had a thread blocked for good in an op on it
// (hanging) and how many ended cleanly while using it (clean).

enum Coverage {
    static let primitives = [
        "lock", "rlock", "semaphore", "bounded-semaphore", "event", "condition", "barrier",
        "queue", "bounded-queue", "joinable-queue", "pipe-one-way", "pipe-duplex",
        "child-spawn", "child-fork", "thread", "pool-map", "pool-apply-async", "pool-imap-unordered",
    ]

    /// The primitive an op uses.
    static func primitive(_ op: Op, _ p: Program) -> String? {
        switch op {
        case let .startChild(k), let .joinChild(k): return p.processes[k].fork ? "child-fork" : "child-spawn"
        case .startThread, .joinThread: return "thread"
        case .poolMap: return "pool-map"
        case .poolApply, .poolGet: return "pool-apply-async"
        case .poolImap: return "pool-imap-unordered"
        case .poolCloseJoin: return nil
        default: return op.object.map { p.objects[$0].kind.rawValue }
        }
    }

    /// Primitives the program uses.
    static func used(_ p: Program) -> Set<String> {
        var s = Set<String>()
        for proc in p.processes { for t in proc.threads { for op in t.ops { if let x = primitive(op, p) { s.insert(x) } } } }
        return s
    }

    /// Primitives some thread is blocked on (a pool's close+join counts for the pool ops it has).
    static func hanging(_ r: RunResult) -> Set<String> {
        var s = Set<String>()
        for t in r.blocked {
            let ops = r.program.processes[t.ref.process].threads[t.ref.thread].ops
            guard t.op < ops.count else { continue }
            if case .poolCloseJoin = ops[t.op] {
                for op in ops[..<t.op] { if let x = primitive(op, r.program), x.hasPrefix("pool-") { s.insert(x) } }
            } else if let x = primitive(ops[t.op], r.program) {
                s.insert(x)
            }
        }
        return s
    }
}
