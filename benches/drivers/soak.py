#!/usr/bin/env python3
"""Soak run (issue 20, item 3): one Strata node under a mixed load for
--duration seconds (default 30 minutes) — writes at --fraction (80 %) of its
measured capacity, dashboard queries on a loop, hot flushes and compactions,
cold-tier rolls and maintenance — sampled every --sample-interval (10 s):
RSS, CPU, write-ack and query p50/p99, samples ingested, flushes,
compactions, rolls and merges, the host's load average and the server's
run-queue wait. Verdicts: memory flat after warm-up, latencies bounded.

Setup: the release binary (--strata, default $CARGO_TARGET_DIR/release/
strata) on a free port and a temp data dir, embedded log, cold tier on with
short settings so that everything happens many times within the run:
1-minute hot buckets, memtable flush every 10 s, hot compaction from 4
segments, rolls looked for every 5 s and done 10 s after a bucket ends,
cold maintenance (merges of 4+ small files, snapshot expiry, orphan removal)
every 60 s, hot copies expired after 5 minutes (so the hot set stops growing
after ~6 minutes; older data is read from the cold tier).

Phases (the write machinery is write_latency.py's, imported):
 1. capacity: an untimed warm-up (every device written once), then a short
    closed-loop ramp of --ramp-conns connections, --ramp-step s each; the
    best level's requests/s is the capacity. The dashboard queries of phase
    2 run during the warm-up and the ramp (--write-only-capacity: they do
    not), so the capacity is the node's under the soak's mix: on 2 cores a
    write-only capacity (1.18M samples/s, 2026-12-03 17:09) was more than
    the node could write while answering the queries, and an open loop at
    80 % of it only queued (write latency +~75 ms per second of run).
 2. soak: open loop at --fraction of it (--client-procs processes sending on
    a fixed schedule; latency = answer - *scheduled* send, no coordinated
    omission), IoT-sized requests (--lines lines of 10 fields, 100k series
    by default), while one query thread loops over the dashboard queries
    below (those of grafana/dashboards/iot-telemetry.json: fleet-wide or one
    farm, and one device; range queries over the last 30 minutes at a 15 s
    step, like Grafana's default refresh, so they read hot and cold) with
    --query-pause s between queries.
Every sample row: t, RSS (MiB), server cores (utime+stime delta), run-queue
wait (s per s, /proc/PID/task/*/schedstat), host load average, write
requests ok/errors, write-ack p50/p99/max, queries ok/errors, query p50/p99/
max, samples ingested (/metrics strata_ingest_samples_total delta), hot
series, segments, memtable samples, hot disk bytes, flushes and compactions
(hot store log lines), rolls, merges and maintenance passes (/metrics).

Outputs: --out PREFIX -> PREFIX.csv (the rows), PREFIX.json (rows, capacity,
settings, verdicts), PREFIX.png (RSS, CPU, write and query p99, load). The
PNG needs matplotlib: when this interpreter has none, the plot is drawn by
the interpreter `scripts/matplotlib-env.sh` prints (it makes a venv with
pip on first use); or later: `$(scripts/matplotlib-env.sh)
benches/drivers/soak.py --plot-only PREFIX.json`.

The open loop first runs --settle seconds (default: --dashboard-range) that are not judged: until then
the dashboards' range queries cover a window still filling with data, so their cost grows by design (run 6,
2026-12-04: a 30-minute window in a 30-minute run read the "drift" of its own filling), and the hot set
has not reached its steady size (hot copies expire after 5 minutes). Rows carry, per write stage, the
slowest histogram bucket that gained an observation in the window (strata_write_stage_seconds), and a
slow window's line names its slowest stages.

Verdicts (printed, exit code unaffected; it is a benchmark), over the judged rows:
 * memory flat: least-squares slope of the per-minute RSS maxima (rolls free memory for a moment, so RSS
   is a sawtooth whose dips would steer a line through every sample; a leak raises the tops);
   projected growth over that span <= max(--rss-growth-pct % of its mean,
   --rss-growth-floor-mib).
 * latencies bounded: write-ack and query p99 of each third; bounded when
   the last third's p99 <= 1.5 x the middle third's + 20 ms (no upward drift)
   and every 10-s window's write p99 <= --write-p99-bound-ms, query p99 <=
   --query-p99-bound-ms. On a shared host the bounds measure the host too:
   the load average and run-queue wait are printed beside them.

  CARGO_TARGET_DIR=$HOME/.cache/strata-target-q nice -n 19 cargo build --release -p strata
  python3 benches/drivers/soak.py --out docs/benchmarks/2026-12-03-soak        # 30 min settle + 30 min judged + ~3 min
  python3 benches/drivers/soak.py --dashboard-range 900 --out PREFIX             # 15 min settle + 30 min judged
  python3 benches/drivers/soak.py --duration 150 --out /tmp/soak-check          # driver check

Python standard library only (plus matplotlib for the PNG, see above).
"""

