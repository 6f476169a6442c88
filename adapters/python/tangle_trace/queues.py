"""Queue, JoinableQueue, SimpleQueue (multiprocessing.queues).

A Queue's put() only appends to a buffer; its feeder thread writes the item into the pipe, and
blocks when the pipe is full. So `queue.put` is recorded by the feeder after the write (or by
put() itself when put() blocked on a bounded queue: its wait ends there), and a write still
blocked after ~20 ms is a `queue.put-wait` of the feeder thread, timed at the write's start. join_thread at exit is then a
`thread.join-wait` on that feeder: the shape of "join before drain"."""
import threading
import time
from multiprocessing import queues as Q
from multiprocessing.reduction import ForkingPickler

from . import state
from .messages import Msg, unwrap
from .recorder import T_QUEUE, _HERE

_orig = {}
_SKIP = (_HERE, Q.__file__.rsplit("/", 1)[0])
_SEM_MAX = None


def _init(cls, joinable):
    orig = cls.__init__

    def __init__(self, *a, **k):
        if not state.quiet() and state.R is not None:
            maxsize = a[0] if a else k.get("maxsize", 0)
            self._tangle_id = state.R.new_id()
            self._tangle_type = T_QUEUE
            extra = (',"max":%d' % maxsize if maxsize and maxsize > 0 else "") + (',"joinable":1' if joinable else "")
            self._tangle_name = state.creation_name(_SKIP)
            state.R.event("queue.new", self._tangle_id, extra, name=self._tangle_name)
        with state.QUIET:
            orig(self, *a, **k)
    cls.__init__ = __init__


def _put(orig):
    def put(self, obj, block=True, timeout=None):
        o = state.oid(self)
        if not o:
            return orig(self, obj, block, timeout)
        R = state.R
        msg = Msg(R.new_msg(), obj)
        if block and not self._closed and self._maxsize < _SEM_MAX and self._sem._semlock._get_value() == 0:
            R.event("queue.put-wait", o, wait=True)
            msg.recorded = True
            try:
                orig(self, msg, block, timeout)
            except Q.Full:
                R.event("queue.timeout", o, r="timeout")
                raise
            R.event("queue.put", o, ',"msg":%d' % msg.id)
            return
        try:
            orig(self, msg, block, timeout)
        except Q.Full:
            R.event("queue.timeout", o, r="full")
            raise
    return put


def _start_thread(self):
    o = state.oid(self)
    if o and not getattr(self._send_bytes, "_tangle", False):
        send, writer, R = self._send_bytes, self._writer, state.R

        def send_bytes(buf):
            msg = getattr(state._tls, "sending", None)
            state._tls.sending = None
            if msg is None or msg.recorded:
                return send(buf)
            R.begin_write(o, "queue.put-wait")
            try:
                send(buf)
            finally:
                R.end_write()
                R.event("queue.put", o, ',"msg":%d,"size":%d' % (msg.id, len(buf)))
        send_bytes._tangle = True
        self._send_bytes = send_bytes
        cond = self._notempty
        if type(cond) is threading.Condition:
            # The feeder sleeps on this condition while the buffer is empty: recorded as a
            # cond.wait woken by put()'s notify, so an idle feeder counts as blocked, not running.
            cond.__class__ = _FeederCondition
            cond._tangle_id = R.new_id()
            name = getattr(self, "_tangle_name", None)
            R.event("cond.new", cond._tangle_id, name="feeder of %s" % (name or "queue"))
    return _orig["start_thread"](self)


class _FeederCondition(threading.Condition):
    def wait(self, timeout=None):
        R = state.R
        R.event("cond.wait", self._tangle_id, wait=True, stack=False)
        ok = threading.Condition.wait(self, timeout)
        R.event("cond.wake", self._tangle_id, stack=False)
        return ok

    def notify(self, n=1):
        state.R.event("cond.notify", self._tangle_id, ',"n":%d' % n, stack=False)
        return threading.Condition.notify(self, n)


