import XCTest
@testable import TangleAnalysis

/// Fingerprints use function names as `FrameClassifier.stableName` gives them: what an unrelated
/// edit can change (closure ordinals, specializations, partial-apply wrappers) is gone, thunks are
/// skipped, and different functions stay different.
final class StableNameTests: XCTestCase {
    func testClosureOrdinalsAreDropped() {
        XCTAssertEqual(FrameClassifier.stableName("closure #2 in registerEntryPoints()"), "closure in registerEntryPoints()")
        XCTAssertEqual(FrameClassifier.stableName("closure #3 in registerEntryPoints()"),
                       FrameClassifier.stableName("closure #1 in registerEntryPoints()"))
        XCTAssertEqual(FrameClassifier.stableName("implicit closure #1 in closure #12 in static App.main()"),
                       "implicit closure in closure in static App.main()")
    }

    func testSpecializationsAndWrappersAreDropped() {
        XCTAssertEqual(FrameClassifier.stableName("generic specialization <Swift.Int> of App.consume<A>(A) -> ()"),
                       "App.consume<A>(A) -> ()")
        XCTAssertEqual(FrameClassifier.stableName("function signature specialization <Arg[0] = Owned To Guaranteed> of App.worker(Tangle.Queue<Swift.Int>) -> ()"),
                       "App.worker(Tangle.Queue<Swift.Int>) -> ()")
        XCTAssertEqual(FrameClassifier.stableName("partial apply for closure #4 in App.run()"), "closure in App.run()")
        XCTAssertEqual(FrameClassifier.stableName("merged App.drain() -> ()"), "App.drain() -> ()")
        XCTAssertEqual(FrameClassifier.stableName("(extension in App):Tangle.Queue.drainAll() -> ()"), "Tangle.Queue.drainAll() -> ()")
    }

    func testThunksAreSkippedAndFunctionsStayApart() {
        XCTAssertNil(FrameClassifier.stableName("reabstraction thunk helper from @escaping @callee_guaranteed () -> () to @escaping @callee_guaranteed () -> (@out ())"))
        XCTAssertNil(FrameClassifier.stableName("thunk for @escaping @callee_guaranteed () -> ()"))
        XCTAssertNotEqual(FrameClassifier.stableName("closure #1 in App.producer()"), FrameClassifier.stableName("closure #1 in App.consumer()"))
        XCTAssertEqual(FrameClassifier.stableName("App.consumer(Tangle.Queue<Swift.Int>) -> ()"), "App.consumer(Tangle.Queue<Swift.Int>) -> ()")
    }
}
