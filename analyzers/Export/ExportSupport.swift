import Foundation
import TangleTraceFormat
import TangleTraceReader

/// Human text about each finding kind: rule names and help for SARIF, JUnit and HTML.
public struct FindingKindInfo: Sendable {
    public var name: String
    public var short: String
    public var help: String

    public static func of(_ kind: FindingKind) -> FindingKindInfo {
        switch kind {
        case .deadlock:
            FindingKindInfo(name: "Deadlock", short: "Threads block each other forever",
                help: "A set of threads is blocked and no thread outside the set can wake any of them: a cycle of lock waits, or a knot of queue/pipe/event waits whose every possible waker is itself blocked in the set. Break the cycle: take locks in one global order, never block on a queue or pipe while holding a lock the other side needs, and give waits a timeout that reports.")
        case .hang:
            FindingKindInfo(name: "Hang", short: "A wait that no live thread can end",
                help: "A thread waits for something (a queue item, a pipe message, an event, a child) and every thread or process that could have provided it has exited or closed its handle: the missing poison pill, the pipe whose only writer left is the reader itself. Send the sentinel from every path that ends a producer, close unused pipe ends in each process, or wait with a timeout.")
        case .selfDeadlock:
            FindingKindInfo(name: "Self-deadlock", short: "A thread waits for a lock it holds itself",
                help: "A thread tries to acquire a non-recursive Lock (or a Semaphore it exhausted) that it already holds, so it waits forever for itself. Use RLock if re-entry is intended, or restructure so the lock is taken once.")
        case .lockOrderInversion:
            FindingKindInfo(name: "Lock-order inversion", short: "Two locks are taken in opposite orders by different threads",
                help: "One thread acquired B while holding A and another acquired A while holding B, with no common gate lock and no happens-before ordering between the two sections: another interleaving of the same program deadlocks. Take the locks in one global order everywhere, or merge them into one lock.")
        case .holdAndWait:
            FindingKindInfo(name: "Hold-and-wait", short: "A lock is held across a blocking call whose waker needs that lock",
                help: "A thread holds a lock while it blocks (queue get, pipe recv, event or condition wait, semaphore acquire, join, pool result) and the thread that would wake it (put, send, set, notify, release, exit) takes the same lock first, with no happens-before ordering between the two: another interleaving of the same program deadlocks. Release the lock before blocking, or let the waker proceed without it.")
        case .zombie:
            FindingKindInfo(name: "Zombie process", short: "A child exited and was not reaped while its parent lived",
                help: "A child process exited but its parent did not join (wait for) it for longer than the threshold, leaving a zombie entry in the process table. Join every child, or use a Pool that joins its workers.")
        case .unjoinedChild:
            FindingKindInfo(name: "Unjoined child", short: "A child process was never joined",
                help: "The parent never joined a child it started. Its exit status (and any crash) went unnoticed. Join every child you start, ideally in a defer block.")
        case .orphan:
            FindingKindInfo(name: "Orphan process", short: "A child outlived its parent",
                help: "The parent exited while the child was still running, so the child was re-parented and nobody observes its exit. Join children before the parent exits, or terminate them explicitly.")
        case .lockHeldAtExit:
            FindingKindInfo(name: "Lock held at exit", short: "A process or thread ended while holding a lock",
                help: "A thread or process exited while still holding a lock; other processes that need it block or find an owner-dead lock. Release locks on every path (defer), including error paths.")
        case .ownerDied:
            FindingKindInfo(name: "Lock owner died", short: "A lock was taken over from an owner that died holding it",
                help: "The owner of a process-shared lock died holding it; the next acquirer recovered it, but the data it protects may be inconsistent. Make the critical section crash-safe or check the protected state after recovery.")
        case .lostMessages:
            FindingKindInfo(name: "Lost messages", short: "Items put on a queue were never taken",
                help: "Messages were put on a queue or sent on a pipe and never received before every reader ended. Drain the queue, or make the consumers run until a sentinel they are sure to receive.")
        case .missingTaskDone:
            FindingKindInfo(name: "Missing task_done", short: "A JoinableQueue item was taken but never marked done",
                help: "A consumer got an item from a JoinableQueue and never called taskDone for it, so join() on the queue can never return. Call taskDone for every get, on every path.")
        case .lostPoolError:
            FindingKindInfo(name: "Lost pool error", short: "A pool task failed and nobody retrieved its result",
                help: "A pool task threw, and the caller never retrieved the result, so the error was silently lost. Retrieve every async result, or handle errors inside the task.")
        case .shmLeak:
            FindingKindInfo(name: "Shared memory leak", short: "A shared memory segment was never unlinked",
                help: "A shared memory segment was created and never unlinked; it stays in /dev/shm after every process exits. Unlink it once, from its owner, when the last user is done.")
        case .forkWithThreads:
            FindingKindInfo(name: "Fork with threads", short: "fork() was called while other threads ran",
                help: "The process forked while other threads were running; a lock held by one of them at fork time stays held forever in the child. Use the spawn start method, or fork before starting threads.")
        case .nonOwnerRelease:
            FindingKindInfo(name: "Release by non-owner", short: "A lock was released by a thread that does not own it",
                help: "A thread released a lock another thread held. With Lock this is legal but usually a bug (the owner's critical section is broken); use a Semaphore for signaling instead.")
        }
    }
}

