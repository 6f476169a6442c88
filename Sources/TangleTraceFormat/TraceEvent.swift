/// One decoded event: the common fields of every JSON line plus the kind's numeric arguments.
///
/// A value type with no references except the optional `text`, so arrays of millions of them stay
/// cheap; the analyzer reads `a`/`b`/`c` by the meaning `EventKind.argumentKeys` gives them.
public struct TraceEvent: Sendable, Equatable {
    /// CLOCK_MONOTONIC nanoseconds (shared by every process of one boot).
    public var time: UInt64
    public var pid: Int32
    public var tid: Int32
    /// Per-thread sequence number, from 0, with no gaps unless events were dropped (then a
    /// `dropped` event says how many).
    public var seq: UInt64
    public var kind: EventKind
    /// The object the event is about (0 = none). Unique across the processes of a session.
    public var object: UInt64
    /// Interned stack id (0 = no stack).
    public var stack: UInt32
    public var result: WaitResult
    public var a: UInt64
    public var b: UInt64
    public var c: UInt64
    /// A name, where the kind carries one (`proc.start`, `proc.spawn`, `*.new`, `shm.*`).
    public var text: String?

    public init(
        time: UInt64, pid: Int32, tid: Int32, seq: UInt64, kind: EventKind, object: UInt64 = 0,
        stack: UInt32 = 0, result: WaitResult = .ok, a: UInt64 = 0, b: UInt64 = 0, c: UInt64 = 0,
        text: String? = nil
    ) {
        self.time = time
        self.pid = pid
        self.tid = tid
        self.seq = seq
        self.kind = kind
        self.object = object
        self.stack = stack
        self.result = result
        self.a = a
        self.b = b
        self.c = c
        self.text = text
    }
}

/// One loaded module of a traced process, as `dl_iterate_phdr` saw it: enough to symbolize a
/// return address offline (`pc - bias` is the address in the file, checked by build id).
public struct ModuleInfo: Sendable, Equatable, Codable {
    public var path: String
    /// Hex GNU build id ("" when the module has none).
    public var buildID: String
    /// Load bias (`dlpi_addr`).
    public var bias: UInt64
    /// The executable address range [low, high) the module's PT_LOAD segments cover.
    public var low: UInt64
    public var high: UInt64

    public init(path: String, buildID: String, bias: UInt64, low: UInt64, high: UInt64) {
        self.path = path
        self.buildID = buildID
        self.bias = bias
        self.low = low
        self.high = high
    }
}

/// The first line of every trace file.
public struct TraceHeader: Sendable, Equatable {
    /// What the recorder writes. Each version adds to the one before (docs/trace-format.md): 2, `dt`
    /// (ns after the previous event line) in place of `t`; 3, templates and run lines; 4, block
    /// markers in LZ4 files and a line limit. Files of every earlier version stay readable.
    public static let currentSchemaVersion = 4

    /// Files of self-contained lines (absolute `t`, explicit `seq`, no templates, no block markers),
    /// as test fixtures and hand-made traces write them: version 1 says the file needs nothing newer,
    /// so that compressing it with `lz4` keeps it valid (a version 4 LZ4 file must carry markers).
    public static let selfContainedSchemaVersion = 1

    public var schemaVersion: Int
    public var pid: Int32
    public var ppid: Int32
    public var executable: String
    public var argv0: String
    /// "CLOCK_MONOTONIC" in version 1.
    public var clock: String
    /// /proc/sys/kernel/random/boot_id: monotonic times compare only within one boot.
    public var bootID: String
    /// CLOCK_MONOTONIC ns when the file was started.
    public var startTime: UInt64
    /// The process object id (the one its parent's `proc.spawn` names), 0 for a root process.
    public var processObject: UInt64
    public var modules: [ModuleInfo]

    public init(
        schemaVersion: Int = TraceHeader.currentSchemaVersion, pid: Int32, ppid: Int32, executable: String,
        argv0: String, clock: String = "CLOCK_MONOTONIC", bootID: String, startTime: UInt64,
        processObject: UInt64 = 0, modules: [ModuleInfo] = []
    ) {
        self.schemaVersion = schemaVersion
        self.pid = pid
        self.ppid = ppid
        self.executable = executable
        self.argv0 = argv0
        self.clock = clock
        self.bootID = bootID
        self.startTime = startTime
        self.processObject = processObject
        self.modules = modules
    }
}
