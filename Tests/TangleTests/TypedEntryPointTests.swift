import Glibc
import Synchronization
import XCTest
@testable import Tangle
import TangleTestSupport

let typedSum = EntryPointHandle<TypedSumArgs>("typed.sum")

/// Typed entry points: a child started through the handle runs with its arguments; the wrong
/// argument type does not compile (checked by type-checking a snippet against the built module);
/// a program without `bootstrap()` is told so in the parent.
final class TypedEntryPointTests: XCTestCase {
    override class func setUp() {
        super.setUp()
        registerTangleTestsEntryPoints()
    }

    func testTypedHandleStartsTheChild() throws {
        let child = ChildProcess(typedSum, arguments: TypedSumArgs(x: 2, y: 5))
        try child.start()
        XCTAssertEqual(child.join(timeout: .seconds(30)), .exited(7))
        let handle = EntryPoint.register("typed.local") { (_: Int) in }
        XCTAssertEqual(handle.name, "typed.local")
    }

    /// `ChildProcess(handle, arguments: "wrong")` is a compile error naming both types; the right
    /// type compiles.
    func testWrongArgumentTypeDoesNotCompile() throws {
        let products = try productBinary("tangle").split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        let root = #filePath.split(separator: "/", omittingEmptySubsequences: false).dropLast(3).joined(separator: "/")
        let dir = makeTempDir("tangle-typed")
        addTeardownBlock { removeTree(dir) }
        func typecheck(_ argument: String) throws -> (Int32, String) {
            let source = """
            import Tangle
            struct Args: Codable { var n: Int }
            let handle = EntryPoint.register("x") { (a: Args) in }
            let child = ChildProcess(handle, arguments: \(argument))
            """
            let path = dir + "/snippet.swift"
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            _ = FD.writeAll(fd, Array(source.utf8))
            close(fd)
            return runCommand("/usr/bin/env", [
                "swiftc", "-typecheck", path, "-I", products + "/Modules", "-I", root + "/Sources/CLZ4",
                "-Xcc", "-fmodule-map-file=" + products + "/CTangleSupport.build/module.modulemap",
            ])
        }
        let (bad, badOutput) = try typecheck("\"wrong\"")
        XCTAssertNotEqual(bad, 0, badOutput)
        XCTAssertTrue(badOutput.contains("cannot convert value of type 'String' to expected argument type 'Args'"), badOutput)
        let (good, goodOutput) = try typecheck("Args(n: 1)")
        XCTAssertEqual(good, 0, goodOutput)
    }

    /// A program that never called bootstrap() (and is no test binary) cannot route a spawned
    /// child: start() says so in the parent instead of the child exiting with 64.
    func testMissingBootstrapIsSaidInTheParent() {
        TangleRuntime._pretendNoTestHooks.store(true, ordering: .relaxed)
        defer { TangleRuntime._pretendNoTestHooks.store(false, ordering: .relaxed) }
        guard !TangleRuntime.isBootstrapped else { return }
        let child = ChildProcess(typedSum, arguments: TypedSumArgs(x: 1, y: 1))
        XCTAssertThrowsError(try child.start()) { error in
            guard case .bootstrapMissing? = error as? ProcessError else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".contains("never called TangleRuntime.bootstrap()"), "\(error)")
        }
        XCTAssertFalse(child.isAlive)
    }
}
