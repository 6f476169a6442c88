import Glibc
import XCTest
@testable import Tangle

final class QueueTests: XCTestCase {
    override class func setUp() {
        super.setUp()
        registerTangleTestsEntryPoints()
    }

    // Checks: two spawned producers and the parent exchange messages through one Queue; every
    // message arrives exactly once; a bounded queue applies back-pressure (maxsize 4).
    func testProducersAcrossProcesses() throws {
        let q = Queue<Int>(maxsize: 4, name: "work")
        let a = try startChild("prim.queue.produce", QueueProduceArgs(queue: q, count: 3000, base: 0))
        let b = try startChild("prim.queue.produce", QueueProduceArgs(queue: q, count: 3000, base: 100_000))
        var seen = Set<Int>()
        for _ in 0..<6000 { seen.insert(try q.get(timeout: .seconds(30))) }
        assertExitsCleanly(a)
        assertExitsCleanly(b)
        XCTAssertEqual(seen.count, 6000)
        XCTAssertTrue(seen.contains(2999) && seen.contains(102_999))
        XCTAssertTrue(q.isEmpty)
        XCTAssertLessThanOrEqual(q.qsize, 4)
    }

    // Checks: JoinableQueue across a forked and a spawned consumer: join returns once every item was
    // marked done; results come back on another queue.
    func testJoinableQueueAcrossProcesses() throws {
        let q = JoinableQueue<Int>()
        let results = Queue<Int>()
        let spawned = try startChild("prim.queue.consume", QueueConsumeArgs(queue: q, results: results))
        let forked = forkedSummingConsumer(q, results)
        try forked.start()
        for i in 1...1000 { try q.put(i) }
        try q.put(-1)
        try q.put(-1)
        try q.join(timeout: .seconds(30))
        XCTAssertEqual(q.unfinished, 0)
        let total = try results.get(timeout: .seconds(30)) + results.get(timeout: .seconds(30))
        XCTAssertEqual(total, 500_500)
        assertExitsCleanly(spawned)
        assertExitsCleanly(forked)
    }

    // Checks: non-blocking and timed put/get throw full/empty; blocked get is woken by a put from
    // another thread; messages of structs and strings keep their order.
    func testTimeoutsAndNowait() throws {
        struct Item: Codable, Equatable { var id: Int; var text: String }
        let q = Queue<Item>(maxsize: 2)
        XCTAssertThrowsError(try q.getNowait()) { XCTAssertEqual($0 as? QueueError, .empty(object: q.object)) }
        XCTAssertThrowsError(try q.get(timeout: .milliseconds(20))) { XCTAssertEqual($0 as? QueueError, .empty(object: q.object)) }
        try q.putNowait(Item(id: 1, text: "a"))
        try q.put(Item(id: 2, text: "b"), timeout: .seconds(1))
        XCTAssertTrue(q.isFull)
        XCTAssertThrowsError(try q.putNowait(Item(id: 3, text: "c"))) { XCTAssertEqual($0 as? QueueError, .full(object: q.object)) }
        XCTAssertThrowsError(try q.put(Item(id: 3, text: "c"), timeout: .milliseconds(20)))
        XCTAssertEqual(try q.get(), Item(id: 1, text: "a"))
        XCTAssertEqual(try q.get(), Item(id: 2, text: "b"))
        let t = TestThread { usleep(20_000); try? q.put(Item(id: 9, text: "late")) }
        XCTAssertEqual(try q.get(timeout: .seconds(10)), Item(id: 9, text: "late"))
        t.join()
    }

    // Checks: bad use is a clear error: use after close, too many taskDone, a message larger than
    // the buffer (naming its size); messages that wrap around the ring survive intact.
    func testBadUseAndBigMessages() throws {
        let q = Queue<[UInt8]>(bufferSize: 1024)
        XCTAssertThrowsError(try q.put([UInt8](repeating: 7, count: 2000))) { error in
            XCTAssertEqual(error as? QueueError, .messageTooLarge(object: q.object, size: 2024, capacity: 1024))
            XCTAssertTrue("\(error)".contains("2024 bytes"))
        }
        for round in 0..<50 {   // 300-byte messages wrap around a 1 KB ring
            let m = [UInt8](repeating: UInt8(round), count: 300)
            try q.put(m)
            try q.put(m)
            XCTAssertEqual(try q.get(), m)
            XCTAssertEqual(try q.get(), m)
        }
        q.close()
        XCTAssertThrowsError(try q.put([1])) { XCTAssertEqual($0 as? QueueError, .closed(object: q.object)) }
        XCTAssertThrowsError(try q.get()) { XCTAssertTrue("\($0)".contains("closed")) }

        let j = JoinableQueue<Int>()
        try j.put(1)
        _ = try j.get()
        try j.taskDone()
        XCTAssertThrowsError(try j.taskDone()) { XCTAssertEqual($0 as? QueueError, .tooManyTaskDone(object: j.object)) }
        try j.put(2)
        XCTAssertThrowsError(try j.join(timeout: .milliseconds(20))) { XCTAssertEqual($0 as? QueueError, .joinTimeout(object: j.object, unfinished: 1)) }
    }
}

/// A forked consumer: gets until a negative pill (marking each task done), then puts the sum.
func forkedSummingConsumer(_ q: JoinableQueue<Int>, _ results: Queue<Int>) -> ChildProcess {
    ChildProcess(fork: {
        var sum = 0
        while true {
            let v = try q.get()
            try q.taskDone()
            if v < 0 { break }
            sum += v
        }
        try results.put(sum)
    })
}
