import TangleTraceFormat

/// The end-of-trace rules: zombies, unjoined children, orphans, lost messages, lost pool errors,
/// shared memory leaks, locks held by processes that were killed, and missing trace files.
///
/// Every rule only fires when the trace shows the situation is final: a rule about "never got" or
/// "never unlinked" needs every process that could still do it to have ended; a trace cut while they
/// ran proves nothing.
struct LifecyclePass {
    let model: TraceModel
    /// Where a lock held by a process the program killed is reported (with its next acquirer).
    let misuse: MisuseRules

    func run() -> [RawFinding] {
        var out: [RawFinding] = []
        out += processRules()
        out += lostMessages()
        out += lostPoolErrors()
        out += missingTaskDones()
        out += shmLeaks()
        killedHolders()
        missingProcesses()
        return out
    }

    private func isPoolWorker(_ pid: Int32) -> Bool {
        model.objects.values.contains { $0.kind == .pool && $0.workers.contains(pid) && $0.poolClosed != nil }
    }

    /// When the child stopped running (exit, kill), if known.
    private func endedAt(_ c: TracedProcess) -> UInt64? {
        if let e = c.exit { return e.time }
        if let s = c.signalled { return s.time }
        if let j = c.joinDone { return max(c.lastTime, min(j.time, c.lastTime == 0 ? j.time : j.time)) }
        return nil
    }

    private func processRules() -> [RawFinding] {
        var out: [RawFinding] = []
        for (pid, c) in model.processes.sorted(by: { $0.key < $1.key }) {
            guard c.spawn != nil, let parent = model.processes[c.ppid], parent.hasEvents else { continue }
            // A pool's worker lives and dies with the pool's process; joining it is the pool's job.
            if c.diesWithParent { continue }
            guard let spawn = c.spawn else { continue }
            let parentAlive = parent.exit == nil && parent.joinDone == nil && parent.signalled == nil
            let parentEnd = parent.exit?.time ?? parent.signalled?.time ?? parent.joinDone?.time ?? model.endTime
            let worker = isPoolWorker(pid)
            let ended = endedAt(c)
            // A parent killed by a signal did not choose to leave its children: no orphan or
            // unjoined child then (the signal is the story, e.g. a timeout runner).
            let parentClean = parent.exit.map { $0[.signal] == 0 } ?? false
            if let pexit = parent.exit, parentClean, c.joinDone == nil, c.hasEvents, ended.map({ $0 > pexit.time }) ?? true {
                // Orphan: the parent exited while the child still ran.
                out.append(orphan(c, parent, spawn: spawn))
            } else if let ended {
                // Zombie: exited, parent alive, not reaped for longer than the threshold.
                let reaped = c.joinDone?.time
                let until = min(reaped ?? parentEnd, parentEnd)
                let unreaped = until > ended ? until - ended : 0
                if unreaped > model.options.zombieThresholdNs && !worker {
                    out.append(zombie(c, parent, spawn: spawn, ended: ended, unreaped: unreaped, reaped: reaped))
                } else if reaped == nil && !parentAlive && parentClean && !worker && c.exit != nil && ended <= parentEnd {
                    out.append(unjoined(c, parent, spawn: spawn))
                }
            }
        }
        return out
    }

    private func zombie(_ c: TracedProcess, _ parent: TracedProcess, spawn: TraceEvent, ended: UInt64, unreaped: UInt64, reaped: UInt64?) -> RawFinding {
        let secs = Double(unreaped) / 1e9
        let dur = secs >= 10 ? "\(Int(secs)) s" : String(Int(secs * 1000)) + " ms"
        var evidence: [(TraceEvent, String?)] = [(spawn, "\(model.whoProcess(parent.pid)) starts \(model.whoProcess(c.pid))")]
        if let e = c.exit ?? c.signalled { evidence.append((e, "\(model.whoProcess(c.pid)) \(model.endDescription(c))")) }
        if let j = c.joinDone { evidence.append((j, "reaped \(dur) later")) }
        var f = RawFinding(
            kind: .zombie, severity: .warning,
            title: "\(model.whoProcess(c.pid)) stayed a zombie for \(dur): \(model.processName(parent.pid)) did not reap it",
            participants: [
                RawParticipant(pid: c.pid, tid: c.pid, role: .child, detail: "\(model.endDescription(c)), not reaped for \(dur)", object: c.object, stackEvent: nil),
                RawParticipant(pid: parent.pid, tid: spawn.tid, role: .parent, detail: reaped == nil ? "never joined it" : "joined it \(dur) after it exited", object: c.object, stackEvent: spawn),
            ],
            evidence: evidence,
            explanation: "\(model.whoProcess(c.pid)) ended, but its parent \(model.whoProcess(parent.pid)) kept running for \(dur) without joining it. Until the parent waits for it the child stays a zombie: it holds a pid and a process-table slot, and its exit status (a crash, an error) goes unnoticed.",
            fix: "Join each child as soon as it is done (or poll `isAlive`/`exitCode` regularly); when children finish in any order, join them as they exit instead of in start order.")
        f.fingerprintExtra = ["zombie", processRoleName(c)]
        return f
    }

