"""One poison pill per consumer: both consumers stop and are joined (spawn start method)."""
import multiprocessing as mp


def consume(tasks, results):
    while True:
        item = tasks.get()
        if item is None:
            break
        results.put(item * item)


if __name__ == "__main__":
    mp.set_start_method("spawn")
    tasks, results = mp.Queue(), mp.Queue()
    consumers = [mp.Process(target=consume, args=(tasks, results), name="consumer-%d" % i) for i in range(2)]
    for c in consumers:
        c.start()
    for i in range(10):
        tasks.put(i)
    for _ in consumers:
        tasks.put(None)
    total = sum(results.get() for _ in range(10))
    for c in consumers:
        c.join()
    print(total)
