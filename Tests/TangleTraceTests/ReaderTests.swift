import Foundation
import XCTest
@testable import TangleTraceFormat
@testable import TangleTraceReader
import TangleTestSupport

final class ReaderTests: XCTestCase {
    static let header = #"{"k":"header","v":1,"pid":10,"ppid":1,"exe":"/bin/x","argv0":"x","clock":"CLOCK_MONOTONIC","boot":"b","t":100,"proc":0,"modules":[]}"#

    private func write(_ text: String, _ name: String, in dir: String) -> String {
        writeTraceText(text, name, in: dir)
    }

    /// Plain .jsonl reads; omitted pid and seq are restored; argument keys map back to a/b/c.
    func testPlainJSONLAndRestoredFields() throws {
        let dir = makeTempDir("plain")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let text = Self.header + "\n" + """
        {"t":200,"tid":11,"k":"queue.put","o":5,"msg":7,"size":9}
        {"t":210,"tid":11,"k":"queue.get","o":5,"msg":7,"size":9,"extra":"x","more":1}
        {"t":220,"tid":12,"seq":4,"k":"proc.join-done","o":6,"child":3,"status":1,"signal":9,"r":"timeout"}
        {"t":230,"tid":12,"k":"lock.new","name":"a\\"b\\u00e9","type":1}
        {"t":123456789012345,"tid":13,"k":"queue.put","o":18446744073709551615,"msg":12345678,"size":99999999}
        {"t":1234567890123456789,"tid":13,"k":"queue.put","o":87654321,"msg":123456789,"size":1}
        """
        let trace = try TraceReader.load(paths: [write(text, "10-100.jsonl", in: dir)])
        XCTAssertEqual(trace.events.count, 6)
        XCTAssertEqual(trace.events.map(\.seq), [0, 1, 4, 5, 0, 1])
        XCTAssertEqual(trace.events.map(\.pid), [10, 10, 10, 10, 10, 10])
        // numbers of every length parse exactly (8-digit fast path, 20 digits, 19 digits)
        XCTAssertEqual(trace.events[4].time, 123456789012345)
        XCTAssertEqual(trace.events[4].object, UInt64.max)
        XCTAssertEqual(trace.events[4].a, 12345678)
        XCTAssertEqual(trace.events[4].b, 99999999)
        XCTAssertEqual(trace.events[5].time, 1234567890123456789)
        XCTAssertEqual(trace.events[5].object, 87654321)
        XCTAssertEqual(trace.events[5].a, 123456789)
        XCTAssertEqual(trace.events[0].a, 7)
        XCTAssertEqual(trace.events[0].b, 9)
        XCTAssertEqual(trace.events[2].a, 3)
        XCTAssertEqual(trace.events[2].b, 1)
        XCTAssertEqual(trace.events[2].c, 9)
        XCTAssertEqual(trace.events[2].result, .timeout)
        XCTAssertEqual(trace.events[3].text, "a\"bé")
        XCTAssertEqual(trace.events[3].a, 1)
    }

    /// Unknown kinds are skipped and counted; invalid lines are reported with an offset and skipped.
    func testUnknownKindsAndInvalidLines() throws {
        let dir = makeTempDir("invalid")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let text = Self.header + "\n" + """
        {"t":200,"tid":11,"k":"future.kind","o":5}
        not json at all
        {"t":201,"tid":11,"k":"queue.put"
        {"t":202,"tid":11,"k":"queue.put","o":[1,2]}
        {"t":203,"tid":11,"k":"queue.put","o":5}
        {"tid":11,"k":"queue.put","o":5}
        """ + "\n"
        let trace = try TraceReader.load(paths: [write(text, "10-100.jsonl", in: dir)])
        XCTAssertEqual(trace.events.count, 2, "the nested-o line keeps its kind (o unreadable → 0), the last line lacks t")
        XCTAssertEqual(trace.problems.filter { $0.kind == .unknownKind }.first?.count, 1)
        let invalid = trace.problems.filter { $0.kind == .invalidLine }
        XCTAssertEqual(invalid.count, 3)
        XCTAssertTrue(invalid.allSatisfy { $0.file.hasSuffix("10-100.jsonl") && $0.offset > 0 })
    }

