import TangleTraceFormat

/// An event as a section keeps it: what evidence and stacks need, without the text and the
/// arguments (the pid and tid are the chain's). A third of a `TraceEvent`.
struct EventRef {
    var time: UInt64
    var seq: UInt64
    var object: UInt64
    var stack: UInt32
    var kind: EventKind
    var result: WaitResult

    init(_ e: TraceEvent) {
        time = e.time
        seq = e.seq
        object = e.object
        stack = e.stack
        kind = e.kind
        result = e.result
    }

    func event(pid: Int32, tid: Int32) -> TraceEvent {
        TraceEvent(time: time, pid: pid, tid: tid, seq: seq, kind: kind, object: object, stack: stack, result: result)
    }
}

/// One observed section of one thread: it took a lock-like object at `outer` and, still holding
/// it, did `inner` (took another lock, blocked, or woke someone).
struct LockSection {
    var outer: EventRef
    var inner: EventRef
    /// The thread's clock when it took the outer lock (happens-before without mutex edges).
    var outerClock: VectorClock
    /// The thread's own clock component at `inner`.
    var innerOwn: UInt32
}

/// The sections of one thread with one pair of stacks (code locations), in trace order.
///
/// Its gate locks are the locks held around *every* one of its sections (the intersection): a
/// thread that takes the pair both with and without G is not gated by G. Keying chains by the exact
/// gate set instead would keep one chain per combination of other locks held, which grows with the
/// trace when sections nest several locks.
///
/// Consecutive sections with the same outer clock are one: the thread learnt nothing about the
/// others in between, so the later one is at least as concurrent with every other section as the
/// earlier one (same view of the others, later inner point). What is kept therefore grows with the
/// synchronisations the thread received between sections, not with the number of sections. Past
/// `cap` distinct clocks every other middle section is dropped (first and latest kept) and the
/// drop is counted: the report's problems say so.
struct SectionChain {
    static let cap = 512

    let thread: Int
    let pid: Int32
    let tid: Int32
    private(set) var gates: GateSet
    /// (pid << 32) | stack id of the outer and the inner event (0: no stack).
    let outerStack: UInt64
    let innerStack: UInt64
    /// The latest section inline (the one compared on every add), the earlier ones apart.
    private var latest: LockSection
    private var older: [LockSection] = []
    private(set) var thinned = 0

    init(thread: Int, pid: Int32, tid: Int32, gates: GateSet, outerStack: UInt64, innerStack: UInt64, first: LockSection) {
        self.thread = thread
        self.pid = pid
        self.tid = tid
        self.gates = gates
        self.outerStack = outerStack
        self.innerStack = innerStack
        latest = first
    }

    var count: Int { older.count + 1 }
    func section(_ i: Int) -> LockSection { i == older.count ? latest : older[i] }
    /// Latest first: a later section is more often concurrent with the others.
    var newestFirst: [LockSection] { [latest] + older.reversed() }

    /// Narrows the gates to those also held this time.
    @inline(__always) mutating func intersectGates(_ held: [HeldLock], except a: UInt64, _ b: UInt64) {
        if gates.isEmpty { return }
        // Usually every gate is still held: check before building a new set.
        func kept(_ g: UInt64) -> Bool {
            g != a && g != b && held.indices.contains { held[$0].lock == g }
        }
        if gates.allSatisfy(kept) { return }
        gates = GateSet(sorted: gates.array.filter(kept))
    }

    mutating func add(_ s: LockSection) {
        if latest.outerClock == s.outerClock {
            latest = s
            return
        }
        if older.count + 1 >= Self.cap {
            // Keep the first and the latest, drop every other one in between.
            var kept: [LockSection] = [older[0]]
            var i = 2
            while i < older.count {
                kept.append(older[i])
                i += 2
            }
            thinned += older.count - kept.count
            older = kept
        }
        older.append(latest)
        latest = s
    }
}

