#!/usr/bin/env python3
"""Write latency and freshness benchmark (issue 16, point 2): what is the p99
write acknowledgement of one Strata node at 50 % and 80 % of its capacity,
with IoT-sized requests, and how soon after its acknowledgement is a sample
visible to queries? (Targets: p99 ack < 30 ms; ack -> visible <= 1 s.)

Starts the release binary (`$CARGO_TARGET_DIR/release/strata`, default
CARGO_TARGET_DIR ~/.cache/strata-target; or --strata PATH) as

  strata serve --http-addr 127.0.0.1:PORT --data-dir TMP/data

(embedded defaults, open mode) on a free port and a temp dir, and, with
--peer victoriametrics, /usr/bin/victoria-metrics the same way, one after
the other in the same run. For each target:

 1. capacity: a closed loop of N keep-alive connections (N = 1, 2, 4, 8, ...
    spread over --client-procs load processes, one thread and one raw HTTP/1.1
    connection each) posts requests of --lines IoT lines (peer-bench gen_iot's
    shape: `sensors,device=..,farm=..,kind=..,region=.. ph=..,moisture=..,...`,
    10 float fields, timestamps = send time in ms) to `/api/v2/write`; each
    level runs --ramp-step seconds; the ramp stops when two levels in a row do
    not beat the best by 5 %. Capacity = the best level's samples/s. Bodies are
    pre-generated (only the timestamp is joined in at send time). The CPU of
    the server, of the load processes and of everything else on the host is
    read from /proc for every level, and the output says which one saturated.
 2. open loop at 50 % and 80 % of capacity, --duration s each: every load
    process sends on a fixed schedule (rate/procs requests/s, phase-shifted),
    whether or not earlier requests were answered (a pool of --conns-per-proc
    connections; a request waits in the process's queue when all are busy).
    Latency = answer time - *scheduled* send time, so queueing in the client
    counts and there is no coordinated omission; the client's own lag
    (actual send - scheduled) is printed too, to show how much is the client.
    Printed per 5 s window: rate achieved, p50/p90/p99/p99.9/max (ms), errors,
    the server's CPU, memtable flushes seen in its log; then the whole run.
 3. freshness, during the 50 % run: a reader in the driver writes one sample
    of its own series (`wl_fresh,probe=..` v=<seq>) every --probe-interval
    through the same write path, and from the moment the write is
    acknowledged polls `/api/v1/query?query=wl_fresh_v{probe=..}` every 10 ms
    until the answer carries its value: ack -> visible p50/p99/max.

Strata's log level is `warn,strata_hot_store=debug,strata::node=info` so every memtable flush
("hot store flushed") is logged with its time; /metrics is read before and
after every phase (throttled applies, memtable samples, segments, refusals).

It is a benchmark: targets are printed, never asserted. Exit 2 if setup
fails; everything it started is stopped on exit. Python standard library only.

  export CARGO_TARGET_DIR=$HOME/.cache/strata-target
  cargo build --release -p strata
  python3 benches/drivers/write_latency.py                          # ~5 min
  python3 benches/drivers/write_latency.py --peer victoriametrics --json out.json
  python3 benches/drivers/write_latency.py --quick                  # ~2 min
"""

import argparse
import json
import multiprocessing as mp
import os
import queue
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

FIELDS = [  # name, mean, spread, decimals  (peer-bench gen_iot's fields)
    ("ph", 6.5, 1.0, 2), ("moisture", 32.0, 10.0, 1), ("temp", 18.0, 8.0, 2),
    ("humidity", 65.0, 15.0, 1), ("nitrogen", 40.0, 15.0, 1), ("ec", 1.2, 0.5, 3),
    ("battery", 3.9, 0.2, 3), ("rssi", -78.0, 10.0, 0), ("light", 20000.0, 8000.0, 0),
    ("wind", 3.5, 2.0, 1),
]
KINDS = ("soil", "air", "water", "leaf")
REGIONS = ("eu", "us", "br")
WINDOW = 5.0
TARGET_P99_MS = 30.0
TARGET_FRESH_S = 1.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


class SetupError(Exception):
    pass


# ---------------------------------------------------------------- helpers

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def pct(sorted_vals, q):
    if not sorted_vals:
        return None
    k = (len(sorted_vals) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (k - lo)


def summary_ms(lat_s):
    v = sorted(lat_s)
    out = {"n": len(v)}
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)):
        x = pct(v, q)
        out[name] = None if x is None else round(x * 1000, 2)
    out["max"] = round(v[-1] * 1000, 2) if v else None
    return out


STAGE = "strata_write_stage_seconds"
STAGES_SHOWN = ("decode", "log_queue", "log_sync", "log_round", "apply", "append")


def stage_hists(m):
    """{stage: ([(le, cumulative count)...], sum_s, count)} from a metrics() dict."""
    out = {}
    for k, v in m.items():
        mm = re.match(r'^%s_bucket\{stage="([a-z_]+)",le="([^"]+)"\}$' % STAGE, k)
        if mm:
            out.setdefault(mm.group(1), [[], 0.0, 0.0])[0].append((float(mm.group(2)), v))
            continue
        mm = re.match(r'^%s_(sum|count)\{stage="([a-z_]+)"\}$' % STAGE, k)
        if mm:
            e = out.setdefault(mm.group(2), [[], 0.0, 0.0])
            e[1 if mm.group(1) == "sum" else 2] = v
    for e in out.values():
        e[0].sort()
    return out


def stage_delta(h0, h1):
    """Per stage between two stage_hists: {stage: {n, mean_ms, p50_ms, p99_ms, max_bucket_ms}}; the
    quantiles are the upper bound of the bucket they fall in (buckets double from 0.25 ms)."""
    out = {}
    for st, (b1, s1, c1) in h1.items():
        b0, s0, c0 = h0.get(st, ([], 0.0, 0.0))
        base = dict(b0)
        cum = [(le, c - base.get(le, 0.0)) for le, c in b1]
        n = c1 - c0
        if n <= 0:
            out[st] = {"n": 0}
            continue

        def q(x):
            for le, c in cum:
                if c >= x * n:
                    return None if le == float("inf") else round(le * 1000, 2)
            return None
        top = None
        prev = 0.0
        for le, c in cum:
            if c > prev:
                top = le
            prev = c
        out[st] = {"n": int(n), "mean_ms": round((s1 - s0) / n * 1000, 3), "p50_ms": q(0.5), "p99_ms": q(0.99),
                   "max_bucket_ms": None if top is None or top == float("inf") else round(top * 1000, 2)}
    return out


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().strip()


