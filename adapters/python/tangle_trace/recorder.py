"""One trace file per process, in Tangle's format (docs/trace-format.md): a header line, then
event lines with absolute CLOCK_MONOTONIC times. Lines are buffered and written with os.write
before every blocking wait (so a SIGKILLed process leaves a prefix that reaches its last wait),
every 50 ms by a small flusher, and at exit."""
import _thread
import json
import os
import sys
import time

_now = time.clock_gettime_ns
_MONO = time.CLOCK_MONOTONIC
_tid = _thread.get_native_id
_HERE = os.path.dirname(os.path.abspath(__file__))

# ObjectType of handle.* (EventKind.swift)
T_PROCESS, T_THREAD, T_LOCK, T_QUEUE, T_PIPE, T_EVENT, T_COND, T_BARRIER, T_POOL = range(9)


def now():
    return _now(_MONO)


class Recorder:
    def __init__(self, directory):
        self.dir = directory
        self.depth = int(os.environ.get("TANGLE_STACK_DEPTH", "16") or 0)
        self.lock = _thread.allocate_lock()
        self.fd = -1
        self.pid = 0
        self.buf = []
        self.stacks = {}
        self.counter = 0
        self.msgs = 0
        self.closed = False
        self.flusher = False
        self.sends = {}
        self.own = {}           # id(code) -> (is it the adapter's own (not shown), code)
        self.defer = False      # a multiprocessing helper: open only at _bootstrap (with its process id)
        self.defer_t = now()

    # -- ids: (pid << 28) | counter of the creating process, like the Swift runtime
    def new_id(self):
        self._ensure_pid()
        self.counter += 1
        return (self.pid << 28) | self.counter

    def new_msg(self):
        self._ensure_pid()
        self.msgs += 1
        return (self.pid << 28) | self.msgs

    def _ensure_pid(self):
        pid = os.getpid()
        if pid != self.pid:
            self.after_fork(pid)

    def after_fork(self, pid=None):
        """A new process (fork): forget the parent's file, buffer, stacks and counters."""
        self.lock = _thread.allocate_lock()
        self.fd = -1
        self.buf = []
        self.sends = {}
        self.stacks = {}
        self.counter = 0
        self.msgs = 0
        self.closed = False
        self.flusher = False
        self.defer_t = now()
        self.pid = pid or os.getpid()

    # -- the file
    def open(self, proc_id=0, ppid=None, name=None, forked=0, t=None):
        """Creates this process's file with its header and proc.start (first event)."""
        self._ensure_pid()
        if self.fd >= 0:
            return
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        start = now()
        path = os.path.join(self.dir, "%d-%d.jsonl" % (self.pid, start))
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        pending, self.buf = self.buf, []
        try:
            boot = open("/proc/sys/kernel/random/boot_id").read().strip()
        except OSError:
            boot = ""
        ppid = os.getppid() if ppid is None else ppid
        if proc_id == 0:
            proc_id = self.new_id()
        header = {"k": "header", "v": 3, "pid": self.pid, "ppid": ppid, "exe": sys.executable,
                  "argv0": (sys.argv[0] if sys.argv and sys.argv[0] else sys.executable),
                  "clock": "CLOCK_MONOTONIC", "boot": boot, "t": start, "proc": proc_id,
                  "stack_depth": self.depth, "modules": [], "runtime": "python %d.%d.%d" % sys.version_info[:3]}
        os.write(self.fd, (json.dumps(header, separators=(",", ":")) + "\n").encode())
        extra = ',"ppid":%d' % ppid + (',"forked":1' if forked else "")
        self.event("proc.start", proc_id, extra, name=name or "MainProcess",
                   t=min(self.defer_t, start) if pending else start, stack=False)
        self.buf.extend(pending)
        if not self.flusher:
            self.flusher = True
            try:
                _thread.start_new_thread(self._flush_loop, (self.pid,))
            except RuntimeError:
                pass
        self.proc_id = proc_id

    def _flush_loop(self, pid):
        n = 0
        while self.pid == pid and not self.closed:
            time.sleep(0.02)
            n += 1
            if self.sends and self._overdue():
                self.flush()
            elif n % 3 == 0 and self.buf and self.pid == pid:
                self.flush()

    # -- writes that may block on a full pipe: a wait only when they really block
    def begin_write(self, o, kind):
        """Before a write into a pipe that blocks when the pipe is full: the flusher records
        `kind` (a wait) on this thread, timed at the write's start, if it is still blocked ~20 ms later."""
        self.sends[_tid()] = [now(), o, kind, False]

    def end_write(self):
        """After the write; True when its wait was recorded (the caller then records the done)."""
        with self.lock:
            entry = self.sends.pop(_tid(), None)
        return entry is not None and entry[3]

    def _overdue(self):
        late = now() - 20_000_000
        found = False
        with self.lock:
            for tid, entry in list(self.sends.items()):
                if not entry[3] and entry[0] < late:
                    entry[3] = True
                    self.buf.append('{"t":%d,"tid":%d,"k":"%s","o":%d}\n' % (entry[0], tid, entry[2], entry[1]))
                    found = True
        return found

    def flush(self, timeout=-1):
        """Writes the buffered lines; a signal handler passes a timeout (the lock may be held by
        the very thread it interrupted) and gives up rather than deadlock."""
        if not self.lock.acquire(True, timeout):
            return
        try:
            if self.buf and self.fd >= 0:
                data = "".join(self.buf).encode()
                self.buf = []
                try:
                    os.write(self.fd, data)
                except OSError:
                    pass
        finally:
            self.lock.release()

    def close(self, timeout=-1):
        self.flush(timeout)
        self.closed = True

    # -- events
    def event(self, kind, o=0, extra="", r=None, name=None, t=None, stack=True, wait=False):
        """Appends one event line; `wait`: flush now (the caller is about to block)."""
        if self.fd < 0:     # (a forked child's after_fork hook resets fd)
            self._ensure_pid()
            if self.closed:
                return
            if not self.defer and self.fd < 0:
                self.open()
        if self.closed:
            return
        tail = extra
        if o:
            tail = ',"o":%d' % o + tail
        if stack and self.depth:
            s = self._stack()
            if s:
                tail = ',"s":%d' % s + tail
        if r:
            tail += ',"r":"%s"' % r
        if name:
            tail += ',"name":' + json.dumps(name)
        line = '{"t":%d,"tid":%d,"k":"%s%s}\n' % (t or _now(_MONO), _tid(), kind, '"' + tail)
        with self.lock:
            self.buf.append(line)
        if wait or len(self.buf) >= 512:
            self.flush()

    def _stack(self):
        """Interns the Python stack of the caller as a text-frame stack record. The key is the
        (code, line) pairs of the frames, so a known stack costs a walk and a dict lookup."""
        f = sys._getframe(2)
        key = []
        own = self.own
        n = self.depth * 2
        while f is not None and len(key) < n:
            code = f.f_code
            cid = id(code)      # code objects hash their whole contents: key by id (kept alive in `own`)
            entry = own.get(cid)
            if entry is None:
                entry = own[cid] = (code.co_filename.startswith(_HERE), code)
            if not entry[0]:
                key.append(cid)
                key.append(f.f_lineno)
            f = f.f_back
        if not key:
            return 0
        key = tuple(key)
        sid = self.stacks.get(key)
        if sid is None:
            sid = len(self.stacks) + 1
            self.stacks[key] = sid
            codes = [own[key[i]][1] for i in range(0, len(key), 2)]
            frames = [{"file": c.co_filename, "line": key[2 * i + 1], "function": c.co_name}
                      for i, c in enumerate(codes)]
            rec = {"k": "stack", "id": sid, "pcs": [], "frames": frames}
            with self.lock:
                self.buf.append(json.dumps(rec, separators=(",", ":")) + "\n")
        return sid