/// A section chosen for a witness: which chain, which section.
struct ChosenSection {
    var thread: Int
    var pid: Int32
    var tid: Int32
    var gates: GateSet
    var section: LockSection

    init(_ chain: SectionChain, _ section: LockSection) {
        thread = chain.thread
        pid = chain.pid
        tid = chain.tid
        gates = chain.gates
        self.section = section
    }

    var outer: TraceEvent { section.outer.event(pid: pid, tid: tid) }
    var inner: TraceEvent { section.inner.event(pid: pid, tid: tid) }
}

enum Incompatibility: String {
    case singleThread = "single-thread"
    case gateLock = "gate-lock"
    case happensBefore = "happens-before"
}

extension ChosenSection {
    /// Two sections can overlap (and so deadlock) only if their threads differ, they share no gate
    /// lock, and neither's inner point happens before the other's outer acquisition.
    static func check(_ x: ChosenSection, _ y: ChosenSection) -> Incompatibility? {
        if x.thread == y.thread { return .singleThread }
        if !disjoint(x.gates, y.gates) { return .gateLock }
        if y.section.outerClock.saw(thread: x.thread, own: x.section.innerOwn)
            || x.section.outerClock.saw(thread: y.thread, own: y.section.innerOwn) {
            return .happensBefore
        }
        return nil
    }

    static func disjoint(_ a: GateSet, _ b: GateSet) -> Bool { GateSet.disjoint(a, b) }
}

/// Chains by (thread, stacks) under some grouping key: the storage shared by the lock-order
/// edges and the hold-and-wait tables. Most sets hold one chain (kept inline, no extra
/// allocation to reach on the hot path) or a few: a linear scan, and an index only once there are
/// many.
struct ChainSet {
    private var head: SectionChain
    private var rest: [SectionChain] = []
    private var index: [ChainKey: Int]?

    struct ChainKey: Hashable {
        var thread: Int
        var outerStack: UInt64
        var innerStack: UInt64
    }

    /// A set holding one section (sets are created with their first section, so the first chain
    /// is stored inline, not as an optional that every access would copy).
    init(_ t: ThreadState, held: [HeldLock], except a: UInt64, _ b: UInt64, outer: TraceEvent, inner: TraceEvent,
         clock: VectorClock, own: UInt32) {
        head = Self.newChain(t, held: held, except: a, b, outer: outer, inner: inner, clock: clock, own: own)
    }

    var chains: [SectionChain] { [head] + rest }

    static func newChain(_ t: ThreadState, held: [HeldLock], except a: UInt64, _ b: UInt64, outer: TraceEvent,
                                 inner: TraceEvent, clock: VectorClock, own: UInt32) -> SectionChain {
        let gates = held.count > 1 ? GateSet(held: held, except: a, b) : GateSet()
        let s = LockSection(outer: EventRef(outer), inner: EventRef(inner), outerClock: clock, innerOwn: own)
        return SectionChain(thread: t.index, pid: t.pid, tid: t.tid, gates: gates, outerStack: stackKey(outer),
                            innerStack: stackKey(inner), first: s)
    }

    /// Adds a section: `held` are the locks the thread holds; its gates are those except `a` and `b`.
    @inline(__always)
    mutating func add(_ t: ThreadState, held: [HeldLock], except a: UInt64, _ b: UInt64, outer: TraceEvent, inner: TraceEvent,
                      clock: VectorClock, own: UInt32) {
        let os = Self.stackKey(outer), ins = Self.stackKey(inner)
        if head.thread == t.index && head.outerStack == os && head.innerStack == ins {
            head.intersectGates(held, except: a, b)
            head.add(LockSection(outer: EventRef(outer), inner: EventRef(inner), outerClock: clock, innerOwn: own))
            return
        }
        if let i = find(t.index, os, ins) {
            rest[i].intersectGates(held, except: a, b)
            rest[i].add(LockSection(outer: EventRef(outer), inner: EventRef(inner), outerClock: clock, innerOwn: own))
            return
        }
        index?[ChainKey(thread: t.index, outerStack: os, innerStack: ins)] = rest.count
        rest.append(Self.newChain(t, held: held, except: a, b, outer: outer, inner: inner, clock: clock, own: own))
        if index == nil && rest.count > 8 {
            var idx: [ChainKey: Int] = [:]
            for (j, c) in rest.enumerated() { idx[ChainKey(thread: c.thread, outerStack: c.outerStack, innerStack: c.innerStack)] = j }
            index = idx
        }
    }

