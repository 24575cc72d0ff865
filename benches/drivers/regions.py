#!/usr/bin/env python3
"""Sovereign regions benchmark: what does a federated fleet aggregation over
three regions cost, against the same query on one node holding all the data?
(Issue 14, point 8: at most 1.5x; and with `aggregates`, orders of magnitude
fewer bytes crossing than with `raw`.)

Starts four real `strata serve` processes on loopback, each on its own temp
data dir and free port:

  us-east      jurisdiction us  (the asking region; holds a third of the fleet)
  eu-central   jurisdiction eu  (a third of the fleet)
  br-south     jurisdiction br  (a third of the fleet)
  single       a plain node, no [federation], holding the whole fleet

creates the tenant `agro` in every region's registry (data in all three,
queryable from all three) and on the single node, generates one fleet
(--series series: farms x devices x kinds, labels farm/device/kind, metric
`fleet_reading_total`, a counter; --samples samples per series, one a minute over
the last minutes), writes each region's part to its region and all of it to
the single node, and waits until both setups count every series. Then, for
three policies of the tenant (set in every region; the later ones by PATCH):

  aggregates       exports {us: raw, eu: aggregates, br: raw}: eu-central
                   answers us-east with pushed-down partial aggregations,
                   br-south with raw series
  raw              exports {us: raw, eu: raw, br: raw}: both answer with raw
                   series
  all-aggregates   exports {us: raw, eu: aggregates, br: aggregates}: both
                   answer with pushed-down partials (--policies to choose)

it runs each fleet query (instant queries at one fixed time just after the
last sample; the range query over the whole written span)

  sum by (farm) (fleet_reading_total)   avg(fleet_reading_total)
  max by (kind) (fleet_reading_total)   count(fleet_reading_total)
  sum(rate(fleet_reading_total[5m]))    range: sum by (kind) (fleet_reading_total)

--warmup times (not counted) and then --repeats times at us-east and on the
single node, alternating, each over one keep-alive connection; checks that
every federated answer equals the single node's (same series, values within
1e-6 relative), and prints per query: every run's latency on both setups
(client side: request sent to answer read), the medians and their ratio
federated/single, and what crossed into us-east per query: from us-east's
audit log (`side=sent` records, filtered by the query's text and the time of
its runs), the series and bytes per data region and `crossed` kind. A
closing table puts the policies side by side (median ratios; bytes from
eu-central with pushdown vs raw, and their quotient).

It is a benchmark: the latency ratio is printed against the 1.5x target,
never asserted. It exits 1 if any federated answer differs from the single
node's (or a query fails), 2 if the setup fails; everything it started is
stopped on exit, failures included. Python standard library only.

  cargo build --release -p strata
  python3 benches/drivers/regions.py                  # 30000 series, 7 repeats
  python3 benches/drivers/regions.py --quick          # 2000 series, 3 repeats (CI-sized)
  python3 benches/drivers/regions.py --strata PATH --series 100000 --repeats 11 --json-out r.json
"""

import argparse
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

ADMIN = "regions-bench-admin-token"
TENANT = "agro"
METRIC = "fleet_reading_total"
KINDS = ["temp", "moisture", "ph", "battery"]
REGIONS = [("us-east", "us"), ("eu-central", "eu"), ("br-south", "br")]
ASKING = "us-east"
POLICIES = [
    ("aggregates", {"us": "raw", "eu": "aggregates", "br": "raw"}),
    ("raw", {"us": "raw", "eu": "raw", "br": "raw"}),
    ("all-aggregates", {"us": "raw", "eu": "aggregates", "br": "aggregates"}),
]
QUERIES = [
    ("instant", "sum by (farm) (%s)" % METRIC),
    ("instant", "avg(%s)" % METRIC),
    ("instant", "max by (kind) (%s)" % METRIC),
    ("instant", "count(%s)" % METRIC),
    ("instant", "sum(rate(%s[5m]))" % METRIC),
    ("range", "sum by (kind) (%s)" % METRIC),
]
RTOL = 1e-6


class SetupError(Exception):
    pass


