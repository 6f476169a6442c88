import CLZ4
import Glibc
import TangleTraceFormat

/// A problem found while reading: the prefix before it is still read.
public struct TraceProblem: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// The file stops before its end mark: a cut file, a killed writer or one still writing.
        case truncated
        /// Bytes that do not decode (bad LZ4 data or checksum): reading the file stopped there.
        case corrupt
        /// A line that is not valid JSON, or lacks a required field: skipped.
        case invalidLine = "invalid-line"
        /// Events of kinds this reader does not know: skipped (count in `count`).
        case unknownKind = "unknown-kind"
        /// The recorder could not record some events (`dropped` records; count in `count`).
        case dropped
        /// An empty file (a writer that had not written its header yet).
        case empty
        /// A line longer than `TraceLimits.maxLineBytes`: skipped (a plain file or an old schema)
        /// or, in a schema-4 LZ4 file, damage.
        case lineTooLong = "line-too-long"
        /// A schema-4 LZ4 file whose units do not follow each other (a block missing, repeated or
        /// out of order, or text that does not hash to its marker): nothing after it is analyzed;
        /// `count` says how many lines were left out.
        case damaged = "damaged-frame"
        /// A file with the same pid and start as another one (a copy): read once.
        case duplicateFile = "duplicate-file"
    }
    public var kind: Kind
    public var file: String
    /// Byte offset in the file (compressed bytes for .lz4) where the problem is, when known.
    public var offset: UInt64
    public var message: String
    public var count: UInt64

    public init(kind: Kind, file: String, offset: UInt64, message: String, count: UInt64 = 1) {
        self.kind = kind
        self.file = file
        self.offset = offset
        self.message = message
        self.count = count
    }

    public var description: String { "\(file): \(kind.rawValue) at byte \(offset): \(message)" }
}

/// Unusable input: no trace files, a file that is not a trace at all, an unreadable path.
public struct TraceReadError: Error, Sendable, CustomStringConvertible {
    public var file: String
    public var message: String
    public init(file: String, message: String) {
        self.file = file
        self.message = message
    }
    public var description: String { "\(file): \(message)" }
}

/// The raw layer: a trace file's bytes as lines. Decompresses LZ4 frames (detected by their magic
/// number, whatever the file name) or reads plain JSON lines. Memory is bounded by construction:
/// a line is at most `TraceLimits.maxLineBytes` (a longer one is reported with its offset), so the
/// output buffer never needs more than twice a unit and a block. A cut file yields the lines
/// before the cut (a partial last line is dropped) and reports truncation; corrupt data stops the
/// file and reports where. Schema-4 LZ4 files end each unit with a block marker
/// (`BlockMarker`): their lines are given out only once their unit's marker has checked out.
public final class RawTraceFile {
    public let path: String
    @exclusivity(unchecked) public private(set) var compressed = false
    /// Problems of the raw layer (truncation, corruption, damage, over-long lines).
    @exclusivity(unchecked) public private(set) var problems: [TraceProblem] = []
    /// True once the LZ4 end mark was read (a finished file).
    @exclusivity(unchecked) public private(set) var complete = false
    /// Decompressed offset of the line last returned.
    @exclusivity(unchecked) public private(set) var lineOffset: UInt64 = 0
    /// Bytes read from the file so far.
    @exclusivity(unchecked) public private(set) var fileBytesRead: UInt64 = 0
    /// The file carries block markers (schema 4, LZ4) and they are being checked.
    @exclusivity(unchecked) public private(set) var verifying = false
    /// Lines that could not be trusted (after damage, or after the last marker of a cut file):
    /// counted, never given out.
    @exclusivity(unchecked) public private(set) var untrustedLines: UInt64 = 0
    /// Units whose marker checked out.
    @exclusivity(unchecked) public private(set) var verifiedUnits: UInt64 = 0

