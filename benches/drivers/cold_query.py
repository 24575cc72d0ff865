#!/usr/bin/env python3
"""Cold-tier query cost of the soak's dashboard queries, one at a time (issue 20).

Starts `strata serve` with soak.py's SETTINGS on a data directory, writes
`--minutes` of the soak's data shape (write_latency.py's IoT lines: 10,000
devices x 10 fields = 100,000 series) with past timestamps, one sample per
series every `--interval-ms`, as fast as the node takes it, ending 6 minutes
before now (older than the 5-minute hot TTL, so every bucket rolls to the
cold tier); waits until the hot store holds no bucket; then runs each of
soak.py's 11 QUERIES alone, `--runs` times, at a fixed evaluation time (the
last written timestamp + 1 min; ranges over the 30 minutes before it at a
15 s step, like the soak), and prints per query: wall time, the server's
peak RSS during the query (VmHWM after `echo 5 > /proc/PID/clear_refs`, which
resets it to the RSS of that moment, printed as peak-before) and series /
points answered. The query front's result cache is off
(`STRATA_QUERY__FRONT=false`) so that every run reads the cold tier again.

`--data DIR` keeps the data directory: a second invocation with the same DIR
(and another `--strata`) skips the writes and queries the same data, so two
binaries are compared on identical cold files. `--query NAME,KIND,EXPR` adds a
query of one's own (e.g. a fleet-wide range query), `--only` picks by name.

  python3 benches/drivers/cold_query.py --strata BIN --data /tmp/cq --json before.json
  python3 benches/drivers/cold_query.py --strata BIN2 --data /tmp/cq --json after.json
"""

import argparse
import json
import os
import statistics
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import soak  # noqa: E402
import write_latency as wl  # noqa: E402


class Node(soak.SoakStrata):
    def __init__(self, a, data):
        self.a = a
        self.dir = data
        os.makedirs(self.dir, exist_ok=True)
        self.port = wl.free_port()
        self.proc = None
        self.log_path = os.path.join(self.dir, "server.log")
        self.started_wall = None

    def env(self):
        e = super().env()
        e["STRATA_QUERY__FRONT"] = "false"  # no result cache: every run evaluates (and reads) again
        return e


def status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith(key + ":"):
                return int(ln.split()[1])
    return 0


