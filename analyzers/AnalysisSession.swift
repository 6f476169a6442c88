import Foundation
import TangleTrace

/// One analysis run, fed event by event (in merged time order) and finished once.
///
/// Memory is bounded by live state (see `TraceModel`) unless `options.keepEvents` asks to keep the
/// merged events for the exporters.
public final class AnalysisSession {
    let options: AnalysisOptions
    let model: TraceModel
    private var events: [TraceEvent] = []
    private var headers: [Int32: TraceHeader] = [:]
    private var files = 0

    public init(options: AnalysisOptions = AnalysisOptions()) {
        self.options = options
        self.model = TraceModel(options: options)
    }

    public func addHeader(_ header: TraceHeader, file: String? = nil) {
        headers[header.pid] = header
        files += 1
        model.addHeader(header, file: file)
    }

    /// Replaces a process's header (module tables completed after the first events).
    public func updateHeader(_ header: TraceHeader) {
        headers[header.pid] = header
        model.processes[header.pid]?.header = header
    }

    public func addStack(pid: Int32, id: UInt32, pcs: [UInt64]) {
        model.addStack(pid: pid, id: id, pcs: pcs)
    }

    public func addProblem(_ note: TraceProblemNote) {
        model.noteProblem(note)
    }

    @inline(__always)
    public func consume(_ event: TraceEvent) {
        if options.keepEvents { events.append(event) }
        model.consume(event)
    }

    public func consume<S: Sequence>(_ events: S) where S.Element == TraceEvent {
        for e in events { consume(e) }
    }

    /// Runs the end-of-trace passes and builds the report.
    public func finish() -> AnalysisResult {
        var raw: [RawFinding] = []
        // 1. Deadlocks and hangs: confirmed candidates from quiescent points, then the end state.
        var waitKeysReported: Set<UInt64> = []
        for c in model.candidates where c.confirmed {
            if !c.waitKeys.isDisjoint(with: waitKeysReported) { continue }
            raw.append(c.finding)
            waitKeysReported.formUnion(c.waitKeys)
        }
        for f in model.runWaitFor(atEnd: true) where f.waitKeys.isDisjoint(with: waitKeysReported) {
            raw.append(f)
            waitKeysReported.formUnion(f.waitKeys)
        }
        // 2. Lifecycle (may add owner-died for killed holders to the misuse list).
        let lifecycle = model.runLifecycle()
        // 3. Streaming misuse rules (self-deadlock, non-owner release, owner died, fork, held at exit).
        raw += model.findings
        for f in lifecycle {
            // The wait-for pass may already have reported the same queue (a join blocked on it).
            if f.kind == .missingTaskDone && raw.contains(where: { $0.kind == .missingTaskDone && $0.fingerprintExtra.contains(f.fingerprintExtra.last ?? "") }) { continue }
            raw.append(f)
        }
        // 4. Lock order (predicted), minus what is already an actual deadlock.
        let actualLocks = raw.filter { $0.kind == .deadlock || $0.kind == .selfDeadlock }.map(\.locks).filter { !$0.isEmpty }
        let lo = model.runLockOrder(actualLocks: actualLocks)
        raw += lo.findings

        let symbolizer = Symbolizer(headers: headers, searchDirectories: options.symbolDirectories)
        let builder = FindingBuilder(model: model, symbolizer: symbolizer)
        var findings: [Finding] = []
        var seen: Set<String> = []
        var highlighted: Set<String> = []
        for r in raw {
            let f = builder.build(r)
            if seen.insert(f.kind.rawValue + f.fingerprint + f.title).inserted {
                findings.append(f)
                highlighted.formUnion(r.highlight)
            }
        }
        findings.sort(by: Self.order)

        var problems = model.problems
        if model.unmatchedReceives > 0 {
            problems.append(TraceProblemNote(
                kind: "unmatched-messages",
                detail: "\(model.unmatchedReceives) message(s) were received whose put/send is not in the trace (a missing or truncated file)"))
        }
        for w in symbolizer.warnings {
            problems.append(TraceProblemNote(kind: "symbols", detail: w))
        }
        let report = Report(findings: findings, processes: processSummaries(), problems: problems,
                            ruledOut: lo.ruledOut.sorted { ($0.detail, $0.reason) < ($1.detail, $1.reason) },
                            stats: AnalysisStats(files: files, processes: model.processes.values.filter(\.hasEvents).count,
                                                 threads: model.threads.count, events: model.eventCount,
                                                 objects: model.objects.count))
        let context = exportContext(highlighted: highlighted)
        return AnalysisResult(report: report, context: context)
    }

    static func rank(_ k: FindingKind) -> Int { FindingKind.allCases.firstIndex(of: k) ?? 99 }

    static func order(_ a: Finding, _ b: Finding) -> Bool {
        if a.severity != b.severity { return a.severity > b.severity }
        if a.kind != b.kind { return rank(a.kind) < rank(b.kind) }
        if a.fingerprint != b.fingerprint { return a.fingerprint < b.fingerprint }
        return a.title < b.title
    }

    private func processSummaries() -> [ProcessSummary] {
        model.processes.values.sorted { $0.pid < $1.pid }.map { p in
            ProcessSummary(pid: p.pid, ppid: p.ppid, name: model.processName(p.pid),
                           executable: p.header?.executable ?? "",
                           end: model.endDescription(p), threads: p.threads.count, events: p.events)
        }
    }

    private func exportContext(highlighted: Set<String>) -> ExportContext {
        var processNames: [Int32: String] = [:]
        for pid in model.processes.keys { processNames[pid] = model.processName(pid) }
        var threadNames: [Int32: String] = [:]
        for t in model.threads { if let n = t.name { threadNames[t.tid] = n } }
        var objectNames: [UInt64: String] = [:]
        for (id, o) in model.objects { if let n = o.name { objectNames[id] = n } }

        // The end state's graph, plus the graphs of hangs/deadlocks confirmed at quiescent points
        // (often the only picture: a timeout runner's SIGTERM ends every wait before the end).
        var waitFor: [GraphEdge] = model.lastWaitFor.map { model.waitForEdges($0) } ?? []
        for c in model.candidates where c.confirmed { waitFor += c.edges }
        var seenEdges: Set<String> = []
        waitFor = waitFor.filter { seenEdges.insert("\($0.from)->\($0.to)|\($0.label)").inserted }
        for k in waitFor.indices where highlighted.contains("\(waitFor[k].from)->\(waitFor[k].to)") {
            waitFor[k].highlighted = true
        }
        var lockOrder: [GraphEdge] = []
        for e in model.lockOrder.edges {
            let threads = Set(e.instances.map(\.thread)).sorted().map { model.who(model.threads[$0]) }
            lockOrder.append(GraphEdge(from: "l:\(e.from)", fromLabel: model.objectLabel(e.from),
                                       to: "l:\(e.to)", toLabel: model.objectLabel(e.to),
                                       label: threads.joined(separator: ", "),
                                       highlighted: highlighted.contains("l:\(e.from)->l:\(e.to)")))
        }
        return ExportContext(events: events, headers: headers, processNames: processNames, threadNames: threadNames,
                             objectNames: objectNames, waitFor: waitFor, lockOrder: lockOrder,
                             sourceRoots: [FileManager.default.currentDirectoryPath])
    }
}
