"""Shared state of the adapter: the process's recorder, the per-thread 'quiet' depth (objects a
multiprocessing primitive builds for itself are not traced: a Queue's locks and pipes are the
queue), and the names objects get from the line that created them (`tasks = mp.Queue()`)."""
import linecache
import re
import sys
import threading

R = None            # the Recorder, once activated
_tls = threading.local()
_ASSIGN = re.compile(r"^\s*(?:self\.)?([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s*(?::[^=]+)?=[^=]")
_WITH = re.compile(r"^\s*with\s.*\bas\s+([A-Za-z_]\w*)\s*:")


def quiet():
    return getattr(_tls, "quiet", 0) > 0


class Quiet:
    """`with Quiet():` objects created inside are internal (untraced)."""
    __slots__ = ()

    def __enter__(self):
        _tls.quiet = getattr(_tls, "quiet", 0) + 1

    def __exit__(self, *exc):
        _tls.quiet -= 1


QUIET = Quiet()


def creation_name(skip_prefixes):
    """The variable the caller assigns the new object to, read from its source line."""
    f = sys._getframe(2)
    while f is not None and f.f_code.co_filename.startswith(skip_prefixes):
        f = f.f_back
    if f is None:
        return None
    line = linecache.getline(f.f_code.co_filename, f.f_lineno)
    m = _ASSIGN.match(line) or _WITH.match(line)
    return m.group(1) if m else None


def oid(obj):
    """The object's Tangle id, 0 when it is not traced."""
    return getattr(obj, "_tangle_id", 0)


_MARK = "tangle-state"


def wrap_state(cls):
    """Carries `_tangle_*` attributes through the class's pickled state (spawn, pool pickling)."""
    if "__getstate__" not in cls.__dict__ or getattr(cls.__getstate__, "_tangle", False):
        return
    get, put = cls.__getstate__, cls.__setstate__

    def __getstate__(self):
        extra = {k: v for k, v in self.__dict__.items() if k.startswith("_tangle")}
        return (get(self), extra, _MARK)

    def __setstate__(self, state):
        # Barrier.__init__ calls __setstate__ with its own tuple: only ours carries the mark.
        if type(state) is tuple and len(state) == 3 and state[2] == _MARK:
            self.__dict__.update(state[1])
            put(self, state[0])
            from . import handles
            handles.attached(self)
        else:
            put(self, state)

    __getstate__._tangle = True
    cls.__getstate__, cls.__setstate__ = __getstate__, __setstate__
