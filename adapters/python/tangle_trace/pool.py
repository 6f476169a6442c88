"""multiprocessing.Pool: apply_async, map, starmap, imap, imap_unordered (and apply/map_async).

Task ids are per pool (1, 2, …). A map's chunks are submitted, numbered and recorded by the
caller when the MapResult is made; an iterator's chunks when the task thread hands them to the
workers (its batch id, its first task's, is reserved when the iterator is made). Each task's
function travels wrapped in `Task`, which records task-start / task-done in the worker."""
import itertools
import os
from multiprocessing import pool as P

from . import handles, state
from .recorder import T_POOL, _HERE

_orig = {}
_SKIP = (_HERE, P.__file__.rsplit("/", 1)[0])


class Task:
    """A pool task's function, recording its start and end in the worker process."""
    __slots__ = ("pool", "task", "func")

    def __init__(self, pool, task, func):
        self.pool, self.task, self.func = pool, task, func

    def __call__(self, *a, **k):
        R = state.R
        if R is None:
            return self.func(*a, **k)
        attach(self.pool)
        arg = ',"task":%d' % self.task
        R.event("pool.task-start", self.pool, arg)
        try:
            result = self.func(*a, **k)
        except BaseException:
            R.event("pool.task-done", self.pool, arg, r="error", wait=True)
            raise
        R.event("pool.task-done", self.pool, arg, wait=True)
        return result


_attached = {}


def attach(pool):
    """handle.attach of the pool, once per worker process."""
    if _attached.get(pool) != os.getpid():
        _attached[pool] = os.getpid()
        state.R.event("handle.attach", pool, ',"type":%d' % T_POOL, stack=False)


def _traced(pool):
    return pool is not None and state.oid(pool)


def _init(self, processes=None, *a, **k):
    if state.R is not None and not state.quiet() and not isinstance(self, P.ThreadPool):
        self._tangle_id = state.R.new_id()
        self._tangle_type = T_POOL
        self._tangle_tasks = itertools.count(1)
        n = processes or os.cpu_count() or 1
        state.R.event("pool.new", self._tangle_id, ',"workers":%d' % n, name=state.creation_name(_SKIP))
    with state.QUIET:       # its queues and change notifier are the pool's own
        _orig["init"](self, processes, *a, **k)


def _setup_queues(self):
    with state.QUIET:
        _orig["setup"](self)
    o = state.oid(self)
    if not o:
        return
    put = self._quick_put
    self._inqueue._tangle_pool = o

    def quick_put(task):
        if type(task) is tuple and len(task) == 5:
            job, i, func, args, kwds = task
            result = self._cache.get(job)
            tid = _task_id(self, result, i, func, args)
            if tid:
                task = (job, i, Task(o, tid, func), args, kwds)
        return put(task)
    self._quick_put = quick_put


def _task_id(pool, result, i, func, args):
    if result is None:
        return 0
    tasks = getattr(result, "_tangle_taskids", None)
    if tasks is None:
        return 0
    if i in tasks:
        return tasks[i]
    # an iterator's chunk, numbered as it is handed out
    tid = result.__dict__.pop("_tangle_reserved", None) or next(pool._tangle_tasks)
    tasks[i] = tid
    items = len(args[0][1]) if func in (P.mapstar, P.starmapstar) and args else 1
    state.R.event("pool.submit", pool._tangle_id, ',"task":%d,"items":%d,"batch":%d' % (tid, items, result._tangle_batch))
    return tid


def _apply_init(self, pool, *a, **k):
    _orig["ainit"](self, pool, *a, **k)
    if type(self) is P.ApplyResult and _traced(pool):
        tid = next(pool._tangle_tasks)
        self._tangle_pool, self._tangle_batch, self._tangle_taskids = pool._tangle_id, 0, {0: tid}
        state.R.event("pool.submit", pool._tangle_id, ',"task":%d,"items":1' % tid)


def _map_init(self, pool, chunksize, length, *a, **k):
    _orig["minit"](self, pool, chunksize, length, *a, **k)
    if not _traced(pool):
        return
    self._tangle_errors = set()
    n = length // chunksize + bool(length % chunksize) if chunksize else 0
    ids = {i: next(pool._tangle_tasks) for i in range(n)}
    self._tangle_pool, self._tangle_taskids = pool._tangle_id, ids
    self._tangle_batch = ids.get(0, 0)
    for i in range(n):
        items = min(chunksize, length - i * chunksize)
        state.R.event("pool.submit", pool._tangle_id, ',"task":%d,"items":%d,"batch":%d' % (ids[i], items, self._tangle_batch))


