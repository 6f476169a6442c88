import CTangleSupport
import Glibc
import TangleTraceFormat
import TangleRecorder

/// Async joins (child process, thread), pipe receive/send and pool results: the blocking call's
/// events, recorded as the task; the sleep (poll on a pidfd or pipe, a condition variable) on a
/// waiter thread (`Waiters`). A cancelled join or receive throws `CancellationError` (its done
/// event has `r: error`); the child, thread or message is left as it was.
extension ChildProcess {
    /// Suspends until the child ends, or until `timeout` passes (nil = forever). Returns how it
    /// ended, nil on timeout.
    @discardableResult
    public func join(timeout: Duration? = nil) async throws -> ExitStatus? {
        let (wasStarted, fd) = lock.withLock { (started, pidfd) }
        precondition(wasStarted, "join() on process \(name) that was never started")
        let p = _tracingParticipant()
        let childPID = pid
        if let done = reapIfExited() {
            _as(p) { recordJoinDone(done, pid: childPID) }
            return done
        }
        let end = Clock.deadline(after: timeout)
        if let end, Clock.now() >= end {
            _as(p) { Recorder.record(.processJoinDone, object: object, a: UInt64(childPID), result: .timeout) }
            return nil
        }
        _as(p) { Recorder.record(.processJoinWait, object: object, a: UInt64(childPID)) }
        let outcome = await Waiters.wait(until: end) { [self] slice in
            if fd >= 0 {
                _ = tangle_poll_readable(fd, Int32(max(1, slice / 1_000_000)))
            } else {
                usleep(1000)
            }
            return reapIfExited() != nil
        }
        if let done = reapIfExited() {
            _as(p) { recordJoinDone(done, pid: childPID) }
            return done
        }
        let result: WaitResult = outcome == .cancelled ? .error : .timeout
        _as(p) { Recorder.record(.processJoinDone, object: object, a: UInt64(childPID), result: result) }
        if outcome == .cancelled { throw CancellationError() }
        return nil
    }
}

extension TangleThread {
    /// Suspends until the thread's body returned, or `timeout` passed (nil = forever). True when
    /// it finished; throws the body's error when it threw.
    @discardableResult
    public func join(timeout: Duration? = nil) async throws -> Bool {
        precondition(lock.withLock { started }, "join() on thread \(name) that was never started")
        let p = _tracingParticipant()
        if lock.withLock({ finished }) {
            let failed = error
            _as(p) { Recorder.record(.threadJoinDone, object: object, result: failed == nil ? .ok : .error) }
            if let failed { throw failed }
            return true
        }
        _as(p) { Recorder.record(.threadJoinWait, object: object) }
        let outcome = await Waiters.wait(until: Clock.deadline(after: timeout)) { [self] slice in
            lock.withLock {
                if !finished { _ = lock.wait(until: Clock.now() &+ UInt64(slice)) }
                return finished
            }
        }
        let failed = error
        let result: WaitResult = outcome == .ready ? (failed == nil ? .ok : .error) : outcome == .timeout ? .timeout : .error
        _as(p) { Recorder.record(.threadJoinDone, object: object, result: result) }
        if outcome == .cancelled { throw CancellationError() }
        if let failed { throw failed }
        return outcome == .ready
    }
}

extension Connection {
    /// Receives one message, suspending until one arrives, end of file (`PipeError.eof`) or
    /// `timeout` passes (`PipeError.timeout`; nil = no limit).
    public func recv(timeout: Duration? = nil) async throws -> T {
        guard fd >= 0 else { throw PipeError.closed(object: object, end: end) }
        guard readable else { throw PipeError.wrongDirection(object: object, end: end, operation: "recv") }
        let p = _tracingParticipant()
        // Data (or end of file) there: the blocking receive does not block.
        if buffered > 0 || sawEOF || tangle_sync_poll_readable(fd, 0) == 1 {
            return try _as(p) { try recv(timeout: nil) }
        }
        let ns = timeoutNanoseconds(timeout)
        if ns == 0 {
            _as(p) { Recorder.record(.pipeRecv, object: object, c: UInt64(end), result: .timeout, stack: false) }
            throw PipeError.timeout(object: object, end: end)
        }
        _as(p) { Recorder.record(.pipeRecvWait, object: object, c: UInt64(end)) }
        let fd = self.fd
        let outcome = await Waiters.wait(until: deadline(after: ns)) { slice in
            tangle_sync_poll_readable(fd, slice) == 1
        }
        switch outcome {
        case .ready:
            return try _as(p) { try recv(timeout: nil) }
        case .timeout:
            _as(p) { Recorder.record(.pipeRecv, object: object, c: UInt64(end), result: .timeout, stack: false) }
            throw PipeError.timeout(object: object, end: end)
        case .cancelled:
            _as(p) { Recorder.record(.pipeRecv, object: object, c: UInt64(end), result: .error, stack: false) }
            throw CancellationError()
        }
    }