    @exclusivity(unchecked) private var fd: Int32
    @exclusivity(unchecked) private var inBuf: UnsafeMutablePointer<UInt8>
    private let inCap = 1 << 17
    @exclusivity(unchecked) private var inPos = 0, inEnd = 0
    @exclusivity(unchecked) private var inFileOffset: UInt64 = 0   // file offset of inBuf[0]
    @exclusivity(unchecked) private var outBuf: UnsafeMutablePointer<UInt8>
    /// Starts at two blocks' room (a trace with many small files, one open per live process, stays
    /// small); grows by doubling while a long line or a unit needs it, never past ~2.3 MB.
    @exclusivity(unchecked) private var outCap = 1 << 18
    @exclusivity(unchecked) private var outStart = 0, outEnd = 0
    @exclusivity(unchecked) private var outBase: UInt64 = 0        // decompressed offset of outBuf[0]
    /// Where the search for the pending line's newline goes on (it is never rescanned).
    @exclusivity(unchecked) private var scanFrom = 0
    /// A line over the limit is being skipped (plain files, old schemas).
    @exclusivity(unchecked) private var skipping = false
    @exclusivity(unchecked) private var firstLineSeen = false
    // Schema 4: `released` ends the checked lines; the unit being checked starts at `unitStart`,
    // checked line by line up to `checkPos`; its marker line (`markerStart..<markerEnd`) is
    // skipped when the reader gets there.
    @exclusivity(unchecked) private var released = 0
    @exclusivity(unchecked) private var unitStart = 0
    @exclusivity(unchecked) private var checkPos = 0
    @exclusivity(unchecked) private var markerStart = 0
    @exclusivity(unchecked) private var markerEnd = 0
    @exclusivity(unchecked) private var markerPending = false
    @exclusivity(unchecked) private var nextUnit: UInt64 = 0
    @exclusivity(unchecked) private var damaged = false
    /// The unit being checked began with a line longer than a unit (only its marker may follow).
    @exclusivity(unchecked) private var longUnit = false
    /// Compressed offset of the LZ4 block decoded last (where damage is reported).
    @exclusivity(unchecked) private var blockOffset: UInt64 = 0
    @exclusivity(unchecked) private var dctx: OpaquePointer?
    @exclusivity(unchecked) private var eof = false
    @exclusivity(unchecked) private var stopped = false
    @exclusivity(unchecked) private var lastHint = 19  // the largest frame header
    @exclusivity(unchecked) private var anyOutput = false
    // LZ4 decodes with `stableDst` (no 64 KB copy of its history per block): the previous output
    // stays where it was until the next call that produces output. So a compressed file's output
    // buffer is never moved under the decoder: lines are decoded forward, and when room runs out
    // the pending text goes to another buffer while the old one is kept (`retired`) until the
    // decoder has written past it; then it becomes the spare — only ever reused for a buffer of
    // its own capacity (`spareCap`).
    @exclusivity(unchecked) private var decompressOptions = LZ4F_decompressOptions_t()
    @exclusivity(unchecked) private var spareBuf: UnsafeMutablePointer<UInt8>?
    @exclusivity(unchecked) private var spareCap = 0
    @exclusivity(unchecked) private var retired: [(UnsafeMutablePointer<UInt8>, Int)] = []
    @exclusivity(unchecked) private var freed = false
    /// Room a read wants after the pending text: a whole block (64 KB) and a little.
    private static let blockRoom = (64 << 10) + 64

    /// Opens `path`, which must be a regular file (a FIFO, device or socket is refused without
    /// blocking: the open does not wait for a writer, and nothing is read from it).
    public convenience init(path: String) throws {
        try self.init(descriptor: RawTraceFile.openRegular(path), path: path)
    }

    /// Reads an open descriptor of a regular file (it is closed with the object); `path` names it
    /// in problems.
    public init(descriptor: Int32, path: String) throws {
        self.path = path
        fd = descriptor
        inBuf = .allocate(capacity: inCap)
        outBuf = .allocate(capacity: outCap)
        fill()
        if inEnd - inPos >= 4 {
            let magic = UInt32(inBuf[0]) | UInt32(inBuf[1]) << 8 | UInt32(inBuf[2]) << 16 | UInt32(inBuf[3]) << 24
            compressed = magic == 0x184D_2204
        } else if path.hasSuffix(".lz4") && inEnd > 0 {
            compressed = true
        }
        if compressed {
            var ctx: OpaquePointer?
            if LZ4F_isError(LZ4F_createDecompressionContext(&ctx, UInt32(LZ4F_VERSION))) != 0 {
                throw TraceReadError(file: path, message: "cannot create an LZ4 decompression context")
            }
            dctx = ctx
            decompressOptions.stableDst = 1
        } else if path.hasSuffix(".lz4") && inEnd >= 4 {
            throw TraceReadError(file: path, message: "not an LZ4 frame (bad magic number)")
        }
    }

