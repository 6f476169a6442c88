/// What the writer's event templates stand for: everything of an event line but its time and
/// seq, direct-mapped by a hash of it. A line that declares template N (`"tp":N`) replaces slot N;
/// the reader keeps the same table from those declarations. Owned by the writer (under its lock).
final class TemplateTable {
    struct Key: Equatable {
        var tidKind: UInt64, object: UInt64, stack: UInt64, a: UInt64, b: UInt64, c: UInt64

        init(tidKind: UInt64, object: UInt64, stack: UInt64, a: UInt64, b: UInt64, c: UInt64) {
            (self.tidKind, self.object, self.stack, self.a, self.b, self.c) = (tidKind, object, stack, a, b, c)
        }

        /// What a ring record's line says besides its time and seq (words 1–4 of the record).
        @inline(__always)
        init(tid: Int32, kindRaw: UInt16, stack: UInt32, record s: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)) {
            self.init(tidKind: UInt64(UInt32(bitPattern: tid)) << 16 | UInt64(kindRaw), object: s.1,
                      stack: UInt64(stack), a: s.2, b: s.3, c: s.4)
        }
    }
    /// Template ids are 0..<entries (readers accept up to `RunTemplates.capacity`).
    static let entries = 256
    private let keys = UnsafeMutablePointer<Key>.allocate(capacity: TemplateTable.entries)

    init() {
        keys.initialize(repeating: Key(tidKind: UInt64.max, object: 0, stack: 0, a: 0, b: 0, c: 0), count: TemplateTable.entries)
    }

    deinit { keys.deallocate() }

    @inline(__always) func slot(_ k: Key) -> Int {
        var x = k.tidKind &* 0x9E37_79B9_7F4A_7C15
        x ^= k.object &* 0xC2B2_AE3D_27D4_EB4F
        x ^= k.stack &* 0x1656_67B1_9E37_79F9
        x ^= (k.a ^ (k.b << 21) ^ (k.c << 42)) &* 0xFF51_AFD7_ED55_8CCD
        return Int(truncatingIfNeeded: x >> 56)
    }

    @inline(__always) func matches(_ slot: Int, _ k: Key) -> Bool { keys[slot] == k }
    @inline(__always) func store(_ slot: Int, _ k: Key) { keys[slot] = k }
}
