import Foundation
import TangleTraceFormat
import TangleTraceReader

/// What `tangle watch` asks of a trace that is still being written: has a deadlock or hang set in
/// for good? The analyzer decides from its own result (the model's waits, each thread's last
/// event); the caller only supplies the clock and which processes are gone from the machine.
public enum StallCheck {
    public enum Verdict: Sendable {
        /// Someone still progresses (or nobody has been quiet for the grace period).
        case progressing
        /// Actual deadlocks or hangs whose participants have all been idle for the grace period.
        case stuck([Finding])
        /// Every live thread has been blocked for the grace period; the findings to show (the
        /// analyzer's, or one hang naming the blocked threads when it had none).
        case everyoneBlocked([Finding])
    }

    /// The threads neither recorded as exited nor in a process in `gone`, by (pid, tid).
    public static func liveThreads(_ result: AnalysisResult, gone: Set<Int32>) -> [ThreadActivity] {
        result.threads.filter { !$0.exited && !gone.contains($0.pid) }
            .sorted { ($0.pid, $0.tid) < ($1.pid, $1.tid) }
    }

    /// The verdict at `now` (CLOCK_MONOTONIC ns) with a grace period of `graceNs`.
    public static func check(_ result: AnalysisResult, gone: Set<Int32>, now: UInt64, graceNs: UInt64) -> Verdict {
        struct Key: Hashable { var pid: Int32; var tid: Int32 }
        let live = liveThreads(result, gone: gone)
        let liveKeys = Set(live.map { Key(pid: $0.pid, tid: $0.tid) })
        var last: [Key: UInt64] = [:]
        for t in result.threads { last[Key(pid: t.pid, tid: t.tid)] = t.lastTime }
        func quiet(_ time: UInt64) -> Bool { now >= time && now - time >= graceNs }
        let idle = { (k: Key) in last[k].map(quiet) ?? false }
        guard live.contains(where: { idle(Key(pid: $0.pid, tid: $0.tid)) }) else { return .progressing }

        var blockedSince: [Key: BlockedThread] = [:]
        for b in result.blocked { blockedSince[Key(pid: b.pid, tid: b.tid)] = b }
        let blockedLong = live.map { Key(pid: $0.pid, tid: $0.tid) }.filter { k in
            guard let b = blockedSince[k] else { return false }
            return idle(k) && quiet(b.since)
        }
        let stuck = result.report.findings.filter { f in
            guard f.confidence == .actual, [.deadlock, .selfDeadlock, .hang].contains(f.kind) else { return false }
            return f.participants.allSatisfy { p in
                let k = Key(pid: p.pid, tid: p.tid)
                guard let time = last[k] else { return true }
                if p.role == .waits { return quiet(time) && blockedSince[k] != nil }
                return quiet(time) || !liveKeys.contains(k)
            }
        }
        if !stuck.isEmpty { return .stuck(stuck) }
        guard !blockedLong.isEmpty && blockedLong.count == live.count else { return .progressing }
        if !result.report.findings.isEmpty { return .everyoneBlocked(result.report.findings) }
        return .everyoneBlocked([stallFinding(blockedLong.compactMap { blockedSince[$0] }, now: now, context: result.context)])
    }

    /// A hang built when every live thread is blocked but no pass reported anything (labelled as
    /// such; its fingerprint is built from the wait kinds and object names).
    static func stallFinding(_ blocked: [BlockedThread], now: UInt64, context ctx: ExportContext) -> Finding {
        var participants: [Participant] = []
        var evidence: [EvidenceEvent] = []
        var parts: [String] = []
        for b in blocked.sorted(by: { ($0.pid, $0.tid) < ($1.pid, $1.tid) }) {
            let e = b.wait
            let obj = ctx.objectNames[e.object].map { "'\($0)'" } ?? (e.object == 0 ? "" : "#\(e.object & 0x0FFF_FFFF)")
            let age = String(format: "%.1f", Double(now - b.since) / 1e9)
            participants.append(Participant(pid: b.pid, tid: b.tid, process: ctx.processNames[b.pid] ?? "pid \(b.pid)",
                                            thread: ctx.threadNames[b.tid], role: .waits, detail: "\(e.kind.name) \(obj) for \(age) s",
                                            object: e.object, objectName: ctx.objectNames[e.object]))
            evidence.append(EvidenceEvent(time: e.time, pid: b.pid, tid: b.tid, seq: e.seq, kind: e.kind.name, object: e.object))
            parts.append("\(e.kind.name) \(ctx.objectNames[e.object] ?? "")")
        }
        let h = FNV1a.hash(parts.sorted().joined(separator: "|"))
        return Finding(
            kind: .hang, severity: .error, confidence: .actual,
            title: "every live thread (\(participants.count)) is blocked and nothing progresses",
            participants: participants, evidence: evidence, stacks: [],
            explanation: "tangle watch saw every live thread of the traced program blocked in a wait for at least the grace period, with no event recorded meanwhile. The analyzer did not explain it further; run `tangle analyze` on the directory for the wait-for graph.",
            fix: "Look at what each blocked thread waits for and which thread was supposed to wake it.",
            fingerprint: "watch-stall-" + String(h, radix: 16))
    }
}
