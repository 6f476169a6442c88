#if canImport(Glibc)
import Glibc
#endif

/// A compact binary encoding for any `Codable` value, with no Foundation.
///
/// Used for Queue and Pipe messages and for the arguments of spawned children. The format is not
/// self-describing for scalars (the decoder knows the types); containers carry lengths so a decoder
/// can look keys up out of order and skip what it does not read:
///
/// - `Bool`, `Int8`, `UInt8`: one byte. Other integers: LEB128 varints (signed ones zig-zag encoded).
///   `Float` / `Double`: their IEEE bit patterns, little endian, 4 / 8 bytes.
/// - `String`: varint byte count + UTF-8. `[UInt8]`: varint count + the bytes.
/// - `Optional` (as a value of a container or at top level): one byte 0 (nil) or 1 followed by the value.
/// - keyed container: varint byte length, then entries `[varint key length][key UTF-8][varint value
///   length][value]`; `encodeNil(forKey:)` is an entry whose value is empty.
/// - unkeyed container: varint byte length, varint element count, then the elements.
///
/// Limits (documented in docs/runtime-primitives.md): two containers of one value must not be written
/// interleaved (write one, then the other); `encodeNil()` / `decodeNil()` outside keyed containers are
/// only reliable through `Optional` values; `codingPath` is not tracked (always empty).
public enum BinaryCodec {
    /// The encoded bytes of `value`.
    public static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        try withEncoded(value) { [UInt8]($0) }
    }

    /// Encodes `value` and lends its bytes to `body` without copying them into an array (the bytes
    /// are valid only inside `body`).
    public static func withEncoded<T: Encodable, R>(_ value: T, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let encoder = _CodecCache.encoder()
        defer { _CodecCache.release(encoder) }
        try encoder.encodeValue(value)
        return try body(UnsafeRawBufferPointer(start: encoder.base, count: encoder.count))
    }

    /// Decodes a `T` from `bytes` (all of them must be used).
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try bytes.withUnsafeBytes { try decode(type, fromRaw: $0) }
    }

    /// Decodes a `T` from raw memory (all of it must be used).
    public static func decode<T: Decodable>(_ type: T.Type, fromRaw raw: UnsafeRawBufferPointer) throws -> T {
        let decoder = _CodecCache.decoder(raw)
        defer { _CodecCache.release(decoder) }
        let value = try decoder.decodeValue(type)
        guard decoder.pos == raw.count else {
            throw DecodingError.dataCorrupted(.init(
                codingPath: [], debugDescription: "BinaryCodec: \(raw.count - decoder.pos) trailing bytes after a \(T.self)"))
        }
        return value
    }
}

// MARK: - Per-thread cached coders (no allocation per message)

final class _CodecCacheSlot {
    var encoder = _BinaryEncoder()
    var decoder = _BinaryDecoder(base: nil, start: 0, end: 0)
}

enum _CodecCache {
    static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { pointer in
            if let pointer { Unmanaged<_CodecCacheSlot>.fromOpaque(pointer).release() }
        }
        return key
    }()

    @inline(__always) static func slot() -> _CodecCacheSlot {
        if let p = pthread_getspecific(key) {
            return Unmanaged<_CodecCacheSlot>.fromOpaque(p).takeUnretainedValue()
        }
        let slot = _CodecCacheSlot()
        pthread_setspecific(key, Unmanaged.passRetained(slot).toOpaque())
        return slot
    }

    @inline(__always) static func encoder() -> _BinaryEncoder {
        let e = slot().encoder
        if e.inUse { return _BinaryEncoder() }  // re-entrant use: a fresh one
        e.inUse = true
        e.reset()
        return e
    }

    @inline(__always) static func release(_ e: _BinaryEncoder) {
        e.inUse = false
        if e.capacity > 1 << 20 { // do not keep a huge buffer around
            free(e.base); e.capacity = 128; e.base = malloc(128)!; e.count = 0
        }
    }

    @inline(__always) static func decoder(_ raw: UnsafeRawBufferPointer) -> _BinaryDecoder {
        let d = slot().decoder
        if d.inUse { return _BinaryDecoder(base: raw.baseAddress, start: 0, end: raw.count) }
        d.inUse = true
        d.base = raw.baseAddress
        d.pos = 0
        d.end = raw.count
        d.hint = -1
        return d
    }

    @inline(__always) static func release(_ d: _BinaryDecoder) {
        d.inUse = false
        d.base = nil
    }
}

