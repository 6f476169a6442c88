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
func _reinterpret<T, U>(_ value: T, as: U.Type) -> U {
    withUnsafePointer(to: value) { UnsafeRawPointer($0).load(as: U.self) }
}
