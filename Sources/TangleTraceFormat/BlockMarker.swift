/// The limits both sides of the format agree on, and the block markers of schema 4: what lets a
/// reader tell a dropped, duplicated or reordered LZ4 block from a good one (the frame's blocks
/// are linked and carry no sequence number: a block decoded after the wrong neighbour yields
/// plausible-looking garbage that no block checksum catches).
public enum TraceLimits {
    /// The longest line the recorder writes and a reader accepts, without its newline. The
    /// recorder cuts names (`maxNameBytes`) and spills modules past `maxHeaderModuleBytes` into
    /// `module` records so that no line comes near it.
    // (The integer limits are inlinable: the reader, another module, tests them on every line.)
    @inlinable public static var maxLineBytes: Int { 1 << 20 }
    /// A recorded name (queue, lock, process name…) is cut to this many UTF-8 bytes, the cut
    /// marked with `nameCutMarker` at its end.
    @inlinable public static var maxNameBytes: Int { 4096 }
    public static let nameCutMarker = "…[cut]"
    /// The header carries modules up to about this many bytes; the rest follow as module records.
    @inlinable public static var maxHeaderModuleBytes: Int { 256 << 10 }
    /// A unit (the text between two block markers) holds at most this many bytes of whole lines,
    /// or one single line when that line alone is longer.
    @inlinable public static var unitBytes: Int { (64 << 10) - 128 }
    /// What a reader accepts between two markers before calling the frame damaged.
    @inlinable public static var maxUnitBytes: Int { maxLineBytes + unitBytes + 1 }
}

/// `{"k":"blk","n":N,"x":H}`: ends every unit of a schema-4 LZ4 file. `n` counts units from 0
/// (the header's unit) and `x` is `BlockMarker.hash` of the unit's text before the marker.
public enum BlockMarker {
    /// How every marker line starts.
    @inlinable static var start: StaticString { "{\"k\":\"blk\",\"n\":" }
    package static let prefix: [UInt8] = Array(UnsafeBufferPointer(start: start.utf8Start, count: start.utf8CodeUnitCount))

    /// A 32-bit hash of `count` bytes, 8 bytes a step (fast enough to check every unit; its speed:
    /// docs/runtime.md).
    public static func hash(_ p: UnsafeRawPointer, _ count: Int) -> UInt32 {
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ (UInt64(count) &* 0xFF51_AFD7_ED55_8CCD)
        var i = 0
        while i + 8 <= count {
            let w = UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            h = (h ^ w) &* 0xC4CE_B9FE_1A85_EC53
            h ^= h >> 31
            i += 8
        }
        if i < count {
            var w: UInt64 = 0
            var s: UInt64 = 0
            while i < count { w |= UInt64(p.load(fromByteOffset: i, as: UInt8.self)) << s; s += 8; i += 1 }
            h = (h ^ w) &* 0xC4CE_B9FE_1A85_EC53
            h ^= h >> 31
        }
        h = (h ^ (h >> 33)) &* 0xFF51_AFD7_ED55_8CCD
        return UInt32(truncatingIfNeeded: h ^ (h >> 32))
    }

    /// The marker line (with its newline) for unit `n` whose text hashes to `x`.
    package static func line(n: UInt64, x: UInt32) -> [UInt8] {
        Array("{\"k\":\"blk\",\"n\":\(n),\"x\":\(x)}\n".utf8)
    }

    /// True when the line starts like a marker (the recorder writes its keys in this order).
    /// (Inlinable: the reader asks it of every line.)
    @inlinable @inline(__always) package static func isMarker(_ p: UnsafePointer<UInt8>, _ count: Int) -> Bool {
        count >= start.utf8CodeUnitCount && memcmpBytes(p, start.utf8Start, start.utf8CodeUnitCount)
    }

    /// `(n, x)` of a marker line, nil when it is malformed.
    package static func parse(_ p: UnsafePointer<UInt8>, _ count: Int) -> (n: UInt64, x: UInt32)? {
        var i = prefix.count
        func number() -> UInt64? {
            var v: UInt64 = 0
            let start = i
            while i < count, p[i] >= 48, p[i] <= 57 {
                let (m, o1) = v.multipliedReportingOverflow(by: 10)
                let (s, o2) = m.addingReportingOverflow(UInt64(p[i] - 48))
                if o1 || o2 { return nil }
                v = s
                i += 1
            }
            return i > start ? v : nil
        }
        guard isMarker(p, count), let n = number() else { return nil }
        let mid: [UInt8] = Array(",\"x\":".utf8)
        guard i + mid.count <= count, mid.withUnsafeBufferPointer({ memcmpBytes(p + i, $0.baseAddress!, $0.count) }) else { return nil }
        i += mid.count
        guard let x = number(), x <= UInt64(UInt32.max), i + 1 == count, p[i] == 125 else { return nil }
        return (n, UInt32(x))
    }

    /// `{"k":"header","v":N` with N ≥ 4 at the start of the first line: the file carries markers.
    package static func headerVersion(_ p: UnsafePointer<UInt8>, _ count: Int) -> Int? {
        let h: [UInt8] = Array("{\"k\":\"header\",\"v\":".utf8)
        guard count > h.count, h.withUnsafeBufferPointer({ memcmpBytes(p, $0.baseAddress!, $0.count) }) else { return nil }
        var i = h.count
        var v = 0
        while i < count, i < h.count + 6, p[i] >= 48, p[i] <= 57 { v = v * 10 + Int(p[i] - 48); i += 1 }
        return i > h.count ? v : nil
    }
}

@inlinable @inline(__always) func memcmpBytes(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ n: Int) -> Bool {
    var i = 0
    while i < n { if a[i] != b[i] { return false }; i += 1 }
    return true
}

/// Cuts `s` to at most `TraceLimits.maxNameBytes` UTF-8 bytes (at a character boundary), marking
/// the cut; shorter names are returned as they are.
public func cappedTraceName(_ s: String) -> String {
    let limit = TraceLimits.maxNameBytes
    if s.utf8.count <= limit { return s }
    let room = limit - TraceLimits.nameCutMarker.utf8.count
    var out = ""
    var used = 0
    for ch in s {
        let n = String(ch).utf8.count
        if used + n > room { break }
        out.append(ch)
        used += n
    }
    return out + TraceLimits.nameCutMarker
}
