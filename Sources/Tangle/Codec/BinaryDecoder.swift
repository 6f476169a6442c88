#if canImport(Glibc)
import Glibc
#endif

/// The decoding half of `BinaryCodec`: the compact binary form back to `Decodable` values.
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
