// The generator: a program derived only from its seed. Each object gets a usage pattern (producers
// and consumers, waiters and wakers, acquire/release pairs) whose counts are drawn so that they
// sometimes balance and sometimes do not; the fragments are then interleaved at random into the
// threads. Nothing is labelled hanging or clean: the interpreter observes what happens.

/// SplitMix64: tiny, fast, and every seed gives a well-mixed stream.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in 0..<n.
    mutating func below(_ n: Int) -> Int { n <= 1 ? 0 : Int(next() % UInt64(n)) }
    mutating func range(_ r: ClosedRange<Int>) -> Int { r.lowerBound + below(r.count) }
    mutating func chance(_ p: Double) -> Bool { Double(next() >> 11) / Double(1 << 53) < p }
    mutating func pick<T>(_ a: [T]) -> T { a[below(a.count)] }
    mutating func shuffle<T>(_ a: inout [T]) {
        if a.count < 2 { return }
        for i in stride(from: a.count - 1, to: 0, by: -1) { a.swapAt(i, below(i + 1)) }
    }
}

/// A thread of the program: (process, thread).
struct ThreadRef: Hashable, Sendable {
    var process: Int
    var thread: Int
}

enum Generator {
    /// What a seed means: bump it on any change to the generator (a seed then gives another
    /// program, so the committed regression seeds must be re-recorded).
    static let version = 1
    static let maxProcesses = 4
    static let maxThreads = 3
    static let maxObjects = 4

