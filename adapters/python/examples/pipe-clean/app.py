"""The same reader, but it closes its own copy of the write end first: recv() sees end-of-file
once the parent closes its writer."""
import multiprocessing as mp


def read_all(reader, writer):
    writer.close()
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
    child.join()
