import Foundation

/// SARIF 2.1.0 (`--format sarif`): what GitHub code scanning and other SARIF viewers load.
///
/// One run, tool driver "tangle"; one rule per finding kind (all kinds, so rule indexes are stable);
/// one result per finding with the level from its severity, its location at the first user frame
/// (relative to the repository root under `%SRCROOT%` when it lies below it), related locations for
/// the other stacks, one thread flow per stack, and the finding's fingerprint in
/// `partialFingerprints["tangleFingerprint/v1"]`.
enum SARIFExporter {
    static let fingerprintKey = "tangleFingerprint/v1"
    static let schemaURI = "https://json.schemastore.org/sarif-2.1.0.json"

    static func render(result: AnalysisResult, options: ExportOptions) throws -> String {
        let root = ExportSupport.repositoryRoot(options)
        let kinds = FindingKind.allCases
        var rules: [[String: Any]] = []
        for kind in kinds {
            let info = FindingKindInfo.of(kind)
            rules.append([
                "id": kind.rawValue,
                "name": info.name.replacingOccurrences(of: " ", with: "").replacingOccurrences(of: "-", with: ""),
                "shortDescription": ["text": info.short],
                "fullDescription": ["text": info.help],
                "help": ["text": info.help, "markdown": "**\(info.name)**: \(info.help)"],
                "defaultConfiguration": ["level": defaultLevel(kind)],
                "properties": ["tags": ["concurrency", "tangle"], "precision": kind == .lockOrderInversion || kind == .holdAndWait ? "medium" : "high"],
            ])
        }

        var results: [[String: Any]] = []
        for (_, finding) in ExportSupport.ranked(result.report.findings) {
            results.append(resultObject(finding, ruleIndex: kinds.firstIndex(of: finding.kind) ?? 0, root: root, processes: result.report.processes))
        }

        var run: [String: Any] = [
            "tool": ["driver": [
                "name": "tangle",
                "version": options.toolVersion,
                "semanticVersion": options.toolVersion,
                "rules": rules,
            ] as [String: Any]],
            "results": results,
            "columnKind": "unicodeCodePoints",
            "originalUriBaseIds": ["%SRCROOT%": ["uri": URL(fileURLWithPath: root, isDirectory: true).absoluteString]],
            "properties": [
                "processes": result.report.processes.count,
                "events": result.report.stats.events,
                "problems": result.report.problems.map { "\($0.kind): \($0.detail)" },
            ] as [String: Any],
        ]
        if !result.report.problems.isEmpty {
            run["invocations"] = [[
                "executionSuccessful": true,
                "toolExecutionNotifications": result.report.problems.map { p -> [String: Any] in
                    ["level": "warning", "message": ["text": "\(p.kind)\(p.file.map { " in \($0)" } ?? ""): \(p.detail)"]]
                },
            ] as [String: Any]]
        }
        let doc: [String: Any] = ["$schema": schemaURI, "version": "2.1.0", "runs": [run]]
        return try JSONTree.text(doc) + "\n"
    }

    static func level(_ s: Severity) -> String {
        switch s {
        case .error: "error"
        case .warning: "warning"
        case .note: "note"
        }
    }

    static func defaultLevel(_ kind: FindingKind) -> String {
        switch kind {
        case .deadlock, .hang, .selfDeadlock: "error"
        case .lockOrderInversion, .holdAndWait, .lockHeldAtExit, .ownerDied, .lostMessages, .missingTaskDone, .lostPoolError, .forkWithThreads, .nonOwnerRelease: "warning"
        case .zombie, .unjoinedChild, .orphan, .shmLeak: "note"
        }
    }

    static func physicalLocation(_ frame: Frame, root: String) -> [String: Any] {
        var artifact: [String: Any]
        if let file = frame.file {
            if let rel = ExportSupport.relative(file, to: root) {
                artifact = ["uri": percentEncodePath(rel), "uriBaseId": "%SRCROOT%"]
            } else {
                artifact = ["uri": URL(fileURLWithPath: file).absoluteString]
            }
        } else {
            artifact = ["uri": URL(fileURLWithPath: frame.module).absoluteString]
        }
        var loc: [String: Any] = ["artifactLocation": artifact]
        if frame.file != nil, let line = frame.line, line > 0 {
            loc["region"] = ["startLine": line]
        } else {
            loc["address"] = ["absoluteAddress": Int(truncatingIfNeeded: frame.offset), "fullyQualifiedName": frame.function ?? ""]
        }
        return loc
    }

    static func percentEncodePath(_ p: String) -> String {
        p.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? p
    }