def proc_cpu_s(pid):
    """utime+stime of a process (with its threads), seconds."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def runq_wait_s(pid):
    """Seconds the process's threads have spent runnable but waiting for a CPU
    (/proc/PID/task/*/schedstat, field 2): the server's share of CPU contention."""
    tot = 0
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                    tot += int(f.read().split()[1])
            except (OSError, IndexError, ValueError):
                pass
    except OSError:
        return None
    return tot / 1e9


def fsync_probe(dir, n=200, size=60000):
    """fdatasync latency of appending `size` bytes in `dir` (the data dir's disk): the
    floor under any write path that fsyncs before it answers."""
    path = os.path.join(dir, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    lat = []
    try:
        buf = b"x" * size
        for _ in range(n):
            os.write(fd, buf)
            t = time.perf_counter()
            os.fdatasync(fd)
            lat.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        os.unlink(path)
    return summary_ms(lat)


def stall_probe(dir, seconds, size=60000, pause=0.002):
    """The disk's own stalls, with nothing else of this benchmark running: a
    60 kB append and its `fdatasync` every `pause` s for `seconds`. A single
    `fdatasync` that takes 100 ms holds every write acknowledged meanwhile by
    a log that syncs before it answers (`[log] sync = "always"`) for as long;
    at 600 requests/s a few such stalls in a run are its p99."""
    path = os.path.join(dir, "stall-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    lat, stalls, t0 = [], [], time.monotonic()
    try:
        buf = b"x" * size
        while time.monotonic() - t0 < seconds:
            os.write(fd, buf)
            t = time.perf_counter()
            os.fdatasync(fd)
            el = time.perf_counter() - t
            lat.append(el)
            if el >= 0.05:
                stalls.append([round(time.monotonic() - t0, 2), round(el * 1e3, 1)])
            time.sleep(pause)
    finally:
        os.close(fd)
        os.unlink(path)
    out = summary_ms(lat)
    out.update({"seconds": seconds, "syncs": len(lat), "stalls_50ms": stalls,
                "stalled_s": round(sum(s[1] for s in stalls) / 1e3, 3)})
    return out


def host_cpu():
    """(busy, total, irq+softirq) jiffies of the whole host."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v) - idle, sum(v), v[5] + v[6]


class CpuMeter:
    """CPU cores used over an interval: server, this driver, the host."""

    def __init__(self, server_pid):
        self.pid = server_pid
        self.start()

    def start(self):
        self.t = time.monotonic()
        self.srv = proc_cpu_s(self.pid)
        ru = resource.getrusage(resource.RUSAGE_SELF)
        self.me = ru.ru_utime + ru.ru_stime
        self.host = host_cpu()

    def stop(self, client_cpu_s=0.0):
        dt = time.monotonic() - self.t
        srv = proc_cpu_s(self.pid)
        ru = resource.getrusage(resource.RUSAGE_SELF)
        me = ru.ru_utime + ru.ru_stime - self.me
        busy, total, irq = host_cpu()
        ncpu = os.cpu_count() or 1
        host_cores = (busy - self.host[0]) / max(1, total - self.host[1]) * ncpu
        irq_cores = (irq - self.host[2]) / max(1, total - self.host[1]) * ncpu
        server = (srv - self.srv) / dt if srv is not None and self.srv is not None else None
        client = (client_cpu_s + me) / dt
        other = host_cores - (server or 0) - client
        # "other": every other process on the host plus interrupt time (loopback TCP's softirq work
        # is partly accounted there rather than to the sender or the receiver)
        return {"server_cores": r3(server), "client_cores": r3(client), "host_cores": r3(host_cores),
                "irq_cores": r3(irq_cores),
                "other_cores": r3(max(0.0, other)), "ncpu": ncpu}


def r3(x):
    return None if x is None else round(x, 3)


# ---------------------------------------------------------------- raw HTTP

class RawConn:
    """Minimal keep-alive HTTP/1.1 client on a raw socket (cheaper than http.client)."""

    def __init__(self, port, timeout=30.0):
        self.port = port
        self.timeout = timeout
        self.sock = None
        self.buf = b""

    def _connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = s
        self.buf = b""

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None

    def _read_until(self, marker):
        while True:
            i = self.buf.find(marker)
            if i >= 0:
                out, self.buf = self.buf[:i], self.buf[i + len(marker):]
                return out
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk

    def _read_n(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def request(self, method, path, body=b"", headers=b""):
        """(status, body). Raises OSError/ConnectionError on transport errors."""
        if self.sock is None:
            self._connect()
        head = b"%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Length: %d\r\n\r\n" % (
            method.encode(), path.encode(), headers, len(body))
        try:
            if body:
                self.sock.sendmsg([head, body])
            else:
                self.sock.sendall(head)
            hdr = self._read_until(b"\r\n\r\n")
            lines = hdr.split(b"\r\n")
            status = int(lines[0].split(b" ", 2)[1])
            clen, chunked, close = None, False, False
            for ln in lines[1:]:
                k, _, v = ln.partition(b":")
                k = k.strip().lower()
                if k == b"content-length":
                    clen = int(v.strip())
                elif k == b"transfer-encoding" and b"chunked" in v.lower():
                    chunked = True
                elif k == b"connection" and b"close" in v.lower():
                    close = True
            if chunked:
                parts = []
                while True:
                    n = int(self._read_until(b"\r\n").split(b";")[0], 16)
                    if n == 0:
                        self._read_until(b"\r\n")
                        break
                    parts.append(self._read_n(n))
                    self._read_n(2)
                data = b"".join(parts)
            elif clen is not None:
                data = self._read_n(clen)
            elif status in (204, 304) or 100 <= status < 200:
                data = b""
            else:  # read to close
                data = self.buf
                while True:
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                close = True
            if close:
                self.close()
            return status, data
        except (OSError, ValueError, IndexError, ConnectionError):
            self.close()
            raise


# ---------------------------------------------------------------- workload

def device_lines(proc_index, procs, devices, per_body, n_bodies, seed):
    """Pre-generated bodies of one load process: lists of line-protocol lines
    without timestamps. Each process owns its own slice of the devices."""
    rng = random.Random(seed * 7919 + proc_index)
    lo = devices * proc_index // procs
    hi = devices * (proc_index + 1) // procs
    mine = list(range(lo, hi))
    bodies = []
    pos = 0
    for _ in range(n_bodies):
        lines = []
        for _ in range(per_body):
            d = mine[pos % len(mine)]
            pos += 1
            tags = b"sensors,device=dev-%07d,farm=farm-%04d,kind=%s,region=%s" % (
                d, d // 20, KINDS[d % 4].encode(), REGIONS[(d // 20) % 3].encode())
            fields = b",".join(b"%s=%s" % (n.encode(), (b"%.*f" % (dec, mu + rng.uniform(-sp, sp))))
                               for n, mu, sp, dec in FIELDS)
            lines.append(tags + b" " + fields)
        bodies.append(lines)
    return bodies


def make_body(lines, ts_ms):
    sep = b" %d\n" % ts_ms
    return sep.join(lines) + sep


def open_loop_scheduler(q, cfg, proc_index, start, end):
    """The open loop's clock for one load process: a function that puts each
    request's scheduled send time (monotonic s) on `q`, this process's share
    of `cfg["rate"]` requests/s spread evenly from `start` to `end`, then one
    `None` per connection so the workers stop."""
    interval = cfg["procs"] / cfg["rate"]
    offset = interval * proc_index / cfg["procs"]

    def scheduler():
        i = 0
        while True:
            t = start + offset + i * interval
            if t >= end:
                break
            d = t - time.monotonic()
            if d > 0:
                time.sleep(d)
            q.put(t)
            i += 1
        for _ in range(cfg["conns"]):
            q.put(None)

    return scheduler


def load_proc(cfg, proc_index, out_q):
    """One load process. cfg['mode'] is 'closed' (each thread loops) or 'open'
    (a scheduler thread releases requests at fixed times; sender threads take
    them). Reports [(sched, sent, done, status)] and its CPU seconds."""
    try:
        os.nice(0)
        bodies = device_lines(proc_index, cfg["procs"], cfg["devices"], cfg["lines"], cfg["bodies"], cfg["seed"])
        path = cfg["path"]
        hdrs = b"Content-Type: text/plain; charset=utf-8\r\n"
        start, end = cfg["start"], cfg["end"]
        records = []
        rec_lock = threading.Lock()
        counter = [0]

        def next_body():
            with rec_lock:
                counter[0] += 1
                i = counter[0]
            return bodies[i % len(bodies)]

        def send(conn, sched):
            lines = next_body()
            body = make_body(lines, int(time.time() * 1000))
            sent = time.monotonic()
            try:
                st, data = conn.request("POST", path, body, hdrs)
            except (OSError, ValueError, IndexError, ConnectionError):
                st = 0
            done = time.monotonic()
            return (sched, sent, done, st)

        if cfg["mode"] == "closed":
            def closed_worker():
                conn = RawConn(cfg["port"])
                local = []
                while time.monotonic() < start:
                    time.sleep(0.001)
                while True:
                    now = time.monotonic()
                    if now >= end:
                        break
                    local.append(send(conn, now))
                conn.close()
                with rec_lock:
                    records.extend(local)
            threads = [threading.Thread(target=closed_worker, daemon=True) for _ in range(cfg["conns"])]
        else:
            q = queue.Queue()
            scheduler = open_loop_scheduler(q, cfg, proc_index, start, end)

            def open_worker():
                conn = RawConn(cfg["port"])
                local = []
                while True:
                    t = q.get()
                    if t is None:
                        break
                    local.append(send(conn, t))
                conn.close()
                with rec_lock:
                    records.extend(local)
            threads = [threading.Thread(target=open_worker, daemon=True) for _ in range(cfg["conns"])]
            threads.append(threading.Thread(target=scheduler, daemon=True))
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(1.0, end - time.monotonic() + 60))
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
        out_q.put({"proc": proc_index, "records": records, "cpu_s": cpu, "wall_s": end - start})
    except Exception as e:  # report, never hang the parent
        out_q.put({"proc": proc_index, "error": repr(e), "records": [], "cpu_s": 0.0, "wall_s": 1.0})


def run_load(target, a, mode, procs, conns_per_proc, seconds, rate=None):
    """Run the load processes; return (records, per-process cpu, cpu meter)."""
    ctx = mp.get_context("fork")
    out_q = ctx.Queue()
    warm = 1.5  # processes generate their bodies before the common start
    start = time.monotonic() + warm + 0.002 * a.lines * a.bodies / 100
    cfg = {"mode": mode, "port": target.port, "path": target.write_path, "procs": procs,
           "conns": conns_per_proc, "devices": a.devices, "lines": a.lines, "bodies": a.bodies,
           "seed": a.seed, "start": start, "end": start + seconds, "rate": rate}
    ps = [ctx.Process(target=load_proc, args=(cfg, i, out_q), daemon=True) for i in range(procs)]
    for p in ps:
        p.start()
    while time.monotonic() < start:
        time.sleep(0.005)
    meter = CpuMeter(target.proc.pid)
    results = []
    deadline = start + seconds + 120
    while len(results) < procs and time.monotonic() < deadline:
        try:
            results.append(out_q.get(timeout=1.0))
        except queue.Empty:
            pass
    for p in ps:
        p.join(5)
        if p.is_alive():
            p.terminate()
            p.join(2)
    client_cpu = sum(r["cpu_s"] for r in results)
    # the meter covers [start, now]; processes ran [start, start+seconds]: rescale client cpu
    cpu = meter.stop(client_cpu)
    errs = [r["error"] for r in results if "error" in r]
    if errs:
        raise SetupError("load process failed: %s" % errs[0])
    records = [rec for r in results for rec in r["records"]]
    per_proc_cores = [round(r["cpu_s"] / seconds, 3) for r in results]
    cpu["client_proc_cores"] = per_proc_cores
    return records, cpu, start


# ---------------------------------------------------------------- targets

class Target:
    name = ""
    write_path = "/api/v2/write?precision=ms"
    query_extra = {}

    def __init__(self, a, tmp):
        self.a = a
        self.dir = os.path.join(tmp, self.name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.proc = None
        self.log_path = os.path.join(self.dir, "server.log")
        self.started_wall = None

    def start(self):
        self.logf = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.argv(), env=self.env(), stdout=self.logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        self.started_wall = time.time()
        end = time.monotonic() + 120
        c = RawConn(self.port, timeout=5)
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise SetupError("%s exited (%s):\n%s" % (self.name, self.proc.returncode, self.tail()))
            try:
                st, _ = c.request("GET", self.ready_path)
                if st == 200:
                    c.close()
                    return
            except (OSError, ValueError, IndexError, ConnectionError):
                pass
            time.sleep(0.1)
        raise SetupError("%s not ready in 120 s:\n%s" % (self.name, self.tail()))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
        try:
            self.logf.close()
        except Exception:
            pass

    def tail(self, n=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def env(self):
        return dict(os.environ)

    def metrics(self):
        try:
            st, data = RawConn(self.port, timeout=10).request("GET", "/metrics")
        except (OSError, ValueError, IndexError, ConnectionError):
            return {}
        out = {}
        for ln in data.decode("utf-8", "replace").splitlines():
            if not ln or ln[0] == "#":
                continue
            m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)", ln)
            if m and self.keep_metric(m.group(1)):
                try:
                    out[m.group(1)] = float(m.group(2))
                except ValueError:
                    pass
        return out

    def keep_metric(self, name):
        return True

    def flush_times(self):
        return []

    def flush_spans(self):
        return []


class Strata(Target):
    name = "strata"
    ready_path = "/-/ready"

    def argv(self):
        return [self.a.strata, "serve", "--http-addr", "127.0.0.1:%d" % self.port,
                "--data-dir", os.path.join(self.dir, "data")]

    def env(self):
        e = dict(os.environ, RUST_LOG=os.environ.get("WL_RUST_LOG", "warn,strata_hot_store=debug,strata::node=info"))
        for k in list(e):
            if k.startswith("STRATA_"):
                e.pop(k)
        for kv in self.a.strata_env:
            k, _, v = kv.partition("=")
            e[k] = v
        return e

    def keep_metric(self, name):
        return name.startswith(("strata_hot_", "strata_ingest_requests", "strata_ingest_samples",
                                "strata_ingest_append", "strata_ingest_log", "strata_ingest_lines", STAGE))

    def flush_times(self):
        """Wall-clock times (epoch s) of 'hot store flushed' log lines, with samples."""
        out = []
        try:
            with open(self.log_path, errors="replace") as f:
                for ln in f:
                    if "hot store flushed" not in ln:
                        continue
                    ln, t = log_line_time(ln)
                    if t is None:
                        continue
                    s = re.search(r"samples=(\d+)", ln)
                    out.append((t, int(s.group(1)) if s else None))
        except OSError:
            pass
        return out


    def flush_spans(self):
        """(start, end) wall-clock times (epoch s) of the node's memtable flushes, from its
        "flushed memtable to segment ... ms=N" log lines (end = the line's time)."""
        out = []
        try:
            with open(self.log_path, errors="replace") as f:
                for ln in f:
                    if "flushed memtable to segment" not in ln:
                        continue
                    ln, t = log_line_time(ln)
                    ms = re.search(r"\bms=(\d+)", ln)
                    if t is None or not ms:
                        continue
                    out.append((t - int(ms.group(1)) / 1000.0, t))
        except OSError:
            pass
        return out


def log_line_time(ln):
    """(the line without colour codes, its timestamp in epoch s or None) of a server log line."""
    ln = re.sub(r"\x1b\[[0-9;]*m", "", ln)  # the log is coloured
    m = re.match(r"^\S*?(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)Z", ln)
    if not m:
        return ln, None
    base, _, frac = m.group(1).partition(".")
    t = time.mktime(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) - time.timezone
    return ln, t + (float("0." + frac) if frac else 0.0)


def flush_phases(recs, start, start_wall, spans, after_s=0.3):
    """Requests split by where they were scheduled: during a memtable flush, in the
    `after_s` seconds after one, or elsewhere: {phase: {n, p50, p99, max}}, and how many
    of the slowest 1 % were scheduled during or just after a flush."""
    def phase(t):
        if any(a <= t <= b for a, b in spans):
            return "during_flush"
        if any(b < t <= b + after_s for a, b in spans):
            return "after_flush"
        return "elsewhere"
    ok = [r for r in recs if 200 <= r[3] < 300]
    by = {"during_flush": [], "after_flush": [], "elsewhere": []}
    tagged = []
    for r in ok:
        ph = phase(start_wall + (r[0] - start))
        lat = r[2] - r[0]
        by[ph].append(lat)
        tagged.append((lat, ph))
    out = {k: dict(summary_ms(v), n=len(v)) for k, v in by.items()}
    tagged.sort(key=lambda x: -x[0])
    worst = tagged[:max(1, len(tagged) // 100)] if tagged else []
    out["worst_1pct"] = {"n": len(worst), "during_or_after_flush": sum(1 for w in worst if w[1] != "elsewhere")}
    return out


class VictoriaMetrics(Target):
    name = "victoriametrics"
    ready_path = "/health"
    query_extra = {"nocache": "1"}

    def argv(self):
        return [self.a.vm_bin, "-storageDataPath=" + os.path.join(self.dir, "data"), "-retentionPeriod=100y",
                "-httpListenAddr=127.0.0.1:%d" % self.port, "-search.disableCache",
                "-search.latencyOffset=0s", "-loggerLevel=WARN"]

    def keep_metric(self, name):
        return name.startswith(("vm_rows_inserted_total", "vm_pending_rows", "vm_slow_row_inserts_total",
                                "vm_concurrent_insert", "vm_rows_added_to_storage_total"))


# ---------------------------------------------------------------- phases

def warm_up(target, a, out):
    """--warmup s of closed loop, not counted: every device (series) is written at least once before
    anything is timed (series creation is a one-off cost, not what a sustained-load latency measures)."""
    if a.warmup <= 0:
        return
    recs, _, _ = run_load(target, a, "closed", a.client_procs, 2, a.warmup)
    ok = sum(1 for r in recs if 200 <= r[3] < 300)
    print("  warm-up: %.0f s closed loop, %d requests (%d lines; %d devices), %d errors, not counted" % (
        a.warmup, ok, ok * a.lines, a.devices, len(recs) - ok), flush=True)
    out["warmup"] = {"seconds": a.warmup, "requests": ok, "errors": len(recs) - ok}


def ramp(target, a, out):
    """Closed-loop capacity search."""
    print("\n[%s] capacity: closed loop, %d lines/request, %.0f s per level" % (target.name, a.lines, a.ramp_step),
          flush=True)
    warm_up(target, a, out)
    print("  %5s %6s %10s %12s %9s %9s %8s %8s %8s %8s %6s" % (
        "conns", "procs", "req/s", "samples/s", "p50 ms", "p99 ms", "srv cpu", "cli cpu", "other", "host", "errs"))
    levels = []
    best = None
    stale = 0
    for conns in a.ramp_conns:
        procs = min(a.client_procs, conns)
        per = max(1, conns // procs)
        recs, cpu, start = run_load(target, a, "closed", procs, per, a.ramp_step)
        ok = [r for r in recs if 200 <= r[3] < 300]
        errs = len(recs) - len(ok)
        lat = summary_ms([r[2] - r[1] for r in ok])
        rps = len(ok) / a.ramp_step
        sps = rps * a.lines * len(FIELDS)
        lv = {"conns": procs * per, "procs": procs, "req_per_s": round(rps, 1), "samples_per_s": round(sps),
              "latency_ms": lat, "errors": errs, "cpu": cpu}
        levels.append(lv)
        print("  %5d %6d %10.1f %12.0f %9s %9s %8s %8s %8s %8s %6d" % (
            lv["conns"], procs, rps, sps, lat["p50"], lat["p99"], cpu["server_cores"], cpu["client_cores"],
            cpu["other_cores"], cpu["host_cores"], errs), flush=True)
        if best is None or sps > best["samples_per_s"] * 1.05:
            best = lv
            stale = 0
        else:
            if sps > best["samples_per_s"]:
                best = lv
            stale += 1
            if stale >= 2:
                break
    cpu = best["cpu"]
    ncpu = cpu["ncpu"]
    busiest_client = max(cpu["client_proc_cores"]) if cpu["client_proc_cores"] else 0
    if busiest_client >= 0.85:
        verdict = "client-bound: a load process used %.2f of a core" % busiest_client
    elif cpu["server_cores"] is not None and cpu["server_cores"] >= 0.85 * ncpu:
        verdict = "server-bound: the server used %.2f of %d cores" % (cpu["server_cores"], ncpu)
    elif cpu["host_cores"] >= 0.85 * ncpu:
        verdict = ("host-bound: the host's %d cores were %.0f %% busy (server %.2f, load generator %.2f, "
                   "others %.2f cores); the server is the larger share" if (cpu["server_cores"] or 0) >= cpu["client_cores"]
                   else "host-bound: the host's %d cores were %.0f %% busy (server %.2f, load generator %.2f, "
                   "others %.2f cores); the load generator is the larger share") % (
            ncpu, 100 * cpu["host_cores"] / ncpu, cpu["server_cores"] or 0, cpu["client_cores"], cpu["other_cores"])
    else:
        verdict = ("no CPU saturated (host %.2f of %d cores): throughput limited by latency/concurrency, "
                   "not CPU" % (cpu["host_cores"], ncpu))
    if best is levels[-1] and len(levels) == len(a.ramp_conns):
        verdict += "; throughput still grew at the last level (--ramp-conns), so capacity may be higher"
    out["ramp"] = levels
    out["capacity"] = {"samples_per_s": best["samples_per_s"], "req_per_s": best["req_per_s"],
                       "conns": best["conns"], "saturation": verdict}
    print("  capacity: %.0f samples/s (%.1f requests/s of %d lines) at %d connections; %s" % (
        best["samples_per_s"], best["req_per_s"], a.lines, best["conns"], verdict), flush=True)
    return best["req_per_s"]


def given_capacity(target, a, out):
    """--capacity: no ramp (the warm-up still runs); the open loops offer fractions of the
    capacity given, so two binaries or settings are compared at the same offered load."""
    warm_up(target, a, out)
    req = a.capacity / (a.lines * len(FIELDS))
    out["capacity"] = {"samples_per_s": a.capacity, "req_per_s": round(req, 1), "conns": None,
                       "saturation": "given (--capacity), not measured"}
    print("\n[%s] capacity given: %.0f samples/s (%.1f requests/s), not measured" % (target.name, a.capacity, req),
          flush=True)
    return req


class Freshness(threading.Thread):
    """Writes one sample of its own series every `interval` s and polls for it."""

    def __init__(self, target, interval, stop_at, probe):
        super().__init__(daemon=True)
        self.t = target
        self.interval = interval
        self.stop_at = stop_at
        self.probe = probe
        self.results = []  # (ack_wall, ack_lat_s, visible_after_s or None, polls)
        self.errors = []

    def run(self):
        w = RawConn(self.t.port)
        q = RawConn(self.t.port)
        seq = 0
        nxt = time.monotonic()
        hdr = b"Content-Type: text/plain; charset=utf-8\r\n"
        while nxt < self.stop_at:
            d = nxt - time.monotonic()
            if d > 0:
                time.sleep(d)
            seq += 1
            ts = int(time.time() * 1000)
            body = b"wl_fresh,probe=%s v=%d %d\n" % (self.probe.encode(), seq, ts)
            t0 = time.monotonic()
            try:
                st, data = w.request("POST", self.t.write_path, body, hdr)
            except (OSError, ValueError, IndexError, ConnectionError) as e:
                st, data = 0, repr(e).encode()
            ack = time.monotonic()
            if not 200 <= st < 300:
                self.errors.append("write %s: %s" % (st, data[:200]))
                nxt += self.interval
                continue
            params = {"query": 'wl_fresh_v{probe="%s"}' % self.probe}
            params.update(self.t.query_extra)
            visible, polls = None, 0
            while time.monotonic() - ack < 10.0:
                params["time"] = "%.3f" % time.time()
                polls += 1
                try:
                    st, data = q.request("GET", "/api/v1/query?" + urllib.parse.urlencode(params))
                    if st == 200:
                        res = json.loads(data)["data"]["result"]
                        if res and float(res[0]["value"][1]) == seq:
                            visible = time.monotonic() - ack
                            break
                    else:
                        self.errors.append("query %s: %s" % (st, data[:200]))
                except (OSError, ValueError, IndexError, KeyError, ConnectionError) as e:
                    self.errors.append("query: %r" % (e,))
                time.sleep(0.01)
            self.results.append((time.time(), ack - t0, visible, polls))
            nxt += self.interval
            while nxt < time.monotonic():
                nxt += self.interval
        w.close()
        q.close()


def open_run(target, a, frac, req_per_s, out, fresh=False):
    rate = frac * req_per_s
    name = "%d%%" % round(frac * 100)
    procs = a.client_procs
    print("\n[%s] open loop at %s of capacity: %.1f requests/s (%.0f samples/s), %.0f s, %d procs x %d conns" % (
        target.name, name, rate, rate * a.lines * len(FIELDS), a.duration, procs, a.conns_per_proc), flush=True)
    m0 = target.metrics()
    fr = None
    if fresh:
        # starts with the load; runs over the whole duration
        fr = Freshness(target, a.probe_interval, 0, "wl-%d" % os.getpid())
    box = {}

    def go():
        box["r"] = run_load(target, a, "open", procs, a.conns_per_proc, a.duration, rate)

    samples = []  # (monotonic, server cpu s, host busy, host total, server run-queue wait s)
    stage_samples = []  # (monotonic, stage_hists) once a second (Strata's write-path stages)
    sampler_stop = threading.Event()

    def sampler():
        k = 0
        while not sampler_stop.is_set():
            b, t, _ = host_cpu()
            samples.append((time.monotonic(), proc_cpu_s(target.proc.pid), b, t, runq_wait_s(target.proc.pid)))
            if target.name == "strata" and k % 2 == 0:
                h = stage_hists(target.metrics())
                if h:
                    stage_samples.append((time.monotonic(), h))
            k += 1
            sampler_stop.wait(0.5)

    sm = threading.Thread(target=sampler, daemon=True)
    sm.start()
    th = threading.Thread(target=go)
    th.start()
    if fr is not None:
        time.sleep(2.0)  # load processes fork and generate bodies first
        fr.stop_at = time.monotonic() + a.duration - 1.0
        fr.start()
    th.join()
    if fr is not None:
        fr.join(30)
    sampler_stop.set()
    sm.join(5)
    recs, cpu, start = box["r"]
    m1 = target.metrics()

    def win_cpu(t0, t1):
        """(server cores, host cores, server run-queue wait s/s) between the samples nearest t0 and t1."""
        if len(samples) < 2:
            return None, None, None
        s0 = min(samples, key=lambda x: abs(x[0] - t0))
        s1 = min(samples, key=lambda x: abs(x[0] - t1))
        if s1[0] <= s0[0] or s0[1] is None or s1[1] is None:
            return None, None, None
        ncpu = os.cpu_count() or 1
        dt = s1[0] - s0[0]
        return (round((s1[1] - s0[1]) / dt, 2),
                round((s1[2] - s0[2]) / max(1, s1[3] - s0[3]) * ncpu, 2),
                round((s1[4] - s0[4]) / dt, 2) if s0[4] is not None and s1[4] is not None else None)
    flushes = [f for f in target.flush_times()]
    start_wall = time.time() - (time.monotonic() - start)
    # per window
    nwin = int(a.duration // WINDOW)
    wins = [[] for _ in range(max(1, nwin))]
    for r in recs:
        k = int((r[0] - start) // WINDOW)
        if 0 <= k < len(wins):
            wins[k].append(r)
    def win_stages(t0, t1):
        if len(stage_samples) < 2:
            return None
        s0 = min(stage_samples, key=lambda x: abs(x[0] - t0))
        s1 = min(stage_samples, key=lambda x: abs(x[0] - t1))
        return stage_delta(s0[1], s1[1]) if s1[0] > s0[0] else None
    rows = []
    print("  %7s %8s %8s %8s %8s %8s %9s %6s %8s %7s %7s %8s %6s" % (
        "window", "req/s", "p50", "p90", "p99", "p99.9", "max", "errs", "lag p99", "flushes", "srv cpu", "srv wait",
        "host") + ("   stage p99 ms (bucket bound): " + " ".join(STAGES_SHOWN) if stage_samples else ""))
    for k, w in enumerate(wins):
        ok = [r for r in w if 200 <= r[3] < 300]
        lat = summary_ms([r[2] - r[0] for r in ok])
        lag = summary_ms([r[1] - r[0] for r in w])
        wl0, wl1 = start_wall + k * WINDOW, start_wall + (k + 1) * WINDOW
        nfl = sum(1 for f in flushes if wl0 <= f[0] < wl1)
        scpu, hcpu, swait = win_cpu(start + k * WINDOW, start + (k + 1) * WINDOW)
        ws = win_stages(start + k * WINDOW, start + (k + 1) * WINDOW)
        row = {"t": round(k * WINDOW), "req_per_s": round(len(ok) / WINDOW, 1), "latency_ms": lat,
               "errors": len(w) - len(ok), "client_lag_p99_ms": lag["p99"], "flushes": nfl,
               "server_cores": scpu, "server_runq_wait": swait, "host_cores": hcpu, "stages": ws}
        rows.append(row)
        st_txt = ""
        if ws:
            st_txt = "   " + " ".join("%s" % (ws.get(n, {}).get("p99_ms")) for n in STAGES_SHOWN)
        print("  %3.0f-%-3.0f %8.1f %8s %8s %8s %8s %9s %6d %8s %7d %7s %8s %6s" % (
            k * WINDOW, (k + 1) * WINDOW, row["req_per_s"], lat["p50"], lat["p90"], lat["p99"], lat["p99.9"],
            lat["max"], row["errors"], lag["p99"], nfl, scpu, swait, hcpu) + st_txt, flush=True)
    wf = [r["latency_ms"]["p99"] for r in rows if r["flushes"] and r["latency_ms"]["p99"] is not None]
    wn = [r["latency_ms"]["p99"] for r in rows if not r["flushes"] and r["latency_ms"]["p99"] is not None]
    flush_effect = {"windows_with_flush": len(wf),
                    "median_p99_with_flush": round(statistics.median(wf), 1) if wf else None,
                    "windows_without": len(wn),
                    "median_p99_without": round(statistics.median(wn), 1) if wn else None}
    _, _, run_wait = win_cpu(start, start + a.duration)
    cpu["server_runq_wait"] = run_wait
    ok = [r for r in recs if 200 <= r[3] < 300]
    total = summary_ms([r[2] - r[0] for r in ok])
    service = summary_ms([r[2] - r[1] for r in ok])
    lag = summary_ms([r[1] - r[0] for r in recs])
    errs = len(recs) - len(ok)
    statuses = {}
    for r in recs:
        statuses[str(r[3])] = statuses.get(str(r[3]), 0) + 1
    achieved = len(ok) / a.duration
    run_fl = [f for f in flushes if start_wall <= f[0] < start_wall + a.duration]
    stages = stage_delta(stage_hists(m0), stage_hists(m1)) if target.name == "strata" else {}
    mdelta = {k: round(m1[k] - m0.get(k, 0.0), 3) for k in sorted(m1)
              if m1[k] != m0.get(k, 0.0) and not k.startswith(STAGE)}
    res = {"fraction": frac, "target_req_per_s": round(rate, 2), "achieved_req_per_s": round(achieved, 2),
           "achieved_samples_per_s": round(achieved * a.lines * len(FIELDS)), "latency_ms": total,
           "service_ms": service, "client_lag_ms": lag, "errors": errs, "statuses": statuses,
           "windows": rows, "cpu": cpu, "flushes": len(run_fl), "flush_effect": flush_effect,
           "flush_samples": [f[1] for f in run_fl], "metrics_delta": mdelta, "stages": stages,
           "metrics_after": {k: v for k, v in m1.items()},
           "p99_target_met": total["p99"] is not None and total["p99"] < TARGET_P99_MS and errs == 0}
    print("  whole run: %.1f req/s achieved (%.0f samples/s), latency from schedule p50 %s p90 %s p99 %s "
          "p99.9 %s max %s ms, errors %d %s" % (
              achieved, achieved * a.lines * len(FIELDS), total["p50"], total["p90"], total["p99"], total["p99.9"],
              total["max"], errs, "" if errs == 0 else statuses))
    print("  service time (send -> answer) p50 %s p99 %s ms; client lag (schedule -> send) p50 %s p99 %s max %s ms" % (
        service["p50"], service["p99"], lag["p50"], lag["p99"], lag["max"]))
    print("  cpu cores: server %s (its threads waited %s s/s for a CPU), load generator %s (per proc %s), "
          "others %s (of which irq %s), host %s of %d; memtable flushes %d" % (
        cpu["server_cores"], run_wait, cpu["client_cores"], cpu["client_proc_cores"], cpu["other_cores"],
        cpu["irq_cores"], cpu["host_cores"],
        cpu["ncpu"], len(run_fl)) + (" (samples each: %s)" % [f[1] for f in run_fl] if run_fl else ""))
    if target.name == "strata":
        print("  median window p99: %s ms in the %d windows with a memtable flush, %s ms in the %d without" % (
            flush_effect["median_p99_with_flush"], len(wf), flush_effect["median_p99_without"], len(wn)))
    spans = [sp for sp in target.flush_spans() if sp[1] >= start_wall and sp[0] <= start_wall + a.duration]
    if spans:
        fp = flush_phases(recs, start, start_wall, spans)
        res["flush_phases"] = fp
        print("  by flush phase (ack p50 / p99 / max ms, requests): " + "; ".join(
            "%s %s / %s / %s (%d)" % (k.replace("_", " "), fp[k]["p50"], fp[k]["p99"], fp[k]["max"], fp[k]["n"])
            for k in ("during_flush", "after_flush", "elsewhere")) +
            "; slowest 1 %%: %d of %d during or within 0.3 s after a flush (flushes took %s ms)" % (
                fp["worst_1pct"]["during_or_after_flush"], fp["worst_1pct"]["n"],
                [round((b - a_) * 1000) for a_, b in spans]))
    if stages:
        print("  write stages (strata_write_stage_seconds over the run; p50/p99 = bucket upper bound):")
        for n, d in stages.items():
            if d.get("n"):
                print("    %-10s n %7d  mean %8s ms  p50 <= %7s  p99 <= %7s  top bucket <= %s ms" % (
                    n, d["n"], d["mean_ms"], d["p50_ms"], d["p99_ms"], d["max_bucket_ms"]))
    if mdelta:
        print("  /metrics deltas: " + ", ".join("%s %+g" % (k, v) for k, v in mdelta.items()))
    print("  p99 %s ms vs target < %.0f ms: %s" % (total["p99"], TARGET_P99_MS,
                                                   "MET" if res["p99_target_met"] else "MISSED"), flush=True)
    if fr is not None:
        vis = [r[2] for r in fr.results if r[2] is not None]
        miss = sum(1 for r in fr.results if r[2] is None)
        fs = summary_ms(vis)
        acks = summary_ms([r[1] for r in fr.results])
        polls = [r[3] for r in fr.results]
        res["freshness"] = {"probes": len(fr.results), "never_visible_10s": miss, "ack_to_visible_ms": fs,
                            "probe_ack_ms": acks, "polls_median": statistics.median(polls) if polls else None,
                            "errors": fr.errors[:5], "n_errors": len(fr.errors),
                            "target_met": bool(vis) and miss == 0 and fs["max"] <= TARGET_FRESH_S * 1000,
                            "per_window_max_ms": fresh_windows(fr.results, start_wall, a.duration)}
        print("  freshness (%d probes, one every %.0f ms): ack -> visible p50 %s p99 %s max %s ms; never visible "
              "within 10 s: %d; probe write ack p50 %s p99 %s ms; errors %d -> target <= %.0f ms: %s" % (
                  len(fr.results), a.probe_interval * 1000, fs["p50"], fs["p99"], fs["max"], miss, acks["p50"],
                  acks["p99"], len(fr.errors), TARGET_FRESH_S * 1000,
                  "MET" if res["freshness"]["target_met"] else "MISSED"), flush=True)
        if fr.errors:
            print("    first errors: %s" % fr.errors[:3])
    out["open_%s" % name.rstrip("%")] = res
    return res


def fresh_windows(results, start_wall, duration):
    rows = []
    for k in range(int(duration // WINDOW)):
        w0, w1 = start_wall + k * WINDOW, start_wall + (k + 1) * WINDOW
        vis = [r[2] for r in results if w0 <= r[0] < w1 and r[2] is not None]
        rows.append(round(max(vis) * 1000, 1) if vis else None)
    return rows


def bench_target(target, a):
    out = {"target": target.name, "loadavg_before": loadavg()}
    target.start()
    try:
        out["argv"] = target.argv()
        cap = ramp(target, a, out) if a.capacity is None else given_capacity(target, a, out)
        for frac in a.fractions:
            open_run(target, a, frac, cap, out, fresh=(frac == a.fractions[0]))
        out["flushes_total"] = len(target.flush_times())
    finally:
        if target.proc is not None and target.proc.poll() is not None:
            out["exit"] = target.proc.returncode
            out["log_tail"] = target.tail()
        target.stop()
    out["loadavg_after"] = loadavg()
    return out


def default_strata():
    td = os.environ.get("CARGO_TARGET_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "strata-target")
    return os.path.join(td, "release", "strata")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strata", default=default_strata())
    ap.add_argument("--strata-env", action="append", default=[], metavar="STRATA_X=V",
                    help="a setting for the Strata server (repeatable; other STRATA_* variables of this "
                         "environment are not passed), e.g. STRATA_LIMITS__INGESTION_RATE=10000000 so the "
                         "default tenant's 1 M samples/s limit does not cap a run above it")
    ap.add_argument("--peer", choices=["victoriametrics"], default=None)
    ap.add_argument("--vm-bin", default=shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics")
    ap.add_argument("--lines", type=int, default=300, help="lines per request (10 fields each)")
    ap.add_argument("--devices", type=int, default=10000, help="devices (series = devices x 10)")
    ap.add_argument("--bodies", type=int, default=64, help="pre-generated bodies per load process")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per open-loop run")
    ap.add_argument("--ramp-step", type=float, default=8.0, help="seconds per closed-loop level")
    ap.add_argument("--ramp-conns", default="1,2,4,8,16,32")
    ap.add_argument("--warmup", type=float, default=8.0, help="untimed closed-loop seconds before the ramp")
    ap.add_argument("--fractions", default="0.5,0.8")
    ap.add_argument("--capacity", type=float, default=None, metavar="SAMPLES_PER_S",
                    help="skip the capacity ramp and offer --fractions of this many samples/s (compare two "
                         "binaries or settings at the same offered load)")
    ap.add_argument("--client-procs", type=int, default=2, help="load generator processes")
    ap.add_argument("--conns-per-proc", type=int, default=8, help="connections per process (open loop)")
    ap.add_argument("--probe-interval", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--stall-probe", type=float, default=0.0, metavar="SECONDS",
                    help="before the runs, time fdatasyncs of 60 kB appends on the idle disk for this long and list "
                         "every one of 50 ms or more (the floor under a log that syncs before it answers)")
    ap.add_argument("--quick", action="store_true", help="~2 minutes: 20 s runs, 4 s ramp levels up to 16 conns")
    ap.add_argument("--json", default=None, help="write everything here")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    a = ap.parse_args(argv)
    if a.quick:
        a.duration, a.ramp_step, a.warmup = 20.0, 4.0, 4.0
        a.ramp_conns = "1,2,4,8,16"
    a.ramp_conns = [int(x) for x in a.ramp_conns.split(",")]
    a.fractions = [float(x) for x in a.fractions.split(",")]
    if not os.path.exists(a.strata):
        print("no strata binary at %s: cargo build --release -p strata (CARGO_TARGET_DIR)" % a.strata, file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="strata-write-latency-")
    report = {"command": " ".join([os.path.basename(sys.argv[0])] + (argv if argv is not None else sys.argv[1:])),
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "loadavg_before": loadavg(),
              "ncpu": os.cpu_count(), "strata": a.strata,
              "strata_mtime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(os.path.getmtime(a.strata))),
              "params": {k: getattr(a, k) for k in ("lines", "devices", "duration", "ramp_step", "ramp_conns", "warmup",
                                                    "fractions", "client_procs", "conns_per_proc",
                                                    "probe_interval", "quick")},
              "targets": {}}
    print("write_latency: %s (built %s); %d lines x %d fields per request, %d devices (%d series), %d cores, "
          "loadavg %s" % (a.strata, report["strata_mtime"], a.lines, len(FIELDS), a.devices, a.devices * len(FIELDS),
                          os.cpu_count(), report["loadavg_before"]))
    fp = fsync_probe(tmp)
    report["fsync_probe_before_ms"] = fp
    print("disk: fdatasync of a 60 kB append in %s: p50 %s p99 %s max %s ms (200 tries)" % (
        tmp, fp["p50"], fp["p99"], fp["max"]), flush=True)
    if a.stall_probe > 0:
        sp = stall_probe(tmp, a.stall_probe)
        report["stall_probe_ms"] = sp
        print("disk, idle: %d fdatasyncs of 60 kB appends over %g s: p50 %s p99 %s p99.9 %s max %s ms; %d took "
              ">= 50 ms (%.2f s in all): %s" % (sp["syncs"], a.stall_probe, sp["p50"], sp["p99"], sp.get("p99.9"),
                                                sp["max"], len(sp["stalls_50ms"]), sp["stalled_s"],
                                                ", ".join("%g s: %g ms" % (t, ms) for t, ms in sp["stalls_50ms"])
                                                or "none"), flush=True)
    targets = [Strata(a, tmp)]
    if a.peer == "victoriametrics":
        targets.append(VictoriaMetrics(a, tmp))
    rc = 0
    try:
        for t in targets:
            report["targets"][t.name] = bench_target(t, a)
    except SetupError as e:
        print("SETUP FAILED: %s" % e, file=sys.stderr)
        rc = 2
    except KeyboardInterrupt:
        rc = 130
    finally:
        for t in targets:
            t.stop()
        try:
            fp = fsync_probe(tmp)
            report["fsync_probe_after_ms"] = fp
            print("disk: fdatasync of a 60 kB append after the runs: p50 %s p99 %s max %s ms" % (
                fp["p50"], fp["p99"], fp["max"]))
        except OSError:
            pass
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    report["loadavg_after"] = loadavg()
    summarize(report)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)
            f.write("\n")
    return rc


def summarize(report):
    print("\n== summary (loadavg before %s, after %s)" % (report["loadavg_before"], report["loadavg_after"]))
    for name, t in report["targets"].items():
        cap = t.get("capacity")
        if not cap:
            continue
        print("%s: capacity %.0f samples/s (%s)" % (name, cap["samples_per_s"], cap["saturation"]))
        for k in sorted(x for x in t if x.startswith("open_")):
            r = t[k]
            l = r["latency_ms"]
            print("  %3s%%: %.0f samples/s; ack p50 %s p90 %s p99 %s p99.9 %s max %s ms; errors %d; p99 < 30 ms: %s" % (
                k[5:], r["achieved_samples_per_s"], l["p50"], l["p90"], l["p99"], l["p99.9"], l["max"], r["errors"],
                "yes" if r["p99_target_met"] else "NO"))
            if "freshness" in r:
                f = r["freshness"]["ack_to_visible_ms"]
                print("        freshness ack -> visible p50 %s p99 %s max %s ms (%d probes, %d never); <= 1 s: %s" % (
                    f["p50"], f["p99"], f["max"], r["freshness"]["probes"], r["freshness"]["never_visible_10s"],
                    "yes" if r["freshness"]["target_met"] else "NO"))
    ts = report["targets"]
    if "strata" in ts and "victoriametrics" in ts and ts["strata"].get("capacity") and ts["victoriametrics"].get("capacity"):
        s, v = ts["strata"], ts["victoriametrics"]
        print("ratio strata/victoriametrics: capacity %.2f" % (
            s["capacity"]["samples_per_s"] / v["capacity"]["samples_per_s"]))
        for k in sorted(x for x in s if x.startswith("open_")):
            if k in v:
                print("  %s%%: p99 %.2f" % (k[5:], (s[k]["latency_ms"]["p99"] or 0) / max(1e-9, v[k]["latency_ms"]["p99"] or 0)))


if __name__ == "__main__":
    sys.exit(main())
