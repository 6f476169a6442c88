import TangleTraceFormat

/// What each event does to the model's state (as Go's `order.go` gives each kind one small method):
/// a dispatch to one method per family of kinds. Waits are `trackWaits`'s (the event table).
extension TraceModel {
    func apply(_ e: TraceEvent, _ p: TracedProcess, _ t: ThreadState) {
        switch e.kind {
        case .processStart, .processExit, .threadStart, .threadSpawn, .threadExit, .threadJoinWait,
             .threadJoinDone, .processSpawn, .processFork, .processJoinWait, .processJoinDone,
             .processTerminate, .processKill:
            applyProcess(e, p, t)
        case .lockNew, .lockWait, .lockAcquired, .lockReleased, .lockTimeout, .lockOwnerDied:
            applyLock(e, p, t)
        case .queueNew, .queuePutWait, .queueGetWait, .queueJoinWait, .queuePut, .queueGet,
             .queueTimeout, .queueClose, .queueTaskDone, .queueJoinDone:
            applyQueue(e, p, t)
        case .pipeNew, .pipeSend, .pipeRecvWait, .pipeRecv, .pipeClose:
            applyPipe(e, p, t)
        case .eventNew, .eventSet, .eventClear, .eventWait, .eventWake, .conditionNew, .conditionWait,
             .conditionWake, .conditionNotify, .barrierNew, .barrierWait, .barrierPass:
            applySignal(e, p, t)
        case .poolNew, .poolSubmit, .poolTaskWait, .poolTaskSend, .poolTaskStart, .poolTaskDone, .poolResultWait,
             .poolResult, .poolClose, .poolTerminate, .poolJoinWait, .poolJoinDone:
            applyPool(e, p, t)
        case .shmCreate, .shmAttach, .shmUnlink, .shmClose:
            applyResource(e, p, t)
        case .handleAttach, .handleClose, .dropped:
            applyHandle(e, p, t)
        }
    }

    /// Processes and threads: starts, exits, spawns, forks, joins, signals.
    private func applyProcess(_ e: TraceEvent, _ p: TracedProcess, _ t: ThreadState) {
        switch e.kind {
        case .processStart:
            if e.object != 0 { p.object = e.object }
            if let text = e.text, !text.isEmpty { p.name = text }
            if e[.ppid] != 0 && p.ppid == 0 { p.ppid = e.pid(.ppid) }
            p.start = e
            if e[.forked] == 1 {
                p.forked = true
                if let parent = processes[p.ppid] { p.handles.formUnion(parent.handles) }
            }
        case .processExit:
            p.exit = e
            var c = VectorClock()
            for i in p.threads { c.join(threads[i].stamp()) }
            p.exitClock = c
            t.tick()
            retire(p)
            for pid in p.children {
                guard let child = processes[pid], child.diesWithParent, !child.isDead else { continue }
                child.parentEnded = e
                retire(child)
            }
        case .threadStart:
            if e[.internal] != 0 { makeInternal(t) }
            if e.object != 0, unstartedThreads.removeValue(forKey: e.object) != nil { unstarted -= 1 }
            if e.object != 0 {
                t.object = e.object
                threadByObject[e.object] = t.index
            }
            if let text = e.text, !text.isEmpty { t.name = text }
            if e.object != 0, let c = threadSpawnClocks.removeValue(forKey: e.object) {
                t.receive(c)
            } else if e[.parent] != 0, let parent = thread(pid: e.pid, tid: e.int32(.parent)) {
                t.receive(parent.stamp())
                parent.tick()
            }
        case .threadSpawn:
            // Timed before the thread existed, so it comes before the thread's own events.
            if e.object != 0 {
                threadSpawnClocks[e.object] = t.stamp()
                if threadByObject[e.object] == nil && unstartedThreads.updateValue(e.pid, forKey: e.object) == nil { unstarted += 1 }
            }
            t.tick()
        case .threadExit:
            t.tick()
            retireThread(t)
        case .threadJoinWait:
            break
        case .threadJoinDone:
            if e.result == .ok, let i = threadByObject[e.object] { t.receive(threads[i].stamp()) }
        case .processSpawn:
            let childPid = e.pid(.child)
            let child = process(childPid)
            child.ppid = e.pid
            child.spawn = e
            child.spawnClock = t.stamp()
            child.object = e.object
            child.forked = e[.forked] == 1
            child.diesWithParent = t.isInternal
            if child.name == nil, let text = e.text, !text.isEmpty { child.name = text }
            if !p.children.contains(childPid) {
                p.children.append(childPid)
                child.spawnOrder = p.children.count
            }
            if e.object != 0 { object(e.object, kind: .process).creatorPid = e.pid }
            if !child.hasEvents && !child.isDead && unstartedPids.insert(childPid).inserted { unstarted += 1 }
            if child.forked && !child.hasEvents { child.handles = p.handles }
            t.tick()
        case .processFork:
            let childPid = e.pid(.child)
            let child = process(childPid)
            if child.ppid == 0 { child.ppid = e.pid }
            child.forked = true
            if !p.children.contains(childPid) {
                p.children.append(childPid)
                child.spawnOrder = p.children.count
            }
            if child.spawnClock == nil { child.spawnClock = t.stamp() }
            if !child.hasEvents { child.handles = p.handles }
            t.tick()
        case .processJoinWait:
            break
        case .processJoinDone:
            let childPid = e.pid(.child)
            if e.result == .ok, let child = processes[childPid] {
                child.joinDone = e
                child.joinedBy = e.pid
                t.receive(processClock(child))
                retire(child)
            }
        case .processTerminate, .processKill:
            let childPid = e.pid(.child)
            if let child = processes[childPid], child.exit == nil, child.joinDone == nil {
                if child.signalled == nil { child.signalled = e }
                retire(child)
            }
        default:
            break
        }
    }

