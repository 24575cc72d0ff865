#!/usr/bin/env python3
"""How long does one `fdatasync` of a log-like writer take on this disk, alone
and beside a writer of large files? (A probe of the host, not of Strata: issue
16's p99 write acknowledgement waits on the ingest log's syncs, see
docs/benchmarks/2026-12-06-write-latency-s17.md.)

The log writer `pwrite`s --rec bytes and `fdatasync`s, --rate times a second,
for --secs seconds, either appending to a new file (--mode append) or
overwriting a file written in full beforehand (--mode overwrite: what
recycled, preallocated log segments would do). --background adds a second
writer: `write` writes 64 MiB files synced every MiB, 0.2 s apart, keeping
three; `write-unlink` deletes the older ones at once; `write-shrink` cuts
them down 4 MiB every 10 ms first (what the ingest log does to a released
segment). Prints the sync latencies' percentiles and maximum.

    python3 benches/drivers/fsync_stalls.py --mode overwrite --background write-unlink --secs 25
"""
import argparse
import os
import shutil
import tempfile
import threading
import time


def background(d, kind, stop):
    buf = os.urandom(1 << 20)
    i = 0
    while not stop.is_set():
        fd = os.open(f"{d}/bg{i}.dat", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        for _ in range(64):
            os.write(fd, buf)
            os.fdatasync(fd)
        os.fsync(fd)
        os.close(fd)
        if kind != "write" and i >= 3:
            old = f"{d}/bg{i - 3}.dat"
            if kind == "write-shrink":
                fd = os.open(old, os.O_WRONLY)
                n = os.fstat(fd).st_size
                while n > 4 << 20:
                    n -= 4 << 20
                    os.ftruncate(fd, n)
                    time.sleep(0.01)
                os.close(fd)
            os.unlink(old)
        i += 1
        time.sleep(0.2)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["append", "overwrite"], default="overwrite")
    ap.add_argument("--background", choices=["none", "write", "write-unlink", "write-shrink"], default="none")
    ap.add_argument("--rec", type=int, default=60_000, help="bytes per write")
    ap.add_argument("--rate", type=float, default=600, help="writes (and syncs) per second")
    ap.add_argument("--secs", type=float, default=20)
    ap.add_argument("--dir", default=".", help="the file system to probe: a temp dir is made in it for the "
                    "probe's files and removed after (nothing else in --dir is touched)")
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="fsync-stalls-", dir=a.dir)
    size = 256 << 20
    path = f"{d}/log.seg"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    if a.mode == "overwrite":
        chunk = b"\1" * (1 << 20)
        for _ in range(size >> 20):
            os.write(fd, chunk)
        os.fsync(fd)
    stop = threading.Event()
    bg = threading.Thread(target=background, args=(d, a.background, stop)) if a.background != "none" else None
    if bg:
        bg.start()
    rec = os.urandom(a.rec)
    lat = []
    off = 0
    t0 = time.time()
    try:
        while time.time() - t0 < a.secs:
            os.pwrite(fd, rec, off)
            off += len(rec)
            if a.mode == "overwrite" and off + len(rec) > size:
                off = 0
            s = time.perf_counter()
            os.fdatasync(fd)
            lat.append((time.perf_counter() - s) * 1000)
            time.sleep(1 / a.rate)
    finally:
        stop.set()
        if bg:
            bg.join()
        os.close(fd)
        shutil.rmtree(d)
    lat.sort()

    def q(x):
        return lat[min(len(lat) - 1, int(x * len(lat)))]

    print(f"{a.mode}, background {a.background}, {a.rec} B x {a.rate:g}/s: n={len(lat)} p50={q(.5):.2f} "
          f"p90={q(.9):.2f} p99={q(.99):.2f} p99.9={q(.999):.2f} max={lat[-1]:.2f} ms")


if __name__ == "__main__":
    main()
