/// Messages in flight by id: an open-addressing table with a multiplicative hash (message ids are
/// `(pid << 28) | counter`, already well spread), cheaper than `Dictionary`'s SipHash on the
/// hottest path (every put and every get). Deleted slots are tombstones; the table is rebuilt when
/// they pile up.
struct MessageTable {
    private static let empty: UInt64 = 0
    private static let deleted: UInt64 = .max
    private var keys: [UInt64]
    private var slots: [PendingMessage?]
    private var shift: UInt64
    private(set) var count = 0
    private var used = 0   // live + tombstones
    /// Ids that collide with the two reserved keys.
    private var odd: [UInt64: PendingMessage] = [:]

    init() {
        keys = Array(repeating: 0, count: 64)
        slots = Array(repeating: nil, count: 64)
        shift = 64 - 6
    }

    @inline(__always) private func home(_ k: UInt64) -> Int {
        Int(truncatingIfNeeded: (k &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    subscript(key: UInt64) -> PendingMessage? {
        get {
            if key == Self.empty || key == Self.deleted { return odd[key] }
            let mask = keys.count - 1
            var i = home(key)
            while true {
                let k = keys[i]
                if k == key { return slots[i] }
                if k == Self.empty { return nil }
                i = (i + 1) & mask
            }
        }
        set {
            if key == Self.empty || key == Self.deleted {
                odd[key] = newValue
                return
            }
            if let v = newValue { insert(key, v) } else { _ = removeValue(forKey: key) }
        }
    }

    private mutating func insert(_ key: UInt64, _ value: PendingMessage) {
        if (used + 1) * 4 > keys.count * 3 { grow() }
        let mask = keys.count - 1
        var i = home(key)
        var tomb = -1
        while true {
            let k = keys[i]
            if k == key {
                slots[i] = value
                return
            }
            if k == Self.deleted && tomb < 0 { tomb = i }
            if k == Self.empty {
                let at = tomb >= 0 ? tomb : i
                if tomb < 0 { used += 1 }
                keys[at] = key
                slots[at] = value
                count += 1
                return
            }
            i = (i + 1) & mask
        }
    }

    @discardableResult
    mutating func removeValue(forKey key: UInt64) -> PendingMessage? {
        if key == Self.empty || key == Self.deleted { return odd.removeValue(forKey: key) }
        let mask = keys.count - 1
        var i = home(key)
        while true {
            let k = keys[i]
            if k == key {
                let v = slots[i]
                keys[i] = Self.deleted
                slots[i] = nil
                count -= 1
                return v
            }
            if k == Self.empty { return nil }
            i = (i + 1) & mask
        }
    }

    private mutating func grow() {
        let oldKeys = keys
        let oldSlots = slots
        // Double only when live entries need it; otherwise rebuild at the same size (tombstones).
        let size = (count + 1) * 2 > oldKeys.count / 2 ? oldKeys.count * 2 : oldKeys.count
        keys = Array(repeating: 0, count: size)
        slots = Array(repeating: nil, count: size)
        shift = 64 - UInt64(size.trailingZeroBitCount)
        count = 0
        used = 0
        for (i, k) in oldKeys.enumerated() where k != Self.empty && k != Self.deleted {
            if let v = oldSlots[i] { insert(k, v) }
        }
    }

    var values: [PendingMessage] {
        var out: [PendingMessage] = []
        for (i, k) in keys.enumerated() where k != Self.empty && k != Self.deleted {
            if let v = slots[i] { out.append(v) }
        }
        return out + Array(odd.values)
    }
}
