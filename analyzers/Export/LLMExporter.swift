import Foundation

/// The LLM summary (`--format llm`, Markdown; `--format llm-json`, the same content as JSON).
///
/// Written for a model to debug from: what ran (process tree, primitives), each finding ranked
/// (actual before predicted, then severity), the participants' timelines around it, their stacks,
/// the source lines around user frames when the files are readable, what was ruled out, and the
/// question to answer.
///
/// Budget: tokens are estimated as characters / 4, rounded up. When the full summary is over the
/// budget, the least important content is cut first, in this order, and the cuts are listed under
/// "Cut for budget": later findings (reduced to one line each, from the last), source snippets
/// (from the last finding), timelines (from the last finding), stack depth (16 → 8 → 4 → 2 frames),
/// the ruled-out list, the one-line findings; Markdown is finally truncated hard with a note.
///
/// Secrets-free: no environment values, no message payloads (the trace has none), executables by
/// file name only. Deterministic: the same result and options give the same bytes.
enum LLMExporter {
    static func estimateTokens(_ s: String) -> Int { (s.utf8.count + 3) / 4 }

    // MARK: document model (also the llm-json shape)

    struct Doc: Codable {
        var tool = "tangle"
        var version: String
        var format = "tangle-llm-summary/v1"
        var budgetTokens: Int
        var estimatedTokens: Int
        var totalFindings = 0
        var actualFindings = 0
        var tokenEstimate = "characters / 4, rounded up"
        var run: Run
        var findings: [FindingDoc]
        var moreFindings: [FindingLine]
        var ruledOut: [String]
        var problems: [String]
        var cut: [String]
        var question: String

        enum CodingKeys: String, CodingKey {
            case tool, version, format, budgetTokens = "budget_tokens", estimatedTokens = "estimated_tokens"
            case totalFindings = "total_findings", actualFindings = "actual_findings"
            case tokenEstimate = "token_estimate", run, findings, moreFindings = "more_findings"
            case ruledOut = "ruled_out", problems, cut, question
        }
    }

    struct Run: Codable {
        var processes: [Proc]
        var primitives: [String]
        var files: Int
        var threads: Int
        var events: Int
    }

    struct Proc: Codable {
        var pid: Int32
        var ppid: Int32
        var name: String
        var executable: String
        var end: String
        var threads: Int
        var events: Int
        var depth: Int
    }

    struct FindingDoc: Codable {
        var rank: Int
        var kind: String
        var severity: String
        var confidence: String
        var title: String
        var fingerprint: String
        var explanation: String
        var fix: String
        var why: String?
        var participants: [String]
        var timeline: [TimelineEvent]?
        var stacks: [StackDoc]
    }

    struct TimelineEvent: Codable {
        var ms: String
        var thread: String
        var event: String
        var evidence: Bool
    }

    struct StackDoc: Codable {
        var label: String
        var warning: String?
        var frames: [FrameDoc]
        var framesOmitted: Int
        enum CodingKeys: String, CodingKey { case label, warning, frames, framesOmitted = "frames_omitted" }
    }

    struct FrameDoc: Codable {
        var text: String
        /// The program's own code (not the Tangle or Swift runtime, not a system library).
        var user: Bool
        var function: String?
        var file: String?
        var line: Int?
        var source: SourceDoc?
    }

    struct SourceDoc: Codable {
        var path: String
        var start: Int
        var lines: [String]
    }

    struct FindingLine: Codable {
        var rank: Int
        var kind: String
        var severity: String
        var confidence: String
        var title: String
        var fingerprint: String
    }

    // MARK: building

    /// How much is kept; the cut ladder moves these down.
    struct Plan {
        var full: Int
        var snippets: Int      // findings (from the first) that keep source snippets
        var timelines: Int     // findings (from the first) that keep timelines
        var maxFrames = 16
        var ruledOut = true
        var oneLiners = Int.max
        var cuts: [String] = []
    }

    struct Built {
        var full: [FindingDoc]      // every finding in full (with snippets and timelines)
        var base: Doc
    }

