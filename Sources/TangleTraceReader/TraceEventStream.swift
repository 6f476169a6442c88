import Glibc
import TangleTraceFormat

/// The order events are merged in: time, then pid, tid, seq.
@inline(__always) func eventPrecedes(_ x: TraceEvent, _ y: TraceEvent) -> Bool {
    if x.time != y.time { return x.time < y.time }
    if x.pid != y.pid { return x.pid < y.pid }
    if x.tid != y.tid { return x.tid < y.tid }
    return x.seq < y.seq
}

/// One trace file found on disk.
public struct TraceFileInfo: Sendable, Equatable {
    public var path: String
    public var bytes: UInt64
    /// The start time from the file name (`<pid>-<start>.jsonl.lz4`), 0 when the name has none.
    public var startFromName: UInt64
    public var pidFromName: Int32?
}

/// Finds the trace files among `paths` (files, or directories whose `*.jsonl.lz4` and `*.jsonl`
/// files are taken). Throws when a path does not exist or nothing was found.
public func findTraceFiles(_ paths: [String]) throws -> [TraceFileInfo] {
    var out: [TraceFileInfo] = []
    for path in paths {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw TraceReadError(file: path, message: "cannot read: " + String(cString: strerror(errno)))
        }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            guard let dir = opendir(path) else {
                throw TraceReadError(file: path, message: "cannot list: " + String(cString: strerror(errno)))
            }
            var names: [String] = []
            while let ent = readdir(dir) {
                let name = withUnsafePointer(to: ent.pointee.d_name) {
                    $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
                }
                if name.hasSuffix(".jsonl.lz4") || name.hasSuffix(".jsonl") { names.append(name) }
            }
            closedir(dir)
            for name in names.sorted() {
                let full = path.hasSuffix("/") ? path + name : path + "/" + name
                var fst = stat()
                guard stat(full, &fst) == 0, (fst.st_mode & S_IFMT) == S_IFREG else { continue }
                out.append(info(full, UInt64(fst.st_size)))
            }
        } else {
            out.append(info(path, UInt64(st.st_size)))
        }
    }
    if out.isEmpty {
        throw TraceReadError(file: paths.joined(separator: ", "), message: "no trace files (*.jsonl.lz4 or *.jsonl) found")
    }
    return out
}

private func info(_ path: String, _ bytes: UInt64) -> TraceFileInfo {
    var base = path
    if let slash = path.lastIndex(of: "/") { base = String(path[path.index(after: slash)...]) }
    var pid: Int32?
    var start: UInt64 = 0
    if let dot = base.firstIndex(of: ".") {
        let stem = base[..<dot]
        let parts = stem.split(separator: "-")
        if parts.count == 2, let p = Int32(parts[0]), let s = UInt64(parts[1]) {
            pid = p
            start = s
        }
    }
    return TraceFileInfo(path: path, bytes: bytes, startFromName: start, pidFromName: pid)
}

/// The streaming reader: every file's events merged in time order (ties: pid, tid, seq; each
/// thread's seq order kept). Each file goes through a reorder window (the recorder writes in nearly
/// sorted order: a thread preempted between taking its timestamp and publishing the record shows
/// up late; the window holds 250 ms of a file's events, at most 32768, at least 1024); events later
/// than that are emitted out of time order and counted in `lateEvents`; a file is opened only when the merge reaches the start
/// time in its name, and closed at its end, so memory is bounded by the window and the processes
/// alive at once, not by the trace's length.
public final class TraceEventStream {
    public let files: [TraceFileInfo]
    /// Headers by pid, as files are opened.
    @exclusivity(unchecked) public private(set) var headers: [Int32: TraceHeader] = [:]
    /// Interned stacks by pid, as they are read.
    @exclusivity(unchecked) public private(set) var stacks: [Int32: [UInt32: [UInt64]]] = [:]
    /// Text-frame stacks (file, line, function) by pid, as they are read.
    @exclusivity(unchecked) public private(set) var textStacks: [Int32: [UInt32: [TextFrame]]] = [:]
    /// Problems of files already finished (see `allProblems` at the end).
    @exclusivity(unchecked) public private(set) var finishedProblems: [TraceProblem] = []
    /// Events emitted out of time order (earlier than an event already emitted): they arrived
    /// later than the reorder window allowed.
    @exclusivity(unchecked) public private(set) var lateEvents: UInt64 = 0
    @exclusivity(unchecked) public private(set) var eventCount: UInt64 = 0

