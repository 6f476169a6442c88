import Foundation
import TangleTraceFormat
import TangleTraceReader

/// The HTML page's timeline: one lane per thread (holds, waits, message arrows, finding markers).
/// It opens on the findings' window — from their first evidence to the end of the waits their
/// participants were in, so a wait that never returned runs to the trace's end (or `tangle run`'s
/// stop) and its length is written on it — and a button shows the whole trace. Times are seconds
/// since the trace's first event.
extension HTMLExporter {
    /// A time range of the trace (absolute clock values, `start` ≤ `end`).
    struct TimeWindow: Equatable {
        var start: UInt64
        var end: UInt64
    }

    /// The findings' window, or nil when there is no finding or it covers (nearly) the whole trace.
    static func findingsWindow(_ model: TimelineModel, _ findings: [Finding]) -> TimeWindow? {
        let times = findings.flatMap { $0.evidence.map(\.time) }
        guard var lo = times.min(), var hi = times.max(), model.end > model.start else { return nil }
        lo = max(lo, model.start)
        hi = min(max(hi, lo), model.end)
        // The participants' waits open in that range last as long as they last (to the end when
        // they never returned): their length is what the window is for.
        var threads = Set(findings.flatMap { $0.participants.map { ThreadKey(pid: $0.pid, tid: $0.tid) } })
        threads.formUnion(findings.flatMap { $0.evidence.map { ThreadKey(pid: $0.pid, tid: $0.tid) } })
        let evidenceEnd = hi
        for s in model.slices where s.category == .wait && threads.contains(s.thread) && s.start <= evidenceEnd && s.end >= lo {
            hi = max(hi, min(s.end, model.end))
        }
        // Some room on both sides: 5% of the window, at least 2% of the trace (one event's finding).
        let margin = max((hi - lo) / 20, (model.end - model.start) / 50, 100_000)
        let w = TimeWindow(start: lo - min(margin, lo - model.start), end: min(model.end, hi + margin))
        let whole = Double(model.end - model.start)
        return Double(w.end - w.start) >= whole * 0.9 ? nil : w
    }

    static func timelineSVG(_ result: AnalysisResult) -> String {
        let model = TimelineModel(result: result)
        guard !model.threads.isEmpty else {
            return "<p class=\"muted\">No events were kept for a timeline.</p>\n"
        }
        let findings = result.report.findings
        // Lanes: the findings' participants always, then the others, in thread order.
        let wanted = Set(findings.flatMap { $0.participants.map { ThreadKey(pid: $0.pid, tid: $0.tid) } })
        var lanes = model.threads.filter { wanted.contains($0.key) }.prefix(maxLanes).map { $0 }
        for t in model.threads where lanes.count < maxLanes && !wanted.contains(t.key) { lanes.append(t) }
        lanes.sort { $0.key < $1.key }

        let whole = TimeWindow(start: model.start, end: model.end)
        var out = ""
        var legend = "<p class=\"legend\"><span class=\"sw hold\"></span>lock held <span class=\"sw wait\"></span>wait <span class=\"sw waitbad\"></span>wait that never returned <span class=\"sw op\"></span>put/get <span class=\"sw flowsw\"></span>message <span class=\"sw marker\"></span>finding</p>\n"
        if let w = findingsWindow(model, findings) {
            out += "<p class=\"tlview\"><span id=\"tlcaption\">Showing the findings' window, \(seconds(w.start - model.start, span: w.end - w.start)) – \(seconds(w.end - model.start, span: w.end - w.start))"
            out += " of a \(seconds(model.end - model.start)) trace.</span> <button type=\"button\" id=\"tlwhole\">Show the whole trace</button></p>\n"
            let (svg, left) = timelinePlot(model, lanes: lanes, window: w, wanted: wanted, id: "tl-findings")
            out += "<div class=\"scroll\" id=\"tl-findings\">" + svg + "</div>"
            let (all, leftAll) = timelinePlot(model, lanes: lanes, window: whole, wanted: wanted, id: "tl-whole")
            out += "<div class=\"scroll\" id=\"tl-whole\" hidden>" + all + "</div>"
            if left > 0 { legend += "<p class=\"muted\">\(left) more slices in the findings' window not drawn (use --format perfetto for the whole timeline).</p>\n" }
            if leftAll > 0 { legend += "<p class=\"muted\">\(leftAll) more slices of the whole trace not drawn.</p>\n" }
        } else {
            let (svg, left) = timelinePlot(model, lanes: lanes, window: whole, wanted: wanted, id: "tl-whole")
            out += "<div class=\"scroll\" id=\"tl-whole\">" + svg + "</div>"
            if left > 0 { legend += "<p class=\"muted\">\(left) more slices not drawn (use --format perfetto for the whole timeline).</p>\n" }
        }
        if let note = model.context.eventsNote { legend += "<p class=\"muted\">\(h(note)).</p>\n" }
        if model.threads.count > lanes.count { legend += "<p class=\"muted\">\(model.threads.count - lanes.count) more threads not drawn.</p>\n" }
        return out + legend
    }

