import Foundation

/// Graphviz (`--format dot`): one digraph with two clusters, the wait-for graph at the end of the
/// trace and the lock-order graph. Edges (and their nodes) that are part of a reported deadlock
/// cycle, knot or inversion are drawn red and bold. Render with `dot -Tsvg tangle.dot -o tangle.svg`.
enum DotExporter {
    static func render(result: AnalysisResult, options: ExportOptions) -> String {
        var out = "// tangle \(options.toolVersion): wait-for graph and lock-order graph; red bold = reported cycle\n"
        out += "digraph tangle {\n"
        out += "  graph [rankdir=LR, fontname=\"Helvetica\", labelloc=t, label=\(q("tangle: \(result.report.findings.count) finding(s)"))];\n"
        out += "  node [shape=box, style=rounded, fontname=\"Helvetica\", fontsize=10];\n"
        out += "  edge [fontname=\"Helvetica\", fontsize=9];\n"
        let names = Dictionary(result.report.processes.map { ($0.pid, $0.name) }, uniquingKeysWith: { a, _ in a })
        out += cluster("waitfor", "wait-for graph (end of trace)", result.context.waitFor, processes: names)
        out += cluster("lockorder", "lock-order graph", result.context.lockOrder)
        out += "}\n"
        return out
    }

    /// `processes` (pid → name): draw the nodes of each process (`t:PID:TID`, `p:PID`) inside a
    /// cluster of its own, one node per thread; nil: no grouping (the lock-order graph).
    static func cluster(_ id: String, _ title: String, _ edges: [GraphEdge], processes: [Int32: String]? = nil) -> String {
        var out = "  subgraph cluster_\(id) {\n    label=\(q(title));\n    color=gray60;\n"
        if edges.isEmpty {
            out += "    \(id)_empty [label=\"(no edges)\", shape=plaintext];\n"
        }
        var nodes: [String: (label: String, hot: Bool)] = [:]
        for e in edges {
            nodes[e.from] = (e.fromLabel, (nodes[e.from]?.hot ?? false) || e.highlighted)
            nodes[e.to] = (e.toLabel, (nodes[e.to]?.hot ?? false) || e.highlighted)
        }
        var byProcess: [Int32?: [String]] = [:]
        for (node, info) in nodes.sorted(by: { $0.key < $1.key }) {
            let style = info.hot ? ", color=red, fontcolor=red, penwidth=2" : ""
            let pid = processes == nil ? nil : pidOf(node)
            byProcess[pid, default: []].append("\(q("\(id):\(node)")) [label=\(q(info.label))\(style)];")
        }
        for (pid, lines) in byProcess.sorted(by: { ($0.key ?? .min) < ($1.key ?? .min) }) {
            guard let pid else {
                for l in lines { out += "    \(l)\n" }
                continue
            }
            let name = processes?[pid].map { "\($0) (pid \(pid))" } ?? "pid \(pid)"
            out += "    subgraph cluster_\(id)_p\(UInt32(bitPattern: pid)) {\n      label=\(q(name));\n      style=dashed;\n      color=gray70;\n"
            for l in lines { out += "      \(l)\n" }
            out += "    }\n"
        }
        for e in edges {
            let style = e.highlighted ? ", color=red, fontcolor=red, penwidth=2.5, style=bold" : ""
            out += "    \(q("\(id):\(e.from)")) -> \(q("\(id):\(e.to)")) [label=\(q(e.label))\(style)];\n"
        }
        out += "  }\n"
        return out
    }

    /// The pid of a wait-for node id (`t:PID:TID` or `p:PID`).
    static func pidOf(_ node: String) -> Int32? {
        let parts = node.split(separator: ":")
        guard parts.count >= 2, parts[0] == "t" || parts[0] == "p" else { return nil }
        return Int32(parts[1])
    }

    /// A DOT quoted string.
    static func q(_ s: String) -> String {
        var out = "\""
        for ch in s {
            switch ch {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": break
            default: out.append(ch)
            }
        }
        return out + "\""
    }
}