// MARK: - Optional hooks

/// Metadata kind of `Optional` in the Swift ABI (MetadataKind::Optional = 2 | IsNonHeap).
@inline(__always)
func _isOptionalType<T>(_ type: T.Type) -> Bool {
    let metadata = unsafeBitCast(type as Any.Type, to: UnsafeRawPointer.self)
    return metadata.load(as: UInt.self) == 0x202
}

protocol _TangleOptionalEncodable {
    func _tangleEncode(_ encoder: _BinaryEncoder) throws
}

protocol _TangleOptionalDecodable {
    static func _tangleDecode(_ decoder: _BinaryDecoder) throws -> Self
}

extension Optional: _TangleOptionalEncodable where Wrapped: Encodable {
    func _tangleEncode(_ encoder: _BinaryEncoder) throws {
        switch self {
        case .none: encoder.byte(0)
        case .some(let wrapped):
            encoder.byte(1)
            try encoder.encodeValue(wrapped)
        }
    }
}

extension Optional: _TangleOptionalDecodable where Wrapped: Decodable {
    static func _tangleDecode(_ decoder: _BinaryDecoder) throws -> Self {
        let flag = try decoder.readByte()
        if flag == 0 { return .none }
        guard flag == 1 else { throw decoder.corrupt("bad Optional marker \(flag)") }
        return .some(try decoder.decodeValue(Wrapped.self))
    }
}

@inline(__always)
private func _reinterpret<T, U>(_ value: T, as: U.Type) -> U {
    withUnsafePointer(to: value) { UnsafeRawPointer($0).load(as: U.self) }
}

// MARK: - Encoder

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

// MARK: - Decoder

final class _BinaryDecoder: Decoder {
    @exclusivity(unchecked) var base: UnsafeRawPointer?
    @exclusivity(unchecked) var pos: Int
    @exclusivity(unchecked) var end: Int
    /// Where the last keyed lookup ended: the next key is usually the entry there.
    @exclusivity(unchecked) var hint: Int = -1
    var inUse = false
    /// A super decoder handed out to user code: its containers keep it alive.
    var isSub = false

    init(base: UnsafeRawPointer?, start: Int, end: Int) {
        self.base = base
        self.pos = start
        self.end = end
    }