    static func build(result: AnalysisResult, options: ExportOptions) -> Built {
        let report = result.report, context = result.context
        let lookup = SourceLookup(roots: context.sourceRoots + options.sourceRoots)
        let traceStart = context.events.first?.time ?? 0

        // Process tree (depth-first from the roots, children by pid).
        var procs: [Proc] = []
        let byPid = Dictionary(report.processes.map { ($0.pid, $0) }, uniquingKeysWith: { a, _ in a })
        let children = Dictionary(grouping: report.processes, by: \.ppid)
        func visit(_ p: ProcessSummary, _ depth: Int) {
            procs.append(Proc(pid: p.pid, ppid: p.ppid, name: p.name, executable: ExportSupport.baseName(p.executable),
                              end: p.end, threads: p.threads, events: p.events, depth: depth))
            for c in (children[p.pid] ?? []).sorted(by: { $0.pid < $1.pid }) where c.pid != p.pid { visit(c, depth + 1) }
        }
        for root in report.processes.filter({ byPid[$0.ppid] == nil || $0.ppid == $0.pid }).sorted(by: { $0.pid < $1.pid }) { visit(root, 0) }
        if procs.isEmpty {
            for (pid, h) in context.headers.sorted(by: { $0.key < $1.key }) {
                procs.append(Proc(pid: pid, ppid: h.ppid, name: context.processNames[pid] ?? "pid \(pid)",
                                  executable: ExportSupport.baseName(h.executable), end: "unknown", threads: 0, events: 0, depth: 0))
            }
        }

        var docs: [FindingDoc] = []
        let byThread = ExportSupport.eventsByThread(context)
        for (rank, item) in ExportSupport.ranked(report.findings).enumerated() {
            let f = item.finding
            let evidenceKeys = Set(f.evidence.map { "\($0.pid)/\($0.tid)/\($0.seq)" })
            let timeline = ExportSupport.timeline(for: f, context: context, perThread: options.timelineEventsPerThread, index: byThread).map { e in
                TimelineEvent(ms: ExportSupport.millis(e.time &- traceStart),
                              thread: ExportSupport.threadLabel(pid: e.pid, tid: e.tid, context),
                              event: ExportSupport.describe(e, context),
                              evidence: evidenceKeys.contains("\(e.pid)/\(e.tid)/\(e.seq)"))
            }
            let stacks = f.stacks.map { s -> StackDoc in
                var userFramesWithSource = 0
                let frames = s.frames.map { fr -> FrameDoc in
                    var src: SourceDoc?
                    if userFramesWithSource < 2, !ExportSupport.isSystemFrame(fr), let sn = lookup.snippet(fr, context: options.contextLines) {
                        src = SourceDoc(path: fr.file ?? sn.path, start: sn.start, lines: sn.lines)
                        userFramesWithSource += 1
                    }
                    return FrameDoc(text: ExportSupport.describe(fr), user: !ExportSupport.isSystemFrame(fr) && fr.file != nil,
                                    function: fr.function, file: fr.file, line: fr.line, source: src)
                }
                return StackDoc(label: s.label, warning: s.warning, frames: frames, framesOmitted: 0)
            }
            docs.append(FindingDoc(
                rank: rank + 1, kind: f.kind.rawValue, severity: f.severity.rawValue, confidence: f.confidence.rawValue,
                title: f.title, fingerprint: f.fingerprint, explanation: f.explanation, fix: f.fix, why: f.why,
                participants: f.participants.map {
                    "\($0.process)\($0.thread.map { "/" + $0 } ?? "") (pid \($0.pid), tid \($0.tid)) \($0.role): \($0.detail)"
                },
                timeline: timeline.isEmpty ? nil : timeline, stacks: stacks))
        }

        let question: String
        if let top = docs.first {
            question = "Finding 1 (\(top.kind), \(top.confidence)) ranks first. Using the timelines, stacks and source above, explain its root cause in terms of the program's code, name the line(s) to change, and propose the smallest fix that removes it without introducing another deadlock, hang or lost message. Then say whether the other findings share that cause."
        } else {
            question = "No concurrency bug was found in this trace. If the program still misbehaved, which trace problems or ruled-out suspicions above could hide the cause, and what should be traced or tested next?"
        }
        let base = Doc(
            version: options.toolVersion, budgetTokens: options.llmBudgetTokens, estimatedTokens: 0,
            totalFindings: report.findings.count, actualFindings: report.findings.filter { $0.confidence == .actual }.count,
            run: Run(processes: procs, primitives: ExportSupport.primitives(context), files: report.stats.files,
                     threads: report.stats.threads, events: report.stats.events),
            findings: [], moreFindings: [],
            ruledOut: report.ruledOut.map { "\($0.kind.rawValue): \($0.detail) (\($0.reason))" },
            problems: report.problems.map { "\($0.kind)\($0.file.map { " in \(ExportSupport.baseName($0))" } ?? ""): \($0.detail)" },
            cut: [], question: question)
        return Built(full: docs, base: base)
    }

