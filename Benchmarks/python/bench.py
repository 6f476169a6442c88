"""Cost of the Python adapter (issue 17): each figure next to its untraced peer, measured in the
same run. Every measurement runs in a fresh interpreter, traced (TANGLE_TRACE + the adapter's
sitecustomize, as `tangle run` does) or not.

    python3 Benchmarks/python/bench.py [--quick]

1. per operation: a Lock acquire+release pair, a Queue put+get pair (same process), a Pipe
   send+recv pair, Event set+clear — ns per pair (median of 5 runs), traced vs untraced, and the
   events and trace bytes each pair costs;
2. a producer/consumer program (1 producer, 2 consumer processes, N items through a Queue,
   one pill per consumer): wall time, median of 3 runs, traced vs untraced.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SITE = os.path.join(os.path.dirname(os.path.dirname(HERE)), "adapters", "python", "tangle_trace", "_site")

MICRO = r'''
import multiprocessing as mp, time, sys, json
op, n = sys.argv[1], int(sys.argv[2])
lock, q, ev = mp.Lock(), mp.Queue(), mp.Event()
r, w = mp.Pipe()
def lock_pair():
    lock.acquire(); lock.release()
def queue_pair():
    q.put(1); q.get()
def pipe_pair():
    w.send(1); r.recv()
def event_pair():
    ev.set(); ev.clear()
f = {"lock": lock_pair, "queue": queue_pair, "pipe": pipe_pair, "event": event_pair}[op]
for _ in range(min(n, 1000)): f()
t = time.perf_counter_ns()
for _ in range(n): f()
print(json.dumps((time.perf_counter_ns() - t) / n))
'''

PRODCON = r'''
import multiprocessing as mp, sys
def consume(q, out):
    total = 0
    while True:
        x = q.get()
        if x is None: break
        total += x
    out.put(total)
if __name__ == "__main__":
    n = int(sys.argv[1])
    q, out = mp.Queue(), mp.Queue()
    cs = [mp.Process(target=consume, args=(q, out)) for _ in range(2)]
    for c in cs: c.start()
    for i in range(n): q.put(i)
    for _ in cs: q.put(None)
    total = out.get() + out.get()
    for c in cs: c.join()
    assert total == n * (n - 1) // 2
'''


def run(script, args, traced):
    d = tempfile.mkdtemp(prefix="tangle-pybench-")
    path = os.path.join(d, "prog.py")
    with open(path, "w") as f:
        f.write(script)
    env = dict(os.environ)
    env.pop("TANGLE_TRACE", None)
    trace = os.path.join(d, "trace")
    if traced:
        env.update(TANGLE_TRACE=trace, PYTHONPATH=SITE)
    t = __import__("time").perf_counter()
    out = subprocess.run([sys.executable, path] + [str(a) for a in args], env=env, check=True,
                         capture_output=True, text=True).stdout
    wall = __import__("time").perf_counter() - t
    size = events = 0
    if traced:
        for name in os.listdir(trace):
            p = os.path.join(trace, name)
            size += os.path.getsize(p)
            with open(p) as fh:
                events += sum(1 for l in fh if '"k":"stack"' not in l and '"k":"header"' not in l)
    shutil.rmtree(d, ignore_errors=True)
    return out, wall, events, size


def main():
    quick = "--quick" in sys.argv
    n = 2000 if quick else 20000
    print("python %s; %d pairs per run; median of 5 runs" % (sys.version.split()[0], n))
    print("%-24s %12s %12s %10s %14s %12s" % ("operation (pair)", "untraced ns", "traced ns", "overhead", "events/pair", "bytes/pair"))
    for op in ("lock", "queue", "pipe", "event"):
        plain = statistics.median(float(run(MICRO, [op, n], False)[0]) for _ in range(5))
        traced_runs = [run(MICRO, [op, n], True) for _ in range(5)]
        traced = statistics.median(float(r[0]) for r in traced_runs)
        ev, size = traced_runs[0][2], traced_runs[0][3]
        print("%-24s %12.0f %12.0f %9.1fx %14.1f %12.0f" % (op, plain, traced, traced / plain,
                                                          ev / (n + min(n, 1000)), size / (n + min(n, 1000))))
    items = 2000 if quick else 20000
    plain = statistics.median(run(PRODCON, [items], False)[1] for _ in range(3))
    runs = [run(PRODCON, [items], True) for _ in range(3)]
    traced = statistics.median(r[1] for r in runs)
    print("producer/consumer, %d items, 2 consumers: untraced %.3f s, traced %.3f s (%.2fx); %d events, %d KB of trace"
          % (items, plain, traced, traced / plain, runs[0][2], runs[0][3] // 1024))


if __name__ == "__main__":
    main()