import argparse
import csv
import json
import multiprocessing as mp
import os
import queue
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import write_latency as wl  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Dashboard queries (grafana/dashboards/iot-telemetry.json, $farm = one farm or all,
# $device = one device, $__rate_interval = 1m): (name, kind, query).
# kind: "instant" at now; "range" over the last 30 minutes at a 15 s step.
QUERIES = [
    ("fleet_devices_per_region", "instant", 'count by (region) (sensors_temp)'),
    ("fleet_low_battery", "instant", 'count(sensors_battery < 3.5) or vector(0)'),
    ("fleet_lowest_batteries", "instant", 'bottomk(10, sensors_battery)'),
    ("fleet_temp_max_by_farm", "instant", 'max by (farm) (sensors_temp)'),
    ("farm_moisture_avg", "range",
     'avg by (farm) (avg_over_time(sensors_moisture{farm="farm-0007", kind="soil"}[1m]))'),
    ("farm_samples_ingested", "range", 'sum by (farm) (count_over_time(sensors_temp{farm="farm-0042"}[1m]))'),
    ("farm_wind_max", "range", 'max by (farm) (max_over_time(sensors_wind{farm=~"farm-001[0-9]"}[1m]))'),
    ("device_temp", "range", 'sensors_temp{device="dev-0000421"}'),
    ("device_temp_trend", "range", 'deriv(sensors_temp{device="dev-0000421"}[1m]) * 3600'),
    ("device_rssi_smoothed", "range", 'avg_over_time(sensors_rssi{device="dev-0000421"}[1m])'),
    ("device_ph_last", "instant", 'last_over_time(sensors_ph{device="dev-0000421"}[30m])'),
]
SLOW_WRITE_S = 2.0  # a write answered this late is listed on its own (where its time went)
RANGE_S = 1800  # default of --dashboard-range (Grafana's "Last 30 minutes")
STEP_S = 15

SETTINGS = {  # the node's configuration (environment), besides embedded defaults and open mode
    "STRATA_HOT_STORE__BUCKET": "1m",
    "STRATA_HOT_STORE__FLUSH_INTERVAL": "10s",
    "STRATA_HOT_STORE__COMPACT_SEGMENTS": "4",
    "STRATA_HOT_STORE__DEFAULT_HOT_TTL": "5m",
    "STRATA_COLD__ENABLED": "true",
    "STRATA_COMPACTOR__INTERVAL": "5s",
    "STRATA_COMPACTOR__GRACE": "10s",
    "STRATA_COMPACTOR__MAINTENANCE_INTERVAL": "60s",
    "STRATA_COMPACTOR__MERGE_MIN_FILES": "4",
    "STRATA_COMPACTOR__SNAPSHOT_RETENTION": "2m",
    "STRATA_COMPACTOR__ORPHAN_GRACE": "2m",
}
GAUGES = ("strata_hot_series", "strata_hot_segments", "strata_hot_memtable_samples", "strata_hot_disk_bytes",
          "strata_hot_buckets")
COUNTERS = ("strata_ingest_samples_total", "strata_compactor_buckets_rolled_total", "strata_compactor_merges_total",
            "strata_compactor_maintenance_passes_total", "strata_compactor_samples_rolled_total",
            "strata_compactor_errors_total", "strata_compactor_snapshots_expired_total",
            "strata_compactor_orphan_files_deleted_total")
STAGES = ("decode", "append", "log_queue", "log_write", "log_sync", "log_round", "log_roll", "apply", "request")
STAGE_BUCKET = "strata_write_stage_seconds_bucket"  # the write path's stage histograms (ingest/src/stages.rs)
PLOT_COLUMNS = ("rss_mib", "server_cores", "runq_wait", "load1", "write_p50_ms", "write_p99_ms", "query_p50_ms",
                "query_p99_ms", "samples_per_s", "flushes", "compactions", "rolls")


class SoakStrata(wl.Strata):
    name = "strata"

    def env(self):
        e = super().env()
        e.update(SETTINGS)
        e["RUST_LOG"] = os.environ.get("SOAK_RUST_LOG", "warn,strata_hot_store=debug")
        return e

    def keep_metric(self, name):
        base = name.split("{")[0]
        return base in GAUGES or base in COUNTERS or base == STAGE_BUCKET


def sum_metrics(m):
    """Unlabelled sums of the kept metrics."""
    out = {}
    for k, v in m.items():
        base = k.split("{")[0]
        out[base] = out.get(base, 0.0) + v
    return out


def stage_max_ms(raw, raw_prev):
    """Per write stage, the upper bound (ms) of the slowest histogram bucket that gained an observation between
    two /metrics reads: which stage a slow window's requests waited in."""
    per = {}
    for k, v in raw.items():
        if not k.startswith(STAGE_BUCKET + "{"):
            continue
        m = re.search(r'stage="([^"]+)"', k), re.search(r'le="([^"]+)"', k)
        if not (m[0] and m[1]):
            continue
        le = float("inf") if m[1].group(1) == "+Inf" else float(m[1].group(1))
        per.setdefault(m[0].group(1), []).append((le, v - raw_prev.get(k, 0.0)))
    out = {}
    for stage, buckets in per.items():
        buckets.sort()
        total = buckets[-1][1] if buckets else 0.0
        worst, below = None, 0.0
        for i, (le, cum) in enumerate(buckets):
            if cum > below:  # this bucket gained observations
                worst = le if le != float("inf") else (buckets[i - 1][0] * 2 if i else le)
            below = cum
        out[stage] = None if total <= 0 or worst is None else round(worst * 1000, 2)
    return out


def rss_mib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for ln in f:
                if ln.startswith("VmRSS:"):
                    return int(ln.split()[1]) / 1024.0
    except OSError:
        pass
    return None


# ---------------------------------------------------------------- streaming open-loop load

def stream_load_proc(cfg, proc_index, out_q):
    """One open-loop load process (write_latency's schedule and sender), reporting its
    records [(sched, done, status)] every cfg['report'] seconds so the driver can
    sample latency while the run goes on."""
    try:
        bodies = wl.device_lines(proc_index, cfg["procs"], cfg["devices"], cfg["lines"], cfg["bodies"], cfg["seed"])
        hdrs = b"Content-Type: text/plain; charset=utf-8\r\n"
        start, end = cfg["start"], cfg["end"]
        lock = threading.Lock()
        pending = []
        counter = [0]
        q = queue.Queue()
        scheduler = wl.open_loop_scheduler(q, cfg, proc_index, start, end)

        def worker():
            conn = wl.RawConn(cfg["port"])
            while True:
                t = q.get()
                if t is None:
                    break
                with lock:
                    counter[0] += 1
                    lines = bodies[counter[0] % len(bodies)]
                body = wl.make_body(lines, int(time.time() * 1000))
                # Where a slow answer's time went: waiting for this thread (client
                # side), or on the connection (a fresh one includes the connect).
                picked, fresh = time.monotonic(), conn.sock is None
                try:
                    st, _ = conn.request("POST", cfg["path"], body, hdrs)
                except (OSError, ValueError, IndexError, ConnectionError):
                    st = 0
                done = time.monotonic()
                with lock:
                    pending.append((t, done, st, picked, fresh))
            conn.close()

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(cfg["conns"])]
        threads.append(threading.Thread(target=scheduler, daemon=True))
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads) and time.monotonic() < end + 60:
            time.sleep(cfg["report"])
            with lock:
                batch, pending[:] = list(pending), []
            out_q.put({"proc": proc_index, "records": batch})
        with lock:
            batch = list(pending)
        out_q.put({"proc": proc_index, "records": batch, "done": True})
    except Exception as e:  # report, never hang the parent
        out_q.put({"proc": proc_index, "error": repr(e), "records": [], "done": True})


