#!/usr/bin/env python3
"""Right-to-erasure benchmark (issue 18, closing note): for deleting one
device of a fleet over one day and over the whole history, how long until
the samples are invisible, how long until every tier is purged and
verified, and how many bytes were rewritten?

Starts `strata serve` (--strata PATH, default $CARGO_TARGET_DIR/release/strata,
then .../debug/strata) on a free port and a temp data dir with the cold tier
on, a 1 s purge check and a hot TTL longer than the history, then:

 1. writes --devices devices x --days days, one sample per --step-min minutes
    per device (`fleet,device=dev-NNNNN temp=...`), ending an hour ago, through
    /api/v2/write in batches from --writers threads;
 2. flushes (/internal/flush) and rolls every sealed bucket to Iceberg
    (/internal/roll), and reads the bytes of the hot, log and cold dirs;
 3. scenario "1 day": deletes device A's last day (admin API), polls a query
    for A's count over that day until it answers 0 (time to invisibility,
    from sending the request), then polls the request until `completed`
    (time to full purge: the status's completed_at - requested_at, and wall
    clock), and prints the status's per-tier files, rows and bytes;
 4. scenario "all days": the same for device B over its whole history.

Prints a table and, with --json, writes everything to a file. A benchmark:
nothing is asserted; exit 2 when setup fails. Python standard library only.

  export CARGO_TARGET_DIR=$HOME/.cache/strata-target-dev
  cargo build -p strata            # or --release
  python3 benches/drivers/erasure.py --devices 10000 --days 30 --step-min 60
  python3 benches/drivers/erasure.py --devices 10000 --days 1 --step-min 5
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

ADMIN = "erasure-bench-admin-token-000001"
DAY = 86_400_000


def http(base, method, path, body=None, token=ADMIN, timeout=600):
    data = None
    headers = {"Authorization": f"Bearer {token}"}
    if isinstance(body, (dict, list)):
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    elif body is not None:
        data = body if isinstance(body, bytes) else body.encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw and raw[:1] in b"{[" else raw)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def find_binary(arg):
    if arg:
        return arg
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/strata-target"))
    for profile in ("release", "debug"):
        p = os.path.join(target, profile, "strata")
        if os.path.exists(p):
            return p
    sys.exit("no strata binary: build it or pass --strata")


def start(binary, data):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    env = dict(os.environ)
    env.update({
        "STRATA_ADMIN__TOKEN": ADMIN,
        "STRATA_COLD__ENABLED": "true",
        "STRATA_COMPACTOR__GRACE": "1m",
        "STRATA_COMPACTOR__INTERVAL": "1h",
        "STRATA_HOT_STORE__DEFAULT_HOT_TTL": "400d",
        "STRATA_INGEST__PAST_GRACE_PERIOD": "400d",
        "STRATA_ERASURE__CHECK_INTERVAL": "1s",
        "STRATA_ERASURE__PURGE_WITHIN": "1h",
        "RUST_LOG": "warn,strata::erasure=info",
    })
    log = open(os.path.join(os.path.dirname(data), "strata.log"), "w")
    proc = subprocess.Popen([binary, "serve", "--http-addr", f"127.0.0.1:{port}", "--data-dir", data],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(base + "/-/ready", timeout=1):
                return proc, base
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit(2)


def write_fleet(base, devices, days, step_min, writers, end_ms):
    step = step_min * 60_000
    start_ms = end_ms - days * DAY
    points = list(range(start_ms, end_ms, step))
    total = devices * len(points)
    per_batch = max(1, 50_000 // len(points))
    chunks = [range(d, min(devices, d + per_batch)) for d in range(0, devices, per_batch)]
    lock = threading.Lock()
    errors = []

    def work():
        while True:
            with lock:
                if not chunks:
                    return
                devs = chunks.pop()
            lines = [f"fleet,device=dev-{d:05d} temp={(t // step + d) % 97} {t}" for d in devs for t in points]
            code, body = http(base, "POST", "/api/v2/write?precision=ms", "\n".join(lines))
            if code != 204:
                errors.append((code, str(body)[:200]))
                return

    t0 = time.time()
    threads = [threading.Thread(target=work) for _ in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit(f"write failed: {errors[:3]}")
    return total, time.time() - t0, start_ms


def count(base, device, start_ms, end_ms):
    rng = max(1, (end_ms - start_ms) // 1000 + 1)
    q = f'count_over_time(fleet_temp{{device="{device}"}}[{rng}s])'
    params = urllib.parse.urlencode({"query": q, "time": f"{end_ms / 1000:.3f}"})
    code, v = http(base, "GET", f"/api/v1/query?{params}")
    if code != 200:
        raise RuntimeError(f"query {q}: {code} {v}")
    res = v["data"]["result"]
    return float(res[0]["value"][1]) if res else 0.0


def scenario(base, name, device, start_ms, end_ms):
    before = count(base, device, start_ms, end_ms)
    t0 = time.time()
    code, r = http(base, "POST", "/admin/v1/tenants/default/delete",
                   {"match": [f'{{device="{device}"}}'], "start": start_ms, "end": end_ms})
    if code != 202:
        sys.exit(f"delete refused: {code} {r}")
    while count(base, device, start_ms, end_ms) != 0:
        time.sleep(0.005)
    invisible = time.time() - t0
    rid = r["id"]
    while True:
        _, st = http(base, "GET", f"/admin/v1/deletes/{rid}")
        if st["status"]["state"] == "completed":
            break
        time.sleep(0.1)
    wall = time.time() - t0
    s = st["status"]
    return {
        "scenario": name, "device": device, "samples_before": before, "invisible_s": invisible,
        "purged_s": (st["completed_at"] - st["requested_at"]) / 1000, "purged_wall_s": wall,
        "bound_met": s["bound_met"], "bytes_rewritten": s["bytes_rewritten"], "files_touched": s["files_touched"],
        "rows_removed": s["rows_removed"], "verification": s["verification"],
        "tiers": {k: {f: v[f] for f in ("files_rewritten", "files_deleted", "rows_removed", "bytes_rewritten")}
                  for k, v in s["tiers"].items()},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--strata")
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--step-min", type=int, default=60)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--json")
    ap.add_argument("--keep", action="store_true", help="keep the data dir")
    a = ap.parse_args()
    binary = find_binary(a.strata)
    tmp = tempfile.mkdtemp(prefix="strata-erasure-bench")
    data = os.path.join(tmp, "data")
    proc, base = start(binary, data)
    try:
        end_ms = (int(time.time() * 1000) - 3_600_000) // 60_000 * 60_000
        samples, secs, start_ms = write_fleet(base, a.devices, a.days, a.step_min, a.writers, end_ms)
        print(f"wrote {samples} samples ({a.devices} devices x {a.days} d, every {a.step_min} min) in {secs:.1f} s",
              flush=True)
        t0 = time.time()
        http(base, "POST", "/internal/flush")
        rolled = {"buckets": 0, "samples": 0, "bytes": 0}
        while True:  # a pass rolls at most a few hundred buckets
            code, r = http(base, "POST", "/internal/roll")
            if code != 200 or not r.get("buckets"):
                break
            for k in rolled:
                rolled[k] += r[k]
        print(f"flush + roll: {time.time() - t0:.1f} s: {rolled}", flush=True)
        sizes = {k: dir_bytes(os.path.join(data, k)) for k in ("hot", "log", "cold")}
        print(f"bytes on disk: {sizes}", flush=True)
        out = {"binary": binary, "devices": a.devices, "days": a.days, "step_min": a.step_min,
               "samples": samples, "write_s": secs, "sizes": sizes, "scenarios": []}
        last_day = (end_ms - DAY, end_ms - 1)
        for name, dev, (s0, s1) in (("1 day", f"dev-{a.devices // 3:05d}", last_day),
                                    (f"{a.days} days", f"dev-{2 * a.devices // 3:05d}", (start_ms, end_ms - 1))):
            r = scenario(base, name, dev, s0, s1)
            out["scenarios"].append(r)
            print(json.dumps(r), flush=True)
        print()
        print(f"{'scenario':10} {'samples':>8} {'invisible s':>12} {'purged s':>9} {'bytes rewritten':>16} "
              f"{'files':>6} {'rows removed':>13}")
        for r in out["scenarios"]:
            print(f"{r['scenario']:10} {r['samples_before']:>8.0f} {r['invisible_s']:>12.3f} {r['purged_s']:>9.2f} "
                  f"{r['bytes_rewritten']:>16} {r['files_touched']:>6} {r['rows_removed']:>13}")
        if a.json:
            with open(a.json, "w") as f:
                json.dump(out, f, indent=1)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"data dir kept: {data}")


if __name__ == "__main__":
    main()
