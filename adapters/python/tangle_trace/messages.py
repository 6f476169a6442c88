"""A message id travels with its payload (put/get and send/recv then name the same message)."""
from . import state


class Msg:
    __slots__ = ("id", "obj", "recorded")

    def __init__(self, mid, obj, recorded=False):
        self.id, self.obj, self.recorded = mid, obj, recorded

    def __reduce__(self):
        # Pickled by a queue's feeder thread just before it writes: tell that write which message it is.
        state._tls.sending = self
        return (_msg, (self.id, self.obj))


def _msg(mid, obj):
    return Msg(mid, obj)


def unwrap(value):
    """(message id, payload) of what a get/recv returned."""
    if type(value) is Msg:
        return value.id, value.obj
    return 0, value
