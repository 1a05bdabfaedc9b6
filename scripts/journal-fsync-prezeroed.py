#!/usr/bin/env python3
"""What a journal fsync costs when its appends allocate blocks, and when
they land in blocks already written.

fjall creates each journal with set_len (a hole) and appends into it, so
each fsync also allocates the blocks appended since and writes the inode.
This writes rounds of 30 appends of 4,400 bytes, each round followed by an
fsync or fdatasync, into a 64 MiB file that is a hole (as fjall makes it)
or that was filled with zeros and synced first. It prints each case's
fsync latency and the kernel CPU per round.

Usage: scripts/journal-fsync-prezeroed.py [directory on the disk to test]
"""
import os
import resource
import sys
import tempfile
import time

SIZE = 64 << 20
ROUNDS = 400
APPENDS = 30
APPEND = os.urandom(4400)


def run(directory, name, prezero, sync):
    fd, path = tempfile.mkstemp(dir=directory, prefix="journal-")
    try:
        if prezero:
            zeros = b"\0" * (1 << 20)
            for _ in range(SIZE >> 20):
                os.write(fd, zeros)
            os.fsync(fd)
            os.lseek(fd, 0, os.SEEK_SET)
        else:
            os.ftruncate(fd, SIZE)
            os.fsync(fd)
        latencies = []
        before = resource.getrusage(resource.RUSAGE_SELF)
        for _ in range(ROUNDS):
            for _ in range(APPENDS):
                os.write(fd, APPEND)
            start = time.perf_counter()
            sync(fd)
            latencies.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        os.close(fd)
        os.unlink(path)
    latencies.sort()
    pick = lambda q: latencies[int(len(latencies) * q)] * 1e3
    sys_us = (after.ru_stime - before.ru_stime) / ROUNDS * 1e6
    print(f"{name:20s} p50 {pick(0.5):5.2f} ms  p90 {pick(0.9):5.2f} ms  "
          f"p99 {pick(0.99):5.2f} ms  kernel CPU per round {sys_us:4.0f} µs")


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "."
    for _ in range(2):
        run(directory, "hole, fsync", False, os.fsync)
        run(directory, "hole, fdatasync", False, os.fdatasync)
        run(directory, "zeroed, fsync", True, os.fsync)
        run(directory, "zeroed, fdatasync", True, os.fdatasync)


if __name__ == "__main__":
    main()
