import ArgumentParser
import Foundation
import TangleTraceFormat
import TangleTraceReader

/// Summary figures of a trace (computed by `TraceStats.compute`, printed by `tangle stats`).
struct TraceStats {
    var files = 0
    var events: UInt64 = 0
    var compressedBytes: UInt64 = 0
    var byKind: [String: UInt64] = [:]
    var byProcess: [Int32: UInt64] = [:]
    var processes: [Int32: TraceHeader] = [:]
    var threads = Set<UInt64>()
    var stacks = 0
    var problems: [TraceProblem] = []
    var lateEvents: UInt64 = 0
    var firstTime: UInt64 = .max
    var lastTime: UInt64 = 0

    var bytesPerEvent: Double { events == 0 ? 0 : Double(compressedBytes) / Double(events) }
    var dropped: UInt64 { problems.filter { $0.kind == .dropped }.reduce(0) { $0 + $1.count } }
    var truncated: [TraceProblem] { problems.filter { $0.kind == .truncated } }
    var unknownKinds: UInt64 { problems.filter { $0.kind == .unknownKind }.reduce(0) { $0 + $1.count } }
    var corrupt: [TraceProblem] { problems.filter { $0.kind == .corrupt } }
    var invalidLines: [TraceProblem] { problems.filter { $0.kind == .invalidLine } }
    /// Damage of schema-4 frames, lines over the limit, copies of a file (read once).
    var damaged: [TraceProblem] { problems.filter { $0.kind == .damaged || $0.kind == .lineTooLong || $0.kind == .duplicateFile } }

    static func compute(paths: [String]) throws -> TraceStats {
        let stream = try TraceEventStream(paths: paths)
        var s = TraceStats()
        s.files = stream.files.count
        s.compressedBytes = stream.files.reduce(0) { $0 + $1.bytes }
        var kindCounts = [UInt64](repeating: 0, count: 256)
        var lastPid: Int32 = 0, lastTid: Int32 = 0, run: UInt64 = 0
        func endRun() {
            if run > 0 {
                s.byProcess[lastPid, default: 0] += run
                s.threads.insert(UInt64(UInt32(bitPattern: lastPid)) << 32 | UInt64(UInt32(bitPattern: lastTid)))
            }
            run = 0
        }
        while let e = try stream.next() {
            s.events += 1
            kindCounts[Int(e.kind.rawValue) & 255] += 1
            if e.pid != lastPid || e.tid != lastTid {
                endRun()
                lastPid = e.pid
                lastTid = e.tid
            }
            run += 1
            if e.time < s.firstTime { s.firstTime = e.time }
            if e.time > s.lastTime { s.lastTime = e.time }
        }
        endRun()
        for k in EventKind.allCases where kindCounts[Int(k.rawValue) & 255] > 0 {
            s.byKind[k.name] = kindCounts[Int(k.rawValue) & 255]
        }
        s.processes = stream.headers
        s.stacks = stream.stacks.values.reduce(0) { $0 + $1.count }
        s.problems = stream.allProblems
        s.lateEvents = stream.lateEvents
        return s
    }

    var json: [String: Any] {
        var procs: [[String: Any]] = []
        for (pid, n) in byProcess.sorted(by: { $0.key < $1.key }) {
            var p: [String: Any] = ["pid": Int(pid), "events": n]
            if let h = processes[pid] {
                p["ppid"] = Int(h.ppid)
                p["argv0"] = h.argv0
                p["exe"] = h.executable
                p["proc"] = h.processObject
            }
            procs.append(p)
        }
        for (pid, h) in processes.sorted(by: { $0.key < $1.key }) where byProcess[pid] == nil {
            procs.append(["pid": Int(pid), "events": 0, "ppid": Int(h.ppid), "argv0": h.argv0, "exe": h.executable, "proc": h.processObject])
        }
        return [
            "files": files,
            "events": events,
            "processes": procs,
            "threads": threads.count,
            "by_kind": byKind,
            "compressed_bytes": compressedBytes,
            "bytes_per_event": (bytesPerEvent * 100).rounded() / 100,
            "stacks": stacks,
            "duration_ns": events == 0 ? 0 : lastTime - firstTime,
            "truncated": truncated.map { ["file": $0.file, "offset": $0.offset, "message": $0.message] },
            "corrupt": corrupt.map { ["file": $0.file, "offset": $0.offset, "message": $0.message] },
            "damaged": damaged.map { ["kind": $0.kind.rawValue, "file": $0.file, "offset": $0.offset, "message": $0.message, "count": $0.count] },
            "invalid_lines": invalidLines.reduce(0) { $0 + Int($1.count) },
            "dropped": dropped,
            "unknown_kinds": unknownKinds,
            "late_events": lateEvents,
            "problems": problems.map { ["kind": $0.kind.rawValue, "file": $0.file, "offset": $0.offset, "message": $0.message, "count": $0.count] as [String: Any] },
        ]
    }

    var text: String {
        var out = ""
        out += "files: \(files)   events: \(events)   processes: \(Set(byProcess.keys).union(processes.keys).count)   threads: \(threads.count)   stacks: \(stacks)\n"
        out += "compressed: \(compressedBytes) bytes   \(String(format: "%.2f", bytesPerEvent)) bytes/event"
        if events > 0 { out += "   span: \(String(format: "%.3f", Double(lastTime - firstTime) / 1e6)) ms" }
        out += "\n"
        out += "by process:\n"
        for (pid, n) in byProcess.sorted(by: { $0.key < $1.key }) {
            let h = processes[pid]
            out += "  pid \(pid)" + (h.map { " (ppid \($0.ppid), \($0.argv0))" } ?? "") + ": \(n)\n"
        }
        out += "by kind:\n"
        for (k, n) in byKind.sorted(by: { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }) {
            out += "  " + k.padding(toLength: 20, withPad: " ", startingAt: 0) + " \(n)\n"
        }
        out += "truncated files: \(truncated.count)"
        for t in truncated { out += "\n  \(t.file) at byte \(t.offset)" }
        out += "\ndropped events: \(dropped)   unknown kinds: \(unknownKinds)   invalid lines: \(invalidLines.reduce(0) { $0 + Int($1.count) })   corrupt files: \(corrupt.count)\n"
        for c in corrupt { out += "  \(c.description)\n" }
        if !damaged.isEmpty {
            out += "damaged, over-long or duplicate: \(damaged.count)\n"
            for d in damaged { out += "  \(d.description)\n" }
        }
        return out
    }
}

/// `tangle stats PATH… [--json]`.
struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Summarize trace files or directories: events by kind and process, bytes per event, truncation, drops.")

    @Argument(help: "Trace files (.jsonl.lz4, .jsonl) or directories.")
    var paths: [String]

    @Flag(name: .long, help: "Print one JSON object.")
    var json = false

    func validate() throws {
        if paths.isEmpty { throw ValidationError("give at least one trace file or directory") }
    }

    func run() throws {
        let s: TraceStats
        do {
            s = try TraceStats.compute(paths: paths)
        } catch let e as TraceReadError {
            throw failUnusable(e.description)
        }
        if json {
            let data = try JSONSerialization.data(withJSONObject: s.json, options: [.sortedKeys])
            FileHandle.standardOutput.write(data)
            FileHandle.standardOutput.write(Data("\n".utf8))
        } else {
            FileHandle.standardOutput.write(Data(s.text.utf8))
        }
    }
}
