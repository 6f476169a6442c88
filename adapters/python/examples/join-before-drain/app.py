"""Join before drain: the child puts more than a pipe holds into an unbounded Queue; its feeder
thread blocks writing, the child's exit waits for the feeder (join_thread), and the parent joins
the child before it reads the queue."""
import multiprocessing as mp


def produce(results):
    for i in range(64):
        results.put(b"x" * 4096)


if __name__ == "__main__":
    results = mp.Queue()
    producer = mp.Process(target=produce, args=(results,), name="producer")
    producer.start()
    producer.join()                      # never returns: the child waits for its feeder
    items = [results.get() for _ in range(64)]
    print(len(items))
