import TangleTraceFormat
import TangleTraceReader

// The events of pools, shared resources (shared memory, managers) and handles: the other half
// of `apply` (ModelEvents.swift), split off to keep each file to one screenful of kinds.
extension TraceModel {
    /// Pools: tasks, workers, results.
    func applyPool(_ e: TraceEvent, _ p: TracedProcess, _ t: ThreadState) {
        switch e.kind {
        case .poolNew:
            let o = created(e, kind: .pool)
            o.parties = e[.workers]
            addHandle(e.pid, e.object)
        case .poolSubmit:
            let o = object(e.object, kind: .pool)
            var task = o.tasks[e[.task]] ?? PoolTask()
            if task.submit == nil && task.workerPid == 0 { o.pendingTasks += 1 }
            task.submit = e
            task.submitClock = t.stamp()
            o.tasks[e[.task]] = task
            t.tick()
        case .poolTaskWait:
            let o = object(e.object, kind: .pool)
            o.workers.insert(e.pid)
            o.workersKnown = true
        case .poolTaskSend:
            let o = object(e.object, kind: .pool)
            var task = o.tasks[e[.task]] ?? PoolTask()
            let worker = e.pid(.worker)
            if task.done == nil {
                if task.workerPid == 0 && worker != 0 && task.submit != nil { o.pendingTasks = max(0, o.pendingTasks - 1) }
                if task.workerPid != 0 && worker == 0 { o.pendingTasks += 1 }
                task.workerPid = worker
                o.tasks[e[.task]] = task
            }
        case .poolTaskStart:
            let o = object(e.object, kind: .pool)
            o.workers.insert(e.pid)
            o.workersKnown = true
            var task = o.tasks[e[.task]] ?? PoolTask()
            if task.workerPid == 0 && task.submit != nil { o.pendingTasks = max(0, o.pendingTasks - 1) }
            task.workerPid = e.pid
            if let c = task.submitClock { t.receive(c) }
            o.tasks[e[.task]] = task
        case .poolTaskDone:
            let o = object(e.object, kind: .pool)
            o.workers.insert(e.pid)
            o.workersKnown = true
            var task = o.tasks[e[.task]] ?? PoolTask()
            task.workerPid = e.pid
            task.done = e
            task.doneClock = t.stamp()
            task.submitClock = nil
            // A task its caller already gave up on is over now.
            if task.retrieved != nil { o.tasks[e[.task]] = nil } else { o.tasks[e[.task]] = task }
            t.tick()
        case .poolResultWait:
            _ = object(e.object, kind: .pool)
        case .poolResult where e.result != .timeout:
            let o = object(e.object, kind: .pool)
            if var task = o.tasks[e[.task]], task.done == nil {
                // Retrieved before it finished (a map that ended at another task's error): kept
                // until it does, marked, so that its own error is not reported as lost.
                task.retrieved = e
                o.tasks[e[.task]] = task
            } else if let task = o.tasks.removeValue(forKey: e[.task]), let c = task.doneClock {
                t.receive(c)
            }
        case .poolResult:
            break
        case .poolClose, .poolTerminate:
            let o = object(e.object, kind: .pool)
            if o.poolClosed == nil { o.poolClosed = e }
        case .poolJoinWait, .poolJoinDone:
            break
        default:
            break
        }
    }

    /// Shared memory.
    func applyResource(_ e: TraceEvent, _ p: TracedProcess, _ t: ThreadState) {
        switch e.kind {
        case .shmCreate:
            let o = created(e, kind: .sharedMemory)
            o.shmHolders.insert(e.pid)
            addHandle(e.pid, e.object)
        case .shmAttach:
            let o = object(e.object, kind: .sharedMemory)
            if o.name == nil, let text = e.text { o.name = text }
            o.shmHolders.insert(e.pid)
            addHandle(e.pid, e.object)
        case .shmUnlink:
            let o = object(e.object, kind: .sharedMemory)
            if o.unlinked == nil { o.unlinked = e }
        case .shmClose:
            object(e.object, kind: .sharedMemory).shmHolders.remove(e.pid)
        default:
            break
        }
    }

