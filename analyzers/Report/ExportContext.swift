import TangleTraceFormat

/// What exporters need beyond the findings: the timeline and the graphs. The analyzer fills it;
/// exporters (analyzers/Export) read it. Kept separate from `Report` because it is large and not part
/// of the stable JSON report.
public struct ExportContext: Sendable {
    /// Merged events in time order (may be empty when the caller asked for a bounded-memory run).
    public var events: [TraceEvent]
    public var headers: [Int32: TraceHeader]
    /// Display names: "MainProcess", "Process-1", …
    public var processNames: [Int32: String]
    /// Thread names where known, keyed by tid.
    public var threadNames: [Int32: String]
    /// Object names (queue 'tasks', lock 'A', …) keyed by object id.
    public var objectNames: [UInt64: String]
    /// The wait-for graph at the end of the trace and the lock-order graph.
    public var waitFor: [GraphEdge]
    public var lockOrder: [GraphEdge]
    /// Directories to look for sources in (LLM summary, HTML): frames' file paths are tried as is,
    /// then relative to these.
    public var sourceRoots: [String]
    /// What a timeline left out of `events` when they were chosen by `EvidenceWindows` (said in
    /// the output); nil when nothing was.
    public var eventsNote: String? = nil
    /// When the trace ends (the last event of any process, or `tangle run`'s stop when later; 0:
    /// unknown). A wait that never returned lasts until then in the timelines, however few of the
    /// trace's events `events` holds.
    public var traceEnd: UInt64 = 0

    public init(
        events: [TraceEvent] = [], headers: [Int32: TraceHeader] = [:], processNames: [Int32: String] = [:],
        threadNames: [Int32: String] = [:], objectNames: [UInt64: String] = [:], waitFor: [GraphEdge] = [],
        lockOrder: [GraphEdge] = [], sourceRoots: [String] = []
    ) {
        self.events = events
        self.headers = headers
        self.processNames = processNames
        self.threadNames = threadNames
        self.objectNames = objectNames
        self.waitFor = waitFor
        self.lockOrder = lockOrder
        self.sourceRoots = sourceRoots
    }
}

/// An edge of a graph for `--format dot` / HTML: nodes are free-form ids with labels.
public struct GraphEdge: Sendable, Equatable, Codable {
    public var from: String
    public var fromLabel: String
    public var to: String
    public var toLabel: String
    public var label: String
    /// Part of a reported deadlock cycle / knot / inversion.
    public var highlighted: Bool

    public init(from: String, fromLabel: String, to: String, toLabel: String, label: String, highlighted: Bool = false) {
        self.from = from
        self.fromLabel = fromLabel
        self.to = to
        self.toLabel = toLabel
        self.label = label
        self.highlighted = highlighted
    }
}
