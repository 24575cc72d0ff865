#!/usr/bin/env python3
"""Tenant isolation benchmark: does one tenant flooding at 10x its
ingestion_rate slow another tenant's writes and queries?

Starts a real `strata serve` on a temp data dir, creates two tenants through
the admin API, then runs two phases of equal length:

  quiet   the victim alone: a steady stream of writes (one request every
          --victim-interval s) and PromQL queries, latencies recorded
  flood   the same victim load, plus the flooder: --flood-conns connections
          offering --flood-factor x its ingestion_rate, as fast as the server
          answers (429s included)

and prints victim write/query latency percentiles for both phases, their
ratio, the flooder's accepted rate vs its limit, how its requests were
refused, and the server's CPU use. Python standard library only.

  python3 benches/drivers/isolation.py --strata target/release/strata [--seconds 40]
"""

import argparse
import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import http.client
import urllib.parse

ADMIN = "isolation-bench-admin-token"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Conn:
    """A keep-alive HTTP connection that reconnects after errors."""

    def __init__(self, port):
        self.port = port
        self.c = None

    def request(self, method, path, body=None, headers=None):
        for attempt in range(3):
            try:
                if self.c is None:
                    self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                self.c.request(method, path, body=body, headers=headers or {})
                r = self.c.getresponse()
                data = r.read()
                if r.getheader("connection", "").lower() == "close":
                    self.c.close()
                    self.c = None
                return r.status, data
            except (OSError, http.client.HTTPException):
                if self.c is not None:
                    self.c.close()
                self.c = None
                if attempt == 2:
                    return 0, b""
        return 0, b""


def admin(port, method, path, body=None):
    c = Conn(port)
    status, data = c.request(method, path, json.dumps(body) if body is not None else None,
                             {"Authorization": "Bearer " + ADMIN, "Content-Type": "application/json"})
    if status >= 300:
        sys.exit("admin %s %s: %s %s" % (method, path, status, data[:300]))
    return json.loads(data) if data else None


def lines(prefix, devices, t_ns):
    out = []
    for d in range(devices):
        out.append("sensors,device=%s-%05d,farm=f%d temp=%.2f,humidity=%.1f,battery=3.%d %d"
                   % (prefix, d, d % 10, 20 + d % 7, 50 + d % 11, d % 10, t_ns))
    return ("\n".join(out) + "\n").encode()


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def victim_writer(port, token, stop, out, interval, devices):
    c = Conn(port)
    t_ns = time.time_ns() - 3600 * 10**9
    headers = {"Authorization": "Token " + token}
    next_at = time.monotonic()
    while not stop.is_set():
        t_ns += 10**9
        body = lines("v", devices, t_ns)
        t0 = time.monotonic()
        status, _ = c.request("POST", "/api/v2/write?precision=ns", body, headers)
        out.append((time.monotonic() - t0, status))
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))


def victim_querier(port, token, stop, out, interval):
    c = Conn(port)
    headers = {"Authorization": "Bearer " + token}
    queries = ["sum by (farm) (sensors_temp)", "max_over_time(sensors_humidity[5m])",
               "count(sensors_battery)"]
    i = 0
    next_at = time.monotonic()
    while not stop.is_set():
        q = urllib.parse.urlencode({"query": queries[i % len(queries)]})
        i += 1
        t0 = time.monotonic()
        status, _ = c.request("GET", "/api/v1/query?" + q, None, headers)
        out.append((time.monotonic() - t0, status))
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))


def flood_process(port, token, seconds, body_devices, pace, results):
    """One flooding connection in its own process (so the client's GIL never
    delays the victim's requests); puts its list of statuses on `results`."""
    stop = threading.Event()
    out = []
    t = threading.Thread(target=flooder, args=(port, token, stop, out, body_devices, pace))
    t.start()
    time.sleep(seconds)
    stop.set()
    t.join()
    results.put(out)


def flooder(port, token, stop, out, body_devices, pace):
    """Offers one request every `pace` seconds (or as fast as answered)."""
    c = Conn(port)
    headers = {"Authorization": "Token " + token}
    # One body, sent again and again (rewrites of the same samples): the
    # driver must not spend the client's CPU, and its GIL, building floods.
    body = lines("f", body_devices, time.time_ns() - 3600 * 10**9)
    next_at = time.monotonic()
    while not stop.is_set():
        status, _ = c.request("POST", "/api/v2/write?precision=ns", body, headers)
        out.append(status)
        next_at += pace
        time.sleep(max(0.0, next_at - time.monotonic()))


