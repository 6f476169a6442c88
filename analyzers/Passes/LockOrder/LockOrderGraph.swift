import TangleTraceFormat
import CTangleSupport

/// An edge A → B of the lock-order graph: every section "B taken (or waited for) while A was held",
/// kept as chains per (thread, gate set, stacks) — see `SectionChain` for what is merged.
///
/// A value stored in the graph's one array: a dense lock graph has hundreds of thousands of edges,
/// and an object each was an allocation (and a free) and a pointer to follow per edge.
struct LockEdge {
    let from: UInt64
    let to: UInt64
    var chains: ChainSet

    init(from: UInt64, to: UInt64, first: ChainSet) {
        self.from = from
        self.to = to
        chains = first
    }

    /// One entry per chain, for the exporters' graph (threads per edge).
    struct ThreadRef { var thread: Int }
    var instances: [ThreadRef] { chains.chains.map { ThreadRef(thread: $0.thread) } }
}

/// The lock-order graph and the lock-like state the model does not keep itself.
///
/// Lock-like objects: Lock, RLock (the model's `held` list, which also covers the lock under a
/// Condition), and Semaphore / BoundedSemaphore created with value 1, which this type tracks as
/// held from an acquire to the same thread's release. A value-1 semaphore released by another
/// thread is a signal, not a mutex: it is dropped from its acquirer's held set at that point.
/// Counting semaphores (value ≠ 1) are not locks here; their acquires are blocking operations for
/// the hold-and-wait pass.
///
/// The model calls in at a few marked lines (`lockWait`, `lockAcquired`, `semaphoreReleased`,
/// `observe`); everything else happens at the end of the trace (`TraceModel.runLockOrder`).
final class LockOrderGraph {
    @exclusivity(unchecked) private(set) var allEdges: [LockEdge] = []
    @exclusivity(unchecked) private var index = PairTable()
    /// Value-1 semaphores held, by thread index.
    @exclusivity(unchecked) private var semHeld: [[HeldLock]] = []
    /// Which thread holds a value-1 semaphore.
    @exclusivity(unchecked) private var semOwner: [UInt64: Int] = [:]
    /// Every acquisition of a lock-like object, by lock: the hold-and-wait pass's wakers for joins
    /// and pool results (the thread must take the lock before it can exit or finish its task).
    /// Acquisitions by (lock, thread): one chain each, in `acquisitionChains` (stacks are not
    /// part of the key: one place where the waker takes the lock is enough to show).
    @exclusivity(unchecked) private var acquisitionIndex = PairTable()
    @exclusivity(unchecked) private var acquisitionChains: [SectionChain] = []
    /// Chain indices by lock.
    @exclusivity(unchecked) private var acquisitionLocks = PairTable()
    @exclusivity(unchecked) private var acquisitionLists: [[Int]] = []
    /// Hold-and-wait tables (filled by `observe`, see HoldAndWait.swift).
    @exclusivity(unchecked) var holdAndWait = HoldAndWaitTable()


    /// Semaphores created with value 1 are mutexes here.
    static func isBinarySemaphore(_ o: ObjectState) -> Bool {
        o.kind.isSemaphore && o.created?.b == 1
    }

    /// The lock-like objects `t` holds: its mutexes and value-1 semaphores.
    func held(_ t: ThreadState) -> [HeldLock] {
        guard t.index < semHeld.count, !semHeld[t.index].isEmpty else { return t.held }
        return t.held + semHeld[t.index]
    }

    @inline(__always) func holdsAny(_ t: ThreadState) -> Bool {
        !t.held.isEmpty || (t.index < semHeld.count && !semHeld[t.index].isEmpty)
    }

    // MARK: Hooks called by the model

    /// `lock.wait`: the thread blocks taking `o` — an edge from every lock it holds.
    func lockWait(_ e: TraceEvent, _ t: ThreadState, _ o: ObjectState) {
        if o.kind.isMutex || Self.isBinarySemaphore(o) { record(t, lock: e.object, event: e) }
    }

    /// `lock.acquired` of a Lock/RLock (first entry), or of a semaphore (after its clock was received).
    func lockAcquired(_ e: TraceEvent, _ t: ThreadState, _ o: ObjectState) {
        if o.kind.isSemaphore {
            guard Self.isBinarySemaphore(o) else { return }
            record(t, lock: e.object, event: e)
            noteAcquisition(t, lock: e.object, event: e)
            while semHeld.count <= t.index { semHeld.append([]) }
            semHeld[t.index].append(HeldLock(lock: e.object, depth: 1, event: e, clock: t.clock))
            semOwner[e.object] = t.index
        } else {
            record(t, lock: e.object, event: e)
            noteAcquisition(t, lock: e.object, event: e)
        }
    }

    /// `lock.released` of a semaphore. True when it is a value-1 semaphore released by the thread
    /// that took it: a mutex release, which (like a Lock's) must not order the sections it
    /// separates, so the model adds no happens-before edge for it.
    func semaphoreReleased(_ e: TraceEvent, _ t: ThreadState, _ o: ObjectState) -> Bool {
        guard Self.isBinarySemaphore(o), let owner = semOwner.removeValue(forKey: e.object) else { return false }
        if owner < semHeld.count, let i = semHeld[owner].lastIndex(where: { $0.lock == e.object }) {
            semHeld[owner].remove(at: i)
        }
        return owner == t.index
    }

