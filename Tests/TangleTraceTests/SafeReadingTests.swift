import Foundation
import XCTest
@testable import TangleTraceFormat
@testable import TangleRecorder
@testable import TangleTraceReader
import TangleTestSupport

extension TraceChildren {
    /// A queue whose name is 2 MB long (a real program can pass one), then a few events.
    static func longName() -> Int32 {
        Recorder.start(processObject: 3, name: "longname")
        let name = String(repeating: "é", count: 1 << 20)  // 2 MB of UTF-8
        Recorder.record(.queueNew, object: 11, text: name, a: 0, b: 0)
        for i in 0..<10 { Recorder.record(.queuePut, object: 11, a: UInt64(i + 1), b: 8) }
        Recorder.processExiting(status: 0, signal: 0)
        return 0
    }
}

/// The reader on traces that are cut, damaged, huge or hostile: no crash, a clear problem with
/// the file and offset, and nothing invented.
final class SafeReadingTests: XCTestCase {
    private func dir(_ tag: String) -> String {
        let d = makeTempDir(tag)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
        return d
    }

    func testLongNameIsCutWhenRecordedSoNoLineExceedsTheLimit() throws {
        let (_, trace, _) = try runTracedChild("longname")
        let new = try XCTUnwrap(trace.events.first { $0.kind == .queueNew })
        let text = try XCTUnwrap(new.text)
        XCTAssertLessThanOrEqual(text.utf8.count, TraceLimits.maxNameBytes)
        XCTAssertTrue(text.hasSuffix(TraceLimits.nameCutMarker), "the cut is marked")
        XCTAssertTrue(text.hasPrefix("ééé"))
        XCTAssertEqual(trace.events.filter { $0.kind == .queuePut }.count, 10)
    }

    /// Lines just under the limit, between short ones: the buffer grows and its spare is reused
    /// (the old reader wrote past a 1 MB spare here); every line comes back intact.
    func testLinesNearTheLimitReadIntactThroughBufferGrowth() throws {
        let d = dir("nearlimit")
        var text = "{\"k\":\"header\",\"v\":3,\"pid\":7,\"t\":1000}\n"
        let long = TraceLimits.maxLineBytes - 200
        for i in 0..<5 {
            for j in 0..<2000 { text += "{\"t\":\(2000 + i * 10000 + j),\"tid\":7,\"k\":\"lock.acquired\",\"o\":5}\n" }
            text += "{\"t\":\(2000 + i * 10000 + 5000),\"tid\":7,\"k\":\"queue.new\",\"o\":\(i + 1),\"name\":\"" + String(repeating: "q", count: long) + "\"}\n"
        }
        for compressed in [true, false] {
            let path = compressed ? try writeTraceLZ4(text, "7-1000.jsonl.lz4", in: d) : writeTraceText(text, "7-1000.jsonl", in: d)
            let trace = try TraceReader.load(paths: [path])
            XCTAssertEqual(trace.problems, [], "compressed: \(compressed)")
            XCTAssertEqual(trace.events.count, 5 * 2001)
            XCTAssertEqual(trace.events.filter { $0.kind == .queueNew }.map { $0.text?.utf8.count ?? 0 }, Array(repeating: long, count: 5))
            try FileManager.default.removeItem(atPath: path)
        }
    }

    /// A line over the limit (the 1 MB-plus line after 1 MB of output): reported with the
    /// file and offset, skipped, and the lines after it still read — compressed and plain.
    func testLineOverTheLimitIsReportedWithFileAndOffset() throws {
        let d = dir("overlimit")
        var text = "{\"k\":\"header\",\"v\":3,\"pid\":7,\"t\":1000}\n"
        for j in 0..<30000 { text += "{\"t\":\(2000 + j),\"tid\":7,\"k\":\"lock.acquired\",\"o\":5}\n" }
        let offset = text.utf8.count
        text += "{\"t\":50000,\"tid\":7,\"k\":\"queue.new\",\"o\":9,\"name\":\"" + String(repeating: "x", count: 3 << 20) + "\"}\n"
        for j in 0..<10 { text += "{\"t\":\(60000 + j),\"tid\":7,\"k\":\"lock.released\",\"o\":5}\n" }
        for compressed in [true, false] {
            let path = compressed ? try writeTraceLZ4(text, "7-1000.jsonl.lz4", in: d) : writeTraceText(text, "7-1000.jsonl", in: d)
            let trace = try TraceReader.load(paths: [path])
            let p = try XCTUnwrap(trace.problems.first { $0.kind == .lineTooLong }, "\(trace.problems)")
            XCTAssertEqual(p.file, path)
            if compressed {
                // (the decompressed text also holds the frame writer's block markers)
                let at = p.message.split(separator: " ").drop { $0 != "byte" }.dropFirst().first.flatMap { Int($0) } ?? -1
                XCTAssertTrue(at >= offset && at < offset + 64 * (offset / TraceLimits.unitBytes + 1), p.message)
            } else {
                XCTAssertTrue(p.message.contains("at byte \(offset)"), p.message)
                XCTAssertEqual(p.offset, UInt64(offset))
            }
            XCTAssertEqual(trace.events.filter { $0.kind == .lockAcquired }.count, 30000)
            XCTAssertEqual(trace.events.filter { $0.kind == .lockReleased }.count, 10, "the lines after it still read")
            XCTAssertFalse(trace.events.contains { $0.kind == .queueNew })
            try FileManager.default.removeItem(atPath: path)
        }
    }