    /// Locks and semaphores.
    private func applyLock(_ e: TraceEvent, _ p: TracedProcess, _ t: ThreadState) {
        switch e.kind {
        case .lockNew:
            let kind: ObjectKind
            switch LockType(rawValue: e[.type]) {
            case .rlock: kind = .rlock
            case .semaphore: kind = .semaphore
            case .boundedSemaphore: kind = .boundedSemaphore
            default: kind = .lock
            }
            let o = created(e, kind: kind)
            o.semValue = kind.isSemaphore ? Int64(clamping: e[.value]) : 1
            addHandle(e.pid, e.object)
        case .lockWait:
            withObject(e.object, kind: .lock) { o in lockWait(e, t, o) }
        case .lockAcquired:
            withObject(e.object, kind: .lock) { o in lockAcquired(e, t, o) }
        case .lockReleased:
            withObject(e.object, kind: .lock) { o in lockReleased(e, t, o) }
        case .lockTimeout:
            break
        case .lockOwnerDied:
            let o = object(e.object, kind: .lock)
            if o.owner >= 0, o.owner != t.index {
                let old = threads[o.owner]
                if let hi = old.heldIndex(e.object) { old.held.remove(at: hi) }
                o.owner = -1
            }
        default:
            break
        }
    }

    /// Queues and JoinableQueues.
    private func applyQueue(_ e: TraceEvent, _ p: TracedProcess, _ t: ThreadState) {
        switch e.kind {
        case .queueNew:
            let o = created(e, kind: e[.joinable] == 1 ? .joinableQueue : .queue)
            o.maxsize = e[.max]
            addHandle(e.pid, e.object)
        case .queuePutWait, .queueGetWait, .queueJoinWait:
            _ = object(e.object, kind: .queue)
        case .queuePut:
            withObject(e.object, kind: .queue) { o in queuePut(e, t, o) }
        case .queueGet:
            withObject(e.object, kind: .queue) { o in queueGet(e, t, o) }
        case .queueTimeout:
            break
        case .queueClose:
            p.closedQueues.insert(e.object)
        case .queueTaskDone:
            let o = object(e.object, kind: .joinableQueue)
            o.taskDones += 1
            o.users[o.user(e.pid)].taskDones += 1
            o.taskDoneClock.join(t.stamp())
            t.tick()
        case .queueJoinDone:
            if e.result == .ok { t.receive(object(e.object).taskDoneClock) }
        default:
            break
        }
    }

