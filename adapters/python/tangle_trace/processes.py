"""Processes (fork, spawn, forkserver) and threads."""
import os
import signal
import sys
import threading
from multiprocessing import process as mpprocess

from . import handles, state
from .recorder import now

_orig = {}
_INTERNAL_THREADS = ("_handle_workers", "_handle_tasks", "_handle_results")


def _exit_status(code):
    if code is None:
        return ""
    if code < 0:
        return ',"signal":%d' % (-code)
    return ',"status":%d' % code if code else ""


def _method(self):
    m = getattr(self, "_start_method", None)
    if m is None:
        import multiprocessing
        m = multiprocessing.get_start_method(allow_none=True) or "fork"
    return m


def _start(self):
    R = state.R
    if R is None:
        return _orig["start"](self)
    pid_obj = self.__dict__.get("_tangle_id") or R.new_id()
    self._tangle_id = pid_obj
    self._tangle_type = 0
    target = getattr(self, "_target", None)
    entry = getattr(target, "__qualname__", None) or type(self).__name__
    t0 = now()
    _orig["start"](self)
    forked = _method(self) == "fork"
    R.event("proc.spawn", pid_obj, ',"child":%d' % self.pid + (',"forked":1' if forked else ""), name=entry, t=t0)


def _bootstrap(self, *a, **k):
    """Runs in the child, for every start method, before the target."""
    R = state.R
    if R is None:
        return _orig["_bootstrap"](self, *a, **k)
    R._ensure_pid()
    forked = _method(self) == "fork"
    R.open(proc_id=self.__dict__.get("_tangle_id", 0), ppid=os.getppid(), name=self.name, forked=forked)
    _install_sigterm()
    handles.inherited()
    handles.scan(getattr(self, "_args", ()))
    handles.scan(getattr(self, "_kwargs", {}))
    code = _orig["_bootstrap"](self, *a, **k)
    R.event("proc.exit", 0, _exit_status(code), stack=False)
    R.close()
    return code


def _join(self, timeout=None):
    R = state.R
    o = state.oid(self)
    if not o or state.quiet():
        return _orig["join"](self, timeout)
    child = ',"child":%d' % (self.pid or 0)
    if self.exitcode is None and self._popen is not None and self._popen.poll() is None:
        R.event("proc.join-wait", o, child, wait=True)
    _orig["join"](self, timeout)
    code = self.exitcode
    R.event("proc.join-done", o, child + _exit_status(code), r=None if code is not None else "timeout")


def _signal(name, kind):
    def f(self):
        o = state.oid(self)
        if o and not state.quiet():
            state.R.event(kind, o, ',"child":%d' % (self.pid or 0))
        return _orig[name](self)
    return f


def _on_sigterm(signum, frame):
    R = state.R
    if R is not None and R.fd >= 0 and not R.closed and R.lock.acquire(True, 0.2):
        R.lock.release()
        R.event("proc.exit", 0, ',"signal":%d' % signum, stack=False)
        R.close(0.2)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_sigterm():
    if threading.current_thread() is not threading.main_thread():
        return
    for s in (signal.SIGTERM,):
        try:
            if signal.getsignal(s) in (signal.SIG_DFL, None):
                signal.signal(s, _on_sigterm)
        except (ValueError, OSError):
            pass


# -- threads
def _thread_start(self):
    R = state.R
    if state.quiet():
        self._tangle_quiet = True
        return _orig["tstart"](self)
    self._tangle_id = R.new_id()
    self._tangle_type = 1
    R.event("thread.spawn", self._tangle_id)
    return _orig["tstart"](self)


def _bootstrap_inner(self):
    R = state.R
    o = state.oid(self)
    if not o or R is None:
        return _orig["tboot"](self)
    target = getattr(getattr(self, "_target", None), "__name__", "")
    internal = target in _INTERNAL_THREADS
    R.event("thread.start", o, ',"internal":1' if internal else "", name=self.name, stack=False)
    try:
        _orig["tboot"](self)
    finally:
        R.event("thread.exit", o, stack=False)


def _thread_join(self, timeout=None):
    o = state.oid(self)
    if not o or state.quiet() or state.R is None:
        return _orig["tjoin"](self, timeout)
    waited = self.is_alive()
    if waited:
        state.R.event("thread.join-wait", o, wait=True)
    _orig["tjoin"](self, timeout)
    if waited:
        state.R.event("thread.join-done", o, r="timeout" if self.is_alive() else None)


def install():
    B = mpprocess.BaseProcess
    _orig.update(start=B.start, _bootstrap=B._bootstrap, join=B.join, terminate=B.terminate, kill=B.kill,
                 tstart=threading.Thread.start, tboot=threading.Thread._bootstrap_inner, tjoin=threading.Thread.join)
    B.start, B._bootstrap, B.join = _start, _bootstrap, _join
    B.terminate, B.kill = _signal("terminate", "proc.terminate"), _signal("kill", "proc.kill")
    threading.Thread.start = _thread_start
    threading.Thread._bootstrap_inner = _bootstrap_inner
    threading.Thread.join = _thread_join
    _install_sigterm()
