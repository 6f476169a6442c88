import CTangleSupport
import Glibc
import TangleTraceFormat

/// The ring merge: the per-thread rings (C) drained into the file's lines, merged by time, each
/// record as a `dt,tp` pair on a run line when it repeats a template, else as a line of its own.
extension Writer {
    /// Drains every thread's buffer into the file, merged by time; `flushFrame`: close the LZ4
    /// block and write(2) it (what makes the records survive a SIGKILL). `behind`: a lone busy
    /// thread's records only up to the 4 KB page it is writing (see `Writer.pageSlots`).
    func drain(flushFrame: Bool, behind: Bool = false) {
        // Per pending buffer: read position, head, and the next seq the reader expects for its tid
        // (looked up once per drain, not per event).
        var bufs: [(b: UnsafeMutablePointer<tangle_tbuf>, pos: UInt64, head: UInt64, next: UInt64)] = []
        var p = tangle_trace_buffers()
        while let b = p {
            let head = tangle_tbuf_head(b)
            if head != b.pointee.tail {
                let tid = b.pointee.tid
                bufs.append((b, b.pointee.tail, head, lastSeq[tid].map { $0 &+ 1 } ?? 0))
            }
            p = b.pointee.next
        }
        if bufs.isEmpty {
            // Idle: a pair every flusher round anyway, so the next record, however late, lies
            // within 50 ms of one (the kernel's TSC-to-ns slope drifts with NTP over long spans).
            clock.sample()
            if flushFrame { frame.flush() }
            tangle_trace_reap()
            return
        }
        // After the heads were read: every record drained below was timed before this pair.
        clock.sample()
        checkModules(now: tangle_now_ns())
        if bufs.count > 1 {
            // Two buffers of one tid (an exited thread's, a new thread's that reuses the id): their
            // seqs interleave, so write every seq of that tid explicitly this time.
            for i in 0..<bufs.count {
                for j in 0..<i where bufs[j].b.pointee.tid == bufs[i].b.pointee.tid {
                    bufs[i].next = UInt64.max
                    bufs[j].next = UInt64.max
                }
            }
        }
        if bufs.count == 1 {
            let (b, pos, head, next0) = bufs[0]
            let ring = Ring(b)
            let limit: UInt64 = behind ? ~(Writer.pageSlots &- 1) : ~0
            var i = pos
            var end = head & limit
            var next = next0
            var n = 0
            // Frees the ring as it goes (a producer waiting for room resumes early) and follows a
            // producer that keeps recording, for a bounded number of rounds.
            for _ in 0..<8 {
                while i < end {
                    // The slots were just written on another core: fetch a few ahead so their
                    // transfers overlap (never past `end`: that would steal lines still being written).
                    if i &+ Writer.prefetchAhead < end { tangle_prefetch(ring.slots + Int((i &+ Writer.prefetchAhead) & ring.mask)) }
                    i += formatRecord(ring, i, &next)
                    n &+= 1
                    if n & 63 == 0 { tangle_tbuf_set_tail(b, i) }
                }
                tangle_tbuf_set_tail(b, i)
                end = tangle_tbuf_head(b) & limit
                if end <= i || othersPending(b) { break }  // (others: keep the file nearly time-sorted)
                clock.sample()
            }
            lastSeq[b.pointee.tid] = next &- 1
        } else {
            while true {
                var best = -1
                var bestTime = UInt64.max
                for j in 0..<bufs.count where bufs[j].pos < bufs[j].head {
                    let b = bufs[j].b
                    let t = b.pointee.slots[Int(bufs[j].pos & b.pointee.mask)].w.0
                    if t < bestTime { bestTime = t; best = j }
                }
                if best < 0 { break }
                bufs[best].pos += formatRecord(Ring(bufs[best].b), bufs[best].pos, &bufs[best].next)
                if bufs[best].pos & 63 < 3 { tangle_tbuf_set_tail(bufs[best].b, bufs[best].pos) }
            }
            for e in bufs {
                tangle_tbuf_set_tail(e.b, e.head)
                // (UInt64.max - 1 after a forced run: the next expected seq can never match.)
                lastSeq[e.b.pointee.tid] = e.next == UInt64.max ? UInt64.max &- 1 : e.next &- 1
            }
        }
        emit()
        if flushFrame { frame.flush() }
        tangle_trace_reap()
    }

