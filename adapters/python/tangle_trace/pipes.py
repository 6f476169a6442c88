"""Pipe and Connection: end 0 is the first connection Pipe() returns (the reader of a one-way
pipe), end 1 the second (its writer). Each process records the ends it holds (handle.attach /
handle.close), so the analyzer knows when every write end is closed and recv() sees EOF."""
from multiprocessing import connection as C
from multiprocessing import reduction

from . import handles, state
from .messages import Msg, unwrap
from .recorder import T_PIPE, _HERE

_orig = {}
_SKIP = (_HERE, C.__file__.rsplit("/", 1)[0])


def _tag(conn, o, end):
    conn._tangle_id, conn._tangle_end, conn._tangle_type = o, end, T_PIPE
    handles.attached(conn)


def Pipe(duplex=True):
    a, b = _orig["Pipe"](duplex)
    R = state.R
    if R is None or state.quiet():
        return a, b
    o = R.new_id()
    R.event("pipe.new", o, ',"duplex":1' if duplex else "", name=state.creation_name(_SKIP))
    _tag(a, o, 0)
    _tag(b, o, 1)
    return a, b


def _end(self):
    e = self.__dict__.get("_tangle_end", 0)
    return ',"end":%d' % e if e else ""


def _send(self, obj):
    o = state.oid(self)
    if not o:
        return _orig["send"](self, obj)
    R = state.R
    msg = Msg(R.new_msg(), obj, True)
    extra = ',"msg":%d' % msg.id + _end(self)
    R.event("pipe.send", o, extra)
    try:
        return _orig["send"](self, msg)
    except (BrokenPipeError, ConnectionResetError):
        R.event("pipe.send", o, extra, r="eof")
        raise


def _recv(self):
    o = state.oid(self)
    if not o:
        return _orig["recv"](self)
    R = state.R
    end = _end(self)
    try:
        ready = self.closed or _orig["poll"](self, 0)
    except (OSError, EOFError):
        ready = True
    if not ready:
        R.event("pipe.recv-wait", o, end, wait=True)
    try:
        value = _orig["recv"](self)
    except EOFError:
        R.event("pipe.recv", o, end, r="eof")
        raise
    mid, value = unwrap(value)
    R.event("pipe.recv", o, (',"msg":%d' % mid if mid else "") + end)
    return value


def _closed_here(self):
    o = state.oid(self)
    if o and state.R is not None and self._handle is not None:
        end = _end(self)
        state.R.event("pipe.close", o, end)
        state.R.event("handle.close", o, ',"type":%d' % T_PIPE + end, stack=False)
        handles.live_ends.discard(self)


def _close(self):
    _closed_here(self)
    return _orig["close"](self)


def _del(self):
    try:
        _closed_here(self)
    except Exception:
        pass
    return _orig["del"](self)


def _reduce(conn):
    f, args = _orig["reduce"](conn)
    o = state.oid(conn)
    return _rebuild, (f, args, (o, conn.__dict__.get("_tangle_end", 0)) if o else None)


def _rebuild(f, args, tag):
    conn = f(*args)
    if tag:
        _tag(conn, tag[0], tag[1])
    return conn


def install():
    _orig.update(Pipe=C.Pipe, send=C._ConnectionBase.send, recv=C._ConnectionBase.recv,
                 poll=C._ConnectionBase.poll, close=C._ConnectionBase.close, del_=None,
                 reduce=C.reduce_connection)
    _orig["del"] = C._ConnectionBase.__del__
    C.Pipe = Pipe
    C._ConnectionBase.send, C._ConnectionBase.recv = _send, _recv
    C._ConnectionBase.close, C._ConnectionBase.__del__ = _close, _del
    reduction.register(C.Connection, _reduce)
