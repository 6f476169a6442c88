/// The rows of the event table (see `EventSpec`). One row per kind; the names, argument keys and
/// wait rules here are the trace format (docs/trace-format.md) and the analyzer's model of waits
/// (docs/analyzers.md, "Waits and wakers").
extension EventSpec {
    static let specs: [EventSpec] = processes + locks + queues + pipes + signals + pools + resources

    private static let processes: [EventSpec] = [
        EventSpec(.processStart, "proc.start", [.ppid, .forked, nil], object: .process,
                  "a process begins (first event of its file); text: its name"),
        EventSpec(.processExit, "proc.exit", [.status, .signal, nil], object: .process,
                  "a process ends (exit, or a signal the recorder caught); ends every wait of the process"),
        EventSpec(.threadSpawn, "thread.spawn", object: .thread,
                  "the creating thread, before the new thread exists"),
        EventSpec(.threadStart, "thread.start", [.parent, .internal, nil], object: .thread,
                  "a thread begins; text: its name; internal = 1 for a runtime thread that only relays (a pool's manager): it never blocks or wakes anyone by itself"),
        EventSpec(.threadExit, "thread.exit", object: .thread, "a thread ends; ends every wait of the thread"),
        EventSpec(.threadJoinWait, "thread.join-wait", object: .thread, wakers: .thread,
                  endedBy: [.threadJoinDone], "join blocks until the thread ends"),
        EventSpec(.threadJoinDone, "thread.join-done", object: .thread, "join returned; r: timeout, error (the body threw)"),
        EventSpec(.processSpawn, "proc.spawn", [.child, .forked, nil], object: .process,
                  "a child is started (timed before it runs); text: its entry point"),
        EventSpec(.processFork, "proc.fork", [.child, .threads, nil],
                  "fork(); threads: other threads running in the parent"),
        EventSpec(.processJoinWait, "proc.join-wait", [.child, nil, nil], object: .process, wakers: .child,
                  endedBy: [.processJoinDone], "join blocks until the child ends"),
        EventSpec(.processJoinDone, "proc.join-done", [.child, .status, .signal], object: .process,
                  "join returned; r: timeout"),
        EventSpec(.processTerminate, "proc.terminate", [.child, nil, nil], object: .process, "SIGTERM sent to the child"),
        EventSpec(.processKill, "proc.kill", [.child, nil, nil], object: .process, "SIGKILL sent to the child"),
    ]

    private static let locks: [EventSpec] = [
        EventSpec(.lockNew, "lock.new", [.type, .value, nil], object: .lock,
                  "a Lock, RLock, Semaphore or BoundedSemaphore is created; text: its name"),
        EventSpec(.lockWait, "lock.wait", [.timeout, nil, nil], object: .lock, wakers: .lockOwner,
                  endedBy: [.lockAcquired, .lockTimeout, .lockOwnerDied],
                  "acquire blocks (the fast path failed); timeout 0 = none"),
        EventSpec(.lockAcquired, "lock.acquired", [.depth, nil, nil], object: .lock,
                  "acquired; depth: recursion depth after it (1 for a Lock)"),
        EventSpec(.lockReleased, "lock.released", [.depth, .owner, nil], object: .lock,
                  "released; depth left; owner: the pid that owned it when another released it"),
        EventSpec(.lockTimeout, "lock.timeout", [.timeout, nil, nil], object: .lock, "an acquire gave up"),
        EventSpec(.lockOwnerDied, "lock.owner-died", [.owner, nil, nil], object: .lock,
                  "acquired from an owner that died holding it (EOWNERDEAD); owner: its pid"),
    ]

    private static let queues: [EventSpec] = [
        EventSpec(.queueNew, "queue.new", [.max, .joinable, nil], object: .queue,
                  "a Queue or JoinableQueue is created; max 0 = unbounded; text: its name"),
        EventSpec(.queuePutWait, "queue.put-wait", object: .queue, wakers: .queueGetters,
                  endedBy: [.queuePut, .queueTimeout], "put blocks: the queue is full"),
        EventSpec(.queuePut, "queue.put", [.msg, .size, nil], object: .queue, "an item is put; msg: its id"),
        EventSpec(.queueGetWait, "queue.get-wait", object: .queue, wakers: .queuePutters,
                  endedBy: [.queueGet, .queueTimeout], "get blocks: the queue is empty"),
        EventSpec(.queueGet, "queue.get", [.msg, .size, nil], object: .queue, "an item is got; msg: its id"),
        EventSpec(.queueTimeout, "queue.timeout", [.op, nil, nil], object: .queue,
                  "a put (op 0) or get (op 1) gave up; r: timeout, empty, full or closed"),
        EventSpec(.queueClose, "queue.close", object: .queue, "this process will put no more"),
        EventSpec(.queueTaskDone, "queue.task-done", [.unfinished, nil, nil], object: .queue,
                  "task_done(); unfinished tasks left"),
        EventSpec(.queueJoinWait, "queue.join-wait", [.unfinished, nil, nil], object: .queue, wakers: .queueTaskDone,
                  endedBy: [.queueJoinDone], "JoinableQueue.join blocks until every item is marked done"),
        EventSpec(.queueJoinDone, "queue.join-done", object: .queue, "join returned; r: timeout"),
    ]