/// Shared helpers of the exporters.
enum ExportSupport {
    /// The findings in the report's one order (`Finding.precedes`), with their original index.
    static func ranked(_ findings: [Finding]) -> [(index: Int, finding: Finding)] {
        findings.enumerated().map { (index: $0.offset, finding: $0.element) }
            .sorted { $0.finding.precedes($1.finding) || (!$1.finding.precedes($0.finding) && $0.index < $1.index) }
    }

    /// Not the application's code, by the one classifier fingerprints also use.
    static func isSystemFrame(_ frame: Frame) -> Bool { FrameClassifier.isRuntimeFrame(frame) }

    /// The first frame of the stack worth pointing a person at.
    static func userFrame(_ stack: Stack) -> Frame? {
        if let f = stack.frames.first(where: { $0.file != nil && $0.line != nil && !isSystemFrame($0) }) { return f }
        return stack.frames.first(where: { $0.file != nil && $0.line != nil })
    }

    /// The primary user frame of a finding: from the stack of its first evidence event that has one,
    /// else from its stacks in order.
    static func primaryFrame(_ finding: Finding) -> (frame: Frame, stack: Int)? {
        var order: [Int] = []
        for e in finding.evidence { if let s = e.stack, s >= 0, s < finding.stacks.count, !order.contains(s) { order.append(s) } }
        for i in finding.stacks.indices where !order.contains(i) { order.append(i) }
        for i in order { if let f = userFrame(finding.stacks[i]) { return (f, i) } }
        return nil
    }

    static func describe(_ frame: Frame) -> String {
        var s = frame.function ?? "\(ExportSupport.baseName(frame.module))+0x\(String(frame.offset, radix: 16))"
        if let file = frame.file {
            s += " at \(file)"
            if let line = frame.line { s += ":\(line)" }
        } else if frame.function != nil {
            s += " (\(ExportSupport.baseName(frame.module))+0x\(String(frame.offset, radix: 16)))"
        }
        if frame.inlined { s += " [inlined]" }
        return s
    }

    // MARK: paths

    /// `.` and `..` components resolved and repeated slashes removed, by hand.
    static func normalizePath(_ path: String) -> String {
        let absolute = path.hasPrefix("/")
        var parts: [Substring] = []
        for c in path.split(separator: "/", omittingEmptySubsequences: true) {
            if c == "." { continue }
            if c == "..", let last = parts.last, last != ".." { parts.removeLast(); continue }
            if c == ".." && absolute { continue }
            parts.append(c)
        }
        let joined = parts.joined(separator: "/")
        return absolute ? "/" + joined : (joined.isEmpty ? "." : joined)
    }

    /// The last path component, split by hand (NSString's path methods trap on some inputs, e.g.
    /// "-", in this Foundation).
    static func baseName(_ path: String) -> String {
        var p = Substring(path)
        while p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
        if let slash = p.lastIndex(of: "/") { return String(p[p.index(after: slash)...]) }
        return String(p)
    }

    static func repositoryRoot(_ options: ExportOptions) -> String {
        if let root = options.repositoryRoot { return normalizedDirectory(root) }
        var dir = FileManager.default.currentDirectoryPath
        while true {
            if FileManager.default.fileExists(atPath: dir + "/.git") { return normalizedDirectory(dir) }
            guard let slash = dir.lastIndex(of: "/"), slash != dir.startIndex else { break }
            let parent = String(dir[..<slash])
            if parent == dir || parent.isEmpty { break }
            dir = parent
        }
        return normalizedDirectory(FileManager.default.currentDirectoryPath)
    }

    static func normalizedDirectory(_ path: String) -> String {
        var p = normalizePath(path)
        if !p.hasPrefix("/") { p = FileManager.default.currentDirectoryPath + "/" + p }
        return p.hasSuffix("/") ? p : p + "/"
    }

