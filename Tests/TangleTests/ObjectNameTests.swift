import CTangleSupport
import Glibc
import XCTest
@testable import Tangle

// Entry points of the object-name tests (registered with the primitives area's).
func objectNameTestEntryPoints() {
    // A timed-out get on the queue it was given; writes the error's message to `out`.
    EntryPoint.register("names.get-timeout") { (a: NamedQueueArgs) in
        do { _ = try a.queue.get(timeout: .milliseconds(50)) } catch { _ = FD.writeAll(a.out.fd, Array("\(error)".utf8)) }
        close(a.out.fd)
    }
    // Takes the lock it was given (its owner died holding it); writes the error's message to `out`.
    EntryPoint.register("names.acquire") { (a: NamedLockArgs) in
        do { try a.lock.acquire() } catch { _ = FD.writeAll(a.out.fd, Array("\(error)".utf8)) }
        close(a.out.fd)
    }
}

struct NamedQueueArgs: Codable { var queue: Queue<Int>; var out: InheritedFD }
struct NamedLockArgs: Codable { var lock: Lock; var out: InheritedFD }

/// Every object has a name in messages: the program's, or `noun@file.swift:line` from where it was
/// created — in the process that made it and in a spawned child that got its handle.
final class ObjectNameTests: XCTestCase {
    override class func setUp() {
        super.setUp()
        registerTangleTestsEntryPoints()
    }

    /// Runs `entry` with `make(pipe's write end)` and returns what the child wrote.
    private func childMessage<A: Codable>(_ entry: String, _ make: (InheritedFD) -> A) throws -> String {
        let (r, w) = makePipe()
        defer { close(r) }
        let child = ChildProcess(entryPoint: entry, arguments: make(InheritedFD(w)))
        try child.start()
        close(w)
        XCTAssertEqual(child.join(timeout: .seconds(30)), .exited(0))
        return String(decoding: FD.readAll(r) ?? [], as: UTF8.self)
    }

    /// A timed-out get on an unnamed queue, in the child it was passed to, names the line that
    /// created it (not `queue 4916126941186 is empty`).
    func testTimedOutGetOnAnUnnamedQueueNamesItsCreationSite() throws {
        let queue = Queue<Int>(); let line = #line
        let message = try childMessage("names.get-timeout") { NamedQueueArgs(queue: queue, out: $0) }
        XCTAssertEqual(message, "queue@ObjectNameTests.swift:\(line) is empty")
        // And in the process that made it.
        XCTAssertThrowsError(try queue.getNowait()) { XCTAssertEqual("\($0)", "queue@ObjectNameTests.swift:\(line) is empty") }
        let named = Queue<Int>(name: "jobs")
        XCTAssertThrowsError(try named.getNowait()) { XCTAssertEqual("\($0)", "queue 'jobs' is empty") }
    }

    /// The owner of lock 'ledger' is SIGKILLed holding it: the child that takes it next is told
    /// the lock's name and the dead owner's pid.
    func testOwnerDiedNamesTheLock() throws {
        setenv("SWIFT_BACKTRACE", "enable=no", 1)
        let lock = Lock(name: "ledger")
        let ready = Event()
        let owner = ChildProcess(entryPoint: "prim.lock.hold", arguments: LockHoldArgs(lock: lock, ready: ready))
        try owner.start()
        XCTAssertTrue(ready.wait(timeout: .seconds(30)))
        owner.kill()
        XCTAssertEqual(owner.join(timeout: .seconds(10)), .signaled(SIGKILL))
        let message = try childMessage("names.acquire") { NamedLockArgs(lock: lock, out: $0) }
        XCTAssertEqual(message, "lock 'ledger': its owner (pid \(owner.pid)) died while holding it; the lock was recovered and is free again")
    }

    /// A pipe's messages name it too (both ends, from where it was made, or its given name).
    func testPipeMessagesNameThePipe() throws {
        let (a, b) = try Pipe(Int.self); let line = #line
        XCTAssertThrowsError(try a.recv(timeout: .milliseconds(20))) {
            XCTAssertEqual("\($0)", "pipe@ObjectNameTests.swift:\(line) end 0: recv timed out")
        }
        b.close()
        XCTAssertThrowsError(try b.send(1)) { XCTAssertTrue("\($0)".hasPrefix("pipe@ObjectNameTests.swift:\(line) end 1 is closed"), "\($0)") }
        let (r, w) = try Pipe(Int.self, duplex: false, name: "results")
        XCTAssertThrowsError(try r.recv(timeout: .milliseconds(20))) { XCTAssertEqual("\($0)", "pipe 'results' end 0: recv timed out") }
        w.close()
    }

    /// Default names: the noun, the file without its module, the line; a given name wins.
    func testDefaultNames() {
        XCTAssertEqual(ObjectNames.name(given: nil, noun: "lock", fileID: "App/main.swift", line: 42), "lock@main.swift:42")
        XCTAssertEqual(ObjectNames.name(given: "L", noun: "lock", fileID: "App/main.swift", line: 42), "L")
        let l = RLock(); let line = #line
        XCTAssertEqual(ObjectNames.label("rlock", l.object), "rlock@ObjectNameTests.swift:\(line)")
        XCTAssertEqual(ObjectNames.label("lock", 12345), "lock 12345", "an object this process never knew")
        XCTAssertTrue(ObjectNames.isDefault("queue@main.swift:42"))
        XCTAssertFalse(ObjectNames.isDefault("my queue@host:1"))
    }
}
