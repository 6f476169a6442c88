"""A lock held across queue.get(): the worker takes the lock and then waits for an item; the main
process needs the same lock before it puts the item."""
import multiprocessing as mp


def work(guard, jobs, holding):
    with guard:
        holding.set()
        job = jobs.get()                 # waits with the lock held
        print(job)


if __name__ == "__main__":
    guard = mp.Lock()
    jobs = mp.Queue()
    holding = mp.Event()
    worker = mp.Process(target=work, args=(guard, jobs, holding), name="worker")
    worker.start()
    holding.wait()
    with guard:                          # never acquired
        jobs.put("job")
    worker.join()
