#!/usr/bin/env python3
"""The HTTP round trip under the one-device queries (issue 16, point 1).

peer-bench times each query from a Python http.client keep-alive connection
and parses the JSON answer between two runs. A query that reads one device
costs Strata and VictoriaMetrics ~0.2 ms that way, most of it the round trip
itself, not the query. This driver measures that floor: it starts `strata
serve` and `victoria-metrics` on empty temp dirs (no data is needed: every
request below reads nothing) and times, over one keep-alive connection each,

  ready     Strata's /-/ready, VictoriaMetrics's /health (no query at all)
  query=1   /api/v1/query?query=1 (the query API, no selector)
  absent    /api/v1/query?query=absent(sensors_temp{device="dev-missing"})
            (peer-bench's absent_missing: one postings lookup that finds nothing)

--requests per round, --rounds rounds alternating the order, optionally with
a --pause-us sleep before each request. A pause lets both processes go idle
between requests, as peer-bench's JSON parsing does; on a VM an idle vCPU is
then woken for each request. Prints the median µs of every round, the median
of the rounds, and, per row, the ratio of Strata's time to VictoriaMetrics's
`absent` (the ratio issue 16 asks to be at most 0.7).

    python3 benches/drivers/http_floor.py --strata target/release/strata --pause-us 100
    python3 benches/drivers/http_floor.py --strata target/release/strata --pause-us 0

Standard library only.
"""
import argparse
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

ABSENT = 'absent(sensors_temp{device="dev-missing"})'


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_ready(port, path, proc, name, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit("%s exited (rc %s) before it was ready" % (name, proc.returncode))
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path)
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("%s not ready after %ds" % (name, timeout))


def time_requests(port, path, n, pause_us):
    c = http.client.HTTPConnection("127.0.0.1", port)
    ts = []
    for _ in range(n):
        if pause_us:
            time.sleep(pause_us / 1e6)
        t0 = time.perf_counter_ns()
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        ts.append(time.perf_counter_ns() - t0)
        if r.status != 200:
            raise SystemExit("GET %s on port %d: HTTP %d" % (path, port, r.status))
    c.close()
    return statistics.median(ts) / 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--strata", required=True, help="the strata binary")
    ap.add_argument("--vm", default=shutil.which("victoria-metrics") or "victoria-metrics")
    ap.add_argument("--requests", type=int, default=1000, help="requests per row and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pause-us", type=float, default=100, help="sleep before each request (0: back to back)")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="http-floor-")
    procs = []
    try:
        sp, vp = free_port(), free_port()
        env = dict(os.environ, STRATA_QUERY__FRONT_CACHE_BYTES="0", RUST_LOG="warn")
        procs.append(subprocess.Popen(
            [a.strata, "serve", "--http-addr", "127.0.0.1:%d" % sp, "--data-dir", os.path.join(tmp, "strata")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))
        wait_ready(sp, "/-/ready", procs[-1], "strata")
        procs.append(subprocess.Popen(
            [a.vm, "-storageDataPath=" + os.path.join(tmp, "vm"), "-httpListenAddr=127.0.0.1:%d" % vp,
             "-search.disableCache", "-loggerLevel=ERROR"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_ready(vp, "/health", procs[-1], "victoria-metrics")
        q = lambda expr: "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        rows = [("strata ready", sp, "/-/ready"), ("strata query=1", sp, q("1")), ("strata absent", sp, q(ABSENT)),
                ("vm health", vp, "/health"), ("vm query=1", vp, q("1")), ("vm absent", vp, q(ABSENT))]
        for _, port, path in rows:  # warm up
            time_requests(port, path, 200, 0)
        res = {name: [] for name, _, _ in rows}
        for rnd in range(a.rounds):
            for name, port, path in (rows if rnd % 2 == 0 else list(reversed(rows))):
                res[name].append(time_requests(port, path, a.requests, a.pause_us))
        vm_absent = statistics.median(res["vm absent"])
        print("pause %g µs before each request, %d requests x %d rounds (median µs per round)" % (
            a.pause_us, a.requests, a.rounds))
        for name, _, _ in rows:
            m = statistics.median(res[name])
            print("%-15s %s  median %6.1f µs  / vm absent %.2f" % (
                name, " / ".join("%6.1f" % x for x in res[name]), m, m / vm_absent))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