    /// Records the edges "held → lock" for every lock-like object `t` holds while it takes (or
    /// waits for) `lock`.
    private func record(_ t: ThreadState, lock: UInt64, event: TraceEvent) {
        guard holdsAny(t) else { return }
        let held = held(t)
        // Every edge's slot first: in a dense graph each lookup is a cache miss, and asked for
        // together they overlap instead of following one another.
        if held.count > 1 { for k in held.indices { index.prefetch(held[k].lock, lock) } }
        // By index: copying a HeldLock out of the array would retain its event and clock.
        for k in held.indices where held[k].lock != lock {
            let from = held[k].lock
            let i = index.find(from, lock)
            if i >= 0 {
                allEdges[i].chains.add(t, held: held, except: from, lock, outer: held[k].event, inner: event, clock: held[k].clock, own: t.own)
            } else {
                let first = ChainSet(t, held: held, except: from, lock, outer: held[k].event, inner: event, clock: held[k].clock, own: t.own)
                index.insert(from, lock, allEdges.count)
                allEdges.append(LockEdge(from: from, to: lock, first: first))
            }
        }
    }

    private func noteAcquisition(_ t: ThreadState, lock: UInt64, event: TraceEvent) {
        let i = acquisitionIndex.find(lock, UInt64(t.index))
        let held = held(t)
        if i >= 0 {
            acquisitionChains[i].intersectGates(held, except: lock, lock)
            acquisitionChains[i].add(LockSection(outer: EventRef(event), inner: EventRef(event), outerClock: t.clock, innerOwn: t.own))
            return
        }
        let c = acquisitionChains.count
        acquisitionIndex.insert(lock, UInt64(t.index), c)
        acquisitionChains.append(ChainSet.newChain(t, held: held, except: lock, lock, outer: event, inner: event, clock: t.clock, own: t.own))
        let l = acquisitionLocks.find(lock, 0)
        if l >= 0 {
            acquisitionLists[l].append(c)
        } else {
            acquisitionLocks.insert(lock, 0, acquisitionLists.count)
            acquisitionLists.append([c])
        }
    }

    /// The acquisitions of a lock-like object, per (thread, stack).
    func acquisitions(of lock: UInt64) -> [SectionChain] {
        let l = acquisitionLocks.find(lock, 0)
        return l >= 0 ? acquisitionLists[l].map { acquisitionChains[$0] } : []
    }

    /// The edges the exporters draw: all of them in a graph of up to `exportLimit` edges; in a
    /// larger one only the edges on cycles (set by the pass), since a picture of hundreds of
    /// thousands of edges shows nothing and costs seconds to label.
    static let exportLimit = 5000
    @exclusivity(unchecked) var exportOnly: [LockEdge]?
    var edges: [LockEdge] { exportOnly ?? allEdges }

    func edgeIndex(_ from: UInt64, _ to: UInt64) -> Int? {
        let i = index.find(from, to)
        return i >= 0 ? i : nil
    }

    func edge(_ from: UInt64, _ to: UInt64) -> LockEdge? { edgeIndex(from, to).map { allEdges[$0] } }
}

/// Edge index by (from, to): open addressing with linear probing over one flat array (a Dictionary
/// of a two-field key hashes with SipHash on every acquisition — a tenth of the analysis on dense
/// graphs). Key and value share a slot, so a probe of a large table is one cache miss, not three.
struct PairTable {
    private struct Slot {
        var from: UInt64 = 0
        var to: UInt64 = 0
        /// Value + 1 (0: empty).
        var value: Int = 0
    }

    private var slots: [Slot] = Array(repeating: Slot(), count: 1024)
    private var mask = 1023
    private var count = 0

    @inline(__always) private static func hash(_ a: UInt64, _ b: UInt64) -> Int {
        var x = a &* 0x9E37_79B9_7F4A_7C15 ^ (b &+ 0x632B_E59B_D9B4_E019)
        x ^= x >> 29
        x = x &* 0xBF58_476D_1CE4_E5B9
        x ^= x >> 32
        return Int(truncatingIfNeeded: x)
    }

    /// The value, or -1.
    @inline(__always) func find(_ a: UInt64, _ b: UInt64) -> Int {
        var h = Self.hash(a, b) & mask
        return slots.withUnsafeBufferPointer { s in
            while true {
                let slot = s[h]
                if slot.value == 0 { return -1 }
                if slot.from == a && slot.to == b { return slot.value - 1 }
                h = (h &+ 1) & mask
            }
        }
    }

    /// Starts loading the slot where the pair's probe begins.
    @inline(__always) func prefetch(_ a: UInt64, _ b: UInt64) {
        let h = Self.hash(a, b) & mask
        slots.withUnsafeBufferPointer { tangle_prefetch($0.baseAddress! + h) }
    }

    /// Inserts a pair known to be absent.
    mutating func insert(_ a: UInt64, _ b: UInt64, _ v: Int) {
        if (count + 1) * 2 > mask + 1 { grow() }
        var h = Self.hash(a, b) & mask
        while slots[h].value != 0 { h = (h &+ 1) & mask }
        slots[h] = Slot(from: a, to: b, value: v + 1)
        count += 1
    }

    private mutating func grow() {
        let old = slots
        slots = Array(repeating: Slot(), count: (mask + 1) * 2)
        mask = slots.count - 1
        count = 0
        for slot in old where slot.value != 0 { insert(slot.from, slot.to, slot.value - 1) }
    }
}