def summarize(samples):
    lat = [s[0] * 1000 for s in samples]
    ok = sum(1 for s in samples if 200 <= s[1] < 300)
    return {"n": len(samples), "ok": ok, "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "max_ms": max(lat or [0])}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strata", required=True, help="path of the strata binary")
    ap.add_argument("--seconds", type=float, default=40, help="length of each phase (p99 of shorter ones is noise)")
    ap.add_argument("--victim-devices", type=int, default=500, help="lines per victim write (3 samples each)")
    ap.add_argument("--victim-interval", type=float, default=0.1, help="seconds between victim writes")
    ap.add_argument("--query-interval", type=float, default=0.2, help="seconds between victim queries")
    ap.add_argument("--flood-limit", type=int, default=100_000, help="flooder's ingestion_rate, samples/s")
    ap.add_argument("--flood-factor", type=float, default=10, help="offered load / ingestion_rate")
    ap.add_argument("--flood-conns", type=int, default=4)
    ap.add_argument("--flood-devices", type=int, default=5000, help="lines per flood request (3 samples each)")
    ap.add_argument("--json-out", help="also write the report here")
    a = ap.parse_args()

    data = tempfile.mkdtemp(prefix="strata-isolation-")
    port = free_port()
    env = dict(os.environ, STRATA_ADMIN__TOKEN=ADMIN, RUST_LOG="warn")
    log = open(os.path.join(data, "server.log"), "w")
    proc = subprocess.Popen([a.strata, "serve", "--http-addr", "127.0.0.1:%d" % port, "--data-dir",
                             os.path.join(data, "d")], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while Conn(port).request("GET", "/-/ready")[0] != 200:
            if proc.poll() is not None or time.time() > deadline:
                sys.exit("strata did not start; see %s/server.log" % data)
            time.sleep(0.1)
        admin(port, "POST", "/admin/v1/tenants", {"id": "victim"})
        admin(port, "POST", "/admin/v1/tenants", {"id": "flood"})
        admin(port, "PUT", "/admin/v1/tenants/flood/limits",
              {"ingestion_rate": a.flood_limit, "ingestion_burst": a.flood_limit})
        vtok = admin(port, "POST", "/admin/v1/tenants/victim/tokens", {"access": "read_write"})["token"]
        ftok = admin(port, "POST", "/admin/v1/tenants/flood/tokens", {"access": "write"})["token"]
        time.sleep(1.5)  # registry changes reach the write path within a second

        flood_samples_per_req = a.flood_devices * 3
        offered = a.flood_limit * a.flood_factor
        pace = a.flood_conns * flood_samples_per_req / offered

        report = {"args": vars(a), "phases": {}}
        for phase in ("quiet", "flood"):
            stop = threading.Event()
            writes, queries, floods = [], [], []
            threads = [threading.Thread(target=victim_writer,
                                        args=(port, vtok, stop, writes, a.victim_interval, a.victim_devices)),
                       threading.Thread(target=victim_querier, args=(port, vtok, stop, queries, a.query_interval))]
            procs, results = [], multiprocessing.Queue()
            if phase == "flood":
                procs = [multiprocessing.Process(target=flood_process,
                                                 args=(port, ftok, a.seconds, a.flood_devices, pace, results))
                         for _ in range(a.flood_conns)]
            cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
            for p in procs:
                p.start()
            for t in threads:
                t.start()
            time.sleep(a.seconds)
            stop.set()
            for t in threads:
                t.join()
            for p in procs:
                floods.extend(results.get(timeout=60))
                p.join()
            wall = time.monotonic() - t0
            cpu = cpu_seconds(proc.pid) - cpu0
            accepted = sum(1 for s in floods if s == 204)
            report["phases"][phase] = {
                "victim_writes": summarize(writes),
                "victim_queries": summarize(queries),
                "victim_samples_per_s": sum(1 for w in writes if w[1] == 204) * a.victim_devices * 3 / wall,
                "flood_requests": len(floods),
                "flood_offered_samples_per_s": len(floods) * flood_samples_per_req / wall,
                "flood_accepted_samples_per_s": accepted * flood_samples_per_req / wall,
                "flood_429": sum(1 for s in floods if s == 429),
                "flood_other": sum(1 for s in floods if s not in (204, 429)),
                "server_cpu_s_per_s": cpu / wall,
            }
        _, usage = Conn(port).request("GET", "/admin/v1/tenants/flood/usage", None,
                                      {"Authorization": "Bearer " + ADMIN})
        report["flood_usage"] = json.loads(usage or b"{}")
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(data, ignore_errors=True)

    q, f = report["phases"]["quiet"], report["phases"]["flood"]
    print("| victim | quiet p50 / p99 ms | with flood p50 / p99 ms | p99 ratio |")
    print("|---|---|---|---|")
    for k in ("victim_writes", "victim_queries"):
        print("| %s | %.1f / %.1f | %.1f / %.1f | %.2f |" % (
            k.split("_")[1], q[k]["p50_ms"], q[k]["p99_ms"], f[k]["p50_ms"], f[k]["p99_ms"],
            f[k]["p99_ms"] / max(q[k]["p99_ms"], 1e-9)))
    print()
    rejected = sum(p[k]["n"] - p[k]["ok"] for p in (q, f) for k in ("victim_writes", "victim_queries"))
    print("victim rejections (must be 0): %d; victim samples/s: quiet %.0f, with flood %.0f" % (
        rejected, q["victim_samples_per_s"], f["victim_samples_per_s"]))
    worst = max(f[k]["p99_ms"] / max(q[k]["p99_ms"], 1e-9) for k in ("victim_writes", "victim_queries"))
    print("worst p99 ratio loaded/unloaded: %.2f (target <= 1.5)" % worst)
    print("flooder: limit %d samples/s, offered %.0f (%.1fx), accepted %.0f; %d requests: %d refused 429, %d other" % (
        a.flood_limit, f["flood_offered_samples_per_s"], f["flood_offered_samples_per_s"] / a.flood_limit,
        f["flood_accepted_samples_per_s"], f["flood_requests"], f["flood_429"], f["flood_other"]))
    print("flooder rejections by reason: %s" % json.dumps(report["flood_usage"].get("rejected_by_reason", {})))
    print("server CPU (cores busy): quiet %.2f, with flood %.2f" % (q["server_cpu_s_per_s"], f["server_cpu_s_per_s"]))
    if a.json_out:
        with open(a.json_out, "w") as fh:
            json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
