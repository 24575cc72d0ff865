#!/usr/bin/env python3
"""Server CPU per PromQL query: Strata binaries (A/B) and VictoriaMetrics on the same data.

On a shared, busy host wall-clock latency is noise; the CPU time the server
spends per query is not (much). This driver loads the peer-bench IoT data set
once per target, then runs each query of peer-bench's queries.json many times
and reports the server's utime+stime (from /proc/<pid>/stat, all threads,
including exited ones) per query.

  query_cpu.py --bin A=/path/strata [--bin B=/other/strata] [--vm victoria-metrics|none]
               [--devices 10000] [--points 60] [--work /tmp/qcpu] [--rounds 2]
               [--min-cpu-s 0.6] [--queries max_by_region,count_all]

* The data set (gen_iot.py line protocol, fixed start) and every target's data
  directory are kept in --work and reused by later runs with the same
  --devices/--points: Strata is loaded through /api/v2/write, flushed and
  compacted once (by the first --bin); every Strata binary is then started
  on a copy-free reuse of that directory, one at a time, so A and B read
  the very same segments. VictoriaMetrics is loaded through /write,
  force_flush + force_merge, and queried with nocache=1 and
  -search.disableCache, as peer-bench does.
* Every Strata binary runs with the query front's result cache off
  (STRATA_QUERY__FRONT_CACHE_BYTES=0; --env can set it back), so a repeated
  range query is evaluated each time, as VictoriaMetrics's is.
* Per query: 2 warm-up runs, then repetitions until the server used at
  least --min-cpu-s of CPU (or --max-reps / --max-wall-s). CPU ms/query =
  CPU delta / repetitions. With --rounds > 1 the targets alternate
  (A, B, VM, A, B, VM, ...) and every round is printed, so drift shows.
* Each Strata binary's answers are compared with the first binary's
  (values within 1e-9 relative, label sets equal): an A/B that changes a
  result is flagged in the table ("DIFF").
* Prints a markdown table: per query and target the CPU ms/query of every
  round, the median, and each Strata binary's median ratio to
  VictoriaMetrics. --json writes everything.

Needs: the peer-bench directory (--peer-bench, default ../shared/peer-bench
next to the repository, for gen_iot.py, load.py, queries.json).
"""
import argparse
import glob
import http.client
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse

ADMIN_TOKEN = "benchadmin0123456789"
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PB = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "peer-bench"))
TICK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_s(pid):
    """utime+stime of the process (all threads, live and exited), seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Http:
    def __init__(self, port, headers=None):
        self.port = port
        self.headers = headers or {}
        self.conn = None

    def request(self, method, path, params=None, body=None, timeout=300):
        if params:
            path += ("&" if "?" in path else "?") + urllib.parse.urlencode(params)
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            try:
                self.conn.request(method, path, body=body, headers=self.headers)
                r = self.conn.getresponse()
                return r.status, r.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None


class Server:
    """One target process on a free port."""

    def __init__(self, name, argv_fn, data_dir, logdir, env=None, headers=None, query_params=None):
        self.name = name
        self.port = free_port()
        self.argv = argv_fn(self.port, data_dir)
        self.log_path = os.path.join(logdir, "%s.log" % name)
        self.env = env
        self.http = Http(self.port, headers)
        self.query_params = query_params or {}
        self.proc = None

    def start(self, ready_path, timeout=300):
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=logf, stderr=subprocess.STDOUT, env=self.env,
                                     start_new_session=True)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise SystemExit("%s exited (%s); see %s" % (self.name, self.proc.returncode, self.log_path))
            try:
                st, _ = self.http.request("GET", ready_path, timeout=5)
                if st < 500:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise SystemExit("%s not ready after %ds; see %s" % (self.name, timeout, self.log_path))

    def stop(self):
        self.http.close()
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def query(self, q):
        params = dict(q["params"])
        params.update(self.query_params)
        st, body = self.http.request("GET", q["path"], params)
        if st != 200:
            raise SystemExit("%s: %s -> HTTP %d %s" % (self.name, q["name"], st, body[:300]))
        return json.loads(body)["data"]


def strata_server(name, binary, data_dir, logdir, extra_env=None, wrap=None):
    # The compactor's pass interval is pushed out so the loaded bucket is never
    # rolled to the cold tier while measuring: the queries read the hot store
    # through FederatedReadStore without a watermark, as in peer-bench.
    # The query front's result cache is off (VictoriaMetrics runs with
    # -search.disableCache and nocache=1): a repeated range query must be
    # evaluated, not answered from the cache. `--env NAME:STRATA_QUERY__FRONT_CACHE_BYTES=...`
    # turns it back on for a binary.
    env = dict(os.environ, STRATA_ADMIN__TOKEN=ADMIN_TOKEN, STRATA_COMPACTOR__INTERVAL="1000h",
               STRATA_QUERY__FRONT_CACHE_BYTES="0")
    env.update(extra_env or {})
    return Server(name, lambda port, d: (wrap or []) + [binary, "serve", "--http-addr", "127.0.0.1:%d" % port,
                                                        "--data-dir", d],
                  data_dir, logdir, env=env, headers={"Authorization": "Bearer " + ADMIN_TOKEN})


def vm_server(binary, data_dir, logdir):
    return Server("victoriametrics", lambda port, d: [
        binary, "-storageDataPath=" + d, "-retentionPeriod=100y", "-httpListenAddr=127.0.0.1:%d" % port,
        "-search.disableCache", "-search.maxUniqueTimeseries=100000000", "-search.maxSamplesPerQuery=10000000000",
        "-search.maxConcurrentRequests=4", "-loggerLevel=WARN"], data_dir, logdir, query_params={"nocache": "1"})


def wait_visible(srv, devices, span_s, anchor, timeout=300):
    q = {"name": "visible", "path": "/api/v1/query",
         "params": {"query": "count(last_over_time(sensors_temp[%ds]))" % span_s, "time": "%.3f" % anchor}}
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r = srv.query(q)["result"]
        if r and int(float(r[0]["value"][1])) == devices:
            return
        time.sleep(0.5)
    raise SystemExit("%s: not all %d devices visible after %ds" % (srv.name, devices, timeout))


def minflt(pid):
    """Minor page faults of the process (all threads)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[7])


