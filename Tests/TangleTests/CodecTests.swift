import XCTest
@testable import Tangle

/// BinaryCodec: round trips of every shape Codable produces, compactness, and clear errors.
final class CodecTests: XCTestCase {
    override class func setUp() {
        super.setUp()
        registerTangleTestsEntryPoints()
    }

    struct Small: Codable, Equatable { var id: Int; var value: Int }

    struct Everything: Codable, Equatable {
        var i: Int = -5, i8: Int8 = -8, i16: Int16 = -1600, i32: Int32 = Int32.min, i64: Int64 = Int64.max
        var u: UInt = UInt.max, u8: UInt8 = 255, u16: UInt16 = 65535, u32: UInt32 = 7, u64: UInt64 = UInt64.max
        var f: Float = 1.5, d: Double = -0.25, b: Bool = true, s: String = "héllo, wörld — a longer string than fifteen"
        var opt: Int? = nil, opt2: String? = "x", optArr: [Int?] = [1, nil, 3]
        var arr: [Small] = [Small(id: 1, value: 2), Small(id: 3, value: 4)]
        var dict: [String: [Int]] = ["a": [1], "b": [], "c": [1, 2, 3]]
        var intDict: [Int: String] = [1: "one", -2: "minus two"]
        var nested: [[String]] = [["a"], [], ["b", "c"]]
        var bytes: [UInt8] = [0, 1, 2, 255]
        var e: Shape = .circle(radius: 2.5)
        var e2: Shape = .square
        var raw: Color = .green
        var nestedOpt: Small?? = .some(nil)
    }

    enum Shape: Codable, Equatable { case circle(radius: Double), rect(w: Int, h: Int), square }
    enum Color: String, Codable { case red, green }

    // Checks: every field type survives encode → decode unchanged.
    func testRoundTripEverything() throws {
        let value = Everything()
        let bytes = try BinaryCodec.encode(value)
        XCTAssertEqual(try BinaryCodec.decode(Everything.self, from: bytes), value)
        var other = Everything()
        other.opt = 42; other.opt2 = nil; other.e = .rect(w: -1, h: 2); other.nestedOpt = nil
        XCTAssertEqual(try BinaryCodec.decode(Everything.self, from: BinaryCodec.encode(other)), other)
    }

    // Checks: top-level scalars, optionals and collections round-trip, and small values stay small.
    func testTopLevelValuesAndSize() throws {
        XCTAssertEqual(try BinaryCodec.encode(5), [10])
        XCTAssertEqual(try BinaryCodec.decode(Int.self, from: BinaryCodec.encode(-123456789)), -123456789)
        XCTAssertEqual(try BinaryCodec.decode(Int?.self, from: BinaryCodec.encode(Int?.none)), nil)
        XCTAssertEqual(try BinaryCodec.decode(String.self, from: BinaryCodec.encode("")), "")
        XCTAssertEqual(try BinaryCodec.decode([Int].self, from: BinaryCodec.encode(Array(0..<1000))), Array(0..<1000))
        let small = try BinaryCodec.encode(Small(id: 1, value: 2))
        XCTAssertLessThanOrEqual(small.count, 16)
        XCTAssertEqual(try BinaryCodec.decode(Small.self, from: small), Small(id: 1, value: 2))
    }

    // Checks: large containers (lengths needing multi-byte varints, patched after the fact) decode.
    func testLargeNestedContainers() throws {
        let big = (0..<300).map { i in ["k\(i)": String(repeating: "x", count: i)] }
        XCTAssertEqual(try BinaryCodec.decode([[String: String]].self, from: BinaryCodec.encode(big)), big)
    }

    struct Reordered: Codable, Equatable {
        var a: Int, b: String
        enum CodingKeys: String, CodingKey { case a, b, c }
        init(a: Int, b: String) { self.a = a; self.b = b }
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(a, forKey: .a)
            try c.encode(b, forKey: .b)
        }
        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            b = try c.decode(String.self, forKey: .b)   // out of order
            a = try c.decode(Int.self, forKey: .a)
            XCTAssertFalse(c.contains(.c))
            XCTAssertNil(try c.decodeIfPresent(Int.self, forKey: .c))
        }
    }

    // Checks: keys read in a different order than written, and absent keys, work.
    func testOutOfOrderKeys() throws {
        let v = Reordered(a: 7, b: "seven")
        XCTAssertEqual(try BinaryCodec.decode(Reordered.self, from: BinaryCodec.encode(v)), v)
    }

    // Checks: truncated or mistyped input throws a DecodingError, never crashes.
    func testCorruptInputThrows() throws {
        let bytes = try BinaryCodec.encode(Everything())
        for cut in [0, 1, bytes.count / 2, bytes.count - 1] {
            XCTAssertThrowsError(try BinaryCodec.decode(Everything.self, from: Array(bytes[0..<cut])))
        }
        XCTAssertThrowsError(try BinaryCodec.decode(Int8.self, from: BinaryCodec.encode(Int.max))) // trailing bytes
        XCTAssertThrowsError(try BinaryCodec.decode(Int16.self, from: BinaryCodec.encode(Int.max)))
        XCTAssertThrowsError(try BinaryCodec.decode(Small.self, from: BinaryCodec.encode(["id": 1])))
    }

    class Base: Codable {
        var a: Int
        init(a: Int) { self.a = a }
    }

    final class Derived: Base {
        var b: String
        var tags: [String: Int]
        enum CodingKeys: String, CodingKey { case b, tags }
        init(a: Int, b: String, tags: [String: Int]) { self.b = b; self.tags = tags; super.init(a: a) }
        required init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            b = try c.decode(String.self, forKey: .b)
            var nested = try c.nestedUnkeyedContainer(forKey: .tags)
            var t: [String: Int] = [:]
            while !nested.isAtEnd { t[try nested.decode(String.self)] = try nested.decode(Int.self) }
            tags = t
            try super.init(from: c.superDecoder())
        }
        override func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(b, forKey: .b)
            var nested = c.nestedUnkeyedContainer(forKey: .tags)
            for (k, v) in tags.sorted(by: { $0.key < $1.key }) { try nested.encode(k); try nested.encode(v) }
            try super.encode(to: c.superEncoder())
        }
    }

    // Checks: class inheritance through superEncoder/superDecoder and nested unkeyed containers.
    func testSuperEncoderAndNestedContainers() throws {
        let v = Derived(a: 42, b: "derived", tags: ["x": 1, "y": 2])
        let back = try BinaryCodec.decode(Derived.self, from: BinaryCodec.encode(v))
        XCTAssertEqual(back.a, 42)
        XCTAssertEqual(back.b, "derived")
        XCTAssertEqual(back.tags, ["x": 1, "y": 2])
        // a super decoder whose container outlives the expression that made it
        let bytes = try BinaryCodec.encode(v)
        struct Peek: Decodable {
            var a: Int
            enum K: String, CodingKey { case a, `super` }
            init(from decoder: Decoder) throws {
                let inner = try decoder.container(keyedBy: K.self).superDecoder().container(keyedBy: K.self)
                a = try inner.decode(Int.self, forKey: .a)
            }
        }
        XCTAssertEqual(try BinaryCodec.decode(Peek.self, from: bytes).a, 42)
    }
}
