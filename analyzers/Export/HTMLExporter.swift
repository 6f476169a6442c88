import Foundation

/// One self-contained HTML page (`--format html`): inline CSS and JS, inline SVG pictures drawn
/// here (no Graphviz, no network), readable from a CI artifact. Sections: summary and process
/// tree, findings (explanation, fix, participants, stacks with source lines when readable), a
/// timeline (one lane per thread: holds, waits, message arrows, finding markers), and the wait-for
/// and lock-order graphs with the reported cycle in red.
enum HTMLExporter {
    static let maxLanes = 64
    static let maxSlices = 6000
    static let maxFlows = 3000

    static func render(result: AnalysisResult, options: ExportOptions) -> String {
        let report = result.report
        let ranked = ExportSupport.ranked(report.findings).map(\.finding)
        let lookup = SourceLookup(roots: result.context.sourceRoots + options.sourceRoots)
        var body = ""
        let actual = ranked.filter { $0.confidence == .actual }.count
        body += "<header><h1>\(h(options.title))</h1><p class=\"sub\">tangle \(h(options.toolVersion)) · "
        body += ranked.isEmpty ? "no findings" : "\(ranked.count) finding\(ranked.count == 1 ? "" : "s") (\(actual) actual, \(ranked.count - actual) predicted)"
        body += " · \(report.stats.processes) processes · \(report.stats.threads) threads · \(report.stats.events) events</p></header>\n"

        body += "<nav><a href=\"#findings\">Findings</a> <a href=\"#timeline\">Timeline</a> <a href=\"#graphs\">Graphs</a> <a href=\"#processes\">Processes</a>"
        body += " <button type=\"button\" id=\"toggle\">Expand all stacks</button></nav>\n"

        body += "<section id=\"findings\"><h2>Findings</h2>\n"
        if ranked.isEmpty { body += "<p class=\"ok\">No concurrency bug found in this trace.</p>\n" }
        for (i, f) in ranked.enumerated() {
            body += findingCard(f, index: i + 1, lookup: lookup, options: options)
        }
        body += "</section>\n"

        body += "<section id=\"timeline\"><h2>Timeline</h2>\n" + timelineSVG(result) + "</section>\n"
        body += "<section id=\"graphs\"><h2>Graphs</h2>\n<div class=\"graphs\">"
        body += "<figure><figcaption>Wait-for graph (end of trace)</figcaption>\(graphSVG(result.context.waitFor, id: "wf"))</figure>"
        body += "<figure><figcaption>Lock-order graph</figcaption>\(graphSVG(result.context.lockOrder, id: "lo"))</figure>"
        body += "</div></section>\n"

        body += "<section id=\"processes\"><h2>Processes</h2>\n"
        if report.processes.isEmpty {
            body += "<p>No process summary.</p>\n"
        } else {
            body += "<table><tr><th>pid</th><th>ppid</th><th>name</th><th>executable</th><th>end</th><th>threads</th><th>events</th></tr>\n"
            for p in report.processes.sorted(by: { $0.pid < $1.pid }) {
                body += "<tr><td>\(p.pid)</td><td>\(p.ppid)</td><td>\(h(p.name))</td><td>\(h(ExportSupport.baseName(p.executable)))</td><td>\(h(p.end))</td><td>\(p.threads)</td><td>\(p.events)</td></tr>\n"
            }
            body += "</table>\n"
        }
        if !report.ruledOut.isEmpty {
            body += "<h3>Ruled out</h3><ul>\n"
            for r in report.ruledOut { body += "<li><b>\(h(r.kind.rawValue))</b>: \(h(r.detail)) <span class=\"muted\">(\(h(r.reason)))</span></li>\n" }
            body += "</ul>\n"
        }
        if !report.problems.isEmpty {
            body += "<h3>Trace problems</h3><ul>\n"
            for p in report.problems { body += "<li><b>\(h(p.kind))</b>\(p.file.map { " in <code>\(h($0))</code>" } ?? ""): \(h(p.detail))</li>\n" }
            body += "</ul>\n"
        }
        body += "</section>\n"

        return """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(h(options.title))</title>
        <style>\(css)</style>
        </head><body>
        \(body)<script>\(js)</script>
        </body></html>

        """
    }