    /// `file` relative to `root` (ending in "/") when it lies below it; nil otherwise.
    static func relative(_ file: String, to root: String) -> String? {
        let std = normalizePath(file)
        if std.hasPrefix(root) { return String(std.dropFirst(root.count)) }
        if !std.hasPrefix("/") { return std }
        return nil
    }

    // MARK: escaping

    static func xmlEscape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            case "\t", "\n", "\r": out.unicodeScalars.append(scalar)
            default:
                // XML 1.0 forbids other control characters, even escaped.
                if scalar.value < 0x20 || scalar.value == 0xFFFE || scalar.value == 0xFFFF { out += "\u{FFFD}" } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out
    }

    static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }

    /// Microseconds with nanosecond precision, as a JSON number ("12.345").
    static func micros(_ ns: UInt64) -> String {
        let whole = ns / 1000, frac = ns % 1000
        if frac == 0 { return String(whole) }
        var f = String(frac)
        while f.count < 3 { f = "0" + f }
        while f.hasSuffix("0") { f.removeLast() }
        return "\(whole).\(f)"
    }

    static func millis(_ ns: UInt64) -> String {
        String(format: "%.3f", Double(ns) / 1_000_000)
    }

    // MARK: events

    static func objectLabel(_ object: UInt64, _ context: ExportContext) -> String {
        if object == 0 { return "" }
        if let name = context.objectNames[object] { return "'\(name)'" }
        return "#\(String(object & 0x0FFF_FFFF))@\(object >> 28)"
    }

    /// One event in words, without payloads or environment: kind, object, meaningful arguments.
    static func describe(_ e: TraceEvent, _ context: ExportContext) -> String {
        var parts = [e.kind.name]
        let obj = objectLabel(e.object, context)
        if !obj.isEmpty { parts.append(obj) }
        let keys = e.kind.argumentKeys
        var args: [String] = []
        switch e.kind {
        case .processStart, .processSpawn, .threadStart, .lockNew, .queueNew, .shmCreate, .shmAttach, .shmUnlink:
            if let t = e.text, !t.isEmpty { args.append("name=\(t)") }
        default: break
        }
        for (key, value) in [(keys.a, e.a), (keys.b, e.b), (keys.c, e.c)] {
            guard let key else { continue }
            if key == "msg" { args.append("msg=\(value & 0x0FFF_FFFF)"); continue }
            if value != 0 || key == "status" { args.append("\(key)=\(value)") }
        }
        if e.result != .ok { args.append("r=\(e.result.name)") }
        if !args.isEmpty { parts.append("(" + args.joined(separator: " ") + ")") }
        return parts.joined(separator: " ")
    }

    static func threadLabel(pid: Int32, tid: Int32, _ context: ExportContext) -> String {
        let p = context.processNames[pid] ?? "pid \(pid)"
        if let t = context.threadNames[tid] { return "\(p)/\(t)" }
        return tid == pid ? "\(p) (\(pid))" : "\(p) (\(pid)/\(tid))"
    }

    /// The kind that ends a wait begun by `kind`, when a thread records nothing while blocked the
    /// next event of the same thread ends the wait, so exporters use that.
    static func isWait(_ kind: EventKind) -> Bool { kind.isWait }

    /// The participant threads' events around a finding: for each participant thread the last
    /// `perThread` events up to the finding's last evidence time (plus the evidence events), merged
    /// in time order.
    /// Indexes of each thread's events in `context.events` (for `timeline`).
    static func eventsByThread(_ context: ExportContext) -> [ThreadKey: [Int]] {
        var map: [ThreadKey: [Int]] = [:]
        for (i, e) in context.events.enumerated() { map[ThreadKey(pid: e.pid, tid: e.tid), default: []].append(i) }
        return map
    }

    static func timeline(for finding: Finding, context: ExportContext, perThread: Int, index: [ThreadKey: [Int]]? = nil) -> [TraceEvent] {
        guard !context.events.isEmpty, perThread > 0 else { return [] }
        let index = index ?? eventsByThread(context)
        var threads: [ThreadKey] = []
        for p in finding.participants where !threads.contains(ThreadKey(pid: p.pid, tid: p.tid)) { threads.append(ThreadKey(pid: p.pid, tid: p.tid)) }
        for e in finding.evidence where !threads.contains(ThreadKey(pid: e.pid, tid: e.tid)) { threads.append(ThreadKey(pid: e.pid, tid: e.tid)) }
        let horizon = finding.evidence.map(\.time).max() ?? UInt64.max
        var chosen: [TraceEvent] = []
        for key in threads {
            var mine: [TraceEvent] = []
            for i in (index[key] ?? []).reversed() where context.events[i].time <= horizon {
                mine.append(context.events[i])
                if mine.count == perThread { break }
            }
            chosen.append(contentsOf: mine.reversed())
        }
        return chosen.sorted { ($0.time, $0.pid, $0.tid, $0.seq) < ($1.time, $1.pid, $1.tid, $1.seq) }
    }

    /// Primitives used in the run: "Queue 'tasks' (joinable)", "Lock 'A'", … from the `*.new` events.
    static func primitives(_ context: ExportContext) -> [String] {
        var out: [String] = []
        var seen = Set<UInt64>()
        for e in context.events where !seen.contains(e.object) {
            let kind: String?
            switch e.kind {
            case .lockNew:
                switch LockType(rawValue: e.a) {
                case .rlock: kind = "RLock"
                case .semaphore: kind = "Semaphore"
                case .boundedSemaphore: kind = "BoundedSemaphore"
                default: kind = "Lock"
                }
            case .queueNew: kind = e.b == 1 ? "JoinableQueue" : "Queue"
            case .pipeNew: kind = e.a == 1 ? "Pipe (duplex)" : "Pipe"
            case .eventNew: kind = "Event"
            case .conditionNew: kind = "Condition"
            case .barrierNew: kind = "Barrier(\(e.a))"
            case .poolNew: kind = "Pool(\(e.a) workers)"
            case .shmCreate: kind = "SharedMemory"
            default: kind = nil
            }
            guard let kind else { continue }
            seen.insert(e.object)
            let name = context.objectNames[e.object] ?? e.text
            out.append(name.map { "\(kind) '\($0)'" } ?? "\(kind) \(objectLabel(e.object, context))")
        }
        return out
    }
}

