import XCTest
@testable import TangleTraceFormat

/// The kind table is the format: every kind has a unique name that reads back to itself.
final class EventKindTests: XCTestCase {
    func testEveryKindNameRoundTrips() {
        var seen = Set<String>()
        for kind in EventKind.allCases {
            XCTAssertTrue(seen.insert(kind.name).inserted, "duplicate name \(kind.name)")
            XCTAssertEqual(EventKind(name: kind.name), kind)
        }
        XCTAssertNil(EventKind(name: "no.such-kind"))
    }
}
