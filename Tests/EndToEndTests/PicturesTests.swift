import Foundation
import XCTest
import TangleTestSupport

/// The pictures of a real three-process deadlock (`tangle-examples lock-ring`: three tellers in a
/// ring, main joining them), run under `tangle run --timeout`: the DOT and HTML wait-for graphs
/// have one node per participant and a directed cycle through the tellers; the waits that never
/// returned last until the stop in the Perfetto timeline, from `tangle run` and from a later
/// `tangle analyze` of the cut directory.
final class PicturesTests: XCTestCase {
    nonisolated(unsafe) static var traceDir: String?

    private func tangle(_ args: [String]) throws -> Int32 {
        try runTool(try ScenarioEndToEndTests.binary("tangle"), args, environment: ["SWIFT_BACKTRACE": "enable=no"], capture: false).status
    }

    /// The lock ring's trace, recorded once for the class (3 s timeout).
    private func ring() throws -> String {
        if let d = Self.traceDir { return d }
        let examples = try ScenarioEndToEndTests.binary("tangle-examples")
        let dir = NSTemporaryDirectory() + "tangle-pictures-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        XCTAssertEqual(try tangle(["run", "--timeout", "3", "--grace", "1", "--trace-dir", dir, "--format", "perfetto",
                                   "-o", dir + ".run-perfetto.json", "--", examples, "lock-ring"]), 1)
        Self.traceDir = dir
        return dir
    }

    override class func tearDown() {
        if let d = traceDir {
            try? FileManager.default.removeItem(atPath: d)
            try? FileManager.default.removeItem(atPath: d + ".run-perfetto.json")
        }
    }

    private func export(_ format: String) throws -> String {
        let dir = try ring()
        let out = dir + "." + format
        XCTAssertEqual(try tangle(["analyze", dir, "--format", format, "-o", out]), 1)
        defer { try? FileManager.default.removeItem(atPath: out) }
        return try String(contentsOfFile: out, encoding: .utf8)
    }

    /// Checks one node per participant (main and the three tellers, each label once) and a
    /// directed cycle through the three tellers.
    private func checkGraph(nodes: [String: String], edges: [(String, String)], _ what: String) {
        XCTAssertEqual(nodes.count, 4, "\(what): \(nodes)")
        let labels = nodes.values.map { $0.components(separatedBy: " (").first ?? $0 }.sorted()
        XCTAssertEqual(labels, ["MainProcess", "teller-0", "teller-1", "teller-2"], "\(what): one node per participant")
        for (a, b) in edges { XCTAssertTrue(nodes[a] != nil && nodes[b] != nil, "\(what): edge \(a) -> \(b) to a node not drawn") }
        let tellers = nodes.filter { $0.value.hasPrefix("teller-") }.map(\.key)
        var next: [String: [String]] = [:]
        for (a, b) in edges { next[a, default: []].append(b) }
        // From each teller, following teller -> teller edges comes back to it after visiting all three.
        for start in tellers {
            var at = start, seen: [String] = []
            for _ in 0..<3 {
                guard let n = next[at]?.first(where: { tellers.contains($0) }) else { break }
                seen.append(n)
                at = n
            }
            XCTAssertEqual(at, start, "\(what): no directed cycle back to \(nodes[start]!): \(edges)")
            XCTAssertEqual(Set(seen).count, 3, "\(what): the cycle goes through all three tellers")
        }
    }

    func testDotGraphDrawsTheRingAsACycle() throws {
        let dot = try export("dot")
        guard let range = dot.range(of: "subgraph cluster_waitfor {"), let endRange = dot.range(of: "subgraph cluster_lockorder") else {
            return XCTFail(dot)
        }
        let wf = String(dot[range.upperBound..<endRange.lowerBound])
        var nodes: [String: String] = [:], edges: [(String, String)] = []
        for line in wf.split(separator: "\n").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            if let m = line.firstMatch(of: #/^"waitfor:([^"]+)" -> "waitfor:([^"]+)"/#) {
                edges.append((String(m.1), String(m.2)))
            } else if let m = line.firstMatch(of: #/^"waitfor:([^"]+)" \[label="([^"]+)"/#) {
                XCTAssertNil(nodes[String(m.1)], "node \(m.1) drawn twice")
                nodes[String(m.1)] = String(m.2)
            }
        }
        checkGraph(nodes: nodes, edges: edges, "dot")
        // Processes as clusters: one per participant process.
        XCTAssertEqual(wf.components(separatedBy: "subgraph cluster_waitfor_p").count - 1, 4, wf)
    }

    func testHTMLGraphDrawsTheRingAsACycle() throws {
        let html = try export("html")
        guard let start = html.range(of: "Wait-for graph"), let end = html.range(of: "</svg>", range: start.upperBound..<html.endIndex) else {
            return XCTFail("no wait-for graph")
        }
        let svg = String(html[start.upperBound..<end.lowerBound])
        var nodes: [String: String] = [:]
        for m in svg.matches(of: #/data-node="([^"]+)">.*?<title>([^<]+)</title></g>/#) { nodes[String(m.1)] = String(m.2) }
        let edges = svg.matches(of: #/data-from="([^"]+)" data-to="([^"]+)"/#).map { (String($0.1), String($0.2)) }
        checkGraph(nodes: nodes, edges: edges, "html")
        // Processes as clusters: one box per participant process, around its own thread's node.
        let clusters = svg.matches(of: #/<g class="cluster" data-process="(\d+)">(.*?)</g>\n</g>/#.dotMatchesNewlines())
        XCTAssertEqual(clusters.count, 4, "html: one cluster per process")
        for c in clusters {
            let inside = c.2.matches(of: #/data-node="t:(\d+):\d+"/#).map { String($0.1) }
            XCTAssertEqual(inside, [String(c.1)], "html: the cluster of pid \(c.1) holds its thread's node only")
        }
    }

    /// A recorded trace whose finding sits inside the run (lost messages: the puts and the end):
    /// the page opens on the findings' window, not the whole trace, and the whole trace is the
    /// other view.
    func testHTMLTimelineOpensOnTheFindingsWindow() throws {
        let out = NSTemporaryDirectory() + "tangle-pictures-window-\(getpid()).html"
        defer { try? FileManager.default.removeItem(atPath: out) }
        XCTAssertEqual(try tangle(["analyze", ScenarioEndToEndTests.corpus + "/lost-messages", "--format", "html", "-o", out]), 1)
        let html = try String(contentsOfFile: out, encoding: .utf8)
        let caption = try XCTUnwrap(html.firstMatch(of: #/Showing the findings' window, ([0-9.]+) s – ([0-9.]+) s of a ([0-9.]+) s trace/#), "no findings' window")
        let (from, to, whole) = (Double(caption.1) ?? 0, Double(caption.2) ?? 0, Double(caption.3) ?? 0)
        XCTAssertGreaterThan(from, 0, "the window starts after the trace's start")
        XCTAssertLessThan(to - from, 0.9 * whole)
        XCTAssertTrue(html.contains("<div class=\"scroll\" id=\"tl-findings\"><svg"))
        XCTAssertTrue(html.contains("<div class=\"scroll\" id=\"tl-whole\" hidden><svg"))
    }

    /// Clean titles and times in every export of every stored trace: no kind said twice
    /// ("deadlock: deadlock:", "kept: kept:"), no raw clock value (t=990785306340).
    func testCleanTitlesInEveryExport() throws {
        let out = NSTemporaryDirectory() + "tangle-pictures-titles-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let traces = try FileManager.default.contentsOfDirectory(atPath: ScenarioEndToEndTests.corpus).sorted()
            .filter { !$0.hasSuffix(".md") }
        XCTAssertGreaterThan(traces.count, 10)
        for t in traces {
            for format in ["text", "html", "sarif", "junit", "llm", "dot"] {
                _ = try tangle(["analyze", ScenarioEndToEndTests.corpus + "/" + t, "--format", format, "-o", out])
                let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
                XCTAssertFalse(text.isEmpty, "\(t) \(format): no output")
                for m in text.matches(of: #/\b([a-z][a-z-]+): \1:/#) { XCTFail("\(t) \(format): '\(m.0)' says its kind twice") }
                for m in text.matches(of: #/\bt=\d{7,}/#) { XCTFail("\(t) \(format): raw clock value '\(m.0)'") }
            }
        }
    }

    /// Each teller's lock wait never returned: in Perfetto it lasts until the stop (about the 3 s
    /// timeout), not 0 µs at the teller's last event.
    func testHangsLastUntilTheStopInPerfetto() throws {
        let dir = try ring()
        for (what, text) in [("tangle run", try String(contentsOfFile: dir + ".run-perfetto.json", encoding: .utf8)),
                             ("tangle analyze", try export("perfetto"))] {
            let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
            let events = json["traceEvents"] as? [[String: Any]] ?? []
            let waits = events.filter { ($0["name"] as? String ?? "").hasPrefix("wait lock.wait") && ($0["name"] as? String ?? "").hasSuffix("(never returned)") }
            XCTAssertEqual(waits.count, 3, "\(what): \(waits)")
            for w in waits {
                let dur = (w["dur"] as? Double) ?? Double(w["dur"] as? Int ?? 0)
                XCTAssertGreaterThan(dur, 2_000_000, "\(what): \(w["name"] ?? "") lasts \(dur) µs, not until the stop")
            }
        }
    }

    /// SARIF's primary location is the root cause: in lock-across-get the worker's `get` made
    /// while holding L, not main's acquire that waits behind it (a related location).
    func testSARIFPrimaryLocationIsTheRootCause() throws {
        let out = NSTemporaryDirectory() + "tangle-pictures-\(getpid()).sarif"
        defer { try? FileManager.default.removeItem(atPath: out) }
        XCTAssertEqual(try tangle(["analyze", ScenarioEndToEndTests.corpus + "/lock-across-get", "--format", "sarif", "-o", out]), 1)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out))) as? [String: Any])
        let result = try XCTUnwrap(((json["runs"] as? [[String: Any]])?.first?["results"] as? [[String: Any]])?.first { $0["ruleId"] as? String == "deadlock" })
        let primary = ((result["locations"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["text"] as? String ?? ""
        XCTAssertTrue(primary.contains("worker") && primary.contains("get on queue 'jobs'"), primary)
        let related = (result["relatedLocations"] as? [[String: Any]] ?? []).compactMap { ($0["message"] as? [String: Any])?["text"] as? String }
        XCTAssertTrue(related.contains { $0.contains("MainProcess") && $0.contains("acquire of lock 'L'") }, "\(related)")
    }
}