def _receive(self, o, block, timeout, kind="queue.get-wait"):
    """Queue.get's receive under the queue's read lock, recording `queue.get-wait` exactly when it
    blocks: on the read lock (another getter holds it) or on an empty pipe. Checking the pipe
    without the lock would race another getter that takes the last item first."""
    R = state.R
    rlock, reader = self._rlock, self._reader
    if not block:
        if not rlock.acquire(False):
            raise Q.Empty
        try:
            if not reader.poll():
                raise Q.Empty
            return reader.recv_bytes()
        finally:
            rlock.release()
    deadline = None if timeout is None else time.monotonic() + max(timeout, 0)
    waited = False
    if not rlock.acquire(False):
        R.event(kind, o, wait=True)
        waited = True
        if not rlock.acquire(True, None if deadline is None else max(deadline - time.monotonic(), 0)):
            raise Q.Empty
    try:
        if not reader.poll():
            if not waited:
                R.event(kind, o, wait=True)
            if deadline is not None and not reader.poll(max(deadline - time.monotonic(), 0)):
                raise Q.Empty
        return reader.recv_bytes()
    finally:
        rlock.release()


def _get(orig):
    def get(self, block=True, timeout=None):
        o = state.oid(self)
        if not o:
            return orig(self, block, timeout)
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")
        R = state.R
        try:
            res = _receive(self, o, block, timeout)
        except Q.Empty:
            R.event("queue.timeout", o, ',"op":1', r="timeout" if block else "empty")
            raise
        except (EOFError, OSError):
            R.event("queue.timeout", o, ',"op":1', r="error")
            raise
        self._sem.release()
        mid, value = unwrap(ForkingPickler.loads(res))
        R.event("queue.get", o, ',"msg":%d' % mid if mid else "")
        return value
    return get


def _close(self):
    o = state.oid(self)
    if o and not self._closed:
        state.R.event("queue.close", o)
    return _orig["close"](self)


def _task_done(self):
    o = state.oid(self)
    if o:
        left = max(self._unfinished_tasks._semlock._get_value() - 1, 0)
        state.R.event("queue.task-done", o, ',"unfinished":%d' % left if left else "")
    return _orig["task_done"](self)


def _join(self):
    o = state.oid(self)
    if not o:
        return _orig["join"](self)
    n = self._unfinished_tasks._semlock._get_value()
    if n:
        state.R.event("queue.join-wait", o, ',"unfinished":%d' % n, wait=True)
    _orig["join"](self)
    if n:
        state.R.event("queue.join-done", o)


# -- SimpleQueue: put() writes in the caller's thread
def _simple_put(self, obj):
    o = state.oid(self)
    if not o:
        return _orig["sput"](self, obj)
    R = state.R
    msg = Msg(R.new_msg(), obj)
    data = ForkingPickler.dumps(msg)
    extra = ',"msg":%d,"size":%d' % (msg.id, len(data))
    R.begin_write(o, "queue.put-wait")
    try:
        if self._wlock is None:
            self._writer.send_bytes(data)
        else:
            with self._wlock:
                self._writer.send_bytes(data)
    finally:
        R.end_write()
        R.event("queue.put", o, extra)


def _simple_get(self):
    o = state.oid(self)
    if not o:
        pool = self.__dict__.get("_tangle_pool")
        if pool and state.R is not None:
            # a pool worker waiting for its next task (ended by pool.task-start)
            return ForkingPickler.loads(_receive(self, pool, True, None, "pool.task-wait"))
        return _orig["sget"](self)
    mid, value = unwrap(ForkingPickler.loads(_receive(self, o, True, None)))
    state.R.event("queue.get", o, ',"msg":%d' % mid if mid else "")
    return value


def install():
    global _SEM_MAX
    from multiprocessing.synchronize import SEM_VALUE_MAX
    _SEM_MAX = SEM_VALUE_MAX
    _orig.update(start_thread=Q.Queue._start_thread, close=Q.Queue.close, task_done=Q.JoinableQueue.task_done,
                 join=Q.JoinableQueue.join, sput=Q.SimpleQueue.put, sget=Q.SimpleQueue.get)
    _init(Q.Queue, False)
    _init(Q.JoinableQueue, True)
    _init(Q.SimpleQueue, False)
    for cls in (Q.Queue, Q.JoinableQueue, Q.SimpleQueue):
        state.wrap_state(cls)
    Q.Queue.put, Q.Queue.get = _put(Q.Queue.put), _get(Q.Queue.get)
    Q.JoinableQueue.put = _put(Q.JoinableQueue.put)
    Q.Queue._start_thread, Q.Queue.close = _start_thread, _close
    Q.JoinableQueue.task_done, Q.JoinableQueue.join = _task_done, _join
    Q.SimpleQueue.put, Q.SimpleQueue.get = _simple_put, _simple_get
