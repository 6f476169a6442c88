import TangleTrace

/// One observed section of one thread: it took a lock-like object at `outer` and, still holding
/// it, did `inner` (took another lock, blocked, or woke someone).
struct LockSection {
    var outer: TraceEvent
    var inner: TraceEvent
    /// The thread's clock when it took the outer lock (happens-before without mutex edges).
    var outerClock: VectorClock
    /// The thread's own clock component at `inner`.
    var innerOwn: UInt32
}

/// The sections of one thread with one gate set and one pair of stacks, in trace order.
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
    let gates: [UInt64]
    /// (pid << 32) | stack id of the outer and the inner event (0: no stack).
    let outerStack: UInt64
    let innerStack: UInt64
    private(set) var sections: [LockSection] = []
    private(set) var thinned = 0

    init(thread: Int, gates: [UInt64], outerStack: UInt64, innerStack: UInt64) {
        self.thread = thread
        self.gates = gates
        self.outerStack = outerStack
        self.innerStack = innerStack
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
    var gates: [UInt64]
    var section: LockSection
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

/// Chains by (thread, gates, stacks) under some grouping key: the storage shared by the lock-order
/// edges and the hold-and-wait tables.
struct ChainSet {
    private(set) var chains: [SectionChain] = []
    private var index: [ChainKey: Int] = [:]

    struct ChainKey: Hashable {
        var thread: Int
        var outerStack: UInt64
        var innerStack: UInt64
        var gates: [UInt64]
    }

    var isEmpty: Bool { chains.isEmpty }

    mutating func add(thread: Int, gates: [UInt64], outer: TraceEvent, inner: TraceEvent, clock: VectorClock, own: UInt32) {
        let os = Self.stackKey(outer), ins = Self.stackKey(inner)
        let key = ChainKey(thread: thread, outerStack: os, innerStack: ins, gates: gates)
        let s = LockSection(outer: outer, inner: inner, outerClock: clock, innerOwn: own)
        if let i = index[key] {
            chains[i].add(s)
        } else {
            index[key] = chains.count
            var c = SectionChain(thread: thread, gates: gates, outerStack: os, innerStack: ins)
            c.add(s)
            chains.append(c)
        }
    }

    static func stackKey(_ e: TraceEvent) -> UInt64 {
        e.stack == 0 ? 0 : (UInt64(UInt32(bitPattern: e.pid)) << 32) | UInt64(e.stack)
    }

    var thinned: Int { chains.reduce(0) { $0 + $1.thinned } }
    var threads: [Int] { Array(Set(chains.map(\.thread))).sorted() }
}
