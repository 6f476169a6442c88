import TangleTraceFormat
import XCTest
@testable import TangleAnalysis
import TangleTestSupport

final class MessageTableTests: XCTestCase {
    private func message(_ id: UInt64) -> PendingMessage {
        PendingMessage(event: TraceEvent(time: id, pid: 1, tid: 1, seq: 0, kind: .queuePut, object: 7, a: id),
                       clock: ClockStamp(clock: VectorClock(), thread: 0, own: 1), object: id &* 3, end: 0)
    }

    /// The open-addressing message index agrees with a Dictionary over random puts, replaced puts
    /// and gets (runs of consecutive ids from several processes, and random ids; the table grows
    /// and empties several times), including gets of ids never put.
    func testAgreesWithDictionary() {
        var rng = seededGenerator()
        let table = MessageTable()
        var reference: [UInt64: UInt64] = [:]
        var counters: [UInt64] = [0, 0, 0, 0]
        var live: [UInt64] = []
        for step in 0..<60_000 {
            let r = Int.random(in: 0..<100, using: &rng)
            // Phases of filling then draining, so the table grows and empties.
            let filling = (step / 6_000) % 2 == 0
            if r < (filling ? 60 : 35) {
                let id: UInt64
                if r % 7 == 0 {
                    id = UInt64.random(in: 0...UInt64.max, using: &rng)
                } else {
                    let pid = Int.random(in: 0..<4, using: &rng)
                    counters[pid] += 1
                    id = (UInt64(pid + 100) << 28) | counters[pid]
                }
                table.insert(id, message(id))
                if reference.updateValue(id &* 3, forKey: id) == nil { live.append(id) }
            } else if r < 97, !live.isEmpty {
                // Mostly the oldest (a queue), sometimes any.
                let k = r % 3 == 0 ? Int.random(in: 0..<live.count, using: &rng) : 0
                let id = live.remove(at: k)
                XCTAssertEqual(table.remove(id)?.object, reference.removeValue(forKey: id), "step \(step)")
            } else {
                let id = UInt64.random(in: 0...UInt64.max, using: &rng)
                XCTAssertEqual(table.remove(id)?.object, reference.removeValue(forKey: id))
                live.removeAll { $0 == id }
            }
            XCTAssertEqual(table.count, reference.count)
        }
        XCTAssertEqual(Set(table.values.map(\.object)), Set(reference.values))
        for id in live { XCTAssertNotNil(table.remove(id)) }
        XCTAssertTrue(table.isEmpty)
        XCTAssertTrue(table.values.isEmpty)
    }
}
