import CLZ4
import Glibc

/// Writes one LZ4 frame (linked 64 KB blocks, block checksums, level 1) to a
/// file descriptor. `append` compresses; `flush` closes the current block and hands every byte
/// produced so far to write(2), so whatever was flushed survives a SIGKILL; `end` writes the end
/// mark. Not thread-safe (the recorder calls it under its writer lock).
///
/// With `markers` (schema 4) the text goes in units of whole lines of at most
/// `TraceLimits.unitBytes` (one longer line alone), each followed by its block marker: the unit's
/// number and the hash of its text, so that a reader finds a missing, repeated or reordered block
/// (linked blocks decode such damage into plausible text). Callers append whole lines.
package final class LZ4FrameWriter {
    package let fd: Int32
    package let markers: Bool
    /// The unit being filled (compressed when it is sealed).
    private let unit: UnsafeMutablePointer<UInt8>
    private var unitCount = 0
    private var unitNumber: UInt64 = 0
    private var cctx: OpaquePointer?
    private var prefs = LZ4F_preferences_t()
    private var dst: UnsafeMutablePointer<UInt8>
    private var dstCapacity: Int
    private var dstCount = 0
    package private(set) var bytesWritten: UInt64 = 0
    package private(set) var failed = false
    static let chunk = 32 * 1024

    package init?(fd: Int32, markers: Bool = true) {
        self.fd = fd
        self.markers = markers
        unit = .allocate(capacity: TraceLimits.unitBytes + 1)
        var ctx: OpaquePointer?
        if LZ4F_isError(LZ4F_createCompressionContext(&ctx, UInt32(LZ4F_VERSION))) != 0 { return nil }
        cctx = ctx
        prefs.frameInfo.blockSizeID = LZ4F_max64KB
        prefs.frameInfo.blockMode = LZ4F_blockLinked
        // No content checksum: a second pass over every byte (its cost: docs/runtime.md), and a
        // trace cut by a crash never has one anyway; the block checksums catch corruption.
        prefs.frameInfo.contentChecksumFlag = LZ4F_noContentChecksum
        prefs.frameInfo.blockChecksumFlag = LZ4F_blockChecksumEnabled
        prefs.compressionLevel = 1
        prefs.autoFlush = 0
        dstCapacity = max(LZ4F_compressBound(LZ4FrameWriter.chunk, &prefs), 1 << 17) + 64
        dst = .allocate(capacity: dstCapacity)
        let n = LZ4F_compressBegin(cctx, dst, dstCapacity, &prefs)
        if LZ4F_isError(n) != 0 { return nil }
        dstCount = n
    }

    deinit {
        LZ4F_freeCompressionContext(cctx)
        dst.deallocate()
        unit.deallocate()
    }

    /// Appends `count` bytes of whole lines (any length).
    package func append(_ p: UnsafePointer<UInt8>, _ count: Int) {
        guard markers else { compress(p, count); return }
        var off = 0
        while off < count {
            let rest = count - off
            let room = TraceLimits.unitBytes - unitCount
            if rest <= room {
                (unit + unitCount).update(from: p + off, count: rest)
                unitCount += rest
                return
            }
            if let last = lastNewline(p + off, room) {
                let n = last + 1
                (unit + unitCount).update(from: p + off, count: n)
                unitCount += n
                off += n
                seal()
                continue
            }
            if unitCount > 0 { seal(); continue }
            // One line longer than a unit: a unit of its own, straight from the caller's bytes.
            var n = rest
            if let nl = memchr(p + off, 10, rest) { n = UnsafeRawPointer(nl) - UnsafeRawPointer(p + off) + 1 }
            compress(p + off, n)
            writeMarker(BlockMarker.hash(p + off, n))
            off += n
        }
    }

    /// The index of the last newline among `count` bytes (memrchr is a GNU extension).
    private func lastNewline(_ p: UnsafePointer<UInt8>, _ count: Int) -> Int? {
        var i = count - 1
        while i >= 0 { if p[i] == 10 { return i }; i -= 1 }
        return nil
    }

    /// Compresses the unit and its marker (nothing when the unit is empty).
    private func seal() {
        guard markers, unitCount > 0 else { return }
        if unit[unitCount - 1] != 10 { unit[unitCount] = 10; unitCount += 1 }  // (callers give whole lines)
        let x = BlockMarker.hash(unit, unitCount)
        compress(unit, unitCount)
        unitCount = 0
        writeMarker(x)
    }

    private func writeMarker(_ x: UInt32) {
        var m = BlockMarker.line(n: unitNumber, x: x)
        unitNumber += 1
        m.withUnsafeMutableBufferPointer { compress($0.baseAddress!, $0.count) }
    }

    /// Compresses `count` bytes (any length; fed in chunks).
    private func compress(_ p: UnsafePointer<UInt8>, _ count: Int) {
        var off = 0
        while off < count {
            let n = min(LZ4FrameWriter.chunk, count - off)
            if dstCapacity - dstCount < LZ4F_compressBound(n, &prefs) { writeOut() }
            let r = LZ4F_compressUpdate(cctx, dst + dstCount, dstCapacity - dstCount, p + off, n, nil)
            if LZ4F_isError(r) != 0 { failed = true; return }
            dstCount += r
            off += n
        }
    }

    /// Closes the current block and writes everything out.
    package func flush() {
        seal()
        if dstCapacity - dstCount < LZ4F_compressBound(0, &prefs) { writeOut() }
        let r = LZ4F_flush(cctx, dst + dstCount, dstCapacity - dstCount, nil)
        if LZ4F_isError(r) == 0 { dstCount += r } else { failed = true }
        writeOut()
    }

    /// Writes the end mark and everything before it.
    package func end() {
        seal()
        if dstCapacity - dstCount < LZ4F_compressBound(0, &prefs) + 16 { writeOut() }
        let r = LZ4F_compressEnd(cctx, dst + dstCount, dstCapacity - dstCount, nil)
        if LZ4F_isError(r) == 0 { dstCount += r } else { failed = true }
        writeOut()
    }

    private func writeOut() {
        var off = 0
        while off < dstCount {
            let n = write(fd, dst + off, dstCount - off)
            if n < 0 {
                if errno == EINTR { continue }
                failed = true
                break
            }
            off += n
        }
        bytesWritten &+= UInt64(off)
        dstCount = 0
    }
}