    static func apply(_ plan: Plan, _ built: Built) -> Doc {
        var doc = built.base
        doc.cut = plan.cuts
        for (i, f) in built.full.enumerated() {
            if i < plan.full {
                var g = f
                if i >= plan.snippets {
                    g.stacks = g.stacks.map { s in var s = s; s.frames = s.frames.map { var fr = $0; fr.source = nil; return fr }; return s }
                }
                if i >= plan.timelines { g.timeline = nil }
                g.stacks = g.stacks.map { s in
                    var s = s
                    // Keep the innermost frames, and always down to the first user frame.
                    let user = (s.frames.firstIndex { $0.user } ?? -1) + 1
                    let keep = max(plan.maxFrames, user)
                    if s.frames.count > keep {
                        s.framesOmitted = s.frames.count - keep
                        s.frames = Array(s.frames.prefix(keep))
                    }
                    return s
                }
                doc.findings.append(g)
            } else if doc.moreFindings.count < plan.oneLiners {
                doc.moreFindings.append(FindingLine(rank: f.rank, kind: f.kind, severity: f.severity, confidence: f.confidence, title: f.title, fingerprint: f.fingerprint))
            }
        }
        if !plan.ruledOut { doc.ruledOut = [] }
        return doc
    }

    /// Runs the cut ladder with `render` until the text fits `budget` tokens (or nothing is left to
    /// cut). Each step keeps as much as fits (binary search: the size grows with what is kept).
    static func fit(_ built: Built, budget: Int, render: (Doc) throws -> String) throws -> (String, Plan) {
        let n = built.full.count
        var plan = Plan(full: n, snippets: n, timelines: n)
        // Measure with a 7-digit placeholder estimate, so the final text (real estimate) is no longer.
        func measure(_ p: Plan) throws -> Int {
            var doc = apply(p, built)
            doc.estimatedTokens = 9_999_999
            return estimateTokens(try render(doc))
        }
        func fits(_ p: Plan) throws -> Bool { try measure(p) <= budget }
        /// The largest value in lo...hi for which `make(value)` fits (lo when none does).
        func largest(_ lo: Int, _ hi: Int, _ make: (Int) -> Plan) throws -> Int {
            var lo = lo, hi = hi
            while lo < hi {
                let mid = (lo + hi + 1) / 2
                if try fits(make(mid)) { lo = mid } else { hi = mid - 1 }
            }
            return lo
        }
        let hasSnippets = built.full.contains { $0.stacks.contains { $0.frames.contains { $0.source != nil } } }
        let hasTimelines = built.full.contains { $0.timeline != nil }
        // 1. Later findings become one line each, from the last.
        if try !fits(plan), n > 1 {
            var probe = plan
            probe.cuts.append("findings \(n)–\(n) reduced to one line each")   // the longest note
            plan.full = try largest(1, n) { var p = probe; p.full = $0; return p }
            if plan.full < n { plan.cuts.append("findings \(plan.full + 1)–\(n) reduced to one line each") }
        }
        plan.snippets = min(plan.snippets, plan.full)
        plan.timelines = min(plan.timelines, plan.full)
        // 2. Source snippets, from the last finding kept.
        if try hasSnippets && !fits(plan) {
            var probe = plan
            probe.cuts.append("source snippets of findings \(plan.full)–\(plan.full)")
            plan.snippets = try largest(0, plan.full) { var p = probe; p.snippets = $0; return p }
            plan.cuts.append("source snippets of findings \(plan.snippets + 1)–\(plan.full)")
        }
        // 3. Timelines, from the last finding kept.
        if try hasTimelines && !fits(plan) {
            var probe = plan
            probe.cuts.append("timelines of findings \(plan.full)–\(plan.full)")
            plan.timelines = try largest(0, plan.full) { var p = probe; p.timelines = $0; return p }
            plan.cuts.append("timelines of findings \(plan.timelines + 1)–\(plan.full)")
        }
        // 4. Stack depth.
        for depth in [8, 4, 2] where try !fits(plan) {
            plan.maxFrames = depth
            plan.cuts.removeAll { $0.hasPrefix("stacks cut to") }
            plan.cuts.append("stacks cut to their innermost \(depth) frames (and their first user frame)")
        }
        // 5. Ruled-out list.
        if try !fits(plan), !built.base.ruledOut.isEmpty {
            plan.ruledOut = false
            plan.cuts.append("the ruled-out list (\(built.base.ruledOut.count) entries)")
        }
        // 6. One-line findings, from the last.
        if try !fits(plan), n > plan.full {
            let total = n - plan.full
            var probe = plan
            probe.cuts.append("\(total) one-line findings (of \(total))")   // the longest note
            plan.oneLiners = try largest(0, total) { var p = probe; p.oneLiners = $0; return p }
            plan.cuts.append("\(total - plan.oneLiners) one-line findings (of \(total))")
        }
        // Final text with its own estimate (re-rendered until the number is stable).
        var doc = apply(plan, built)
        doc.estimatedTokens = try measure(plan)
        var text = try render(doc)
        for _ in 0..<3 {
            let e = estimateTokens(text)
            if e == doc.estimatedTokens { break }
            doc.estimatedTokens = e
            text = try render(doc)
        }
        return (text, plan)
    }