    private func unjoined(_ c: TracedProcess, _ parent: TracedProcess, spawn: TraceEvent) -> RawFinding {
        var evidence: [(TraceEvent, String?)] = [(spawn, "\(model.whoProcess(parent.pid)) starts \(model.whoProcess(c.pid))")]
        if let e = c.exit { evidence.append((e, "\(model.whoProcess(c.pid)) \(model.endDescription(c))")) }
        if let e = parent.exit { evidence.append((e, "\(model.whoProcess(parent.pid)) exits without joining it")) }
        var f = RawFinding(
            kind: .unjoinedChild, severity: .warning,
            title: "\(model.processName(parent.pid)) never joined \(model.whoProcess(c.pid))",
            participants: [
                RawParticipant(pid: parent.pid, tid: spawn.tid, role: .parent, detail: "started the child and exited without joining it", object: c.object, stackEvent: spawn),
                RawParticipant(pid: c.pid, tid: c.pid, role: .child, detail: model.endDescription(c), object: c.object),
            ],
            evidence: evidence,
            explanation: "\(model.whoProcess(parent.pid)) started \(model.whoProcess(c.pid)) and exited without ever joining it. Nobody checked how the child ended (\(model.endDescription(c))): a failure there would go unnoticed, and until the parent exits the child is a zombie.",
            fix: "Join every process you start (keep the handles and call `join()`, then check `exitCode`), or use a Pool / a context that joins on exit.")
        f.fingerprintExtra = ["unjoined", processRoleName(c)]
        return f
    }

    private func orphan(_ c: TracedProcess, _ parent: TracedProcess, spawn: TraceEvent) -> RawFinding {
        var evidence: [(TraceEvent, String?)] = [(spawn, "\(model.whoProcess(parent.pid)) starts \(model.whoProcess(c.pid))")]
        if let e = parent.exit { evidence.append((e, "\(model.whoProcess(parent.pid)) exits while the child runs")) }
        var f = RawFinding(
            kind: .orphan, severity: .warning,
            title: "\(model.whoProcess(c.pid)) outlived its parent \(model.processName(parent.pid))",
            participants: [
                RawParticipant(pid: c.pid, tid: c.pid, role: .child, detail: "still running when its parent exited (\(model.endDescription(c)))", object: c.object),
                RawParticipant(pid: parent.pid, tid: spawn.tid, role: .parent, detail: "exited without joining or stopping it", object: c.object, stackEvent: spawn),
            ],
            evidence: evidence,
            explanation: "\(model.whoProcess(parent.pid)) exited while its child \(model.whoProcess(c.pid)) was still running. The child is re-parented to init: nobody will join it, read its results or stop it, and it may hold locks, files or shared memory indefinitely.",
            fix: "Join (or terminate and join) every child before the parent exits; mark helper processes as daemons if they should be stopped automatically.")
        f.fingerprintExtra = ["orphan", processRoleName(c)]
        return f
    }

    /// A stable role name for a process: its given name without trailing digits ("consumer-2" → "consumer").
    func processRoleName(_ p: TracedProcess) -> String {
        let n = p.name ?? (p.spawn?.text ?? "process")
        var s = Substring(n)
        while let last = s.last, last.isNumber || last == "-" || last == "_" { s = s.dropLast() }
        return s.isEmpty ? "process" : String(s)
    }

    /// Every process that could still take messages from / act on the object has ended.
    private func allUsersEnded(_ o: ObjectState, key: UInt64, extra: PidSet) -> Bool {
        for (pid, p) in model.processes {
            let holds = p.handles.contains(key) || extra.contains(pid) || o.creatorPid == pid
            if holds && !p.isDead { return false }
        }
        return true
    }

