"""Records a Python `multiprocessing` program in Tangle's trace format.

Turned on by `TANGLE_TRACE=<dir>` (with the package installed, a .pth hook calls `activate()` at
start-up), by `python3 -m tangle_trace [--trace-dir DIR] app.py`, or by `tangle run -- python3 app.py`
(which puts `tangle_trace/_site` on PYTHONPATH). See adapters/python/README.md."""
import atexit
import os
import sys

from . import state

__all__ = ["activate", "active"]
_HELPERS = (b"multiprocessing.spawn", b"multiprocessing.forkserver", b"multiprocessing.resource_tracker")


def active():
    return state.R is not None


def _exit():
    R = state.R
    if R is None or R.closed or R.fd < 0 or os.getpid() != R.pid:
        return
    code = _exit_code[0]
    R.event("proc.exit", 0, ',"status":%d' % code if code else "", stack=False)
    R.close()


_exit_code = [0]


def _excepthook(tp, value, tb):
    _exit_code[0] = 1
    _prev_hook(tp, value, tb)


_prev_hook = sys.excepthook


def activate(directory=None):
    """Patches multiprocessing (and threading's Thread) to record into `directory` (default:
    $TANGLE_TRACE). Idempotent; children inherit TANGLE_TRACE."""
    if state.R is not None:
        return state.R
    directory = directory or os.environ.get("TANGLE_TRACE")
    if not directory:
        return None
    os.environ["TANGLE_TRACE"] = directory
    from .recorder import Recorder
    R = Recorder(directory)
    try:
        cmdline = open("/proc/self/cmdline", "rb").read()
    except OSError:
        cmdline = b""
    R.defer = any(h in cmdline for h in _HELPERS)
    R._ensure_pid()
    state.R = R
    # Registered before multiprocessing.util's exit function, so it runs after it (join_thread at exit).
    atexit.register(_exit)
    sys.excepthook = _excepthook
    os.register_at_fork(after_in_child=lambda: R.after_fork())
    from . import pipes, pool, processes, queues, sync
    processes.install()
    sync.install()
    queues.install()
    pipes.install()
    pool.install()
    if not R.defer:
        R.open(ppid=os.getppid(), name="MainProcess")
    return R


def _deactivate_for_tests():
    state.R = None
