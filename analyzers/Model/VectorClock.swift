/// A vector clock over the threads of a session (indexed by `ThreadState.index`).
///
/// Happens-before here is built from the *ordering* synchronisations only: spawn → start, thread
/// start, exit → join, put → get of one message, send → recv, event set → wake, notify → wake,
/// barrier arrivals, pool submit → start → done → result, semaphore release → acquire,
/// task-done → queue join. Mutex release → acquire edges are deliberately left out: with them every
/// lock-order inversion that happened not to deadlock would look "ordered" by the lock itself.
///
/// A thread's own component starts at 1 and is incremented right after each event that publishes its
/// clock, so event `e` of thread `i` happens before event `f` iff `own(e) <= clock(f)[i]`.
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

    mutating func join(_ other: VectorClock) {
        let o = other.slots
        if o.count > slots.count { slots.append(contentsOf: repeatElement(0, count: o.count - slots.count)) }
        var i = 0
        while i < o.count {
            if o[i] > slots[i] { slots[i] = o[i] }
            i += 1
        }
    }

    /// True when an event of thread `thread` whose own component was `own` happens before the point
    /// whose clock is `self`.
    func saw(thread: Int, own: UInt32) -> Bool {
        own <= self[thread]
    }
}