    /// `open` that never blocks and keeps only regular files.
    public static func openRegular(_ path: String) throws -> Int32 {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        if fd < 0 {
            throw TraceReadError(file: path, message: "cannot open: " + String(cString: strerror(errno)))
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let e = errno
            _ = Glibc.close(fd)
            throw TraceReadError(file: path, message: "cannot stat: " + String(cString: strerror(e)))
        }
        let type = st.st_mode & S_IFMT
        guard type == S_IFREG else {
            _ = Glibc.close(fd)
            throw TraceReadError(file: path, message: type == S_IFDIR ? "is a directory"
                                 : "not a regular file (\(fileTypeName(type))): not read")
        }
        _ = fcntl(fd, F_SETFL, O_RDONLY)  // back to blocking reads (a regular file never blocks anyway)
        return fd
    }

    static func fileTypeName(_ type: mode_t) -> String {
        switch type {
        case S_IFIFO: return "a FIFO"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        case S_IFLNK: return "a symbolic link"
        default: return "type \(type)"
        }
    }

    deinit {
        if fd >= 0 { _ = Glibc.close(fd) }
        if let dctx { LZ4F_freeDecompressionContext(dctx) }
        freeBuffers()
    }

    private func freeBuffers() {
        if freed { return }
        freed = true
        inBuf.deallocate()
        outBuf.deallocate()
        spareBuf?.deallocate()
        spareBuf = nil
        for (b, _) in retired { b.deallocate() }
        retired = []
    }

    /// Releases the descriptor and the buffers early (the object stays readable for its
    /// problems; it yields no more lines).
    public func closeFile() {
        if fd >= 0 { _ = Glibc.close(fd); fd = -1 }
        freeBuffers()
    }

    /// The first byte still needed: the reader's position, or the unit being checked.
    @inline(__always) private var keepFrom: Int { verifying ? min(outStart, unitStart) : outStart }

    /// Moves the text still needed to the start of a buffer of `capacity` bytes. A compressed
    /// file's old buffer is kept until the decoder has produced output elsewhere (stableDst).
    private func moveOutput(capacity: Int) {
        let from = keepFrom
        let n = outEnd - from
        if !compressed && capacity == outCap {
            if n > 0 && from > 0 { outBuf.update(from: outBuf + from, count: n) }
        } else {
            let nb: UnsafeMutablePointer<UInt8>
            if let s = spareBuf, spareCap == capacity {
                nb = s
                spareBuf = nil
            } else {
                nb = .allocate(capacity: capacity)
                spareBuf?.deallocate()  // (of another size: never used as this one)
                spareBuf = nil
            }
            if n > 0 { nb.update(from: outBuf + from, count: n) }
            if compressed { retired.append((outBuf, outCap)) } else { outBuf.deallocate() }
            outBuf = nb
            outCap = capacity
        }
        outBase += UInt64(from)
        outEnd -= from
        outStart -= from
        scanFrom = max(scanFrom - from, 0)
        released = max(released - from, 0)
        unitStart = max(unitStart - from, 0)
        checkPos = max(checkPos - from, 0)
        markerStart -= from
        markerEnd -= from
    }

    /// The decoder has written output into the current buffer: older buffers are free.
    @inline(__always) private func releaseRetired() {
        if retired.isEmpty { return }
        for (b, cap) in retired {
            if cap == outCap && spareBuf == nil { spareBuf = b; spareCap = cap } else { b.deallocate() }
        }
        retired.removeAll(keepingCapacity: true)
    }