    static func findingCard(_ f: Finding, index: Int, lookup: SourceLookup, options: ExportOptions) -> String {
        var s = "<article class=\"finding \(f.severity.rawValue)\" id=\"finding-\(index)\">\n"
        s += "<h3><span class=\"badge \(f.severity.rawValue)\">\(f.severity.rawValue)</span> <span class=\"badge conf\">\(f.confidence.rawValue)</span> <span class=\"kind\">\(h(f.kind.rawValue))</span> \(index). \(h(f.title))</h3>\n"
        s += "<p>\(h(f.explanation))</p>\n"
        if !f.fix.isEmpty { s += "<p class=\"fix\"><b>Fix:</b> \(h(f.fix))</p>\n" }
        if let why = f.why, !why.isEmpty { s += "<p class=\"why\"><b>Why it was kept:</b> \(h(why))</p>\n" }
        if !f.participants.isEmpty {
            s += "<table class=\"parts\"><tr><th>process / thread</th><th>pid/tid</th><th>role</th><th>detail</th></tr>\n"
            for p in f.participants {
                s += "<tr><td>\(h(p.process))\(p.thread.map { " / " + h($0) } ?? "")</td><td>\(p.pid)/\(p.tid)</td><td>\(h(p.role))</td><td>\(h(p.detail))</td></tr>\n"
            }
            s += "</table>\n"
        }
        for (i, st) in f.stacks.enumerated() {
            s += "<details class=\"stack\"\(i == 0 ? " open" : "")><summary>\(h(st.label))\(st.warning.map { " <span class=\"muted\">(\(h($0)))</span>" } ?? "")</summary><ol start=\"0\">\n"
            var withSource = 0
            for fr in st.frames {
                let sys = ExportSupport.isSystemFrame(fr)
                s += "<li class=\"\(sys ? "sys" : "user")\"><code>\(h(ExportSupport.describe(fr)))</code>"
                if !sys, withSource < 2, let sn = lookup.snippet(fr, context: options.contextLines) {
                    withSource += 1
                    s += "<pre class=\"src\">"
                    for (j, line) in sn.lines.enumerated() {
                        let n = sn.start + j
                        s += "<span class=\"\(n == fr.line ? "hl" : "")\">\(String(n).padding(toLength: 5, withPad: " ", startingAt: 0)) \(h(line))</span>\n"
                    }
                    s += "</pre>"
                }
                s += "</li>\n"
            }
            s += "</ol></details>\n"
        }
        s += "<p class=\"fp\">fingerprint <code>\(h(f.fingerprint))</code></p>\n</article>\n"
        return s
    }

    // MARK: timeline

    static func timelineSVG(_ result: AnalysisResult) -> String {
        let model = TimelineModel(result: result)
        guard !model.threads.isEmpty else {
            return "<p class=\"muted\">No events were kept for a timeline.</p>\n"
        }
        let lanes = Array(model.threads.prefix(maxLanes))
        let laneIndex = Dictionary(uniqueKeysWithValues: lanes.enumerated().map { ($0.element.key, $0.offset) })
        let labelW = 230.0, plotW = 900.0, laneH = 24.0, top = 24.0
        let width = labelW + plotW + 20, height = top + Double(lanes.count) * laneH + 10
        // 8% of room after the last event: waits that never returned run on to the right edge.
        let span = Double(max(1, model.end - model.start)) * 1.08
        func x(_ t: UInt64) -> Double { labelW + Double(t &- model.start) / span * plotW }
        func y(_ k: ThreadKey) -> Double? { laneIndex[k].map { top + Double($0) * laneH } }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }

        var svg = "<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"100%\" viewBox=\"0 0 \(f(width)) \(f(height))\" style=\"min-width:\(f(width * 0.75))px\">\n"
        svg += "<defs><marker id=\"tlarrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"6\" markerHeight=\"6\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#3465a4\"/></marker></defs>\n"
        // Axis.
        for i in 0...4 {
            // Checked: a trace's times can sit anywhere in UInt64 (a Double past it would trap).
            let d = Double(i) / 4 * span
            let o: UInt64 = d < 18_446_744_073_709_549_568.0 ? UInt64(d) : .max
            let t = model.start > UInt64.max - o ? UInt64.max : model.start + o
            let xx = x(t)
            svg += "<line x1=\"\(f(xx))\" y1=\"\(f(top - 6))\" x2=\"\(f(xx))\" y2=\"\(f(height - 6))\" class=\"grid\"/>"
            svg += "<text x=\"\(f(xx))\" y=\"14\" class=\"axis\" text-anchor=\"middle\">\(ExportSupport.millis(t - model.start)) ms</text>\n"
        }
        for (i, lane) in lanes.enumerated() {
            let yy = top + Double(i) * laneH
            svg += "<rect x=\"0\" y=\"\(f(yy))\" width=\"\(f(width))\" height=\"\(f(laneH))\" class=\"\(i % 2 == 0 ? "lane0" : "lane1")\"/>"
            svg += "<text x=\"4\" y=\"\(f(yy + 16))\" class=\"lanelabel\">\(h(String(lane.label.prefix(34))))</text>"
            svg += "<line x1=\"\(f(x(lane.first)))\" y1=\"\(f(yy + laneH / 2))\" x2=\"\(f(x(lane.end)))\" y2=\"\(f(yy + laneH / 2))\" class=\"life\"/>\n"
        }
        // Holds under waits under put/get marks.
        func layer(_ c: TimelineModel.Category) -> Int { c == .hold ? 0 : c == .wait ? 1 : 2 }
        let drawn = model.slices.prefix(maxSlices).enumerated().sorted { (layer($0.element.category), $0.offset) < (layer($1.element.category), $1.offset) }.map(\.element)
        for s in drawn {
            guard let yy = y(s.thread) else { continue }
            let x0 = x(s.start), w = max(1.5, (s.unfinished && s.end >= model.end ? labelW + plotW : x(s.end)) - x0)
            let cls = s.category == .wait ? (s.unfinished ? "waitbad" : "wait") : s.category.rawValue
            let (dy, hh) = s.category == .hold ? (4.0, laneH - 8) : s.category == .wait ? (7.0, laneH - 14) : (2.0, laneH - 4)
            let dur = ExportSupport.millis(s.end > s.start ? s.end - s.start : 0)
            svg += "<rect x=\"\(f(x0))\" y=\"\(f(yy + dy))\" width=\"\(f(w))\" height=\"\(f(hh))\" class=\"\(cls)\"><title>\(h(model.name(s))) — \(dur) ms</title></rect>\n"
        }
        for fl in model.flows.prefix(maxFlows) {
            guard let y0 = y(fl.from), let y1 = y(fl.to) else { continue }
            svg += "<line x1=\"\(f(x(fl.fromTime)))\" y1=\"\(f(y0 + laneH / 2))\" x2=\"\(f(x(fl.toTime)))\" y2=\"\(f(y1 + laneH / 2))\" class=\"flow\" marker-end=\"url(#tlarrow)\"><title>\(h(model.name(fl)))</title></line>\n"
        }
        for m in model.markers {
            let xx = x(m.time)
            let yy = m.thread.flatMap { y($0) } ?? top
            svg += "<path d=\"M\(f(xx - 6)),\(f(yy)) L\(f(xx + 6)),\(f(yy)) L\(f(xx)),\(f(yy + 10)) z\" class=\"marker\"><title>\(h(m.name))</title></path>\n"
        }
        svg += "</svg>\n"
        var legend = "<p class=\"legend\"><span class=\"sw hold\"></span>lock held <span class=\"sw wait\"></span>wait <span class=\"sw waitbad\"></span>wait that never returned <span class=\"sw op\"></span>put/get <span class=\"sw flowsw\"></span>message <span class=\"sw marker\"></span>finding</p>\n"
        if let note = model.context.eventsNote { legend += "<p class=\"muted\">\(h(note)).</p>\n" }
        if model.threads.count > lanes.count { legend += "<p class=\"muted\">\(model.threads.count - lanes.count) more threads not drawn.</p>\n" }
        if model.slices.count > maxSlices { legend += "<p class=\"muted\">\(model.slices.count - maxSlices) more slices not drawn (use --format perfetto for the whole timeline).</p>\n" }
        return "<div class=\"scroll\">" + svg + "</div>" + legend
    }

    // MARK: graphs

    /// Nodes on a circle, edges as arrows (curved when both directions exist), red for highlighted.
    static func graphSVG(_ edges: [GraphEdge], id: String) -> String {
        guard !edges.isEmpty else { return "<p class=\"muted\">(no edges)</p>" }
        var nodes: [String] = []
        var labels: [String: String] = [:]
        var hot = Set<String>()
        for e in edges {
            for (n, l) in [(e.from, e.fromLabel), (e.to, e.toLabel)] where labels[n] == nil {
                nodes.append(n)
                labels[n] = l
            }
            if e.highlighted { hot.insert(e.from); hot.insert(e.to) }
        }
        let nodeW = min(230.0, max(130.0, Double(labels.values.map(\.count).max() ?? 0) * 6.5 + 16)), nodeH = 30.0
        let n = nodes.count
        // Adjacent nodes on the circle at least a node width (plus room) apart.
        let r: Double = n == 1 ? 0 : n == 2 ? nodeW / 2 + 80 : max(150, (nodeW + 30) / (2 * sin(Double.pi / Double(n))))
        let size = 2 * r + nodeW + 30, height = n <= 2 ? 200.0 : 2 * r + 110
        let cx = size / 2, cy = height / 2
        var pos: [String: (Double, Double)] = [:]
        for (i, n) in nodes.enumerated() {
            // Two nodes side by side, more on a circle from the top.
            let a = (nodes.count == 2 ? Double.pi : -Double.pi / 2) + 2 * Double.pi * Double(i) / Double(nodes.count)
            pos[n] = (cx + r * cos(a), cy + r * sin(a))
        }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        let pairs = Set(edges.map { "\($0.from)\u{0}\($0.to)" })
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(f(size))\" height=\"\(f(height))\" viewBox=\"0 0 \(f(size)) \(f(height))\">\n"
        svg += "<defs><marker id=\"\(id)a\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#555\"/></marker>"
        svg += "<marker id=\"\(id)h\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#c00\"/></marker></defs>\n"
        for e in edges {
            guard let p0 = pos[e.from], let p1 = pos[e.to] else { continue }
            let cls = e.highlighted ? "edge hot" : "edge"
            let marker = e.highlighted ? "\(id)h" : "\(id)a"
            if e.from == e.to {
                let (x0, y0) = p0
                svg += "<path data-from=\"\(h(e.from))\" data-to=\"\(h(e.to))\" d=\"M\(f(x0 - 20)),\(f(y0 - nodeH / 2)) C\(f(x0 - 40)),\(f(y0 - 70)) \(f(x0 + 40)),\(f(y0 - 70)) \(f(x0 + 20)),\(f(y0 - nodeH / 2))\" class=\"\(cls)\" marker-end=\"url(#\(marker))\"/>"
                svg += "<text x=\"\(f(x0))\" y=\"\(f(y0 - 62))\" class=\"elabel\(e.highlighted ? " hot" : "")\" text-anchor=\"middle\">\(h(e.label))</text>\n"
                continue
            }
            // Clip to the node boxes and bend when the reverse edge exists.
            let dx = p1.0 - p0.0, dy = p1.1 - p0.1, len = max(1, (dx * dx + dy * dy).squareRoot())
            let ux = dx / len, uy = dy / len
            func clip(_ p: (Double, Double), _ sign: Double) -> (Double, Double) {
                let tx = abs(ux) > 1e-9 ? (nodeW / 2) / abs(ux) : .infinity
                let ty = abs(uy) > 1e-9 ? (nodeH / 2) / abs(uy) : .infinity
                let t = min(tx, ty) + 3
                return (p.0 + sign * ux * t, p.1 + sign * uy * t)
            }
            let a = clip(p0, 1), b = clip(p1, -1)
            let bend = pairs.contains("\(e.to)\u{0}\(e.from)") ? 50.0 : 0
            let nx = -uy, ny = ux   // the normal the curve bends along
            let mx = (a.0 + b.0) / 2 + nx * bend, my = (a.1 + b.1) / 2 + ny * bend
            svg += "<path data-from=\"\(h(e.from))\" data-to=\"\(h(e.to))\" d=\"M\(f(a.0)),\(f(a.1)) Q\(f(mx)),\(f(my)) \(f(b.0)),\(f(b.1))\" class=\"\(cls)\" marker-end=\"url(#\(marker))\"><title>\(h(e.label))</title></path>"
            // The label sits at the curve's middle, on its outer side.
            let lx = (a.0 + b.0) / 4 + mx / 2 + nx * 6, ly = (a.1 + b.1) / 4 + my / 2 + ny * 6 + 4
            let anchor = bend == 0 ? "middle" : nx > 0.3 ? "start" : nx < -0.3 ? "end" : "middle"
            let ldy = bend != 0 && anchor == "middle" ? (ny > 0 ? 8.0 : -4.0) : (bend == 0 ? -7.0 : 0)
            svg += "<text x=\"\(f(lx))\" y=\"\(f(ly + ldy))\" class=\"elabel\(e.highlighted ? " hot" : "")\" text-anchor=\"\(anchor)\">\(h(String(e.label.prefix(40))))</text>\n"
        }
        for n in nodes {
            let (x0, y0) = pos[n]!
            let cls = hot.contains(n) ? "node hot" : "node"
            svg += "<g class=\"\(cls)\" data-node=\"\(h(n))\"><rect x=\"\(f(x0 - nodeW / 2))\" y=\"\(f(y0 - nodeH / 2))\" width=\"\(f(nodeW))\" height=\"\(f(nodeH))\" rx=\"6\"/>"
            svg += "<text x=\"\(f(x0))\" y=\"\(f(y0 + 4))\" text-anchor=\"middle\">\(h(String(labels[n]!.prefix(34))))</text><title>\(h(labels[n]!))</title></g>\n"
        }
        svg += "</svg>"
        return svg
    }

    static func h(_ s: String) -> String { ExportSupport.xmlEscape(s) }

    static let css = """
    body{font:14px/1.45 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;color:#222;background:#fafafa}
    header{background:#263238;color:#fff;padding:14px 24px}header h1{margin:0;font-size:22px}.sub{margin:4px 0 0;color:#cfd8dc}
    nav{padding:8px 24px;background:#eceff1;position:sticky;top:0;z-index:2}nav a{margin-right:14px;color:#1e5aa8}
    nav button{float:right;font-size:12px}
    section{padding:8px 24px}h2{border-bottom:1px solid #ccc;padding-bottom:4px}
    .finding{background:#fff;border:1px solid #ddd;border-left:6px solid #999;border-radius:4px;padding:8px 16px;margin:12px 0}
    .finding.error{border-left-color:#c62828}.finding.warning{border-left-color:#ef8f00}.finding.note{border-left-color:#1e88e5}
    .finding h3{margin:6px 0;font-size:16px}.kind{font-family:monospace;color:#555}
    .badge{display:inline-block;border-radius:3px;padding:0 6px;font-size:12px;color:#fff;background:#777;text-transform:uppercase}
    .badge.error{background:#c62828}.badge.warning{background:#ef8f00}.badge.note{background:#1e88e5}.badge.conf{background:#546e7a}
    .fix{background:#e8f5e9;padding:6px 10px;border-radius:3px}.why{background:#fff8e1;padding:6px 10px;border-radius:3px}
    table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f1f1f1}
    .stack summary{cursor:pointer;font-weight:600}.stack ol{margin:4px 0;font-size:13px}.stack li.sys{color:#888}
    pre.src{background:#263238;color:#eceff1;padding:6px 8px;margin:4px 0;overflow-x:auto;font-size:12px}pre.src .hl{background:#6d4c41;display:inline-block;width:100%}
    .fp{color:#777;font-size:12px}.muted{color:#888}.ok{color:#2e7d32;font-weight:600}
    .scroll{overflow-x:auto;background:#fff;border:1px solid #ddd}
    svg text{font:11px Helvetica,Arial,sans-serif}.axis{fill:#666}.grid{stroke:#e0e0e0}.lane0{fill:#fff}.lane1{fill:#f5f7f8}
    .lanelabel{fill:#333}.life{stroke:#b0bec5;stroke-width:1}
    rect.hold,.sw.hold{fill:#66bb6a;background:#66bb6a}rect.wait,.sw.wait{fill:#ffb74d;background:#ffb74d}
    rect.waitbad,.sw.waitbad{fill:#e53935;background:#e53935}rect.op,.sw.op{fill:#3f51b5;background:#3f51b5}
    line.flow{stroke:#3465a4;stroke-width:1;opacity:.7}.sw.flowsw{background:#3465a4;height:2px!important}
    path.marker,.sw.marker{fill:#b71c1c;background:#b71c1c}
    .legend .sw{display:inline-block;width:14px;height:10px;margin:0 4px 0 12px;vertical-align:middle}
    .graphs{display:flex;flex-wrap:wrap;gap:16px}figure{margin:0;background:#fff;border:1px solid #ddd;padding:6px}figcaption{font-weight:600}
    .node rect{fill:#e3f2fd;stroke:#1e5aa8}.node.hot rect{fill:#ffebee;stroke:#c00;stroke-width:2.5}.node text{fill:#111}
    .edge{fill:none;stroke:#555;stroke-width:1.3}.edge.hot{stroke:#c00;stroke-width:3}.elabel{fill:#444;font-size:10px}.elabel.hot{fill:#c00;font-weight:700}
    """

    static let js = """
    (function(){document.body.setAttribute('data-tangle-ready','1');var b=document.getElementById('toggle');if(!b)return;var open=false;
    b.addEventListener('click',function(){open=!open;document.querySelectorAll('details.stack').forEach(function(d){d.open=open;});
    b.textContent=open?'Collapse all stacks':'Expand all stacks';});})();
    """
}