def run_ns(pid):
    """CPU time of the process's live threads, ns (/proc/<pid>/task/*/schedstat)."""
    total = 0
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def tail_probe(srv, queries, a):
    """One-device queries right after a heavy fleet query vs after themselves:
    client wall ms and the server's minor page faults per query (medians of
    --probe-reps), immediately after and --probe-gap-ms after the heavy one."""
    heavy = [q for q in queries if q["name"] == a.tail_probe]
    if not heavy:
        raise SystemExit("--tail-probe: no query named %r" % a.tail_probe)
    heavy = heavy[0]
    pid = srv.proc.pid
    print("\n%s (pid %d), load average %s" % (srv.name, pid, " / ".join("%.2f" % x for x in os.getloadavg())))
    # What the server still does once the heavy answer is out (freeing, purging): its CPU in the next 20 ms.
    after = []
    for _ in range(a.probe_reps):
        srv.query(heavy)
        n0 = run_ns(pid)
        time.sleep(0.02)
        after.append((run_ns(pid) - n0) / 1e6)
    print("server CPU in the 20 ms after %s answered: median %.2f ms (runs: %s)"
          % (heavy["name"], statistics.median(after), ", ".join("%.2f" % x for x in after)))
    print("| query (after) | wall ms after itself | faults | wall ms right after %s | faults | wall ms %d ms after | faults |"
          % (heavy["name"], a.probe_gap_ms))
    print("|---|---|---|---|---|---|---|")
    for q in queries:
        if q is heavy:
            continue
        rows = {"self": [], "heavy": [], "gap": []}
        srv.query(q)
        for _ in range(a.probe_reps):
            for mode in ("self", "heavy", "gap"):
                srv.query(heavy if mode != "self" else q)
                if mode == "gap":
                    time.sleep(a.probe_gap_ms / 1000.0)
                f0, w0 = minflt(pid), time.perf_counter()
                srv.query(q)
                rows[mode].append(((time.perf_counter() - w0) * 1000.0, minflt(pid) - f0))
        cells = []
        for mode in ("self", "heavy", "gap"):
            cells.append("%.3f | %d" % (statistics.median(w for w, _ in rows[mode]),
                                        statistics.median(f for _, f in rows[mode])))
        print("| %s | %s |" % (q["name"], " | ".join(cells)), flush=True)


def normalise(data):
    """A comparable form of a query answer: sorted (labels, values)."""
    if data["resultType"] in ("scalar", "string"):
        return [((), (float(data["result"][1]),))]
    out = []
    for s in data["result"]:
        labels = tuple(sorted(s["metric"].items()))
        vals = tuple(float(v) for _, v in (s["values"] if "values" in s else [s["value"]]))
        out.append((labels, vals))
    return sorted(out)


