import Glibc
import XCTest
@testable import Tangle

final class SharedMemoryTests: XCTestCase {
    override class func setUp() {
        super.setUp()
        registerTangleTestsEntryPoints()
    }

    // Checks: a named segment created here is written by a spawned child through its typed view
    // (the handle travels by name), then unlinked; attaching after unlink fails clearly.
    func testCreateAttachUnlink() throws {
        let shm = try SharedMemory(create: 4096)
        let child = try startChild("prim.shm.write", ShmArgs(shm: shm))
        assertExitsCleanly(child)
        let view = shm.buffer(of: UInt32.self)
        XCTAssertEqual(view.count, 1024)
        XCTAssertEqual(view[1023], 3069)
        let other = try SharedMemory(attach: shm.name)
        XCTAssertEqual(other.size, 4096)
        XCTAssertEqual(other.buffer(of: UInt32.self)[10], 30)
        other.close()
        XCTAssertTrue(other.isClosed)
        try shm.unlink()
        XCTAssertThrowsError(try SharedMemory(attach: shm.name)) { XCTAssertEqual($0 as? SharedMemory.Error, .notFound(name: shm.name)) }
        XCTAssertThrowsError(try SharedMemory(create: 0)) { XCTAssertTrue($0 is SharedMemory.Error) }
        shm.close()
    }

    // Checks: creating a name that exists is a clear error.
    func testExists() throws {
        let shm = try SharedMemory(create: 64, name: "tangle-test-exists-\(getpid())")
        defer { try? shm.unlink() }
        XCTAssertThrowsError(try SharedMemory(create: 64, name: shm.name)) { XCTAssertEqual($0 as? SharedMemory.Error, .exists(name: shm.name)) }
    }
}
