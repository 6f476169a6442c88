/// A growable byte buffer with a raw-pointer writer: what the flusher formats JSON lines with
/// (no String interpolation on that path).
public struct ByteWriter: ~Copyable {
    // Inlinable (the recorder's writer, in another module, formats every event with it): the
    // storage is usable from inlined code, and read-only to everyone else.
    @usableFromInline var storage: UnsafeMutablePointer<UInt8>
    @usableFromInline var room: Int
    public var count: Int = 0
    public var base: UnsafeMutablePointer<UInt8> { storage }
    public var capacity: Int { room }

    public init(capacity: Int = 1 << 16) {
        self.room = max(capacity, 256)
        self.storage = .allocate(capacity: self.room)
    }

    deinit { storage.deallocate() }

    @inlinable @inline(__always) public mutating func reserve(_ n: Int) {
        if count + n > room { grow(count + n) }
    }

    @usableFromInline @inline(never) mutating func grow(_ needed: Int) {
        var c = room * 2
        while c < needed { c *= 2 }
        let nb = UnsafeMutablePointer<UInt8>.allocate(capacity: c)
        nb.update(from: storage, count: count)
        storage.deallocate()
        storage = nb
        room = c
    }

    @inlinable @inline(__always) public mutating func byte(_ b: UInt8) {
        reserve(1)
        storage[count] = b
        count += 1
    }

    /// ASCII text known at compile time (keys, punctuation).
    @inlinable @inline(__always) public mutating func ascii(_ s: StaticString) {
        let n = s.utf8CodeUnitCount
        reserve(n)
        (storage + count).update(from: s.utf8Start, count: n)
        count += n
    }

    @inlinable public mutating func bytes(_ p: UnsafeRawBufferPointer) {
        reserve(p.count)
        if let src = p.baseAddress { (storage + count).update(from: src.assumingMemoryBound(to: UInt8.self), count: p.count) }
        count += p.count
    }

    @inlinable public mutating func bytes(_ a: [UInt8]) {
        a.withUnsafeBytes { bytes($0) }
    }

    @inlinable @inline(__always) public mutating func uint(_ v: UInt64) {
        reserve(20)
        if v < 10 {
            storage[count] = 48 &+ UInt8(truncatingIfNeeded: v)
            count += 1
            return
        }
        count += ByteWriter.writeDigits(v, storage + count)
    }

    /// Decimal digits of `v` (>= 10) at `p`, two at a time; returns how many.
    @inlinable @inline(__always) static func writeDigits(_ v: UInt64, _ p: UnsafeMutablePointer<UInt8>) -> Int {
        var n = 1
        var t: UInt64 = 10
        while n < 20 && v >= t {
            n += 1
            if n == 20 { break }
            t &*= 10
        }
        let pairs: StaticString = "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"
        let d = pairs.utf8Start
        var x = v
        var i = n
        while x >= 100 {
            let q = x / 100
            let r = Int(x &- q &* 100) &* 2
            i -= 2
            p[i] = d[r]
            p[i + 1] = d[r + 1]
            x = q
        }
        if x >= 10 {
            let r = Int(x) &* 2
            p[i - 2] = d[r]
            p[i - 1] = d[r + 1]
        } else {
            p[i - 1] = 48 &+ UInt8(truncatingIfNeeded: x)
        }
        return n
    }

    /// `n` bytes from `p` (no capacity check: the caller reserved).
    @inlinable @inline(__always) public mutating func unchecked(_ p: UnsafePointer<UInt8>, _ n: Int) {
        (storage + count).update(from: p, count: n)
        count += n
    }

    @inlinable @inline(__always) public mutating func int(_ v: Int64) {
        if v < 0 {
            byte(UInt8(ascii: "-"))
            uint(UInt64(bitPattern: 0 &- v))
        } else {
            uint(UInt64(v))
        }
    }

    /// A JSON string literal (quotes included), escaped.
    @inlinable public mutating func jsonString(_ s: String) {
        var s = s
        s.withUTF8 { u in
            reserve(u.count * 6 + 2)
            storage[count] = 34
            count += 1
            for c in u {
                switch c {
                case 34: storage[count] = 92; storage[count + 1] = 34; count += 2
                case 92: storage[count] = 92; storage[count + 1] = 92; count += 2
                case 10: storage[count] = 92; storage[count + 1] = 110; count += 2
                case 13: storage[count] = 92; storage[count + 1] = 114; count += 2
                case 9: storage[count] = 92; storage[count + 1] = 116; count += 2
                case 0..<32:
                    let hex: StaticString = "0123456789abcdef"
                    storage[count] = 92; storage[count + 1] = 117; storage[count + 2] = 48; storage[count + 3] = 48
                    storage[count + 4] = hex.utf8Start[Int(c >> 4)]
                    storage[count + 5] = hex.utf8Start[Int(c & 15)]
                    count += 6
                default: storage[count] = c; count += 1
                }
            }
            storage[count] = 34
            count += 1
        }
    }

    @inlinable public mutating func removeAll() { count = 0 }

    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: storage, count: count))
    }

    public var array: [UInt8] { Array(UnsafeBufferPointer(start: storage, count: count)) }
}