class QueryLoop(threading.Thread):
    """Runs the dashboard queries in turn, --query-pause apart; records (monotonic end, name, latency s, status,
    warnings)."""

    def __init__(self, port, pause, stop_at, range_s=RANGE_S):
        super().__init__(daemon=True)
        self.port, self.pause, self.stop_at, self.range_s = port, pause, stop_at, range_s
        self.lock = threading.Lock()
        self.records = []
        self.errors = []

    def run(self):
        c = wl.RawConn(self.port, timeout=120)
        i = 0
        while time.monotonic() < self.stop_at:
            name, kind, expr = QUERIES[i % len(QUERIES)]
            i += 1
            now = time.time()
            if kind == "instant":
                path = "/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": "%.3f" % now})
            else:
                path = "/api/v1/query_range?" + urllib.parse.urlencode(
                    {"query": expr, "start": "%.3f" % (now - self.range_s), "end": "%.3f" % now, "step": STEP_S})
            t0 = time.monotonic()
            try:
                st, data = c.request("GET", path)
            except (OSError, ValueError, IndexError, ConnectionError) as e:
                st, data = 0, repr(e).encode()
            t1 = time.monotonic()
            warn = 0
            if st == 200:
                try:
                    warn = len(json.loads(data).get("warnings") or [])
                except ValueError:
                    st = -1
            elif len(self.errors) < 20:
                self.errors.append("%s %s: %s" % (name, st, data[:300]))
            with self.lock:
                self.records.append((t1, name, t1 - t0, st, warn))
            time.sleep(self.pause)
        c.close()

    def take(self):
        with self.lock:
            out, self.records = self.records, []
        return out


# ---------------------------------------------------------------- the run

def pct_ms(vals, q):
    v = wl.pct(sorted(vals), q)
    return None if v is None else round(v * 1000, 2)


def log_counts(path, state):
    """Hot store flushes and compactions logged since the last call."""
    flushes = comps = 0
    try:
        with open(path, "rb") as f:
            f.seek(state.get("pos", 0))
            chunk = f.read()
    except OSError:
        return 0, 0
    cut = chunk.rfind(b"\n") + 1
    state["pos"] = state.get("pos", 0) + cut
    for ln in chunk[:cut].splitlines():
        if b"hot store flushed" in ln:
            flushes += 1
        elif b"hot store compacted" in ln:
            comps += 1
    return flushes, comps