    var codingPath: [CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func corrupt(_ what: String) -> DecodingError {
        DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "BinaryCodec: \(what) (offset \(pos))"))
    }

    @inline(__always) func readByte() throws -> UInt8 {
        guard pos < end, let base else { throw corrupt("unexpected end of data") }
        let b = base.load(fromByteOffset: pos, as: UInt8.self)
        pos += 1
        return b
    }

    @inline(__always) func readVarint() throws -> UInt64 {
        guard let base else { throw corrupt("unexpected end of data") }
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard pos < end else { throw corrupt("unexpected end of data in a varint") }
            let b = base.load(fromByteOffset: pos, as: UInt8.self)
            pos += 1
            result |= UInt64(b & 0x7f) << shift
            if b < 0x80 { return result }
            shift += 7
            guard shift < 64 else { throw corrupt("varint too long") }
        }
    }

    @inline(__always) func readZigzag() throws -> Int64 {
        let v = try readVarint()
        return Int64(bitPattern: (v >> 1) ^ (0 &- (v & 1)))
    }

    @inline(__always) func readLength() throws -> Int {
        let v = try readVarint()
        guard v <= UInt64(end - pos) else { throw corrupt("length \(v) beyond the end of data") }
        return Int(v)
    }

    func readFixed64() throws -> UInt64 {
        guard end - pos >= 8, let base else { throw corrupt("unexpected end of data") }
        let v = base.loadUnaligned(fromByteOffset: pos, as: UInt64.self)
        pos += 8
        return UInt64(littleEndian: v)
    }

    func readFixed32() throws -> UInt32 {
        guard end - pos >= 4, let base else { throw corrupt("unexpected end of data") }
        let v = base.loadUnaligned(fromByteOffset: pos, as: UInt32.self)
        pos += 4
        return UInt32(littleEndian: v)
    }

    func readString() throws -> String {
        let n = try readLength()
        let start = base.map { $0 + pos }
        pos += n
        return String(decoding: UnsafeRawBufferPointer(start: start, count: n), as: UTF8.self)
    }

    func readInt<I: FixedWidthInteger & SignedInteger>(_ type: I.Type) throws -> I {
        let v = try readZigzag()
        guard let r = I(exactly: v) else { throw corrupt("\(v) does not fit in \(I.self)") }
        return r
    }

    func readUInt<I: FixedWidthInteger & UnsignedInteger>(_ type: I.Type) throws -> I {
        let v = try readVarint()
        guard let r = I(exactly: v) else { throw corrupt("\(v) does not fit in \(I.self)") }
        return r
    }

    func readBool() throws -> Bool {
        let b = try readByte()
        guard b <= 1 else { throw corrupt("bad Bool \(b)") }
        return b == 1
    }

    func decodeValue<T: Decodable>(_ type: T.Type) throws -> T {
        if T.self == Int.self { return _reinterpret(Int(try readZigzag()), as: T.self) }
        if T.self == String.self { return _reinterpret(try readString(), as: T.self) }
        if T.self == Double.self { return _reinterpret(Double(bitPattern: try readFixed64()), as: T.self) }
        if T.self == Bool.self { return _reinterpret(try readBool(), as: T.self) }
        if T.self == UInt64.self { return _reinterpret(try readVarint(), as: T.self) }
        if T.self == UInt.self { return _reinterpret(try readUInt(UInt.self), as: T.self) }
        if T.self == Int64.self { return _reinterpret(try readZigzag(), as: T.self) }
        if T.self == Int32.self { return _reinterpret(try readInt(Int32.self), as: T.self) }
        if T.self == UInt32.self { return _reinterpret(try readUInt(UInt32.self), as: T.self) }
        if T.self == UInt8.self { return _reinterpret(try readByte(), as: T.self) }
        if T.self == Int8.self { return _reinterpret(Int8(bitPattern: try readByte()), as: T.self) }
        if T.self == Int16.self { return _reinterpret(try readInt(Int16.self), as: T.self) }
        if T.self == UInt16.self { return _reinterpret(try readUInt(UInt16.self), as: T.self) }
        if T.self == Float.self { return _reinterpret(Float(bitPattern: try readFixed32()), as: T.self) }
        if T.self == [UInt8].self {
            let n = try readLength()
            let bytes = [UInt8](UnsafeRawBufferPointer(start: base.map { $0 + pos }, count: n))
            pos += n
            return _reinterpret(bytes, as: T.self)
        }
        if _isOptionalType(T.self), let optional = T.self as? _TangleOptionalDecodable.Type {
            return try optional._tangleDecode(self) as! T
        }
        return try T(from: self)
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        let n = try readLength()
        let start = pos
        pos += n
        return KeyedDecodingContainer(_KeyedDecoding<Key>(decoder: self, start: start, end: start + n))
    }

    func unkeyedContainer() throws -> UnkeyedDecodingContainer {
        let n = try readLength()
        let start = pos
        let limit = start + n
        let savedEnd = end
        end = limit
        let count = try readLength() // elements are at least a byte... except empty values; bound loosely
        let first = pos
        end = savedEnd
        pos = limit
        return _UnkeyedDecoding(decoder: self, pos: first, end: limit, count: count)
    }

    func singleValueContainer() throws -> SingleValueDecodingContainer {
        _SingleDecoding(decoder: self)
    }
}

