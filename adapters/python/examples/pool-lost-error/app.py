"""A pool error nobody reads: one apply_async task raises, and its result is never fetched."""
import multiprocessing as mp


def square(x):
    if x == 3:
        raise ValueError("bad input %d" % x)
    return x * x


if __name__ == "__main__":
    with mp.Pool(2) as pool:
        good = pool.apply_async(square, (2,))
        lost = pool.apply_async(square, (3,))    # fails; nobody calls lost.get()
        print(good.get())
        pool.close()
        pool.join()