    /// True when a buffer other than `b` holds records not drained yet.
    func othersPending(_ b: UnsafeMutablePointer<tangle_tbuf>) -> Bool {
        var p = tangle_trace_buffers()
        while let o = p {
            if o != b && tangle_tbuf_head(o) != o.pointee.tail { return true }
            p = o.pointee.next
        }
        return false
    }

    /// A thread buffer's fixed geometry, read once per drain (not per record).
    struct Ring {
        let slots: UnsafeMutablePointer<tangle_slot>
        let mask: UInt64
        let tid: Int32
        @inline(__always) init(_ b: UnsafeMutablePointer<tangle_tbuf>) {
            slots = b.pointee.slots!
            mask = b.pointee.mask
            tid = b.pointee.tid
        }
    }

    /// The stack id of hash `h` (writing the stack line first when it is new).
    @inline(__always)
    func stackID(_ h: UInt64, _ slots: UnsafeMutablePointer<tangle_slot>, _ index: UInt64,
                         _ mask: UInt64, _ npcs: Int) -> UInt32 {
        let ci = Int(truncatingIfNeeded: (h ^ (h >> 29) ^ (h >> 47)) & UInt64(Writer.cacheSize - 1))
        if cacheKeys[ci] == h { return cacheIDs[ci] }
        return stackIDSlow(h, slots, index, mask, npcs, ci)
    }

    /// The id of a stack the recording thread sent before (its record carries only the hash).
    @inline(__always)
    func knownStackID(_ h: UInt64) -> UInt32 {
        let ci = Int(truncatingIfNeeded: (h ^ (h >> 29) ^ (h >> 47)) & UInt64(Writer.cacheSize - 1))
        if cacheKeys[ci] == h { return cacheIDs[ci] }
        // Not known: only if the thread's table outlived this file's (it cannot by construction;
        // the event then goes without its stack rather than with a wrong one).
        guard let id = stacks[h] else { return 0 }
        cacheKeys[ci] = h
        cacheIDs[ci] = id
        return id
    }

    @inline(never)
    func stackIDSlow(_ h: UInt64, _ slots: UnsafeMutablePointer<tangle_slot>, _ index: UInt64,
                             _ mask: UInt64, _ npcs: Int, _ ci: Int) -> UInt32 {
        let id: UInt32
        if let known = stacks[h] {
            id = known
        } else {
            id = UInt32(stacks.count + 1)
            stacks[h] = id
            closeRun()
            TraceLineEncoder.stackStart(pid: pid, id: id, into: &out)
            for i in 0..<npcs {
                if i > 0 { out.byte(44) }
                let slot = slots[Int((index + 1 + UInt64(i / 8)) & mask)]
                let pc: UInt64 = withUnsafeBytes(of: slot.w) { $0.load(fromByteOffset: (i % 8) * 8, as: UInt64.self) }
                out.uint(pc)
            }
            TraceLineEncoder.stackEnd(into: &out)
        }
        cacheKeys[ci] = h
        cacheIDs[ci] = id
        return id
    }

    /// Formats the record at `index` (and its stack record when new); returns the slots it took.
    /// `next`: the seq the reader will restore for this tid when `seq` is omitted.
    @inline(__always)
    func formatRecord(_ r: Ring, _ index: UInt64, _ next: inout UInt64) -> UInt64 {
        let s = r.slots[Int(index & r.mask)].w
        let meta = s.6
        // The common case, kept small: no stack addresses, result or text, and the event repeats
        // a template in time and seq order: a `dt,tp` pair on the open run line.
        if meta >> 16 == 0 && s.5 == next {
            let time = clock.nanoseconds(s.0)
            if time >= lastTime {
                let stack = s.7 != 0 ? knownStackID(s.7) : 0
                let key = TemplateTable.Key(tid: r.tid, kindRaw: UInt16(truncatingIfNeeded: meta), stack: stack, record: s)
                let slot = templates.slot(key)
                if templates.matches(slot, key) {
                    events &+= 1
                    writePair(time &- lastTime, slot)
                    lastTime = time
                    next = s.5 &+ 1
                    if out.count >= 48 * 1024 { emit() }
                    return 1
                }
            }
        }
        return formatLine(r, index, &next)
    }

