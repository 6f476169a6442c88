import CTangleSupport
import Glibc
import XCTest
@testable import Tangle

/// The two-lock queue under processes that die mid-operation, and MPMC across processes.
final class QueueRobustnessTests: XCTestCase {
    override class func setUp() {
        super.setUp()
        registerTangleTestsEntryPoints()
    }

    /// Starts a forked child that runs `body` with the queue (e.g. takes a lock, writes half a
    /// record), sets `ready`, then sleeps until it is SIGKILLed here.
    private func killMidOperation(_ body: @escaping () -> Void) throws {
        let ready = Event()
        let child = ChildProcess(fork: {
            body()
            ready.set()
            while true { sleep(1) }
        })
        try child.start()
        XCTAssertTrue(ready.wait(timeout: .seconds(30)))
        child.kill()
        XCTAssertEqual(child.join(timeout: .seconds(30)), .signaled(SIGKILL))
    }

    // Checks: a producer SIGKILLed holding the tail lock with half a record written (not published)
    // leaves the queue usable: the next put recovers the lock, nothing of the dead record shows, the
    // counts stay exact (maxsize 1 still admits exactly one message).
    func testProducerKilledMidPut() throws {
        let q = Queue<Int>(maxsize: 1, bufferSize: 1024)
        try q.put(1)
        XCTAssertEqual(try q.get(), 1)
        try killMidOperation {
            tangle_queue_lock(&q.q.pointee.tail_lock)
            let r = tangle_queue_reserve(q.q, 24)
            precondition(r >= 0)
            memset(q.ring + Int(r), 0xAB, 24)
        }
        try q.put(2, timeout: .seconds(30))
        XCTAssertEqual(q.qsize, 1)
        XCTAssertThrowsError(try q.putNowait(3)) { XCTAssertEqual($0 as? QueueError, .full(object: q.object)) }
        XCTAssertEqual(try q.get(timeout: .seconds(30)), 2)
        XCTAssertThrowsError(try q.getNowait()) { XCTAssertEqual($0 as? QueueError, .empty(object: q.object)) }
        XCTAssertEqual(q.qsize, 0)
    }

    // Checks: a consumer SIGKILLed holding the head lock after reading a record (not yet freed)
    // loses nothing: the next get recovers the lock and returns that message, then the next one.
    func testConsumerKilledMidGet() throws {
        let q = Queue<String>(maxsize: 2)
        try q.put("first")
        try q.put("second")
        try killMidOperation {
            tangle_queue_lock(&q.q.pointee.head_lock)
            precondition(tangle_queue_peek(q.q) >= 0)
        }
        XCTAssertEqual(try q.get(timeout: .seconds(30)), "first")
        XCTAssertEqual(try q.get(timeout: .seconds(30)), "second")
        try q.put("third", timeout: .seconds(30))
        XCTAssertEqual(try q.get(timeout: .seconds(30)), "third")
        XCTAssertTrue(q.isEmpty)
    }

    // Checks: a producer SIGKILLed at an arbitrary point of a stream of puts (writing, publishing,
    // spinning or asleep on a full ring) leaves exactly a prefix 0, 1, …, k of its messages, and the
    // queue keeps working; five rounds at different moments.
    func testProducerKilledAnywhere() throws {
        let q = Queue<Int>(bufferSize: 4096)
        for round in 0..<5 {
            let started = Event()
            let child = ChildProcess(fork: {
                started.set()
                var i = 0
                while true { try q.put(i); i += 1 }
            })
            try child.start()
            XCTAssertTrue(started.wait(timeout: .seconds(30)))
            usleep(UInt32(200 + 700 * round))
            child.kill()
            XCTAssertEqual(child.join(timeout: .seconds(30)), .signaled(SIGKILL))
            var next = 0
            while let v = try? q.getNowait() {
                XCTAssertEqual(v, next, "round \(round)")
                next += 1
            }
            XCTAssertEqual(q.qsize, 0)
            try q.put(-round, timeout: .seconds(30))
            XCTAssertEqual(try q.get(timeout: .seconds(30)), -round)
        }
    }

