import Glibc
import Tangle

// `tangle-scenarios generate --count N [--seed S] [--json] [--seconds B] [--timeout S] [--jobs J]
//   [--tangle PATH] [--keep DIR] [--seeds-file FILE] [--show SEED]`
//
// Program i of a run uses seed S+i, so `--count 1 --seed S+i` replays it alone.

struct GenerateOptions {
    var count = 100
    var seed: UInt64?
    var json = false
    var seconds: Double?
    var jobs = 2
    var harness = HarnessOptions(tangle: "")
    var seeds: [UInt64]?
    var show: UInt64?
    var verbose = false
    /// Self-test of the comparison: judge the report against a deliberately wrong truth (every
    /// blocked thread said to have finished and every finished one said to be blocked).
    var lie = false
}

let generateUsage = """
usage: tangle-scenarios generate [--count N] [--seed S] [--json] [--seconds BUDGET] [--timeout S]
                                 [--quiet-ms MS] [--jobs J] [--tangle PATH] [--keep DIR]
                                 [--seeds-file FILE] [--show SEED] [--verbose] [--lie]
Generates random multi-process programs over every primitive, runs each for real (traced), takes
the ground truth from the interpreter (which thread is blocked in which op, what was never received,
joined or read), analyzes the trace with `tangle analyze --format json` and prints every mismatch.
Program i uses seed S+i (S defaults to the time); `--count 1 --seed S` replays one.
--lie judges against a deliberately wrong truth (blocked and finished swapped): a self-test of the
comparison, which must then report mismatches.
Exit status: 0 no mismatch, 1 mismatches, 2 usage or set-up errors.

"""

/// The options, or what is wrong with them.
func parseGenerateOptions(_ args: [String]) -> Result<GenerateOptions, UsageError> {
    var o = GenerateOptions()
    var i = 0
    func value() -> String? {
        i += 1
        return i < args.count ? args[i] : nil
    }
    while i < args.count {
        let a = args[i]
        switch a {
        case "--count": guard let v = value().flatMap({ Int($0) }), v >= 0 else { return .failure(UsageError("\(a) needs a valid value")) }; o.count = v
        case "--seed": guard let v = value().flatMap({ UInt64($0) }) else { return .failure(UsageError("\(a) needs a valid value")) }; o.seed = v
        case "--json": o.json = true
        case "--verbose": o.verbose = true
        case "--lie": o.lie = true
        case "--seconds": guard let v = value().flatMap({ Double($0) }), v > 0 else { return .failure(UsageError("\(a) needs a valid value")) }; o.seconds = v
        case "--timeout": guard let v = value().flatMap({ Double($0) }), v > 0 else { return .failure(UsageError("\(a) needs a valid value")) }; o.harness.timeout = v
        case "--quiet-ms": guard let v = value().flatMap({ Int($0) }), v > 0 else { return .failure(UsageError("\(a) needs a valid value")) }; o.harness.quietMs = v
        case "--jobs": guard let v = value().flatMap({ Int($0) }), v > 0 else { return .failure(UsageError("\(a) needs a valid value")) }; o.jobs = v
        case "--tangle": guard let v = value() else { return .failure(UsageError("\(a) needs a valid value")) }; o.harness.tangle = v
        case "--keep": guard let v = value() else { return .failure(UsageError("\(a) needs a valid value")) }; o.harness.keep = v
        case "--show": guard let v = value().flatMap({ UInt64($0) }) else { return .failure(UsageError("\(a) needs a valid value")) }; o.show = v
        case "--seeds-file":
            guard let v = value() else { return .failure(UsageError("--seeds-file needs a file")) }
            guard let bytes = readFile(v) else { return .failure(UsageError("cannot read the seeds file \(v)")) }
            o.seeds = String(decoding: bytes, as: UTF8.self).split(separator: "\n").compactMap { line in
                let word = line.split(separator: "#").first?.trimmingCharacters(in: " \t") ?? ""
                return UInt64(word)
            }
        default: return .failure(UsageError("unknown option '\(a)'"))
        }
        i += 1
    }
    return .success(o)
}

