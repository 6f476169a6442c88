import Glibc
import Synchronization

/// The recorder: every traced operation calls `Recorder.record`. On when `TANGLE_TRACE=<dir>` is
/// set (read once, lazily); off and near-free otherwise. See docs/trace-format.md.
///
/// (Early version: the API is final, the implementation is being made real.)
public enum Recorder {
    private static let enabledFlag: Bool = {
        guard let p = getenv("TANGLE_TRACE"), p.pointee != 0 else { return false }
        return true
    }()

    /// True when `TANGLE_TRACE=<dir>` is set. Cheap to test.
    public static var isEnabled: Bool { enabledFlag }

    private static let objectCounter = Atomic<UInt64>(0)
    private static let messageCounter = Atomic<UInt64>(0)

    public static func record(
        _ kind: EventKind, object: UInt64 = 0, a: UInt64 = 0, b: UInt64 = 0, c: UInt64 = 0,
        result: WaitResult = .ok, stack: Bool = true
    ) {
        guard isEnabled else { return }
    }

    public static func record(
        _ kind: EventKind, object: UInt64 = 0, text: String, a: UInt64 = 0, b: UInt64 = 0,
        c: UInt64 = 0, result: WaitResult = .ok, stack: Bool = true
    ) {
        guard isEnabled else { return }
    }

    /// `(pid << 28) | per-process counter`: unique across processes, even when tracing is off.
    public static func newObjectID() -> UInt64 {
        let n = objectCounter.add(1, ordering: .relaxed).newValue
        return (UInt64(UInt32(bitPattern: getpid())) << 28) | (n & 0xFFF_FFFF)
    }

    /// Same scheme as `newObjectID`, separate counter.
    public static func newMessageID() -> UInt64 {
        let n = messageCounter.add(1, ordering: .relaxed).newValue
        return (UInt64(UInt32(bitPattern: getpid())) << 28) | (n & 0xFFF_FFFF)
    }

    /// Synchronous: everything recorded so far reaches write(2).
    public static func flush() {}

    /// Opens the file and writes the header (idempotent).
    public static func start(processObject: UInt64 = 0, name: String? = nil, forked: Bool = false) {}

    public static func threadStarted(object: UInt64, name: String?) {}
    public static func threadExited(object: UInt64) {}

    /// Records `proc.exit`, flushes, ends the LZ4 frame.
    public static func processExiting(status: Int32, signal: Int32) {}

    /// In a forked child: start a new file, drop the parent's unflushed records.
    public static func afterForkInChild(processObject: UInt64, name: String?) {}
}