    private func fill() {
        if eof || fd < 0 { eof = true; return }
        if inPos > 0 {
            let n = inEnd - inPos
            if n > 0 { inBuf.update(from: inBuf + inPos, count: n) }
            inFileOffset += UInt64(inPos)
            inEnd = n
            inPos = 0
        }
        while inEnd < inCap {
            let n = read(fd, inBuf + inEnd, inCap - inEnd)
            if n < 0 {
                if errno == EINTR { continue }
                problems.append(TraceProblem(kind: .corrupt, file: path, offset: inFileOffset + UInt64(inEnd),
                                             message: "read error: " + String(cString: strerror(errno))))
                eof = true
                stopped = true
                return
            }
            if n == 0 { eof = true; break }
            inEnd += n
            fileBytesRead += UInt64(n)
            if inEnd - inPos > 0 && !compressed { break }
        }
    }

    /// Makes room for a block after the pending text: compacts, or doubles the buffer. What is
    /// pending is bounded (a line, or a unit and a line), so the buffer is too.
    private func ensureRoom() {
        if outCap - outEnd >= Self.blockRoom { return }
        if keepFrom > 0 { moveOutput(capacity: outCap) }
        if outCap - outEnd < Self.blockRoom { moveOutput(capacity: outCap * 2) }
    }

    /// Produces more bytes into outBuf[outEnd...]. Returns false when nothing more will come.
    private func produce() -> Bool {
        if stopped { return false }
        ensureRoom()
        if !compressed {
            if inPos == inEnd { fill() }
            if inPos == inEnd { return false }
            let n = min(inEnd - inPos, outCap - outEnd)
            (outBuf + outEnd).update(from: inBuf + inPos, count: n)
            inPos += n
            outEnd += n
            return true
        }
        while true {
            if inPos == inEnd {
                fill()
                if inPos == inEnd {
                    if !complete {
                        let at = inFileOffset + UInt64(inEnd)
                        problems.append(TraceProblem(kind: .truncated, file: path, offset: at,
                            message: anyOutput ? "the LZ4 frame stops before its end mark (cut file, killed writer, or still being written)"
                                               : "the LZ4 frame stops before any data"))
                    }
                    stopped = true
                    return false
                }
            }
            // At most one block per call (the hint is the size of what comes next), so that a
            // corrupt block costs only itself and its offset is exact.
            var srcSize = min(inEnd - inPos, max(lastHint, 1))
            var dstSize = outCap - outEnd
            let at = inFileOffset + UInt64(inPos)
            let hint = LZ4F_decompress(dctx, outBuf + outEnd, &dstSize, inBuf + inPos, &srcSize, &decompressOptions)
            if LZ4F_isError(hint) != 0 {
                let name = String(cString: LZ4F_getErrorName(hint))
                problems.append(TraceProblem(kind: .corrupt, file: path, offset: at,
                                             message: "corrupt LZ4 data (" + name + "); reading stopped"))
                stopped = true
                return false
            }
            inPos += srcSize
            outEnd += dstSize
            lastHint = hint
            complete = hint == 0
            if dstSize > 0 { blockOffset = at; anyOutput = true; releaseRetired(); return true }
            if outEnd == outCap { return true }
        }
    }