struct _KeyedDecoding<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let decoder: _BinaryDecoder
    let start: Int
    let end: Int
    var codingPath: [CodingKey] { [] }

    init(decoder: _BinaryDecoder, start: Int, end: Int) {
        self.decoder = decoder
        self.start = start
        self.end = end
    }

    /// Parses the entry at `p` and compares its key with `key`; returns the value range, or the
    /// negated end of the entry when the key differs.
    @inline(__always) private func entry(at p: Int, _ key: UnsafeRawBufferPointer) throws -> (match: Bool, valueStart: Int, valueEnd: Int) {
        guard let base = decoder.base else { throw decoder.corrupt("unexpected end of data") }
        var q = p
        let kn = try _readLength(base, &q, end)
        let ks = q
        q += kn
        let vn = try _readLength(base, &q, end)
        let match = kn == key.count && (kn == 0 || memcmp(key.baseAddress!, base + ks, kn) == 0)
        return (match, q, q + vn)
    }

    /// The value range of `key`, looking at the entry after the last one read first (values are
    /// usually read in the order they were written).
    private func find(_ key: Key) throws -> (Int, Int)? { try find(named: key.stringValue) }

    private func find(named keyName: String) throws -> (Int, Int)? {
        var name = keyName
        return try name.withUTF8 { utf8 -> (Int, Int)? in
            let raw = UnsafeRawBufferPointer(utf8)
            let hint = decoder.hint
            if hint >= start && hint < end {
                let e = try entry(at: hint, raw)
                if e.match {
                    decoder.hint = e.valueEnd
                    return (e.valueStart, e.valueEnd)
                }
            }
            var p = start
            while p < end {
                let e = try entry(at: p, raw)
                if e.match {
                    decoder.hint = e.valueEnd
                    return (e.valueStart, e.valueEnd)
                }
                p = e.valueEnd
            }
            return nil
        }
    }

    var allKeys: [Key] {
        var keys: [Key] = []
        guard let base = decoder.base else { return keys }
        var p = start
        while p < end {
            var q = p
            guard let kn = try? _readLength(base, &q, end) else { break }
            let name = String(decoding: UnsafeRawBufferPointer(start: base + q, count: kn), as: UTF8.self)
            q += kn
            guard let vn = try? _readLength(base, &q, end) else { break }
            if let key = Key(stringValue: name) { keys.append(key) }
            p = q + vn
        }
        return keys
    }

    func contains(_ key: Key) -> Bool {
        let saved = decoder.hint
        defer { decoder.hint = saved }
        return ((try? find(key)) ?? nil) != nil
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        let saved = decoder.hint
        guard let (s, e) = try find(key) else { throw notFound(key) }
        if s == e { return true }
        decoder.hint = saved
        return false
    }

    private func notFound(_ key: Key) -> DecodingError {
        DecodingError.keyNotFound(key, .init(codingPath: [], debugDescription: "BinaryCodec: no value for key \"\(key.stringValue)\""))
    }

    @inline(__always) private func decodeAt<T: Decodable>(_ type: T.Type, _ s: Int, _ e: Int, _ key: Key) throws -> T {
        let d = decoder
        let savedEnd = d.end
        d.pos = s
        d.end = e
        defer { d.end = savedEnd; d.pos = end; d.hint = e }
        let value = try d.decodeValue(type)
        guard d.pos == e else { throw d.corrupt("value of key \"\(key.stringValue)\" has \(e - d.pos) unread bytes") }
        return value
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        guard let (s, e) = try find(key) else { throw notFound(key) }
        return try decodeAt(type, s, e, key)
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard let (s, e) = try find(key), s != e else { return nil }
        return try decodeAt(type, s, e, key)
    }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try decode(type as Bool.Type, key) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try decodeG(type, key) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try decodeG(type, key) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try decodeG(type, key) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int {
        guard let (s, e) = try find(key), let base = decoder.base else { throw notFound(key) }
        var p = s
        let v = try _readVarint(base, &p, e)
        guard p == e else { throw decoder.corrupt("value of key \"\(key.stringValue)\" is not an Int") }
        return Int(truncatingIfNeeded: Int64(bitPattern: (v >> 1) ^ (0 &- (v & 1))))
    }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try decodeG(type, key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try decodeG(type, key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try decodeG(type, key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try decodeG(type, key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try decodeG(type, key) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try decodeG(type, key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try decodeG(type, key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try decodeG(type, key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try decodeG(type, key) }

    private func decode(_ type: Bool.Type, _ key: Key) throws -> Bool { try decodeG(type, key) }
    @inline(__always) private func decodeG<T: Decodable>(_ type: T.Type, _ key: Key) throws -> T {
        guard let (s, e) = try find(key) else { throw notFound(key) }
        return try decodeAt(type, s, e, key)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        guard let (s, e) = try find(key) else { throw notFound(key) }
        let d = decoder
        let savedPos = d.pos, savedEnd = d.end
        d.pos = s
        d.end = e
        defer { d.pos = savedPos; d.end = savedEnd }
        return try d.container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> UnkeyedDecodingContainer {
        guard let (s, e) = try find(key) else { throw notFound(key) }
        let d = decoder
        let savedPos = d.pos, savedEnd = d.end
        d.pos = s
        d.end = e
        defer { d.pos = savedPos; d.end = savedEnd }
        return try d.unkeyedContainer()
    }

    func superDecoder() throws -> Decoder {
        guard let (s, e) = try find(named: "super") else {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "BinaryCodec: no super value"))
        }
        let sub = _BinaryDecoder(base: decoder.base, start: s, end: e)
        sub.isSub = true
        return sub
    }

    func superDecoder(forKey key: Key) throws -> Decoder {
        guard let (s, e) = try find(key) else { throw notFound(key) }
        let sub = _BinaryDecoder(base: decoder.base, start: s, end: e)
        sub.isSub = true
        return sub
    }
}

@inline(__always)
func _readVarint(_ base: UnsafeRawPointer, _ pos: inout Int, _ end: Int) throws -> UInt64 {
    var result: UInt64 = 0
    var shift: UInt64 = 0
    var p = pos
    while true {
        guard p < end else { throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "BinaryCodec: unexpected end of data in a varint (offset \(p))")) }
        let b = base.load(fromByteOffset: p, as: UInt8.self)
        p += 1
        result |= UInt64(b & 0x7f) << shift
        if b < 0x80 { pos = p; return result }
        shift += 7
        guard shift < 64 else { throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "BinaryCodec: varint too long (offset \(p))")) }
    }
}

