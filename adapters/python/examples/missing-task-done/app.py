"""A JoinableQueue whose worker forgets task_done for one kind of item: q.join() waits forever."""
import multiprocessing as mp


def work(tasks):
    while True:
        item = tasks.get()
        if item % 2 == 0:
            tasks.task_done()            # odd items are never marked done


if __name__ == "__main__":
    tasks = mp.JoinableQueue()
    worker = mp.Process(target=work, args=(tasks,), name="worker", daemon=True)
    worker.start()
    for i in range(4):
        tasks.put(i)
    tasks.join()                         # never returns
