#!/usr/bin/env python3
"""What an fsync after an append costs on a sparse file and on one written out.

fjall creates each journal file with `set_len` (64 MiB, sparse), so each
sync after an append must also allocate blocks and write the allocation.
This appends 43 KB and syncs, 1,500 times, on a 64 MiB file prepared as
MODE, and prints the system time and wall time per sync:

  sparse-fsync, sparse-fdatasync    ftruncate to 64 MiB (what fjall does)
  falloc-fsync, falloc-fdatasync    posix_fallocate of 64 MiB (unwritten extents)
  written-fsync, written-fdatasync  64 MiB of zeros written and synced first

Usage: scripts/sparse-vs-written-sync.py MODE [DIR]
"""
import os
import sys
import tempfile
import time

MODES = [f"{p}-{s}" for p in ("sparse", "falloc", "written") for s in ("fsync", "fdatasync")]
mode = sys.argv[1] if len(sys.argv) > 1 else ""
if mode not in MODES:
    sys.exit(__doc__)
directory = sys.argv[2] if len(sys.argv) > 2 else tempfile.gettempdir()
path = os.path.join(directory, f"sparse-vs-written-{mode}.jnl")
fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC)
if mode.startswith("written"):
    zeros = b"\0" * (1 << 20)
    for _ in range(64):
        os.write(fd, zeros)
    os.fsync(fd)
    os.lseek(fd, 0, os.SEEK_SET)
elif mode.startswith("falloc"):
    os.posix_fallocate(fd, 0, 64 << 20)
    os.fsync(fd)
else:
    os.ftruncate(fd, 64 << 20)
    os.fsync(fd)
entry = os.urandom(4285 * 10)
sync = os.fsync if mode.endswith("-fsync") else os.fdatasync
n = 1500
t0, w0 = os.times(), time.perf_counter()
for _ in range(n):
    os.write(fd, entry)
    sync(fd)
t1, w1 = os.times(), time.perf_counter()
os.close(fd)
os.remove(path)
sys_us = (t1.system - t0.system) / n * 1e6
print(f"{mode}: {sys_us:.0f} us system time and {(w1 - w0) / n * 1e6:.0f} us wall per sync")