    // Checks: two spawned producers and two consumers (one spawned, one forked) through a bounded
    // JoinableQueue: every message is got exactly once (sums match; a duplicate would make a
    // consumer's taskDone throw, a loss would make join time out).
    func testTwoProducersTwoConsumersAcrossProcesses() throws {
        let q = JoinableQueue<Int>(maxsize: 16)
        let results = Queue<Int>()
        let n = 5000
        let p1 = try startChild("prim.queue.produce", QueueProduceArgs(queue: q, count: n, base: 1))
        let p2 = try startChild("prim.queue.produce", QueueProduceArgs(queue: q, count: n, base: 1_000_000))
        let c1 = try startChild("prim.queue.consume", QueueConsumeArgs(queue: q, results: results))
        let c2 = forkedSummingConsumer(q, results)
        try c2.start()
        assertExitsCleanly(p1)
        assertExitsCleanly(p2)
        try q.put(-1)
        try q.put(-1)
        try q.join(timeout: .seconds(30))
        let total = try results.get(timeout: .seconds(30)) + results.get(timeout: .seconds(30))
        XCTAssertEqual(total, (1...n).reduce(0, +) + (1_000_000..<1_000_000 + n).reduce(0, +))
        assertExitsCleanly(c1)
        assertExitsCleanly(c2)
        XCTAssertTrue(q.isEmpty)
        XCTAssertEqual(q.unfinished, 0)
    }

    // Checks: no lost wake-up when several getters sleep (a put wakes one and the woken getter
    // passes the wake on) or several putters sleep on a full queue: three consumer threads get
    // 300 messages put one at a time, each after the previous one was acknowledged (so getters are
    // asleep at every put); then three producer threads fill a maxsize-1 queue drained slowly.
    func testSleepingGettersAndPuttersAreWoken() throws {
        let q = Queue<Int>()
        let acks = Queue<Int>()
        let sums = Queue<Int>()
        var consumers: [TestThread] = []
        for _ in 0..<3 {
            consumers.append(TestThread {
                var sum = 0
                while let v = try? q.get(timeout: .seconds(30)), v >= 0 {
                    sum += v
                    try? acks.put(v)
                }
                try? sums.put(sum)
            })
        }
        for i in 0..<300 {
            if i % 10 == 0 { usleep(2000) }
            try q.put(i)
            XCTAssertEqual(try acks.get(timeout: .seconds(30)), i)
        }
        for _ in 0..<3 { try q.put(-1) }
        var total = 0
        for _ in 0..<3 { total += try sums.get(timeout: .seconds(30)) }
        consumers.forEach { $0.join() }
        XCTAssertEqual(total, (0..<300).reduce(0, +))

        // Three getters asleep, three messages put in a burst: each getter takes exactly one and
        // stops, so the one woken must pass the wake on.
        for round in 0..<5 {
            let one = Queue<Int>()
            let done = Queue<Int>()
            let getters = (0..<3).map { _ in TestThread { if let v = try? one.get(timeout: .seconds(30)) { try? done.put(v) } } }
            usleep(20_000)
            for i in 0..<3 { try one.put(round * 10 + i) }
            var seen = Set<Int>()
            for _ in 0..<3 { if let v = try? done.get(timeout: .seconds(10)) { seen.insert(v) } }
            getters.forEach { $0.join() }
            XCTAssertEqual(seen, Set((0..<3).map { round * 10 + $0 }), "round \(round): a sleeping getter was not woken")
            if seen.count != 3 { break }
        }

        let small = Queue<Int>(maxsize: 1)
        var producers: [TestThread] = []
        for p in 0..<3 {
            producers.append(TestThread { for i in 0..<100 { try? small.put(p * 1000 + i, timeout: .seconds(30)) } })
        }
        var got = Set<Int>()
        for k in 0..<300 {
            if k % 25 == 0 { usleep(2000) }
            got.insert(try small.get(timeout: .seconds(30)))
        }
        producers.forEach { $0.join() }
        XCTAssertEqual(got.count, 300)
        XCTAssertTrue(small.isEmpty)
    }
}
