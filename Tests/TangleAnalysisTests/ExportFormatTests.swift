import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest
@testable import TangleAnalysis
import TangleTestSupport

final class ExportFormatTests: XCTestCase {
    var sourceRoot = ""

    override func setUpWithError() throws {
        sourceRoot = try ExportFixtures.makeSourceRoot()
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: sourceRoot)
    }

    func options(budget: Int = 4000) -> ExportOptions {
        var o = ExportOptions()
        o.repositoryRoot = "/build/ci"
        o.llmBudgetTokens = budget
        return o
    }

    /// Every format renders and is deterministic: the same input gives the same bytes.
    func testEveryFormatRendersDeterministically() throws {
        let r = ExportFixtures.result(sourceRoot: sourceRoot)
        for format in ExportFormat.allCases {
            let a = try Exporter.render(format, result: r, options: options())
            let b = try Exporter.render(format, result: r, options: options())
            XCTAssertFalse(a.isEmpty, "\(format)")
            XCTAssertEqual(a, b, "\(format) is not deterministic")
            // TANGLE_EXPORT_SAMPLES=DIR keeps one output of each format to look at.
            if let dir = ProcessInfo.processInfo.environment["TANGLE_EXPORT_SAMPLES"] {
                try a.write(toFile: "\(dir)/fixture.\(format.fileExtension)", atomically: true, encoding: .utf8)
            }
        }
        if let dir = ProcessInfo.processInfo.environment["TANGLE_EXPORT_SAMPLES"] {
            let big = ExportFixtures.big(copies: 60, rounds: 3000, sourceRoot: sourceRoot)
            try Exporter.render(.llm, result: big, options: options(budget: 1500)).write(toFile: dir + "/big-1500.md", atomically: true, encoding: .utf8)
        }
        XCTAssertEqual(ExportFormat(rawValue: "llm-json"), .llmJSON)
    }

    /// SARIF: validates against the 2.1.0 schema (python3 + jsonschema), one result per finding,
    /// rule per kind, level from severity, relative location at the first user frame, related
    /// locations for the other stacks, fingerprints, tool name and version.
    func testSARIFValidatesAndPointsAtUserFrames() throws {
        let r = ExportFixtures.result(sourceRoot: sourceRoot)
        let text = try Exporter.render(.sarif, result: r, options: options())
        let doc = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        XCTAssertEqual(doc["version"] as? String, "2.1.0")
        let run = try XCTUnwrap((doc["runs"] as? [[String: Any]])?.first)
        let driver = try XCTUnwrap((run["tool"] as? [String: Any])?["driver"] as? [String: Any])
        XCTAssertEqual(driver["name"] as? String, "tangle")
        XCTAssertEqual(driver["version"] as? String, Exporter.toolVersion)
        let rules = try XCTUnwrap(driver["rules"] as? [[String: Any]])
        XCTAssertEqual(Set(rules.compactMap { $0["id"] as? String }), Set(FindingKind.allCases.map(\.rawValue)))
        let results = try XCTUnwrap(run["results"] as? [[String: Any]])
        XCTAssertEqual(results.count, 4)
        // Ranked: the deadlock first.
        let first = results[0]
        XCTAssertEqual(first["ruleId"] as? String, "deadlock")
        XCTAssertEqual(first["level"] as? String, "error")
        XCTAssertEqual((first["partialFingerprints"] as? [String: String])?["tangleFingerprint/v1"], "dl-7c1e5a90b2f34d18")
        let loc = try XCTUnwrap(((first["locations"] as? [[String: Any]])?.first?["physicalLocation"]) as? [String: Any])
        let artifact = try XCTUnwrap(loc["artifactLocation"] as? [String: Any])
        XCTAssertEqual(artifact["uri"] as? String, "Sources/App/Worker.swift")
        XCTAssertEqual(artifact["uriBaseId"] as? String, "%SRCROOT%")
        XCTAssertEqual((loc["region"] as? [String: Any])?["startLine"] as? Int, 22)
        let related = try XCTUnwrap(first["relatedLocations"] as? [[String: Any]])
        XCTAssertEqual(((related.first?["physicalLocation"] as? [String: Any])?["region"] as? [String: Any])?["startLine"] as? Int, 32)
        XCTAssertNotNil(first["codeFlows"])
        // Every result has a location (GitHub code scanning drops those without), even without stacks.
        XCTAssertTrue(results.allSatisfy { ($0["locations"] as? [Any])?.isEmpty == false })
        let levels = results.compactMap { $0["level"] as? String }
        XCTAssertEqual(levels, ["error", "error", "note", "warning"])

        guard let schema = ExportTestSupport.sarifSchema else { throw XCTSkip("SARIF schema not found (set TANGLE_SARIF_SCHEMA)") }
        let dir = try ExportTestSupport.tempDir("sarif")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try text.write(toFile: dir + "/out.sarif", atomically: true, encoding: .utf8)
        let script = """
        import json, sys
        try:
            import jsonschema
        except ImportError:
            print("SKIP: python3 has no jsonschema"); sys.exit(3)
        schema = json.load(open(sys.argv[1])); doc = json.load(open(sys.argv[2]))
        cls = jsonschema.validators.validator_for(schema)
        errors = sorted(cls(schema).iter_errors(doc), key=lambda e: list(e.path))
        for e in errors[:20]: print("/".join(map(str, e.path)), e.message)
        sys.exit(1 if errors else 0)
        """
        guard let out = try ExportTestSupport.python(script, [schema, dir + "/out.sarif"]) else { throw XCTSkip("python3 not found") }
        if out.status == 3 { throw XCTSkip(out.stdout) }
        XCTAssertEqual(out.status, 0, "SARIF does not validate:\n\(out.stdout)\(out.stderr)")
    }

    /// SARIF of a report with no findings, and of unsymbolized frames, still validates.
    func testSARIFEdgeCasesValidate() throws {
        var r = ExportFixtures.result(sourceRoot: sourceRoot)
        r.report.findings[0].stacks = [Stack(label: "raw", pid: 1, tid: 1, frames: [ExportFixtures.libcFrame])]
        r.report.findings[1].stacks = []
        let empty = AnalysisResult(report: Report(findings: []), context: ExportContext())
        guard let schema = ExportTestSupport.sarifSchema, which("python3") != nil else { throw XCTSkip("no schema or python3") }
        let dir = try ExportTestSupport.tempDir("sarif2")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (i, res) in [r, empty].enumerated() {
            try Exporter.render(.sarif, result: res, options: options()).write(toFile: dir + "/\(i).sarif", atomically: true, encoding: .utf8)
            let out = try XCTUnwrap(try ExportTestSupport.python("""
            import json, sys, jsonschema
            s = json.load(open(sys.argv[1])); d = json.load(open(sys.argv[2]))
            errs = list(jsonschema.validators.validator_for(s)(s).iter_errors(d))
            [print(e.message) for e in errs[:10]]; sys.exit(1 if errs else 0)
            """, [schema, dir + "/\(i).sarif"]))
            XCTAssertEqual(out.status, 0, out.stdout + out.stderr)
        }
    }

    /// JUnit: well-formed XML (Foundation's XMLParser), one failing test case per finding and one
    /// passing case per kind without findings, markup in titles escaped.
    func testJUnitIsWellFormedAndEscaped() throws {
        var r = ExportFixtures.result(sourceRoot: sourceRoot)
        r.report.findings[0].title = "zombie <child> & \"quotes\" 'apos' \u{01} ]]>"
        let xml = try Exporter.render(.junit, result: r, options: options())
        final class Counter: NSObject, XMLParserDelegate {
            var testcases = 0, failures = 0, text = ""
            var suiteFailures: String?
            func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
                if name == "testcase" { testcases += 1 }
                if name == "failure" { failures += 1 }
                if name == "testsuite" { suiteFailures = attributes["failures"] }
            }
            func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }
        }
        let parser = XMLParser(data: Data(xml.utf8))
        let counter = Counter()
        parser.delegate = counter
        XCTAssertTrue(parser.parse(), "JUnit is not well-formed: \(String(describing: parser.parserError))\n\(xml)")
        XCTAssertEqual(counter.failures, 4)
        XCTAssertEqual(counter.testcases, 4 + FindingKind.allCases.count - 4)
        XCTAssertEqual(counter.suiteFailures, "4")
        XCTAssertTrue(counter.text.contains("Each waits for a lock the other holds"))
        XCTAssertTrue(counter.text.contains("App.Worker.transfer(from:to:)"))
        XCTAssertTrue(xml.contains("&lt;child&gt; &amp; &quot;quotes&quot;"))
    }

    /// Perfetto: valid JSON; every flow start has one finish with the same id and vice versa, each
    /// bound inside a slice of its thread; slices of each thread nest properly and lie within the
    /// thread's lifetime; names for every pid/tid; the overlapping C/D holds go to an async track;
    /// one instant per finding.
    func testPerfettoFlowsPairAndSlicesNest() throws {
        let r = ExportFixtures.result(sourceRoot: sourceRoot)
        let text = try Exporter.render(.perfetto, result: r, options: options())
        let doc = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let events = try XCTUnwrap(doc["traceEvents"] as? [[String: Any]])
        func num(_ v: Any?) -> Double { (v as? NSNumber)?.doubleValue ?? .nan }
        func key(_ e: [String: Any]) -> String { "\(num(e["pid"]))/\(num(e["tid"]))" }

        let starts = events.filter { $0["ph"] as? String == "s" }, finishes = events.filter { $0["ph"] as? String == "f" }
        XCTAssertEqual(starts.count, 2, "two messages were put and got")
        XCTAssertEqual(Set(starts.map { num($0["id"]) }), Set(finishes.map { num($0["id"]) }))
        XCTAssertEqual(Set(starts.map { num($0["id"]) }).count, starts.count, "flow ids are unique")

        var slices: [String: [(ts: Double, end: Double, name: String)]] = [:]
        for e in events where e["ph"] as? String == "X" {
            slices[key(e), default: []].append((num(e["ts"]), num(e["ts"]) + num(e["dur"]), e["name"] as? String ?? ""))
        }
        let eps = 0.0005
        for flow in starts + finishes {
            let ts = num(flow["ts"])
            XCTAssertTrue(slices[key(flow), default: []].contains { $0.ts - eps <= ts && ts <= $0.end + eps }, "flow at \(ts) on \(key(flow)) has no enclosing slice")
        }
        // Thread lifetimes from the fixture (µs since the first event).
        let evs = r.context.events
        let t0 = Double(evs.map(\.time).min()!) / 1000, tEnd = Double(evs.map(\.time).max()!) / 1000
        for (k, list) in slices {
            let parts = k.split(separator: "/").map { Int32(Double($0)!) }
            let mine = evs.filter { $0.pid == parts[0] && $0.tid == parts[1] }
            let first = Double(mine.map(\.time).min()!) / 1000 - t0
            let exited = mine.contains { $0.kind == .threadExit || $0.kind == .processExit }
            let last = exited ? Double(mine.map(\.time).max()!) / 1000 - t0 : tEnd - t0
            var stack: [(ts: Double, end: Double, name: String)] = []
            for s in list.sorted(by: { $0.ts != $1.ts ? $0.ts < $1.ts : $0.end > $1.end }) {
                XCTAssertGreaterThanOrEqual(s.ts, first - eps, "\(s.name) starts before its thread \(k)")
                XCTAssertLessThanOrEqual(s.end, last + eps, "\(s.name) ends after its thread \(k)")
                while let top = stack.last, top.end <= s.ts + eps, top.ts < s.ts { stack.removeLast() }
                if let top = stack.last { XCTAssertLessThanOrEqual(s.end, top.end + eps, "\(s.name) overlaps \(top.name) on \(k) without nesting") }
                stack.append(s)
            }
        }
        // Names for every track.
        let named = Set(events.filter { $0["name"] as? String == "thread_name" }.map(key))
        for k in slices.keys { XCTAssertTrue(named.contains(k), "no thread_name for \(k)") }
        XCTAssertEqual(events.filter { $0["name"] as? String == "process_name" }.count, 4)
        // Overlapping holds: C and D in main are not nested, one of them goes async.
        XCTAssertEqual(events.filter { $0["ph"] as? String == "b" }.count, 1)
        XCTAssertEqual(events.filter { $0["ph"] as? String == "e" }.count, 1)
        // The waits that never returned are there, up to the end of the trace.
        XCTAssertTrue(events.contains { ($0["name"] as? String)?.contains("never returned") == true && ($0["name"] as? String)?.contains("'B'") == true })
        XCTAssertEqual(events.filter { $0["ph"] as? String == "i" }.count, 4)
    }

    /// The LLM summary: ranked (deadlock first, predicted after actual), with timeline, stacks,
    /// source lines, ruled-out list and question; within its budget.
    func testLLMSummaryContentAndBudget() throws {
        let r = ExportFixtures.result(sourceRoot: sourceRoot)
        let md = try Exporter.render(.llm, result: r, options: options())
        XCTAssertLessThanOrEqual((md.utf8.count + 3) / 4, 4000)
        for needle in ["## What ran", "Process-1 (pid 1001", "Queue 'tasks'", "Lock 'A'", "### 1. Process-1 and Process-2 wait",
                       "**Timeline**", "lock.wait 'B'", "P1 takes A first", "## Ruled out", "## Question", "happens-before"] {
            XCTAssertTrue(md.contains(needle), "missing \(needle)\n\(md)")
        }
        let dl = try XCTUnwrap(md.range(of: "### 1."))
        let inv = try XCTUnwrap(md.range(of: "Locks 'C' and 'D'"))
        XCTAssertLessThan(dl.lowerBound, inv.lowerBound)
        XCTAssertFalse(md.contains("Cut for budget"))
        XCTAssertFalse(md.contains("/build/ci/.build/debug/app"), "executables by file name only")

        let json = try Exporter.render(.llmJSON, result: r, options: options())
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        XCTAssertEqual((obj["findings"] as? [Any])?.count, 4)
        XCTAssertNotNil(obj["question"] as? String)
        XCTAssertEqual(obj["estimated_tokens"] as? Int, (json.utf8.count + 3) / 4)
    }

    /// A big report (240 findings, 6000 extra events) stays within several budgets, says what it
    /// cut, keeps the top finding, and is deterministic; the JSON form too.
    func testLLMBudgetOnBigReport() throws {
        let big = ExportFixtures.big(copies: 60, rounds: 3000, sourceRoot: sourceRoot)
        for budget in [4000, 1500, 300] {
            let md = try Exporter.render(.llm, result: big, options: options(budget: budget))
            XCTAssertLessThanOrEqual((md.utf8.count + 3) / 4, budget, "markdown over budget \(budget)")
            XCTAssertEqual(md, try Exporter.render(.llm, result: big, options: options(budget: budget)))
            if budget >= 1500 {
                XCTAssertTrue(md.contains("## Cut for budget"), md)
                XCTAssertTrue(md.contains("### 1. Process-1 and Process-2 wait"))
            }
            let json = try Exporter.render(.llmJSON, result: big, options: options(budget: budget))
            XCTAssertLessThanOrEqual((json.utf8.count + 3) / 4, budget, "json over budget \(budget)")
            let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
            XCTAssertFalse((obj["cut"] as? [String] ?? []).isEmpty)
        }
    }

    /// dot: two clusters, the cycle red and bold, balanced braces, quoted labels; laid out by
    /// Graphviz when it is installed.
    func testDotHasBothGraphsAndHighlightedCycle() throws {
        let r = ExportFixtures.result(sourceRoot: sourceRoot)
        let dot = try Exporter.render(.dot, result: r, options: options())
        XCTAssertTrue(dot.contains("subgraph cluster_waitfor"))
        XCTAssertTrue(dot.contains("subgraph cluster_lockorder"))
        XCTAssertTrue(dot.contains("\"waitfor:t1001\" -> \"waitfor:t1002\" [label=\"lock 'B'\", color=red, fontcolor=red, penwidth=2.5, style=bold]"))
        XCTAssertTrue(dot.contains("\"waitfor:t1000\" -> \"waitfor:t1001\" [label=\"get 'results' (could wake)\"]"))
        XCTAssertEqual(dot.filter { $0 == "{" }.count, dot.filter { $0 == "}" }.count)
        if let graphviz = which("dot") {
            let dir = try ExportTestSupport.tempDir("dot")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            try dot.write(toFile: dir + "/g.dot", atomically: true, encoding: .utf8)
            let out = try ExportTestSupport.run(graphviz, ["-Tsvg", dir + "/g.dot", "-o", dir + "/g.svg"])
            XCTAssertEqual(out.status, 0, out.stderr)
        }
    }

    /// HTML: self-contained (no external URL), escaped; loads in headless Chromium, its script runs,
    /// and the findings are in the DOM; a screenshot is written (TANGLE_SCREENSHOT_DIR keeps it).
    func testHTMLLoadsInHeadlessChromium() throws {
        let r = ExportFixtures.result(sourceRoot: sourceRoot)
        let html = try Exporter.render(.html, result: r, options: options())
        XCTAssertFalse(html.contains("<script>alert(1)"), "source lines are escaped")
        XCTAssertTrue(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        for banned in ["src=\"http", "href=\"http", "@import", "url(http"] { XCTAssertFalse(html.contains(banned), banned) }
        XCTAssertTrue(html.contains("<svg class=\"timeline\""))
        XCTAssertTrue(html.contains("class=\"node hot\""))

        guard let chromium = ["chromium", "chromium-browser", "google-chrome"].lazy.compactMap(which).first else {
            throw XCTSkip("chromium not installed (apt-get install chromium): HTML not loaded in a browser")
        }
        let dir = try ExportTestSupport.tempDir("html")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try html.write(toFile: dir + "/report.html", atomically: true, encoding: .utf8)
        let common = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                      "--user-data-dir=\(dir)/profile", "--enable-logging=stderr", "--v=0"]
        let dom = try ExportTestSupport.run(chromium, common + ["--dump-dom", "file://\(dir)/report.html"])
        XCTAssertEqual(dom.status, 0, dom.stderr)
        XCTAssertTrue(dom.stdout.contains("data-tangle-ready=\"1\""), "the page's script did not run")
        XCTAssertTrue(dom.stdout.contains("Process-1 and Process-2 wait for each other"))
        XCTAssertTrue(dom.stdout.contains("Locks 'C' and 'D' are taken in opposite orders"))
        XCTAssertFalse(dom.stderr.contains("Uncaught"), dom.stderr)
        let shotDir = ProcessInfo.processInfo.environment["TANGLE_SCREENSHOT_DIR"] ?? dir
        let shot = try ExportTestSupport.run(chromium, common + ["--hide-scrollbars", "--window-size=1280,2400", "--screenshot=\(shotDir)/tangle-report.png", "file://\(dir)/report.html"])
        XCTAssertEqual(shot.status, 0, shot.stderr)
        let size = (try? FileManager.default.attributesOfItem(atPath: "\(shotDir)/tangle-report.png")[.size] as? Int) ?? 0
        XCTAssertGreaterThan(size, 10_000, "screenshot missing or empty")
    }
}