struct ThreadKey: Hashable, Comparable {
    var pid: Int32
    var tid: Int32
    static func < (l: ThreadKey, r: ThreadKey) -> Bool { (l.pid, l.tid) < (r.pid, r.tid) }
}

/// Finds and reads source files for frames, with a cache. Returns nothing for unreadable files.
final class SourceLookup {
    private var roots: [String]
    private var cache: [String: [String]?] = [:]

    init(roots: [String]) { self.roots = roots }

    /// Lines `line-context ... line+context` of the frame's file: (first line number, lines).
    func snippet(_ frame: Frame, context: Int) -> (start: Int, lines: [String], path: String)? {
        guard let file = frame.file, let line = frame.line, line > 0 else { return nil }
        guard let (path, lines) = load(file) else { return nil }
        guard line <= lines.count else { return nil }
        let lo = max(1, line - context), hi = min(lines.count, line + context)
        return (lo, Array(lines[(lo - 1)..<hi]), path)
    }

    private func load(_ file: String) -> (String, [String])? {
        for candidate in candidates(file) {
            if let cached = cache[candidate] {
                if let lines = cached { return (candidate, lines) }
                continue
            }
            // The path comes from debug info of a binary the trace names: regular files only,
            // read with a bound (a FIFO must not hang the report, a device not fill memory).
            guard let bytes = SourceLookup.readRegular(candidate, limit: 4 << 20),
                  let text = String(validating: bytes, as: UTF8.self)
            else { cache[candidate] = .some(nil); continue }
            var lines = text.components(separatedBy: "\n")
            if lines.last == "" { lines.removeLast() }
            cache[candidate] = lines
            return (candidate, lines)
        }
        return nil
    }

    /// The bytes of a regular file of at most `limit` bytes; nil otherwise.
    static func readRegular(_ path: String, limit: Int) -> [UInt8]? {
        guard let fd = try? RawTraceFile.openRegular(path) else { return nil }
        defer { close(fd) }
        var out = [UInt8](repeating: 0, count: limit + 1)
        var n = 0
        while n <= limit {
            let r = out.withUnsafeMutableBytes { read(fd, $0.baseAddress! + n, limit + 1 - n) }
            if r < 0 && errno == EINTR { continue }
            if r <= 0 { break }
            n += r
        }
        guard n <= limit else { return nil }
        out.removeSubrange(n...)
        return out
    }

    private func candidates(_ file: String) -> [String] {
        var out = [file]
        let comps = file.split(separator: "/").map(String.init)
        for root in roots {
            // Try the trailing components: a/b/c/x.swift, b/c/x.swift, c/x.swift, x.swift.
            for start in comps.indices {
                out.append((root.hasSuffix("/") ? root : root + "/") + comps[start...].joined(separator: "/"))
            }
        }
        return out
    }
}

/// Path helpers for the CLI (string-only; no NSString path methods).
public enum ExportPaths {
    public static func normalize(_ path: String) -> String { ExportSupport.normalizePath(path) }
    public static func baseName(_ path: String) -> String { ExportSupport.baseName(path) }
}