    /// Handles a process gains or gives up; the recorder's own notes.
    func applyHandle(_ e: TraceEvent, _ p: TracedProcess, _ t: ThreadState) {
        switch e.kind {
        case .handleAttach:
            let kind = ObjectKind(objectType: e[.type])
            let o = object(e.object, kind: kind == .lock ? .unknown : kind)
            if o.kind == .unknown && kind == .lock { o.kind = .lock }
            let key = Self.handleKey(e.object, end: kind == .pipe ? e.pipeEnd : nil)
            p.handles.insert(key)
            p.closedHandles.remove(key)
        case .handleClose:
            let kind = ObjectKind(objectType: e[.type])
            let key = Self.handleKey(e.object, end: kind == .pipe ? e.pipeEnd : nil)
            p.handles.remove(key)
            p.closedHandles.insert(key)

        case .dropped:
            droppedEvents &+= e[.count]
            noteProblem(TraceProblemNote(
                kind: .droppedEvents, file: p.file,
                detail: "pid \(e.pid) tid \(e.tid) could not record \(e[.count]) events (the recorder said so); the analysis lacks them"))
        default:
            break
        }
    }

    // The hot cases of `apply`, with the object borrowed (see `withObject`).

    @inline(__always) func lockWait(_ e: TraceEvent, _ t: ThreadState, _ o: ObjectState) {
        lockOrder.lockWait(e, t, o)  // lock-order edges (mutexes, value-1 semaphores)
    }

    @inline(__always) func lockAcquired(_ e: TraceEvent, _ t: ThreadState, _ o: ObjectState) {
        if o.kind.isSemaphore {
            o.semValue -= 1
            t.receive(o.semClock)
            lockOrder.lockAcquired(e, t, o)  // value-1 semaphores are locks
        } else {
            if o.owner == t.index, let hi = t.heldIndex(e.object) {
                t.held[hi].depth = max(e[.depth], 1)
            } else {
                if e[.depth] <= 1 || t.heldIndex(e.object) == nil {
                    lockOrder.lockAcquired(e, t, o)  // lock-order edges
                }
                if let hi = t.heldIndex(e.object) { t.held.remove(at: hi) }
                t.held.append(HeldLock(lock: e.object, depth: max(e[.depth], 1), event: e, clock: t.clock))
            }
            o.owner = t.index
            o.depth = max(e[.depth], 1)
            o.ownerEvent = e
        }
    }

    @inline(__always) func lockReleased(_ e: TraceEvent, _ t: ThreadState, _ o: ObjectState) {
        if o.kind.isSemaphore {
            o.semValue += 1
            // A value-1 semaphore released by its taker is a mutex release: no happens-before edge.
            if !lockOrder.semaphoreReleased(e, t, o) { o.semClock.join(t.stamp()) }
            o.releasers.insert(e.pid)
            t.tick()
        } else {
            let mine = t.heldIndex(e.object)
            if mine != nil || o.owner < 0 {
                release(e, t, o, holder: t, mine: mine)
            } else {
                release(e, t, o, holder: threads[o.owner], mine: mine)
            }
        }
    }

    @inline(__always) func release(_ e: TraceEvent, _ t: ThreadState, _ o: ObjectState, holder: ThreadState, mine: Int?) {
        if e[.depth] == 0 {
            if let hi = mine ?? holder.heldIndex(e.object) { holder.held.remove(at: hi) }
            if o.owner == holder.index || o.owner == t.index || mine == nil {
                o.owner = -1
                o.depth = 0
                o.ownerEvent = nil
            }
        } else {
            if let hi = mine ?? holder.heldIndex(e.object) { holder.held[hi].depth = e[.depth] }
            if o.owner == holder.index { o.depth = e[.depth] }
        }
    }

    @inline(__always) func queuePut(_ e: TraceEvent, _ t: ThreadState, _ o: ObjectState) {
        o.puts += 1
        o.putters.insert(e.pid)
        if !earlyReceives.isEmpty && earlyReceives.remove(e[.msg]) != nil {
            unmatchedReceives -= 1
        } else {
            o.pendingCount += 1
            messages.insert(e[.msg], PendingMessage(event: e, clock: t.stamp(), object: e.object, end: 0))
        }
        t.tick()
    }

    @inline(__always) func queueGet(_ e: TraceEvent, _ t: ThreadState, _ o: ObjectState) {
        o.gets += 1
        let u = o.user(e.pid)
        o.users[u].gets += 1
        o.users[u].lastGet = e
        o.getters.insert(e.pid)
        if let m = messages.remove(e[.msg]) {
            t.receive(m.clock)
            o.pendingCount -= 1
        } else {
            unmatchedReceives += 1
            earlyReceives.insert(e[.msg])
        }
    }
}
