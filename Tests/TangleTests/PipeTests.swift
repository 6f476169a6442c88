import Glibc
import XCTest
@testable import Tangle

final class PipeTests: XCTestCase {
    override class func setUp() {
        super.setUp()
        registerTangleTestsEntryPoints()
    }

    // Checks: a one-way pipe to a spawned child: the parent closes its copy of the write end, the
    // child sends and closes, the parent receives every message then EOF.
    func testOneWayEOFOnceEveryWriterClosed() throws {
        let (rx, tx) = try Pipe(String.self, duplex: false)
        let child = try startChild("prim.pipe.send", PipeSendArgs(conn: tx, count: 100))
        tx.close()   // the parent's own copy of the write end
        for i in 0..<100 { XCTAssertEqual(try rx.recv(timeout: .seconds(30)), "message \(i)") }
        XCTAssertThrowsError(try rx.recv(timeout: .seconds(30))) { XCTAssertEqual($0 as? PipeError, .eof(object: rx.object, end: 0)) }
        assertExitsCleanly(child)
        XCTAssertThrowsError(try rx.send("x")) { XCTAssertEqual($0 as? PipeError, .wrongDirection(object: rx.object, end: 0, operation: "send")) }
    }

    // Checks: the pipe-own-writer bug: while the receiver still holds the write end, no EOF comes
    // after the child's writer closed (recv times out); once it closes its own copy, EOF.
    func testReceiverHoldingItsOwnWriterGetsNoEOF() throws {
        let (rx, tx) = try Pipe(String.self, duplex: false)
        let child = try startChild("prim.pipe.send", PipeSendArgs(conn: tx, count: 2))
        assertExitsCleanly(child)
        XCTAssertEqual(try rx.recv(timeout: .seconds(10)), "message 0")
        XCTAssertEqual(try rx.recv(timeout: .seconds(10)), "message 1")
        XCTAssertFalse(try rx.poll(timeout: .milliseconds(20)))
        XCTAssertThrowsError(try rx.recv(timeout: .milliseconds(50))) { XCTAssertEqual($0 as? PipeError, .timeout(object: rx.object, end: 0)) }
        tx.close()
        XCTAssertTrue(try rx.poll())
        XCTAssertThrowsError(try rx.recv()) { XCTAssertEqual($0 as? PipeError, .eof(object: rx.object, end: 0)) }
        rx.close()
        XCTAssertThrowsError(try rx.recv()) { XCTAssertEqual($0 as? PipeError, .closed(object: rx.object, end: 0)) }
    }

    // Checks: a duplex pipe with a spawned echo child; a forked child also works on a one-way pipe.
    func testDuplexEchoAndFork() throws {
        let (a, b) = try Pipe(String.self)
        let child = try startChild("prim.pipe.echo", PipeEchoArgs(conn: b))
        b.close()
        for i in 0..<50 {
            try a.send("hello \(i)")
            XCTAssertEqual(try a.recv(timeout: .seconds(30)), "HELLO \(i)")
        }
        a.close()   // the child sees EOF and exits
        assertExitsCleanly(child)

        let (rx, tx) = try Pipe([Int].self, duplex: false)
        let big = Array(0..<50_000)   // bigger than the pipe buffer
        let forked = ChildProcess(fork: { rx.close(); try tx.send(big); tx.close() })
        try forked.start()
        tx.close()
        XCTAssertEqual(try rx.recv(timeout: .seconds(30)), big)
        XCTAssertThrowsError(try rx.recv(timeout: .seconds(30))) { XCTAssertEqual($0 as? PipeError, .eof(object: rx.object, end: 0)) }
        assertExitsCleanly(forked)
    }

    // Checks: sending into a pipe whose reader is gone is a clear broken-pipe error, not SIGPIPE.
    func testBrokenPipe() throws {
        let (rx, tx) = try Pipe(Int.self, duplex: false)
        rx.close()
        XCTAssertThrowsError(try tx.send(1)) { XCTAssertEqual($0 as? PipeError, .brokenPipe(object: tx.object, end: 1)) }
    }
}