def same_answer(a, b, ties_ok):
    if len(a) != len(b):
        return False
    if ties_ok:
        va = sorted(v for _, vs in a for v in vs)
        vb = sorted(v for _, vs in b for v in vs)
        return all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12) for x, y in zip(va, vb))
    for (la, va), (lb, vb) in zip(a, b):
        if la != lb or len(va) != len(vb):
            return False
        if not all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(x) and math.isnan(y))
                   for x, y in zip(va, vb)):
            return False
    return True


def measure(srv, q, a):
    """CPU ms per query over repetitions (after 2 warm-up runs), the median
    wall-clock ms of those repetitions (client side), and the answer."""
    pid = srv.proc.pid
    data = srv.query(q)
    srv.query(q)
    c0, t0, n = cpu_s(pid), time.monotonic(), 0
    walls = []
    while True:
        w0 = time.perf_counter()
        srv.query(q)
        walls.append((time.perf_counter() - w0) * 1000.0)
        n += 1
        used = cpu_s(pid) - c0
        if n >= a.max_reps or (used >= a.min_cpu_s and n >= a.min_reps) or time.monotonic() - t0 > a.max_wall_s:
            break
    return (cpu_s(pid) - c0) * 1000.0 / n, n, data, statistics.median(walls)


def callgrind_total(path):
    """The instruction count (Ir) of one callgrind dump."""
    found = {}
    with open(path) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                found[line.split(":")[0]] = int(line.split()[1])
    # The header's `summary:` reads 0 in dumps taken with callgrind_control; `totals:` closes the file.
    if "totals" in found or "summary" in found:
        return found.get("totals", found.get("summary"))
    raise SystemExit("no totals in %s" % path)


