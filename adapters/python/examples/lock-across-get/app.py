"""A lock held across queue.get(): the worker takes the lock and then waits for an item; the main
process needs the same lock before it puts the item."""
import multiprocessing as mp
import time


def work(guard, jobs):
    with guard:
        job = jobs.get()                 # waits with the lock held
        print(job)


if __name__ == "__main__":
    guard = mp.Lock()
    jobs = mp.Queue()
    worker = mp.Process(target=work, args=(guard, jobs), name="worker")
    worker.start()
    time.sleep(0.3)
    with guard:                          # never acquired
        jobs.put("job")
    worker.join()
