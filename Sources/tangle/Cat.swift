import ArgumentParser
import Foundation
import TangleTraceFormat
import TangleTraceReader

/// `tangle cat PATH…`: the merged events of trace files or directories, as JSON lines.
struct Cat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the events of trace files or directories merged in time order, as JSON lines.")

    @Argument(help: "Trace files (.jsonl.lz4, .jsonl) or directories.")
    var paths: [String]

    @Flag(name: .long, help: "Also print header, stack and problem records (as {\"k\":\"header\"…} lines first).")
    var all = false

    func validate() throws {
        if paths.isEmpty { throw ValidationError("give at least one trace file or directory") }
    }

    func run() throws {
        let stream: TraceEventStream
        do {
            stream = try TraceEventStream(paths: paths)
        } catch let e as TraceReadError {
            throw failUnusable(e.description)
        }
        var out = ByteWriter(capacity: 1 << 20)
        func drainOut() {
            out.withBytes { b in
                var off = 0
                while off < b.count {
                    let n = Foundation.write(1, b.baseAddress! + off, b.count - off)
                    if n <= 0 { if errno == EINTR { continue }; return }
                    off += n
                }
            }
            out.removeAll()
        }
        do {
            while let e = try stream.next() {
                // Decoded events, not raw lines: `t` is absolute even for a schema-2 `dt` line.
                EventJSON.write(e, into: &out)
                if out.count > 900_000 { drainOut() }
            }
        } catch let e as TraceReadError {
            drainOut()
            throw failUnusable(e.description)
        }
        if all {
            for (pid, table) in stream.stacks.sorted(by: { $0.key < $1.key }) {
                for (id, pcs) in table.sorted(by: { $0.key < $1.key }) {
                    out.ascii("{\"k\":\"stack\",\"pid\":"); out.int(Int64(pid))
                    out.ascii(",\"id\":"); out.uint(UInt64(id)); out.ascii(",\"pcs\":[")
                    for (i, pc) in pcs.enumerated() { if i > 0 { out.byte(44) }; out.uint(pc) }
                    out.ascii("]}\n")
                }
            }
        }
        drainOut()
        for p in stream.allProblems where p.kind != .unknownKind || all {
            FileHandle.standardError.write(Data(("tangle: warning: " + p.description + "\n").utf8))
        }
    }
}