    private func lostMessages() -> [RawFinding] {
        var byObject: [UInt64: [PendingMessage]] = [:]
        for m in model.messages.values { byObject[m.object, default: []].append(m) }
        var out: [RawFinding] = []
        for (id, list) in byObject.sorted(by: { $0.key < $1.key }) {
            guard let o = model.objects[id] else { continue }
            let ms = list.sorted { $0.event.time < $1.event.time }
            let users = o.putters.union(o.getters).union(o.senders[0]).union(o.senders[1])
            let keys: [UInt64] = o.kind == .pipe ? ms.map { TraceModel.handleKey(id, end: $0.end) } : [id]
            guard keys.allSatisfy({ allUsersEnded(o, key: $0, extra: users) }) else { continue }
            // Users killed by a signal never had the chance to take them: the kill (or the hang
            // that led to it) is the finding, not the leftovers.
            let killed = model.processes.values.contains { p in
                (p.handles.contains(id) || users.contains(p.pid) || o.creatorPid == p.pid) && diedBySignal(p)
            }
            if killed { continue }
            let obj = model.objectLabel(id)
            var participants: [RawParticipant] = []
            var seen: Set<Int32> = []
            for m in ms where seen.insert(m.event.pid).inserted {
                let n = ms.filter { $0.event.pid == m.event.pid }.count
                participants.append(RawParticipant(pid: m.event.pid, tid: m.event.tid, role: .put,
                                                   detail: "put \(n) message(s) on \(obj) that nobody got", object: id, stackEvent: m.event))
            }
            let getters = (o.kind == .pipe ? [] : o.getters.sorted())
            for g in getters {
                participants.append(RawParticipant(pid: g, tid: g, role: .consumer,
                                                   detail: "got \(o.gets(of: g)) message(s), then \(model.processes[g].map { model.endDescription($0) } ?? "ended")",
                                                   object: id, core: false))
            }
            var evidence: [(TraceEvent, String?)] = ms.prefix(5).map { ($0.event, "put, never got") }
            for g in getters { if let e = model.processes[g]?.exit { evidence.append((e, "\(model.whoProcess(g)) exits")) } }
            let consumerWords = getters.isEmpty
                ? "No process ever got from it."
                : "The consumers (\(getters.map { model.whoProcess($0) }.joined(separator: ", "))) stopped before taking them."
            var f = RawFinding(
                kind: .lostMessages, severity: .warning,
                title: "\(ms.count) message(s) put on \(obj) were never got",
                participants: participants, evidence: dedupeEvidence(evidence),
                explanation: "\(ms.count) message(s) were put on \(obj) and were still there when every process using it had ended. \(consumerWords) Whatever they carried (work items, results, errors) was silently dropped.",
                fix: "Make consumers run until they have taken everything (stop on one sentinel per consumer, sent after the last item), and have the parent drain result queues before joining and exiting.")
            f.fingerprintExtra = ["lost", model.objectRole(id)] + Set(participants.filter { $0.role == .put }.map { model.processes[$0.pid].map { processRoleName($0) } ?? "" }).sorted()
            out.append(f)
        }
        return out
    }

    /// A JoinableQueue whose items were got but not all marked done, once every user ended cleanly.
    /// (When someone is blocked in `join()` on it, the wait-for pass reports it instead.)
    private func missingTaskDones() -> [RawFinding] {
        var out: [RawFinding] = []
        for (id, o) in model.objects.sorted(by: { $0.key < $1.key }) where o.kind == .joinableQueue && o.gets > o.taskDones {
            let users = o.putters.union(o.getters)
            guard allUsersEnded(o, key: id, extra: users) else { continue }
            if model.processes.values.contains(where: { (users.contains($0.pid) || o.creatorPid == $0.pid) && diedBySignal($0) }) { continue }
            let obj = model.objectLabel(id)
            let culprits = o.users.filter { $0.gets > $0.taskDones }
            var participants: [RawParticipant] = []
            var evidence: [(TraceEvent, String?)] = []
            for u in culprits {
                participants.append(RawParticipant(pid: u.pid, tid: u.lastGet?.tid ?? u.pid, role: .forgotTaskDone,
                                                   detail: "got \(u.gets) item(s), marked \(u.taskDones) done (\(u.gets - u.taskDones) missing)",
                                                   object: id, stackEvent: u.lastGet))
                if let g = u.lastGet { evidence.append((g, "\(model.whoProcess(u.pid)) gets an item it never marks done")) }
                if let e = model.processes[u.pid]?.exit { evidence.append((e, "\(model.whoProcess(u.pid)) exits")) }
            }
            var f = RawFinding(
                kind: .missingTaskDone, severity: .warning,
                title: "\(o.gets - o.taskDones) item(s) got from \(obj) were never marked done",
                participants: participants, evidence: dedupeEvidence(evidence),
                explanation: "\(obj) is a JoinableQueue: every put adds an unfinished task and every task_done() removes one. \(o.gets) item(s) were got but only \(o.taskDones) task_done() call(s) were made before every process using it ended, so the count never went back to zero: any join() on it would have waited forever.",
                fix: "Call task_done() once for every get() (in a `defer` right after the get, so errors and early exits also mark the item done).")
            f.fingerprintExtra = ["missing-task-done", model.objectRole(id)]
            f.subjects = [id]
            out.append(f)
        }
        return out
    }

