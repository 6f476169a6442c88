import Foundation

/// The whole reading side on arbitrary bytes — reader, analyzer, every output format — as the
/// fuzz target (`Fuzz/`) and its replay test drive it. One input holds one or more trace files
/// separated by `fileSeparator`; a part that starts with the LZ4 magic number is written as
/// `.jsonl.lz4`, any other as `.jsonl`.
public enum WholePipeline {
    public static let fileSeparator: [UInt8] = Array("\n#file\n".utf8)

    /// Writes the parts of `bytes` into `directory` (its trace files are removed first) and runs
    /// everything on them. Returns the status `tangle analyze` would exit with: 0 clean,
    /// 1 findings, 2 unusable input.
    @discardableResult
    public static func run(_ bytes: UnsafeRawBufferPointer, directory: String) -> Int32 {
        clear(directory)
        var parts: [UnsafeRawBufferPointer] = []
        var start = 0
        var i = 0
        let sep = fileSeparator
        while i + sep.count <= bytes.count {
            if bytes[i] == sep[0] && memcmp(bytes.baseAddress! + i, sep, sep.count) == 0 {
                parts.append(UnsafeRawBufferPointer(rebasing: bytes[start..<i]))
                i += sep.count
                start = i
                continue
            }
            i += 1
        }
        parts.append(UnsafeRawBufferPointer(rebasing: bytes[start..<bytes.count]))
        for (n, part) in parts.prefix(16).enumerated() {
            let lz4 = part.count >= 4 && part[0] == 0x04 && part[1] == 0x22 && part[2] == 0x4D && part[3] == 0x18
            let path = directory + "/f\(n).jsonl" + (lz4 ? ".lz4" : "")
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard fd >= 0 else { return 2 }
            var off = 0
            while off < part.count {
                let w = write(fd, part.baseAddress! + off, part.count - off)
                if w <= 0 { break }
                off += w
            }
            close(fd)
        }
        return analyze(directory)
    }

    /// Reader, analyzer and every format on the traces of `directory`.
    public static func analyze(_ directory: String) -> Int32 {
        var options = AnalysisOptions()
        options.keepEvents = false
        let result: AnalysisResult
        do { result = try Analyzer.analyze(paths: [directory], options: options) } catch { return 2 }
        _ = ReportRenderer.text(result.report, color: false)
        _ = try? ReportRenderer.json(result.report)
        var eo = ExportOptions()
        eo.repositoryRoot = directory
        eo.toolVersion = "fuzz"
        for format in ExportFormat.allCases {
            // As `tangle analyze --format` does: the events each format shows, from a second pass
            // (a small cap, so that the cut of a timeline is exercised too).
            var r = result
            do { try EvidenceWindows.fill(&r, format: format, paths: [directory], options: eo, timelineCap: 64) } catch { return 2 }
            _ = try? Exporter.render(format, result: r, options: eo)
        }
        return result.report.findings.isEmpty ? 0 : 1
    }

    private static func clear(_ directory: String) {
        guard let dir = opendir(directory) else { return }
        var names: [String] = []
        while let ent = readdir(dir) {
            let name = withUnsafePointer(to: ent.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name.hasPrefix("f") && name.contains(".jsonl") { names.append(name) }
        }
        closedir(dir)
        for n in names { unlink(directory + "/" + n) }
    }
}
