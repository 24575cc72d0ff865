#!/usr/bin/env python3
"""Startup time and idle CPU of `strata serve` on embedded defaults, with the
cold tier on (the default) and off (`STRATA_COLD__ENABLED=false`).

For each setting and run: a fresh data dir, `strata serve` on a free port;
startup = spawn until `/-/ready` answers 200 (polled every 10 ms); then a
second start on the same (now existing) data dir; idle CPU = user + system
CPU seconds of the process over `--idle` seconds with no requests (from
/proc/<pid>/stat), as a percentage of one core. Prints every run and the
medians.

    python3 benches/drivers/startup.py --bin target/release/strata --runs 5 --idle 60

Standard library only; kills only the processes it started.
"""

import argparse
import os
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[11], fields[12] = utime, stime (fields 14, 15 of proc(5), counted after the comm field)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def start(binary, data_dir, cold):
    port = free_port()
    env = dict(os.environ, RUST_LOG="warn", STRATA_COLD__ENABLED="true" if cold else "false")
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [binary, "serve", "--http-addr", f"127.0.0.1:{port}", "--data-dir", data_dir],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/-/ready"
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"strata exited with {proc.returncode} during startup")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return proc, (time.monotonic() - t0) * 1000
        except OSError:
            pass
        if time.monotonic() - t0 > 60:
            proc.kill()
            raise SystemExit("strata not ready within 60 s")
        time.sleep(0.01)


def stop(proc):
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def one_run(binary, cold, idle):
    with tempfile.TemporaryDirectory(prefix="strata-startup-") as d:
        proc, fresh_ms = start(binary, d, cold)
        stop(proc)
        proc, again_ms = start(binary, d, cold)
        try:
            c0, t0 = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(idle)
            c1, t1 = cpu_seconds(proc.pid), time.monotonic()
        finally:
            stop(proc)
        return fresh_ms, again_ms, 100.0 * (c1 - c0) / (t1 - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "strata"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--idle", type=float, default=30.0, help="seconds of idle CPU measurement per run")
    args = ap.parse_args()
    rows = []
    for run in range(1, args.runs + 1):
        for cold in (True, False):
            fresh, again, cpu = one_run(args.bin, cold, args.idle)
            rows.append((cold, fresh, again, cpu))
            print(
                f"run {run} cold {'on ' if cold else 'off'}: ready after {fresh:7.1f} ms (fresh dir), "
                f"{again:7.1f} ms (restart); idle CPU {cpu:5.2f} % of a core over {args.idle:.0f} s",
                flush=True,
            )
    print("\n| cold tier | startup, fresh dir (ms) | startup, restart (ms) | idle CPU (% of a core) |")
    print("|---|---|---|---|")
    for cold in (True, False):
        sel = [r for r in rows if r[0] == cold]
        med = [statistics.median(r[i] for r in sel) for i in (1, 2, 3)]
        print(f"| {'on (default)' if cold else 'off'} | {med[0]:.1f} | {med[1]:.1f} | {med[2]:.2f} |")
    print(f"(medians of {args.runs} runs; binary {args.bin})")


if __name__ == "__main__":
    main()