struct UsageError: Error { let message: String; init(_ m: String) { message = m } }

extension StringProtocol {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}

/// What a run of many programs gathered.
final class GenerateTally: @unchecked Sendable {
    let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    var programs = 0, hanging = 0, clean = 0, undecided = 0, errors: [(UInt64, String)] = []
    var coverage: [String: (hanging: Int, clean: Int)] = [:]
    var mismatched: [(seed: UInt64, reasons: [Mismatch], text: String)] = []
    var next = 0

    init() { pthread_mutex_init(lock, nil) }
    func locked<R>(_ body: () -> R) -> R {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return body()
    }
}

func generateMain(_ args: [String]) -> Int32 {
    var o: GenerateOptions
    switch parseGenerateOptions(args) {
    case let .success(x): o = x
    case let .failure(e):
        printErr("tangle-scenarios generate: \(e.message)\n" + generateUsage)
        return 2
    }
    if let s = o.show {
        printOut(Generator.program(seed: s).text)
        return 0
    }
    if o.harness.tangle.isEmpty {
        let exe = selfExecutable()
        o.harness.tangle = String(exe[..<(exe.lastIndex(of: "/") ?? exe.startIndex)]) + "/tangle"
    }
    guard access(o.harness.tangle, X_OK) == 0 else {
        printErr("tangle-scenarios generate: cannot run \(o.harness.tangle) (build it: swift build --product tangle, or pass --tangle PATH)\n")
        return 2
    }
    let base = o.seed ?? (monotonicNs() ^ UInt64(time(nil)) &* 0x9E37_79B9) % 1_000_000_000
    let seeds = o.seeds ?? (0..<o.count).map { base &+ UInt64($0) }
    becomeSubreaper()
    let tally = GenerateTally()
    let started = monotonicNs()
    let budgetEnd = o.seconds.map { started + UInt64($0 * 1e9) }
    let options = o

    let worker = { @Sendable in
        while true {
            let i: Int = tally.locked { defer { tally.next += 1 }; return tally.next }
            if i >= seeds.count { return }
            if let budgetEnd, monotonicNs() >= budgetEnd { return }
            var r = Harness.run(seed: seeds[i], options: options.harness)
            if options.lie {
                for j in r.threads.indices {
                    switch r.threads[j].fate {
                    case .blocked: r.threads[j].fate = .finished
                    case .finished: r.threads[j].fate = .blocked
                    default: break
                    }
                }
            }
            let mismatches = Compare.compare(r)
            tally.locked {
                tally.programs += 1
                if let e = r.error, r.report == nil { tally.errors.append((seeds[i], e)); return }
                if r.completed && r.mainStatus != 0 {
                    tally.errors.append((seeds[i], "the program's main process exited with status \(r.mainStatus) (an interpreter or runtime failure; see its program.log with --keep)"))
                }
                if !r.decided { tally.undecided += 1 } else if r.blocked.isEmpty { tally.clean += 1 } else { tally.hanging += 1 }
                if r.decided {
                    for x in Coverage.hanging(r) { tally.coverage[x, default: (0, 0)].hanging += 1 }
                    if r.blocked.isEmpty && r.completed {
                        for x in Coverage.used(r.program) { tally.coverage[x, default: (0, 0)].clean += 1 }
                    }
                }
                if !mismatches.isEmpty {
                    tally.mismatched.append((seeds[i], mismatches, describeRun(r, mismatches)))
                    if !options.json { printOut(describeRun(r, mismatches)) }
                } else if options.verbose {
                    printErr("seed \(seeds[i]): \(r.decided ? (r.blocked.isEmpty ? "clean" : "hanging") : "undecided"), \(Compare.findings(r).count) finding(s), \(formatSeconds(r.seconds)) s \(r.phases)\n" + describeRun(r, []))
                }
            }
        }
    }
    let threads = (0..<max(1, min(o.jobs, seeds.count))).map { _ in TangleThread(name: "generate") { worker() } }
    for t in threads { t.start() }
    for t in threads { t.join() }
    let seconds = Double(monotonicNs() - started) / 1e9
    tally.mismatched.sort { $0.seed < $1.seed }

    if o.json {
        let cov = Coverage.primitives.map { p -> (String, JSON) in
            let c = tally.coverage[p] ?? (0, 0)
            return (p, .object([("hanging", .number(Double(c.hanging))), ("clean", .number(Double(c.clean)))]))
        }
        let list = tally.mismatched.map { m -> JSON in
            .object([("seed", .number(Double(m.seed))),
                     ("classes", .array(Array(Set(m.reasons.map(\.kind))).sorted().map { .string($0) })),
                     ("reasons", .array(m.reasons.map { .string($0.detail) }))])
        }
        let json = JSON.object([
            ("programs", .number(Double(tally.programs))), ("hanging", .number(Double(tally.hanging))),
            ("clean", .number(Double(tally.clean))), ("undecided", .number(Double(tally.undecided))),
            ("mismatches", .number(Double(tally.mismatched.count))), ("seconds", .number((seconds * 10).rounded() / 10)),
            ("seed", .number(Double(base))), ("generator", .number(Double(Generator.version))), ("coverage", .object(cov)), ("mismatch_list", .array(list)),
            ("errors", .array(tally.errors.map { .object([("seed", .number(Double($0.0))), ("error", .string($0.1))]) })),
        ])
        printOut(json.text + "\n")
    } else {
        var s = "\ngenerate: \(tally.programs) programs (seeds \(seeds.first ?? 0)…), \(tally.hanging) hanging, \(tally.clean) clean, \(tally.undecided) undecided, \(tally.mismatched.count) with mismatches, \(tally.errors.count) errors, \(formatSeconds(seconds)) s\n"
        s += "coverage (programs hanging on / clean with each primitive):\n"
        for p in Coverage.primitives {
            let c = tally.coverage[p] ?? (0, 0)
            s += "  " + p + String(repeating: " ", count: max(1, 22 - p.count)) + "hanging \(c.hanging)\tclean \(c.clean)\n"
        }
        var classes: [String: (Int, UInt64)] = [:]
        for m in tally.mismatched { for k in Set(m.reasons.map(\.kind)) { classes[k] = ((classes[k]?.0 ?? 0) + 1, classes[k]?.1 ?? m.seed) } }
        if !classes.isEmpty {
            s += "mismatch classes (programs, first seed):\n"
            for (k, v) in classes.sorted(by: { $0.key < $1.key }) { s += "  \(k): \(v.0) (replay: tangle-scenarios generate --count 1 --seed \(v.1))\n" }
        }
        for e in tally.errors { s += "error, seed \(e.0): \(e.1)\n" }
        printOut(s)
    }
    if !tally.errors.isEmpty && tally.mismatched.isEmpty { return 2 }
    return tally.mismatched.isEmpty ? 0 : 1
}

