import TangleTrace

/// An event as a section keeps it: what evidence and stacks need, without the text and the
/// arguments (the pid and tid are the chain's). A third of a `TraceEvent`.
struct EventRef {
    var time: UInt64
    var seq: UInt64
    var object: UInt64
    var a: UInt64
    var c: UInt64
    var stack: UInt32
    var kind: EventKind
    var result: WaitResult

    init(_ e: TraceEvent) {
        time = e.time
        seq = e.seq
        object = e.object
        a = e.a
        c = e.c
        stack = e.stack
        kind = e.kind
        result = e.result
    }

    func event(pid: Int32, tid: Int32) -> TraceEvent {
        TraceEvent(time: time, pid: pid, tid: tid, seq: seq, kind: kind, object: object, stack: stack, result: result, a: a, c: c)
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
    private(set) var gates: [UInt64]
    /// (pid << 32) | stack id of the outer and the inner event (0: no stack).
    let outerStack: UInt64
    let innerStack: UInt64
    private(set) var sections: [LockSection] = []
    private(set) var thinned = 0

    init(thread: Int, pid: Int32, tid: Int32, gates: [UInt64], outerStack: UInt64, innerStack: UInt64) {
        self.thread = thread
        self.pid = pid
        self.tid = tid
        self.gates = gates
        self.outerStack = outerStack
        self.innerStack = innerStack
    }

    /// Narrows the gates to those also held this time (both sorted).
    mutating func intersectGates(_ g: [UInt64]) {
        if gates.isEmpty || gates == g { return }
        gates = gates.filter { g.contains($0) }
    }

    mutating func add(_ s: LockSection) {
        if let last = sections.indices.last, sections[last].outerClock == s.outerClock {
            sections[last] = s
            return
        }
        if sections.count >= Self.cap {
            // Keep the first and the latest, drop every other one in between.
            var kept: [LockSection] = [sections[0]]
            var i = 2
            while i < sections.count - 1 {
                kept.append(sections[i])
                i += 2
            }
            kept.append(sections[sections.count - 1])
            thinned += sections.count - kept.count
            sections = kept
        }
        sections.append(s)
    }
}

/// A section chosen for a witness: which chain, which section.
struct ChosenSection {
    var thread: Int
    var pid: Int32
    var tid: Int32
    var gates: [UInt64]
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

    /// Both arrays are sorted and short.
    static func disjoint(_ a: [UInt64], _ b: [UInt64]) -> Bool {
        if a.isEmpty || b.isEmpty { return true }
        var i = 0, j = 0
        while i < a.count && j < b.count {
            if a[i] == b[j] { return false }
            if a[i] < b[j] { i += 1 } else { j += 1 }
        }
        return true
    }
}

/// Chains by (thread, stacks) under some grouping key: the storage shared by the lock-order
/// edges and the hold-and-wait tables. Most sets hold a few chains: a linear scan, and an index
/// only once there are many.
struct ChainSet {
    private(set) var chains: [SectionChain] = []
    private var index: [ChainKey: Int]?

    struct ChainKey: Hashable {
        var thread: Int
        var outerStack: UInt64
        var innerStack: UInt64
    }

    var isEmpty: Bool { chains.isEmpty }

    mutating func add(_ t: ThreadState, gates: [UInt64], outer: TraceEvent, inner: TraceEvent, clock: VectorClock, own: UInt32) {
        let os = Self.stackKey(outer), ins = Self.stackKey(inner)
        let s = LockSection(outer: EventRef(outer), inner: EventRef(inner), outerClock: clock, innerOwn: own)
        if let i = find(t.index, os, ins) {
            chains[i].intersectGates(gates)
            chains[i].add(s)
            return
        }
        let key = ChainKey(thread: t.index, outerStack: os, innerStack: ins)
        index?[key] = chains.count
        var c = SectionChain(thread: t.index, pid: t.pid, tid: t.tid, gates: gates, outerStack: os, innerStack: ins)
        c.add(s)
        chains.append(c)
        if index == nil && chains.count > 8 {
            var idx: [ChainKey: Int] = [:]
            for (j, c) in chains.enumerated() { idx[ChainKey(thread: c.thread, outerStack: c.outerStack, innerStack: c.innerStack)] = j }
            index = idx
        }
    }

    @inline(__always) private func find(_ thread: Int, _ os: UInt64, _ ins: UInt64) -> Int? {
        if let index { return index[ChainKey(thread: thread, outerStack: os, innerStack: ins)] }
        for i in chains.indices.reversed() where chains[i].thread == thread && chains[i].outerStack == os && chains[i].innerStack == ins {
            return i
        }
        return nil
    }

    static func stackKey(_ e: TraceEvent) -> UInt64 {
        e.stack == 0 ? 0 : (UInt64(UInt32(bitPattern: e.pid)) << 32) | UInt64(e.stack)
    }

    var thinned: Int { chains.reduce(0) { $0 + $1.thinned } }
}
