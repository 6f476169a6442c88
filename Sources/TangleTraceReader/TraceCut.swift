import Glibc
import TangleTraceFormat

/// Cutting a trace directory at a time: what `tangle run` does at its stop, so that the processes
/// dying of its signals (a killed lock owner hands its lock over, a killed waiter stops waiting)
/// do not hide the hang it caught. Works on lines, not on decoded events, so that everything
/// before the cut (unknown kinds and keys included) stays exactly as written.
public enum TraceCut {
    /// Where the complete files go, inside the cut directory.
    public static let asideDirectory = "after-stop"

    /// Rewrites each trace file of `directory` without the events recorded at or after `cut`
    /// (header, stack and module records are kept), in the same format (LZ4 for `.lz4`); the
    /// original files move to `directory/after-stop/`. Returns the files and the events dropped.
    public static func cut(directory: String, at cut: UInt64) throws -> (files: Int, dropped: Int) {
        let files = try findTraceFiles([directory])
        // Everything inside the directory goes through its descriptor and is never followed
        // through a symbolic link (a shared directory: another user may plant one): files are
        // opened with O_NOFOLLOW, moved with renameat within the directory, created with O_EXCL.
        let dirFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dirFD >= 0 else { throw TraceReadError(file: directory, message: "cannot open: " + String(cString: strerror(errno))) }
        defer { close(dirFD) }
        let aside = directory + "/" + asideDirectory
        if mkdirat(dirFD, asideDirectory, 0o700) != 0 && errno != EEXIST {
            throw TraceReadError(file: aside, message: "cannot create: " + String(cString: strerror(errno)))
        }
        let asideFD = openat(dirFD, asideDirectory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard asideFD >= 0 else {
            let why = errno == ELOOP || errno == ENOTDIR ? "not a directory of its own (a symbolic link or a file): refused" : String(cString: strerror(errno))
            throw TraceReadError(file: aside, message: why)
        }
        defer { close(asideFD) }
        var st = stat()
        guard fstat(asideFD, &st) == 0, st.st_uid == geteuid() else {
            throw TraceReadError(file: aside, message: "owned by another user: refused")
        }
        var dropped = 0
        var done = 0
        for f in files {
            let name = String(f.path.split(separator: "/").last ?? Substring(f.path))
            let fd = openat(dirFD, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
            guard fd >= 0 else {
                if errno == ELOOP { continue }  // a symbolic link among the traces: not ours, left alone
                throw TraceReadError(file: f.path, message: "cannot open: " + String(cString: strerror(errno)))
            }
            var fst = stat()
            guard fstat(fd, &fst) == 0, (fst.st_mode & S_IFMT) == S_IFREG else { close(fd); continue }
            let raw = try RawTraceFile(descriptor: fd, path: f.path)
            let (text, n) = cutLines(raw, at: cut)
            let markers = raw.verifying
            raw.closeFile()
            dropped += n
            guard renameat(dirFD, name, asideFD, name) == 0 else {
                throw TraceReadError(file: f.path, message: "cannot move aside: " + String(cString: strerror(errno)))
            }
            let out = openat(dirFD, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard out >= 0 else { throw TraceReadError(file: f.path, message: "cannot create: " + String(cString: strerror(errno))) }
            defer { close(out) }
            try write(text, to: out, path: f.path, lz4: name.hasSuffix(".lz4"), markers: markers)
            done += 1
        }
        // The stop itself, for the timelines of later analyses (a wait that never returned lasts
        // until the stop, not until the last event someone recorded before it).
        let stamp = openat(asideFD, stopFile, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o600)
        if stamp >= 0 {
            let text = Array("\(cut)\n".utf8)
            _ = text.withUnsafeBytes { Glibc.write(stamp, $0.baseAddress, $0.count) }
            close(stamp)
        }
        return (done, dropped)
    }

    /// The file in `asideDirectory` holding the stop's time (CLOCK_MONOTONIC ns, decimal).
    public static let stopFile = "stop-time"

    /// The time `tangle run` stopped the processes whose trace is in `directory` (nil: never cut).
    public static func stopTime(directory: String) -> UInt64? {
        guard let f = fopen(directory + "/" + asideDirectory + "/" + stopFile, "r") else { return nil }
        defer { fclose(f) }
        var buf = [CChar](repeating: 0, count: 32)
        guard fgets(&buf, 32, f) != nil else { return nil }
        return UInt64(String(cString: buf).split(separator: "\n").first ?? "")
    }

    /// The lines of `raw` without the events at or after `cut`. Kept events get an absolute
    /// `"t"`, so that dropping a `dt` line never shifts the lines after it; a run line keeps the
    /// prefix of its pairs before the cut (times only grow within it, and the event before its
    /// first pair is kept too, with its own time, so the pairs keep their `dt`).
    static func cutLines(_ raw: RawTraceFile, at cut: UInt64) -> (text: [UInt8], dropped: Int) {
        var out: [UInt8] = []
        var dropped = 0
        var base: UInt64 = 0
        while let line = raw.nextLine() {
            let b = line.bindMemory(to: UInt8.self)
            if let pairs = runPairs(line) {
                var kept: [UInt64] = []
                var i = 0
                while i + 1 < pairs.count {
                    let t = base &+ pairs[i]
                    base = t
                    if t >= cut { dropped += 1 } else if kept.count == i { kept += [pairs[i], pairs[i + 1]] }
                    i += 2
                }
                if !kept.isEmpty {
                    var w = ByteWriter(capacity: 64 + 42 * kept.count)
                    TraceLineEncoder.run(pairs: kept, into: &w)
                    out += w.array
                }
                continue
            }
            guard let token = timeToken(line) else {
                out += b
                out.append(10)
                continue
            }
            if token.isHeader {
                base = token.value
                out += b
                out.append(10)
                continue
            }
            let t = token.isDelta ? base &+ token.value : token.value
            base = t
            if t >= cut { dropped += 1; continue }
            out += b[..<token.range.lowerBound]
            var w = ByteWriter(capacity: 32)
            TraceLineEncoder.timeKey(t, into: &w)
            out += w.array
            out += b[token.range.upperBound...]
            out.append(10)
        }
        return (out, dropped)
    }

    private static func write(_ bytes: [UInt8], to fd: Int32, path: String, lz4: Bool, markers: Bool) throws {
        if lz4 {
            guard let frame = LZ4FrameWriter(fd: fd, markers: markers) else { throw TraceReadError(file: path, message: "cannot start an LZ4 frame") }
            var copy = bytes
            copy.withUnsafeMutableBufferPointer { if let p = $0.baseAddress { frame.append(p, $0.count) } }
            frame.end()
            if frame.failed { throw TraceReadError(file: path, message: "write failed: " + String(cString: strerror(errno))) }
            return
        }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw TraceReadError(file: path, message: "write failed: " + String(cString: strerror(errno))) }
            done += n
        }
    }

    /// The numbers of a run line's `e` array (`{"k":"run","e":[dt,tp,…]}`), nil for other lines.
    static func runPairs(_ line: UnsafeRawBufferPointer) -> [UInt64]? {
        let b = line.bindMemory(to: UInt8.self)
        guard let p = b.baseAddress, isRunLine(p, b.count) else { return nil }
        guard let v = JSONParser.parse(line), case let .array(items)? = v["e"] else { return [] }
        return items.compactMap(\.uint64)
    }

    /// The time key of a line: `"t":N` or `"dt":N` (its byte range, key included), for event lines
    /// and the header; nil for stack and module records and for lines without one.
    static func timeToken(_ line: UnsafeRawBufferPointer) -> (value: UInt64, isDelta: Bool, isHeader: Bool, range: Range<Int>)? {
        let b = line.bindMemory(to: UInt8.self)
        let n = b.count
        func has(_ s: StaticString) -> Bool {
            let m = s.utf8CodeUnitCount
            guard m <= n else { return false }
            let p = s.utf8Start
            var i = 0
            while i + m <= n {
                if b[i] == p[0] && memcmp(b.baseAddress! + i, p, m) == 0 { return true }
                i += 1
            }
            return false
        }
        if has("\"k\":\"stack\"") || has("\"k\":\"module\"") { return nil }
        let header = has("\"k\":\"header\"")
        var i = 0
        while i + 4 < n {
            // "t": or "dt": at the start of a key (after { or ,)
            if b[i] == 34 && i > 0 && (b[i - 1] == 123 || b[i - 1] == 44) {
                var k = i + 1
                let delta = !header && b[k] == 100 && k + 1 < n && b[k + 1] == 116  // d t
                if delta { k += 1 }
                if b[k] == 116 && k + 2 < n && b[k + 1] == 34 && b[k + 2] == 58 {  // t " :
                    var j = k + 3
                    while j < n && b[j] == 32 { j += 1 }
                    var v: UInt64 = 0
                    var digits = 0
                    while j < n && b[j] >= 48 && b[j] <= 57 { v = v &* 10 &+ UInt64(b[j] - 48); j += 1; digits += 1 }
                    return digits > 0 ? (v, delta, header, i..<j) : nil
                }
            }
            i += 1
        }
        return nil
    }
}
