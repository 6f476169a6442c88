import Foundation
import TangleTraceFormat
import TangleTraceReader

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

    /// The passes that follow the stream (the others run in `finish`).
    let misuse: MisuseRules
    let waitFor: WaitForPass

    public init(options: AnalysisOptions = AnalysisOptions()) {
        self.options = options
        self.model = TraceModel(options: options)
        misuse = MisuseRules(model: model)
        waitFor = WaitForPass(model: model, misuse: misuse)
        model.misuse = misuse
        model.waitFor = waitFor
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

    public func addTextStack(pid: Int32, id: UInt32, frames: [TextFrame]) {
        model.textStacks[pid, default: [:]][id] = frames
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

    /// Runs the end-of-trace passes, in order, and builds the report. Each pass reads the model and
    /// returns findings; what an earlier finding covers is dropped by the typed `Subsumption` rules.
    public func finish() -> AnalysisResult {
        var raw: [RawFinding] = []
        let lifecycle = LifecyclePass(model: model, misuse: misuse)
        let passes: [() -> [RawFinding]] = [
            waitFor.finish,          // deadlocks and hangs
            lifecycle.run,           // zombies, leaks, lost messages (and owner-died of killed holders, into misuse)
            { self.misuse.findings }, // self-deadlock, non-owner release, owner died, fork, held at exit
        ]
        for pass in passes {
            for f in pass() { Subsumption.admit(f, into: &raw) }
        }
        // Lock order (predicted) is told which lock sets are already actual deadlocks.
        let actualLocks = raw.filter { $0.kind == .deadlock || $0.kind == .selfDeadlock }.map(\.locks).filter { !$0.isEmpty }
        let lo = model.runLockOrder(actualLocks: actualLocks)
        for f in lo.findings { Subsumption.admit(f, into: &raw) }

        let symbolizer = Symbolizer(headers: headers, searchDirectories: options.symbolDirectories)
        let builder = FindingBuilder(model: model, symbolizer: symbolizer)
        var findings: [Finding] = []
        var highlighted: Set<String> = []
        for r in raw {
            let f = builder.build(r)
            highlighted.formUnion(r.highlight)
            // One finding per bug: the same kind and fingerprint again (another worker stuck the
            // same way) adds its participants and evidence to the first.
            if let k = findings.firstIndex(where: { $0.kind == f.kind && $0.fingerprint == f.fingerprint }) {
                findings[k].absorb(f)
            } else {
                findings.append(f)
            }
        }
        findings.sort { $0.precedes($1) }

        var problems = model.problems
        if model.unmatchedReceives > 0 {
            problems.append(TraceProblemNote(
                kind: .unmatchedMessages,
                detail: "\(model.unmatchedReceives) message(s) were received whose put/send is not in the trace (a missing or truncated file)"))
        }
        for w in symbolizer.warnings {
            problems.append(TraceProblemNote(kind: .symbols, detail: w))
        }
        let report = Report(findings: findings, processes: processSummaries(), problems: problems,
                            ruledOut: lo.ruledOut.sorted { ($0.detail, $0.reason.rawValue) < ($1.detail, $1.reason.rawValue) },
                            stats: AnalysisStats(files: files, processes: model.processes.values.filter(\.hasEvents).count,
                                                 threads: model.threads.count, events: model.eventCount,
                                                 objects: model.objects.count))
        let context = exportContext(highlighted: highlighted)
        var result = AnalysisResult(report: report, context: context, blocked: blockedThreads())
        result.sharedMemoryNotUnlinked = model.objects.values
            .filter { $0.kind == .sharedMemory && $0.created != nil && $0.unlinked == nil }
            .compactMap { $0.created?.text ?? $0.name }.sorted()
        result.threads = model.threads.map { t in
            ThreadActivity(pid: t.pid, tid: t.tid, lastTime: t.lastTime,
                           exited: t.exited || model.processes[t.pid]?.exit != nil)
        }
        return result
    }

    private func blockedThreads() -> [BlockedThread] {
        model.threads.compactMap { t in
            guard let w = t.wait, !t.exited, !t.isInternal, !(model.processes[t.pid]?.isDead ?? false) else { return nil }
            return BlockedThread(pid: t.pid, tid: t.tid, wait: w.event, since: t.outerWaits.first?.event.time ?? w.event.time)
        }
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
        var waitFor = self.waitFor.graphEdges()
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
        var context = ExportContext(events: events, headers: headers, processNames: processNames, threadNames: threadNames,
                                    objectNames: objectNames, waitFor: waitFor, lockOrder: lockOrder,
                                    sourceRoots: [FileManager.default.currentDirectoryPath])
        context.traceEnd = model.endTime
        return context
    }
}
