#!/usr/bin/env python3
"""How deleting a large file delays a journal's fsyncs.

One thread appends 34 KiB to a journal file and fdatasyncs it, over and
over; meanwhile the main thread writes a file of SIZE MiB, fsyncs it,
waits half a second and deletes it, three times. On a filesystem mounted
with `discard` (this VM's ext4 is) the delete sends the file's discards
at once, and the journal's fdatasyncs wait behind them.

With STEP_MIB, the file is instead cut STEP_MIB at a time (ftruncate),
5 ms apart, then deleted, as `store::reclaim` frees the files fjall
deletes.

Prints each delete's duration and the slowest fdatasync before and during it.
Usage: scripts/delete-vs-fsync.py [SIZE_MIB] [DIR] [STEP_MIB]
"""
import os
import sys
import tempfile
import threading
import time

size_mib = int(sys.argv[1]) if len(sys.argv) > 1 else 64
directory = sys.argv[2] if len(sys.argv) > 2 else tempfile.gettempdir()
step_mib = int(sys.argv[3]) if len(sys.argv) > 3 else 0
journal_path = os.path.join(directory, "delete-vs-fsync.jnl")
big_path = os.path.join(directory, "delete-vs-fsync.big")
stop = False
syncs = []  # (start, seconds)


def journal():
    fd = os.open(journal_path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC)
    entry = os.urandom(4300 * 8)
    while not stop:
        start = time.perf_counter()
        os.write(fd, entry)
        os.fdatasync(fd)
        syncs.append((start, time.perf_counter() - start))
    os.close(fd)
    os.remove(journal_path)


thread = threading.Thread(target=journal)
thread.start()
block = os.urandom(1 << 20)
for _ in range(3):
    fd = os.open(big_path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC)
    for _ in range(size_mib):
        os.write(fd, block)
    os.fsync(fd)
    os.close(fd)
    time.sleep(0.5)
    before = [s for _, s in syncs[-200:]]
    t0 = time.perf_counter()
    if step_mib:
        size = size_mib << 20
        while size > 0:
            size = max(0, size - (step_mib << 20))
            os.truncate(big_path, size)
            time.sleep(0.005)
    os.remove(big_path)
    t1 = time.perf_counter()
    time.sleep(0.3)
    during = [s for t, s in syncs if t0 - 0.01 <= t <= t1]
    print(
        f"delete {size_mib} MiB{f' in {step_mib} MiB steps' if step_mib else ''}: "
        f"{(t1 - t0) * 1e3:.0f} ms; fdatasync before: "
        f"slowest {max(before) * 1e3:.1f} ms; during: {len(during)}, "
        f"slowest {max(during + [0]) * 1e3:.1f} ms"
    )
stop = True
thread.join()
