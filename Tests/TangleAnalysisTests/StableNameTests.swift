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

/// Objects the program gave no name are named after their creation site by the runtime
/// (`queue@main.swift:42`): reports show that name as it is, and fingerprints ignore its line.
final class DefaultObjectNameTests: XCTestCase {
    func lockAcrossGet(queueName: String) -> Report {
        let b = TraceBuilder()
        let main = b.root(1)
        let l = b.lock(main, "lock@main.swift:7")
        let q = b.queue(main, queueName)
        let t1 = b.thread(main, main + 1, name: "consumer")
        _ = b.thread(main, main + 2, name: "producer")
        b.put(main, main + 2, q)
        b.acquire(main, main + 1, l)
        b.get(main, main + 1, q, 1)
        b.ev(main, main + 1, .queueGetWait, o: q)
        b.ev(main, main + 2, .lockWait, o: l)
        b.ev(main, .threadJoinWait, o: t1)
        return b.analyze()
    }

    func testReportsShowTheDefaultNameAndFingerprintsIgnoreItsLine() throws {
        let f = try XCTUnwrap(lockAcrossGet(queueName: "queue@main.swift:42").findings.first)
        XCTAssertTrue(f.title.contains("lock@main.swift:7") && f.title.contains("queue@main.swift:42"), f.title)
        XCTAssertFalse(f.title.contains("'queue@"), "a default name is not quoted as if the program gave it: \(f.title)")
        let moved = try XCTUnwrap(lockAcrossGet(queueName: "queue@main.swift:90").findings.first)
        XCTAssertEqual(f.fingerprint, moved.fingerprint, "the queue's creation moved down: same bug")
        let other = try XCTUnwrap(lockAcrossGet(queueName: "queue@worker.swift:42").findings.first)
        XCTAssertNotEqual(f.fingerprint, other.fingerprint, "a queue made in another file is another object")
        XCTAssertTrue(DefaultObjectName.isDefault("queue@main.swift:42"))
        XCTAssertFalse(DefaultObjectName.isDefault("tasks"))
        XCTAssertEqual(DefaultObjectName.withoutLine("queue@main.swift:42"), "queue@main.swift")
    }
}
