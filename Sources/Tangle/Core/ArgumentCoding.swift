/// The one place the processes side of the runtime encodes values that cross a process boundary
/// (entry-point arguments, pool tasks and results): the primitives' `BinaryCodec` (Sources/Tangle/Codec).
enum ArgumentCoding {
    @inline(__always)
    static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        try BinaryCodec.encode(value)
    }

    @inline(__always)
    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try BinaryCodec.decode(type, from: bytes)
    }

    @inline(__always)
    static func decode<T: Decodable>(_ type: T.Type, fromRaw raw: UnsafeRawBufferPointer) throws -> T {
        try BinaryCodec.decode(type, fromRaw: raw)
    }
}