    /// The next line (without its newline), valid until the next call; nil at the end.
    public func nextLine() -> UnsafeRawBufferPointer? {
        if freed { return nil }
        while true {
            if verifying {
                if markerPending && outStart == markerStart { outStart = markerEnd; markerPending = false }
                if outStart < released {
                    // Checked lines always end before `released`.
                    let start = outBuf + outStart
                    let nl = memchr(start, 10, released - outStart)!
                    let len = UnsafeMutableRawPointer(nl) - UnsafeMutableRawPointer(start)
                    lineOffset = outBase + UInt64(outStart)
                    outStart += len + 1
                    return UnsafeRawBufferPointer(start: start, count: len)
                }
                if !damaged && checkUnits() { continue }
                if damaged {
                    countUntrusted(from: max(outStart, unitStart))
                    outStart = outEnd; unitStart = outEnd; checkPos = outEnd; released = outEnd
                    markerPending = false
                }
            } else if outStart < outEnd {
                if skipping {
                    if let nl = memchr(outBuf + outStart, 10, outEnd - outStart) {
                        outStart = (UnsafeMutableRawPointer(nl) - UnsafeMutableRawPointer(outBuf)) + 1
                        scanFrom = outStart
                        skipping = false
                        continue
                    }
                    outStart = outEnd
                    scanFrom = outEnd
                } else if let nl = memchr(outBuf + scanFrom, 10, outEnd - scanFrom) {
                    let start = outBuf + outStart
                    let len = UnsafeMutableRawPointer(nl) - UnsafeMutableRawPointer(start)
                    lineOffset = outBase + UInt64(outStart)
                    outStart += len + 1
                    scanFrom = outStart
                    if len > TraceLimits.maxLineBytes { tooLong(); continue }
                    if !firstLineSeen { firstLine(start, len) }
                    return UnsafeRawBufferPointer(start: start, count: len)
                } else {
                    scanFrom = outEnd
                    if outEnd - outStart > TraceLimits.maxLineBytes {
                        lineOffset = outBase + UInt64(outStart)
                        tooLong()
                        skipping = true
                        outStart = outEnd
                        scanFrom = outEnd
                    }
                }
            }
            if !produce() { return finish() }
        }
    }

    /// The end of the file: a partial last line is dropped (a plain file's is given out), and
    /// a schema-4 file's lines after its last marker are counted as not verified.
    private func finish() -> UnsafeRawBufferPointer? {
        if verifying {
            if damaged { return nil }
            let from = max(outStart, unitStart)
            let before = untrustedLines
            countUntrusted(from: from)
            let n = untrustedLines - before
            let partial = outEnd > from && outBuf[outEnd - 1] != 10
            if complete && (n > 0 || partial) {
                // The frame ended properly: text without its marker is damage, not a cut.
                untrustedLines -= n
                _ = damage("text after the last block marker (unit \(Int64(bitPattern: nextUnit) - 1)) at the end of a finished frame", at: from)
                return nil
            }
            if n > 0 || partial {
                let what = "\(n) line(s) after the last block marker (unit \(Int64(bitPattern: nextUnit) - 1)) cannot be verified: not analyzed"
                    + (partial ? "; the last line is cut" : "")
                if let i = problems.lastIndex(where: { $0.kind == .truncated }) {
                    problems[i].message += "; " + what  // (one cut, one problem)
                } else {
                    problems.append(TraceProblem(kind: .truncated, file: path, offset: fileBytesRead, message: what, count: max(n, 1)))
                }
            }
            outStart = outEnd; unitStart = outEnd; checkPos = outEnd; released = outEnd
            return nil
        }
        if outEnd > outStart && !skipping {
            let start = outBuf + outStart
            let len = outEnd - outStart
            lineOffset = outBase + UInt64(outStart)
            outStart = outEnd
            scanFrom = outEnd
            if !compressed {
                // A plain file whose last line has no newline: give it out (it may be whole).
                if !firstLineSeen { firstLine(start, len) }
                return UnsafeRawBufferPointer(start: start, count: len)
            }
            if problems.isEmpty {
                problems.append(TraceProblem(kind: .truncated, file: path, offset: fileBytesRead,
                                             message: "the last line is cut"))
            }
            // Compressed: a partial last line is dropped.
        }
        return nil
    }

    private func tooLong() {
        problems.append(TraceProblem(kind: .lineTooLong, file: path, offset: compressed ? blockOffset : lineOffset,
            message: "a line longer than the maximum (\(TraceLimits.maxLineBytes) bytes) at byte \(lineOffset) of the "
                     + (compressed ? "decompressed text (LZ4 block at byte \(blockOffset))" : "file") + ": skipped"))
    }

    /// The first line: a compressed file whose header says schema 4 or later carries markers.
    /// The header's bytes stay in the buffer as part of unit 0.
    private func firstLine(_ p: UnsafeMutablePointer<UInt8>, _ len: Int) {
        firstLineSeen = true
        guard compressed, let v = BlockMarker.headerVersion(p, len), v >= 4 else { return }
        verifying = true
        unitStart = p - outBuf
        checkPos = outStart
        released = outStart
    }