    /// Devices, FIFOs and directories are refused at once (no read from /dev/zero, no wait for a
    /// FIFO's writer).
    func testOnlyRegularFilesAreRead() throws {
        XCTAssertThrowsError(try TraceReader.load(paths: ["/dev/zero"])) { e in
            XCTAssertTrue("\(e)".contains("not a regular file"), "\(e)")
        }
        let d = dir("fifo")
        let fifo = d + "/1-1.jsonl.lz4"
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        XCTAssertThrowsError(try RawTraceFile(path: fifo)) { e in
            XCTAssertTrue("\(e)".contains("FIFO"), "\(e)")
        }
    }

    // MARK: damaged frames

    /// The blocks of an LZ4 frame: (offset, length) of each, header and end mark excluded.
    static func blocks(_ data: [UInt8]) throws -> (header: Int, blocks: [(Int, Int)], end: Int) {
        guard data.count >= 7, data[0] == 0x04, data[1] == 0x22, data[2] == 0x4D, data[3] == 0x18 else { throw TraceReadError(file: "", message: "not LZ4") }
        let flg = data[4]
        var pos = 6 + ((flg & 0x08) != 0 ? 8 : 0) + ((flg & 0x01) != 0 ? 4 : 0) + 1
        let header = pos
        let blockChecksum = (flg & 0x10) != 0
        var out: [(Int, Int)] = []
        while pos + 4 <= data.count {
            let size = Int(UInt32(data[pos]) | UInt32(data[pos + 1]) << 8 | UInt32(data[pos + 2]) << 16 | UInt32(data[pos + 3]) << 24) & 0x7FFF_FFFF
            if size == 0 { break }
            let len = 4 + size + (blockChecksum ? 4 : 0)
            if pos + len > data.count { break }
            out.append((pos, len))
            pos += len
        }
        return (header, out, pos)
    }

    func testDroppedDuplicatedAndReorderedBlocksAreDetectedAndNothingIsInvented() throws {
        let (_, trace, d) = try runTracedChild("threads", extraEnv: ["TANGLE_TEST_THREADS": "2", "TANGLE_TEST_EVENTS": "60000"])
        let file = try XCTUnwrap(traceFiles(d).first)
        let data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file)))
        let (header, blocks, end) = try Self.blocks(data)
        XCTAssertGreaterThanOrEqual(blocks.count, 6, "a trace of several blocks")
        let original = trace.events
        let seed = UInt64(ProcessInfo.processInfo.environment["TANGLE_TEST_SEED"] ?? "") ?? UInt64(time(nil))
        var rng = SeededGenerator(seed: seed)
        for variant in ["drop", "duplicate", "reorder"] {
            let k = 1 + Int(rng.next() % UInt64(blocks.count - 2))  // not the header's block, not the last
            var order = Array(0..<blocks.count)
            switch variant {
            case "drop": order.remove(at: k)
            case "duplicate": order.insert(k, at: k)
            default: order.swapAt(k, k + 1)
            }
            var bytes = Array(data[0..<header])
            for i in order { bytes += data[blocks[i].0 ..< blocks[i].0 + blocks[i].1] }
            bytes += data[end...]
            let damagedPath = d + "/damaged-\(variant).jsonl.lz4"
            try Data(bytes).write(to: URL(fileURLWithPath: damagedPath))
            let got = try TraceReader.load(paths: [damagedPath])
            let msg = "seed \(seed) (TANGLE_TEST_SEED=\(seed) replays), \(variant) of block \(k) of \(blocks.count)"
            let p = try XCTUnwrap(got.problems.first { $0.kind == .damaged }, "\(msg): \(got.problems)")
            XCTAssertEqual(p.file, damagedPath)
            // Reported at the damaged block or the one after it (where the decoding went wrong).
            let damagedAt = blocks[k].0
            XCTAssertTrue(p.offset >= UInt64(damagedAt) && p.offset <= UInt64(damagedAt + 3 * (64 << 10)),
                          "\(msg): offset \(p.offset), block at \(damagedAt): \(p.message)")
            XCTAssertGreaterThan(p.count, 0, "\(msg): the left-out lines are counted")
            // Nothing invented: what was read is a prefix of the original events, per file order.
            let gotSorted = got.events.sorted { ($0.tid, $0.seq) < ($1.tid, $1.seq) }
            let originalByKey = Dictionary(uniqueKeysWithValues: original.map { (String($0.tid) + ":" + String($0.seq), $0) })
            for e in gotSorted {
                XCTAssertEqual(originalByKey[String(e.tid) + ":" + String(e.seq)], e, msg)
            }
            XCTAssertLessThan(got.events.count, original.count, msg)
        }
    }
}