def _map_set(self, i, success_result):
    errors = getattr(self, "_tangle_errors", None)
    if errors is not None and not success_result[0]:
        errors.add(i)
    return _orig["mset"](self, i, success_result)


def _results(self, r_all=None):
    """pool.result for every task of this result object (once)."""
    if self.__dict__.get("_tangle_read"):
        return
    self._tangle_read = True
    errors = getattr(self, "_tangle_errors", None)
    for i, tid in sorted(self._tangle_taskids.items()):
        if errors is None:
            bad = self.ready() and not self._success
        else:
            bad = i in errors
        state.R.event("pool.result", self._tangle_pool, ',"task":%d' % tid, r="error" if bad else r_all)


def _get(self, timeout=None):
    o = getattr(self, "_tangle_pool", 0)
    if not o:
        return _orig["get"](self, timeout)
    R = state.R
    if not self.ready():
        if type(self) is P.ApplyResult:
            R.event("pool.result-wait", o, ',"task":%d' % self._tangle_taskids[0], wait=True)
        else:
            R.event("pool.result-wait", o, ',"all":1,"batch":%d' % self._tangle_batch, wait=True)
    try:
        value = _orig["get"](self, timeout)
    except P.TimeoutError:
        first = min(self._tangle_taskids.values(), default=0)
        R.event("pool.result", o, ',"task":%d' % first, r="timeout")
        raise
    except BaseException:
        _results(self)
        raise
    _results(self)
    return value


def _imap_init(self, pool, *a, **k):
    _orig["iinit"](self, pool, *a, **k)
    if _traced(pool):
        self._tangle_pool, self._tangle_taskids = pool._tangle_id, {}
        self._tangle_batch = self._tangle_reserved = next(pool._tangle_tasks)
        self._tangle_order = []
        self._tangle_count = 0


def _unordered_set(self, i, obj):
    order = getattr(self, "_tangle_order", None)
    if order is not None:
        order.append(i)
    return _orig["uset"](self, i, obj)


def _next(self, timeout=None):
    o = getattr(self, "_tangle_pool", 0)
    if not o:
        return _orig["next"](self, timeout)
    R = state.R
    if not self._items and self._index != self._length:
        R.event("pool.result-wait", o, ',"batch":%d' % self._tangle_batch, wait=True)
    k = self._tangle_count
    try:
        value = _orig["next"](self, timeout)
    except StopIteration:
        R.event("pool.result", o)
        raise
    except P.TimeoutError:
        R.event("pool.result", o, r="timeout")
        raise
    except BaseException:
        R.event("pool.result", o, ',"task":%d' % _chunk_task(self, k), r="error")
        self._tangle_count = k + 1
        raise
    R.event("pool.result", o, ',"task":%d' % _chunk_task(self, k))
    self._tangle_count = k + 1
    return value


def _chunk_task(self, k):
    i = self._tangle_order[k] if isinstance(self, P.IMapUnorderedIterator) and k < len(self._tangle_order) else k
    return self._tangle_taskids.get(i, 0)


def _simple(name, kind, wait=False):
    def f(self, *a, **k):
        o = state.oid(self)
        if not o:
            return _orig[name](self, *a, **k)
        if wait:
            state.R.event(kind + "-wait", o, wait=True)
        else:
            state.R.event(kind, o)
        with state.QUIET:
            result = _orig[name](self, *a, **k)
        if wait:
            state.R.event(kind + "-done", o)
        return result
    return f


def install():
    _orig.update(init=P.Pool.__init__, setup=P.Pool._setup_queues, ainit=P.ApplyResult.__init__,
                 minit=P.MapResult.__init__, mset=P.MapResult._set, get=P.ApplyResult.get,
                 iinit=P.IMapIterator.__init__, uset=P.IMapUnorderedIterator._set, next=P.IMapIterator.next,
                 close=P.Pool.close, terminate=P.Pool.terminate, join=P.Pool.join)
    P.Pool.__init__, P.Pool._setup_queues = _init, _setup_queues
    P.ApplyResult.__init__, P.ApplyResult.get = _apply_init, _get
    P.MapResult.__init__, P.MapResult._set = _map_init, _map_set
    P.IMapIterator.__init__, P.IMapIterator.next = _imap_init, _next
    P.IMapIterator.__next__ = _next
    P.IMapUnorderedIterator._set = _unordered_set
    P.Pool.close = _simple("close", "pool.close")
    P.Pool.terminate = _simple("terminate", "pool.terminate")
    P.Pool.join = _simple("join", "pool.join", wait=True)