    /// Checks the lines after `checkPos` up to the next marker. True when lines were released
    /// or damage was found; false when more text is needed.
    private func checkUnits() -> Bool {
        while checkPos < outEnd {
            guard let nl = memchr(outBuf + checkPos, 10, outEnd - checkPos) else { break }
            let ls = checkPos
            let le = UnsafeMutableRawPointer(nl) - UnsafeMutableRawPointer(outBuf)
            checkPos = le + 1
            if le - ls > TraceLimits.maxLineBytes {
                lineOffset = outBase + UInt64(ls)
                tooLong()
                return damage("a line over the maximum length, which the recorder never writes", at: ls)
            }
            if BlockMarker.isMarker(outBuf + ls, le - ls) {
                guard let (n, x) = BlockMarker.parse(outBuf + ls, le - ls) else {
                    return damage("a malformed block marker", at: ls)
                }
                if n != nextUnit {
                    return damage(n < nextUnit
                        ? "unit \(n) comes again after unit \(nextUnit &- 1): a block repeated or out of order"
                        : "unit \(n) follows unit \(Int64(bitPattern: nextUnit) - 1): \(n - nextUnit) unit(s) missing (a block dropped or out of order)",
                        at: ls)
                }
                if BlockMarker.hash(outBuf + unitStart, ls - unitStart) != x {
                    return damage("unit \(n) does not decode to the text that was written (a block before it is missing, repeated or out of order)", at: ls)
                }
                nextUnit += 1
                verifiedUnits += 1
                longUnit = false
                released = ls
                markerStart = ls
                markerEnd = le + 1
                markerPending = true
                unitStart = le + 1
                return true
            }
            // A unit is whole lines of at most `unitBytes`, or one longer line alone.
            if longUnit { return damage("a line after a unit's long line instead of its block marker", at: ls) }
            if checkPos - unitStart > TraceLimits.unitBytes {
                if ls != unitStart { return damage("a unit longer than \(TraceLimits.unitBytes) bytes", at: ls) }
                longUnit = true
            }
        }
        // (the pending, partial line: only the marker may follow a long line or pass the unit's size)
        let markerRoom = 64
        if checkPos > unitStart && outEnd - checkPos > markerRoom
            && (longUnit || outEnd - unitStart > TraceLimits.unitBytes + markerRoom) {
            return damage("no block marker where the unit ends", at: checkPos)
        }
        if outEnd - unitStart > TraceLimits.maxUnitBytes {
            return damage("no block marker within \(TraceLimits.maxUnitBytes) bytes", at: checkPos)
        }
        return false
    }

    private func damage(_ what: String, at index: Int) -> Bool {
        damaged = true
        let before = untrustedLines
        countUntrusted(from: max(outStart, unitStart))
        problems.append(TraceProblem(kind: .damaged, file: path, offset: blockOffset,
            message: "damaged LZ4 frame at the block at byte \(blockOffset) (decompressed byte \(outBase + UInt64(index))): " + what
                     + "; nothing after unit \(Int64(bitPattern: nextUnit) - 1) is analyzed", count: untrustedLines - before))
        damageProblem = problems.count - 1
        outStart = outEnd; unitStart = outEnd; checkPos = outEnd; released = outEnd
        markerPending = false
        // Count the rest of the file's lines (decoding goes on, nothing is kept).
        while produce() { countUntrusted(from: outStart); outStart = outEnd; unitStart = outEnd; checkPos = outEnd; released = outEnd }
        problems[damageProblem].count = untrustedLines - before
        problems[damageProblem].message += " (\(untrustedLines - before) line(s) left out)"
        return true
    }
    @exclusivity(unchecked) private var damageProblem = 0

    private func countUntrusted(from: Int) {
        var p = from
        while p < outEnd, let nl = memchr(outBuf + p, 10, outEnd - p) {
            untrustedLines += 1
            p = (UnsafeMutableRawPointer(nl) - UnsafeMutableRawPointer(outBuf)) + 1
        }
    }
}
