import Glibc
import XCTest
@testable import Tangle

final class ManagerTests: XCTestCase {
    override class func setUp() {
        super.setUp()
        registerTangleTestsEntryPoints()
    }

    // Checks: a SharedDictionary and a SharedList updated concurrently by two spawned children and
    // the parent lose no update; the list grows past its first region (remapping in every process).
    func testConcurrentUpdatesAcrossProcesses() throws {
        let dict = SharedDictionary<String, Int>(["n": 0])
        let list = SharedList<Int>()
        let a = try startChild("prim.manager", ManagerArgs(dict: dict, list: list, times: 300, tag: 1))
        let b = try startChild("prim.manager", ManagerArgs(dict: dict, list: list, times: 300, tag: 2))
        for i in 0..<300 {
            try dict.update("n", default: 0) { $0 += 1 }
            try list.append(i)
        }
        assertExitsCleanly(a)
        assertExitsCleanly(b)
        XCTAssertEqual(try dict.get("n"), 900)
        XCTAssertEqual(list.count, 900)
        let all = try list.snapshot()
        XCTAssertEqual(Set(all).count, 900)
        XCTAssertEqual(all.filter { $0 >= 2000 }.sorted(), Array(2000..<2300))   // child 2's order kept
    }

    // Checks: basic dictionary / list operations, and growth far beyond the initial 4 KB.
    func testOperationsAndGrowth() throws {
        let d = SharedDictionary<Int, String>()
        try d.set(1, "one")
        d[2] = "two"
        XCTAssertEqual(d[1], "one")
        XCTAssertEqual(try d.removeValue(forKey: 1), "one")
        XCTAssertEqual(try d.keys(), [2])
        try d.update { for i in 0..<5000 { $0[i] = String(repeating: "x", count: 20) } }
        XCTAssertEqual(d.count, 5000)
        // a second handle (decoded in this process) sees the grown contents
        let copy = try BinaryCodec.decode(SharedDictionary<Int, String>.self, from: BinaryCodec.encode(d))
        XCTAssertEqual(copy.count, 5000)
        try copy.set(-1, "new")
        XCTAssertEqual(d[-1], "new")

        let l = SharedList<String>(["a"])
        try l.append(contentsOf: ["b", "c"])
        l[0] = "z"
        XCTAssertEqual(try l.remove(at: 1), "b")
        XCTAssertEqual(try l.snapshot(), ["z", "c"])
        XCTAssertThrowsError(try l.get(5)) { XCTAssertEqual($0 as? SharedListError, .indexOutOfRange(index: 5, count: 2)) }
        XCTAssertThrowsError(try l.remove(at: -1))
        XCTAssertEqual(l.count, 2)
    }
}