    /// Pipes and their ends.
    private func applyPipe(_ e: TraceEvent, _ p: TracedProcess, _ t: ThreadState) {
        switch e.kind {
        case .pipeNew:
            let o = created(e, kind: .pipe)
            o.duplex = e[.duplex] == 1
            addHandle(e.pid, e.object, end: 0)
            addHandle(e.pid, e.object, end: 1)
        case .pipeSend where e.result == .eof:
            // The send before it with this msg did not happen (broken pipe).
            if let m = messages.remove(e[.msg]) {
                let o = object(e.object, kind: .pipe)
                o.pipePending[m.end] = max(0, o.pipePending[m.end] - 1)
            }
        case .pipeSend:
            let o = object(e.object, kind: .pipe)
            let end = e.pipeEnd
            o.senders[end].insert(e.pid)
            if !earlyReceives.isEmpty && earlyReceives.remove(e[.msg]) != nil {
                unmatchedReceives -= 1
            } else {
                o.pipePending[1 - end] += 1
                messages.insert(e[.msg], PendingMessage(event: e, clock: t.stamp(), object: e.object, end: 1 - end))
            }
            t.tick()
        case .pipeRecvWait:
            _ = object(e.object, kind: .pipe)
        case .pipeRecv:
            let o = object(e.object, kind: .pipe)
            if e.result != .eof {
                if let m = messages.remove(e[.msg]) {
                    t.receive(m.clock)
                    o.pipePending[m.end] = max(0, o.pipePending[m.end] - 1)
                } else {
                    unmatchedReceives += 1
                    earlyReceives.insert(e[.msg])
                }
            }
        case .pipeClose:
            let key = Self.handleKey(e.object, end: e.pipeEnd)
            p.handles.remove(key)
            p.closedHandles.insert(key)
        default:
            break
        }
    }

    /// Events, conditions, barriers.
    private func applySignal(_ e: TraceEvent, _ p: TracedProcess, _ t: ThreadState) {
        switch e.kind {
        case .eventNew:
            _ = created(e, kind: .event)
            addHandle(e.pid, e.object)
        case .eventSet:
            let o = object(e.object, kind: .event)
            o.isSet = true
            o.setClock.join(t.stamp())
            o.setters.insert(e.pid)
            t.tick()
        case .eventClear:
            object(e.object, kind: .event).isSet = false
        case .eventWait:
            break
        case .eventWake:
            if e.result == .ok { t.receive(object(e.object, kind: .event).setClock) }
        case .conditionNew:
            let o = created(e, kind: .condition)
            o.condLock = e[.lock]
            addHandle(e.pid, e.object)
        case .conditionWait:
            let o = object(e.object, kind: .condition)
            if o.condLock != 0, let hi = t.heldIndex(o.condLock) {
                t.condReleased.append(t.held.remove(at: hi))
                if let l = objects[o.condLock], l.owner == t.index {
                    l.owner = -1
                    l.ownerEvent = nil
                }
            }
        case .conditionWake:
            let o = object(e.object, kind: .condition)
            t.receive(o.setClock)
            if o.condLock != 0, let ri = t.condReleased.firstIndex(where: { $0.lock == o.condLock }) {
                var h = t.condReleased.remove(at: ri)
                h.event = e
                if t.heldIndex(o.condLock) == nil { t.held.append(h) }
                if let l = objects[o.condLock] {
                    l.owner = t.index
                    l.depth = h.depth
                    l.ownerEvent = e
                }
            }
        case .conditionNotify:
            let o = object(e.object, kind: .condition)
            o.notifies += 1
            let n = Int(clamping: e[.n])
            o.wakeCredits = min(o.condWaiting, o.wakeCredits + (n == 0 ? o.condWaiting : n))
            o.setClock.join(t.stamp())
            o.notifiers.insert(e.pid)
            t.tick()
        case .barrierNew:
            let o = created(e, kind: .barrier)
            o.parties = e[.parties]
            addHandle(e.pid, e.object)
        case .barrierWait:
            let o = object(e.object, kind: .barrier)
            if e[.index] == 0 || (o.parties > 0 && o.arrived >= o.parties) { o.arrived = 0 }
            o.arrived += 1
            o.barrierParties.insert(t.index)
            t.wait?.generation = o.barrierGeneration
            o.barrierClock.join(t.stamp())
            t.tick()
        case .barrierPass:
            let o = object(e.object, kind: .barrier)
            if e.result == .ok && o.parties > 0 && e[.index] + 1 == o.parties {
                // The last party arrives and passes at once (it records no wait): the generation
                // is complete, and the parties waiting learn what it did before.
                o.barrierClock.join(t.stamp())
                o.barrierParties.insert(t.index)
                t.tick()
                o.barrierGeneration += 1
                o.arrived = 0
            } else {
                t.receive(o.barrierClock)
            }
        default:
            break
        }
    }
}