func formatSeconds(_ s: Double) -> String {
    let r = (s * 10).rounded() / 10
    return r == r.rounded() ? String(Int(r)) : String(r)
}

/// A mismatching program: seed, text, truth, the analyzer's findings, the reasons, how to replay.
func describeRun(_ r: RunResult, _ ms: [Mismatch]) -> String {
    var s = (ms.isEmpty ? "program" : "MISMATCH") + " seed \(r.program.seed) — replay: tangle-scenarios generate --count 1 --seed \(r.program.seed)\n"
    s += r.program.text
    s += "  truth (\(r.completed ? "ended by itself" : r.decided ? "quiet, stopped" : "timeout, stopped")):\n"
    for t in r.threads {
        s += "    \(Compare.describe(t, r.program)): \(t.fate.rawValue)\(t.fate == .blocked ? " on #\(t.object)" : "") pid \(t.pid)\n"
    }
    let fs = Compare.findings(r)
    s += "  analyzer: " + (fs.isEmpty ? "no finding\n" : "\n" + fs.map { "    " + $0.summary }.joined(separator: "\n") + "\n")
    for m in ms { s += "  ✗ [\(m.kind)] \(m.detail)\n" }
    if r.traceDir.isEmpty == false { s += "  trace: \(r.traceDir)\n" }
    return s
}