    /// One open file: its decoder and its reorder window, a ring of events moved in and out
    /// (no copies, no reference counting of `text` on the way through).
    private final class Source {
        let decoder: TraceFileDecoder
        @exclusivity(unchecked) var ring: UnsafeMutablePointer<TraceEvent>
        @exclusivity(unchecked) var mask: Int
        /// Absolute positions: the front event is at `head`, the next free slot at `tail`.
        @exclusivity(unchecked) var head = 0
        @exclusivity(unchecked) var tail = 0
        @exclusivity(unchecked) var done = false
        @exclusivity(unchecked) var maxTime: UInt64 = 0
        init(_ d: TraceFileDecoder) {
            decoder = d
            ring = .allocate(capacity: 1024)
            mask = 1023
        }
        deinit {
            var i = head
            while i < tail { (ring + (i & mask)).deinitialize(count: 1); i += 1 }
            ring.deallocate()
        }
        @inline(__always) var count: Int { tail - head }
        @inline(__always) func slot(_ i: Int) -> UnsafeMutablePointer<TraceEvent> { ring + (i & mask) }
        /// The heap entry of this source, keyed by its front event.
        @inline(__always) func entry() -> HeapEntry {
            let p = slot(head)
            return HeapEntry(time: p.pointee.time, pid: p.pointee.pid, tid: p.pointee.tid, seq: p.pointee.seq,
                             source: Unmanaged.passUnretained(self))
        }
        /// Doubles the ring, keeping the events in order (at positions 0..<count).
        func grow() {
            let n = count
            let cap = (mask + 1) * 2
            let nr = UnsafeMutablePointer<TraceEvent>.allocate(capacity: cap)
            var i = 0
            while i < n { (nr + i).moveInitialize(from: slot(head + i), count: 1); i += 1 }
            ring.deallocate()
            ring = nr
            mask = cap - 1
            head = 0
            tail = n
        }
        @inline(__always) func push(_ e: TraceEvent) {
            if count > mask { grow() }
            slot(tail).initialize(to: e)
            tail += 1
        }
        @inline(__always) func popFront() -> TraceEvent {
            let e = slot(head).move()
            head += 1
            return e
        }
    }

    private let window: Int
    @exclusivity(unchecked) private var maxEmitted: UInt64 = 0
    private let maxWindow: Int
    private let timeWindow: UInt64
    @exclusivity(unchecked) private var pending: [TraceFileInfo]       // not opened yet, sorted by start, descending (pop from the end)
    /// A source in the merge heap: its front event's sort key (time, pid, tid, seq) and the source
    /// itself, unretained (`sources` owns it), so the heap's moves and comparisons touch no
    /// reference count.
    private struct HeapEntry {
        var time: UInt64
        var pid: Int32
        var tid: Int32
        var seq: UInt64
        var source: Unmanaged<Source>
    }
    @exclusivity(unchecked) private var heap: [HeapEntry] = []
    /// The sources in the heap (owners of `heap`'s unretained references).
    @exclusivity(unchecked) private var sources: [ObjectIdentifier: Source] = [:]
    /// A source taken out of the heap during `next`, released at the following call.
    @exclusivity(unchecked) private var finishedSource: Source?
    /// Where `next()` receives the event (uninitialized between calls).
    private let scratch = UnsafeMutablePointer<TraceEvent>.allocate(capacity: 1)
    @exclusivity(unchecked) private var openedDecoders: [TraceFileDecoder] = []
    private var unreadableFiles = 0
    /// "pid-start" of every file opened → its path (duplicates are skipped).
    @exclusivity(unchecked) private var openedByKey: [String: String] = [:]