    // MARK: Markdown

    static func renderMarkdown(result: AnalysisResult, options: ExportOptions) throws -> String {
        let built = build(result: result, options: options)
        let budget = max(64, options.llmBudgetTokens)
        var (text, _) = try fit(built, budget: budget, render: markdown)
        if estimateTokens(text) > budget {
            let note = "\n\n[… truncated to fit the budget of \(budget) tokens (characters / 4)]\n"
            let limit = budget * 4 - note.utf8.count
            var cut = ""
            for ch in text {
                if cut.utf8.count + String(ch).utf8.count > limit { break }
                cut.append(ch)
            }
            text = cut + note
        }
        return text
    }

    static func markdown(_ doc: Doc) -> String {
        var out = ""
        let actual = doc.actualFindings, total = doc.totalFindings
        out += "# Tangle analysis: \(total == 0 ? "no findings" : "\(total) finding\(total == 1 ? "" : "s") (\(actual) actual, \(total - actual) predicted)")\n\n"
        let shown = doc.findings.count + doc.moreFindings.count
        if shown < total { out += "(\(doc.findings.count) in full, \(doc.moreFindings.count) in one line, \(total - shown) left out for the budget.)\n\n" }
        out += "Summary for a model to debug from, by tangle \(doc.version). Budget \(doc.budgetTokens) tokens, this summary ≈ \(doc.estimatedTokens) (estimated as characters / 4).\n\n"

        out += "## What ran\n\n"
        out += "\(doc.run.processes.count) process\(doc.run.processes.count == 1 ? "" : "es"), \(doc.run.threads) threads, \(doc.run.events) events, \(doc.run.files) trace files.\n\n"
        if !doc.run.processes.isEmpty {
            out += "Process tree:\n"
            for p in doc.run.processes {
                out += String(repeating: "  ", count: p.depth) + "- \(p.name) (pid \(p.pid), \(p.executable)): \(p.end); \(p.threads) threads, \(p.events) events\n"
            }
            out += "\n"
        }
        if !doc.run.primitives.isEmpty {
            out += "Primitives: " + doc.run.primitives.joined(separator: ", ") + "\n\n"
        }

        if !doc.findings.isEmpty {
            out += "## Findings (actual before predicted, then by severity)\n\n"
        }
        for f in doc.findings {
            out += "### \(f.rank). \(f.title)\n\n"
            out += "- kind: \(f.kind); severity: \(f.severity); confidence: \(f.confidence)\n"
            out += "- fingerprint: `\(f.fingerprint)`\n\n"
            out += "**What happened.** \(f.explanation)\n\n"
            if !f.fix.isEmpty { out += "**Suggested fix.** \(f.fix)\n\n" }
            if let why = f.why, !why.isEmpty { out += "**Why it was kept.** \(why)\n\n" }
            if !f.participants.isEmpty {
                out += "**Participants**\n\n"
                for p in f.participants { out += "- \(p)\n" }
                out += "\n"
            }
            if let tl = f.timeline, !tl.isEmpty {
                out += "**Timeline** (ms since the trace started; `*` marks the evidence)\n\n```\n"
                for e in tl { out += "\(e.evidence ? "*" : " ") \(e.ms.exportPadLeft(10))  \(e.thread)  \(e.event)\n" }
                out += "```\n\n"
            }
            for s in f.stacks {
                out += "**Stack: \(s.label)**\(s.warning.map { " (\($0))" } ?? "")\n\n```\n"
                for (i, fr) in s.frames.enumerated() { out += "#\(i) \(fr.text)\n" }
                if s.framesOmitted > 0 { out += "… \(s.framesOmitted) outer frames omitted\n" }
                out += "```\n\n"
                for fr in s.frames {
                    guard let src = fr.source else { continue }
                    out += "Source of `\(fr.function ?? "?")` at `\(ExportSupport.baseName(src.path)):\(fr.line ?? 0)`:\n\n```swift\n"
                    for (i, l) in src.lines.enumerated() {
                        let n = src.start + i
                        out += "\(n == fr.line ? ">" : " ")\(String(n).exportPadLeft(5)) | \(l)\n"
                    }
                    out += "```\n\n"
                }
            }
        }
        if !doc.moreFindings.isEmpty {
            out += "## Other findings (one line each)\n\n"
            for f in doc.moreFindings { out += "- \(f.rank). [\(f.severity), \(f.confidence), \(f.kind)] \(f.title) (`\(f.fingerprint)`)\n" }
            out += "\n"
        }
        func bulletSection(_ heading: String, _ items: [String]) {
            guard !items.isEmpty else { return }
            out += "## \(heading)\n\n"
            for item in items { out += "- \(item)\n" }
            out += "\n"
        }
        bulletSection("Ruled out", doc.ruledOut)
        bulletSection("Trace problems (the analysis ran as far as the input went)", doc.problems)
        bulletSection("Cut for budget", doc.cut)
        out += "## Question\n\n\(doc.question)\n"
        return out
    }

    // MARK: JSON

    static func renderJSON(result: AnalysisResult, options: ExportOptions) throws -> String {
        let built = build(result: result, options: options)
        let budget = max(64, options.llmBudgetTokens)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        func render(_ doc: Doc) throws -> String {
            guard let s = String(data: try encoder.encode(doc), encoding: .utf8) else { throw ExportError.encoding("LLM JSON") }
            return s + "\n"
        }
        var (text, plan) = try fit(built, budget: budget, render: render)
        // JSON cannot be truncated mid-way: drop whole findings from the last, then the process list.
        if estimateTokens(text) > budget {
            var doc = apply(plan, built)
            let had = doc.findings.count
            while estimateTokens(text) > budget && !doc.findings.isEmpty {
                doc.findings.removeLast()
                doc.cut = plan.cuts + ["\(had - doc.findings.count) findings dropped entirely"]
                text = try render(doc)
            }
            if estimateTokens(text) > budget {
                doc.cut.append("the process list (\(doc.run.processes.count) processes)")
                doc.run.processes = []
                text = try render(doc)
            }
            doc.estimatedTokens = estimateTokens(text)
            text = try render(doc)
            plan.cuts = doc.cut
        }
        return text
    }
}

fileprivate extension String {
    func exportPadLeft(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