    /// A file whose first line is not a header, random bytes, a bad LZ4 magic: errors naming the
    /// file; no trace files at all: an error naming the directory.
    func testUnusableInputThrows() throws {
        let dir = makeTempDir("unusable")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let noHeader = write(#"{"t":1,"tid":1,"k":"queue.put"}"# + "\n", "a.jsonl", in: dir)
        XCTAssertThrowsError(try TraceReader.load(paths: [noHeader])) { e in
            XCTAssertTrue("\(e)".contains("a.jsonl"))
        }
        var rng = seededGenerator()
        let garbage = dir + "/g.jsonl.lz4"
        XCTAssertTrue(FileManager.default.createFile(atPath: garbage, contents: Data((0..<5000).map { _ in UInt8.random(in: 0...255, using: &rng) })), "cannot write a test file")
        XCTAssertThrowsError(try TraceReader.load(paths: [garbage])) { e in XCTAssertTrue("\(e)".contains("g.jsonl.lz4")) }
        let empty = makeTempDir("empty")
        defer { try? FileManager.default.removeItem(atPath: empty) }
        XCTAssertThrowsError(try TraceReader.load(paths: [empty])) { e in XCTAssertTrue("\(e)".contains(empty)) }
        XCTAssertThrowsError(try TraceReader.load(paths: [dir + "/does-not-exist"]))
    }

    /// A directory with one readable trace and files that are not traces: the good file is read in
    /// full and each bad one is reported as a skipped corrupt file; only a directory with no
    /// readable file at all is an error.
    func testUnreadableFileBesideGoodOnesIsSkippedAndReported() throws {
        let dir = makeTempDir("mixed")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = write(Self.header + "\n" + #"{"t":200,"tid":11,"k":"queue.put","o":5,"msg":7,"size":9}"# + "\n", "10-100.jsonl", in: dir)
        _ = write("this is not a trace\n", "11-100.jsonl", in: dir)
        XCTAssertTrue(FileManager.default.createFile(atPath: dir + "/12-100.jsonl.lz4", contents: Data(repeating: 0x42, count: 300)), "cannot write a test file")
        let trace = try TraceReader.load(paths: [dir])
        XCTAssertEqual(trace.events.count, 1)
        XCTAssertEqual(trace.events.first?.kind, .queuePut)
        let skipped = trace.problems.filter { $0.kind == .corrupt }
        XCTAssertEqual(Set(skipped.map { ($0.file as NSString).lastPathComponent }), ["11-100.jsonl", "12-100.jsonl.lz4"])
        XCTAssertTrue(skipped.allSatisfy { $0.message.contains("file skipped") })

        let bad = makeTempDir("allbad")
        defer { try? FileManager.default.removeItem(atPath: bad) }
        _ = write("this is not a trace\n", "11-100.jsonl", in: bad)
        XCTAssertTrue(FileManager.default.createFile(atPath: bad + "/12-100.jsonl.lz4", contents: Data(repeating: 0x42, count: 300)), "cannot write a test file")
        XCTAssertThrowsError(try TraceReader.load(paths: [bad]))
    }

    /// Fuzz: mutated, truncated and random lines (run lines among them) after a valid header never
    /// crash the reader.
    func testFuzzedLinesNeverCrash() throws {
        let dir = makeTempDir("fuzz")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let seedLines = [
            #"{"t":200,"tid":11,"seq":3,"k":"queue.put","o":5,"s":2,"msg":7,"size":9,"r":"timeout","name":"q\n"}"#,
            #"{"k":"stack","pid":10,"id":2,"pcs":[1,2,3]}"#,
            #"{"k":"module","t":5,"module":{"path":"/x","build_id":"ab","bias":1,"lo":2,"hi":3}}"#,
            // schema 3: a template declaration and run lines (the fast parser and the generic one)
            #"{"dt":5,"tp":3,"tid":11,"k":"lock.acquired","o":9,"depth":1}"#,
            #"{"k":"run","e":[1,3,20,3,300,3,4000,3,7,4095,1,70000,9999999999999999999,3]}"#,
            #"{"e":[1,3,2,3],"k":"run"}"#,
        ]
        var rng = seededGenerator()
        var lines: [String] = [Self.header]
        for i in 0..<3000 {
            var bytes = Array(seedLines[i % seedLines.count].utf8)
            switch i % 4 {
            case 0: bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 32...126, using: &rng)
            case 1: bytes = Array(bytes.prefix(Int.random(in: 0..<bytes.count, using: &rng)))
            case 2: bytes = (0..<Int.random(in: 1...80, using: &rng)).map { _ in UInt8.random(in: 1...255, using: &rng) }.filter { $0 != 10 }
            default: bytes.insert(UInt8.random(in: 32...126, using: &rng), at: Int.random(in: 0...bytes.count, using: &rng))
            }
            lines.append(String(decoding: bytes, as: UTF8.self))
        }
        let path = write(lines.joined(separator: "\n") + "\n", "10-100.jsonl", in: dir)
        let trace = try TraceReader.load(paths: [path])
        XCTAssertGreaterThan(trace.problems.count, 0)
        // and the JSON parser on raw random bytes
        for _ in 0..<2000 {
            let b = (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            _ = b.withUnsafeBytes { JSONParser.parse($0) }
            var f = EventLineFields()
            b.withUnsafeBufferPointer { p in
                if let base = p.baseAddress { _ = parseEventLine(base, p.count, &f) }
            }
        }
    }

    /// A real trace file cut at many byte offsets: the prefix reads (a subset of the full file's
    /// events, in the same order), the cut is reported as truncation, nothing throws after the
    /// first block and nothing crashes; garbage written over the tail is reported as corruption.
    func testCutAtManyOffsets() throws {
        let dir = makeTempDir("cut")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let child = TraceChild.start("threads", traceDir: dir, extraEnv: ["TANGLE_TEST_THREADS": "2", "TANGLE_TEST_EVENTS": "3000"])
        XCTAssertEqual(child.wait().status, 0)
        let file = try XCTUnwrap(traceFiles(dir).first)
        let full = try TraceReader.load(paths: [file])
        XCTAssertTrue(full.problems.isEmpty)
        let data = try Data(contentsOf: URL(fileURLWithPath: file))
        let cutDir = makeTempDir("cut2")
        defer { try? FileManager.default.removeItem(atPath: cutDir) }
        let cutPath = cutDir + "/\(child.pid)-1.jsonl.lz4"
        var offsets = Array(stride(from: 0, to: data.count, by: max(1, data.count / 150)))
        offsets += [1, 3, 4, 7, 11, data.count - 1, data.count - 4, data.count - 5]
        var previous = -1
        for cut in offsets.sorted() where cut >= 0 && cut < data.count {
            XCTAssertTrue(FileManager.default.createFile(atPath: cutPath, contents: data.prefix(cut)), "cannot write a test file")
            let t: LoadedTrace
            do {
                t = try TraceReader.load(paths: [cutPath])
            } catch {
                XCTAssertLessThan(cut, 4, "only a file too short for the magic number is unusable (cut \(cut)): \(error)")
                continue
            }
            XCTAssertFalse(t.problems.isEmpty, "cut at \(cut) is reported")
            if cut >= 4 { XCTAssertEqual(t.truncated.count, 1, "cut at \(cut): \(t.problems)") }
            XCTAssertLessThanOrEqual(t.events.count, full.events.count)
            XCTAssertGreaterThanOrEqual(t.events.count, previous, "longer prefixes read no fewer events")
            previous = t.events.count
            // prefix per thread
            for tid in Set(t.events.map(\.tid)) {
                let a = t.events.filter { $0.tid == tid }
                let b = full.events.filter { $0.tid == tid }
                XCTAssertEqual(a, Array(b.prefix(a.count)), "cut \(cut) thread \(tid)")
            }
        }
        // Corrupt bytes in the middle: an error value naming the file and an offset, prefix kept.
        var bad = data
        let mid = data.count / 2
        for i in mid..<min(mid + 64, data.count) { bad[i] ^= 0x5A }
        XCTAssertTrue(FileManager.default.createFile(atPath: cutPath, contents: bad), "cannot write a test file")
        let t = try TraceReader.load(paths: [cutPath])
        let corrupt = t.problems.filter { $0.kind == .corrupt }
        XCTAssertEqual(corrupt.count, 1, "\(t.problems)")
        XCTAssertTrue(corrupt.first?.file == cutPath)
        XCTAssertGreaterThan(t.events.count, 0)
        XCTAssertLessThan(t.events.count, full.events.count)
    }

    /// A small real file (no stacks) cut at every byte offset: never throws once the LZ4 magic
    /// number is there, reports the cut, and reads a prefix of each thread's events.
    func testCutAtEveryOffsetOfASmallFile() throws {
        let dir = makeTempDir("every")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let child = TraceChild.start("roundtrip", traceDir: dir, extraEnv: ["TANGLE_STACK_DEPTH": "0"])
        XCTAssertEqual(child.wait().status, 0)
        let file = try XCTUnwrap(traceFiles(dir).first)
        let full = try TraceReader.load(paths: [file])
        XCTAssertTrue(full.problems.filter { $0.kind != .dropped }.isEmpty, "\(full.problems)")
        let data = try Data(contentsOf: URL(fileURLWithPath: file))
        let cutPath = dir + "/cut/\(child.pid)-1.jsonl.lz4"
        try FileManager.default.createDirectory(atPath: dir + "/cut", withIntermediateDirectories: true)
        for cut in 0..<data.count {
            XCTAssertTrue(FileManager.default.createFile(atPath: cutPath, contents: data.prefix(cut)), "cannot write a test file")
            guard let t = try? TraceReader.load(paths: [cutPath]) else {
                XCTAssertLessThan(cut, 4, "unusable only before the magic number is complete (cut \(cut))")
                continue
            }
            XCTAssertTrue(t.problems.contains { $0.kind == .truncated || $0.kind == .empty }, "cut \(cut)")
            XCTAssertEqual(t.events, Array(full.events.prefix(t.events.count)), "cut \(cut): a prefix")
        }
    }

    /// Merge across files: time order, ties by pid/tid/seq, and the streaming API publishes
    /// headers and stacks.
    func testMergeAcrossFiles() throws {
        let dir = makeTempDir("merge")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let h1 = Self.header
        let h2 = Self.header.replacingOccurrences(of: "\"pid\":10", with: "\"pid\":20")
        _ = write(h1 + "\n" + """
        {"t":300,"tid":10,"k":"queue.put","o":1}
        {"t":500,"tid":10,"k":"queue.put","o":1,"s":1}
        {"k":"stack","id":1,"pcs":[10,20]}
        {"t":400,"tid":11,"k":"queue.put","o":1}
        """ + "\n", "10-100.jsonl", in: dir)
        _ = write(h2 + "\n" + """
        {"t":300,"tid":20,"k":"queue.get","o":1}
        {"t":450,"tid":20,"k":"queue.get","o":1}
        """ + "\n", "20-100.jsonl", in: dir)
        let stream = try TraceEventStream(paths: [dir])
        var got: [(UInt64, Int32)] = []
        while let e = try stream.next() { got.append((e.time, e.pid)) }
        XCTAssertEqual(got.map(\.0), [300, 300, 400, 450, 500])
        XCTAssertEqual(got.map(\.1), [10, 20, 10, 20, 10])
        XCTAssertEqual(Set(stream.headers.keys), [10, 20])
        XCTAssertEqual(stream.stacks[10]?[1], [10, 20])
    }

    static let headerV2 = #"{"k":"header","v":2,"pid":10,"ppid":1,"exe":"/bin/x","argv0":"x","clock":"CLOCK_MONOTONIC","boot":"b","t":1000,"proc":0,"modules":[]}"#

    private func writeLZ4(_ text: String, _ name: String, in dir: String) throws -> String {
        try writeTraceLZ4(text, name, in: dir)
    }

    /// Schema 2: `dt` is ns after the previous event line (the header's `t` for the first); `t` and
    /// `dt` lines mix in any key order; unknown kinds and generically parsed lines move the base,
    /// stack and module records do not, invalid lines (no tid, negative dt, not JSON) leave it.
    /// The same lines with absolute `t` read identically, plain and LZ4; `cat`'s JSON is absolute.
    func testSchemaV2DeltaTimes() throws {
        let dir = makeTempDir("v2")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let v2 = Self.headerV2 + "\n" + """
        {"dt":5,"tid":11,"k":"queue.put","o":5,"msg":7,"size":9}
        {"k":"stack","pid":10,"id":1,"pcs":[1,2]}
        {"tid":11,"dt":10,"k":"queue.get","s":1,"o":5,"msg":7,"size":9}
        {"t":2000,"tid":12,"k":"lock.new","type":1,"name":"x"}
        {"dt":3,"tid":12,"k":"future.kind","o":1}
        {"k":"module","t":9000,"module":{"path":"/y","build_id":"ab","bias":1,"lo":2,"hi":3}}
        {"tid":12,"k":"lock.acquired","o":9,"dt":4}
        {"dt":1,"tid":12,"k":"lock.released","o":9,"extra":{"x":1}}
        {"dt":2,"tid":12,"k":"other.kind","extra":[1]}
        {"dt":50,"k":"queue.put"}
        {"dt":-5,"tid":12,"k":"queue.put"}
        {"dt":-5,"tid":12,"k":"queue.put","extra":[1]}
        {"dt":40,"tid":12,"k":"queue.put","o":{"nested":1}
        not json {"dt":60}
        {"dt":0,"tid":12,"k":"lock.released","o":9}
        {"k":"stack","pid":10,"id":2,"pcs":[3]}
        {"dt":7,"k":"queue.put","tid":11,"o":5}
        """ + "\n"
        let expectedTimes: [UInt64] = [1005, 1015, 2000, 2007, 2008, 2010, 2017]
        // The same events in schema 1 (absolute t).
        let v1 = Self.header + "\n" + """
        {"t":1005,"tid":11,"k":"queue.put","o":5,"msg":7,"size":9}
        {"k":"stack","pid":10,"id":1,"pcs":[1,2]}
        {"t":1015,"tid":11,"k":"queue.get","s":1,"o":5,"msg":7,"size":9}
        {"t":2000,"tid":12,"k":"lock.new","type":1,"name":"x"}
        {"t":2007,"tid":12,"k":"lock.acquired","o":9}
        {"t":2008,"tid":12,"k":"lock.released","o":9}
        {"t":2010,"tid":12,"k":"lock.released","o":9}
        {"t":2017,"tid":11,"k":"queue.put","o":5}
        """ + "\n"
        try FileManager.default.createDirectory(atPath: dir + "/v1", withIntermediateDirectories: true)
        let reference = try TraceReader.load(paths: [write(v1, "10-100.jsonl", in: dir + "/v1")]).events
        XCTAssertEqual(reference.map(\.time), expectedTimes)
        for compressed in [false, true] {
            let sub = dir + (compressed ? "/lz4" : "/plain")
            try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: true)
            let path = compressed ? try writeLZ4(v2, "10-1000.jsonl.lz4", in: sub) : write(v2, "10-1000.jsonl", in: sub)
            let trace = try TraceReader.load(paths: [path])
            XCTAssertEqual(trace.events.map(\.time), expectedTimes, "compressed: \(compressed)")
            XCTAssertEqual(trace.events, reference, "compressed: \(compressed)")
            XCTAssertEqual(trace.events.map(\.seq), [0, 1, 0, 1, 2, 3, 2])
            XCTAssertEqual(trace.headers[10]?.schemaVersion, 2)
            XCTAssertEqual(trace.stacks[10]?[2], [3])
            XCTAssertEqual(trace.problems.filter { $0.kind == .unknownKind }.map(\.count), [1, 1])
            XCTAssertEqual(trace.problems.filter { $0.kind == .invalidLine }.count, 5, "\(trace.problems)")
            XCTAssertFalse(trace.problems.contains { $0.kind == .truncated || $0.kind == .corrupt })
            XCTAssertTrue(EventJSON.string(trace.events[1]).hasPrefix(#"{"t":1015,"#))
        }
    }

    /// A v2 LZ4 file cut in the middle reads up to the break with every time restored exactly
    /// (the prefix of the uncut file's events), and reports the cut.
    func testSchemaV2CutFileKeepsTimes() throws {
        let dir = makeTempDir("v2cut")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var lines = [Self.headerV2]
        var t: UInt64 = 1000
        var times: [UInt64] = []
        var rng = seededGenerator()
        for i in 0..<30000 {
            let d = UInt64.random(in: 1...5000, using: &rng)  // no ties: the merge's order is the file's
            t += d
            let tid = 11 + i % 3
            switch i % 97 {
            case 0:
                lines.append(#"{"k":"stack","pid":10,"id":\#(i),"pcs":[\#(i),2,3]}"#)
                lines.append(#"{"dt":\#(d),"tid":\#(tid),"k":"queue.put","o":5,"s":\#(i),"msg":\#(i),"size":9}"#)
            case 1:
                lines.append(#"{"dt":\#(d),"tid":\#(tid),"k":"no.such.kind","o":5}"#)
                continue
            case 2:
                lines.append(#"{"t":\#(t),"tid":\#(tid),"k":"queue.get","o":5,"msg":\#(i),"size":9}"#)
            default:
                lines.append(#"{"dt":\#(d),"tid":\#(tid),"k":"queue.get","o":5,"msg":\#(i),"size":9}"#)
            }
            times.append(t)
        }
        let path = try writeLZ4(lines.joined(separator: "\n") + "\n", "10-1000.jsonl.lz4", in: dir)
        let full = try TraceReader.load(paths: [path])
        XCTAssertFalse(full.problems.contains { $0.kind == .truncated || $0.kind == .corrupt })
        // The merge orders by time, ties by tid: compare sorted.
        XCTAssertEqual(full.events.map(\.time), times.sorted())
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let cutDir = dir + "/cut"
        try FileManager.default.createDirectory(atPath: cutDir, withIntermediateDirectories: true)
        for cut in [data.count / 3, data.count / 2, data.count / 2 + 1, data.count - 100] {
            let cutPath = cutDir + "/10-1000.jsonl.lz4"
            XCTAssertTrue(FileManager.default.createFile(atPath: cutPath, contents: data.prefix(cut)), "cannot write a test file")
            let part = try TraceReader.load(paths: [cutPath])
            XCTAssertEqual(part.truncated.count, 1, "cut \(cut): \(part.problems)")
            XCTAssertGreaterThan(part.events.count, 0)
            XCTAssertLessThan(part.events.count, full.events.count)
            XCTAssertEqual(part.events, Array(full.events.prefix(part.events.count)), "cut \(cut)")
        }
    }

    /// Lines whose text after `{"dt":N` repeats (decoded once, then reused) read exactly as the
    /// same trace with absolute `t` on every line: explicit seq, names with escapes, unknown keys,
    /// `dropped`, a repeated unknown kind and a repeated invalid line (each counted every time), a
    /// line with a second `dt` (the last wins), across many dt values and interleaved threads.
    func testSchemaV2RepeatedLineEnds() throws {
        let dir = makeTempDir("v2rep")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ends = [
            #","tid":11,"k":"lock.acquired","o":9,"s":3,"depth":1}"#,
            #","tid":11,"k":"lock.released","o":9,"s":4}"#,
            #","tid":12,"seq":40,"k":"lock.acquired","o":9,"depth":1,"junk":5,"more":"x"}"#,
            #","tid":12,"k":"lock.new","o":77,"type":1,"name":"a\"b\u00e9"}"#,
            #","tid":13,"k":"queue.get","o":5,"msg":8,"size":64,"r":"timeout"}"#,
            #","tid":13,"k":"dropped","count":2}"#,
            #","tid":13,"k":"no.such.kind","o":1}"#,
            #","k":"queue.put","o":1}"#,
            #","tid":11,"k":"lock.acquired","o":9,"dt":7}"#,
        ]
        var v2 = [Self.headerV2], v1 = [Self.header.replacingOccurrences(of: "\"t\":100", with: "\"t\":1000")]
        var base: UInt64 = 1000
        var rng = seededGenerator()
        for _ in 0..<3000 {
            let k = Int.random(in: 0..<ends.count, using: &rng)
            let d = UInt64.random(in: 0...300, using: &rng)
            let end = ends[k]
            v2.append(#"{"dt":\#(d)"# + end)
            if k == 7 {
                v1.append(#"{"t":\#(base + d)"# + end)  // invalid (no tid): the base stays
                continue
            }
            let t = k == 8 ? base + 7 : base + d
            v1.append(#"{"t":\#(t)"# + (k == 8 ? #","tid":11,"k":"lock.acquired","o":9}"# : end))
            base = t
        }
        let p2 = write(v2.joined(separator: "\n") + "\n", "10-1000.jsonl", in: dir)
        try FileManager.default.createDirectory(atPath: dir + "/v1", withIntermediateDirectories: true)
        let p1 = write(v1.joined(separator: "\n") + "\n", "10-1000.jsonl", in: dir + "/v1")
        func read(_ path: String) throws -> ([TraceEvent], UInt64, UInt64, [String: UInt64]) {
            let stream = try TraceEventStream(paths: [path])
            var events: [TraceEvent] = []
            while let e = try stream.next() { events.append(e) }
            let d = try XCTUnwrap(stream.decoders.first)
            return (events, d.unknownKeys, d.invalidLines, d.unknownKinds)
        }
        let (e2, uk2, inv2, kinds2) = try read(p2)
        let (e1, uk1, inv1, kinds1) = try read(p1)
        XCTAssertGreaterThan(e1.count, 2000)
        XCTAssertEqual(e2, e1)
        XCTAssertEqual(uk2, uk1)
        XCTAssertEqual(inv2, inv1)
        XCTAssertGreaterThan(inv1, 0)
        XCTAssertEqual(kinds2, kinds1)
        XCTAssertTrue(e2.contains { $0.text == "a\"bé" && $0.kind == .lockNew })
    }

    /// The generic JSON parser: nesting, escapes, numbers.
    func testJSONParser() {
        XCTAssertEqual(JSONParser.parse(#"{"a":[1,-2,3.5,true,null,"x\u0041"],"b":{}}"#),
                       .object([("a", .array([.uint(1), .int(-2), .double(3.5), .bool(true), .null, .string("xA")])), ("b", .object([]))]))
        XCTAssertNil(JSONParser.parse(#"{"a":1"#))
        XCTAssertNil(JSONParser.parse(#"{"a":1} x"#))
        XCTAssertNil(JSONParser.parse(String(repeating: "[", count: 1000)))
    }
}