def engine_ir(path):
    """Ir inclusive of `Engine::run_instant` / `run_range` in one dump: the
    query's evaluation alone (its storage reads included, since
    STRATA_READ_THREADS=0 keeps them on the query's thread), without the
    server's background work that happened to run meanwhile (e.g. the hot
    store's expiry pass, ~18 M Ir at 100k series) or the HTTP layer."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
                         capture_output=True, text=True).stdout
    best = 0
    for line in out.splitlines():
        if "strata_query::engine::Engine::run_instant" in line or "strata_query::engine::Engine::run_range" in line:
            try:
                best = max(best, int(line.split()[0].replace(",", "")))
            except ValueError:
                pass
    return best


def callgrind(a, bins, envs, queries, sdir, logdir):
    """Ir per query and binary (see --callgrind): a figure a busy host does not move."""
    if not os.path.exists(loaded_marker(sdir)):
        raise SystemExit("--callgrind needs a loaded data set in %s: run once without --callgrind first" % sdir)
    os.makedirs(a.callgrind, exist_ok=True)
    ir = {}
    for name, path in bins:
        out = os.path.join(a.callgrind, "%s.cg" % name)
        for old in glob.glob(out + "*"):
            os.remove(old)
        # A query runs ~50x slower under valgrind: the connection's idle
        # timeout (60 s) must not close it while the answer is computed
        # (seen as HTTP 499 "canceled" on binop_all_avg).
        env = dict({"STRATA_HTTP__IDLE_TIMEOUT": "600s"}, **(envs.get(name) or {}), STRATA_READ_THREADS="0")
        srv = strata_server(name, path, sdir, logdir, env,
                            wrap=["valgrind", "--tool=callgrind", "--instr-atstart=no",
                                  "--callgrind-out-file=" + out])
        log("callgrind: starting %s under valgrind (slow)" % name)
        srv.start("/-/ready", timeout=1800)
        try:
            pid = str(srv.proc.pid)
            for q in queries:
                srv.query(q)
                subprocess.check_call(["callgrind_control", "-z", pid], stdout=subprocess.DEVNULL)
                subprocess.check_call(["callgrind_control", "-i", "on", pid], stdout=subprocess.DEVNULL)
                data = None
                for _ in range(a.cg_reps):
                    data = srv.query(q)
                subprocess.check_call(["callgrind_control", "-i", "off", pid], stdout=subprocess.DEVNULL)
                before = set(glob.glob(out + "*"))
                subprocess.check_call(["callgrind_control", "-d", q["name"], pid], stdout=subprocess.DEVNULL)
                new = sorted(set(glob.glob(out + "*")) - before, key=os.path.getmtime)
                if not new:
                    raise SystemExit("callgrind wrote no dump for %s" % q["name"])
                n = callgrind_total(new[-1]) / a.cg_reps
                e = engine_ir(new[-1]) / a.cg_reps
                ir.setdefault(q["name"], {})[name] = (n, normalise(data), e)
                log("  %-10s %-28s %14.0f Ir/query (server), %14.0f in the engine's run" % (name, q["name"], n, e))
        finally:
            srv.stop()
    names = [n for n, _ in bins]
    # Two tables: the whole server's instructions per query, and those of
    # the query's evaluation alone (Engine::run_*; see engine_ir).
    for col, title in ((0, "server"), (2, "engine run")):
        hdr = "| query | " + " | ".join("%s Ir/query (%s)" % (n, title) for n in names)
        if len(names) > 1:
            hdr += " | " + " | ".join("%s / %s" % (n, names[0]) for n in names[1:])
        print(hdr + " |")
        print("|" + "---|" * hdr.count("|"))
        for q in queries:
            row = ir[q["name"]]
            first = row[names[0]]
            cells = ["%.0f%s" % (row[n][col], "" if same_answer(first[1], row[n][1], q.get("ties_ok", False))
                                 else " DIFF") for n in names]
            cells += ["%.3f" % (row[n][col] / first[col]) if first[col] else "-" for n in names[1:]]
            print("| %s | %s |" % (q["name"], " | ".join(cells)))
        print()
    if a.json:
        with open(a.json, "w") as f:
            json.dump({q: {n: {"server": v[0], "engine_run": v[2]} for n, v in row.items()} for q, row in ir.items()},
                      f, indent=1)
    return 0


def ensure_dataset(a, gen_iot):
    os.makedirs(a.work, exist_ok=True)
    lp = os.path.join(a.work, "data-%dx%d.lp" % (a.devices, a.points))
    meta_path = lp + ".meta.json"
    if not os.path.exists(meta_path):
        start = gen_iot.Dataset.default_start(a.points, 30.0)
        log("generating %d devices x %d points -> %s" % (a.devices, a.points, lp))
        subprocess.check_call([sys.executable, os.path.join(a.peer_bench, "gen_iot.py"), "--devices", str(a.devices),
                               "--points", str(a.points), "--start", "%.3f" % start, "--out", lp])
    with open(meta_path) as f:
        meta = json.load(f)
    return lp, meta


def loaded_marker(d):
    return os.path.join(d, ".query_cpu_loaded")


def load_target(srv, loadmod, lp, url, headers, a, meta, after):
    log("%s: loading %s" % (srv.name, os.path.basename(lp)))
    rep = loadmod.load(url, [lp], 5000, 4, headers, fields=10)
    log("%s: loaded %d samples in %.1f s" % (srv.name, rep["samples"], rep["wall_s"]))
    after()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", action="append", default=[], help="NAME=PATH of a strata binary (repeatable)")
    ap.add_argument("--env", action="append", default=[],
                    help="NAME:VAR=VALUE, an environment variable for the --bin named NAME (repeatable)")
    ap.add_argument("--vm", default="victoria-metrics", help="VictoriaMetrics binary, or 'none'")
    ap.add_argument("--devices", type=int, default=10000)
    ap.add_argument("--points", type=int, default=60)
    ap.add_argument("--work", default="/tmp/qcpu")
    ap.add_argument("--peer-bench", default=DEFAULT_PB)
    ap.add_argument("--queries", default="", help="comma list of query names (default: all)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--min-cpu-s", type=float, default=0.6, help="repeat each query until this much server CPU")
    ap.add_argument("--min-reps", type=int, default=5)
    ap.add_argument("--max-reps", type=int, default=400)
    ap.add_argument("--max-wall-s", type=float, default=20.0)
    ap.add_argument("--tail-probe", metavar="HEAVY",
                    help="instead of measuring: each query's wall ms and server page faults right after the query "
                         "named HEAVY vs after itself (the one-device tail after a fleet query)")
    ap.add_argument("--probe-reps", type=int, default=15)
    ap.add_argument("--probe-gap-ms", type=float, default=50.0)
    ap.add_argument("--reload", action="store_true", help="discard the loaded data directories")
    ap.add_argument("--json", help="write all figures here")
    ap.add_argument("--perf", metavar="DIR",
                    help="instead of measuring: per query, `perf record --call-graph dwarf` the first --bin while "
                         "the query loops for --perf-s seconds; DIR/<query>.data and a DIR/<query>.txt report")
    ap.add_argument("--perf-s", type=float, default=8.0)
    ap.add_argument("--callgrind", metavar="DIR",
                    help="instead of measuring CPU time: every --bin runs under valgrind --tool=callgrind with "
                         "STRATA_READ_THREADS=0 (one decoding thread, so counts are deterministic); per query, one "
                         "warm-up, then the instructions executed by the whole server over --cg-reps runs "
                         "(callgrind_control: zero, instrument, dump); prints Ir per query. Needs a loaded data set "
                         "(run once without it first). Instruction counts do not move with the host's load")
    ap.add_argument("--cg-reps", type=int, default=3)
    a = ap.parse_args()

    sys.path.insert(0, a.peer_bench)
    import gen_iot  # noqa: E402
    import load as loadmod  # noqa: E402
    import run_peers  # noqa: E402

    bins = []
    for b in a.bin:
        name, _, path = b.partition("=")
        if not path:
            name, path = os.path.basename(b), b
        bins.append((name, os.path.abspath(path)))
    lp, meta = ensure_dataset(a, gen_iot)
    age_h = (time.time() - meta["last_s"]) / 3600.0
    if age_h > 1.0:
        # Seen 2026-12-03: a data set loaded 3 h earlier was rolled to the cold tier when the server
        # started, and every query then read Iceberg files (one-device queries 5 ms instead of 0.05).
        log("WARNING: the data set ends %.1f h ago: its hot bucket may be rolled to the cold tier when a server "
            "starts, and queries then read the cold tier; use a fresh --work dir to measure the hot store" % age_h)
    ds = gen_iot.Dataset(meta["devices"], meta["points"], meta["interval_s"], meta["start_s"], meta["seed"])
    anchor = meta["last_s"] + 7.5
    span_s = int(meta["points"] * meta["interval_s"])
    only = set(q for q in a.queries.split(",") if q)
    queries, _ = run_peers.load_queries(os.path.join(a.peer_bench, "queries.json"), ds, anchor, only or None)
    logdir = os.path.join(a.work, "logs")
    os.makedirs(logdir, exist_ok=True)
    tag = "%dx%d" % (a.devices, a.points)
    sdir = os.path.join(a.work, "strata-" + tag)
    vdir = os.path.join(a.work, "vm-" + tag)
    for d in (sdir, vdir):
        if a.reload and os.path.exists(d):
            shutil.rmtree(d)

    def strata_loaded(srv):
        st, body = srv.http.request("POST", "/internal/flush")
        if st >= 300:
            raise SystemExit("flush: HTTP %d %s" % (st, body[:200]))
        wait_visible(srv, a.devices, span_s, anchor)
        st, body = srv.http.request("POST", "/internal/compact")
        if st >= 300:
            raise SystemExit("compact: HTTP %d %s" % (st, body[:200]))
        wait_visible(srv, a.devices, span_s, anchor)

    def vm_loaded(srv):
        srv.http.request("GET", "/internal/force_flush")
        wait_visible(srv, a.devices, span_s, anchor)
        srv.http.request("GET", "/internal/force_merge")
        time.sleep(6)
        wait_visible(srv, a.devices, span_s, anchor)

    targets = []
    envs = {}
    for e in a.env:
        name, _, kv = e.partition(":")
        var, _, val = kv.partition("=")
        envs.setdefault(name, {})[var] = val
    if a.callgrind:
        return callgrind(a, bins, envs, queries, sdir, logdir)
    for name, path in bins:
        targets.append((name, lambda n=name, p=path: strata_server(n, p, sdir, logdir, envs.get(n)), sdir, "/-/ready",
                        "strata"))
    if a.vm != "none" and shutil.which(a.vm):
        targets.append(("vm", lambda: vm_server(shutil.which(a.vm), vdir, logdir), vdir, "/health", "vm"))
    elif a.vm != "none":
        log("no VictoriaMetrics binary %r: Strata only" % a.vm)

    cpu = {t[0]: {q["name"]: [] for q in queries} for t in targets}
    reps = {t[0]: {q["name"]: [] for q in queries} for t in targets}
    wall = {t[0]: {q["name"]: [] for q in queries} for t in targets}
    answers, diffs = {}, set()
    for rnd in range(a.rounds):
        for name, make, d, ready, kind in targets:
            srv = make()
            os.makedirs(d, exist_ok=True)
            srv.start(ready)
            try:
                if not os.path.exists(loaded_marker(d)):
                    if kind == "strata":
                        load_target(srv, loadmod, lp, srv_url(srv, "/api/v2/write?bucket=bench&precision=ns"),
                                    srv.http.headers, a, meta, lambda: strata_loaded(srv))
                    else:
                        load_target(srv, loadmod, lp, srv_url(srv, "/write"), {}, a, meta, lambda: vm_loaded(srv))
                    open(loaded_marker(d), "w").close()
                else:
                    wait_visible(srv, a.devices, span_s, anchor)
                if a.perf:
                    profile(srv, queries, a)
                    return 0
                if a.tail_probe:
                    tail_probe(srv, queries, a)
                    continue
                log("round %d: %s (pid %d)" % (rnd + 1, name, srv.proc.pid))
                for q in queries:
                    ms, n, data, wall_ms = measure(srv, q, a)
                    cpu[name][q["name"]].append(ms)
                    wall[name][q["name"]].append(wall_ms)
                    reps[name][q["name"]].append(n)
                    if kind == "strata":
                        norm = normalise(data)
                        ref = answers.setdefault(q["name"], norm)
                        if not same_answer(ref, norm, q.get("ties_ok", False)):
                            diffs.add((name, q["name"]))
                    log("  %-10s %-28s %8.2f CPU ms/query, wall median %8.2f ms (%d reps)"
                        % (name, q["name"], ms, wall_ms, n))
            finally:
                srv.stop()

    if a.tail_probe:
        return 0
    names = [t[0] for t in targets]
    hdr = "| query | " + " | ".join("%s CPU ms (runs; median)" % n for n in names)
    strata_names = [n for n in names if n != "vm"]
    if "vm" in names:
        hdr += " | " + " | ".join("%s / vm" % n for n in strata_names)
    print(hdr + " |")
    print("|" + "---|" * (hdr.count("|")))
    for q in queries:
        qn = q["name"]
        cells = []
        med = {}
        for n in names:
            v = cpu[n][qn]
            med[n] = statistics.median(v)
            mark = " DIFF" if (n, qn) in diffs else ""
            cells.append("%s; **%.2f**%s" % (", ".join("%.2f" % x for x in v), med[n], mark))
        if "vm" in names:
            cells += ["%.2f" % (med[n] / med["vm"]) if med["vm"] > 0 else "-" for n in strata_names]
        print("| %s | %s |" % (qn, " | ".join(cells)))
    # Wall clock (client side, median of the repetitions per round): only
    # meaningful on a quiet host; shows what a second core buys, CPU cannot.
    print("\n| query | " + " | ".join("%s wall ms (runs; median)" % n for n in names) + " |")
    print("|" + "---|" * (len(names) + 1))
    for q in queries:
        qn = q["name"]
        print("| %s | %s |" % (qn, " | ".join("%s; **%.2f**" % (", ".join("%.2f" % x for x in wall[n][qn]),
                                                                  statistics.median(wall[n][qn])) for n in names)))
    if diffs:
        print("\nanswers differing from %s's: %s" % (bins[0][0], sorted(diffs)))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"args": vars(a), "cpu_ms": cpu, "wall_ms": wall, "reps": reps, "diffs": sorted(diffs),
                       "loadavg": os.getloadavg()}, f, indent=1)
    return 1 if diffs else 0


def profile(srv, queries, a):
    os.makedirs(a.perf, exist_ok=True)
    for q in queries:
        data = os.path.join(a.perf, q["name"] + ".data")
        perf = subprocess.Popen(["perf", "record", "-q", "-F", "499", "--call-graph", "dwarf,16384", "-p",
                                 str(srv.proc.pid), "-o", data], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        end, n = time.monotonic() + a.perf_s, 0
        while time.monotonic() < end:
            srv.query(q)
            n += 1
        perf.send_signal(signal.SIGINT)
        perf.wait()
        txt = os.path.join(a.perf, q["name"] + ".txt")
        with open(txt, "w") as f:
            subprocess.call(["perf", "report", "-i", data, "--no-children", "--percent-limit", "0.7", "--stdio",
                             "-g", "none", "--sort", "symbol"], stdout=f, stderr=subprocess.DEVNULL)
        with open(os.path.join(a.perf, q["name"] + ".children.txt"), "w") as f:
            subprocess.call(["perf", "report", "-i", data, "--children", "--percent-limit", "2", "--stdio",
                             "-g", "none", "--sort", "symbol"], stdout=f, stderr=subprocess.DEVNULL)
        log("perf: %s, %d queries -> %s" % (q["name"], n, txt))


def srv_url(srv, path):
    return "http://127.0.0.1:%d%s" % (srv.port, path)


if __name__ == "__main__":
    sys.exit(main())
