import Glibc
import Tangle

// Pool scenarios.

struct PoolTaskFailure: Error, CustomStringConvertible {
    let item: Int
    var description: String { "item \(item) is invalid" }
}

nonisolated(unsafe) var squareFunction = PoolFunction<Int, Int>("scn.square")
nonisolated(unsafe) var validateFunction = PoolFunction<Int, Int>("scn.validate")

func registerPoolEntryPoints() {
    squareFunction = PoolFunction.register("scn.square") { (x: Int) -> Int in x * x }
    validateFunction = PoolFunction.register("scn.validate") { (x: Int) -> Int in
        if x == 13 { throw PoolTaskFailure(item: x) }
        return x
    }
}

/// Bug: a task submitted with applyAsync throws in its worker; the caller never retrieves that
/// result, so the error is silently lost; the pool is closed and joined normally.
let poolLostError = Scenario(
    name: "pool-lost-error",
    summary: "an applyAsync task throws and its result is never retrieved",
    hangs: false
) {
    try submitAndForget()
}

@inline(never) func submitAndForget() throws {
    let pool = try Pool(workers: 2)
    let good = try pool.applyAsync(validateFunction, 7)
    _ = try pool.applyAsync(validateFunction, 13)     // throws in the worker; never retrieved: the bug
    _ = try good.get()
    pool.close()
    pool.join()
}

/// Correct: Pool.map over 1000 items, close, join. No finding.
let poolClean = Scenario(
    name: "pool-clean",
    summary: "Pool.map over 1000 items, close, join",
    hangs: false
) {
    let pool = try Pool(workers: 2)
    let squares = try pool.map(squareFunction, Array(0..<1000))
    pool.close()
    pool.join()
    if squares.count != 1000 || squares[999] != 999 * 999 {
        throw ScenarioFailure("Pool.map returned \(squares.count) results")
    }
}
