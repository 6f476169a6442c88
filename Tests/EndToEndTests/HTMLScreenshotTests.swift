import Foundation
import XCTest

/// The HTML page of a real hang, as a browser draws it: `tangle run --timeout 3` of
/// `tangle-examples lock-ring` (three tellers deadlocked, main joining them) exports `--format html`,
/// headless Chromium lays the page out at 1400 px, and a script added to a copy of the page
/// measures what is drawn. The waits that never returned must span the timeline up to the stop
/// (their drawn width, not a 0-length slice) and carry their length ("never returned · 2.99 s"),
/// and the screenshot is written (kept in TANGLE_SCREENSHOT_DIR when set).
final class HTMLScreenshotTests: XCTestCase {
    /// Reads the layout after the page's own scripts ran: the visible timeline's plot edges (its
    /// first and last grid lines), each hang bar's box and each hang label's text and box.
    static let measure = """
    <pre id="tangle-measure"></pre><script>(function(){
    var v=[].slice.call(document.querySelectorAll('#timeline .scroll')).filter(function(d){return !d.hidden;})[0];
    var out={views:document.querySelectorAll('#timeline .scroll').length,ready:document.body.getAttribute('data-tangle-ready')};
    if(v){var svg=v.querySelector('svg');
    var grid=[].slice.call(svg.querySelectorAll('line.grid')).map(function(l){return l.getBoundingClientRect().left;});
    out.plotLeft=Math.min.apply(null,grid);out.plotRight=Math.max.apply(null,grid);
    out.hangs=[].slice.call(svg.querySelectorAll('rect.waitbad')).map(function(r){var b=r.getBoundingClientRect();return {left:b.left,right:b.right,height:b.height};});
    out.labels=[].slice.call(svg.querySelectorAll('text.hanglabel')).map(function(t){var b=t.getBoundingClientRect();return {text:t.textContent,length:t.getAttribute('data-length'),width:b.width,height:b.height};});
    out.axis=[].slice.call(svg.querySelectorAll('text.axis')).map(function(t){return t.textContent;});}
    document.getElementById('tangle-measure').textContent=JSON.stringify(out);})();</script>
    """

    struct Layout: Decodable {
        struct Bar: Decodable { var left: Double; var right: Double; var height: Double }
        struct Label: Decodable { var text: String; var length: String?; var width: Double; var height: Double }
        var views: Int
        var ready: String?
        var plotLeft: Double?
        var plotRight: Double?
        var hangs: [Bar]?
        var labels: [Label]?
        var axis: [String]?
    }

