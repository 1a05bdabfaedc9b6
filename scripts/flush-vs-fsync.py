#!/usr/bin/env python3
"""How a large file written beside a journal delays the journal's fsyncs.

One thread appends 16 KiB to a journal file and fdatasyncs it, over and
over; meanwhile the main thread writes a 64 MiB "flush" at about 300 MB/s
(1 MiB, then 3 ms of sleep) and fdatasyncs it at its end, the way fjall
writes a memtable flush. MODE says what happens to the flush's pages while
they are written:

  none     nothing (the kernel writes them out at the final fdatasync)
  sync     fdatasync of the flush file every 20 ms (waits, flushes the disk cache)
  fadvise  posix_fadvise(DONTNEED) of the flush file every 5 ms (starts
           writeback, does not wait, no disk cache flush)

Prints the journal fdatasync latencies while the flush runs.
Usage: scripts/flush-vs-fsync.py none|sync|fadvise [DIR]
"""
import os
import sys
import tempfile
import threading
import time

mode = sys.argv[1] if len(sys.argv) > 1 else "none"
if mode not in ("none", "sync", "fadvise"):
    sys.exit(__doc__)
directory = sys.argv[2] if len(sys.argv) > 2 else tempfile.gettempdir()
journal_path = os.path.join(directory, "flush-vs-fsync.jnl")
flush_path = os.path.join(directory, "flush-vs-fsync.blob")
stop = False
latencies = []


def journal():
    fd = os.open(journal_path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC)
    entry = b"j" * 16384
    while not stop:
        os.write(fd, entry)
        start = time.perf_counter()
        os.fdatasync(fd)
        latencies.append((time.perf_counter() - start) * 1000)
    os.close(fd)


thread = threading.Thread(target=journal)
thread.start()
time.sleep(0.3)
fd = os.open(flush_path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC)
chunk = os.urandom(1 << 20)
began = last = time.perf_counter()
for _ in range(64):
    os.write(fd, chunk)
    time.sleep(0.003)
    now = time.perf_counter()
    if mode == "sync" and now - last > 0.020:
        os.fdatasync(fd)
        last = time.perf_counter()
    elif mode == "fadvise" and now - last > 0.005:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        last = time.perf_counter()
os.fdatasync(fd)
flush_ms = (time.perf_counter() - began) * 1000
os.close(fd)
time.sleep(0.3)
stop = True
thread.join()
os.unlink(flush_path)
os.unlink(journal_path)
latencies.sort()
n = len(latencies)
print(
    f"{mode:8s} flush {flush_ms:.0f} ms; journal fdatasyncs {n}: "
    f"p50 {latencies[n // 2]:.2f} ms, p99 {latencies[n * 99 // 100]:.2f} ms, "
    f"max {latencies[-1]:.2f} ms, over 5 ms {sum(x > 5 for x in latencies)}"
)
