"""Unit tests of the adapter: each runs a small real multiprocessing program traced (in a fresh
interpreter, through the same sitecustomize `tangle run` uses) and reads back its trace files."""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SITE = os.path.join(os.path.dirname(HERE), "tangle_trace", "_site")


def run_traced(source, timeout=30):
    """Runs `source` traced; returns {pid: [lines…]} (header first) of the files it left."""
    d = tempfile.mkdtemp(prefix="tangle-py-unit-")
    env = dict(os.environ, TANGLE_TRACE=d, PYTHONPATH=SITE)
    script = os.path.join(d, "app.py.src")
    with open(script, "w") as f:
        f.write(textwrap.dedent(source))
    subprocess.run([sys.executable, script], env=env, timeout=timeout, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    files = {}
    for path in glob.glob(os.path.join(d, "*.jsonl")):
        with open(path) as f:
            lines = [json.loads(l) for l in f if l.strip()]
        files[lines[0]["pid"]] = lines
    shutil.rmtree(d, ignore_errors=True)
    return files


def events(files, kind=None):
    return [e for lines in files.values() for e in lines[1:] if e["k"] != "stack" and (kind is None or e["k"] == kind)]


class AdapterTests(unittest.TestCase):
    def test_header_first_then_proc_start(self):
        files = run_traced("import multiprocessing as mp\nq = mp.Queue()\n")
        self.assertEqual(len(files), 1)
        lines = next(iter(files.values()))
        self.assertEqual(lines[0]["k"], "header")
        self.assertEqual(lines[0]["v"], 3)
        self.assertEqual(lines[1]["k"], "proc.start")
        self.assertEqual(lines[0]["proc"], lines[1]["o"])
        self.assertEqual(lines[-1]["k"], "proc.exit")

    def test_ids_and_message_ids_survive_spawn(self):
        files = run_traced("""
            import multiprocessing as mp
            def child(q, lock, r, w):
                with lock:
                    item = q.get()
                w.send(item)
            if __name__ == "__main__":
                mp.set_start_method("spawn")
                q, lock = mp.Queue(), mp.Lock()
                r, w = mp.Pipe(duplex=False)
                p = mp.Process(target=child, args=(q, lock, r, w))
                p.start()
                q.put("hello")
                print(r.recv())
                p.join()
        """)
        self.assertEqual(len(files), 2, files.keys())
        new = {e["k"]: e["o"] for e in events(files) if e["k"].endswith(".new")}
        puts, gets = events(files, "queue.put"), events(files, "queue.get")
        self.assertEqual([e["msg"] for e in puts], [e["msg"] for e in gets])
        self.assertTrue(all(e["o"] == new["queue.new"] for e in puts + gets))
        self.assertTrue(any(e["o"] == new["lock.new"] for e in events(files, "lock.acquired")))
        sends, recvs = events(files, "pipe.send"), events(files, "pipe.recv")
        self.assertEqual([e["msg"] for e in sends], [e["msg"] for e in recvs])
        spawn = events(files, "proc.spawn")[0]
        child = files[spawn["child"]]
        self.assertEqual(child[0]["proc"], spawn["o"])
        self.assertEqual(child[1]["k"], "proc.start")
        attached = {(e["o"], e.get("end", 0)) for e in child[1:] if e["k"] == "handle.attach"}
        self.assertIn((new["queue.new"], 0), attached)
        self.assertIn((new["pipe.new"], 1), attached)

    def test_fork_child_inherits_pipe_ends_and_sees_eof(self):
        files = run_traced("""
            import multiprocessing as mp
            def child(r, w):
                w.close()
                try:
                    while True: r.recv()
                except EOFError:
                    pass
            mp.set_start_method("fork")
            r, w = mp.Pipe(duplex=False)
            p = mp.Process(target=child, args=(r, w)); p.start()
            r.close(); w.send(1); w.close(); p.join()
        """)
        spawn = events(files, "proc.spawn")[0]
        self.assertEqual(spawn.get("forked"), 1)
        child = files[spawn["child"]][1:]
        kinds = [e["k"] for e in child if e["k"] != "stack"]
        self.assertEqual(kinds.count("handle.attach"), 2, kinds)
        self.assertEqual([e.get("r") for e in child if e["k"] == "pipe.recv"], [None, "eof"])

    def test_sigkilled_process_leaves_its_last_wait(self):
        files = run_traced("""
            import multiprocessing as mp, time
            def child(q):
                q.get()
            q = mp.Queue()
            p = mp.Process(target=child, args=(q,)); p.start()
            time.sleep(0.5); p.kill(); p.join()
        """)
        spawn = events(files, "proc.spawn")[0]
        child = [e for e in files[spawn["child"]][1:] if e["k"] != "stack"]
        self.assertEqual(child[-1]["k"], "queue.get-wait")
        done = [e for e in events(files, "proc.join-done")]
        self.assertEqual(done[0].get("signal"), 9)
        self.assertEqual(len(events(files, "proc.kill")), 1)

    def test_pool_error_read_and_unread(self):
        files = run_traced("""
            import multiprocessing as mp
            def f(x):
                if x == 1: raise ValueError(x)
                return x
            with mp.Pool(2) as pool:
                a = pool.apply_async(f, (1,))        # never read
                print(pool.map(f, [0, 2, 4], chunksize=1))
                pool.close(); pool.join()
        """)
        done = {e["task"]: e.get("r") for e in events(files, "pool.task-done")}
        read = {e["task"]: e.get("r") for e in events(files, "pool.result")}
        self.assertEqual(sorted(done), [1, 2, 3, 4])
        self.assertEqual(done[1], "error")
        self.assertNotIn(1, read)
        self.assertEqual(sorted(read), [2, 3, 4])
        batch = {e["task"]: e.get("batch", 0) for e in events(files, "pool.submit")}
        self.assertEqual(batch, {1: 0, 2: 2, 3: 2, 4: 2})

    def test_text_stacks_name_the_call_site(self):
        files = run_traced("import multiprocessing as mp\nlock = mp.Lock()\nlock.acquire()\nlock.release()\n")
        lines = next(iter(files.values()))
        stacks = {l["id"]: l for l in lines if l["k"] == "stack"}
        acq = [l for l in lines if l["k"] == "lock.acquired"][0]
        frame = stacks[acq["s"]]["frames"][0]
        self.assertEqual((frame["line"], frame["function"]), (3, "<module>"))
        self.assertEqual(stacks[acq["s"]]["pcs"], [])
        self.assertEqual([l["name"] for l in lines if l["k"] == "lock.new"], ["lock"])

    def test_python_dash_m_tangle_trace_records_spawned_children(self):
        d = tempfile.mkdtemp(prefix="tangle-py-unit-m-")
        script = os.path.join(d, "app.py")
        with open(script, "w") as f:
            f.write(textwrap.dedent("""
                import multiprocessing as mp
                def child(q):
                    q.put(1)
                if __name__ == "__main__":
                    mp.set_start_method("spawn")
                    q = mp.Queue()
                    p = mp.Process(target=child, args=(q,)); p.start(); q.get(); p.join()
            """))
        env = dict(os.environ)
        env.pop("TANGLE_TRACE", None)
        env["PYTHONPATH"] = os.path.dirname(HERE)
        trace = os.path.join(d, "trace")
        subprocess.run([sys.executable, "-m", "tangle_trace", "--trace-dir", trace, script], env=env,
                       timeout=30, check=True, stdout=subprocess.DEVNULL)
        names = os.listdir(trace)
        shutil.rmtree(d, ignore_errors=True)
        self.assertEqual(len(names), 2, names)


if __name__ == "__main__":
    unittest.main()
