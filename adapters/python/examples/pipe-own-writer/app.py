"""A pipe whose reader still holds the write end: the forked reader inherited both ends and
never closed its copy of the writer, so recv() never sees end-of-file."""
import multiprocessing as mp


def read_all(reader, writer):
    count = 0
    try:
        while True:
            reader.recv()
            count += 1
    except EOFError:
        print("got", count)


if __name__ == "__main__":
    mp.set_start_method("fork")
    reader, writer = mp.Pipe(duplex=False)
    child = mp.Process(target=read_all, args=(reader, writer), name="reader")
    child.start()
    reader.close()
    for i in range(3):
        writer.send(i)
    writer.close()
    child.join()                         # the reader's own write end keeps it waiting
