#!/usr/bin/env python3
"""Freshness under sustained load (issue 16, point 2): how long after its
write is acknowledged does a sample become visible to queries, while the
node ingests IoT traffic? (Target: every sample visible within 1 s.)

Starts the release binary (`--strata`, default
`$CARGO_TARGET_DIR/release/strata`) like write_latency.py does (embedded
defaults, open mode, a temp data dir), and with `--peer victoriametrics`
VictoriaMetrics after it (`-search.latencyOffset=0s`, queried with
`nocache=1`). Per target:

 1. background load: write_latency.py's open-loop load generator (its
    processes, pre-generated 300-line IoT bodies over --devices devices,
    latency from the scheduled send) at --load-samples-per-s, or, without
    it, at --fraction of the capacity a short closed-loop ramp finds
    (write_latency.ramp, --ramp-step s per level). The series are created
    by a warm-up before anything is timed.
 2. during it, for --duration s: a *writer* thread posts one sample of its
    own series every --write-interval s on a fixed schedule
    (`fresh_seq,probe=<id> v=<seq> <now ms>`, through the same write path
    as the load), never waiting for visibility; a *reader* thread polls
    `/api/v1/query?query=fresh_seq_v{probe="<id>"}&time=<now>` back to back
    (--poll-gap s apart) and takes the value it answers as the newest
    visible seq. A seq is visible at the answer of the first poll whose
    value is >= it; its lag = that answer's time - the writer's
    acknowledgement of it (0 when a poll saw it before the writer had its
    acknowledgement; an upper bound otherwise: the sample may have been
    visible up to one poll round trip earlier, whose p50 is printed).
    A seq not visible 10 s after its acknowledgement counts as "never".
 3. printed per --window s: writes acknowledged, their ack latency p50/p99,
    visibility lag p50/p90/p99/max, never-visible count, poll round trip
    p50, the load's achieved samples/s and its ack p99, the server's CPU
    and run-queue wait (s/s its threads waited for a CPU), and the 1-min
    load average; then the whole run and the verdict against the target.

It is a benchmark: the target is printed, never asserted. Exit 2 if setup
fails; everything it started is stopped on exit. Python standard library
only (write_latency.py beside it).

  export CARGO_TARGET_DIR=/root/.cache/strata-target-q
  nice -n 19 cargo build --release -p strata
  python3 benches/drivers/freshness.py --json fresh.json                  # ramp, then 50 %, 60 s
  python3 benches/drivers/freshness.py --load-samples-per-s 500000        # no ramp: a fixed load
  python3 benches/drivers/freshness.py --peer victoriametrics
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import write_latency as wl  # noqa: E402

TARGET_S = 1.0
NEVER_S = 10.0


class Probe:
    """The writer and the reader of one probe series, and what they saw."""

    def __init__(self, target, a, probe):
        self.t = target
        self.a = a
        self.probe = probe
        self.lock = threading.Lock()
        self.max_seen = 0
        self.pending = {}  # seq -> ack monotonic time, not yet seen
        self.acks = []  # (ack monotonic, ack latency s, seq)
        self.lags = []  # (ack monotonic, lag s, seq)
        self.polls = []  # (answer monotonic, round trip s)
        self.errors = []
        self.stop_at = 0.0

    def writer(self):
        conn = wl.RawConn(self.t.port)
        hdr = b"Content-Type: text/plain; charset=utf-8\r\n"
        seq = 0
        nxt = time.monotonic()
        while nxt < self.stop_at:
            d = nxt - time.monotonic()
            if d > 0:
                time.sleep(d)
            seq += 1
            body = b"fresh_seq,probe=%s v=%d %d\n" % (self.probe.encode(), seq, int(time.time() * 1000))
            t0 = time.monotonic()
            try:
                st, data = conn.request("POST", self.t.write_path, body, hdr)
            except (OSError, ValueError, IndexError, ConnectionError) as e:
                st, data = 0, repr(e).encode()
                conn = wl.RawConn(self.t.port)
            ack = time.monotonic()
            if 200 <= st < 300:
                with self.lock:
                    self.acks.append((ack, ack - t0, seq))
                    if seq <= self.max_seen:
                        self.lags.append((ack, 0.0, seq))
                    else:
                        self.pending[seq] = ack
            else:
                self.errors.append("write %s: %s" % (st, data[:200]))
            nxt += self.a.write_interval
            while nxt < time.monotonic():  # a write that took longer than the interval: skip slots
                nxt += self.a.write_interval
        conn.close()

    def reader(self):
        conn = wl.RawConn(self.t.port)
        params = {"query": 'fresh_seq_v{probe="%s"}' % self.probe}
        params.update(self.t.query_extra)
        end = self.stop_at + NEVER_S
        while time.monotonic() < end:
            with self.lock:
                if time.monotonic() > self.stop_at and not self.pending:
                    break
            params["time"] = "%.3f" % time.time()
            t0 = time.monotonic()
            try:
                st, data = conn.request("GET", "/api/v1/query?" + urllib.parse.urlencode(params))
                now = time.monotonic()
                if st == 200:
                    res = json.loads(data)["data"]["result"]
                    v = int(float(res[0]["value"][1])) if res else 0
                    self.polls.append((now, now - t0))
                    with self.lock:
                        if v > self.max_seen:
                            self.max_seen = v
                            for seq in [s for s in self.pending if s <= v]:
                                ack = self.pending.pop(seq)
                                self.lags.append((ack, now - ack, seq))
                else:
                    self.errors.append("query %s: %s" % (st, data[:200]))
            except (OSError, ValueError, IndexError, KeyError, ConnectionError) as e:
                self.errors.append("query: %r" % (e,))
                conn = wl.RawConn(self.t.port)
            time.sleep(self.a.poll_gap)
        conn.close()

    def never(self):
        with self.lock:
            return sorted(self.pending.items())


def run_target(target, a, out):
    target.start()
    try:
        out["argv"] = target.argv()
        if a.load_samples_per_s:
            req_per_s = a.load_samples_per_s / (a.lines * len(wl.FIELDS))
            if a.warmup > 0:
                recs, _, _ = wl.run_load(target, a, "closed", a.client_procs, 2, a.warmup)
                ok = sum(1 for r in recs if 200 <= r[3] < 300)
                print("  warm-up: %.0f s closed loop, %d requests, not counted" % (a.warmup, ok), flush=True)
            out["load"] = {"samples_per_s": a.load_samples_per_s, "source": "--load-samples-per-s"}
        else:
            cap = wl.ramp(target, a, out)
            req_per_s = a.fraction * cap
            out["load"] = {"samples_per_s": round(req_per_s * a.lines * len(wl.FIELDS)),
                           "source": "%.0f %% of the ramp's capacity" % (a.fraction * 100)}
        measure(target, a, req_per_s, out)
    finally:
        if target.proc is not None and target.proc.poll() is not None:
            out["exit"] = target.proc.returncode
            out["log_tail"] = target.tail()
        target.stop()


def measure(target, a, req_per_s, out):
    print("\n[%s] freshness: one write every %.0f ms for %.0f s under a load of %.0f samples/s (%.1f requests/s "
          "of %d lines, %d procs x %d conns)" % (
              target.name, a.write_interval * 1000, a.duration, req_per_s * a.lines * len(wl.FIELDS), req_per_s,
              a.lines, a.client_procs, a.conns_per_proc), flush=True)
    probe = Probe(target, a, "fr-%d" % os.getpid())
    box = {}
    # the load runs a little longer than the probe on both sides
    load_s = a.duration + 4.0

    def go():
        box["r"] = wl.run_load(target, a, "open", a.client_procs, a.conns_per_proc, load_s, req_per_s)

    samples = []  # (monotonic, server cpu s, server run-queue wait s, load1)
    stop = threading.Event()

    def sampler():
        while not stop.is_set():
            load1 = float(wl.loadavg().split()[0])
            samples.append((time.monotonic(), wl.proc_cpu_s(target.proc.pid), wl.runq_wait_s(target.proc.pid), load1))
            stop.wait(0.5)

    sm = threading.Thread(target=sampler, daemon=True)
    sm.start()
    lt = threading.Thread(target=go)
    lt.start()
    time.sleep(2.0 + 0.002 * a.lines * a.bodies / 100 + 2.0)  # load processes start, then 2 s of load
    t_start = time.monotonic()
    probe.stop_at = t_start + a.duration
    w = threading.Thread(target=probe.writer, daemon=True)
    r = threading.Thread(target=probe.reader, daemon=True)
    w.start()
    r.start()
    w.join(a.duration + 30)
    r.join(NEVER_S + 30)
    lt.join()
    stop.set()
    sm.join(5)
    recs, _, load_start = box["r"]

    def at(t):
        return min(samples, key=lambda s: abs(s[0] - t)) if samples else None

    rows = []
    print("  %9s %6s %9s %9s %8s %8s %8s %8s %6s %8s %10s %9s %7s %8s %6s" % (
        "window", "writes", "ack p50", "ack p99", "lag p50", "lag p90", "lag p99", "lag max", "never", "poll p50",
        "load s/s", "load p99", "srv cpu", "srv wait", "load1"))
    nwin = max(1, int(a.duration // a.window))
    never = probe.never()
    for k in range(nwin):
        w0, w1 = t_start + k * a.window, t_start + (k + 1) * a.window
        acks = [x[1] for x in probe.acks if w0 <= x[0] < w1]
        lags = [x[1] for x in probe.lags if w0 <= x[0] < w1]
        nev = sum(1 for _, ack in never if w0 <= ack < w1)
        polls = [x[1] for x in probe.polls if w0 <= x[0] < w1]
        lrecs = [x for x in recs if w0 <= x[0] < w1 and 200 <= x[3] < 300]
        llat = wl.summary_ms([x[2] - x[0] for x in lrecs])
        s0, s1 = at(w0), at(w1)
        cpu = wait = None
        if s0 and s1 and s1[0] > s0[0] and s0[1] is not None and s1[1] is not None:
            cpu = round((s1[1] - s0[1]) / (s1[0] - s0[0]), 2)
            if s0[2] is not None and s1[2] is not None:
                wait = round((s1[2] - s0[2]) / (s1[0] - s0[0]), 2)
        ak, lg, pl = wl.summary_ms(acks), wl.summary_ms(lags), wl.summary_ms(polls)
        row = {"t": round(k * a.window), "writes": len(acks), "ack_ms": ak, "lag_ms": lg, "never": nev,
               "poll_ms_p50": pl["p50"], "load_samples_per_s": round(len(lrecs) * a.lines * len(wl.FIELDS) / a.window),
               "load_ack_p99_ms": llat["p99"], "server_cores": cpu, "server_runq_wait": wait,
               "load1": s1[3] if s1 else None}
        rows.append(row)
        print("  %4.0f-%-4.0f %6d %9s %9s %8s %8s %8s %8s %6d %8s %10d %9s %7s %8s %6s" % (
            k * a.window, (k + 1) * a.window, len(acks), ak["p50"], ak["p99"], lg["p50"], lg["p90"], lg["p99"],
            lg["max"], nev, pl["p50"], row["load_samples_per_s"], llat["p99"], cpu, wait, row["load1"]), flush=True)
    lags = [x[1] for x in probe.lags]
    total = wl.summary_ms(lags)
    acks = wl.summary_ms([x[1] for x in probe.acks])
    polls = wl.summary_ms([x[1] for x in probe.polls])
    lok = [x for x in recs if 200 <= x[3] < 300]
    load_lat = wl.summary_ms([x[2] - x[0] for x in lok])
    met = bool(lags) and not never and total["max"] is not None and total["max"] <= TARGET_S * 1000
    res = {"writes": len(probe.acks), "visible": len(lags), "never_visible_10s": len(never),
           "lag_ms": total, "ack_ms": acks, "poll_ms": polls, "errors": probe.errors[:5],
           "n_errors": len(probe.errors), "windows": rows, "target_met": met,
           "load_achieved_samples_per_s": round(len(lok) * a.lines * len(wl.FIELDS) / load_s),
           "load_ack_ms": load_lat, "load_errors": len(recs) - len(lok),
           "loadavg": wl.loadavg()}
    out["freshness"] = res
    print("  whole run: %d writes acknowledged (ack p50 %s p99 %s ms), %d visible: lag p50 %s p90 %s p99 %s max %s ms; "
          "never visible within %.0f s: %d; poll round trip p50 %s ms; errors %d" % (
              len(probe.acks), acks["p50"], acks["p99"], len(lags), total["p50"], total["p90"], total["p99"],
              total["max"], NEVER_S, len(never), polls["p50"], len(probe.errors)))
    print("  load: %.0f samples/s achieved, ack (from the schedule) p50 %s p99 %s ms, %d errors" % (
        res["load_achieved_samples_per_s"], load_lat["p50"], load_lat["p99"], res["load_errors"]))
    print("  every sample visible within %.0f ms of its acknowledgement: %s" % (
        TARGET_S * 1000, "MET" if met else "MISSED"), flush=True)
    if probe.errors:
        print("    first errors: %s" % probe.errors[:3])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strata", default=wl.default_strata())
    ap.add_argument("--peer", choices=["victoriametrics"], default=None)
    ap.add_argument("--vm-bin", default=shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of probing")
    ap.add_argument("--write-interval", type=float, default=0.1, help="seconds between the writer's writes")
    ap.add_argument("--poll-gap", type=float, default=0.005, help="seconds between the reader's polls")
    ap.add_argument("--window", type=float, default=5.0, help="seconds per printed row")
    ap.add_argument("--load-samples-per-s", type=float, default=None,
                    help="background load; default: --fraction of the ramp's capacity")
    ap.add_argument("--fraction", type=float, default=0.5)
    ap.add_argument("--lines", type=int, default=300, help="lines per load request (10 fields each)")
    ap.add_argument("--devices", type=int, default=10000, help="load devices (series = devices x 10)")
    ap.add_argument("--bodies", type=int, default=64)
    ap.add_argument("--client-procs", type=int, default=2)
    ap.add_argument("--conns-per-proc", type=int, default=8)
    ap.add_argument("--ramp-step", type=float, default=4.0)
    ap.add_argument("--ramp-conns", default="1,2,4,8,16")
    ap.add_argument("--warmup", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    a.ramp_conns = [int(x) for x in a.ramp_conns.split(",")]
    if not os.path.exists(a.strata):
        print("no strata binary at %s: cargo build --release -p strata (CARGO_TARGET_DIR)" % a.strata, file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="strata-freshness-")
    report = {"command": " ".join([os.path.basename(sys.argv[0])] + (argv if argv is not None else sys.argv[1:])),
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "loadavg_before": wl.loadavg(),
              "ncpu": os.cpu_count(), "strata": a.strata,
              "strata_mtime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(os.path.getmtime(a.strata))),
              "targets": {}}
    print("freshness: %s (built %s); probe every %.0f ms; load %s; %d cores, loadavg %s" % (
        a.strata, report["strata_mtime"], a.write_interval * 1000,
        ("%.0f samples/s" % a.load_samples_per_s) if a.load_samples_per_s else "%.0f %% of capacity" % (a.fraction * 100),
        os.cpu_count(), report["loadavg_before"]), flush=True)
    targets = [wl.Strata(a, tmp)]
    if a.peer == "victoriametrics":
        targets.append(wl.VictoriaMetrics(a, tmp))
    rc = 0
    try:
        for t in targets:
            report["targets"][t.name] = {"loadavg_before": wl.loadavg()}
            run_target(t, a, report["targets"][t.name])
            report["targets"][t.name]["loadavg_after"] = wl.loadavg()
    except wl.SetupError as e:
        print("SETUP FAILED: %s" % e, file=sys.stderr)
        rc = 2
    except KeyboardInterrupt:
        rc = 130
    finally:
        for t in targets:
            t.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    report["loadavg_after"] = wl.loadavg()
    print("\n== summary (loadavg before %s, after %s)" % (report["loadavg_before"], report["loadavg_after"]))
    for name, t in report["targets"].items():
        f = t.get("freshness")
        if f:
            print("%s: lag p50 %s p99 %s max %s ms over %d writes (%d never) under %.0f samples/s; <= 1 s: %s" % (
                name, f["lag_ms"]["p50"], f["lag_ms"]["p99"], f["lag_ms"]["max"], f["writes"],
                f["never_visible_10s"], f["load_achieved_samples_per_s"], "yes" if f["target_met"] else "NO"))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(report, fh, indent=1)
            fh.write("\n")
    return rc


if __name__ == "__main__":
    sys.exit(main())
