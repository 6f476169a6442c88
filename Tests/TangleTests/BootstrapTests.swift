import CTangleSupport
import Glibc
import XCTest
@testable import Tangle
import TangleTestSupport

final class BootstrapTests: XCTestCase {
    override class func setUp() {
        super.setUp()
        registerTangleTestsEntryPoints()
    }

    /// An entry point that was never registered is refused by the parent at start, with the
    /// registered names in the message.
    func testUnregisteredEntryPointFailsInParent() {
        let child = ChildProcess(entryPoint: "procs.no-such-entry")
        XCTAssertThrowsError(try child.start()) { error in
            guard case let .unregisteredEntryPoint(name, registered)? = error as? ProcessError else {
                return XCTFail("\(error)")
            }
            XCTAssertEqual(name, "procs.no-such-entry")
            XCTAssertTrue(registered.contains("procs.exit-with"))
            XCTAssertTrue("\(error)".contains("not registered"))
        }
        XCTAssertFalse(child.isAlive)
    }

    /// A child told to run an unknown entry point prints a clear message (listing the entry points
    /// the registrations it was passed made) and exits with 64.
    func testUnregisteredEntryPointFailsInChild() throws {
        let dir = makeTempDir("tangle-boot")
        defer { removeTree(dir) }
        let exe = String(decoding: (readlinkBytes("/proc/self/exe")), as: UTF8.self)
        var env = Env.all().filter { !$0.hasPrefix("TANGLE_") }
        env += ["TANGLE_CHILD=procs.no-such-entry", "TANGLE_CHILD_EARLY=1", "TANGLE_CHILD_NAME=Process-x",
                "\(ChildEnvironment.testEntryPoints)=\(try XCTUnwrap(TestEntryPoints.environmentValue))"]
        let pid = try Spawner.spawn(
            path: "/bin/sh", argv: ["sh", "-c", "exec \"$0\" 2>\"$1\"", exe, dir + "/err"], environment: env, keep: [])
        var status: Int32 = 0
        XCTAssertEqual(waitpid(pid, &status, 0), pid)
        XCTAssertEqual(tangle_wexitstatus_swift(status), TangleRuntime.exitStatusUnregisteredEntryPoint)
        let err = FD.readFile(dir + "/err") ?? ""
        XCTAssertTrue(err.contains("entry point 'procs.no-such-entry' is not registered"), err)
        XCTAssertTrue(err.contains("procs.exit-with"), err)
    }

    /// Arguments of another type than the entry point's (the string form): refused by the
    /// parent at start, naming both types — no child is started.
    func testWrongArgumentTypeFailsInParent() throws {
        let child = ChildProcess(entryPoint: "procs.exit-with", arguments: "not an Int32")
        XCTAssertThrowsError(try child.start()) { error in
            guard case let .argumentTypeMismatch(_, entry, expected, given)? = error as? ProcessError else { return XCTFail("\(error)") }
            XCTAssertEqual(entry, "procs.exit-with")
            XCTAssertEqual(expected, "Int32")
            XCTAssertEqual(given, "String")
            XCTAssertTrue("\(error)".contains("takes Int32, but it was given String"), "\(error)")
        }
        XCTAssertFalse(child.isAlive)
    }

    /// The test hook registered this target's entry points in the parent too.
    /// A registration is found by its place in its module (the main program here, the test
    /// binary): the place gives the same function back, and passing it again does not run it again.
    func testTestEntryPointRegistrationsByPlace() throws {
        let f: @convention(c) () -> Void = tangleTestsEntryPoints
        let address = unsafeBitCast(f, to: UnsafeRawPointer.self)
        var name = [CChar](repeating: 0, count: 4096)
        var offset: UInt = 0
        XCTAssertEqual(tangle_code_location(address, &name, name.count, &offset), 0)
        XCTAssertEqual(name[0], 0, "the test binary is the main program (dl_iterate_phdr names it \"\")")
        XCTAssertEqual(tangle_code_address(name, offset), UnsafeMutableRawPointer(mutating: address))
        XCTAssertNil(tangle_code_address(name, 1 << 40), "an offset outside its code is refused")
        XCTAssertNil(tangle_code_address("/no/such/module.so", offset))
        let before = TestEntryPoints.environmentValue
        registerTangleTestsEntryPoints()
        XCTAssertEqual(TestEntryPoints.environmentValue, before, "registered once")
        XCTAssertEqual(before, String(offset, radix: 16) + ":")
    }

    func testRegistry() {
        EntryPoint.runTestHooksOnce()
        XCTAssertTrue(EntryPoint.isRegistered("procs.echo"))
        XCTAssertFalse(EntryPoint.isRegistered("procs.no-such-entry"))
    }
}

func readlinkBytes(_ path: String) -> [UInt8] {
    var buf = [UInt8](repeating: 0, count: 4096)
    let n = buf.withUnsafeMutableBufferPointer { p in
        p.baseAddress!.withMemoryRebound(to: CChar.self, capacity: 4096) { readlink(path, $0, 4096) }
    }
    return n > 0 ? Array(buf[0..<n]) : []
}

func tangle_wexitstatus_swift(_ status: Int32) -> Int32 { (status >> 8) & 0xff }