def credential(region):
    return "credential-of-%s-0123456789" % region


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Conn:
    """A keep-alive HTTP connection that reconnects after errors."""

    def __init__(self, port, timeout=300):
        self.port = port
        self.timeout = timeout
        self.c = None

    def request(self, method, path, body=None, headers=None):
        for attempt in range(3):
            try:
                if self.c is None:
                    self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
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

    def close(self):
        if self.c is not None:
            self.c.close()
            self.c = None


class Node:
    def __init__(self, name, jurisdiction, port, dir):
        self.name = name
        self.jurisdiction = jurisdiction
        self.port = port
        self.dir = dir
        self.proc = None
        self.token = None
        self.conn = Conn(port)

    def admin(self, method, path, body=None):
        status, data = Conn(self.port).request(
            method, path, json.dumps(body) if body is not None else None,
            {"Authorization": "Bearer " + ADMIN, "Content-Type": "application/json"})
        if not 200 <= status < 300:
            raise SetupError("%s: admin %s %s: %s %s" % (self.name, method, path, status, data[:500]))
        return json.loads(data) if data else None

    def query(self, path, params):
        """(status, seconds, parsed answer or the raw text)."""
        url = path + "?" + urllib.parse.urlencode(params)
        t0 = time.perf_counter()
        status, data = self.conn.request("GET", url, None, {"Authorization": "Bearer " + self.token})
        took = time.perf_counter() - t0
        try:
            return status, took, json.loads(data)
        except ValueError:
            return status, took, data[:500].decode("utf-8", "replace")


def region_config(me, nodes):
    out = ['region = "%s"' % me.name, "[federation]", 'jurisdiction = "%s"' % me.jurisdiction,
           'credential = "%s"' % credential(me.name), 'timeout = "60s"']
    for n in nodes:
        out += ["[[federation.regions]]", 'name = "%s"' % n.name, 'jurisdiction = "%s"' % n.jurisdiction,
                'endpoint = "http://127.0.0.1:%d"' % n.port,
                'credential_sha256 = "%s"' % hashlib.sha256(credential(n.name).encode()).hexdigest()]
    return "\n".join(out) + "\n"


