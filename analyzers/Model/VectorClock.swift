/// A vector clock over the threads of a session (indexed by `ThreadState.index`).
///
/// Happens-before here is built from the *ordering* synchronisations only: spawn → start, thread
/// start, exit → join, put → get of one message, send → recv, event set → wake, notify → wake,
/// barrier arrivals, pool submit → start → done → result, semaphore release → acquire,
/// task-done → queue join. Mutex release → acquire edges are deliberately left out: with them every
/// lock-order inversion that happened not to deadlock would look "ordered" by the lock itself.
///
/// A thread keeps its own component apart (`ThreadState.ownCounter`, starting at 1 and incremented
/// right after each event that publishes its clock), so publishing is a `ClockStamp` — the shared
/// clock storage plus (thread, own) — and costs no copy. Event `e` of thread `i` happens before the
/// point whose clock is `c` iff `own(e) <= c[i]`.
struct VectorClock: Sendable, Equatable {
    private(set) var slots: [UInt32] = []

    init() {}

    subscript(index: Int) -> UInt32 {
        index < slots.count ? slots[index] : 0
    }

    mutating func set(_ index: Int, _ value: UInt32) {
        if index >= slots.count { slots.append(contentsOf: repeatElement(0, count: index - slots.count + 1)) }
        slots[index] = value
    }

    /// Raises one component to at least `value`.
    @inline(__always)
    mutating func raise(_ index: Int, _ value: UInt32) {
        if self[index] < value { set(index, value) }
    }

    /// Component-wise maximum; does not touch (or copy) the storage when nothing changes.
    mutating func join(_ other: VectorClock) {
        let o = other.slots
        let n = slots.count
        var i = 0
        while i < o.count {
            if o[i] > (i < n ? slots[i] : 0) { break }
            i += 1
        }
        if i == o.count { return }
        if o.count > slots.count { slots.append(contentsOf: repeatElement(0, count: o.count - slots.count)) }
        while i < o.count {
            if o[i] > slots[i] { slots[i] = o[i] }
            i += 1
        }
    }

    mutating func join(_ s: ClockStamp) {
        join(s.clock)
        raise(s.thread, s.own)
    }

    /// True when an event of thread `thread` whose own component was `own` happens before the point
    /// whose clock is `self`.
    func saw(thread: Int, own: UInt32) -> Bool {
        own <= self[thread]
    }
}

/// A thread's clock as published at one event: shared storage plus its own component.
struct ClockStamp: Sendable {
    var clock: VectorClock
    var thread: Int
    var own: UInt32
}