def write_data(node, a, end_ms):
    """Writes a.minutes of data ending at end_ms, bucket by bucket in time order."""
    variants = [wl.device_lines(0, 1, a.devices, a.lines, -(-a.devices // a.lines), seed) for seed in range(4)]
    steps = a.minutes * 60_000 // a.interval_ms
    start_ms = end_ms - steps * a.interval_ms
    jobs = [(start_ms + i * a.interval_ms, variants[i % len(variants)]) for i in range(steps)]
    lock = threading.Lock()
    pos = [0]
    errors = []

    def worker():
        c = wl.RawConn(node.port, timeout=120)
        while True:
            with lock:
                if pos[0] >= len(jobs) or errors:
                    break
                ts, bodies = jobs[pos[0]]
                pos[0] += 1
            for lines in bodies:
                st, data = c.request("POST", node.write_path, wl.make_body(lines, ts))
                if st not in (200, 204):
                    errors.append("%s: %s" % (st, data[:300]))
                    return
        c.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(a.conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.monotonic() - t0
    if errors:
        raise SystemExit("write failed: %s" % errors[0])
    n = steps * a.devices * len(wl.FIELDS)
    print("wrote %d samples (%d steps of %d ms, %d series) in %.1f s: %.0f samples/s" % (
        n, steps, a.interval_ms, a.devices * len(wl.FIELDS), dt, n / dt), flush=True)
    return start_ms


def wait_cold(node, timeout):
    """Writes one sample at the current time (the hot store seals a bucket
    once a later one has data), then waits until only that bucket is hot."""
    c = wl.RawConn(node.port, timeout=30)
    st, data = c.request("POST", node.write_path, b"cq_clock,device=clock v=1 %d\n" % int(time.time() * 1000))
    c.close()
    if st not in (200, 204):
        raise SystemExit("clock write: %s %s" % (st, data[:300]))
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        m = soak.sum_metrics(node.metrics())
        if m.get("strata_hot_buckets", 9) <= 1:
            print("hot store holds at most the clock bucket; rolled %d buckets" % m.get("strata_compactor_buckets_rolled_total", 0), flush=True)
            return
        time.sleep(2)
    print("warning: hot store still holds %s buckets" % soak.sum_metrics(node.metrics()).get("strata_hot_buckets"))


def run_query(node, name, kind, expr, at):
    if kind == "instant":
        path = "/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": "%.3f" % at})
    else:
        path = "/api/v1/query_range?" + urllib.parse.urlencode(
            {"query": expr, "start": "%.3f" % (at - soak.RANGE_S), "end": "%.3f" % at, "step": soak.STEP_S})
    pid = node.proc.pid
    with open("/proc/%d/clear_refs" % pid, "w") as f:
        f.write("5")
    base = status_kib(pid, "VmHWM")
    c = wl.RawConn(node.port, timeout=600)
    t0 = time.monotonic()
    st, data = c.request("GET", path)
    dt = time.monotonic() - t0
    c.close()
    hwm = status_kib(pid, "VmHWM")
    if st != 200:
        raise SystemExit("%s: %s %s" % (name, st, data[:300]))
    res = json.loads(data)["data"]["result"]
    points = sum(len(r.get("values", [])) or 1 for r in res)
    return {"s": dt, "hwm_mib": hwm / 1024, "rss_before_mib": base / 1024, "series": len(res), "points": points,
            "answer": res}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strata", required=True)
    ap.add_argument("--data", required=True, help="data directory (kept; reused when it holds data)")
    ap.add_argument("--minutes", type=int, default=10)
    ap.add_argument("--interval-ms", type=int, default=1000)
    ap.add_argument("--devices", type=int, default=10000)
    ap.add_argument("--lines", type=int, default=300)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated query names")
    ap.add_argument("--query", action="append", default=[], metavar="NAME,KIND,EXPR",
                    help="an extra query (KIND instant or range) run after soak.py's; repeatable")
    ap.add_argument("--json", help="write the per-query records here")
    a = ap.parse_args(argv)
    meta_path = os.path.join(a.data, "cold_query.json")
    node = Node(a, a.data)
    node.start()
    try:
        if os.path.exists(meta_path):
            with open(meta_path) as f:
                meta = json.load(f)
            print("reusing %s: data %s..%s ms" % (a.data, meta["start_ms"], meta["end_ms"]), flush=True)
        else:
            end_ms = (int(time.time()) - 360) * 1000
            start_ms = write_data(node, a, end_ms)
            meta = {"start_ms": start_ms, "end_ms": end_ms, "minutes": a.minutes, "interval_ms": a.interval_ms,
                    "devices": a.devices}
            with open(meta_path, "w") as f:
                json.dump(meta, f)
        wait_cold(node, 600)
        at = meta["end_ms"] / 1000 + 60
        only = set(filter(None, a.only.split(",")))
        out = {"strata": a.strata, "data": meta, "loadavg_start": os.getloadavg(), "queries": {}}
        answers = {}
        print("%-24s %s" % ("query", "  ".join("run%d s / RSS peak-before MiB" % (r + 1) for r in range(a.runs))))
        extra = [tuple(q.split(",", 2)) for q in a.query]
        for name, kind, expr in soak.QUERIES + extra:
            if only and name not in only:
                continue
            recs = []
            for _ in range(a.runs):
                recs.append(run_query(node, name, kind, expr, at))
            answers[name] = recs[0].pop("answer")
            for r in recs[1:]:
                r.pop("answer")
            out["queries"][name] = recs
            print("%-24s %s  | median %.3f s, %d series, %d points, load %.2f" % (
                name, "  ".join("%7.3f / %6.0f-%-6.0f" % (r["s"], r["hwm_mib"], r["rss_before_mib"]) for r in recs),
                statistics.median(r["s"] for r in recs), recs[0]["series"], recs[0]["points"], os.getloadavg()[0]),
                flush=True)
        out["loadavg_end"] = os.getloadavg()
        if a.json:
            with open(a.json, "w") as f:
                json.dump(out, f, indent=1)
            with open(a.json + ".answers", "w") as f:
                json.dump(answers, f, sort_keys=True)
    finally:
        node.stop()


if __name__ == "__main__":
    main()
