import Glibc
import TangleRecorder
import TangleTraceReader
import XCTest
@testable import Tangle
import TangleTestSupport

/// SharedValue / SharedArray (Python's Value / Array) across real processes: locked increments add
/// up, each child's array slot is seen by the parent, the lock is a traced Lock named after the value.
final class SharedValueTests: XCTestCase {
    override class func setUp() {
        registerTangleTestsEntryPoints()
        super.setUp()
        setenv("SWIFT_BACKTRACE", "enable=no", 1)
    }

    func testLockedIncrementsFromFourProcesses() throws {
        let value = SharedValue<Int>(10)
        let array = SharedArray<Double>(repeating: -1, count: 4)
        let children = try (0..<4).map { i in
            try startChild("shared.add", SharedAddArgs(value: value, array: array, times: 2000, slot: i))
        }
        for c in children { assertExitsCleanly(c) }
        XCTAssertEqual(try value.load(), 10 + 4 * 2000)
        XCTAssertEqual(try array.toArray(), [0.5, 1.5, 2.5, 3.5])
        XCTAssertNotNil(value.lock)
        // Raw access and an unlocked value.
        let raw = SharedValue<UInt8>(7, lock: false)
        XCTAssertNil(raw.lock)
        raw.value &+= 1
        XCTAssertEqual(try raw.withLock { $0 }, 8)
        let fromArray = SharedArray([1, 2, 3] as [Int32], lock: false)
        fromArray[1] = 20
        XCTAssertEqual(try fromArray.toArray(), [1, 20, 3])
        XCTAssertEqual(SharedArray<Int>([]).count, 0)
    }

    func testLockIsTraced() throws {
        let dir = makeTempDir("tangle-shared-value")
        addTeardownBlock { removeTree(dir) }
        TangleRuntime.ensureStarted()
        _ = Recorder.isEnabled
        setenv("TANGLE_TRACE", dir, 1)
        let child = ChildProcess(entryPoint: "shared.traced")
        do { try child.start() } catch { unsetenv("TANGLE_TRACE"); throw error }
        unsetenv("TANGLE_TRACE")
        XCTAssertEqual(child.join(timeout: .seconds(60)), .exited(0))
        let trace = try TraceReader.load(paths: [dir])
        guard let new = trace.events.first(where: { $0.kind == .lockNew && $0.text == "hits.lock" }) else {
            return XCTFail("no lock.new named hits.lock")
        }
        let acquired = trace.events.filter { $0.kind == .lockAcquired && $0.object == new.object }
        let released = trace.events.filter { $0.kind == .lockReleased && $0.object == new.object }
        XCTAssertGreaterThanOrEqual(acquired.count, 201)   // 200 increments + the final load
        XCTAssertEqual(acquired.count, released.count)
    }
}
