import CTangleSupport
import Glibc
import TangleTraceFormat

/// The per-process trace file: its creation and header, the module lines, and the LZ4 frame the
/// lines go to. Draining the rings into lines is `Writer+Drain.swift`; the line shapes are the
/// format's `TraceLineEncoder`. Every method runs under the recorder's writer lock.
final class Writer {
    nonisolated(unsafe) static var shared: Writer?

    let path: String
    let pid: Int32
    let frame: LZ4FrameWriter
    // (all under the recorder's writer lock: no dynamic exclusivity checks needed)
    @exclusivity(unchecked) var out = ByteWriter(capacity: 1 << 17)
    @exclusivity(unchecked) var stacks: [UInt64: UInt32] = [:]
    @exclusivity(unchecked) var lastSeq: [Int32: UInt64] = [:]
    @exclusivity(unchecked) var moduleAdds: UInt64 = 0
    @exclusivity(unchecked) var knownModules: Set<String> = []
    @exclusivity(unchecked) var events: UInt64 = 0
    /// The time of the last event line written: the next one says `"dt"`, its distance from it.
    @exclusivity(unchecked) var lastTime: UInt64 = 0
    /// Templates of recent event lines: an event that repeats one (a lock taken and released in a
    /// loop, a queue's puts of one size) is written as a `(dt, template)` pair of a run line.
    let templates = TemplateTable()
    /// A run line (`{"k":"run","e":[dt,tp,…`) is open: the next pair goes on it, any other line
    /// closes it first.
    @exclusivity(unchecked) var runOpen = false
    @exclusivity(unchecked) var runLength = 0
    /// Pairs per run line at most (bounds a line; a reader holds one line at a time).
    static let maxRunLength = 512
    /// Ring times (TSC ticks or ns) to CLOCK_MONOTONIC ns.
    @exclusivity(unchecked) var clock = RingClock()
    /// A direct-mapped cache in front of `stacks` (stack hash -> id; hash 0 never used).
    let cacheKeys = UnsafeMutablePointer<UInt64>.allocate(capacity: Writer.cacheSize)
    let cacheIDs = UnsafeMutablePointer<UInt32>.allocate(capacity: Writer.cacheSize)
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

    func writeHeader(start: UInt64, processObject: UInt64) {
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

    func checkModules(now: UInt64) {
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

    // MARK: lines

    /// Ends the open run line, if any (before any other line, and before the text goes to LZ4:
    /// a block always ends on a whole line).
    @inline(__always)
    func closeRun() {
        if runOpen {
            TraceLineEncoder.runEnd(into: &out)
            runOpen = false
            runLength = 0
        }
    }

    func emit() {
        closeRun()
        if out.count > 0 {
            frame.append(out.base, out.count)
            out.removeAll()
        }
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