    /// Sends one message; when the pipe has no room (or the frame is larger than a page) the
    /// write happens on a waiter thread while the task is suspended.
    public func send(_ value: T) async throws {
        guard fd >= 0 else { throw PipeError.closed(object: object, end: end) }
        guard writable else { throw PipeError.wrongDirection(object: object, end: end, operation: "send") }
        let p = _tracingParticipant()
        let msg = Recorder.newMessageID()
        let frame: [UInt8] = try BinaryCodec.withEncoded(value) { payload in
            let n = payload.count
            return [UInt8](unsafeUninitializedCapacity: n + 12) { buf, count in
                let raw = UnsafeMutableRawPointer(buf.baseAddress!)
                raw.storeBytes(of: UInt32(n).littleEndian, toByteOffset: 0, as: UInt32.self)
                raw.storeBytes(of: msg.littleEndian, toByteOffset: 4, as: UInt64.self)
                if n > 0 { (raw + 12).copyMemory(from: payload.baseAddress!, byteCount: n) }
                count = n + 12
            }
        }
        // Traced before the bytes become visible to the reader, as the blocking send does.
        _as(p) { Recorder.record(.pipeSend, object: object, a: msg, b: UInt64(frame.count - 12), c: UInt64(end)) }
        let fd = self.fd, socket = self.socket ? Int32(1) : 0, mutex = self.mutex
        let rc: Int32
        var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        if frame.count <= 4096 && Glibc.poll(&pfd, 1, 0) == 1 {
            rc = frame.withUnsafeBytes { b in mutex.withLock { tangle_sync_write_all(fd, b.baseAddress!, b.count, socket) } }
        } else {
            let f = frame
            rc = await Waiters.run {
                f.withUnsafeBytes { b in mutex.withLock { tangle_sync_write_all(fd, b.baseAddress!, b.count, socket) } }
            }
        }
        if rc == EPIPE || rc == ECONNRESET { throw PipeError.brokenPipe(object: object, end: end) }
        if rc != 0 { throw PipeError.system(call: "write", errno: rc) }
    }
}

extension AsyncResult {
    /// The task's result, suspending until it is there; throws its error, or `PoolError.timeout`
    /// when `timeout` passes first. Records `pool.result-wait` when it suspends and `pool.result`.
    public func get(timeout: Duration? = nil) async throws -> T {
        let p = _tracingParticipant()
        let lock = pool.lock
        if lock.withLock({ outcome == nil }) {
            let end = Clock.deadline(after: timeout)
            if let end, Clock.now() >= end {
                _as(p) { Recorder.record(.poolResult, object: pool.object, a: taskID, result: .timeout) }
                throw PoolError.timeout
            }
            _as(p) { Recorder.record(.poolResultWait, object: pool.object, a: taskID) }
            let outcome = await Waiters.wait(until: end) { [self] slice in
                lock.withLock {
                    if self.outcome == nil { _ = lock.wait(until: Clock.now() &+ UInt64(slice)) }
                    return self.outcome != nil
                }
            }
            if outcome != .ready {
                _as(p) { Recorder.record(.poolResult, object: pool.object, a: taskID, result: outcome == .timeout ? .timeout : .error) }
                if outcome == .cancelled { throw CancellationError() }
                throw PoolError.timeout
            }
        }
        let result = lock.withLock { outcome! }
        switch result {
        case let .success(value):
            _as(p) { Recorder.record(.poolResult, object: pool.object, a: taskID) }
            return value
        case let .failure(error):
            _as(p) { Recorder.record(.poolResult, object: pool.object, a: taskID, result: .error) }
            throw error
        }
    }
}
