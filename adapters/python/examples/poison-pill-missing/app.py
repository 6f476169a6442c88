"""One poison pill for two consumers: the second consumer waits on the queue forever, and the
main process waits in join for it (spawn start method)."""
import multiprocessing as mp


def consume(tasks):
    while True:
        item = tasks.get()
        if item is None:
            break


if __name__ == "__main__":
    mp.set_start_method("spawn")
    tasks = mp.Queue()
    consumers = [mp.Process(target=consume, args=(tasks,), name="consumer-%d" % i) for i in range(2)]
    for c in consumers:
        c.start()
    for i in range(10):
        tasks.put(i)
    tasks.put(None)                      # one pill: only one consumer stops
    for c in consumers:
        c.join()
