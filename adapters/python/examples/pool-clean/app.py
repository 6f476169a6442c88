"""A pool whose every result is read: map, starmap, imap, imap_unordered and apply_async, one
error caught from its get()."""
import multiprocessing as mp
import operator


def square(x):
    if x < 0:
        raise ValueError("negative")
    return x * x


if __name__ == "__main__":
    with mp.Pool(2) as pool:
        a = pool.map(square, range(10), chunksize=3)
        b = pool.starmap(operator.add, [(1, 2), (3, 4)])
        c = list(pool.imap(square, range(5)))
        d = sorted(pool.imap_unordered(square, range(5), chunksize=2))
        bad = pool.apply_async(square, (-1,))
        try:
            bad.get()
        except ValueError:
            pass
        pool.close()
        pool.join()
    print(sum(a), b, c, d)
