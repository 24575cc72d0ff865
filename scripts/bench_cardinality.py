#!/usr/bin/env python3
"""Latency of GET /api/v1/status/tsdb (the cardinality explorer) at 1M series.

Starts the given `strata` binary (open mode, a fresh data dir), writes
SERIES series over line protocol (10 metrics x SERIES/10 devices; labels
device, farm = device / 100, region = device % 10), then times each query
variant REQUESTS times (after one warm-up request) and prints the median,
p90 and max in ms, the answer's totalSeries and the load average.

    python3 scripts/bench_cardinality.py /root/.cache/strata-target-q/release/strata [SERIES] [REQUESTS] [RUNS]

Standard library only. Prints one JSON line per (run, variant) and a table.
"""

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

VARIANTS = [
    ("default (topN=10)", []),
    ("topN=100", [("topN", "100")]),
    ("focusLabel=farm", [("focusLabel", "farm")]),
    ("focusLabel=device", [("focusLabel", "device")]),
    ("match[]=soil_m3 (100k series)", [("match[]", "soil_m3")]),
    ('match[]={region="r3"} (100k series)', [("match[]", '{region="r3"}')]),
    ('match[]={farm="f42"} (1,000 series)', [("match[]", '{farm="f42"}')]),
    ("topN=100 + focusLabel=farm + match[]=soil_m3",
     [("topN", "100"), ("focusLabel", "farm"), ("match[]", "soil_m3")]),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(base, path, params):
    url = base + path + ("?" + urllib.parse.urlencode(params) if params else "")
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as r:
        body = r.read()
    return time.perf_counter() - t0, json.loads(body)


def write(base, lines):
    req = urllib.request.Request(base + "/api/v2/write?precision=ms", data="".join(lines).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=600) as r:
        assert r.status == 204, r.status


def main():
    binary = sys.argv[1]
    series = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    requests = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    runs = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    data = tempfile.mkdtemp(prefix="strata-card-bench-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(os.path.join(data, "server.log"), "w")
    proc = subprocess.Popen([binary, "serve", "--http-addr", f"127.0.0.1:{port}", "--data-dir", os.path.join(data, "d")],
                            stdout=log, stderr=log, env={**os.environ, "RUST_LOG": "warn"})
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(base + "/-/ready", timeout=1)
                break
            except Exception:
                time.sleep(0.1)
        devices = series // 10
        now = int(time.time() * 1000)
        t0 = time.time()
        lines = []
        for d in range(devices):
            for m in range(10):
                lines.append(f"soil_m{m},device=d{d},farm=f{d // 100},region=r{d % 10} value={d % 97} {now}\n")
            if len(lines) >= 50_000:
                write(base, lines)
                lines = []
        if lines:
            write(base, lines)
        print(f"wrote {series} series in {time.time() - t0:.1f} s", flush=True)
        _, body = get(base, "/api/v1/status/tsdb", [])
        print("totalSeries", body["data"].get("totalSeries"), "headStats", body["data"].get("headStats"), flush=True)
        results = {}
        for run in range(1, runs + 1):
            for name, params in VARIANTS:
                load_before = os.getloadavg()
                get(base, "/api/v1/status/tsdb", params)  # warm-up
                times = []
                total = None
                for _ in range(requests):
                    dt, body = get(base, "/api/v1/status/tsdb", params)
                    assert body["status"] == "success", body
                    total = body["data"].get("totalSeries")
                    times.append(dt * 1000)
                times.sort()
                rec = {
                    "run": run, "variant": name, "requests": requests,
                    "median_ms": round(statistics.median(times), 1),
                    "p90_ms": round(times[int(0.9 * (len(times) - 1))], 1),
                    "max_ms": round(times[-1], 1), "totalSeries": total,
                    "load_avg_1m": round(load_before[0], 2),
                }
                results.setdefault(name, []).append(rec)
                print(json.dumps(rec), flush=True)
        print()
        print("| variant | totalSeries | " + " | ".join(f"run {r} median (p90) ms" for r in range(1, runs + 1))
              + " | median of medians | load 1m |")
        print("|---|---|" + "---|" * runs + "---|---|")
        for name, recs in results.items():
            cells = " | ".join(f"{r['median_ms']} ({r['p90_ms']})" for r in recs)
            mm = statistics.median(r["median_ms"] for r in recs)
            loads = "/".join(str(r["load_avg_1m"]) for r in recs)
            print(f"| {name} | {recs[0]['totalSeries']} | {cells} | {mm} | {loads} |")
        with open(f"/proc/{proc.pid}/status") as f:
            rss = [line for line in f if line.startswith("VmRSS")]
        print("server", rss[0].strip() if rss else "")
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