@inline(__always)
func _readLength(_ base: UnsafeRawPointer, _ pos: inout Int, _ end: Int) throws -> Int {
    let v = try _readVarint(base, &pos, end)
    guard v <= UInt64(end - pos) else {
        throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "BinaryCodec: length \(v) beyond the end of data (offset \(pos))"))
    }
    return Int(v)
}

struct _UnkeyedDecoding: UnkeyedDecodingContainer {
    let decoder: _BinaryDecoder
    var pos: Int
    let end: Int
    let elementCount: Int
    var currentIndex = 0

    init(decoder: _BinaryDecoder, pos: Int, end: Int, count: Int) {
        self.decoder = decoder
        self.pos = pos
        self.end = end
        self.elementCount = count
    }

    var codingPath: [CodingKey] { [] }
    var count: Int? { elementCount }
    var isAtEnd: Bool { currentIndex >= elementCount }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, pos < end, let base = decoder.base else { return false }
        if base.load(fromByteOffset: pos, as: UInt8.self) == 0 {
            pos += 1
            currentIndex += 1
            return true
        }
        return false
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(T.self, .init(codingPath: [], debugDescription: "BinaryCodec: unkeyed container is at its end (\(elementCount) elements)"))
        }
        let d = decoder
        let savedPos = d.pos, savedEnd = d.end
        d.pos = pos
        d.end = end
        defer { d.pos = savedPos; d.end = savedEnd }
        let value = try d.decodeValue(type)
        pos = d.pos
        currentIndex += 1
        return value
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try decodeG(type) }
    mutating func decode(_ type: String.Type) throws -> String { try decodeG(type) }
    mutating func decode(_ type: Double.Type) throws -> Double { try decodeG(type) }
    mutating func decode(_ type: Float.Type) throws -> Float { try decodeG(type) }
    mutating func decode(_ type: Int.Type) throws -> Int { try decodeG(type) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try decodeG(type) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try decodeG(type) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try decodeG(type) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try decodeG(type) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try decodeG(type) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try decodeG(type) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try decodeG(type) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try decodeG(type) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try decodeG(type) }
    @inline(__always) private mutating func decodeG<T: Decodable>(_ type: T.Type) throws -> T { try decode(type) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let d = decoder
        let savedPos = d.pos, savedEnd = d.end
        d.pos = pos
        d.end = end
        defer { d.pos = savedPos; d.end = savedEnd }
        let c = try d.container(keyedBy: type)
        pos = d.pos
        currentIndex += 1
        return c
    }

    mutating func nestedUnkeyedContainer() throws -> UnkeyedDecodingContainer {
        let d = decoder
        let savedPos = d.pos, savedEnd = d.end
        d.pos = pos
        d.end = end
        defer { d.pos = savedPos; d.end = savedEnd }
        let c = try d.unkeyedContainer()
        pos = d.pos
        currentIndex += 1
        return c
    }

    mutating func superDecoder() throws -> Decoder {
        currentIndex += 1
        let sub = _BinaryDecoder(base: decoder.base, start: pos, end: end)
        sub.isSub = true
        return sub
    }
}

