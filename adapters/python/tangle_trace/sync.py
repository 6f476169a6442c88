"""Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event, Barrier (multiprocessing.synchronize)."""
import sys
from multiprocessing import synchronize as S

from . import state
from .recorder import T_LOCK, T_EVENT, T_COND, T_BARRIER, _HERE

_orig = {}
_SKIP = (_HERE, S.__file__.rsplit("/", 1)[0])
_LOCK_TYPE = {"Lock": 0, "RLock": 1, "Semaphore": 2, "BoundedSemaphore": 3}


def _new(obj, kind, typ, extra=""):
    """Gives a user-created object its id and records `<kind>.new`."""
    if state.quiet() or state.R is None:
        return False
    obj._tangle_id = state.R.new_id()
    obj._tangle_type = typ
    state.R.event(kind, obj._tangle_id, extra, name=state.creation_name(_SKIP))
    return True


def _depth(self):
    return self._semlock._count() if type(self).__name__ == "RLock" else 1


def _make_methods(self):
    _orig["make"](self)
    o = state.oid(self)
    if not o:
        return
    sem = self._semlock
    R = state.R
    is_rlock = isinstance(self, S.RLock)

    def acquire(block=True, timeout=None):
        if sem.acquire(False):
            R.event("lock.acquired", o, ',"depth":%d' % (sem._count() if is_rlock else 1))
            return True
        if not block:
            return False
        tmo = ',"timeout":%d' % int(timeout * 1000) if timeout else ""
        R.event("lock.wait", o, tmo, wait=True)
        if sem.acquire(True, timeout):
            R.event("lock.acquired", o, ',"depth":%d' % (sem._count() if is_rlock else 1))
            return True
        R.event("lock.timeout", o, tmo)
        return False

    def release():
        left = sem._count() - 1 if is_rlock else 0
        R.event("lock.released", o, ',"depth":%d' % left if left > 0 else "")
        try:
            sem.release()
        except Exception:
            raise

    self.acquire, self.release = acquire, release


def _enter(self):
    if state.oid(self):
        return self.acquire()
    return self._semlock.__enter__()


def _exit(self, *args):
    if state.oid(self):
        return self.release()
    return self._semlock.__exit__(*args)


def _lock_init(cls):
    orig = cls.__init__

    def __init__(self, *a, **k):
        _new(self, "lock.new", T_LOCK, ',"type":%d' % _LOCK_TYPE.get(cls.__name__, 0)
             + (',"value":%d' % (a[0] if a else k.get("value", 1)) if cls.__name__.endswith("Semaphore") else ""))
        with state.QUIET:
            orig(self, *a, **k)
    cls.__init__ = __init__


def _cond_init(self, lock=None, *, ctx):
    if lock is None and not state.quiet():
        lock = ctx.RLock()
    _new(self, "cond.new", T_COND, ',"lock":%d' % state.oid(lock) if state.oid(lock) else "")
    with state.QUIET:
        _orig["cinit"](self, lock, ctx=ctx)


def _cond_wait(self, timeout=None):
    o = state.oid(self)
    if not o:
        return _orig["cwait"](self, timeout)
    state.R.event("cond.wait", o, ',"timeout":%d' % int(timeout * 1000) if timeout else "", wait=True)
    ok = _orig["cwait"](self, timeout)
    state.R.event("cond.wake", o, r=None if ok else "timeout")
    return ok


def _cond_notify(self, n=1):
    o = state.oid(self)
    if o:
        state.R.event("cond.notify", o, ',"n":%d' % n)
    return _orig["cnotify"](self, n)


def _cond_notify_all(self):
    o = state.oid(self)
    if o:
        state.R.event("cond.notify", o)
        return _orig["cnotify"](self, n=sys.maxsize)
    return _orig["cnotify_all"](self)


def _event_init(self, *, ctx):
    _new(self, "event.new", T_EVENT)
    with state.QUIET:
        _orig["einit"](self, ctx=ctx)


def _event_set(self):
    o = state.oid(self)
    if o:
        state.R.event("event.set", o)
    with state.QUIET:
        return _orig["eset"](self)


def _event_clear(self):
    o = state.oid(self)
    if o:
        state.R.event("event.clear", o)
    return _orig["eclear"](self)


def _event_wait(self, timeout=None):
    o = state.oid(self)
    if not o:
        return _orig["ewait"](self, timeout)
    if self.is_set():
        return True
    state.R.event("event.wait", o, wait=True)
    with state.QUIET:
        ok = _orig["ewait"](self, timeout)
    state.R.event("event.wake", o, r=None if ok else "timeout")
    return ok


def _barrier_init(self, parties, action=None, timeout=None, *, ctx):
    _new(self, "barrier.new", T_BARRIER, ',"parties":%d' % parties)
    with state.QUIET:
        _orig["binit"](self, parties, action, timeout, ctx=ctx)


def _barrier_wait(self, timeout=None):
    o = state.oid(self)
    if not o:
        return _orig["bwait"](self, timeout)
    arrived = self._count
    if arrived < self._parties - 1:
        state.R.event("barrier.wait", o, ',"index":%d' % arrived if arrived else "", wait=True)
    try:
        with state.QUIET:
            index = _orig["bwait"](self, timeout)
    except Exception as e:
        state.R.event("barrier.pass", o, r="timeout" if timeout and not self.broken else "error")
        raise
    state.R.event("barrier.pass", o, ',"index":%d' % index if index else "")
    return index


def install():
    _orig.update(make=S.SemLock._make_methods, cinit=S.Condition.__init__, cwait=S.Condition.wait,
                 cnotify=S.Condition.notify, cnotify_all=S.Condition.notify_all,
                 einit=S.Event.__init__, eset=S.Event.set, eclear=S.Event.clear, ewait=S.Event.wait,
                 binit=S.Barrier.__init__, bwait=S.Barrier.wait)
    S.SemLock._make_methods = _make_methods
    S.SemLock.__enter__, S.SemLock.__exit__ = _enter, _exit
    for cls in (S.Lock, S.RLock, S.Semaphore, S.BoundedSemaphore):
        _lock_init(cls)
    for cls in (S.SemLock, S.Condition, S.Barrier):
        state.wrap_state(cls)
    S.Condition.__init__, S.Condition.wait = _cond_init, _cond_wait
    S.Condition.notify, S.Condition.notify_all = _cond_notify, _cond_notify_all
    S.Event.__init__, S.Event.set, S.Event.clear, S.Event.wait = _event_init, _event_set, _event_clear, _event_wait
    S.Barrier.__init__, S.Barrier.wait = _barrier_init, _barrier_wait