    @inline(__always) private func find(_ thread: Int, _ os: UInt64, _ ins: UInt64) -> Int? {
        if let index { return index[ChainKey(thread: thread, outerStack: os, innerStack: ins)] }
        for i in rest.indices.reversed() where rest[i].thread == thread && rest[i].outerStack == os && rest[i].innerStack == ins {
            return i
        }
        return nil
    }

    static func stackKey(_ e: TraceEvent) -> UInt64 {
        e.stack == 0 ? 0 : (UInt64(UInt32(bitPattern: e.pid)) << 32) | UInt64(e.stack)
    }

    var thinned: Int { head.thinned + rest.reduce(0) { $0 + $1.thinned } }
}

/// The gate locks of a chain, sorted. Most chains have none, one or two: those are kept inline, so
/// that the hundreds of thousands of chains of a dense lock graph allocate no array for them.
struct GateSet: Equatable {
    private var first: UInt64 = 0
    private var second: UInt64 = 0
    private var inlineCount: UInt8 = 0
    /// More than two gates, sorted.
    private var spill: [UInt64]?

    init() {}

    init(sorted locks: [UInt64]) {
        switch locks.count {
        case 0: break
        case 1: (first, inlineCount) = (locks[0], 1)
        case 2: (first, second, inlineCount) = (locks[0], locks[1], 2)
        default: spill = locks
        }
    }

    /// The locks of `held` other than `a` and `b`.
    init(held: [HeldLock], except a: UInt64, _ b: UInt64) {
        var n = 0, x: UInt64 = 0, y: UInt64 = 0
        for k in held.indices where held[k].lock != a && held[k].lock != b {
            n += 1
            if n == 1 { x = held[k].lock } else if n == 2 { y = held[k].lock }
        }
        if n <= 2 {
            self.init(sorted: n == 0 ? [] : n == 1 ? [x] : [min(x, y), max(x, y)])
        } else {
            self.init(sorted: held.indices.compactMap { held[$0].lock != a && held[$0].lock != b ? held[$0].lock : nil }.sorted())
        }
    }

    var isEmpty: Bool { spill == nil && inlineCount == 0 }

    var array: [UInt64] {
        if let spill { return spill }
        switch inlineCount {
        case 0: return []
        case 1: return [first]
        default: return [first, second]
        }
    }

    func allSatisfy(_ p: (UInt64) -> Bool) -> Bool {
        if let spill { return spill.allSatisfy(p) }
        return (inlineCount < 1 || p(first)) && (inlineCount < 2 || p(second))
    }

    func contains(_ g: UInt64) -> Bool {
        if let spill { return spill.contains(g) }
        return (inlineCount >= 1 && first == g) || (inlineCount >= 2 && second == g)
    }

    /// No lock in both.
    static func disjoint(_ a: GateSet, _ b: GateSet) -> Bool {
        if a.isEmpty || b.isEmpty { return true }
        if a.spill == nil { return !b.contains(a.first) && (a.inlineCount < 2 || !b.contains(a.second)) }
        if b.spill == nil { return disjoint(b, a) }
        let x = a.array, y = b.array
        var i = 0, j = 0
        while i < x.count && j < y.count {
            if x[i] == y[j] { return false }
            if x[i] < y[j] { i += 1 } else { j += 1 }
        }
        return true
    }
}