    private static let pipes: [EventSpec] = [
        EventSpec(.pipeNew, "pipe.new", [.duplex, nil, nil], object: .pipe, "a Pipe is created; the creator holds both ends; text: its name"),
        EventSpec(.pipeSend, "pipe.send", [.msg, .size, .end], object: .pipe,
                  "a message is sent from end `end` (recorded before the write); r: eof — the same msg was not sent after all (every read end was closed)"),
        EventSpec(.pipeRecvWait, "pipe.recv-wait", [nil, nil, .end], object: .pipe, wakers: .pipeWriters,
                  endedBy: [.pipeRecv], "recv on end `end` blocks: nothing to read"),
        EventSpec(.pipeRecv, "pipe.recv", [.msg, .size, .end], object: .pipe,
                  "a message is received on end `end`; r: eof (every write end closed), timeout"),
        EventSpec(.pipeClose, "pipe.close", [nil, nil, .end], object: .pipe, "this process closes end `end`"),
    ]

    private static let signals: [EventSpec] = [
        EventSpec(.eventNew, "event.new", object: .event, "an Event is created; text: its name"),
        EventSpec(.eventSet, "event.set", object: .event, "set()"),
        EventSpec(.eventClear, "event.clear", object: .event, "clear()"),
        EventSpec(.eventWait, "event.wait", object: .event, wakers: .eventSetters,
                  endedBy: [.eventWake], "wait blocks: the event is not set"),
        EventSpec(.eventWake, "event.wake", object: .event, "wait returned; r: timeout"),
        EventSpec(.conditionNew, "cond.new", [.lock, nil, nil], object: .condition,
                  "a Condition is created over the lock `lock`; text: its name"),
        EventSpec(.conditionWait, "cond.wait", [.timeout, nil, nil], object: .condition, wakers: .conditionNotifiers,
                  endedBy: [.conditionWake],
                  inside: [.lockReleased, .lockWait, .lockAcquired, .lockOwnerDied],
                  "wait blocks; its lock is released inside the wait and re-taken before cond.wake"),
        EventSpec(.conditionWake, "cond.wake", object: .condition, "wait returned with the lock held; r: timeout"),
        EventSpec(.conditionNotify, "cond.notify", [.n, nil, nil], object: .condition, "notify(n); n 0 = all"),
        EventSpec(.barrierNew, "barrier.new", [.parties, nil, nil], object: .barrier, "a Barrier is created; text: its name"),
        EventSpec(.barrierWait, "barrier.wait", [.index, nil, nil], object: .barrier, wakers: .barrierAbsentees,
                  endedBy: [.barrierPass], "a party arrives and blocks; index: its arrival index"),
        EventSpec(.barrierPass, "barrier.pass", [.index, nil, nil], object: .barrier,
                  "a party passes (the last to arrive records only this); r: error (broken), timeout"),
    ]

    private static let pools: [EventSpec] = [
        EventSpec(.poolNew, "pool.new", [.workers, nil, nil], object: .pool, "a Pool is created"),
        EventSpec(.poolSubmit, "pool.submit", [.task, .items, .batch], object: .pool,
                  "a task (a chunk of items) is submitted; batch: the map or iterator it belongs to (its first task; 0 for one apply)"),
        EventSpec(.poolTaskWait, "pool.task-wait", object: .pool, wakers: .poolOwner,
                  endedBy: [.poolTaskStart], "a worker waits for its next task"),
        EventSpec(.poolTaskSend, "pool.task-send", [.task, .worker, nil], object: .pool,
                  "the pool's manager hands a task to the worker `worker` (0: back to the pending tasks, its worker gone)"),
        EventSpec(.poolTaskStart, "pool.task-start", [.task, nil, nil], object: .pool, "a worker starts a task"),
        EventSpec(.poolTaskDone, "pool.task-done", [.task, nil, nil], object: .pool, "a worker finished a task; r: error"),
        EventSpec(.poolResultWait, "pool.result-wait", [.task, .all, .batch], object: .pool, wakers: .poolTaskWorkers,
                  endedBy: [.poolResult],
                  "the caller blocks on a task's result; task 0: on the unretrieved tasks of `batch` (of the thread, when 0) — any one of them (an iterator), or all = 1 (map)"),
        EventSpec(.poolResult, "pool.result", [.task, nil, nil], object: .pool,
                  "a result is retrieved (before the task finished: given up, as a map does at another task's error); r: error, timeout"),
        EventSpec(.poolClose, "pool.close", object: .pool, "close(): no more tasks"),
        EventSpec(.poolTerminate, "pool.terminate", object: .pool, "terminate(): workers stopped"),
        EventSpec(.poolJoinWait, "pool.join-wait", object: .pool, wakers: .poolWorkers,
                  endedBy: [.poolJoinDone], "join blocks until the workers exit"),
        EventSpec(.poolJoinDone, "pool.join-done", object: .pool, "join returned"),
    ]

    private static let resources: [EventSpec] = [
        EventSpec(.shmCreate, "shm.create", [.size, nil, nil], object: .sharedMemory, "a segment is created; text: its name"),
        EventSpec(.shmAttach, "shm.attach", [.size, nil, nil], object: .sharedMemory, "a segment is attached"),
        EventSpec(.shmUnlink, "shm.unlink", object: .sharedMemory, "the segment's name is removed"),
        EventSpec(.shmClose, "shm.close", object: .sharedMemory, "this process unmaps it"),
        EventSpec(.handleAttach, "handle.attach", [.type, nil, .end],
                  "this process gained a handle to `o` (type: ObjectType; end: for pipes)"),
        EventSpec(.handleClose, "handle.close", [.type, nil, .end],
                  "this process gave up its handle to `o`"),
        EventSpec(.dropped, "dropped", [.count, nil, nil], "events the recorder could not record (never silent)"),
    ]
}