def soak(target, a, req_per_s, report):
    rate = a.fraction * req_per_s
    procs = a.client_procs
    print("\n[soak] open loop at %.0f %% of capacity: %.1f requests/s (%.0f samples/s) for %.0f s, %d procs x %d "
          "conns; %d dashboard queries looping (range queries over the last %.0f s), %.1f s apart; a row every %.0f s; "
          "the first %.0f s settle (not judged)" % (
              a.fraction * 100, rate, rate * a.lines * len(wl.FIELDS), a.settle + a.duration, procs,
              a.conns_per_proc, len(QUERIES), a.dashboard_range, a.query_pause, a.sample_interval, a.settle),
          flush=True)
    ctx = mp.get_context("fork")
    out_q = ctx.Queue()
    start = time.monotonic() + 1.5 + 0.002 * a.lines * a.bodies / 100
    end = start + a.settle + a.duration
    cfg = {"port": target.port, "path": target.write_path, "procs": procs, "conns": a.conns_per_proc,
           "devices": a.devices, "lines": a.lines, "bodies": a.bodies, "seed": a.seed, "start": start, "end": end,
           "rate": rate, "report": 0.5}
    ps = [ctx.Process(target=stream_load_proc, args=(cfg, i, out_q), daemon=True) for i in range(procs)]
    for p in ps:
        p.start()
    while time.monotonic() < start:
        time.sleep(0.01)
    ql = QueryLoop(target.port, a.query_pause, end, a.dashboard_range)
    ql.start()
    all_q = []  # every query record, for the per-query summary
    pid = target.proc.pid
    writes = []  # (sched, done, status), drained from the queue
    done_procs = set()
    errors = []

    def drain(block_until=None):
        while True:
            try:
                m = out_q.get(timeout=0.05 if block_until is None else max(0.01, block_until - time.monotonic()))
            except queue.Empty:
                return
            writes.extend(m["records"])
            if m.get("error"):
                errors.append(m["error"])
            if m.get("done"):
                done_procs.add(m["proc"])
            if block_until is not None and time.monotonic() >= block_until:
                return

    logstate = {}
    log_counts(target.log_path, logstate)
    raw_prev = target.metrics()
    m_prev = sum_metrics(raw_prev)
    cpu_prev, wait_prev, t_prev = wl.proc_cpu_s(pid), wl.runq_wait_s(pid), time.monotonic()
    rows = []
    hdr = ("%6s %7s %6s %5s %6s %6s %8s %8s %8s %5s %8s %8s %10s %5s %5s %5s %5s" % (
        "t s", "rss MiB", "cores", "wait", "load1", "req/s", "w p50", "w p99", "w max", "qry", "q p50", "q p99",
        "samples/s", "flush", "comp", "roll", "merge"))
    print(hdr, flush=True)
    k = 0
    while True:
        k += 1
        t_next = start + k * a.sample_interval
        if t_next > end + 0.5:
            break
        # the load processes report every 0.5 s: wait 1 s past the window for its last answers
        while time.monotonic() < t_next + 1.0:
            drain(block_until=min(t_next + 1.0, time.monotonic() + 0.5))
        if target.proc.poll() is not None:
            print("server exited with %s:\n%s" % (target.proc.returncode, target.tail()), flush=True)
            report["server_exit"] = target.proc.returncode
            break
        now = time.monotonic()
        cpu, wait = wl.proc_cpu_s(pid), wl.runq_wait_s(pid)
        raw = target.metrics()
        m = sum_metrics(raw)
        fl, comp = log_counts(target.log_path, logstate)
        w1 = t_next
        # write latency (answer - scheduled send) of the requests answered in this window
        win = [r for r in writes if r[1] < w1]
        ok = [r[1] - r[0] for r in win if 200 <= r[2] < 300]
        qs = [r for r in ql.take()]
        all_q.extend(qs)
        qok = [r[2] for r in qs if r[3] == 200]
        dt = now - t_prev
        d = {c: m.get(c, 0.0) - m_prev.get(c, 0.0) for c in COUNTERS}
        row = {
            "t": round(k * a.sample_interval),
            "wall": time.strftime("%H:%M:%S", time.gmtime()),
            "rss_mib": None if rss_mib(pid) is None else round(rss_mib(pid), 1),
            "server_cores": None if cpu is None or cpu_prev is None else round((cpu - cpu_prev) / dt, 3),
            "runq_wait": None if wait is None or wait_prev is None else round((wait - wait_prev) / dt, 3),
            "load1": float(wl.loadavg().split()[0]),
            "write_ok": len(ok), "write_errors": len(win) - len(ok),
            "write_p50_ms": pct_ms(ok, 0.5), "write_p99_ms": pct_ms(ok, 0.99),
            "write_max_ms": round(max(ok) * 1000, 2) if ok else None,
            "queries_ok": len(qok), "query_errors": len(qs) - len(qok),
            "query_warnings": sum(r[4] for r in qs),
            "query_p50_ms": pct_ms(qok, 0.5), "query_p99_ms": pct_ms(qok, 0.99),
            "query_max_ms": round(max(qok) * 1000, 2) if qok else None,
            "samples_per_s": round(d["strata_ingest_samples_total"] / dt),
            "flushes": fl, "compactions": comp,
            "rolls": int(d["strata_compactor_buckets_rolled_total"]),
            "merges": int(d["strata_compactor_merges_total"]),
            "maintenance_passes": int(d["strata_compactor_maintenance_passes_total"]),
            "compactor_errors": int(d["strata_compactor_errors_total"]),
            "samples_rolled": int(d["strata_compactor_samples_rolled_total"]),
        }
        for g in GAUGES:
            row[g.replace("strata_", "")] = m.get(g)
        stages = stage_max_ms(raw, raw_prev)
        for st in STAGES:
            row["stage_%s_max_ms" % st] = stages.get(st)
        rows.append(row)
        for r in win:
            if r[1] - r[0] >= SLOW_WRITE_S and len(r) > 3:
                slow = {"t": row["t"], "latency_s": round(r[1] - r[0], 3), "client_wait_s": round(r[3] - r[0], 3),
                        "connection_s": round(r[1] - r[3], 3), "fresh_connection": r[4], "status": r[2],
                        "sent_at_t": round(r[0] - start, 1)}
                report.setdefault("slow_writes", []).append(slow)
                print("       slow write: %(latency_s).2f s (sent at t = %(sent_at_t)s s): %(client_wait_s).2f s "
                      "waiting for a client thread, %(connection_s).2f s on the connection (fresh: "
                      "%(fresh_connection)s), status %(status)s" % slow, flush=True)
        writes[:] = [r for r in writes if r[1] >= w1]
        m_prev, raw_prev, cpu_prev, wait_prev, t_prev = m, raw, cpu, wait, now
        print("%6d %7s %6s %5s %6.2f %6.1f %8s %8s %8s %5d %8s %8s %10d %5d %5d %5d %5d" % (
            row["t"], row["rss_mib"], row["server_cores"], row["runq_wait"], row["load1"],
            row["write_ok"] / a.sample_interval, row["write_p50_ms"], row["write_p99_ms"], row["write_max_ms"],
            row["queries_ok"], row["query_p50_ms"], row["query_p99_ms"], row["samples_per_s"], fl, comp,
            row["rolls"], row["merges"]) + ("  write errors %d" % row["write_errors"] if row["write_errors"] else "")
            + ("  query errors %d" % row["query_errors"] if row["query_errors"] else "")
            + ("  slowest stages (bucket ms): %s" % ", ".join(
                "%s %s" % (st, v) for st, v in sorted(stages.items(), key=lambda kv: -(kv[1] or 0))[:4])
               if (row["write_p99_ms"] or 0) > a.write_p99_bound_ms / 4 else ""), flush=True)
    deadline = time.monotonic() + 90
    while len(done_procs) < procs and time.monotonic() < deadline:
        drain(block_until=time.monotonic() + 1)
    for p in ps:
        p.join(5)
        if p.is_alive():
            p.terminate()
    ql.join(130)
    report["writes_answered_after_the_last_row"] = len(writes)
    report["load_errors"] = errors
    report["query_errors_first"] = ql.errors[:10]
    all_q.extend(ql.take())
    report["per_query"] = {  # latency of each dashboard query over the run (answered ones), and its failures
        name: {"n": len(ok), "errors": len(lat) - len(ok), "p50_ms": pct_ms(ok, 0.5), "p99_ms": pct_ms(ok, 0.99),
               "max_ms": round(max(ok) * 1000, 2) if ok else None}
        for name, lat, ok in ((n, [r for r in all_q if r[1] == n], [r[2] for r in all_q if r[1] == n and r[3] == 200])
                              for n, _, _ in QUERIES)}
    report["target_req_per_s"] = round(rate, 2)
    return rows