struct _SingleDecoding: SingleValueDecodingContainer {
    let decoder: _BinaryDecoder
    var codingPath: [CodingKey] { [] }

    func decodeNil() -> Bool {
        let d = decoder
        guard d.pos < d.end, let base = d.base else { return false }
        if base.load(fromByteOffset: d.pos, as: UInt8.self) == 0 {
            d.pos += 1
            return true
        }
        return false
    }

    func decode<T: Decodable>(_ type: T.Type) throws -> T { try decoder.decodeValue(type) }
    func decode(_ type: Bool.Type) throws -> Bool { try decoder.readBool() }
    func decode(_ type: String.Type) throws -> String { try decoder.readString() }
    func decode(_ type: Double.Type) throws -> Double { Double(bitPattern: try decoder.readFixed64()) }
    func decode(_ type: Float.Type) throws -> Float { Float(bitPattern: try decoder.readFixed32()) }
    func decode(_ type: Int.Type) throws -> Int { Int(try decoder.readZigzag()) }
    func decode(_ type: Int8.Type) throws -> Int8 { Int8(bitPattern: try decoder.readByte()) }
    func decode(_ type: Int16.Type) throws -> Int16 { try decoder.readInt(Int16.self) }
    func decode(_ type: Int32.Type) throws -> Int32 { try decoder.readInt(Int32.self) }
    func decode(_ type: Int64.Type) throws -> Int64 { try decoder.readZigzag() }
    func decode(_ type: UInt.Type) throws -> UInt { try decoder.readUInt(UInt.self) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try decoder.readByte() }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try decoder.readUInt(UInt16.self) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try decoder.readUInt(UInt32.self) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try decoder.readVarint() }
}
