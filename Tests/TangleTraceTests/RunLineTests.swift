import Foundation
import XCTest
@testable import TangleTraceFormat
@testable import TangleTraceReader
import TangleTestSupport

/// Schema 3 run lines: `"tp":N` on an event line declares template N, and each `dt,N` pair of a
/// later `{"k":"run","e":[…]}` line is that event again, dt ns after the previous event line,
/// with its thread's next seq.
final class RunLineTests: XCTestCase {
    static let headerV3 = #"{"k":"header","v":3,"pid":10,"ppid":1,"exe":"/bin/x","argv0":"x","clock":"CLOCK_MONOTONIC","boot":"b","t":1000,"proc":0,"modules":[]}"#
    static let headerV1 = #"{"k":"header","v":1,"pid":10,"ppid":1,"exe":"/bin/x","argv0":"x","clock":"CLOCK_MONOTONIC","boot":"b","t":1000,"proc":0,"modules":[]}"#

    /// Random traces written the way the recorder writes them (declarations, runs of pairs closed
    /// by other lines, template numbers reused by other events, explicit seqs, names, unknown
    /// keys, stack records between runs) read exactly as the same events with an absolute `t`
    /// on every line — plain and LZ4, and through the generic parser when a run line has its
    /// keys in another order.
    func testRunsReadAsTheEventsTheyRepeat() throws {
        let dir = makeTempDir("runs")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // What the event is, after the time (and seq): several share template numbers.
        let bodies: [(body: String, slot: Int)] = [
            (#""tid":11,"k":"lock.acquired","o":9,"s":3,"depth":1}"#, 0),
            (#""tid":11,"k":"lock.released","o":9}"#, 1),
            (#""tid":12,"k":"lock.acquired","o":9,"depth":1,"junk":5}"#, 0),
            (#""tid":12,"k":"lock.new","o":77,"type":1,"name":"a\"b\u00e9"}"#, 2),
            (#""tid":13,"k":"queue.put","o":5,"msg":8,"size":64}"#, 255),
            (#""tid":13,"k":"dropped","count":2}"#, 3),
            (#""tid":11,"k":"queue.get","o":5,"msg":8,"size":64}"#, 1000),
        ]
        for genericRuns in [false, true] {
            var v3 = [Self.headerV3], v1 = [Self.headerV1]
            var declared: [Int: Int] = [:]   // slot -> body
            var run: [UInt64] = []
            func closeRun() {
                guard !run.isEmpty else { return }
                let e = run.map(String.init).joined(separator: ",")
                v3.append(genericRuns ? #"{"e":[\#(e)],"k":"run"}"# : #"{"k":"run","e":[\#(e)]}"#)
                run = []
            }
            var t: UInt64 = 1000
            var rng = seededGenerator()
            for i in 0..<4000 {
                let k = Int.random(in: 0..<bodies.count, using: &rng)
                let d = UInt64.random(in: 0...400, using: &rng)
                let (body, slot) = bodies[k]
                t += d
                if i % 301 == 0 {
                    closeRun()
                    v3.append(#"{"k":"stack","pid":10,"id":\#(i + 1),"pcs":[1,2]}"#)
                }
                let explicitSeq = i % 97 == 5
                let seqPart = explicitSeq ? #""seq":\#(i * 10),"# : ""
                if declared[slot] == k && !explicitSeq && Int.random(in: 0..<20, using: &rng) > 0 {
                    run += [d, UInt64(slot)]
                    if run.count >= 2 * Int.random(in: 1...40, using: &rng) { closeRun() }
                } else {
                    closeRun()
                    v3.append(#"{"dt":\#(d),\#(seqPart)"tp":\#(slot),"# + body)
                    declared[slot] = k
                }
                v1.append(#"{"t":\#(t),\#(seqPart)"# + body)
            }
            closeRun()
            let tag = genericRuns ? "generic" : "fast"
            try FileManager.default.createDirectory(atPath: dir + "/\(tag)/v1", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: dir + "/\(tag)/lz4", withIntermediateDirectories: true)
            let p1 = writeTraceText(v1.joined(separator: "\n") + "\n", "10-1000.jsonl", in: dir + "/\(tag)/v1")
            let p3 = writeTraceText(v3.joined(separator: "\n") + "\n", "10-1000.jsonl", in: dir + "/\(tag)")
            let p3z = try writeTraceLZ4(v3.joined(separator: "\n") + "\n", "10-1000.jsonl.lz4", in: dir + "/\(tag)/lz4")
            XCTAssertLessThan(v3.count, v1.count / 2, "most events should be run pairs")
            let (e1, uk1, inv1) = try readFile(p1)
            XCTAssertEqual(e1.count, 4000)
            XCTAssertEqual(inv1, 0)
            for p in [p3, p3z] {
                let (e3, uk3, inv3) = try readFile(p)
                assertSameEvents(e3, e1, "\(tag) \(p)")
                XCTAssertEqual(uk3, uk1, "\(tag): unknown keys of a template count at every use")
                XCTAssertEqual(inv3, 0, "\(tag)")
            }
        }
    }

    /// Hand-written edge cases: an entry naming a template no line declared (reported, skipped,
    /// its dt still counted), spaces, an empty run, a malformed and a cut entry (the line ends
    /// there, the entries before it stay), a template redeclared by another thread, a template
    /// number out of range, a cached line redeclaring its template, junk after the array, a
    /// template of an unknown kind (its pairs count as unknown events and move the time).
    func testRunEdgeCases() throws {
        let dir = makeTempDir("runedge")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let text = Self.headerV3 + "\n" + #"""
        {"dt":5,"tp":0,"tid":11,"k":"lock.acquired","o":9,"depth":1}
        {"k":"run","e":[1,0,2,0]}
        {"k":"run","e":[3,7,4,0]}
        {"k":"run","e":[ 1 , 0 ] }
        {"e":[2,0],"k":"run"}
        {"k":"run","e":[]}
        {"k":"run","e":[1,0,x,0]}
        {"k":"run","e":[1,0,2
        {"dt":1,"tp":0,"tid":12,"k":"lock.released","o":9}
        {"k":"run","e":[1,0]}
        {"dt":1,"tp":5000,"tid":12,"k":"lock.released","o":9}
        {"k":"run","e":[1,0]}x
        {"dt":1,"tp":0,"tid":11,"k":"lock.acquired","o":9,"depth":1}
        {"dt":1,"tp":0,"tid":12,"k":"lock.released","o":9}
        {"dt":1,"tp":0,"tid":11,"k":"lock.acquired","o":9,"depth":1}
        {"k":"run","e":[2,0]}
        {"dt":1,"tp":9,"tid":11,"k":"future.kind","o":1}
        {"k":"run","e":[1,9,1,0]}
        """# + "\n"
        let path = writeTraceText(text, "10-1000.jsonl", in: dir)
        let stream = try TraceEventStream(paths: [path])
        var events: [TraceEvent] = []
        while let e = try stream.next() { events.append(e) }
        let d = try XCTUnwrap(stream.decoders.first)
        let got = events.map { "\($0.time) \($0.tid) \($0.seq) \($0.kind.name)" }
        XCTAssertEqual(got, [
            "1005 11 0 lock.acquired",
            "1006 11 1 lock.acquired",
            "1008 11 2 lock.acquired",
            "1015 11 3 lock.acquired",   // after the undeclared entry's 3 ns
            "1016 11 4 lock.acquired",   // spaces
            "1018 11 5 lock.acquired",   // generic parser
            "1019 11 6 lock.acquired",   // before the malformed entry
            "1020 11 7 lock.acquired",   // before the cut entry
            "1021 12 0 lock.released",   // template 0 is now thread 12's
            "1022 12 1 lock.released",
            "1023 12 2 lock.released",   // out-of-range declaration: the event stays
            "1024 12 3 lock.released",
            "1025 11 8 lock.acquired",
            "1026 12 4 lock.released",
            "1027 11 9 lock.acquired",   // a repeated line (decoded from cache) declares again
            "1029 11 10 lock.acquired",
            "1032 11 11 lock.acquired",  // after a declared template of a kind this reader does not know
        ])
        XCTAssertTrue(events.allSatisfy { $0.object == 9 && $0.pid == 10 })
        XCTAssertEqual(events.filter { $0.kind == .lockAcquired }.map(\.a), Array(repeating: 1, count: 12))
        XCTAssertEqual(d.unknownKinds, ["future.kind": 2], "the line and its pair")
        // undeclared, malformed, cut, out of range, junk after the array
        XCTAssertEqual(d.invalidLines, 5, "\(d.problems)")
        XCTAssertTrue(d.problems.contains { $0.message.contains("template 7, which no line declared") })
    }

    /// An LZ4 v3 trace cut anywhere reads a prefix of the whole trace's events, times exact.
    func testCutRunTraceReadsAPrefix() throws {
        let dir = makeTempDir("runcut")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var lines = [Self.headerV3]
        var run: [String] = []
        for i in 0..<20000 {
            let d = i % 7 + 1
            let slot = i % 3
            if i < 3 || i % 500 == 0 {
                if !run.isEmpty { lines.append(#"{"k":"run","e":[\#(run.joined(separator: ","))]}"#); run = [] }
                lines.append(#"{"dt":\#(d),"tp":\#(slot),"tid":\#(11 + slot),"k":"queue.put","o":5,"msg":\#(i),"size":9}"#)
            } else {
                run.append("\(d),\(slot)")
                if run.count == 300 { lines.append(#"{"k":"run","e":[\#(run.joined(separator: ","))]}"#); run = [] }
            }
        }
        if !run.isEmpty { lines.append(#"{"k":"run","e":[\#(run.joined(separator: ","))]}"#) }
        let path = try writeTraceLZ4(lines.joined(separator: "\n") + "\n", "10-1000.jsonl.lz4", in: dir)
        let full = try readFile(path)
        XCTAssertEqual(full.events.count, 20000)
        XCTAssertEqual(full.invalid, 0)
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let cutDir = dir + "/cut"
        try FileManager.default.createDirectory(atPath: cutDir, withIntermediateDirectories: true)
        for cut in stride(from: 40, to: data.count, by: max(1, data.count / 23)) {
            let cutPath = cutDir + "/10-1000.jsonl.lz4"
            XCTAssertTrue(FileManager.default.createFile(atPath: cutPath, contents: data.prefix(cut)), "cannot write a test file")
            let part = try readFile(cutPath)
            XCTAssertLessThan(part.events.count, full.events.count, "cut \(cut)")
            assertSameEvents(part.events, Array(full.events.prefix(part.events.count)), "cut \(cut)")
        }
    }

    /// Equal event lists, or the count and the first difference (not two whole lists).
    private func assertSameEvents(_ got: [TraceEvent], _ want: [TraceEvent], _ what: String,
                                  file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, want.count, what, file: file, line: line)
        if let i = (0..<min(got.count, want.count)).first(where: { got[$0] != want[$0] }) {
            XCTFail("\(what): event \(i) is \(got[i]), expected \(want[i])", file: file, line: line)
        }
    }

    private func readFile(_ path: String) throws -> (events: [TraceEvent], unknownKeys: UInt64, invalid: UInt64) {
        let stream = try TraceEventStream(paths: [path])
        var events: [TraceEvent] = []
        while let e = try stream.next() { events.append(e) }
        let d = try XCTUnwrap(stream.decoders.first)
        return (events, d.unknownKeys, d.invalidLines)
    }
}

/// `TraceCut` (what `tangle run` does at its stop) on traces with run lines.
final class TraceCutTests: XCTestCase {
    /// Cutting at many times keeps exactly the events before the cut, with their times, seqs and
    /// templates (runs cut inside keep their prefix), and moves the whole file aside.
    func testCutKeepsTheEventsBeforeTheCut() throws {
        var lines = [RunLineTests.headerV3]
        var run: [String] = []
        func closeRun() {
            if !run.isEmpty { lines.append(#"{"k":"run","e":[\#(run.joined(separator: ","))]}"#); run = [] }
        }
        for i in 0..<3000 {
            let slot = i % 4
            let d = (i * 7) % 13
            if i < 4 || i % 250 == 0 {
                closeRun()
                if i % 500 == 0 { lines.append(#"{"k":"stack","pid":10,"id":\#(i + 1),"pcs":[1,2]}"#) }
                lines.append(#"{"dt":\#(d),"tp":\#(slot),"tid":\#(11 + slot % 2),"k":"lock.acquired","o":\#(slot),"depth":1}"#)
            } else if i % 333 == 0 {
                closeRun()
                lines.append(#"{"dt":\#(d),"tid":13,"k":"lock.released","o":7}"#)
            } else {
                run.append("\(d),\(slot)")
                if run.count == 100 { closeRun() }
            }
        }
        closeRun()
        let text = lines.joined(separator: "\n") + "\n"
        let dir = makeTempDir("cut")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let whole = try TraceReader.load(paths: [try writeTraceLZ4(text, "10-1000.jsonl.lz4", in: dir)]).events
        XCTAssertEqual(whole.count, 3000)
        for cut in [UInt64(1000), 1001, whole[700].time, whole[1234].time + 1, whole[2999].time, whole[2999].time + 1] {
            let sub = dir + "/\(cut)"
            try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: true)
            _ = try writeTraceLZ4(text, "10-1000.jsonl.lz4", in: sub)
            let result = try TraceCut.cut(directory: sub, at: cut)
            let kept = whole.filter { $0.time < cut }
            XCTAssertEqual(result.files, 1)
            XCTAssertEqual(result.dropped, whole.count - kept.count, "cut \(cut)")
            let after = try TraceReader.load(paths: [sub])
            XCTAssertTrue(after.problems.isEmpty, "cut \(cut): \(after.problems)")
            XCTAssertEqual(after.events, kept, "cut \(cut)")
            XCTAssertEqual(try TraceReader.load(paths: [sub + "/" + TraceCut.asideDirectory]).events, whole)
        }
    }
}