    func testHTMLScreenshotShowsTheHangsLength() throws {
        guard let chromium = ["chromium", "chromium-browser", "google-chrome"].lazy.compactMap(Self.which).first else {
            throw XCTSkip("chromium is not installed (scripts/setup.sh --test installs it): the HTML page was not rendered")
        }
        let tangle = try ScenarioEndToEndTests.binary("tangle")
        let examples = try ScenarioEndToEndTests.binary("tangle-examples")
        let dir = NSTemporaryDirectory() + "tangle-html-shot-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }

        let run = try Self.run(tangle, ["run", "--timeout", "3", "--grace", "1", "--trace-dir", dir + "/trace", "--format", "html",
                                        "-o", dir + "/report.html", "--", examples, "lock-ring"])
        XCTAssertEqual(run.status, 1, "tangle run: \(run.stderr)")
        let html = try String(contentsOfFile: dir + "/report.html", encoding: .utf8)
        guard let bodyEnd = html.range(of: "</body>", options: .backwards) else { return XCTFail("no </body> in the page") }
        try (html[..<bodyEnd.lowerBound] + Self.measure + html[bodyEnd.lowerBound...])
            .write(toFile: dir + "/measured.html", atomically: true, encoding: .utf8)

        let common = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                      "--hide-scrollbars", "--user-data-dir=\(dir)/profile", "--window-size=1400,1800"]
        let dom = try Self.run(chromium, common + ["--dump-dom", "file://\(dir)/measured.html"])
        XCTAssertEqual(dom.status, 0, dom.stderr)
        guard let a = dom.stdout.range(of: "<pre id=\"tangle-measure\">"),
              let b = dom.stdout.range(of: "</pre>", range: a.upperBound..<dom.stdout.endIndex) else {
            return XCTFail("the measuring script left nothing: \(dom.stdout.prefix(400))")
        }
        let json = dom.stdout[a.upperBound..<b.lowerBound].replacingOccurrences(of: "&quot;", with: "\"")
            .replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">").replacingOccurrences(of: "&amp;", with: "&")
        let layout = try JSONDecoder().decode(Layout.self, from: Data(json.utf8))
        XCTAssertEqual(layout.ready, "1", "the page's script did not run")
        let left = try XCTUnwrap(layout.plotLeft), right = try XCTUnwrap(layout.plotRight)
        XCTAssertGreaterThan(right - left, 500, "the timeline is drawn \(right - left) px wide at a 1400 px window")
        XCTAssertEqual(layout.axis?.last.map { Self.seconds($0) ?? 0 } ?? 0, 3.2, accuracy: 0.6, "the axis ends at the stop: \(layout.axis ?? [])")

        // The three tellers' lock waits and main's join never returned: each bar runs to the
        // timeline's right edge and spans most of it (they began within ms of the start).
        let hangs = layout.hangs ?? []
        XCTAssertEqual(hangs.count, 4, "\(hangs)")
        for bar in hangs {
            XCTAssertGreaterThan(bar.height, 4, "a hang bar is drawn \(bar.height) px high")
            XCTAssertGreaterThanOrEqual(bar.right, right - 2, "a hang bar stops at \(bar.right) px, before the stop at \(right) px")
            XCTAssertGreaterThan((bar.right - bar.left) / (right - left), 0.6, "a hang bar spans \(bar.right - bar.left) of \(right - left) px")
        }
        // Its length written on it, seconds, about the 3 s timeout.
        let labels = layout.labels ?? []
        XCTAssertEqual(labels.count, 4, "\(labels)")
        for l in labels {
            XCTAssertTrue(l.text.hasPrefix("never returned · "), l.text)
            XCTAssertGreaterThan(l.width, 40, "the label '\(l.text)' is not drawn")
            let s = try XCTUnwrap(l.length.flatMap(Self.seconds), l.text)
            XCTAssertGreaterThan(s, 2.0, "'\(l.text)': a 3 s hang (less the children's start)")
            XCTAssertLessThan(s, 5, "'\(l.text)'")
        }

        let shotDir = ProcessInfo.processInfo.environment["TANGLE_SCREENSHOT_DIR"] ?? dir
        let png = shotDir + "/tangle-hang.png"
        let shot = try Self.run(chromium, common + ["--screenshot=\(png)", "file://\(dir)/report.html"])
        XCTAssertEqual(shot.status, 0, shot.stderr)
        let bytes = (try? Data(contentsOf: URL(fileURLWithPath: png))) ?? Data()
        XCTAssertGreaterThan(bytes.count, 10_000, "screenshot missing or empty")
        XCTAssertEqual(Array(bytes.prefix(4)), [0x89, 0x50, 0x4E, 0x47], "not a PNG")

        // The pixels: the longest horizontal run of the hang colour (#e53935) spans most of the
        // timeline's plot (decoded by a few lines of Python's zlib, when python3 is there).
        guard let python = Self.which("python3") else { return }
        try Self.pngRunScript.write(toFile: dir + "/run.py", atomically: true, encoding: .utf8)
        let px = try Self.run(python, [dir + "/run.py", png])
        XCTAssertEqual(px.status, 0, px.stderr)
        let figures = px.stdout.split(separator: " ").compactMap { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        XCTAssertEqual(figures.count, 2, px.stdout)
        XCTAssertGreaterThan(figures.first ?? 0, 0.6 * (right - left),
                             "the screenshot's longest hang-coloured run is \(figures.first ?? 0) px; the plot is \(right - left) px (\(png))")
    }

    /// Prints the longest horizontal run of #e53935 pixels in a PNG (8-bit RGB/RGBA) and its width.
    static let pngRunScript = #"""
import sys, zlib, struct
def longest_run(path, rgb):
    data = open(path, 'rb').read()
    assert data[:8] == b'\x89PNG\r\n\x1a\n'
    pos, idat, w, h, ctype = 8, b'', 0, 0, 0
    while pos < len(data):
        n, kind = struct.unpack('>I4s', data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b'IHDR':
            w, h, depth, ctype = struct.unpack('>IIBB', body[:10])
            assert depth == 8 and ctype in (2, 6), (depth, ctype)
        elif kind == b'IDAT':
            idat += body
        pos += 12 + n
    bpp = 3 if ctype == 2 else 4
    raw, stride, prev, best = zlib.decompress(idat), w * bpp, bytearray(w * bpp), 0
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + b) & 255
            elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        run = 0
        for x in range(w):
            if tuple(line[x * bpp:x * bpp + 3]) == rgb: run += 1; best = max(best, run)
            else: run = 0
        prev = line
    return best, w
best, w = longest_run(sys.argv[1], (0xe5, 0x39, 0x35))
print(best, w)
"""#

    /// "2.99 s" → 2.99.
    static func seconds(_ text: String) -> Double? {
        Double(text.replacingOccurrences(of: " s", with: "").trimmingCharacters(in: .whitespaces))
    }

    static func which(_ tool: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let p = "\(dir)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    /// Runs a program to the end; its output through files (a pipe could fill up).
    static func run(_ path: String, _ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let out = NSTemporaryDirectory() + "tangle-html-shot-out-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        FileManager.default.createFile(atPath: out + ".1", contents: nil)
        FileManager.default.createFile(atPath: out + ".2", contents: nil)
        defer { try? FileManager.default.removeItem(atPath: out + ".1"); try? FileManager.default.removeItem(atPath: out + ".2") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "TANGLE_TRACE")
        env["SWIFT_BACKTRACE"] = "enable=no"
        p.environment = env
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out + ".1"))
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: out + ".2"))
        try p.run()
        p.waitUntilExit()
        return (p.terminationStatus, (try? String(contentsOfFile: out + ".1", encoding: .utf8)) ?? "",
                (try? String(contentsOfFile: out + ".2", encoding: .utf8)) ?? "")
    }
}
