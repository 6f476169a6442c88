import CLZ4
import Glibc

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
/// number, whatever the file name) or reads plain JSON lines; memory bounded by the longest line.
/// A cut file yields the lines before the cut (a partial last line is dropped) and reports
/// truncation; corrupt data stops the file and reports where.
public final class RawTraceFile {
    public let path: String
    @exclusivity(unchecked) public private(set) var compressed = false
    /// Problems of the raw layer (truncation, corruption).
    @exclusivity(unchecked) public private(set) var problems: [TraceProblem] = []
    /// True once the LZ4 end mark was read (a finished file).
    @exclusivity(unchecked) public private(set) var complete = false
    /// Decompressed offset of the line last returned.
    @exclusivity(unchecked) public private(set) var lineOffset: UInt64 = 0
    /// Bytes read from the file so far.
    @exclusivity(unchecked) public private(set) var fileBytesRead: UInt64 = 0

    @exclusivity(unchecked) private var fd: Int32
    @exclusivity(unchecked) private var inBuf: UnsafeMutablePointer<UInt8>
    private let inCap = 1 << 18
    @exclusivity(unchecked) private var inPos = 0, inEnd = 0
    @exclusivity(unchecked) private var inFileOffset: UInt64 = 0   // file offset of inBuf[0]
    @exclusivity(unchecked) private var outBuf: UnsafeMutablePointer<UInt8>
    @exclusivity(unchecked) private var outCap = 1 << 20
    @exclusivity(unchecked) private var outStart = 0, outEnd = 0
    @exclusivity(unchecked) private var outBase: UInt64 = 0        // decompressed offset of outBuf[0]
    @exclusivity(unchecked) private var dctx: OpaquePointer?
    @exclusivity(unchecked) private var eof = false
    @exclusivity(unchecked) private var stopped = false
    @exclusivity(unchecked) private var lastHint = 19  // the largest frame header
    @exclusivity(unchecked) private var anyOutput = false
    // LZ4 decodes with `stableDst` (no 64 KB copy of its history per block): the previous output
    // stays where it was until the next call that produces output. So a compressed file's output
    // buffer is never moved under the decoder: lines are decoded forward, and when room runs out
    // the pending partial line goes to another buffer while the old one is kept (`retired`) until
    // the decoder has written past it; then it becomes the spare.
    @exclusivity(unchecked) private var decompressOptions = LZ4F_decompressOptions_t()
    @exclusivity(unchecked) private var spareBuf: UnsafeMutablePointer<UInt8>?
    @exclusivity(unchecked) private var retired: [(UnsafeMutablePointer<UInt8>, Int)] = []
    @exclusivity(unchecked) private var released = false
    /// Room a compressed read wants after the pending line: a whole block (64 KB) and a little.
    private static let blockRoom = (64 << 10) + 64

    public init(path: String) throws {
        self.path = path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            throw TraceReadError(file: path, message: "cannot open: " + String(cString: strerror(errno)))
        }
        var st = stat()
        if fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR {
            _ = Glibc.close(fd)
            throw TraceReadError(file: path, message: "is a directory")
        }
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

    deinit {
        if fd >= 0 { _ = Glibc.close(fd) }
        if let dctx { LZ4F_freeDecompressionContext(dctx) }
        freeBuffers()
    }

    private func freeBuffers() {
        if released { return }
        released = true
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

    /// Moves the pending partial line to the start of a buffer of `capacity` bytes. A compressed
    /// file's old buffer is kept until the decoder has produced output elsewhere (stableDst).
    private func moveOutput(capacity: Int) {
        let n = outEnd - outStart
        if !compressed && capacity == outCap {
            if n > 0 && outStart > 0 { outBuf.update(from: outBuf + outStart, count: n) }
        } else {
            let nb: UnsafeMutablePointer<UInt8>
            if capacity == outCap, let s = spareBuf {
                nb = s
                spareBuf = nil
            } else {
                nb = .allocate(capacity: capacity)
            }
            if n > 0 { nb.update(from: outBuf + outStart, count: n) }
            if compressed { retired.append((outBuf, outCap)) } else { outBuf.deallocate() }
            outBuf = nb
            outCap = capacity
        }
        outBase += UInt64(outStart)
        outEnd = n
        outStart = 0
    }

    /// The decoder has written output into the current buffer: older buffers are free.
    @inline(__always) private func releaseRetired() {
        if retired.isEmpty { return }
        for (b, cap) in retired {
            if cap == outCap && spareBuf == nil { spareBuf = b } else { b.deallocate() }
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

    /// Produces more bytes into outBuf[outEnd...]. Returns false when nothing more will come.
    private func produce() -> Bool {
        if stopped { return false }
        if outEnd == outCap || (compressed && outCap - outEnd < Self.blockRoom && outStart == 0 && outEnd > 0) {
            // The pending line fills the buffer (or leaves no room for a block): grow.
            moveOutput(capacity: outCap * 2)
        }
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
                    if lastHint != 0 || !complete {
                        if !complete {
                            let at = inFileOffset + UInt64(inEnd)
                            problems.append(TraceProblem(kind: .truncated, file: path, offset: at,
                                message: anyOutput ? "the LZ4 frame stops before its end mark (cut file, killed writer, or still being written)"
                                                   : "the LZ4 frame stops before any data"))
                        }
                    }
                    stopped = true
                    return false
                }
            }
            // At most one block per call (the hint is the size of what comes next), so that a
            // corrupt block costs only itself and its offset is exact.
            var srcSize = min(inEnd - inPos, max(lastHint, 1))
            var dstSize = outCap - outEnd
            let hint = LZ4F_decompress(dctx, outBuf + outEnd, &dstSize, inBuf + inPos, &srcSize, &decompressOptions)
            if LZ4F_isError(hint) != 0 {
                let name = String(cString: LZ4F_getErrorName(hint))
                problems.append(TraceProblem(kind: .corrupt, file: path, offset: inFileOffset + UInt64(inPos),
                                             message: "corrupt LZ4 data (" + name + "); reading stopped"))
                stopped = true
                return false
            }
            inPos += srcSize
            outEnd += dstSize
            lastHint = hint
            if hint == 0 { complete = true } else { complete = false }
            if dstSize > 0 { anyOutput = true; releaseRetired(); return true }
            if outEnd == outCap { return true }
        }
    }

    /// The next line (without its newline), valid until the next call; nil at the end.
    public func nextLine() -> UnsafeRawBufferPointer? {
        if released { return nil }
        while true {
            if outStart < outEnd {
                let start = outBuf + outStart
                if let nl = memchr(start, 10, outEnd - outStart) {
                    let len = UnsafeMutableRawPointer(nl) - UnsafeMutableRawPointer(start)
                    lineOffset = outBase + UInt64(outStart)
                    outStart += len + 1
                    return UnsafeRawBufferPointer(start: start, count: len)
                }
            }
            // Compact (plain files: always; compressed: when a block would not fit), then produce more.
            if outStart > 0 && (!compressed || outCap - outEnd < Self.blockRoom) {
                moveOutput(capacity: outCap)
            }
            if !produce() {
                if outEnd > outStart {
                    let start = outBuf + outStart
                    let len = outEnd - outStart
                    lineOffset = outBase + UInt64(outStart)
                    outStart = outEnd
                    if !compressed {
                        // A plain file whose last line has no newline: give it out (it may be whole).
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
        }
    }
}