# ---------------------------------------------------------------- verdicts

def slope_per_min(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx * 60.0


def envelope(rows, per_s=60.0):
    """(t, max RSS) of each `per_s` span: the top of the sawtooth. A roll frees the memory of the reads and
    buffers around it for a moment (run 6: RSS at 0.4-1.0 GiB in roll windows, ~2.3 GiB between), so a line
    through every sample depends on where the dips fall; a leak raises the tops."""
    spans = {}
    for r in rows:
        if r["rss_mib"] is not None:
            spans.setdefault(int(r["t"] // per_s), []).append(r)
    return [(max(g, key=lambda r: r["rss_mib"])["t"], max(r["rss_mib"] for r in g))
            for _, g in sorted(spans.items())]


def verdicts(rows, a):
    out = {}
    whole = rows
    settle = getattr(a, "settle", 0) or 0
    judged = [r for r in rows if r["t"] > settle] if settle else rows
    n = len(judged)
    if n < 6:
        return {"note": "too few rows (%d) for verdicts" % n}
    # memory after warm-up: the judged rows after a settle, else the last 2/3 of the run
    tail = [r for r in (judged if settle else rows[n // 3:]) if r["rss_mib"] is not None]
    xs, ys = [r["t"] for r in tail], [r["rss_mib"] for r in tail]
    raw_slope = slope_per_min(xs, ys)
    env = envelope(tail)
    slope = slope_per_min([x for x, _ in env], [y for _, y in env]) if len(env) >= 3 else raw_slope
    span_min = (xs[-1] - xs[0]) / 60.0
    mean = sum(ys) / len(ys)
    growth = slope * span_min
    bound = max(a.rss_growth_pct / 100.0 * mean, a.rss_growth_floor_mib)
    before = rows[:len(rows) - n] if settle else rows[:n // 3]
    out["memory"] = {"from_t": xs[0], "to_t": xs[-1], "slope_mib_per_min": round(slope, 3),
                     "slope_of": "per-minute maxima" if len(env) >= 3 else "samples",
                     "samples_slope_mib_per_min": round(raw_slope, 3),
                     "projected_growth_mib": round(growth, 1), "mean_mib": round(mean, 1),
                     "min_mib": min(ys), "max_mib": max(ys), "bound_mib": round(bound, 1),
                     "first_third_max_mib": max((r["rss_mib"] for r in before if r["rss_mib"]), default=None),
                     "flat": growth <= bound}
    rows = judged
    thirds = [rows[:n // 3], rows[n // 3:2 * n // 3], rows[2 * n // 3:]]
    for kind, bound_ms in (("write", a.write_p99_bound_ms), ("query", a.query_p99_bound_ms)):
        per = []
        for th in thirds:
            vals = [r["%s_p99_ms" % kind] for r in th if r["%s_p99_ms" % kind] is not None]
            per.append(round(statistics.median(vals), 2) if vals else None)
        after = rows if settle else rows[n // 3:]
        worst = max((r["%s_p99_ms" % kind] for r in after if r["%s_p99_ms" % kind] is not None), default=None)
        errs = sum(r["%s_errors" % kind] for r in rows)
        no_drift = per[1] is not None and per[2] is not None and per[2] <= 1.5 * per[1] + 20
        within = worst is not None and worst <= bound_ms
        out[kind] = {"median_window_p99_ms_by_third": per, "worst_window_p99_ms_after_warmup": worst,
                     "bound_ms": bound_ms, "errors": errs, "no_drift": no_drift, "within_bound": within,
                     "bounded": no_drift and within}
    loads = [r["load1"] for r in whole]
    waits = [r["runq_wait"] for r in whole if r["runq_wait"] is not None]
    cores = [r["server_cores"] for r in whole if r["server_cores"] is not None]
    out["host"] = {"load1_min": min(loads), "load1_median": statistics.median(loads), "load1_max": max(loads),
                   "runq_wait_median": statistics.median(waits) if waits else None,
                   "runq_wait_max": max(waits) if waits else None,
                   "server_cores_median": statistics.median(cores) if cores else None}
    tot = {k: sum(r[k] for r in whole) for k in ("flushes", "compactions", "rolls", "merges", "maintenance_passes",
                                                "write_ok", "write_errors", "queries_ok", "query_errors",
                                                "compactor_errors", "samples_rolled")}
    tot["samples_ingested"] = sum(r["samples_per_s"] for r in whole) * a.sample_interval
    out["totals"] = tot
    return out


def print_verdicts(v):
    if "memory" not in v:
        print(v.get("note"))
        return
    m = v["memory"]
    print("\n== verdicts")
    print("memory: RSS over t=%d..%d s: mean %.1f MiB (min %.1f, max %.1f; before it max %s), slope of the %s "
          "%+.3f MiB/min (of every sample %+.3f) -> %+.1f MiB over the span, bound %.1f MiB: %s" % (
              m["from_t"], m["to_t"], m["mean_mib"], m["min_mib"], m["max_mib"], m["first_third_max_mib"],
              m.get("slope_of", "samples"), m["slope_mib_per_min"], m.get("samples_slope_mib_per_min", float("nan")),
              m["projected_growth_mib"], m["bound_mib"], "FLAT" if m["flat"] else "GROWING"))
    for kind in ("write", "query"):
        k = v[kind]
        print("%s p99 (median of 10-s windows) by third: %s ms; worst window after warm-up %s ms (bound %s ms); "
              "errors %d: %s" % (kind, k["median_window_p99_ms_by_third"], k["worst_window_p99_ms_after_warmup"],
                                 k["bound_ms"], k["errors"],
                                 "BOUNDED" if k["bounded"] else "NOT BOUNDED (%s)" % (
                                     "drift" if not k["no_drift"] else "over the bound")))
    h = v["host"]
    print("host: load average (1 min) %.2f..%.2f (median %.2f); server run-queue wait median %s s/s, max %s s/s; "
          "server cores median %s" % (h["load1_min"], h["load1_max"], h["load1_median"], h["runq_wait_median"],
                                      h["runq_wait_max"], h["server_cores_median"]))
    t = v["totals"]
    print("totals: %d write requests ok, %d errors; %d queries ok, %d errors; %d samples ingested; %d flushes, "
          "%d hot compactions, %d rolls (%d samples), %d cold merges, %d maintenance passes, %d compactor errors" % (
              t["write_ok"], t["write_errors"], t["queries_ok"], t["query_errors"], t["samples_ingested"],
              t["flushes"], t["compactions"], t["rolls"], t["samples_rolled"], t["merges"], t["maintenance_passes"],
              t["compactor_errors"]), flush=True)


# ---------------------------------------------------------------- outputs

def write_csv(rows, path):
    if not rows:
        return
    cols = list(rows[0].keys())
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow(r)


def plot(report, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = report["rows"]
    t = [r["t"] / 60.0 for r in rows]

    def col(k):
        return [r[k] if r[k] is not None else float("nan") for r in rows]
    fig, ax = plt.subplots(5, 1, figsize=(11, 14), sharex=True)
    ax[0].plot(t, col("rss_mib"), color="tab:blue")
    ax[0].set_ylabel("RSS (MiB)")
    ax[0].set_ylim(bottom=0)
    v = report.get("verdicts", {}).get("memory")
    if v:
        ax[0].axvline(v["from_t"] / 60.0, color="grey", ls=":", lw=1)
        ax[0].set_title("memory: slope %+.2f MiB/min over the last 2/3 (%s)" % (
            v["slope_mib_per_min"], "flat" if v["flat"] else "growing"), fontsize=9)
    ax[1].plot(t, col("server_cores"), label="server CPU (cores)", color="tab:orange")
    ax[1].plot(t, col("runq_wait"), label="server run-queue wait (s/s)", color="tab:red", lw=0.8)
    ax[1].plot(t, col("load1"), label="host load average (1 min)", color="tab:grey", lw=0.8)
    ax[1].set_ylabel("cores / s per s / load")
    ax[1].legend(fontsize=8, loc="upper left")
    ax[2].plot(t, col("write_p50_ms"), label="write ack p50", color="tab:green")
    ax[2].plot(t, col("write_p99_ms"), label="write ack p99", color="tab:olive")
    ax[2].set_yscale("log")
    ax[2].set_ylabel("write latency (ms)")
    ax[2].legend(fontsize=8, loc="upper left")
    ax[3].plot(t, col("query_p50_ms"), label="query p50", color="tab:purple")
    ax[3].plot(t, col("query_p99_ms"), label="query p99", color="tab:pink")
    ax[3].set_yscale("log")
    ax[3].set_ylabel("query latency (ms)")
    ax[3].legend(fontsize=8, loc="upper left")
    ax[4].plot(t, [x / 1000.0 for x in col("samples_per_s")], label="samples ingested (k/s)", color="tab:cyan")
    ax4b = ax[4].twinx()
    for k, c in (("flushes", "tab:blue"), ("compactions", "tab:orange"), ("rolls", "tab:red"),
                 ("merges", "tab:brown")):
        ax4b.plot(t, col(k), label=k + " per row", color=c, lw=0.7, drawstyle="steps-mid")
    ax[4].set_ylabel("k samples/s")
    ax4b.set_ylabel("events per %g s" % report["params"]["sample_interval"])
    ax[4].legend(fontsize=8, loc="upper left")
    ax4b.legend(fontsize=8, loc="upper right")
    ax[4].set_xlabel("minutes since the soak started")
    fig.suptitle("Strata soak %s: %.0f %% of %.0f samples/s capacity, %s" % (
        report["started"], report["params"]["fraction"] * 100, report["capacity"]["samples_per_s"],
        os.path.basename(report["strata"])), fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)


def plot_any(json_path, png):
    """Plot with this interpreter's matplotlib, else with scripts/matplotlib-env.sh's."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        env = os.path.join(REPO, "scripts", "matplotlib-env.sh")
        print("no matplotlib in %s: plotting with the interpreter %s prints (a venv; pip on first use)" % (
            sys.executable, env), flush=True)
        try:
            py = subprocess.run([env], check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            subprocess.run([py, os.path.abspath(__file__), "--plot-only", json_path, "--png", png], check=True)
            return True
        except (OSError, subprocess.CalledProcessError, IndexError) as e:
            print("could not plot (%s); install matplotlib (pip install matplotlib, or run %s) and then: "
                  "$(scripts/matplotlib-env.sh) %s --plot-only %s" % (e, env, __file__, json_path), file=sys.stderr)
            return False
    with open(json_path) as f:
        plot(json.load(f), png)
    print("plot: %s" % png)
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strata", default=wl.default_strata())
    ap.add_argument("--duration", type=float, default=1800.0, help="soak seconds judged (after --settle)")
    ap.add_argument("--dashboard-range", type=float, default=float(RANGE_S),
                    help="seconds the dashboard's range queries cover (Grafana's time range)")
    ap.add_argument("--settle", type=float, default=None,
                    help="seconds of open loop before the judged part (default: --dashboard-range, so that the "
                         "dashboards' window is full of data and the hot set at its steady size)")
    ap.add_argument("--fraction", type=float, default=0.8, help="of the measured capacity")
    ap.add_argument("--sample-interval", type=float, default=10.0)
    ap.add_argument("--lines", type=int, default=300, help="lines per write request (10 fields each)")
    ap.add_argument("--devices", type=int, default=10000, help="devices (series = devices x 10)")
    ap.add_argument("--bodies", type=int, default=64, help="pre-generated bodies per load process")
    ap.add_argument("--client-procs", type=int, default=2)
    ap.add_argument("--conns-per-proc", type=int, default=8)
    ap.add_argument("--ramp-step", type=float, default=30.0,
                    help="seconds per ramp level: long enough to include memtable flushes")
    ap.add_argument("--ramp-conns", default="1,2,4,8,16")
    ap.add_argument("--warmup", type=float, default=30.0, help="untimed closed loop before the ramp")
    ap.add_argument("--write-only-capacity", action="store_true",
                    help="measure the capacity without the dashboard queries running (the 2026-12-03 runs did: "
                         "a capacity the node does not have under the soak's mix)")
    ap.add_argument("--query-pause", type=float, default=1.0, help="seconds between dashboard queries")
    ap.add_argument("--rss-growth-pct", type=float, default=5.0)
    ap.add_argument("--rss-growth-floor-mib", type=float, default=32.0)
    ap.add_argument("--write-p99-bound-ms", type=float, default=1000.0)
    ap.add_argument("--query-p99-bound-ms", type=float, default=5000.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=None, help="PREFIX for PREFIX.csv, .json, .png")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--plot-only", default=None, metavar="JSON", help="only draw the PNG of an earlier run")
    ap.add_argument("--png", default=None)
    a = ap.parse_args(argv)
    if a.settle is None:
        a.settle = a.dashboard_range
    if a.plot_only:
        png = a.png or os.path.splitext(a.plot_only)[0] + ".png"
        return 0 if plot_any(a.plot_only, png) else 1
    a.ramp_conns = [int(x) for x in a.ramp_conns.split(",")]
    a.fractions = [a.fraction]
    if not os.path.exists(a.strata):
        print("no strata binary at %s: cargo build --release -p strata (CARGO_TARGET_DIR)" % a.strata,
              file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="strata-soak-")
    report = {"command": " ".join(["benches/drivers/soak.py"] + (argv if argv is not None else sys.argv[1:])),
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "loadavg_before": wl.loadavg(),
              "ncpu": os.cpu_count(), "strata": a.strata,
              "strata_mtime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(os.path.getmtime(a.strata))),
              "settings": SETTINGS, "queries": QUERIES,
              "params": {k: getattr(a, k) for k in ("duration", "fraction", "sample_interval", "lines", "devices",
                                                    "client_procs", "conns_per_proc", "ramp_step", "ramp_conns",
                                                    "warmup", "write_only_capacity", "query_pause", "rss_growth_pct",
                                                    "rss_growth_floor_mib", "write_p99_bound_ms",
                                                    "query_p99_bound_ms")}}
    print("soak: %s (built %s); %d lines x %d fields per request, %d devices (%d series), %d cores, loadavg %s" % (
        a.strata, report["strata_mtime"], a.lines, len(wl.FIELDS), a.devices, a.devices * len(wl.FIELDS),
        os.cpu_count(), report["loadavg_before"]), flush=True)
    print("settings: " + " ".join("%s=%s" % kv for kv in SETTINGS.items()), flush=True)
    target = SoakStrata(a, tmp)
    rc = 0
    rows = []
    try:
        target.start()
        report["argv"] = target.argv()
        cap_out = {}
        ql = None
        if not a.write_only_capacity:
            # The capacity the soak takes a fraction of is the node's under the soak's own mix: the
            # dashboard queries run during the warm-up and the ramp too (a write-only ramp measures a
            # capacity the node does not have while it also answers queries).
            ql = QueryLoop(target.port, a.query_pause, float("inf"), a.dashboard_range)
            ql.start()
        try:
            req_per_s = wl.ramp(target, a, cap_out)
        finally:
            if ql is not None:
                ql.stop_at = 0.0
                ql.join(timeout=180)
        if ql is not None:
            lat = [r[2] for r in ql.take() if r[3] == 200]
            cap_out["capacity"]["with_queries"] = {"queries": len(lat), "p50_ms": pct_ms(lat, 0.5),
                                                   "p99_ms": pct_ms(lat, 0.99)}
            print("  (dashboard queries ran during the warm-up and the ramp: %d answered, p50 %s ms, p99 %s ms)" % (
                len(lat), pct_ms(lat, 0.5), pct_ms(lat, 0.99)), flush=True)
        report["capacity"] = cap_out["capacity"]
        report["ramp"] = cap_out["ramp"]
        rows = soak(target, a, req_per_s, report)
        try:
            report["data_dir_bytes"] = int(subprocess.run(["du", "-sb", os.path.join(target.dir, "data")],
                                                          capture_output=True, text=True).stdout.split()[0])
        except (OSError, ValueError, IndexError):
            pass
    except wl.SetupError as e:
        print("SETUP FAILED: %s" % e, file=sys.stderr)
        rc = 2
    except KeyboardInterrupt:
        rc = 130
    finally:
        if target.proc is not None and target.proc.poll() is not None:
            report["exit"] = target.proc.returncode
            report["log_tail"] = target.tail()
        target.stop()
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("kept %s" % tmp)
    report["loadavg_after"] = wl.loadavg()
    report["rows"] = rows
    report["verdicts"] = verdicts(rows, a)
    print_verdicts(report["verdicts"])
    if report.get("writes_answered_after_the_last_row"):
        print("(%d write requests were answered after the last row: not in any row's percentiles)" %
              report["writes_answered_after_the_last_row"])
    if report.get("query_errors_first"):
        print("first query errors: %s" % report["query_errors_first"][:3])
    if a.out and rows:
        write_csv(rows, a.out + ".csv")
        with open(a.out + ".json", "w") as f:
            json.dump(report, f, indent=1)
            f.write("\n")
        print("wrote %s.csv, %s.json" % (a.out, a.out))
        plot_any(a.out + ".json", a.out + ".png")
    return rc


if __name__ == "__main__":
    sys.exit(main())
