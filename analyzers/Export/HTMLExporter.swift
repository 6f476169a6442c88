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
        body += ranked.isEmpty ? "no findings" : "\(ranked.count) finding\(ranked.count == 1 ? "" : "s") (\(actual) actual, \(ranked.count - actual) predicted\(ranked.contains { $0.confidence == .confirmed } ? ", of which \(ranked.filter { $0.confidence == .confirmed }.count) confirmed" : ""))"
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
        body += "<figure><figcaption>Wait-for graph (end of trace)</figcaption>\(graphSVG(result.context.waitFor, id: "wf", processes: processNames(result)))</figure>"
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

    // MARK: graphs

    /// Nodes on a circle, edges as arrows (curved when both directions exist), red for highlighted.
    /// With `processes` (pid → name, the wait-for graph) each process is a cluster: a dashed box
    /// named after it around its threads' nodes, stacked; the clusters sit on the circle.
    static func graphSVG(_ edges: [GraphEdge], id: String, processes: [Int32: String]? = nil) -> String {
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
        // Groups in the order their first node appears: a process's nodes, or a node on its own.
        var groups: [(pid: Int32?, nodes: [String])] = []
        var groupOf: [Int32: Int] = [:]
        for n in nodes {
            if processes != nil, let pid = DotExporter.pidOf(n) {
                if let g = groupOf[pid] { groups[g].nodes.append(n); continue }
                groupOf[pid] = groups.count
                groups.append((pid, [n]))
            } else {
                groups.append((nil, [n]))
            }
        }
        let nodeW = min(230.0, max(130.0, Double(labels.values.map(\.count).max() ?? 0) * 6.5 + 16)), nodeH = 30.0
        let clustered = processes != nil
        let gap = 10.0, head = clustered ? 18.0 : 0, foot = clustered ? 8.0 : 0
        func groupH(_ k: Int) -> Double { Double(k) * nodeH + Double(k - 1) * gap + head + foot }
        let boxW = nodeW + (clustered ? 20 : 0), tallest = groups.map { groupH($0.nodes.count) }.max() ?? nodeH
        let unit = max(boxW, tallest)
        let n = groups.count
        // Adjacent groups on the circle at least a box (plus room) apart.
        let r: Double = n == 1 ? 0 : n == 2 ? boxW / 2 + 80 : max(150, (unit + 30) / (2 * sin(Double.pi / Double(n))))
        let size = 2 * r + boxW + 30, height = n <= 2 ? max(200.0, tallest + 110) : 2 * r + tallest + 80
        let cx = size / 2, cy = height / 2
        var pos: [String: (Double, Double)] = [:]
        var boxes: [(pid: Int32, x: Double, y: Double, h: Double)] = []
        for (i, g) in groups.enumerated() {
            // Two groups side by side, more on a circle from the top.
            let a = (n == 2 ? Double.pi : -Double.pi / 2) + 2 * Double.pi * Double(i) / Double(n)
            let gx = cx + r * cos(a), gy = cy + r * sin(a), gh = groupH(g.nodes.count)
            for (k, node) in g.nodes.enumerated() {
                pos[node] = (gx, gy - gh / 2 + head + nodeH / 2 + Double(k) * (nodeH + gap))
            }
            if clustered, let pid = g.pid { boxes.append((pid, gx - boxW / 2, gy - gh / 2, gh)) }
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
        func node(_ n: String) -> String {
            let (x0, y0) = pos[n]!
            let cls = hot.contains(n) ? "node hot" : "node"
            var s = "<g class=\"\(cls)\" data-node=\"\(h(n))\"><rect x=\"\(f(x0 - nodeW / 2))\" y=\"\(f(y0 - nodeH / 2))\" width=\"\(f(nodeW))\" height=\"\(f(nodeH))\" rx=\"6\"/>"
            s += "<text x=\"\(f(x0))\" y=\"\(f(y0 + 4))\" text-anchor=\"middle\">\(h(String(labels[n]!.prefix(34))))</text><title>\(h(labels[n]!))</title></g>\n"
            return s
        }
        for g in groups where g.pid == nil || !clustered { for n in g.nodes { svg += node(n) } }
        for b in boxes {
            let name = processes?[b.pid].map { "\($0) (pid \(b.pid))" } ?? "pid \(b.pid)"
            svg += "<g class=\"cluster\" data-process=\"\(b.pid)\"><rect x=\"\(f(b.x))\" y=\"\(f(b.y))\" width=\"\(f(boxW))\" height=\"\(f(b.h))\" rx=\"8\"/>"
            svg += "<text x=\"\(f(b.x + 6))\" y=\"\(f(b.y + 12))\">\(h(String(name.prefix(40))))</text>\n"
            for n in groups[groupOf[b.pid]!].nodes { svg += node(n) }
            svg += "</g>\n"
        }
        svg += "</svg>"
        return svg
    }

    static func h(_ s: String) -> String { ExportSupport.xmlEscape(s) }

    static func processNames(_ result: AnalysisResult) -> [Int32: String] {
        Dictionary(result.report.processes.map { ($0.pid, $0.name) }, uniquingKeysWith: { a, _ in a })
    }

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
    .hanglabel{fill:#fff;font-weight:700;font-size:10px}.hanglabel.out{fill:#b71c1c}.tlview button{font-size:12px}
    .cluster>rect{fill:none;stroke:#90a4ae;stroke-dasharray:5 3}.cluster>text{fill:#546e7a;font-size:10px}
    .legend .sw{display:inline-block;width:14px;height:10px;margin:0 4px 0 12px;vertical-align:middle}
    .graphs{display:flex;flex-wrap:wrap;gap:16px}figure{margin:0;background:#fff;border:1px solid #ddd;padding:6px}figcaption{font-weight:600}
    .node rect{fill:#e3f2fd;stroke:#1e5aa8}.node.hot rect{fill:#ffebee;stroke:#c00;stroke-width:2.5}.node text{fill:#111}
    .edge{fill:none;stroke:#555;stroke-width:1.3}.edge.hot{stroke:#c00;stroke-width:3}.elabel{fill:#444;font-size:10px}.elabel.hot{fill:#c00;font-weight:700}
    """

    static let js = """
    (function(){document.body.setAttribute('data-tangle-ready','1');var b=document.getElementById('toggle');if(!b)return;var open=false;
    b.addEventListener('click',function(){open=!open;document.querySelectorAll('details.stack').forEach(function(d){d.open=open;});
    b.textContent=open?'Collapse all stacks':'Expand all stacks';});})();
    (function(){var b=document.getElementById('tlwhole'),w=document.getElementById('tl-findings'),a=document.getElementById('tl-whole');
    if(!b||!w||!a)return;var c=document.getElementById('tlcaption'),t=c.textContent;
    b.addEventListener('click',function(){var whole=w.hidden;w.hidden=!whole;a.hidden=whole;
    c.textContent=whole?t:'Showing the whole trace.';b.textContent=whole?'Show the whole trace':"Show the findings' window";});})();
    """
}
