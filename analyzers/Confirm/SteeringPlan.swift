import CTangleSupport
import Foundation
import Glibc

/// The plan `tangle confirm` hands to the runtime to steer a run towards one predicted finding.
///
/// A finding's stacks are symbolized frames (function, file:line) of the run that was analyzed.
/// The binary that will run now may be a rebuild and is loaded at another address (ASLR), so the
/// plan does not carry addresses from the trace: each predicted point (the acquire of a lock-order
/// edge's second lock; for hold-and-wait, the waiter's blocking call and the waker's acquire of the
/// lock) is resolved here, with the analyzer's own DWARF reader, into module-relative address
/// ranges of the binary about to run — the line-table rows whose inline chain ends with the
/// frame's file:line. The runtime then only compares the return addresses of a frame-pointer walk
/// against those ranges (steer_support.c), which needs no symbolizer in the traced process.
public struct SteeringPlan: Sendable {
    /// One predicted point: the participant and the frames (physical frames, innermost first; each
    /// a group of inlined frames sharing one address) that identify it.
    public struct Point: Sendable {
        public var label: String
        public var groups: [[Frame]]
        /// Per group: module index and ranges [lo, hi) of file addresses.
        var resolved: [(module: Int, ranges: [(UInt64, UInt64)])] = []
    }

    public var points: [Point]
    /// Module files (paths) the ranges are relative to.
    public var modules: [String]

    /// Frames matched per point: enough to tell call sites apart, few enough that a caller
    /// further out that differs between runs does not prevent a match.
    public static let framesPerPoint = Int(TANGLE_STEER_MAX_FRAMES)

    /// The kinds `tangle confirm` can steer.
    public static func isSteerable(_ f: Finding) -> Bool {
        f.confidence == .predicted && (f.kind == .lockOrderInversion || f.kind == .holdAndWait)
    }

    /// The predicted point of each participant, as stacks of the finding (nil: it has none).
    /// Lock order: the thread's last evidence event (where it takes the second lock). Hold-and-wait:
    /// the waiter's last (its blocking call), the waker's first (where it takes the lock).
    public static func pointStacks(of f: Finding) -> [(Participant, Stack)]? {
        var out: [(Participant, Stack)] = []
        for p in f.participants {
            let mine = f.evidence.filter { $0.pid == p.pid && $0.tid == p.tid && $0.stack != nil }
            let e = (f.kind == .holdAndWait && p.role == .wakes) ? mine.first : mine.last
            guard let e, let i = e.stack, i < f.stacks.count else { return nil }
            out.append((p, f.stacks[i]))
        }
        return out.isEmpty ? nil : out
    }

    /// The physical frames of a stack (consecutive frames at one address form one group), from
    /// the first application frame, up to `framesPerPoint`, stopping at a runtime frame or one
    /// without a source line.
    static func groups(of s: Stack) -> [[Frame]] {
        var groups: [[Frame]] = []
        for f in FrameClassifier.userFrames(s.frames) {
            if let last = groups.last?.last, last.module == f.module, last.offset == f.offset, last.inlined {
                groups[groups.count - 1].append(f)
            } else {
                groups.append([f])
            }
        }
        var out: [[Frame]] = []
        for g in groups {
            guard out.count < framesPerPoint, g.allSatisfy({ $0.file != nil && $0.line != nil && !FrameClassifier.isRuntimeFrame($0) }) else { break }
            out.append(g)
        }
        return out
    }

