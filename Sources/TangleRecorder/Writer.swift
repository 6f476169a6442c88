import CTangleSupport
import Glibc
import TangleTraceFormat

/// The per-process trace file: formats drained records as JSON lines (raw byte writer) and feeds
/// them to the LZ4 frame. Every method runs under the recorder's writer lock.
final class Writer {
    nonisolated(unsafe) static var shared: Writer?

    let path: String
    let pid: Int32
    private let frame: LZ4FrameWriter
    // (all under the recorder's writer lock: no dynamic exclusivity checks needed)
    @exclusivity(unchecked) private var out = ByteWriter(capacity: 1 << 17)
    @exclusivity(unchecked) private var stacks: [UInt64: UInt32] = [:]
    @exclusivity(unchecked) private var lastSeq: [Int32: UInt64] = [:]
    @exclusivity(unchecked) private var moduleAdds: UInt64 = 0
    @exclusivity(unchecked) private var knownModules: Set<String> = []
    @exclusivity(unchecked) private(set) var events: UInt64 = 0
    /// The time of the last event line written: the next one says `"dt"`, its distance from it.
    @exclusivity(unchecked) private var lastTime: UInt64 = 0
    /// Templates of recent event lines: an event that repeats one (a lock taken and released in a
    /// loop, a queue's puts of one size) is written as a `(dt, template)` pair of a run line.
    private let templates = TemplateTable()
    /// A run line (`{"k":"run","e":[dt,tp,…`) is open: the next pair goes on it, any other line
    /// closes it first.
    @exclusivity(unchecked) private var runOpen = false
    @exclusivity(unchecked) private var runLength = 0
    /// Pairs per run line at most (bounds a line; a reader holds one line at a time).
    static let maxRunLength = 512
    /// Ring times (TSC ticks or ns) to CLOCK_MONOTONIC ns.
    @exclusivity(unchecked) private var clock = RingClock()
    /// A direct-mapped cache in front of `stacks` (stack hash -> id; hash 0 never used).
    private let cacheKeys = UnsafeMutablePointer<UInt64>.allocate(capacity: Writer.cacheSize)
    private let cacheIDs = UnsafeMutablePointer<UInt32>.allocate(capacity: Writer.cacheSize)
    static let cacheSize = 4096
    static let prefetchAhead: UInt64 = 16
    /// Ring slots per 4 KB page (rings are page-aligned). A drainer that reads right behind a
    /// thread still recording makes the other core's prefetchers pull in the lines that thread is
    /// writing, and each of its stores then waits for the line to come back; the hardware
    /// prefetchers never cross a page, so staying out of the thread's page avoids that.
    static let pageSlots: UInt64 = 4096 / 64
    var bytesWritten: UInt64 { frame.bytesWritten }

