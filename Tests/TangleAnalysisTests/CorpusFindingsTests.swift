import Foundation
import TangleTraceFormat
import TangleTraceReader
import XCTest
@testable import TangleAnalysis

/// The committed corpus as data, the way Go's internal/trace/testdata keeps its expectations:
/// beside each recorded trace (`traces/<name>/*.jsonl.lz4`) its expected findings
/// (`traces/<name>/findings.json`: kind, confidence, and who takes part in what role on which
/// object), read back by the real reader. `expected.json` keeps the counts that `tangle demo`
/// checks on fresh runs; this checks what each finding says on the recorded ones.
///
/// After re-recording the corpus (`tangle demo --record-corpus traces`), rewrite the files with
/// `TANGLE_RECORD_FINDINGS=1 swift test --filter CorpusFindingsTests` and review the diff.
final class CorpusFindingsTests: XCTestCase {
    /// One finding as the corpus states it: nothing that changes between runs (pids, times,
    /// addresses, titles that name pids).
    struct Expected: Codable, Equatable {
        struct Participant: Codable, Equatable, Comparable {
            var process: String
            var thread: String?
            var role: ParticipantRole
            var object: String?

            static func < (a: Self, b: Self) -> Bool {
                (a.process, a.thread ?? "", a.role.rawValue, a.object ?? "") < (b.process, b.thread ?? "", b.role.rawValue, b.object ?? "")
            }
        }
        var kind: FindingKind
        var confidence: Confidence
        var participants: [Participant]

        init(_ f: Finding) {
            kind = f.kind
            confidence = f.confidence
            participants = f.participants.map {
                Participant(process: $0.process, thread: $0.thread, role: $0.role, object: $0.objectName)
            }.sorted()
        }
    }

    struct File: Codable, Equatable {
        var scenario: String
        var findings: [Expected]
    }

    static var corpus: String { ExportTestSupport.repoRoot + "/traces" }

    static func scenarios() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: corpus).sorted().filter {
            FileManager.default.fileExists(atPath: "\(corpus)/\($0)/expected.json")
        }
    }

    func testEachRecordedTraceGivesTheFindingsBesideIt() throws {
        let record = ProcessInfo.processInfo.environment["TANGLE_RECORD_FINDINGS"] == "1"
        let names = try Self.scenarios()
        XCTAssertGreaterThanOrEqual(names.count, 20, "the committed corpus")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        for name in names {
            let dir = "\(Self.corpus)/\(name)"
            let report = try Analyzer.analyze(paths: [dir]).report
            let got = File(scenario: name, findings: report.findings.map(Expected.init))
            let path = dir + "/findings.json"
            if record {
                try (String(decoding: try encoder.encode(got), as: UTF8.self) + "\n").write(toFile: path, atomically: true, encoding: .utf8)
                continue
            }
            let data = try XCTUnwrap(FileManager.default.contents(atPath: path), "\(path) is missing")
            let want = try JSONDecoder().decode(File.self, from: data)
            XCTAssertEqual(got.findings.count, want.findings.count, "\(name): \(report.findings.map(\.title))")
            for (g, w) in zip(got.findings, want.findings) {
                XCTAssertEqual(g, w, "\(name)")
            }
            // The counts of expected.json say the same.
            let counts = try JSONDecoder().decode(Counts.self, from: XCTUnwrap(FileManager.default.contents(atPath: dir + "/expected.json")))
            XCTAssertEqual(counts.findings.reduce(0) { $0 + $1.count }, want.findings.count, "\(name): expected.json and findings.json disagree")
            for c in counts.findings {
                XCTAssertEqual(want.findings.filter { $0.kind.rawValue == c.kind && $0.confidence.rawValue == c.confidence }.count, c.count,
                               "\(name): \(c.kind) (\(c.confidence))")
            }
        }
    }

    private struct Counts: Decodable {
        struct Entry: Decodable { var kind: String; var confidence: String; var count: Int }
        var findings: [Entry]
    }
}
