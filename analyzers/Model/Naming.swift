import TangleTraceFormat

/// Human names for processes, threads and objects, as used in titles, details and explanations.
extension TraceModel {
    func isRoot(_ p: TracedProcess) -> Bool {
        p.spawn == nil && (p.ppid == p.pid || processes[p.ppid]?.hasEvents != true)
    }

    func processName(_ pid: Int32) -> String {
        guard let p = processes[pid] else { return "pid \(pid)" }
        if let n = p.name, !n.isEmpty { return n }
        if isRoot(p) { return "MainProcess" }
        return p.spawnOrder > 0 ? "Process-\(p.spawnOrder)" : "Process-\(pid)"
    }

    func threadName(_ t: ThreadState) -> String? {
        t.name
    }

    /// "process 'consumer' (pid 12)" or "thread 'worker' of 'MainProcess' (pid 10, tid 11)".
    func who(_ t: ThreadState) -> String {
        let pn = processName(t.pid)
        if t.tid == t.pid || processes[t.pid]?.threads.count == 1 {
            return "\(pn) (pid \(t.pid))"
        }
        let tn = t.name.map { "thread '\($0)'" } ?? "thread \(t.tid)"
        return "\(tn) of \(pn) (pid \(t.pid), tid \(t.tid))"
    }

    func whoProcess(_ pid: Int32) -> String { "\(processName(pid)) (pid \(pid))" }

    /// A short, stable label for an object: "queue 'tasks'", "lock #3@101".
    func objectLabel(_ id: UInt64) -> String {
        guard id != 0 else { return "object" }
        let o = objects[id]
        let noun = o?.kind.noun ?? "object"
        if let name = o?.name, !name.isEmpty { return DefaultObjectName.isDefault(name) ? name : "\(noun) '\(name)'" }
        return "\(noun) #\(id & 0xFFF_FFFF)@\(id >> 28)"
    }

    /// The object's role for fingerprints: kind and name, never the id (nor a default name's line).
    func objectRole(_ id: UInt64) -> String {
        guard let o = objects[id] else { return "object" }
        return o.kind.rawValue + (o.name.map { ":" + DefaultObjectName.withoutLine($0) } ?? "")
    }

    /// What a wait event waits on, in words.
    func describeWait(_ e: TraceEvent) -> String {
        let obj = objectLabel(e.object)
        switch e.kind {
        case .lockWait:
            if let o = objects[e.object], o.kind.isSemaphore { return "acquire of \(obj)" }
            return "acquire of \(obj)"
        case .queueGetWait: return "get on \(obj) (empty)"
        case .queuePutWait: return "put on \(obj) (full)"
        case .queueJoinWait: return "join of \(obj) (waits for task_done)"
        case .pipeRecvWait: return "recv on end \(e.pipeEnd) of \(obj)"
        case .eventWait: return "wait on \(obj)"
        case .conditionWait: return "wait on \(obj)"
        case .barrierWait: return "wait on \(obj)"
        case .poolResultWait:
            if e[.task] != 0 { return "result of task \(e[.task]) of \(obj)" }
            return e[.all] != 0 ? "results of its tasks on \(obj) (map)" : "next result of \(obj)"
        case .poolJoinWait: return "join of \(obj)"
        case .threadJoinWait:
            if let i = threadByObject[e.object] { return "join of \(who(threads[i]))" }
            return "join of a thread"
        case .processJoinWait:
            return "join of \(whoProcess(e.pid(.child)))"
        default: return e.kind.name
        }
    }

    /// How a process ended, for summaries and explanations.
    func endDescription(_ p: TracedProcess) -> String { ending(p).description }

    func ending(_ p: TracedProcess) -> ProcessEnd {
        if let e = p.exit {
            if e[.signal] != 0 { return .killed(signal: signalName(e.int32(.signal))) }
            return .exited(status: e.int32(.status))
        }
        if let j = p.joinDone {
            if j[.signal] != 0 { return .killed(signal: signalName(j.int32(.signal))) }
            return .exited(status: j.int32(.status))
        }
        if let s = p.signalled {
            return s.kind == .processKill ? .killSent(by: s.pid) : .terminateSent(by: s.pid)
        }
        if p.parentEnded != nil { return .endedWithParent }
        if !p.hasEvents { return .noTraceFile }
        return .runningAtEnd
    }
}

func signalName(_ s: Int32) -> String {
    switch s {
    case 1: "SIGHUP"
    case 2: "SIGINT"
    case 3: "SIGQUIT"
    case 4: "SIGILL"
    case 5: "SIGTRAP"
    case 6: "SIGABRT"
    case 7: "SIGBUS"
    case 8: "SIGFPE"
    case 9: "SIGKILL"
    case 11: "SIGSEGV"
    case 13: "SIGPIPE"
    case 14: "SIGALRM"
    case 15: "SIGTERM"
    default: "signal \(s)"
    }
}

/// The runtime names an object the program gave no name after its creation site,
/// `queue@main.swift:42` (Sources/Tangle/Core/ObjectNames.swift): labels show it as it is, and
/// fingerprints drop its line, so that moving the code keeps them.
enum DefaultObjectName {
    static func isDefault(_ name: String) -> Bool {
        guard let at = name.firstIndex(of: "@"), let colon = name.lastIndex(of: ":"), at < colon, !name.contains(" ") else { return false }
        let line = name[name.index(after: colon)...]
        return !name[..<at].isEmpty && !line.isEmpty && line.allSatisfy(\.isNumber)
    }

    static func withoutLine(_ name: String) -> String {
        guard isDefault(name), let colon = name.lastIndex(of: ":") else { return name }
        return String(name[..<colon])
    }
}
