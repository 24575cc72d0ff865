#!/usr/bin/env python3
"""Dashboards sharing their work: the shipped Grafana dashboard's 24 panel
queries, N viewers refreshing every R seconds, the query front on and off.

  dashboard.py --bin /root/.cache/strata-target-q/release/strata
               [--runs 3] [--viewers 20] [--refresh 10] [--duration 60]
               [--farms 20] [--devices 10] [--hours 7] [--seed 1] [--json out.json]

For each run and mode (front on, front off, alternating: on, off, on, off, ...):

* a fresh data directory and `strata serve` (`STRATA_QUERY__FRONT=true|false`,
  everything else default), loaded through /api/v2/write with --hours of
  one-minute samples of every field the dashboard reads (`sensors` line
  protocol: farms x devices, tags farm, device, region, kind);
* a writer keeps writing one sample per device every 10 s while the viewers
  run (live ingestion), and once, half-way, a late batch 3 h in the past
  (the cache's invalidation is exercised);
* every viewer starts at a random phase (seeded) and refreshes every
  --refresh seconds: the 24 panel queries of grafana/dashboards/iot-telemetry.json
  with the template variables set to All (Grafana's `(a|b|...)` regexes) and
  the time range now-6h..now, sent as Grafana does: range panels at step 30 s
  with start/end aligned to the step ($__interval = 30s,
  $__rate_interval = 1m, $__range = 6h), instant panels at time=now
  (seconds), at most 6 requests of one viewer at once;
* reported: requests, server-side engine evaluations
  (strata_tenant_queries_total delta: whole queries and front parts), the
  front's counters, server CPU (utime+stime from /proc/<pid>/stat, all
  threads), run-queue wait (/proc/<pid>/schedstat), latency p50/p99 over all
  requests, and the load average before and after the run.
"""
import argparse
import concurrent.futures
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
DASHBOARD = os.path.normpath(os.path.join(HERE, "..", "..", "grafana", "dashboards", "iot-telemetry.json"))
TICK = os.sysconf("SC_CLK_TCK")
STEP = 30
FIELDS = ["temp", "moisture", "battery", "ph", "wind", "rssi", "nitrogen", "humidity", "light", "ec"]


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def runq_wait_s(pid):
    """Run-queue wait of the process's live threads (schedstat's second field), seconds."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[1])
        except OSError:
            pass
    return total / 1e9


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def panels():
    """(expr, instant) of every panel target of the shipped dashboard."""
    d = json.load(open(DASHBOARD))
    out = []
    stack = list(d.get("panels", []))
    while stack:
        p = stack.pop(0)
        stack[0:0] = p.get("panels", [])
        for t in p.get("targets", []):
            if t.get("expr"):
                out.append((t["expr"], bool(t.get("instant"))))
    return out


def expand(expr, farms, devices):
    farm_re = "(" + "|".join(farms) + ")"
    dev_re = "(" + "|".join(devices) + ")"
    return (
        expr.replace("$farm", farm_re)
        .replace("$device", dev_re)
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "30s")
        .replace("$__range", "21600s")
    )


class Client:
    def __init__(self, port):
        self.port = port
        self.local = threading.local()

    def conn(self):
        c = getattr(self.local, "c", None)
        if c is None:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            self.local.c = c
        return c

    def request(self, method, path, body=None, headers=None):
        for attempt in range(2):
            c = self.conn()
            try:
                c.request(method, path, body=body, headers=headers or {})
                r = c.getresponse()
                data = r.read()
                return r.status, data
            except (http.client.HTTPException, OSError):
                c.close()
                self.local.c = None
                if attempt:
                    raise
        raise RuntimeError("unreachable")

    def query(self, path, params):
        body = urllib.parse.urlencode(params)
        return self.request("POST", path, body, {"Content-Type": "application/x-www-form-urlencoded"})


def metrics(client):
    status, text = client.request("GET", "/metrics")
    assert status == 200, text
    out = {}
    for line in text.decode().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        base = name.split("{")[0]
        try:
            out[base] = out.get(base, 0.0) + float(value)
        except ValueError:
            pass
    return out


def lines_at(farms, devices_of, t_ms, rng):
    out = []
    for fi, farm in enumerate(farms):
        region = "r%d" % (fi % 4)
        for di, dev in enumerate(devices_of[farm]):
            kind = "soil" if di % 2 == 0 else "air"
            vals = ",".join("%s=%.3f" % (f, rng.uniform(0, 100) if f != "battery" else rng.uniform(3, 4.2)) for f in FIELDS)
            vals = vals.replace("rssi=", "rssi=-")
            out.append("sensors,farm=%s,device=%s,region=%s,kind=%s %s %d" % (farm, dev, region, kind, vals, t_ms))
    return out


def write(client, lines):
    for i in range(0, len(lines), 5000):
        status, body = client.request("POST", "/api/v2/write?precision=ms", "\n".join(lines[i : i + 5000]).encode())
        assert status == 204, (status, body[:300])


def run_once(args, front, run_no):
    rng = random.Random(args.seed * 1000 + run_no)
    farms = ["f%02d" % i for i in range(args.farms)]
    devices_of = {f: ["%s-d%02d" % (f, j) for j in range(args.devices)] for f in farms}
    all_devices = [d for f in farms for d in devices_of[f]]
    queries = [(expand(e, farms, all_devices), inst) for e, inst in panels()]
    work = tempfile.mkdtemp(prefix="strata-dash-")
    port = free_port()
    env = dict(
        os.environ,
        STRATA_QUERY__FRONT="true" if front else "false",
        STRATA_METRICS__PER_TENANT="true",
        RUST_LOG="warn",
    )
    proc = subprocess.Popen(
        [args.bin, "serve", "--http-addr", "127.0.0.1:%d" % port, "--data-dir", work],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = Client(port)
        deadline = time.time() + 60
        while True:
            try:
                if client.request("GET", "/-/ready")[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError("strata did not become ready")
            time.sleep(0.1)
        now = int(time.time() * 1000) // 60000 * 60000
        t0 = time.time()
        lines = []
        for m in range(args.hours * 60, 0, -1):
            lines.extend(lines_at(farms, devices_of, now - m * 60000, rng))
        write(client, lines)
        log("run %d front=%s: loaded %d lines in %.1f s" % (run_no, front, len(lines), time.time() - t0))

        stop = threading.Event()
        latencies = []
        errors = []
        lat_lock = threading.Lock()

        def writer():
            wrng = random.Random(rng.random())
            wclient = Client(port)
            start = time.time()
            late_done = False
            while not stop.wait(10):
                write(wclient, lines_at(farms, devices_of, int(time.time() * 1000), wrng))
                if not late_done and time.time() - start >= args.duration / 2:
                    late = int(time.time() * 1000) - 3 * 3600 * 1000 + 17_000
                    write(wclient, lines_at(farms[:2], devices_of, late, wrng))
                    late_done = True

        def viewer(v):
            vclient = Client(port)
            vrng = random.Random(rng.random())
            pool = concurrent.futures.ThreadPoolExecutor(max_workers=6)
            next_at = begin + vrng.uniform(0, args.refresh)
            while True:
                delay = next_at - time.time()
                if delay > 0 and stop.wait(delay):
                    break
                if time.time() >= begin + args.duration:
                    break
                now_s = int(time.time())
                end = now_s // STEP * STEP
                start = (now_s - 6 * 3600) // STEP * STEP

                def one(q):
                    expr, instant = q
                    if instant:
                        path, params = "/api/v1/query", {"query": expr, "time": str(now_s)}
                    else:
                        path, params = "/api/v1/query_range", {"query": expr, "start": str(start), "end": str(end), "step": str(STEP)}
                    t = time.perf_counter()
                    status, body = vclient_for().query(path, params)
                    dt = time.perf_counter() - t
                    with lat_lock:
                        latencies.append(dt)
                        if status != 200:
                            errors.append((status, body[:200]))

                local = threading.local()

                def vclient_for():
                    c = getattr(local, "c", None)
                    if c is None:
                        c = Client(port)
                        local.c = c
                    return c

                list(pool.map(one, queries))
                next_at += args.refresh
            pool.shutdown()

        m0 = metrics(client)
        cpu0, wait0, load0 = cpu_s(proc.pid), runq_wait_s(proc.pid), loadavg()
        begin = time.time()
        threads = [threading.Thread(target=writer)] + [threading.Thread(target=viewer, args=(v,)) for v in range(args.viewers)]
        for t in threads:
            t.start()
        time.sleep(args.duration)
        stop.set()
        for t in threads:
            t.join()
        wall = time.time() - begin
        cpu1, wait1, load1 = cpu_s(proc.pid), runq_wait_s(proc.pid), loadavg()
        m1 = metrics(client)
        d = lambda k: m1.get(k, 0.0) - m0.get(k, 0.0)
        lat = sorted(latencies)
        p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else float("nan")
        res = {
            "run": run_no,
            "front": front,
            "requests": len(lat),
            "errors": len(errors),
            "error_sample": [str(e) for e in errors[:3]],
            "evaluations": d("strata_tenant_queries_total"),
            "front_evaluations": d("strata_query_front_evaluations_total"),
            "coalesced": d("strata_query_front_coalesced_total"),
            "cache_hits": d("strata_query_front_cache_hits_total"),
            "cache_extends": d("strata_query_front_cache_extends_total"),
            "cache_misses": d("strata_query_front_cache_misses_total"),
            "invalidations": d("strata_query_front_cache_invalidations_total"),
            "cache_bytes": m1.get("strata_query_front_cache_bytes", 0.0),
            "cpu_s": cpu1 - cpu0,
            "cpu_ms_per_request": (cpu1 - cpu0) * 1000 / max(1, len(lat)),
            "runq_wait_s": wait1 - wait0,
            "wall_s": wall,
            "p50_ms": p(0.50),
            "p99_ms": p(0.99),
            "load_before": load0,
            "load_after": load1,
        }
        log(json.dumps(res))
        return res
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--viewers", type=int, default=20)
    ap.add_argument("--refresh", type=float, default=10)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--farms", type=int, default=20)
    ap.add_argument("--devices", type=int, default=10, help="devices per farm")
    ap.add_argument("--hours", type=int, default=7)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json")
    args = ap.parse_args()
    results = []
    for r in range(args.runs):
        for front in (True, False):
            results.append(run_once(args, front, r + 1))
    cols = ["run", "front", "requests", "errors", "evaluations", "coalesced", "cache_hits", "cache_extends",
            "cache_misses", "invalidations", "cpu_s", "cpu_ms_per_request", "runq_wait_s", "p50_ms", "p99_ms",
            "load_before", "load_after"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in results:
        cells = []
        for c in cols:
            v = r[c]
            cells.append("%.2f" % v if isinstance(v, float) and c in ("cpu_s", "cpu_ms_per_request", "runq_wait_s", "p50_ms", "p99_ms") else
                         ("%d" % v if isinstance(v, float) else str(v)))
        print("| " + " | ".join(cells) + " |")
    for front in (True, False):
        rs = [r for r in results if r["front"] == front]
        print("front=%s median: requests %d, evaluations %d, cpu %.2f s, p99 %.1f ms, p50 %.1f ms" % (
            front,
            statistics.median(r["requests"] for r in rs),
            statistics.median(r["evaluations"] for r in rs),
            statistics.median(r["cpu_s"] for r in rs),
            statistics.median(r["p99_ms"] for r in rs),
            statistics.median(r["p50_ms"] for r in rs),
        ))
    if args.json:
        json.dump(results, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
