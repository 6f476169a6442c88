import CTangleSupport
import Glibc

// Small internal building blocks of the runtime: a pthread mutex + condition variable on the
// monotonic clock (re-initialisable after fork), monotonic time, deadlines, environment access.

/// A mutex with a condition variable, both heap-allocated (never moved) and waiting on
/// CLOCK_MONOTONIC. Unlike `Synchronization.Mutex` it can be re-initialised in a forked child,
/// where a lock another parent thread held at fork time would otherwise stay held forever.
final class CondLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let cond: UnsafeMutablePointer<pthread_cond_t>

    init() {
        mutex = .allocate(capacity: 1)
        cond = .allocate(capacity: 1)
        CondLock.initialize(mutex, cond)
    }

    private static func initialize(_ m: UnsafeMutablePointer<pthread_mutex_t>, _ c: UnsafeMutablePointer<pthread_cond_t>) {
        pthread_mutex_init(m, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(c, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        cond.deallocate()
        mutex.deallocate()
    }

    /// In a forked child only (single-threaded): forget whatever state the parent's threads left.
    func reinitializeAfterFork() { CondLock.initialize(mutex, cond) }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }

    @inline(__always)
    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Waits (lock held) until signalled or `deadline` (monotonic ns, nil = forever) passes.
    /// Returns false on timeout. Spurious wakeups are possible: callers loop on their predicate.
    func wait(until deadline: UInt64?) -> Bool {
        guard let deadline else {
            pthread_cond_wait(cond, mutex)
            return true
        }
        var ts = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        return pthread_cond_timedwait(cond, mutex, &ts) != ETIMEDOUT
    }

    func broadcast() { pthread_cond_broadcast(cond) }
}

enum Clock {
    /// CLOCK_MONOTONIC in nanoseconds (the trace's clock).
    @inline(__always)
    static func now() -> UInt64 { tangle_now_ns() }

    /// The monotonic deadline `timeout` from now (nil = no deadline).
    static func deadline(after timeout: Duration?) -> UInt64? {
        guard let timeout else { return nil }
        let (s, atto) = timeout.components
        if s < 0 { return now() }
        let ns = UInt64(s) &* 1_000_000_000 &+ UInt64(atto / 1_000_000_000)
        return now() &+ ns
    }

    /// Milliseconds left until `deadline` for poll(2): -1 = forever, 0 = passed (rounded up).
    static func pollTimeout(until deadline: UInt64?) -> Int32 {
        guard let deadline else { return -1 }
        let n = now()
        if n >= deadline { return 0 }
        return Int32(clamping: (deadline - n + 999_999) / 1_000_000)
    }
}

enum Env {
    static func get(_ name: String) -> String? {
        guard let p = getenv(name) else { return nil }
        return String(cString: p)
    }

    /// The current environment as `NAME=value` strings.
    static func all() -> [String] {
        var result: [String] = []
        guard var p = tangle_environ() else { return result }
        while let entry = p.pointee {
            result.append(String(cString: entry))
            p += 1
        }
        return result
    }
}

enum Hex {
    private static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ s: String) -> [UInt8]? {
        let u = Array(s.utf8)
        guard u.count % 2 == 0 else { return nil }
        func v(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: c - 48
            case 97...102: c - 87
            case 65...70: c - 55
            default: nil
            }
        }
        var out = [UInt8]()
        out.reserveCapacity(u.count / 2)
        var i = 0
        while i < u.count {
            guard let h = v(u[i]), let l = v(u[i + 1]) else { return nil }
            out.append(h << 4 | l)
            i += 2
        }
        return out
    }
}

enum FD {
    /// Reads `fd` to end of file.
    static func readAll(_ fd: Int32) -> [UInt8]? {
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if n == 0 { return out }
            out.append(contentsOf: buf[0..<n])
        }
    }

    /// Reads a small text file (procfs, sysfs) whole; nil when it cannot be opened.
    static func readFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return nil }
        defer { close(fd) }
        guard let bytes = readAll(fd) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { tangle_write_all(fd, $0.baseAddress, $0.count) == 0 }
    }

    /// Writes `message` to standard error (Swift 6 rejects the C global `stderr`).
    static func printError(_ message: String) {
        _ = writeAll(2, Array((message + "\n").utf8))
    }
}

/// Threads of this process (entries of /proc/self/task).
func countThreads() -> Int {
    guard let dir = opendir("/proc/self/task") else { return 1 }
    defer { closedir(dir) }
    var n = 0
    while let entry = readdir(dir) {
        let first = withUnsafeBytes(of: entry.pointee.d_name) { $0[0] }
        if first != UInt8(ascii: ".") { n += 1 }
    }
    return max(n, 1)
}