    private func lostPoolErrors() -> [RawFinding] {
        var out: [RawFinding] = []
        for (id, o) in model.objects.sorted(by: { $0.key < $1.key }) where o.kind == .pool {
            let lost = o.tasks.filter { $0.value.done?.result == .error }.sorted { $0.key < $1.key }
            guard !lost.isEmpty else { continue }
            // The owner must be done with the pool: exited, or closed/terminated it and exited.
            let owner = model.processes[o.creatorPid]
            guard owner?.isDead ?? true else { continue }
            let obj = model.objectLabel(id)
            var participants: [RawParticipant] = []
            var evidence: [(TraceEvent, String?)] = []
            for (task, t) in lost.prefix(5) {
                if let s = t.submit { evidence.append((s, "task \(task) submitted")) }
                if let d = t.done {
                    evidence.append((d, "task \(task) fails in \(model.whoProcess(d.pid))"))
                    participants.append(RawParticipant(pid: d.pid, tid: d.tid, role: .failed,
                                                       detail: "task \(task) threw", object: id, stackEvent: d))
                }
            }
            if let owner, let s = lost.first?.value.submit {
                participants.append(RawParticipant(pid: owner.pid, tid: s.tid, role: .submitter,
                                                   detail: "submitted the task and never retrieved its result", object: id, stackEvent: s))
            }
            if let c = o.poolClosed { evidence.append((c, "the pool is closed with the error unread")) }
            var f = RawFinding(
                kind: .lostPoolError, severity: .error,
                title: "\(lost.count) failed task(s) of \(obj) were never retrieved: the error was lost",
                participants: participants, evidence: dedupeEvidence(evidence),
                explanation: "\(lost.count) task(s) submitted to \(obj) threw in a worker, but the submitter never retrieved their results (the result object was dropped), so the error was never raised anywhere. The program went on as if the work had succeeded.",
                fix: "Keep every AsyncResult and call `get()` on it (or pass an error callback); with fire-and-forget submissions, collect the results before closing the pool.")
            f.fingerprintExtra = ["pool-error", model.objectRole(id)]
            out.append(f)
        }
        return out
    }

    private func shmLeaks() -> [RawFinding] {
        var out: [RawFinding] = []
        for (id, o) in model.objects.sorted(by: { $0.key < $1.key }) where o.kind == .sharedMemory {
            guard o.created != nil, o.unlinked == nil else { continue }
            guard allUsersEnded(o, key: id, extra: o.shmHolders) else { continue }
            let obj = model.objectLabel(id)
            var evidence: [(TraceEvent, String?)] = []
            if let c = o.created { evidence.append((c, "\(model.whoProcess(c.pid)) creates \(obj)")) }
            if let p = model.processes[o.creatorPid], let e = p.exit { evidence.append((e, "\(model.whoProcess(p.pid)) exits without unlinking it")) }
            var f = RawFinding(
                kind: .shmLeak, severity: .warning,
                title: "\(obj) was never unlinked",
                participants: [RawParticipant(pid: o.creatorPid, tid: o.created?.tid ?? o.creatorPid, role: .creator,
                                              detail: "created \(obj) and nobody unlinked it", object: id, stackEvent: o.created)],
                evidence: evidence,
                explanation: "\(obj) was created and every process using it has ended, but nobody called unlink(). The segment stays in /dev/shm, using memory until reboot or until someone removes it by name.",
                fix: "Call unlink() exactly once (usually in the creator, after the last user is done), in a `defer` so errors do not skip it.")
            f.fingerprintExtra = ["shm", o.kind.rawValue]
            out.append(f)
        }
        return out
    }

    func diedBySignal(_ p: TracedProcess) -> Bool {
        if let e = p.exit { return e[.signal] != 0 }
        if let j = p.joinDone { return j[.signal] != 0 }
        return p.signalled != nil
    }

    /// Processes that the program itself killed (a traced kill/terminate) while they held a lock.
    private func killedHolders() {
        for (_, p) in model.processes.sorted(by: { $0.key < $1.key }) where p.exit == nil && p.isDead {
            guard p.signalled != nil else { continue }
            for i in p.threads {
                let t = model.threads[i]
                for h in t.held {
                    guard let o = model.objects[h.lock], o.kind.isMutex else { continue }
                    misuse.diedHolding(t, h, end: p.signalled ?? p.joinDone)
                }
            }
        }
    }

    private func missingProcesses() {
        for (pid, p) in model.processes.sorted(by: { $0.key < $1.key }) where p.spawn != nil && !p.hasEvents && p.header == nil {
            let parent = model.whoProcess(p.ppid)
            model.noteProblem(TraceProblemNote(
                kind: .missingProcess,
                detail: "pid \(pid) (\(model.processName(pid)), started by \(parent)) has no trace file: its events are missing, so it counts as able to do anything its handles allow (no hang is reported that it could have ended)"))
        }
    }
}
