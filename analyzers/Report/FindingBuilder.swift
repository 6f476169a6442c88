import Foundation
import TangleTraceFormat
import TangleTraceReader

/// FNV-1a, 64 bits: a small, stable, dependency-free hash for fingerprints.
/// The analyzer's only copy (the runtime's shared-memory ids use their own, in Sources/Tangle).
enum FNV1a {
    static let offsetBasis: UInt64 = 0xcbf2_9ce4_8422_2325

    /// Folds one value into `h` (a byte of a string, or a whole 64-bit value).
    @inline(__always) static func mix(_ h: inout UInt64, _ v: UInt64) {
        h ^= v
        h = h &* 0x100_0000_01b3
    }

    static func hash(_ s: String) -> UInt64 {
        var h = offsetBasis
        for b in s.utf8 { mix(&h, UInt64(b)) }
        return h
    }

    static func hex(_ s: String) -> String {
        let v = hash(s)
        let text = String(v, radix: 16)
        return String(repeating: "0", count: 16 - text.count) + text
    }
}

/// Turns the passes' raw findings into report `Finding`s: names, symbolized stacks, fingerprints.
final class FindingBuilder {
    let model: TraceModel
    let symbolizer: Symbolizer
    private var cache: [UInt64: SymbolizedStack] = [:]

    init(model: TraceModel, symbolizer: Symbolizer) {
        self.model = model
        self.symbolizer = symbolizer
    }

    /// The symbolized stack of an event, or nil when it has none.
    func stack(of e: TraceEvent) -> SymbolizedStack? {
        guard e.stack != 0 else { return nil }
        let key = (UInt64(UInt32(bitPattern: e.pid)) << 32) | UInt64(e.stack)
        if let s = cache[key] { return s }
        if let text = model.textStacks[e.pid]?[e.stack], !text.isEmpty {
            let s = SymbolizedStack(frames: text.map(Self.frame(of:)))
            cache[key] = s
            return s
        }
        guard let pcs = model.stacks[e.pid]?[e.stack], !pcs.isEmpty else { return nil }
        let s = symbolizer.symbolize(pid: e.pid, pcs: pcs)
        cache[key] = s
        return s
    }

    /// A text frame (the Python adapter's) as a report frame: module `python`, or `python-stdlib`
    /// (a system module, not the application's) for multiprocessing's and threading's own code.
    static func frame(of t: TextFrame) -> Frame {
        let stdlib = t.file.contains("/multiprocessing/") || t.file.hasSuffix("/threading.py")
            || t.file.hasSuffix("/runpy.py") || t.file.contains("/concurrent/futures/")
        return Frame(function: t.function, file: t.file, line: t.line, module: stdlib ? "python-stdlib" : "python", offset: 0)
    }

    /// Frames worth showing: from the first application frame on (the recorder's and Tangle's own
    /// frames above it are dropped); the whole stack when no frame is the application's.
    func shownFrames(_ s: SymbolizedStack) -> [Frame] {
        let user = FrameClassifier.userFrames(s.frames)
        return user.isEmpty ? s.frames : Array(user)
    }

    /// The stable signature of a stack: up to three application frames' function names and file
    /// basenames (no lines, no addresses); unsymbolized frames contribute their module name only.
    func signature(of e: TraceEvent?) -> String {
        guard let e, let s = stack(of: e) else { return "-" }
        let user = FrameClassifier.userFrames(s.frames)
        var parts: [String] = []
        for f in user.lazy.filter({ $0.function.map { FrameClassifier.stableName($0) != nil } ?? true }).prefix(3) {
            if let fn = f.function.flatMap(FrameClassifier.stableName) {
                let file = f.file.map { ($0 as NSString).lastPathComponent } ?? ""
                parts.append(fn + (file.isEmpty ? "" : "@" + file))
            } else {
                parts.append("[" + f.module + "]")
            }
        }
        if parts.isEmpty, let first = s.frames.lazy.compactMap({ $0.function.flatMap(FrameClassifier.stableName) }).first {
            parts.append(first)
        }
        if parts.isEmpty, let m = s.frames.first?.module { parts.append("[" + m + "]") }
        return parts.joined(separator: ";")
    }

    func fingerprint(_ raw: RawFinding) -> String {
        var sigs: Set<String> = []
        for p in raw.participants where p.core {
            var sig = p.role.rawValue + "|" + model.objectRole(p.object) + "|" + signature(of: p.stackEvent)
            if p.outerEvent != nil { sig += "<" + signature(of: p.outerEvent) }
            sigs.insert(sig)
        }
        let text = ([raw.kind.rawValue] + raw.fingerprintExtra.sorted() + sigs.sorted()).joined(separator: "\n")
        return FNV1a.hex(text)
    }

    func build(_ raw: RawFinding) -> Finding {
        var stacks: [Stack] = []
        var stackIndex: [String: Int] = [:]
        func addStack(_ e: TraceEvent, label: String) -> Int? {
            let key = "\(e.pid):\(e.stack)"
            if let i = stackIndex[key] { return i }
            guard let s = stack(of: e) else { return nil }
            let i = stacks.count
            let thread = model.thread(pid: e.pid, tid: e.tid)
            let whoText = thread.map { model.who($0) } ?? "pid \(e.pid) tid \(e.tid)"
            stacks.append(Stack(label: "\(whoText): \(label)", pid: e.pid, tid: e.tid, frames: shownFrames(s), warning: s.warning))
            stackIndex[key] = i
            return i
        }
        var evidence: [EvidenceEvent] = []
        for (e, note) in raw.evidence {
            let idx = addStack(e, label: note ?? e.kind.name)
            evidence.append(EvidenceEvent(time: e.time, pid: e.pid, tid: e.tid, seq: e.seq, kind: e.kind.name,
                                          object: e.object, stack: idx, note: note))
        }
        var participants: [Participant] = []
        for p in raw.participants {
            if let e = p.outerEvent { _ = addStack(e, label: "takes \(model.objectLabel(e.object))") }
            if let e = p.stackEvent { _ = addStack(e, label: p.detail) }
            let t = model.thread(pid: p.pid, tid: p.tid)
            participants.append(Participant(
                pid: p.pid, tid: p.tid, process: model.processName(p.pid), thread: t?.name,
                role: p.role, detail: p.detail, object: p.object,
                objectName: p.object == 0 ? nil : model.objects[p.object]?.name))
        }
        return Finding(kind: raw.kind, severity: raw.severity, confidence: raw.confidence, title: raw.title,
                       participants: participants, evidence: evidence, stacks: stacks,
                       explanation: raw.explanation, fix: raw.fix, why: raw.why, fingerprint: fingerprint(raw))
    }
}
