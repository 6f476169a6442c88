# The Python peer of `tangle bench runtime` (BenchRuntime.swift): the same measurements with
# `multiprocessing`, printed as one JSON object. Embedded in the tangle binary at build time.
import json, multiprocessing as mp, os, statistics, sys, time

def consumer(q, ack, n):
    q.get()
    ack.put(1)
    for _ in range(n):
        q.get()
    ack.put(2)

def noop():
    pass

def square(x):
    return x * x

def add(a, b):
    return a + b

def cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except Exception:
        return os.cpu_count() or 1

def lock_pair_ns(quick):
    lock = mp.Lock()
    m = 200000 if quick else 1000000
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(m):
            lock.acquire()
            lock.release()
        best = min(best, (time.perf_counter() - t0) / m * 1e9)
    return round(best, 2)

def main():
    quick = "--quick" in sys.argv
    if "--only-lock" in sys.argv:
        print(json.dumps({"lock_pair_ns": lock_pair_ns(quick)}))
        return
    out = {}
    n = 20000 if quick else 200000
    q, ack = mp.Queue(), mp.Queue()
    p = mp.Process(target=consumer, args=(q, ack, n))
    p.start()
    q.put(-1)
    ack.get()
    t0 = time.perf_counter()
    for i in range(n):
        q.put(i)
    ack.get()
    t1 = time.perf_counter()
    p.join()
    out["queue_msgs_per_s"] = out["queue_msgs_per_s_untraced"] = round(n / (t1 - t0))

    out["lock_pair_ns"] = out["lock_pair_ns_untraced"] = lock_pair_ns(quick)

    for method, key, k in (("spawn", "spawn_join_ms", 3 if quick else 10), ("fork", "fork_join_ms", 5 if quick else 30)):
        ctx = mp.get_context(method)
        times = []
        for _ in range(k):
            t0 = time.perf_counter()
            c = ctx.Process(target=noop)
            c.start()
            c.join()
            times.append((time.perf_counter() - t0) * 1e3)
        out[key] = round(statistics.median(times), 2)

    items = 100000 if quick else 1000000
    with mp.Pool(cpu_count()) as pool:
        pool.map(square, range(1000))
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            pool.map(square, range(items))
            best = min(best, (time.perf_counter() - t0) / items * 1e9)
        best_imap = best_star = float("inf")
        pairs = list(zip(range(items), range(items)))
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in pool.imap(square, range(items), chunksize=1000):
                pass
            best_imap = min(best_imap, (time.perf_counter() - t0) / items * 1e9)
            t0 = time.perf_counter()
            pool.starmap(add, pairs)
            best_star = min(best_star, (time.perf_counter() - t0) / items * 1e9)
    out["pool_map_ns_per_item"] = round(best, 2)
    out["imap_ns_per_item"] = round(best_imap, 2)
    out["starmap_ns_per_item"] = round(best_star, 2)

    v = mp.Value("q", 0)
    m = 200000 if quick else 1000000
    best_v = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(m):
            with v.get_lock():
                v.value += 1
        best_v = min(best_v, (time.perf_counter() - t0) / m * 1e9)
    out["shared_value_add_ns"] = round(best_v, 2)
    out["start_method"] = mp.get_start_method()
    out["version"] = sys.version.split()[0]
    print(json.dumps(out))

if __name__ == "__main__":
    main()