def start(node, strata, config=None):
    os.makedirs(node.dir, exist_ok=True)
    args = [strata, "serve"]
    if config is not None:
        path = os.path.join(node.dir, "strata.toml")
        with open(path, "w") as f:
            f.write(config)
        args += ["--config", path]
    args += ["--http-addr", "127.0.0.1:%d" % node.port, "--data-dir", os.path.join(node.dir, "data")]
    env = dict(os.environ, STRATA_ADMIN__TOKEN=ADMIN, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
    env.pop("STRATA_REGION", None)
    if config is None and not os.environ.get("REGIONS_BENCH_FRONT_CACHE"):
        # The single node's query front would answer each repeat of a range
        # query from its cache (federated nodes have it off): measure the
        # query, not the cache. REGIONS_BENCH_FRONT_CACHE=1 leaves it on.
        env["STRATA_QUERY__FRONT_CACHE_BYTES"] = "0"
    node.log = os.path.join(node.dir, "server.log")
    with open(node.log, "w") as log:
        node.proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def wait_ready(node):
    deadline = time.time() + 60
    while Conn(node.port, timeout=2).request("GET", "/-/ready")[0] != 200:
        if node.proc.poll() is not None:
            raise SetupError("%s exited with %s; its log:\n%s" % (node.name, node.proc.returncode, tail(node.log)))
        if time.time() > deadline:
            raise SetupError("%s not ready after 60 s; its log:\n%s" % (node.name, tail(node.log)))
        time.sleep(0.1)


def tail(path, n=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)"


def stop_all(nodes):
    for n in nodes:
        if n.proc is not None and n.proc.poll() is None:
            n.proc.terminate()
    for n in nodes:
        if n.proc is None:
            continue
        try:
            n.proc.wait(30)
        except subprocess.TimeoutExpired:
            n.proc.kill()
            n.proc.wait()
        n.conn.close()


def fleet(region, n_series, samples, first_ms, step_ms):
    """Line protocol of a region's part of the fleet and its series count.

    Farms of 25 devices with one series per kind (100 series a farm); a
    counter per series that grows by a per-series increment each step."""
    short = region.split("-")[0]
    lines = []
    per_farm = 25 * len(KINDS)
    for i in range(n_series):
        farm, rest = divmod(i, per_farm)
        device, kind = divmod(rest, len(KINDS))
        base = (i * 7919) % 1000 + 0.25
        inc = 1 + (i * 104729) % 97 / 8.0
        key = "%s,farm=f-%s-%03d,device=d-%s-%03d-%02d,kind=%s value=" % (
            METRIC, short, farm, short, farm, device, KINDS[kind])
        for k in range(samples):
            lines.append("%s%r %d" % (key, base + k * inc, first_ms + k * step_ms))
    return lines


def write(node, lines, chunk=20000):
    c = Conn(node.port)
    headers = {"Authorization": "Bearer " + node.token, "Content-Type": "text/plain"}
    for i in range(0, len(lines), chunk):
        body = ("\n".join(lines[i:i + chunk]) + "\n").encode()
        status, data = c.request("POST", "/api/v2/write?precision=ms", body, headers)
        if status != 204:
            raise SetupError("write to %s: %s %s" % (node.name, status, data[:500]))
    c.close()


def scalar_count(node, at):
    status, _, v = node.query("/api/v1/query", {"query": "count(%s)" % METRIC, "time": at})
    if status != 200 or not isinstance(v, dict):
        return None, "%s %s" % (status, v)
    result = v.get("data", {}).get("result", [])
    return (int(float(result[0]["value"][1])) if result else 0), v


def wait_queryable(node, at, expected, timeout=300):
    deadline = time.time() + timeout
    while True:
        got, v = scalar_count(node, at)
        if got == expected:
            return
        if time.time() > deadline:
            raise SetupError("%s: count(%s) is %s after %d s, expected %d: %s" % (
                node.name, METRIC, got, timeout, expected, str(v)[:500]))
        time.sleep(0.5)


def canonical(answer):
    """{labels: value or [(t, value)...]} of a Prometheus answer."""
    data = answer["data"]
    out = {}
    for s in data["result"]:
        key = tuple(sorted(s.get("metric", {}).items()))
        if "values" in s:
            out[key] = [(float(t), float(v)) for t, v in s["values"]]
        else:
            out[key] = float(s["value"][1])
    return data["resultType"], out


def close(a, b):
    if a == b or (a != a and b != b):  # NaN = NaN, as Prometheus's tests compare
        return True
    return abs(a - b) <= RTOL * max(abs(a), abs(b))


def differences(fed, single):
    """Why two answers differ (empty: equal)."""
    (ft, f), (st, s) = canonical(fed), canonical(single)
    if ft != st:
        return ["result types differ: federated %s, single %s" % (ft, st)]
    out = []
    for k in sorted(set(f) | set(s)):
        if k not in f:
            out.append("series %s missing from the federated answer" % dict(k))
        elif k not in s:
            out.append("series %s only in the federated answer" % dict(k))
        elif isinstance(f[k], list):
            ft_, st_ = [t for t, _ in f[k]], [t for t, _ in s[k]]
            if ft_ != st_:
                out.append("series %s: steps differ (%d vs %d points)" % (dict(k), len(ft_), len(st_)))
            else:
                bad = [(t, a, b) for (t, a), (_, b) in zip(f[k], s[k]) if not close(a, b)]
                if bad:
                    out.append("series %s: %d steps differ, first at %s: federated %r, single %r" % (
                        (dict(k), len(bad)) + bad[0]))
        elif not close(f[k], s[k]):
            out.append("series %s: federated %r, single %r" % (dict(k), f[k], s[k]))
    return out


def crossed(us, query, since_ms, until_ms):
    """{(data_region, crossed kind, decision): [records, series, bytes]} of
    us-east's `sent` audit records of `query` within [since_ms, until_ms]."""
    status, data = Conn(us.port).request(
        "GET", "/admin/v1/audit?" + urllib.parse.urlencode(
            {"tenant": TENANT, "side": "sent", "since_ms": since_ms, "limit": 1000000}),
        None, {"Authorization": "Bearer " + ADMIN})
    if status != 200:
        return None, "audit: %s %s" % (status, data[:300])
    out = {}
    for r in json.loads(data).get("data", []):
        if r.get("query") != query or r.get("time_ms", 0) > until_ms:
            continue
        k = (r.get("data_region"), r.get("crossed"), r.get("decision"))
        e = out.setdefault(k, [0, 0, 0])
        e[0] += 1
        e[1] += r.get("series", 0)
        e[2] += r.get("bytes", 0)
    return out, None


def human_bytes(n):
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1000.0


def run_policy(name, nodes, single, at, range_params, a, failures):
    us = nodes[0]
    results = []
    print("\n== policy %s: exports %s; us-east asks" % (name, json.dumps(dict(POLICIES)[name], sort_keys=True)))
    for kind, q in QUERIES:
        if kind == "instant":
            path, params = "/api/v1/query", {"query": q, "time": at}
        else:
            path, params = "/api/v1/query_range", dict(range_params, query=q)
        since_ms = int(time.time() * 1000) - 1
        fed_ms, single_ms, warm = [], [], []
        bad = []
        notes = set()
        runs = a.warmup + a.repeats
        for i in range(runs):
            fs, ft, fv = us.query(path, params)
            ss, st, sv = single.query(path, params)
            if i >= a.warmup:
                fed_ms.append(ft * 1000)
                single_ms.append(st * 1000)
            else:
                warm.append((ft * 1000, st * 1000))
            if fs != 200 or ss != 200 or not isinstance(fv, dict) or not isinstance(sv, dict) \
                    or fv.get("status") != "success" or sv.get("status") != "success":
                bad.append("run %d: federated %s %s; single %s %s" % (
                    i + 1, fs, json.dumps(fv)[:400], ss, json.dumps(sv)[:400]))
                continue
            for w in fv.get("warnings", []) or []:
                notes.add("warning: " + w)
            for w in fv.get("infos", []) or []:
                notes.add("info: " + w)
            diff = differences(fv, sv)
            if diff:
                bad.append("run %d: answers differ: %s" % (i + 1, "; ".join(diff[:5])))
        until_ms = int(time.time() * 1000) + 1
        series_in_answer = None
        if isinstance(sv, dict) and sv.get("status") == "success":
            series_in_answer = len(sv["data"]["result"])
        cross, err = crossed(us, q, since_ms, until_ms)
        fmed = statistics.median(fed_ms) if fed_ms else float("nan")
        smed = statistics.median(single_ms) if single_ms else float("nan")
        ratio = fmed / smed if smed > 0 else float("nan")
        label = ("range: " if kind == "range" else "") + q
        print("\n%s   (%s series in the answer)" % (label, series_in_answer))
        print("  federated ms: %s" % " ".join("%.1f" % x for x in fed_ms))
        print("  single    ms: %s" % " ".join("%.1f" % x for x in single_ms))
        if warm:
            print("  warm-up (not counted) ms: %s" % ", ".join("%.1f / %.1f" % w for w in warm))
        print("  median: federated %.1f ms, single %.1f ms, ratio %.2f (target <= 1.5)" % (fmed, smed, ratio))
        per_region = {}
        if cross is None:
            print("  crossed: %s" % err)
        else:
            if not cross:
                print("  crossed into us-east: nothing recorded")
            for (region, ck, decision), (recs, series, nbytes) in sorted(cross.items()):
                print("  crossed into us-east per run from %s: %s %s, %.0f series, %s (%d requests in %d runs)" % (
                    region, ck, decision, series / runs, human_bytes(nbytes / runs), recs, runs))
                e = per_region.setdefault(region, {"bytes_per_run": 0.0, "series_per_run": 0.0, "kinds": []})
                e["bytes_per_run"] += nbytes / runs
                e["series_per_run"] += series / runs
                e["kinds"].append(ck)
        for n in sorted(notes):
            print("  " + n)
        for b in bad:
            print("  FAIL " + b)
            failures.append("%s, %s: %s" % (name, label, b))
        results.append({"query": label, "federated_ms": fed_ms, "single_ms": single_ms, "warmup_ms": warm,
                        "median_federated_ms": fmed, "median_single_ms": smed, "ratio": ratio,
                        "series_in_answer": series_in_answer, "crossed_per_region": per_region,
                        "notes": sorted(notes), "failures": bad})
    return results


def summary(report):
    policies = list(report["policies"])
    by = {p: {r["query"]: r for r in report["policies"][p]} for p in policies}
    print("\n== summary: medians federated / single ms (ratio); bytes from eu-central into us-east per query")
    head = "| query | " + " | ".join(policies)
    sep = "|---|" + "---|" * len(policies)
    if "aggregates" in by and "raw" in by:
        head += " | eu-central bytes, pushdown | eu-central bytes, raw | raw / pushdown"
        sep += "---|---|---|"
    print(head + " |")
    print(sep)
    for q in by[policies[0]]:
        cells = []
        for p in policies:
            r = by[p].get(q)
            cells.append("%.1f / %.1f (%.2f)" % (r["median_federated_ms"], r["median_single_ms"], r["ratio"])
                         if r else "-")
        if "aggregates" in by and "raw" in by:
            eb_a = by["aggregates"][q]["crossed_per_region"].get("eu-central", {}).get("bytes_per_run", 0)
            eb_r = by["raw"][q]["crossed_per_region"].get("eu-central", {}).get("bytes_per_run", 0)
            cells += [human_bytes(eb_a), human_bytes(eb_r), "%.0fx" % (eb_r / eb_a) if eb_a else "-"]
        print("| `%s` | %s |" % (q, " | ".join(cells)))
    print()
    for p in policies:
        worst = max((r["ratio"] for r in report["policies"][p]), default=float("nan"))
        print("worst median ratio federated/single, policy %s: %.2f (target <= 1.5; not asserted)" % (p, worst))


def default_strata():
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        return os.path.join(target, "release", "strata")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.join(root, "target", "release", "strata")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strata", default=default_strata(),
                    help="the strata binary (default: $CARGO_TARGET_DIR/release/strata, else target/release/strata)")
    ap.add_argument("--series", type=int, default=None, help="series of the whole fleet (default 30000; --quick 2000)")
    ap.add_argument("--samples", type=int, default=10, help="samples per series, one a minute (default 10)")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per query and setup (default 7; --quick 3)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs per query first (default 1)")
    ap.add_argument("--quick", action="store_true", help="a small CI-sized run: 2000 series, 3 repeats")
    ap.add_argument("--policies", default=",".join(p for p, _ in POLICIES),
                    help="which policies to run, in order (default: %(default)s)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (configs, data, server logs)")
    ap.add_argument("--json-out", help="also write the report here")
    a = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    if a.series is None:
        a.series = 2000 if a.quick else 30000
    if a.repeats is None:
        a.repeats = 3 if a.quick else 7
    if a.samples < 2 or a.series < 3 or a.repeats < 1:
        ap.error("--samples must be >= 2, --series >= 3, --repeats >= 1")
    known = dict(POLICIES)
    a.policies = [p for p in a.policies.split(",") if p]
    if not a.policies or any(p not in known for p in a.policies):
        ap.error("--policies: a comma-separated list of %s" % ", ".join(known))
    if not os.access(a.strata, os.X_OK):
        sys.exit("no strata binary at %s: build it with `cargo build --release -p strata` or pass --strata" % a.strata)

    # SIGTERM (and SIGHUP) unwind like Ctrl-C, so the servers are stopped.
    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    work = tempfile.mkdtemp(prefix="strata-regions-")
    nodes = [Node(r, j, free_port(), os.path.join(work, r)) for r, j in REGIONS]
    single = Node("single", "", free_port(), os.path.join(work, "single"))
    everything = nodes + [single]
    failures = []
    ok_setup = False
    try:
        for n in nodes:
            start(n, a.strata, region_config(n, nodes))
        start(single, a.strata)
        for n in everything:
            wait_ready(n)
        all_regions = [r for r, _ in REGIONS]
        policy = {"id": TENANT, "home_region": ASKING, "data_regions": all_regions,
                  "allowed_query_regions": all_regions, "export_policy": "none",
                  "exports": known[a.policies[0]]}
        for n in nodes:
            n.admin("POST", "/admin/v1/tenants", policy)
            n.token = n.admin("POST", "/admin/v1/tenants/%s/tokens" % TENANT, {"access": "read_write"})["token"]
        single.admin("POST", "/admin/v1/tenants", {"id": TENANT})
        single.token = single.admin("POST", "/admin/v1/tenants/%s/tokens" % TENANT, {"access": "read_write"})["token"]
        time.sleep(1.5)  # registry changes reach ingest and query within a second

        # One fleet; the last sample a minute ago, the instant queries just after it.
        step_ms = 60_000
        last_ms = (int(time.time() * 1000) - 60_000) // 1000 * 1000
        first_ms = last_ms - (a.samples - 1) * step_ms
        share = [a.series // 3 + (1 if i < a.series % 3 else 0) for i in range(3)]
        t0 = time.time()
        parts = [fleet(n.name, k, a.samples, first_ms, step_ms) for n, k in zip(nodes, share)]
        gen_s = time.time() - t0
        t0 = time.time()
        for n, lines in zip(nodes, parts):
            write(n, lines)
        fed_write_s = time.time() - t0
        t0 = time.time()
        write(single, [line for lines in parts for line in lines])
        single_write_s = time.time() - t0
        at = "%.3f" % ((last_ms + 1000) / 1000.0)
        range_params = {"start": "%.3f" % (first_ms / 1000.0), "end": at, "step": "30"}
        t0 = time.time()
        wait_queryable(single, at, a.series)
        wait_queryable(nodes[0], at, a.series)
        wait_s = time.time() - t0
        ok_setup = True

        print("strata: %s" % a.strata)
        print("fleet: %d series (%s), %d samples each (one a minute, last at %s), labels farm/device/kind, "
              "metric %s; %d samples in all, written twice" % (
                  a.series, ", ".join("%s %d" % (n.name, k) for n, k in zip(nodes, share)), a.samples,
                  time.strftime("%H:%M:%S", time.localtime(last_ms / 1000)), METRIC, a.series * a.samples))
        print("generated in %.2f s; written to the regions in %.2f s, to the single node in %.2f s; "
              "queryable %.2f s later" % (gen_s, fed_write_s, single_write_s, wait_s))
        print("load average before the runs: %.2f %.2f %.2f on %d cores" % (os.getloadavg() + (os.cpu_count(),)))
        print("runs per query and setup: %d timed (after %d warm-up), alternating us-east / single" % (
            a.repeats, a.warmup))

        report = {"args": vars(a), "series": dict(zip([n.name for n in nodes], share)), "policies": {}}
        for i, name in enumerate(a.policies):
            exports = known[name]
            if i > 0:
                for n in nodes:
                    got = n.admin("PATCH", "/admin/v1/tenants/%s" % TENANT, {"exports": exports})
                    if got.get("exports") != exports:
                        raise SetupError("%s: exports after PATCH are %s, not %s" % (n.name, got.get("exports"), exports))
                time.sleep(1.5)  # as above
            report["policies"][name] = run_policy(name, nodes, single, at, range_params, a, failures)
        summary(report)
        print("load average after the runs: %.2f %.2f %.2f" % os.getloadavg())
        report["failures"] = failures
        if a.json_out:
            with open(a.json_out, "w") as fh:
                json.dump(report, fh, indent=1)
    except SetupError as e:
        print("setup failed: %s" % e, file=sys.stderr)
        failures.append(str(e))
    finally:
        stop_all(everything)
        if failures or not ok_setup:
            for n in everything:
                if n.proc is not None:
                    print("--- %s (exit status %s), its log's tail:\n%s" % (n.name, n.proc.returncode, tail(n.log, 15)),
                          file=sys.stderr)
        if a.keep:
            print("kept %s" % work, file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if not ok_setup:
        sys.exit(2)
    if failures:
        print("\nFAILED: %d federated answers differ from the single node's or failed:" % len(failures))
        for f in failures:
            print("  " + f)
        sys.exit(1)
    print("\nok: every federated answer equals the single node's")


if __name__ == "__main__":
    main()