    init?(directory: String, processObject: UInt64) {
        pid = getpid()
        let start = tangle_now_ns()
        Writer.makeDirectories(directory)
        path = directory + "/" + String(pid) + "-" + String(start) + ".jsonl.lz4"
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_APPEND, 0o600)
        if fd < 0 {
            let msg = "tangle: cannot create trace file " + path + ": " + String(cString: strerror(errno)) + "\n"
            _ = msg.withCString { write(2, $0, strlen($0)) }
            return nil
        }
        guard let f = LZ4FrameWriter(fd: fd) else { close(fd); return nil }
        frame = f
        cacheKeys.initialize(repeating: 0, count: Writer.cacheSize)
        cacheIDs.initialize(repeating: 0, count: Writer.cacheSize)
        // This file knows no stacks yet: every thread sends each stack's addresses again.
        tangle_trace_forget_stacks()
        lastTime = start
        writeHeader(start: start, processObject: processObject)
        frame.flush()
    }

    static func makeDirectories(_ dir: String) {
        var prefix = ""
        for part in dir.split(separator: "/", omittingEmptySubsequences: false) {
            prefix += (prefix.isEmpty && dir.hasPrefix("/") && part.isEmpty) ? "/" : (prefix.isEmpty || prefix == "/" ? String(part) : "/" + part)
            if prefix.isEmpty || prefix == "/" { continue }
            _ = mkdir(prefix, 0o700)
        }
    }

    // MARK: header and modules

    private static func readFile(_ path: String, limit: Int = 4096) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return "" }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: limit)
        let n = read(fd, &buf, limit)
        if n <= 0 { return "" }
        var s = String(decoding: buf[0..<n], as: UTF8.self)
        while s.last == "\n" { s.removeLast() }
        return s
    }

    private static func exePath() -> String {
        var buf = [Int8](repeating: 0, count: 4097)
        let n = readlink("/proc/self/exe", &buf, 4096)
        if n <= 0 { return "" }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func argv0() -> String {
        let s = readFile("/proc/self/cmdline", limit: 4096)
        if let z = s.firstIndex(of: "\0") { return String(s[..<z]) }
        return s
    }

    private func writeHeader(start: UInt64, processObject: UInt64) {
        let mods = Writer.currentModules()
        moduleAdds = mods.adds
        for m in mods.list { knownModules.insert(m.path + "@" + String(m.bias)) }
        let header = TraceHeader(pid: pid, ppid: getppid(), executable: Writer.exePath(), argv0: Writer.argv0(),
                                 bootID: Writer.readFile("/proc/sys/kernel/random/boot_id"), startTime: start,
                                 processObject: processObject, modules: mods.list)
        let spill = TraceLineEncoder.header(header, ringClock: clock.tsc ? "tsc" : "monotonic",
                                            stackDepth: Int(tangle_trace_stack_depth), into: &out)
        for m in spill { TraceLineEncoder.module(m, time: start, into: &out) }
        emit()
    }

    final class ModuleBox { var list: [ModuleInfo] = [] }

    static func currentModules() -> (list: [ModuleInfo], adds: UInt64) {
        let box = ModuleBox()
        let exe = exePath()
        let adds = tangle_modules({ mp, ctx in
            guard let mp, let ctx else { return }
            let m = mp.pointee
            let box = Unmanaged<ModuleBox>.fromOpaque(ctx).takeUnretainedValue()
            var path = m.path.map { String(cString: $0) } ?? ""
            var id = ""
            if let b = m.build_id {
                let hex: [Character] = Array("0123456789abcdef")
                for i in 0..<m.build_id_len {
                    id.append(hex[Int(b[i] >> 4)])
                    id.append(hex[Int(b[i] & 15)])
                }
            }
            if path.isEmpty && box.list.isEmpty { path = "" }  // the executable: filled in below
            box.list.append(ModuleInfo(path: path, buildID: id, bias: m.bias, low: m.lo, high: m.hi))
        }, Unmanaged.passUnretained(box).toOpaque())
        var list = box.list
        if !list.isEmpty && list[0].path.isEmpty { list[0].path = exe }
        // linux-vdso has no file; keep it (path "linux-vdso.so.1") so addresses in it are explained.
        return (list, adds)
    }

    private func checkModules(now: UInt64) {
        let adds = tangle_module_adds()
        if adds == moduleAdds { return }
        let mods = Writer.currentModules()
        moduleAdds = mods.adds
        for m in mods.list where !knownModules.contains(m.path + "@" + String(m.bias)) {
            knownModules.insert(m.path + "@" + String(m.bias))
            closeRun()
            TraceLineEncoder.module(m, time: now, into: &out)
        }
    }

    // MARK: events

    /// Ends the open run line, if any (before any other line, and before the text goes to LZ4:
    /// a block always ends on a whole line).
    @inline(__always)
    private func closeRun() {
        if runOpen {
            TraceLineEncoder.runEnd(into: &out)
            runOpen = false
            runLength = 0
        }
    }

    private func emit() {
        closeRun()
        if out.count > 0 {
            frame.append(out.base, out.count)
            out.removeAll()
        }
    }

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
    private func othersPending(_ b: UnsafeMutablePointer<tangle_tbuf>) -> Bool {
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
    private func stackID(_ h: UInt64, _ slots: UnsafeMutablePointer<tangle_slot>, _ index: UInt64,
                         _ mask: UInt64, _ npcs: Int) -> UInt32 {
        let ci = Int(truncatingIfNeeded: (h ^ (h >> 29) ^ (h >> 47)) & UInt64(Writer.cacheSize - 1))
        if cacheKeys[ci] == h { return cacheIDs[ci] }
        return stackIDSlow(h, slots, index, mask, npcs, ci)
    }

    /// The id of a stack the recording thread sent before (its record carries only the hash).
    @inline(__always)
    private func knownStackID(_ h: UInt64) -> UInt32 {
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
    private func stackIDSlow(_ h: UInt64, _ slots: UnsafeMutablePointer<tangle_slot>, _ index: UInt64,
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
    private func formatRecord(_ r: Ring, _ index: UInt64, _ next: inout UInt64) -> UInt64 {
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
    private func writePair(_ dt: UInt64, _ slot: Int) {
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
    private func formatLine(_ r: Ring, _ index: UInt64, _ next: inout UInt64) -> UInt64 {
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
    private func writeEvent(
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
    private func writeTime(_ t: UInt64) {
        closeRun()
        TraceLineEncoder.time(t, after: lastTime, into: &out)
        lastTime = t
    }

    /// A `dropped` event for the calling thread (written at once, never silent).
    func writeDropped(count: UInt64) {
        drain(flushFrame: false)
        let tid = tangle_gettid()
        let seq = tangle_trace_current()?.pointee.seq ?? 0
        lastSeq[tid] = nil
        writeEvent(time: tangle_now_ns(), tid: tid, seq: seq, kindRaw: EventKind.dropped.rawValue, object: 0,
                   stack: 0, resultRaw: 0, a: count, b: 0, c: 0, text: nil)
        lastSeq[tid] = nil
        emit()
        frame.flush()
    }

    /// `proc.exit` written directly (from a signal handler: the interrupted thread's buffer may be
    /// half-written, so the event does not go through it).
    func writeSyntheticExit(status: Int32, signal: Int32) {
        let tid = tangle_gettid()
        let seq = tangle_trace_current()?.pointee.seq ?? 0
        lastSeq[tid] = nil
        writeEvent(time: tangle_now_ns(), tid: tid, seq: seq, kindRaw: EventKind.processExit.rawValue, object: 0,
                   stack: 0, resultRaw: 0, a: UInt64(UInt32(bitPattern: status)),
                   b: UInt64(UInt32(bitPattern: signal)), c: 0, text: nil)
        lastSeq[tid] = nil
        emit()
    }

    func end() {
        emit()
        frame.end()
        close(frame.fd)
    }
}

/// What the writer's event templates stand for: everything of an event line but its time and
/// seq, direct-mapped by a hash of it. A line that declares template N (`"tp":N`) replaces slot N;
/// the reader keeps the same table from those declarations. Owned by the writer (under its lock).
final class TemplateTable {
    struct Key: Equatable {
        var tidKind: UInt64, object: UInt64, stack: UInt64, a: UInt64, b: UInt64, c: UInt64

        init(tidKind: UInt64, object: UInt64, stack: UInt64, a: UInt64, b: UInt64, c: UInt64) {
            (self.tidKind, self.object, self.stack, self.a, self.b, self.c) = (tidKind, object, stack, a, b, c)
        }

        /// What a ring record's line says besides its time and seq (words 1–4 of the record).
        @inline(__always)
        init(tid: Int32, kindRaw: UInt16, stack: UInt32, record s: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)) {
            self.init(tidKind: UInt64(UInt32(bitPattern: tid)) << 16 | UInt64(kindRaw), object: s.1,
                      stack: UInt64(stack), a: s.2, b: s.3, c: s.4)
        }
    }
    /// Template ids are 0..<entries (readers accept up to `RunTemplates.capacity`).
    static let entries = 256
    private let keys = UnsafeMutablePointer<Key>.allocate(capacity: TemplateTable.entries)

    init() {
        keys.initialize(repeating: Key(tidKind: UInt64.max, object: 0, stack: 0, a: 0, b: 0, c: 0), count: TemplateTable.entries)
    }

    deinit { keys.deallocate() }

    @inline(__always) func slot(_ k: Key) -> Int {
        var x = k.tidKind &* 0x9E37_79B9_7F4A_7C15
        x ^= k.object &* 0xC2B2_AE3D_27D4_EB4F
        x ^= k.stack &* 0x1656_67B1_9E37_79F9
        x ^= (k.a ^ (k.b << 21) ^ (k.c << 42)) &* 0xFF51_AFD7_ED55_8CCD
        return Int(truncatingIfNeeded: x >> 56)
    }

    @inline(__always) func matches(_ slot: Int, _ k: Key) -> Bool { keys[slot] == k }
    @inline(__always) func store(_ slot: Int, _ k: Key) { keys[slot] = k }
}
