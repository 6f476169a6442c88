import CTangleSupport
import Glibc

extension TangleRuntime {
    /// For test targets (XCTest, Swift Testing), which have no `main` to call `bootstrap()` in:
    /// registers the entry points and pool functions the tests' children run. `register` is a
    /// plain function that calls `EntryPoint.register` / `PoolFunction.register`; it runs now
    /// (once, however often it is passed) and again in every child the test binary spawns,
    /// before the test runner's `main` — the child is the same executable, and Tangle finds the
    /// function in it by its place in its module, not by a name. Call it before starting a child,
    /// e.g. in the test class's `setUp`:
    ///
    /// ```swift
    /// func myEntryPoints() {
    ///     EntryPoint.register("t.producer") { (q: Queue<Int>) in try q.put(1) }
    /// }
    /// final class ProducerTests: XCTestCase {
    ///     override class func setUp() { TangleRuntime.registerTestEntryPoints(myEntryPoints) }
    ///     …
    /// }
    /// ```
    ///
    /// Not needed in a program: it registers its entry points before `bootstrap()`.
    public static func registerTestEntryPoints(_ register: @convention(c) () -> Void) {
        var name = [CChar](repeating: 0, count: 4096)
        var offset: UInt = 0
        let address = unsafeBitCast(register, to: UnsafeRawPointer.self)
        guard tangle_code_location(address, &name, name.count, &offset) == 0 else {
            preconditionFailure("TangleRuntime.registerTestEntryPoints: the function is in no loaded object's code")
        }
        let place = TestEntryPoints.Place(module: String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self),
                                          offset: UInt64(offset))
        if TestEntryPoints.add(place) { register() }
    }
}

/// The test entry-point registrations of this process, passed on to the children it spawns
/// (`TANGLE_CHILD_TEST_ENTRY_POINTS`: one `offset(hex):module` per line, "" for the main program).
enum TestEntryPoints {
    struct Place: Hashable {
        var module: String
        var offset: UInt64
    }

    private static let lock = CondLock()
    nonisolated(unsafe) private static var places: [Place] = []
    nonisolated(unsafe) private static var inherited: [Place]? = nil

    /// Adds `place`; false when it was there already (its function already ran).
    static func add(_ place: Place) -> Bool {
        lock.withLock {
            if places.contains(place) { return false }
            places.append(place)
            return true
        }
    }

    static var isEmpty: Bool { lock.withLock { places.isEmpty } }

    /// The environment value for a spawned child; nil when there is nothing to pass.
    static var environmentValue: String? {
        lock.withLock { places.isEmpty ? nil : places.map { String($0.offset, radix: 16) + ":" + $0.module }.joined(separator: "\n") }
    }

    /// In a child, before the environment is cleared: remembers what the parent passed.
    static func readEnvironment() {
        guard let value = Env.get(ChildEnvironment.testEntryPoints) else { return }
        let parsed = value.split(separator: "\n").compactMap { line -> Place? in
            guard let colon = line.firstIndex(of: ":"), let offset = UInt64(line[..<colon], radix: 16) else { return nil }
            return Place(module: String(line[line.index(after: colon)...]), offset: offset)
        }
        lock.withLock { inherited = parsed }
    }

    /// In a child routed before main: runs the registrations the parent passed (found at the
    /// same places in this copy of the executable), once, and passes them on to its own children.
    static func runInherited() {
        let list: [Place] = lock.withLock {
            defer { inherited = nil }
            return inherited ?? []
        }
        for place in list {
            guard let address = tangle_code_address(place.module, UInt(place.offset)) else {
                FD.printError("tangle: a test entry-point registration (\(place.module.isEmpty ? "the main program" : place.module) +0x\(String(place.offset, radix: 16))) is not in this executable's code: not run")
                continue
            }
            let register = unsafeBitCast(address, to: (@convention(c) () -> Void).self)
            if add(place) { register() }
        }
    }
}
