import Foundation

/// JUnit XML (`--format junit`) for CI systems that show test reports.
///
/// One `<testsuite name="tangle">`; for every finding kind checked, one passing test case when the
/// run had none of that kind, else one failing test case per finding whose `<failure>` carries the
/// title (message), the explanation, the fix, the participants and the stacks.
enum JUnitExporter {
    static func render(result: AnalysisResult, options: ExportOptions) -> String {
        let report = result.report
        var cases: [String] = []
        var failures = 0
        for kind in FindingKind.allCases {
            let info = FindingKindInfo.of(kind)
            let found = ExportSupport.ranked(report.findings).map(\.finding).filter { $0.kind == kind }
            let classname = "tangle.\(kind.rawValue)"
            if found.isEmpty {
                cases.append("    <testcase classname=\"\(x(classname))\" name=\"\(x("no \(info.name.lowercased())"))\" time=\"0\"/>")
                continue
            }
            for f in found {
                failures += 1
                let name = "\(f.title) [\(f.fingerprint.prefix(16))]"
                var body = "\(f.severity.rawValue), \(f.confidence.rawValue): \(f.title)\n\n\(f.explanation)\n"
                if !f.fix.isEmpty { body += "\nFix: \(f.fix)\n" }
                if let why = f.why, !why.isEmpty { body += "\nWhy it was kept: \(why)\n" }
                if !f.participants.isEmpty {
                    body += "\nParticipants:\n"
                    for p in f.participants {
                        body += "  - \(p.process)\(p.thread.map { "/" + $0 } ?? "") (pid \(p.pid), tid \(p.tid)) \(p.role): \(p.detail)\n"
                    }
                }
                for s in f.stacks {
                    body += "\n\(s.label):\n"
                    for (i, frame) in s.frames.enumerated() { body += "  #\(i) \(ExportSupport.describe(frame))\n" }
                    if let w = s.warning { body += "  (\(w))\n" }
                }
                body += "\nFingerprint: \(f.fingerprint)\n"
                cases.append("""
                    <testcase classname="\(x(classname))" name="\(x(name))" time="0">
                      <failure type="\(x(kind.rawValue))" message="\(x(f.title))">\(x(body))</failure>
                    </testcase>
                """)
            }
        }
        var problems = ""
        if !report.problems.isEmpty {
            let text = report.problems.map { "\($0.kind)\($0.file.map { " in \($0)" } ?? ""): \($0.detail)" }.joined(separator: "\n")
            problems = "    <system-err>\(x(text))</system-err>\n"
        }
        let total = cases.count
        return """
        <?xml version="1.0" encoding="UTF-8"?>
        <testsuites name="tangle" tests="\(total)" failures="\(failures)" errors="0" time="0">
          <testsuite name="tangle" tests="\(total)" failures="\(failures)" errors="0" skipped="0" time="0">
            <properties>
              <property name="tangle.version" value="\(x(options.toolVersion))"/>
              <property name="tangle.processes" value="\(report.processes.count)"/>
              <property name="tangle.events" value="\(report.stats.events)"/>
            </properties>
        \(cases.joined(separator: "\n"))
        \(problems)  </testsuite>
        </testsuites>

        """
    }

    private static func x(_ s: String) -> String { ExportSupport.xmlEscape(s) }
}