    static func program(seed: UInt64) -> Program {
        var rng = SplitMix64(seed: seed)
        let nProc = rng.pick([2, 2, 3, 3, 4])
        var processes: [ProcessDecl] = []
        for p in 0..<nProc {
            let nThreads = rng.pick([1, 1, 2, 2, 3])
            processes.append(ProcessDecl(name: "P\(p)", fork: p > 0 && rng.chance(0.4),
                                         threads: Array(repeating: ThreadDecl(ops: []), count: nThreads)))
        }
        let threads = processes.indices.flatMap { p in processes[p].threads.indices.map { ThreadRef(process: p, thread: $0) } }

        // Objects: 2...4 kinds drawn uniformly (at most one pool).
        var objects: [ObjDecl] = []
        let nObj = rng.range(2...maxObjects)
        while objects.count < nObj {
            let kind = rng.pick(ObjKind.allCases)
            if kind == .pool && objects.contains(where: { $0.kind == .pool }) { continue }
            let param: Int
            switch kind {
            case .semaphore: param = rng.range(0...2)
            case .boundedSemaphore: param = rng.range(1...2)
            case .barrier: param = rng.range(2...3)
            case .boundedQueue: param = rng.range(1...2)
            case .pool: param = rng.range(1...2)
            default: param = 0
            }
            objects.append(ObjDecl(kind: kind, param: param, name: "\(kind.letter)\(objects.count)"))
        }

        // Fragments: per thread, a list of op sequences to interleave.
        var fragments: [ThreadRef: [[Op]]] = [:]
        func add(_ t: ThreadRef, _ ops: [Op]) { if !ops.isEmpty { fragments[t, default: []].append(ops) } }
        func distinct(_ n: Int) -> [ThreadRef] {
            var all = threads
            rng.shuffle(&all)
            return (0..<n).map { all[$0 % all.count] }
        }
        /// n ± a little: usually balanced, sometimes one short or one over.
        func near(_ n: Int) -> Int {
            let r = rng.below(10)
            return max(0, r < 6 ? n : r < 8 ? n - 1 : n + 1)
        }
        func split(_ total: Int, into ways: Int) -> [Int] {
            var parts = Array(repeating: 0, count: ways)
            for _ in 0..<total { parts[rng.below(ways)] += 1 }
            return parts
        }

        var nextResultSlot = 0
        for (o, decl) in objects.enumerated() {
            switch decl.kind {
            case .lock, .rlock:
                for t in distinct(rng.range(1...2)) {
                    var ops: [Op] = [.acquire(o)]
                    let twice = rng.chance(decl.kind == .rlock ? 0.3 : 0.06)
                    if twice { ops.append(.acquire(o)) }
                    if !rng.chance(0.12) {
                        ops.append(.release(o))
                        if twice { ops.append(.release(o)) }
                    }
                    add(t, ops)
                }
            case .semaphore:
                let acquires = rng.range(1...3)
                let releases = max(0, near(max(0, acquires - decl.param)))
                for (t, n) in zip(distinct(2), split(acquires, into: 2)) { add(t, Array(repeating: .acquire(o), count: n)) }
                for (t, n) in zip(distinct(2), split(releases, into: 2)) { add(t, Array(repeating: .release(o), count: n)) }
            case .boundedSemaphore:
                for t in distinct(rng.range(1...2)) {
                    var ops: [Op] = [.acquire(o)]
                    if !rng.chance(0.12) { ops.append(.release(o)) }
                    if rng.chance(0.12) { ops.append(.release(o)) }
                    add(t, ops)
                }
            case .event:
                for t in distinct(rng.range(1...2)) { add(t, [.wait(o)]) }
                if rng.chance(0.8) { add(rng.pick(threads), [.set(o)]) }
            case .condition:
                for t in distinct(rng.range(1...2)) { add(t, [.condWait(o)]) }
                for t in distinct(rng.pick([0, 1, 1, 2])) { add(t, [.condNotify(o, all: rng.chance(0.5))]) }
            case .barrier:
                let arrivals = rng.pick([decl.param, decl.param, decl.param, decl.param - 1, decl.param - 1, decl.param + 1])
                for t in distinct(arrivals) { add(t, [.barrierWait(o)]) }
            case .queue, .boundedQueue, .joinableQueue:
                let items = rng.range(1...3)
                let gets = near(items)
                let producers = distinct(rng.range(1...2))
                for (t, n) in zip(producers, split(items, into: producers.count)) {
                    var ops = Array(repeating: Op.put(o), count: n)
                    if decl.kind == .joinableQueue && n > 0 && rng.chance(0.6) { ops.append(.joinQueue(o)) }
                    add(t, ops)
                }
                for (t, n) in zip(distinct(rng.range(1...2)), split(gets, into: 2)) {
                    var ops: [Op] = []
                    for _ in 0..<n {
                        ops.append(.get(o))
                        if decl.kind == .joinableQueue && !rng.chance(0.15) { ops.append(.taskDone(o)) }
                    }
                    add(t, ops)
                }
            case .pipe:
                // Pipe(duplex: false) gives (receiver, sender): end 1 sends, end 0 receives.
                let sends = rng.range(1...3)
                let ends = distinct(2)
                add(ends[0], Array(repeating: .send(o, end: 1), count: sends))
                add(ends[1], Array(repeating: .recv(o, end: 0), count: near(sends)))
            case .duplexPipe:
                // The thread at end e sends on e and receives (on e) what the other end sent.
                let ends = distinct(2)
                let sends = [rng.range(0...2), rng.range(0...2)]
                for e in 0..<2 {
                    var ops = Array(repeating: Op.send(o, end: e), count: sends[e])
                    ops += Array(repeating: Op.recv(o, end: e), count: near(sends[1 - e]))
                    rng.shuffle(&ops)
                    add(ends[e], ops)
                }
            case .pool:
                var ops: [Op] = []
                var open: [Int] = []
                func fns() -> [TaskFn] {
                    (0..<rng.range(1...3)).map { _ in rng.chance(0.7) ? .ok : rng.chance(0.6) ? .fail : .block }
                }
                for _ in 0..<rng.range(1...3) {
                    switch rng.below(3) {
                    case 0: ops.append(.poolMap(o, fns()))
                    case 1: ops.append(.poolImap(o, fns()))
                    default:
                        let f = fns()[0]
                        ops.append(.poolApply(o, f, slot: nextResultSlot))
                        open.append(nextResultSlot)
                        nextResultSlot += 1
                    }
                }
                for s in open where rng.chance(0.75) { ops.append(.poolGet(o, slot: s)) }
                if rng.chance(0.85) { ops.append(.poolCloseJoin(o)) }
                add(rng.pick(threads), ops)
            }
        }

        // Interleave each thread's fragments at random, keeping each fragment's order.
        for t in threads {
            var frs = fragments[t] ?? []
            var ops: [Op] = []
            while !frs.isEmpty {
                let i = rng.below(frs.count)
                ops.append(frs[i].removeFirst())
                if frs[i].isEmpty { frs.remove(at: i) }
            }
            processes[t.process].threads[t.thread].ops = ops
        }

        // Structure: thread 0 of each process starts its other threads (and P0 its children) first,
        // and joins them at the end — mostly; sometimes a join comes early or never.
        for p in processes.indices {
            var starts: [Op] = (1..<processes[p].threads.count).map { .startThread($0) }
            var childJoins: [Op] = []
            if p == 0 {
                starts += (1..<processes.count).map { .startChild($0) }
                childJoins = (1..<processes.count).filter { _ in !rng.chance(0.12) }.map { .joinChild($0) }
            }
            rng.shuffle(&starts)
            var body = processes[p].threads[0].ops
            // P0 closes, with some chance, the pipe ends it does not use once the children run.
            if p == 0 {
                let used = Program(seed: seed, objects: objects, processes: processes).endsUsed(by: 0)
                for (o, d) in objects.enumerated() where d.kind.isPipe {
                    for e in 0..<2 where !used.contains([o, e]) && rng.chance(0.6) {
                        body.insert(.closeEnd(o, end: e), at: rng.below(body.count + 1))
                    }
                }
            }
            for j in childJoins {
                if rng.chance(0.25) { body.insert(j, at: rng.below(body.count + 1)) } else { body.append(j) }
            }
            for t in 1..<max(1, processes[p].threads.count) where !rng.chance(0.15) { body.append(.joinThread(t)) }
            processes[p].threads[0].ops = starts + body
        }
        return Program(seed: seed, objects: objects, processes: processes)
    }
}