    /// One SVG of the timeline over `window`; returns it and how many slices in the window were
    /// left out (at most `maxSlices` are drawn: waits that never returned first, then the
    /// participants', then the others).
    static func timelinePlot(_ model: TimelineModel, lanes: [TimelineModel.ThreadInfo], window: TimeWindow,
                             wanted: Set<ThreadKey>, id: String) -> (String, Int) {
        let laneIndex = Dictionary(uniqueKeysWithValues: lanes.enumerated().map { ($0.element.key, $0.offset) })
        let labelW = 230.0, plotW = 900.0, laneH = 24.0, top = 24.0
        let width = labelW + plotW + 20, height = top + Double(lanes.count) * laneH + 10
        // 8% of room after the trace's end: waits that never returned run on to the right edge.
        let toEnd = window.end >= model.end
        let span = max(1, Double(window.end - window.start)) * (toEnd ? 1.08 : 1)
        func x(_ t: UInt64) -> Double {
            let d = t >= window.start ? Double(t - window.start) : -Double(window.start - t)
            return min(max(labelW + d / span * plotW, labelW), labelW + plotW)
        }
        func y(_ k: ThreadKey) -> Double? { laneIndex[k].map { top + Double($0) * laneH } }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        func inWindow(_ a: UInt64, _ b: UInt64) -> Bool { b >= window.start && a <= window.end }

        var svg = "<svg class=\"timeline\" data-window-start=\"\(seconds(window.start - model.start, unit: false))\" data-window-end=\"\(seconds(window.end - model.start, unit: false))\""
        svg += " xmlns=\"http://www.w3.org/2000/svg\" width=\"100%\" viewBox=\"0 0 \(f(width)) \(f(height))\" style=\"min-width:\(f(width * 0.75))px\">\n"
        svg += "<defs><marker id=\"\(id)-arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"6\" markerHeight=\"6\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#3465a4\"/></marker></defs>\n"
        for i in 0...4 {
            // Checked: a trace's times can sit anywhere in UInt64 (a Double past it would trap).
            let d = Double(i) / 4 * span
            let o: UInt64 = d < 18_446_744_073_709_549_568.0 ? UInt64(d) : .max
            let t = window.start > UInt64.max - o ? UInt64.max : window.start + o
            let xx = labelW + Double(i) / 4 * plotW
            svg += "<line x1=\"\(f(xx))\" y1=\"\(f(top - 6))\" x2=\"\(f(xx))\" y2=\"\(f(height - 6))\" class=\"grid\"/>"
            svg += "<text x=\"\(f(xx))\" y=\"14\" class=\"axis\" text-anchor=\"\(i == 4 ? "end" : "middle")\">\(seconds(t &- model.start, span: UInt64(min(span, 1.8e19))))</text>\n"
        }
        for (i, lane) in lanes.enumerated() {
            let yy = top + Double(i) * laneH
            svg += "<rect x=\"0\" y=\"\(f(yy))\" width=\"\(f(width))\" height=\"\(f(laneH))\" class=\"\(i % 2 == 0 ? "lane0" : "lane1")\"/>"
            svg += "<text x=\"4\" y=\"\(f(yy + 16))\" class=\"lanelabel\">\(h(String(lane.label.prefix(34))))</text>"
            if inWindow(lane.first, lane.end) {
                svg += "<line x1=\"\(f(x(lane.first)))\" y1=\"\(f(yy + laneH / 2))\" x2=\"\(f(x(lane.end)))\" y2=\"\(f(yy + laneH / 2))\" class=\"life\"/>"
            }
            svg += "\n"
        }
        // The slices in the window, the evidence first when there are too many.
        func priority(_ s: TimelineModel.Slice) -> Int {
            s.unfinished && s.category == .wait ? 0 : wanted.contains(s.thread) ? 1 : 2
        }
        let visible = model.slices.enumerated().filter { laneIndex[$0.element.thread] != nil && inWindow($0.element.start, $0.element.end) }
        let chosen = visible.count <= maxSlices ? visible
            : Array(visible.sorted { (priority($0.element), $0.offset) < (priority($1.element), $1.offset) }.prefix(maxSlices))
        // Holds under waits under put/get marks.
        func layer(_ c: TimelineModel.Category) -> Int { c == .hold ? 0 : c == .wait ? 1 : 2 }
        let drawn = chosen.sorted { (layer($0.element.category), $0.offset) < (layer($1.element.category), $1.offset) }.map(\.element)
        var labels = ""
        for s in drawn {
            guard let yy = y(s.thread) else { continue }
            let x0 = x(s.start), w = max(1.5, (s.unfinished && s.end >= model.end ? labelW + plotW : x(s.end)) - x0)
            let cls = s.category == .wait ? (s.unfinished ? "waitbad" : "wait") : s.category.rawValue
            let (dy, hh) = s.category == .hold ? (4.0, laneH - 8) : s.category == .wait ? (7.0, laneH - 14) : (2.0, laneH - 4)
            let length = seconds(s.end > s.start ? s.end - s.start : 0)
            svg += "<rect x=\"\(f(x0))\" y=\"\(f(yy + dy))\" width=\"\(f(w))\" height=\"\(f(hh))\" class=\"\(cls)\"><title>\(h(model.name(s))) — \(length)</title></rect>\n"
            // The hang's length, written on it (drawn after every slice, so nothing covers it) — on
            // the findings' participants, or on any thread when no event was left out (a wait
            // whose end was left out is not known to have never returned).
            if s.unfinished && s.category == .wait && (wanted.contains(s.thread) || model.context.eventsNote == nil) {
                let text = "never returned · \(length)" + (s.end >= model.end ? " until the trace ends" : "")
                let inside = w >= Double(text.count) * 6 + 8
                labels += "<text x=\"\(f(inside ? x0 + 4 : x0 + w + 4))\" y=\"\(f(yy + 16))\" class=\"hanglabel\(inside ? "" : " out")\" data-length=\"\(length)\">\(h(text))</text>\n"
            }
        }
        svg += labels
        for fl in model.flows.prefix(maxFlows) where inWindow(min(fl.fromTime, fl.toTime), max(fl.fromTime, fl.toTime)) {
            guard let y0 = y(fl.from), let y1 = y(fl.to) else { continue }
            svg += "<line x1=\"\(f(x(fl.fromTime)))\" y1=\"\(f(y0 + laneH / 2))\" x2=\"\(f(x(fl.toTime)))\" y2=\"\(f(y1 + laneH / 2))\" class=\"flow\" marker-end=\"url(#\(id)-arrow)\"><title>\(h(model.name(fl)))</title></line>\n"
        }
        for m in model.markers where inWindow(m.time, m.time) {
            let xx = x(m.time)
            let yy = m.thread.flatMap { y($0) } ?? top
            svg += "<path d=\"M\(f(xx - 6)),\(f(yy)) L\(f(xx + 6)),\(f(yy)) L\(f(xx)),\(f(yy + 10)) z\" class=\"marker\"><title>\(h(m.name))</title></path>\n"
        }
        svg += "</svg>\n"
        return (svg, visible.count - chosen.count)
    }

    /// Seconds: "3.25 s", "0.012 s", "0.000250 s" — digits enough for `ns` itself, or for a
    /// quarter of `span` (axis ticks: 10.0015 s apart from 10.0020 s in a 2 ms window).
    static func seconds(_ ns: UInt64, span: UInt64? = nil, unit: Bool = true) -> String {
        let s = Double(ns) / 1e9
        let scale = Double(span.map { max(1, $0 / 4) } ?? max(ns, 1)) / 1e9
        let digits = min(6, max(2, Int((-log10(scale)).rounded(.up)) + 1))
        let text = String(format: "%.\(digits)f", s)
        return unit ? text + " s" : text
    }
}