    /// `window`: events always held back per file before one is released; beyond that, events are
    /// held while they are less than `timeWindow` ns older than the newest event read from their
    /// file, up to `maxWindow` events (the memory bound per open file).
    public init(paths: [String], window: Int = 1024, timeWindow: UInt64 = 250_000_000, maxWindow: Int = 32768) throws {
        files = try findTraceFiles(paths)
        self.window = max(1, window)
        self.maxWindow = max(self.window, maxWindow)
        self.timeWindow = timeWindow
        pending = files.sorted { $0.startFromName > $1.startFromName }
        // Open the files whose name does not give a start now (order unknown).
        while let last = pending.last, last.startFromName == 0 {
            pending.removeLast()
            try open(last)
        }
    }

    deinit { scratch.deallocate() }

    public convenience init(files: [String]) throws {
        try self.init(paths: files)
    }

    private func open(_ f: TraceFileInfo) throws {
        let d: TraceFileDecoder
        do {
            d = try TraceFileDecoder(path: f.path)
        } catch let error as TraceReadError where files.count > 1 {
            // One unreadable file (not a trace, no header, unreadable) must not cost the session
            // its other files: it is skipped and reported. Only a session with no readable file
            // at all is unusable.
            unreadableFiles += 1
            if unreadableFiles == files.count { throw error }
            finishedProblems.append(TraceProblem(kind: .corrupt, file: f.path, offset: 0,
                                                 message: error.message + "; file skipped"))
            return
        }
        if let h = d.header {
            // A copy of a file (same pid and start, under another name) is read once: merging it
            // would count every event twice.
            let key = "\(h.pid)-\(h.startTime)"
            if let first = openedByKey[key] {
                finishedProblems.append(TraceProblem(kind: .duplicateFile, file: f.path, offset: 0,
                    message: "same process (pid \(h.pid)) and start (\(h.startTime)) as \(first): a copy, read once"))
                d.raw.closeFile()
                return
            }
            openedByKey[key] = f.path
            headers[h.pid] = h
        }
        d.onStack = { [unowned self] pid, id, pcs in self.stacks[pid, default: [:]][id] = pcs }
        d.onTextStack = { [unowned self] pid, id, frames in self.textStacks[pid, default: [:]][id] = frames }
        openedDecoders.append(d)
        let s = Source(d)
        refill(s)
        if s.count > 0 {
            sources[ObjectIdentifier(s)] = s
            heapPush(s.entry())
        } else {
            finish(s)
        }
    }

    private func finish(_ s: Source) {
        if let h = s.decoder.header {
            // module records may have extended it
            headers[h.pid] = h
        }
        finishedProblems.append(contentsOf: s.decoder.problems)
        s.decoder.raw.closeFile()
    }

    /// Reads until the window is full (or the file ends), keeping the buffer sorted.
    private func refill(_ s: Source) {
        if s.done { return }
        while s.count <= window || (s.count <= maxWindow && s.maxTime &- timeWindow < s.slot(s.head).pointee.time) {
            if s.count > s.mask { s.grow() }
            let slot = s.slot(s.tail)
            guard s.decoder.nextEvent(into: slot) else { s.done = true; return }
            s.tail += 1
            let (t, pid, tid, seq) = (slot.pointee.time, slot.pointee.pid, slot.pointee.tid, slot.pointee.seq)
            if t > s.maxTime { s.maxTime = t }
            // Insertion from the back: the recorder's output is almost sorted.
            let head = s.head
            var j = s.tail - 1
            while j > head {
                let q = s.slot(j - 1)
                let pt = q.pointee.time, ppid = q.pointee.pid, ptid = q.pointee.tid, pseq = q.pointee.seq
                let before = t != pt ? t < pt : (pid != ppid ? pid < ppid : (tid != ptid ? tid < ptid : seq < pseq))
                // never move an event before an earlier one of the same thread
                if !before || (ptid == tid && ppid == pid) { break }
                let r = s.slot(j)
                let moved = r.move()
                r.moveInitialize(from: q, count: 1)
                q.initialize(to: moved)
                j -= 1
            }
        }
    }

