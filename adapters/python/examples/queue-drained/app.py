"""The join-before-drain program done right: the parent reads every item before it joins the
child (forkserver start method)."""
import multiprocessing as mp


def produce(results):
    for i in range(64):
        results.put(b"x" * 4096)


if __name__ == "__main__":
    mp.set_start_method("forkserver")
    results = mp.Queue()
    producer = mp.Process(target=produce, args=(results,), name="producer")
    producer.start()
    items = [results.get() for _ in range(64)]
    producer.join()
    print(len(items))