    /// Resolves the finding's points in `binaries` (the files COMMAND runs; matched to frames by
    /// file name). Fails with the reason when a point cannot be located.
    public static func resolve(_ f: Finding, binaries: [String]) -> Result<SteeringPlan, PlanError> {
        guard isSteerable(f) else { return .failure(PlanError("only predicted lock-order inversions and hold-and-wait findings can be steered")) }
        guard let stacks = pointStacks(of: f) else { return .failure(PlanError("a participant has no recorded stack")) }
        guard stacks.count <= Int(TANGLE_STEER_MAX_POINTS) else { return .failure(PlanError("more than \(TANGLE_STEER_MAX_POINTS) participants")) }
        var resolver = RangeResolver(binaries: binaries)
        var points: [Point] = []
        for (p, s) in stacks {
            let gs = groups(of: s)
            let who = p.thread.map { "\(p.process)/\($0)" } ?? p.process
            guard !gs.isEmpty else { return .failure(PlanError("\(who): no application frame with a source line in its stack")) }
            var point = Point(label: "\(who): \(p.detail)", groups: gs)
            for g in gs {
                switch resolver.ranges(of: g) {
                case .success(let r): point.resolved.append(r)
                case .failure(let e): return .failure(e)
                }
            }
            points.append(point)
        }
        return .success(SteeringPlan(points: points, modules: resolver.modulePaths))
    }

    /// Writes the plan file the runtime maps (TANGLE_STEER): `timeout` is how long a thread at its
    /// point waits for the others.
    public func write(to path: String, timeout: Double) throws {
        let nranges = points.reduce(0) { $0 + $1.resolved.reduce(0) { $0 + $1.ranges.count } }
        let size = tangle_steer_plan_size(UInt32(nranges))
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw PlanError("\(path): cannot create: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard ftruncate(fd, off_t(size)) == 0, let raw = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), raw != MAP_FAILED else {
            throw PlanError("\(path): cannot map: \(String(cString: strerror(errno)))")
        }
        defer { munmap(raw, size) }
        let plan = raw.bindMemory(to: tangle_steer_plan.self, capacity: 1)
        plan.pointee.magic = TANGLE_STEER_MAGIC
        plan.pointee.npoints = UInt32(points.count)
        plan.pointee.nmodules = UInt32(modules.count)
        plan.pointee.nranges = UInt32(nranges)
        plan.pointee.timeout_ns = UInt64(max(0, timeout) * 1e9)
        for (i, m) in modules.enumerated() {
            let dst = tangle_steer_module_path(plan, UInt32(i))!
            let bytes = Array(m.utf8.prefix(Int(TANGLE_STEER_PATH_MAX) - 1))
            for (k, b) in bytes.enumerated() { dst[k] = CChar(bitPattern: b) }
            dst[bytes.count] = 0
        }
        var next: UInt32 = 0
        for (i, p) in points.enumerated() {
            let pt = tangle_steer_point_at(plan, UInt32(i))!
            pt.pointee.nframes = UInt32(p.resolved.count)
            for (j, r) in p.resolved.enumerated() {
                let fr = tangle_steer_frame_at(pt, UInt32(j))!
                fr.pointee.module = UInt32(r.module)
                fr.pointee.first_range = next
                fr.pointee.nranges = UInt32(r.ranges.count)
                for (lo, hi) in r.ranges {
                    let dst = tangle_steer_range_at(plan, next)!
                    dst[0] = lo
                    dst[1] = hi
                    next += 1
                }
            }
        }
    }

    /// What happened to a plan's rendezvous in a run.
    public struct Outcome: Sendable {
        /// Points reached (claimed by a thread).
        public var arrived: Int
        public var points: Int
        /// Every participant reached its point (then all proceeded together).
        public var complete: Bool
        /// CLOCK_MONOTONIC (ns) when the last one arrived.
        public var completeTime: UInt64
    }

    /// Reads the rendezvous counters the run left in the plan file.
    public static func outcome(at path: String) -> Outcome? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var plan = tangle_steer_plan()
        let n = read(fd, &plan, MemoryLayout<tangle_steer_plan>.size)
        guard n == MemoryLayout<tangle_steer_plan>.size, plan.magic == TANGLE_STEER_MAGIC else { return nil }
        return Outcome(arrived: Int(plan.arrivals), points: Int(plan.npoints), complete: plan.state == 1, completeTime: plan.complete_ns)
    }

    /// CLOCK_MONOTONIC now, in ns (the clock of `Outcome.completeTime`).
    public static func now() -> UInt64 { tangle_steer_now() }
}