    /// The next event in merged order, or nil at the end. Throws when a file that is opened late
    /// turns out not to be a trace.
    public func next() throws -> TraceEvent? {
        try next(into: scratch) ? scratch.move() : nil
    }

    /// `next()`, moving the event into uninitialized `dst` instead of returning it (no copies on
    /// the way); false at the end (`dst` left uninitialized).
    public func next(into dst: UnsafeMutablePointer<TraceEvent>) throws -> Bool {
        if finishedSource != nil { finishedSource = nil }
        while true {
            // (`pending.isEmpty` first: `pending.last` copies a file record, path included.)
            if !pending.isEmpty, let last = pending.last, heap.isEmpty || last.startFromName <= heap[0].time {
                pending.removeLast()
                try open(last)
                continue
            }
            guard !heap.isEmpty else { return false }
            heap[0].source._withUnsafeGuaranteedRef { advance($0, into: dst) }
            eventCount += 1
            return true
        }
    }

    /// Moves the front event of `s`, the heap's top, to `dst` and restores the heap.
    @inline(__always) private func advance(_ s: Source, into dst: UnsafeMutablePointer<TraceEvent>) {
        dst.moveInitialize(from: s.slot(s.head), count: 1)
        s.head += 1
        let time = dst.pointee.time
        if time < maxEmitted { lateEvents += 1 } else { maxEmitted = time }
        refill(s)
        if s.count == 0 {
            heapPopTop()
            finish(s)
            // Still referenced by the caller's guaranteed reference: dropped at the next call.
            finishedSource = sources.removeValue(forKey: ObjectIdentifier(s))
        } else {
            heap[0] = s.entry()
            siftDown(0)
        }
    }

    /// Problems of every file opened so far (call after the last event for the full list).
    public var allProblems: [TraceProblem] {
        var all = finishedProblems
        for h in heap { all.append(contentsOf: h.source.takeUnretainedValue().decoder.problems) }
        return all
    }

    /// Events per file read so far, truncation, etc., by decoder.
    public var decoders: [TraceFileDecoder] { openedDecoders }

    // MARK: heap of sources, keyed by their front event

    @inline(__always) private func less(_ a: HeapEntry, _ b: HeapEntry) -> Bool {
        if a.time != b.time { return a.time < b.time }
        if a.pid != b.pid { return a.pid < b.pid }
        if a.tid != b.tid { return a.tid < b.tid }
        return a.seq < b.seq
    }

    private func heapPush(_ s: HeapEntry) {
        heap.append(s)
        var i = heap.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if less(heap[i], heap[p]) { heap.swapAt(i, p); i = p } else { break }
        }
    }

    private func heapPopTop() {
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            siftDown(0)
        }
    }

    private func siftDown(_ i0: Int) {
        var i = i0
        let n = heap.count
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < n && less(heap[l], heap[m]) { m = l }
            if r < n && less(heap[r], heap[m]) { m = r }
            if m == i { return }
            heap.swapAt(i, m)
            i = m
        }
    }
}

/// A whole trace in memory (the convenience entry point).
public struct LoadedTrace: Sendable {
    public var files: [TraceFileInfo]
    public var headers: [Int32: TraceHeader]
    public var events: [TraceEvent]
    public var stacks: [Int32: [UInt32: [UInt64]]]
    public var problems: [TraceProblem]

    public var truncated: [TraceProblem] { problems.filter { $0.kind == .truncated } }
    public var droppedEvents: UInt64 { problems.filter { $0.kind == .dropped }.reduce(0) { $0 + $1.count } }
}

public enum TraceReader {
    /// Reads every file of `paths` (files or directories) and merges their events. Throws
    /// `TraceReadError` for unusable input; truncation, corruption, invalid lines, unknown kinds and
    /// drops are returned in `problems`.
    public static func load(paths: [String]) throws -> LoadedTrace {
        let stream = try TraceEventStream(paths: paths)
        var events: [TraceEvent] = []
        while let e = try stream.next() { events.append(e) }
        return LoadedTrace(files: stream.files, headers: stream.headers, events: events, stacks: stream.stacks,
                           problems: stream.allProblems)
    }
}