    static func location(_ frame: Frame, root: String, message: String?, id: Int? = nil) -> [String: Any] {
        var loc: [String: Any] = ["physicalLocation": physicalLocation(frame, root: root)]
        if let function = frame.function {
            loc["logicalLocations"] = [["fullyQualifiedName": function, "kind": "function"]]
        }
        if let message { loc["message"] = ["text": message] }
        if let id { loc["id"] = id }
        return loc
    }

    /// The root cause for the primary location: the blocking call made while holding something
    /// the others wait for (a wait, not a join, by a thread that holds a lock in the evidence),
    /// else any wait but a join; joins and the waits behind them are consequences (related
    /// locations). Nil: no such wait has a user frame.
    static func rootCauseFrame(_ f: Finding) -> (frame: Frame, stack: Int)? {
        func isCause(_ e: EvidenceEvent) -> Bool { e.kind.contains("wait") && !e.kind.contains("join") }
        let holders = Set(f.evidence.filter { $0.kind.hasPrefix("lock.acquired") || ($0.note ?? "").contains(" holds ") }.map { "\($0.pid):\($0.tid)" })
        for heldOnly in [true, false] {
            for e in f.evidence where isCause(e) && (!heldOnly || holders.contains("\(e.pid):\(e.tid)")) {
                if let s = e.stack, s >= 0, s < f.stacks.count, let frame = ExportSupport.userFrame(f.stacks[s]) { return (frame, s) }
            }
        }
        return nil
    }

    static func resultObject(_ f: Finding, ruleIndex: Int, root: String, processes: [ProcessSummary] = []) -> [String: Any] {
        var text = f.title
        if !f.explanation.isEmpty { text += "\n\n" + f.explanation }
        if !f.fix.isEmpty { text += "\n\nFix: " + f.fix }
        if let why = f.why, !why.isEmpty { text += "\n\nWhy it was kept: " + why }
        var r: [String: Any] = [
            "ruleId": f.kind.rawValue,
            "ruleIndex": ruleIndex,
            "level": level(f.severity),
            "message": ["text": text],
            "partialFingerprints": [fingerprintKey: f.fingerprint],
            "properties": [
                "confidence": f.confidence.rawValue,
                "severity": f.severity.rawValue,
                "participants": f.participants.map { "\($0.process)\($0.thread.map { "/" + $0 } ?? "") \($0.role): \($0.detail)" },
            ] as [String: Any],
        ]
        let primary = rootCauseFrame(f) ?? ExportSupport.primaryFrame(f)
        var locations: [[String: Any]] = []
        if let primary {
            locations.append(location(primary.frame, root: root, message: f.stacks[primary.stack].label))
        } else if let first = f.stacks.first?.frames.first {
            locations.append(location(first, root: root, message: f.stacks.first?.label))
        }
        if locations.isEmpty {
            // GitHub code scanning drops results without a location: with no stack at all, point at
            // the participant's executable (relative when it was built inside the repository).
            let exe = f.participants.lazy.compactMap { p in processes.first(where: { $0.pid == p.pid })?.executable }.first { !$0.isEmpty }
            var artifact: [String: Any]
            if let exe, exe.hasPrefix("/"), let rel = ExportSupport.relative(exe, to: root) {
                artifact = ["uri": percentEncodePath(rel), "uriBaseId": "%SRCROOT%"]
            } else if let exe, exe.hasPrefix("/") {
                artifact = ["uri": URL(fileURLWithPath: exe).absoluteString]
            } else {
                artifact = ["uri": ".", "uriBaseId": "%SRCROOT%"]
            }
            locations.append(["physicalLocation": ["artifactLocation": artifact], "message": ["text": "no stack was recorded for this finding"]])
        }
        r["locations"] = locations

        var related: [[String: Any]] = []
        var nextID = 1
        for (i, stack) in f.stacks.enumerated() where i != primary?.stack {
            guard let frame = ExportSupport.userFrame(stack) ?? stack.frames.first else { continue }
            related.append(location(frame, root: root, message: stack.label, id: nextID))
            nextID += 1
        }
        if !related.isEmpty { r["relatedLocations"] = related }

        var threadFlows: [[String: Any]] = []
        for stack in f.stacks {
            // Stacks are innermost first; a thread flow runs in execution order (outermost first).
            let frames = stack.frames.filter { $0.file != nil && $0.line != nil }.reversed()
            guard !frames.isEmpty else { continue }
            let locs: [[String: Any]] = frames.enumerated().map { (depth, frame) in
                [
                    "location": location(frame, root: root, message: frame.function),
                    "nestingLevel": depth,
                    "importance": ExportSupport.isSystemFrame(frame) ? "unimportant" : "important",
                ]
            }
            threadFlows.append(["message": ["text": stack.label], "locations": locs])
        }
        if !threadFlows.isEmpty {
            r["codeFlows"] = [["message": ["text": f.title], "threadFlows": threadFlows]]
        }
        return r
    }
}