    /// `dt,tp` on the open run line (opening one when none is).
    @inline(__always)
    func writePair(_ dt: UInt64, _ slot: Int) {
        out.reserve(64)
        let first = !runOpen
        if first {
            TraceLineEncoder.runStart(into: &out)
            runOpen = true
        }
        TraceLineEncoder.runPair(dt: dt, template: slot, first: first, into: &out)
        runLength &+= 1
        if runLength == Writer.maxRunLength { closeRun() }
    }

    /// `formatRecord` for everything but a run pair: a line of its own.
    @inline(never)
    func formatLine(_ r: Ring, _ index: UInt64, _ next: inout UInt64) -> UInt64 {
        let mask = r.mask
        let slots = r.slots
        let s = slots[Int(index & mask)].w
        let meta = s.6
        let npcs = Int((meta >> 24) & 0xFF)
        let kindRaw = UInt16(truncatingIfNeeded: meta)
        let resultRaw = UInt8(truncatingIfNeeded: meta >> 16)
        let textID = UInt32(truncatingIfNeeded: meta >> 32)
        let tid = r.tid
        var stack: UInt32 = 0
        if s.7 != 0 { stack = npcs > 0 ? stackID(s.7, slots, index, mask, npcs) : knownStackID(s.7) }
        let seq = s.5
        let time = clock.nanoseconds(s.0)
        if textID != 0 || resultRaw != 0 {
            // Rare: names and results go through the general writer.
            let forced = next == UInt64.max
            lastSeq[tid] = forced ? UInt64.max &- 1 : next &- 1
            writeEvent(time: time, tid: tid, seq: seq, kindRaw: kindRaw, object: s.1, stack: stack,
                       resultRaw: resultRaw, a: s.2, b: s.3, c: s.4, text: textID != 0 ? TextTable.take(textID) : nil)
            next = forced ? UInt64.max : seq &+ 1
        } else {
            events &+= 1
            out.reserve(256)
            // The rest of the line depends only on (tid, kind, o, s, a, b, c): when a template
            // holds it, and the time and seq follow on, the event is a pair on a run line.
            let key = TemplateTable.Key(tid: tid, kindRaw: kindRaw, stack: stack, record: s)
            let slot = templates.slot(key)
            if seq == next && time >= lastTime && templates.matches(slot, key) {
                // (A record with stack addresses whose template is known.)
                writePair(time &- lastTime, slot)
                lastTime = time
                next = seq &+ 1
            } else {
                writeTime(time)
                if seq != next { TraceLineEncoder.seq(seq, into: &out) }
                if next != UInt64.max { next = seq &+ 1 }
                TraceLineEncoder.template(slot, into: &out)
                TraceLineEncoder.fields(tid: tid, kindRaw: kindRaw, object: s.1, stack: stack, a: s.2, b: s.3, c: s.4, into: &out)
                TraceLineEncoder.lineEnd(into: &out)
                templates.store(slot, key)
            }
        }
        if out.count >= 48 * 1024 { emit() }
        return 1 + UInt64((npcs + 7) / 8)
    }


    @inline(__always)
    func writeEvent(
        time: UInt64, tid: Int32, seq: UInt64, kindRaw: UInt16, object: UInt64, stack: UInt32,
        resultRaw: UInt8, a: UInt64, b: UInt64, c: UInt64, text: String?
    ) {
        events &+= 1
        out.reserve(64)
        writeTime(time)
        // seq is omitted when it is the previous seq of this tid in this file + 1 (or 0 for the
        // tid's first event): the reader restores it.
        let expected = lastSeq[tid].map { $0 &+ 1 } ?? 0  // (UInt64.max: always explicit)
        if seq != expected { TraceLineEncoder.seq(seq, into: &out) }
        lastSeq[tid] = seq
        TraceLineEncoder.fields(tid: tid, kindRaw: kindRaw, object: object, stack: stack, a: a, b: b, c: c, into: &out)
        TraceLineEncoder.result(resultRaw, into: &out)
        if let text { TraceLineEncoder.name(text, into: &out) }
        TraceLineEncoder.lineEnd(into: &out)
    }

    /// `{"dt":<ns since the previous event line>` or, when time went backwards (buffers merged
    /// out of order), `{"t":<absolute ns>`. The caller reserved room.
    @inline(__always)
    func writeTime(_ t: UInt64) {
        closeRun()
        TraceLineEncoder.time(t, after: lastTime, into: &out)
        lastTime = t
    }
}
