import Glibc
import TangleRecorder

/// The manager thread: starts the workers, feeds each idle one a task, delivers their result
/// frames, and replaces a worker that died or retired (its task fails instead of hanging).
extension Pool {
    func startWorker() throws -> Slot {
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw PoolError.workerStartFailed("socketpair: \(String(cString: strerror(errno)))")
        }
        let serial = lock.withLock { () -> Int in
            workerSerial += 1
            return workerSerial
        }
        let process = ChildProcess(
            entryPoint: PoolWorker.entryName,
            arguments: PoolWorkerArguments(socket: InheritedDescriptor(pair[1]), pool: object, initializer: initializerName, encodeInit: encodeInit),
            name: "PoolWorker-\(serial)", daemon: true, method: startMethod)
        do {
            try process.start()
        } catch {
            Glibc.close(pair[0])
            Glibc.close(pair[1])
            throw PoolError.workerStartFailed("\(error)")
        }
        Glibc.close(pair[1])
        return Slot(process: process, fd: pair[0])
    }

    func manage() {
        // Start the workers.
        var started: [Slot] = []
        do {
            for _ in 0..<workerCount { started.append(try startWorker()) }
        } catch {
            for s in started {
                s.process.kill()
                s.process.join()
                Glibc.close(s.fd)
            }
            lock.withLock {
                startError = error as? PoolError ?? .workerStartFailed("\(error)")
                state = .finished
                lock.broadcast()
            }
            return
        }
        lock.withLock {
            slots = started
            workersStarted = true
            lock.broadcast()
        }

        var pollfds: [pollfd] = []
        var drain = [UInt8](repeating: 0, count: 256)
        var receive = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            // Hand pending tasks to idle workers; decide whether to stop.
            var sends: [(Slot, Task)] = []
            let stop: State? = lock.withLock {
                if state == .terminating { return .terminating }
                // Up to `Pool.depth` tasks per worker, one round at a time (every idle worker gets
                // one before any gets a second): the next task waits in the worker's socket while
                // the current one runs, so a worker never idles for the round trip to the manager.
                // Only a small frame is queued behind a running task: it fits in the socket's
                // buffer, so sending it cannot block the manager while that worker blocks writing
                // a large result the manager has not read yet (a deadlock, with big chunks).
                for round in 1...Pool.depth {
                    for slot in slots where !slot.dead && !slot.retiring && slot.busy.count < round && pendingHead < pending.count {
                        if let m = maxTasksPerChild, slot.completed + slot.busy.count >= m { continue }
                        if !slot.busy.isEmpty && pending[pendingHead].frame.count > Pool.queuedFrameLimit { continue }
                        let task = pending[pendingHead]
                        pendingHead += 1
                        slot.busy.append(task)
                        sends.append((slot, task))
                    }
                }
                if pendingHead > 64 && pendingHead * 2 > pending.count {
                    pending.removeFirst(pendingHead)
                    pendingHead = 0
                }
                if state == .closed && pendingHead == pending.count && sends.isEmpty && slots.allSatisfy({ $0.busy.isEmpty }) {
                    return .closed
                }
                return nil
            }
            if let stop {
                shutDown(terminating: stop == .terminating)
                return
            }
            // Which worker holds which task (recorded before the worker can see it): a task queued
            // behind a running one is that worker's, not any idle worker's.
            for (slot, task) in sends {
                Recorder.record(.poolTaskSend, object: object, a: task.id, b: UInt64(UInt32(bitPattern: slot.process.pid)), stack: false)
            }
            var unsent: [Task] = []
            var gone: [Slot] = []
            for (slot, task) in sends where gone.contains(where: { $0 === slot }) || !PoolWire.sendAll(slot.fd, task.frame) {
                // The worker is gone before it got the task: give the task to another worker.
                gone.append(slot)
                lock.withLock { slot.busy.removeAll { $0 === task } }
                Recorder.record(.poolTaskSend, object: object, a: task.id, b: 0, stack: false)
                unsent.append(task)
            }
            if !unsent.isEmpty { lock.withLock { pending.insert(contentsOf: unsent, at: pendingHead) } }

            let current = lock.withLock { slots }
            pollfds.removeAll(keepingCapacity: true)
            pollfds.append(pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0))
            for slot in current { pollfds.append(pollfd(fd: slot.fd, events: Int16(POLLIN), revents: 0)) }
            // The manager only relays between the owner and the workers: its thread is recorded as
            // internal, and its waits are not the program's (the analyzer reads the owner's result
            // waits and the workers' tasks instead).
            let r = poll(&pollfds, nfds_t(pollfds.count), -1)
            if r < 0 { continue }
            if pollfds[0].revents != 0 {
                while drain.withUnsafeMutableBytes({ read(wakeRead, $0.baseAddress, $0.count) }) > 0 {}
            }
            var died: [Slot] = []
            for (i, slot) in current.enumerated() where pollfds[i + 1].revents != 0 {
                var n = 0
                repeat {
                    n = receive.withUnsafeMutableBytes { recv(slot.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                    if n > 0 { slot.inbox.append(contentsOf: receive[0..<n]) }
                } while n == receive.count
                if n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) { died.append(slot) }
                deliverFrames(slot)
            }
            for slot in died { replace(slot) }
            retireFinished()
        }
    }

    /// Completes the tasks whose result frames are in `slot.inbox`.
    func deliverFrames(_ slot: Slot) {
        var offset = 0
        lock.withLock {
            slot.inbox.withUnsafeBytes { raw in
                while raw.count - offset >= 4 {
                    let length = Int(PoolWire.readU32(raw, offset))
                    guard raw.count - offset - 4 >= length, length >= 9 else { break }
                    let body = UnsafeRawBufferPointer(rebasing: raw[(offset + 4)..<(offset + 4 + length)])
                    offset += 4 + length
                    let id = PoolWire.readU64(body, 0)
                    guard let task = slot.busy.first, task.id == id else { continue }
                    slot.busy.removeFirst()
                    slot.completed += 1
                    if let m = maxTasksPerChild, slot.completed >= m { slot.retiring = true }
                    if body[8] == 0 {
                        task.complete(.success(UnsafeRawBufferPointer(rebasing: body[9...])))
                    } else {
                        let index = body.count >= 13 ? Int(PoolWire.readU32(body, 9)) : 0
                        let message = body.count > 13 ? String(decoding: body[13...], as: UTF8.self) : ""
                        task.complete(.failure(.taskFailed(function: task.function, index: task.firstItem + index, message: message)))
                    }
                }
            }
            if offset > 0 { slot.inbox.removeFirst(offset) }
            lock.broadcast()
        }
    }

    /// Workers that reached `maxTasksPerChild` and are idle: shut their socket down (they exit at
    /// end of file, and `replace` starts their successor when their socket closes).
    func retireFinished() {
        guard maxTasksPerChild != nil else { return }
        let done = lock.withLock { slots.filter { $0.retiring && $0.busy.isEmpty && !$0.dead } }
        for slot in done where slot.inbox.isEmpty {
            Glibc.shutdown(slot.fd, Int32(SHUT_WR))
        }
    }

    /// A worker's socket reached end of file: reap it, fail its task, start a replacement unless
    /// the pool is stopping.
    func replace(_ slot: Slot) {
        let status = slot.process.join(timeout: .seconds(5)) ?? {
            slot.process.kill()
            return slot.process.join()
        }()
        Glibc.close(slot.fd)
        let needReplacement = lock.withLock { () -> Bool in
            slot.dead = true
            slots.removeAll { $0 === slot }
            if let task = slot.busy.first {
                // The running task failed with its worker; the ones still queued in its socket
                // were never started: they go to another worker.
                task.complete(.failure(.workerDied(function: task.function, pid: slot.process.pid, status: "\(status!)")))
                for queued in slot.busy.dropFirst() { Recorder.record(.poolTaskSend, object: object, a: queued.id, b: 0, stack: false) }
                pending.insert(contentsOf: slot.busy.dropFirst(), at: pendingHead)
                slot.busy.removeAll()
                lock.broadcast()
            }
            return state == .running || (state == .closed && pendingHead < pending.count)
        }
        guard needReplacement else { return }
        do {
            let fresh = try startWorker()
            lock.withLock { slots.append(fresh) }
        } catch {
            FD.printError("tangle: pool \(object): cannot replace a dead worker: \(error)")
        }
    }

    func shutDown(terminating: Bool) {
        let current = lock.withLock { () -> [Slot] in
            if terminating {
                for slot in slots {
                    for task in slot.busy { task.complete(.failure(.terminated)) }
                    slot.busy.removeAll()
                }
                while pendingHead < pending.count {
                    pending[pendingHead].complete(.failure(.terminated))
                    pendingHead += 1
                }
                lock.broadcast()
            }
            return slots
        }
        for slot in current {
            if terminating { slot.process.terminate() } else { Glibc.shutdown(slot.fd, Int32(SHUT_WR)) }
        }
        for slot in current {
            if slot.process.join(timeout: .seconds(terminating ? 2 : 30)) == nil {
                slot.process.kill()
                slot.process.join()
            }
            Glibc.close(slot.fd)
        }
        lock.withLock {
            slots.removeAll()
            state = .finished
            lock.broadcast()
        }
    }
}
