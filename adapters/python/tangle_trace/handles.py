"""handle.attach / handle.close: which process holds which object (a pipe end's holders decide
whether a reader can still see end-of-file)."""
import os
import weakref

from . import state
from .recorder import T_PROCESS, T_THREAD, T_LOCK, T_QUEUE, T_PIPE, T_EVENT, T_COND, T_BARRIER, T_POOL

live_ends = weakref.WeakSet()     # this process's open traced Connection ends


def type_of(obj):
    return getattr(obj, "_tangle_type", None)


def attached(obj):
    """Records that this process holds `obj` (once per process)."""
    R = state.R
    if R is None or not state.oid(obj):
        return
    pid = os.getpid()
    if obj.__dict__.get("_tg_attached") == pid:
        return
    obj.__dict__["_tg_attached"] = pid
    t = type_of(obj)
    if t is None:
        return
    end = getattr(obj, "_tangle_end", None)
    if t == T_PIPE:
        if getattr(obj, "closed", False):
            return
        live_ends.add(obj)
    R.event("handle.attach", obj._tangle_id, ',"type":%d' % t + (',"end":%d' % end if end else ""), stack=False)


def scan(value, depth=0):
    """handle.attach for every traced object in a child's arguments."""
    if depth > 3:
        return
    if state.oid(value):
        attached(value)
    elif getattr(value, "_tangle_pool", 0):    # a pool's task queue: this process is its worker
        from . import pool
        pool.attach(value._tangle_pool)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for v in value:
            scan(v, depth + 1)
    elif isinstance(value, dict):
        for v in value.values():
            scan(v, depth + 1)


def inherited():
    """A forked child holds every pipe end its parent had open."""
    for conn in list(live_ends):
        attached(conn)