public struct PlanError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ d: String) { description = d }
}

/// Looks source lines up in the binaries' line tables, each file's rows once.
struct RangeResolver {
    let binaries: [String]
    private(set) var modulePaths: [String] = []
    private var modules: [String: DwarfModule] = [:]
    /// (module path, file name) → rows: start, end, and the inline chain's (file name, line,
    /// mangled function), innermost first.
    private var rows: [String: [(lo: UInt64, hi: UInt64, chain: [(String, Int, String?)])]] = [:]
    /// Mangled → display name (only for rows whose lines already match).
    private var names: [String: String] = [:]

    init(binaries: [String]) { self.binaries = binaries }

    mutating func ranges(of group: [Frame]) -> Result<(module: Int, ranges: [(UInt64, UInt64)]), PlanError> {
        let name = group[0].module
        guard let path = binaries.first(where: { ($0 as NSString).lastPathComponent == name }) else {
            return .failure(PlanError("frame \(FrameClassifier.describe(group[0])) is in module \(name), which is not the binary COMMAND runs (\(binaries.map { ($0 as NSString).lastPathComponent }.joined(separator: ", ")))"))
        }
        if modules[path] == nil {
            switch DwarfModule.open(path: path, debugDirectories: []) {
            case .success(let m): modules[path] = m
            case .failure(let e): return .failure(PlanError("\(path): \(e)"))
            }
        }
        let module = modules[path]!
        guard module.hasDwarf else { return .failure(PlanError("\(path) has no DWARF line tables (build with debug info)")) }
        let want = group.map { (($0.file! as NSString).lastPathComponent, $0.line!) }
        let file = want.last!.0  // the outermost frame's file: its compile unit holds the rows
        let key = path + "\u{0}" + file
        if rows[key] == nil {
            let starts = module.lineRowAddresses(unitsWithFile: file)
            var list: [(lo: UInt64, hi: UInt64, chain: [(String, Int, String?)])] = []
            for (i, a) in starts.enumerated() {
                let chain = module.lookup(fileAddress: a).map { ((($0.file ?? "") as NSString).lastPathComponent as String, $0.line ?? 0, $0.symbol) }
                list.append((a, i + 1 < starts.count ? starts[i + 1] : a + 1, chain))
            }
            rows[key] = list
        }
        var out: [(UInt64, UInt64)] = []
        for r in rows[key]! where r.chain.count >= want.count {
            let tail = Array(r.chain.suffix(want.count))
            guard zip(tail, want).allSatisfy({ $0.0 == $1.0 && $0.1 == $1.1 }) else { continue }
            // Same lines; the function must be the same too where both sides have a name.
            var sameFunctions = true
            for (c, f) in zip(tail, group) {
                guard let mangled = c.2, let expected = f.function else { continue }
                if names[mangled] == nil { names[mangled] = Demangler.displayName(mangled) }
                if names[mangled] != expected { sameFunctions = false; break }
            }
            guard sameFunctions else { continue }
            if let last = out.last, last.1 == r.lo { out[out.count - 1].1 = r.hi } else { out.append((r.lo, r.hi)) }
        }
        guard !out.isEmpty else {
            return .failure(PlanError("\(want.map { "\($0.0):\($0.1)" }.joined(separator: " in ")) is not in \(path) any more (source changed since the trace?)"))
        }
        if !modulePaths.contains(path) { modulePaths.append(path) }
        guard modulePaths.count <= Int(TANGLE_STEER_MAX_MODULES) else { return .failure(PlanError("frames in more than \(TANGLE_STEER_MAX_MODULES) modules")) }
        return .success((modulePaths.firstIndex(of: path)!, out))
    }
}
