#if canImport(Glibc)
import Glibc
#endif

/// The encoding half of `BinaryCodec`: `Encodable` values to the compact binary form.
final class _BinaryEncoder: Encoder {
    @exclusivity(unchecked) var base: UnsafeMutableRawPointer
    @exclusivity(unchecked) var count = 0
    @exclusivity(unchecked) var capacity: Int
    /// True while a `BinaryCodec` call uses this (per-thread cached) encoder.
    var inUse = false

    struct Frame {
        var id: Int
        var lengthPos: Int       // container byte-length placeholder
        var countPos: Int        // unkeyed element-count placeholder (-1 for keyed)
        var entryPos: Int        // enclosing keyed entry's value-length placeholder (-1 if none)
        var count: Int
    }
    @exclusivity(unchecked) var frames: [Frame] = []
    @exclusivity(unchecked) var nextFrameID = 1

    func reset() {
        count = 0
        frames.removeAll(keepingCapacity: true)
    }

    init(capacity: Int = 128) {
        self.capacity = capacity
        self.base = malloc(capacity)!
    }

    deinit { free(base) }

    var codingPath: [CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func bytes() -> [UInt8] {
        [UInt8](UnsafeRawBufferPointer(start: base, count: count))
    }

    // Raw writes.
    @inline(__always) func ensure(_ n: Int) {
        if count + n > capacity { grow(n) }
    }

    @inline(never) func grow(_ n: Int) {
        var newCapacity = capacity * 2
        while newCapacity < count + n { newCapacity *= 2 }
        base = realloc(base, newCapacity)!
        capacity = newCapacity
    }

    @inline(__always) func byte(_ b: UInt8) {
        ensure(1)
        base.storeBytes(of: b, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    @inline(__always) func varint(_ value: UInt64) {
        ensure(10)
        var v = value
        var p = count
        while v >= 0x80 {
            base.storeBytes(of: UInt8(truncatingIfNeeded: v) | 0x80, toByteOffset: p, as: UInt8.self)
            v >>= 7
            p += 1
        }
        base.storeBytes(of: UInt8(truncatingIfNeeded: v), toByteOffset: p, as: UInt8.self)
        count = p + 1
    }

    @inline(__always) func zigzag(_ value: Int64) {
        varint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    @inline(__always) func fixed64(_ value: UInt64) {
        ensure(8)
        base.storeBytes(of: value.littleEndian, toByteOffset: count, as: UInt64.self)
        count += 8
    }

    @inline(__always) func fixed32(_ value: UInt32) {
        ensure(4)
        base.storeBytes(of: value.littleEndian, toByteOffset: count, as: UInt32.self)
        count += 4
    }

    func raw(_ pointer: UnsafeRawPointer?, _ n: Int) {
        guard n > 0, let pointer else { return }
        ensure(n)
        (base + count).copyMemory(from: pointer, byteCount: n)
        count += n
    }

    func string(_ value: String) {
        var s = value
        s.withUTF8 { utf8 in
            varint(UInt64(utf8.count))
            raw(utf8.baseAddress, utf8.count)
        }
    }

    /// Reserves one byte for a varint patched later.
    @inline(__always) func reserve() -> Int {
        byte(0)
        return count - 1
    }

    /// Writes `value` as a varint at `pos`, a one-byte placeholder, moving later bytes if it needs more.
    func patch(_ pos: Int, _ value: Int) {
        if value < 0x80 {
            base.storeBytes(of: UInt8(value), toByteOffset: pos, as: UInt8.self)
            return
        }
        var size = 1
        var v = UInt64(value)
        while v >= 0x80 { v >>= 7; size += 1 }
        let extra = size - 1
        ensure(extra)
        let tail = count - (pos + 1)
        if tail > 0 { memmove(base + pos + 1 + extra, base + pos + 1, tail) }
        count += extra
        v = UInt64(value)
        var p = pos
        while v >= 0x80 {
            base.storeBytes(of: UInt8(truncatingIfNeeded: v) | 0x80, toByteOffset: p, as: UInt8.self)
            v >>= 7
            p += 1
        }
        base.storeBytes(of: UInt8(truncatingIfNeeded: v), toByteOffset: p, as: UInt8.self)
    }

    /// Patches the byte length of everything written after the placeholder at `pos`.
    @inline(__always) func patchLength(_ pos: Int) {
        patch(pos, count - pos - 1)
    }

    // Frames (open containers).
    func pushFrame(keyed: Bool, entryPos: Int) -> (index: Int, id: Int) {
        let lengthPos = reserve()
        let countPos = keyed ? -1 : reserve()
        let id = nextFrameID
        nextFrameID += 1
        frames.append(Frame(id: id, lengthPos: lengthPos, countPos: countPos, entryPos: entryPos, count: 0))
        return (frames.count - 1, id)
    }

    func closeTop() {
        let frame = frames.removeLast()
        // Highest position first: patching moves only the bytes after the patched position.
        if frame.countPos >= 0 { patch(frame.countPos, frame.count) }
        if frame.lengthPos >= 0 { patchLength(frame.lengthPos) }
        if frame.entryPos >= 0 { patchLength(frame.entryPos) }
    }

    /// Makes the container `(index, id)` the innermost open one again, closing those opened after it.
    @inline(__always) func activate(_ index: Int, _ id: Int) throws {
        if frames.count - 1 != index || frames[index].id != id { try activateSlow(index, id) }
    }

    @inline(never) func activateSlow(_ index: Int, _ id: Int) throws {
        while frames.count - 1 > index { closeTop() }
        guard index < frames.count, frames[index].id == id else {
            throw EncodingError.invalidValue((), .init(
                codingPath: [], debugDescription: "BinaryCodec: a container was written to after it was closed (containers must be written one after the other)"))
        }
    }

    func encodeValue<T: Encodable>(_ value: T) throws {
        if T.self == Int.self { zigzag(Int64(_reinterpret(value, as: Int.self))); return }
        if T.self == String.self { string(_reinterpret(value, as: String.self)); return }
        if T.self == Double.self { fixed64(_reinterpret(value, as: Double.self).bitPattern); return }
        if T.self == Bool.self { byte(_reinterpret(value, as: Bool.self) ? 1 : 0); return }
        if T.self == UInt64.self { varint(_reinterpret(value, as: UInt64.self)); return }
        if T.self == UInt.self { varint(UInt64(_reinterpret(value, as: UInt.self))); return }
        if T.self == Int64.self { zigzag(_reinterpret(value, as: Int64.self)); return }
        if T.self == Int32.self { zigzag(Int64(_reinterpret(value, as: Int32.self))); return }
        if T.self == UInt32.self { varint(UInt64(_reinterpret(value, as: UInt32.self))); return }
        if T.self == UInt8.self { byte(_reinterpret(value, as: UInt8.self)); return }
        if T.self == Int8.self { byte(UInt8(bitPattern: _reinterpret(value, as: Int8.self))); return }
        if T.self == Int16.self { zigzag(Int64(_reinterpret(value, as: Int16.self))); return }
        if T.self == UInt16.self { varint(UInt64(_reinterpret(value, as: UInt16.self))); return }
        if T.self == Float.self { fixed32(_reinterpret(value, as: Float.self).bitPattern); return }
        if T.self == [UInt8].self {
            let bytes = _reinterpret(value, as: [UInt8].self)
            varint(UInt64(bytes.count))
            bytes.withUnsafeBytes { raw($0.baseAddress, $0.count) }
            return
        }
        if _isOptionalType(T.self), let optional = value as? _TangleOptionalEncodable {
            try optional._tangleEncode(self)
            return
        }
        let depth = frames.count
        try value.encode(to: self)
        while frames.count > depth { closeTop() }
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        let (index, id) = pushFrame(keyed: true, entryPos: -1)
        return KeyedEncodingContainer(_KeyedEncoding<Key>(encoder: self, index: index, id: id))
    }

    func unkeyedContainer() -> UnkeyedEncodingContainer {
        let (index, id) = pushFrame(keyed: false, entryPos: -1)
        return _UnkeyedEncoding(encoder: self, index: index, id: id)
    }

    func singleValueContainer() -> SingleValueEncodingContainer {
        _SingleEncoding(encoder: self)
    }
}

struct _KeyedEncoding<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let encoder: _BinaryEncoder
    let index: Int
    let id: Int
    var codingPath: [CodingKey] { [] }

    @inline(__always) private func beginEntry(_ key: Key) throws -> Int {
        try beginEntry(named: key.stringValue)
    }

    @inline(__always) private func beginEntry(named name: String) throws -> Int {
        try encoder.activate(index, id)
        encoder.frames[index].count += 1
        encoder.string(name)
        return encoder.reserve()
    }

    mutating func encodeNil(forKey key: Key) throws {
        let pos = try beginEntry(key)
        encoder.patchLength(pos)
    }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        let pos = try beginEntry(key)
        try encoder.encodeValue(value)
        encoder.patchLength(pos)
    }

    mutating func encode(_ value: Bool, forKey key: Key) throws { try encodeG(value, key) }
    mutating func encode(_ value: String, forKey key: Key) throws {
        let pos = try beginEntry(key)
        encoder.string(value)
        encoder.patchLength(pos)
    }
    mutating func encode(_ value: Double, forKey key: Key) throws { try encodeG(value, key) }
    mutating func encode(_ value: Float, forKey key: Key) throws { try encodeG(value, key) }
    mutating func encode(_ value: Int, forKey key: Key) throws {
        let pos = try beginEntry(key)
        encoder.zigzag(Int64(value))
        encoder.patchLength(pos)
    }
    mutating func encode(_ value: Int8, forKey key: Key) throws { try encodeG(value, key) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { try encodeG(value, key) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { try encodeG(value, key) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { try encodeG(value, key) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { try encodeG(value, key) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { try encodeG(value, key) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { try encodeG(value, key) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { try encodeG(value, key) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { try encodeG(value, key) }

    @inline(__always) private func encodeG<T: Encodable>(_ value: T, _ key: Key) throws {
        let pos = try beginEntry(key)
        try encoder.encodeValue(value)
        encoder.patchLength(pos)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        let pos = (try? beginEntry(key)) ?? encoder.reserve()
        let (index, id) = encoder.pushFrame(keyed: true, entryPos: pos)
        return KeyedEncodingContainer(_KeyedEncoding<NestedKey>(encoder: encoder, index: index, id: id))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> UnkeyedEncodingContainer {
        let pos = (try? beginEntry(key)) ?? encoder.reserve()
        let (index, id) = encoder.pushFrame(keyed: false, entryPos: pos)
        return _UnkeyedEncoding(encoder: encoder, index: index, id: id)
    }

    mutating func superEncoder() -> Encoder { superEncoder(named: "super") }

    mutating func superEncoder(forKey key: Key) -> Encoder { superEncoder(named: key.stringValue) }

    private mutating func superEncoder(named name: String) -> Encoder {
        // The super encoder writes a single-value or container into this entry; an empty keyed frame
        // around it patches the entry length when it closes.
        let pos = (try? beginEntry(named: name)) ?? encoder.reserve()
        encoder.frames.append(.init(id: encoder.nextFrameID, lengthPos: -1, countPos: -1, entryPos: pos, count: 0))
        encoder.nextFrameID += 1
        return _SuperEncoder(encoder: encoder)
    }
}

/// `superEncoder` result: the shared encoder, whose pseudo-frame (lengthPos -1) patches the entry.
struct _SuperEncoder: Encoder {
    let encoder: _BinaryEncoder
    var codingPath: [CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> { encoder.container(keyedBy: type) }
    func unkeyedContainer() -> UnkeyedEncodingContainer { encoder.unkeyedContainer() }
    func singleValueContainer() -> SingleValueEncodingContainer { encoder.singleValueContainer() }
}

struct _UnkeyedEncoding: UnkeyedEncodingContainer {
    let encoder: _BinaryEncoder
    let index: Int
    let id: Int
    var codingPath: [CodingKey] { [] }
    var count: Int { index < encoder.frames.count && encoder.frames[index].id == id ? encoder.frames[index].count : 0 }

    @inline(__always) private func begin() throws {
        try encoder.activate(index, id)
        encoder.frames[index].count += 1
    }

    mutating func encodeNil() throws { try begin(); encoder.byte(0) }
    mutating func encode<T: Encodable>(_ value: T) throws { try begin(); try encoder.encodeValue(value) }
    mutating func encode(_ value: Bool) throws { try begin(); encoder.byte(value ? 1 : 0) }
    mutating func encode(_ value: String) throws { try begin(); encoder.string(value) }
    mutating func encode(_ value: Double) throws { try begin(); encoder.fixed64(value.bitPattern) }
    mutating func encode(_ value: Float) throws { try begin(); encoder.fixed32(value.bitPattern) }
    mutating func encode(_ value: Int) throws { try begin(); encoder.zigzag(Int64(value)) }
    mutating func encode(_ value: Int8) throws { try begin(); encoder.byte(UInt8(bitPattern: value)) }
    mutating func encode(_ value: Int16) throws { try begin(); encoder.zigzag(Int64(value)) }
    mutating func encode(_ value: Int32) throws { try begin(); encoder.zigzag(Int64(value)) }
    mutating func encode(_ value: Int64) throws { try begin(); encoder.zigzag(value) }
    mutating func encode(_ value: UInt) throws { try begin(); encoder.varint(UInt64(value)) }
    mutating func encode(_ value: UInt8) throws { try begin(); encoder.byte(value) }
    mutating func encode(_ value: UInt16) throws { try begin(); encoder.varint(UInt64(value)) }
    mutating func encode(_ value: UInt32) throws { try begin(); encoder.varint(UInt64(value)) }
    mutating func encode(_ value: UInt64) throws { try begin(); encoder.varint(value) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        try? begin()
        let (i, fid) = encoder.pushFrame(keyed: true, entryPos: -1)
        return KeyedEncodingContainer(_KeyedEncoding<NestedKey>(encoder: encoder, index: i, id: fid))
    }

    mutating func nestedUnkeyedContainer() -> UnkeyedEncodingContainer {
        try? begin()
        let (i, fid) = encoder.pushFrame(keyed: false, entryPos: -1)
        return _UnkeyedEncoding(encoder: encoder, index: i, id: fid)
    }

    mutating func superEncoder() -> Encoder {
        try? begin()
        return _SuperEncoder(encoder: encoder)
    }
}

struct _SingleEncoding: SingleValueEncodingContainer {
    let encoder: _BinaryEncoder
    var codingPath: [CodingKey] { [] }
    mutating func encodeNil() throws { encoder.byte(0) }
    mutating func encode<T: Encodable>(_ value: T) throws { try encoder.encodeValue(value) }
    mutating func encode(_ value: Bool) throws { encoder.byte(value ? 1 : 0) }
    mutating func encode(_ value: String) throws { encoder.string(value) }
    mutating func encode(_ value: Double) throws { encoder.fixed64(value.bitPattern) }
    mutating func encode(_ value: Float) throws { encoder.fixed32(value.bitPattern) }
    mutating func encode(_ value: Int) throws { encoder.zigzag(Int64(value)) }
    mutating func encode(_ value: Int8) throws { encoder.byte(UInt8(bitPattern: value)) }
    mutating func encode(_ value: Int16) throws { encoder.zigzag(Int64(value)) }
    mutating func encode(_ value: Int32) throws { encoder.zigzag(Int64(value)) }
    mutating func encode(_ value: Int64) throws { encoder.zigzag(value) }
    mutating func encode(_ value: UInt) throws { encoder.varint(UInt64(value)) }
    mutating func encode(_ value: UInt8) throws { encoder.byte(value) }
    mutating func encode(_ value: UInt16) throws { encoder.varint(UInt64(value)) }
    mutating func encode(_ value: UInt32) throws { encoder.varint(UInt64(value)) }
    mutating func encode(_ value: UInt64) throws { encoder.varint(value) }
}
