#!/usr/bin/env python3
"""Edge agent benchmark: strata-edge against vmagent through outages and
crashes, in front of the same Strata server (issue 15).

Starts one real `strata serve` (open mode, temp data dir, free port). For each
scenario it starts, side by side and at the same instant, both agents, each
with its own fresh data dir, its own TCP proxy (in this process; it can be
"cut": open connections are reset and new ones are accepted and reset at
once, until it is restored) between the agent and the server, and its own
writer:

  strata-edge  $CARGO_TARGET_DIR/release/strata-edge, a TOML file written here
               (defaults of the agent unless a flag below says otherwise),
               forwarding to the proxy, which forwards to the server
  vmagent      /usr/bin/vmagent (Debian's victoria-metrics, `apt-get install
               victoria-metrics`), Influx line protocol on -httpListenAddr,
               -remoteWrite.url=http://<proxy>/api/v1/write (the server's
               Prometheus remote write), -remoteWrite.tmpDataPath in its dir;
               every other flag at its default

A writer posts line protocol to its agent's /api/v2/write at --rate samples/s
in requests of --batch lines, one series per (scenario, agent):

  eb_<scenario>_<agent>,agent=<agent> value=<n> <base + n ms>

Sample n carries the value n and its own timestamp (base = 20 min before the
scenario, one millisecond per sample), so the server holds one distinct
sample per sample that arrived, and the driver knows which. A request is
posted once, never retried. vmagent names the series
eb_<scenario>_vmagent_value (measurement_field).

Scenarios (each agent runs the same timeline, concurrently):

  outage       steady intake; the uplink is cut for --outage s, restored
  kill         kill -9 of the agent with the uplink up; restarted after --down s
               (every kill -9 comes at a random 0..--jitter s after its
               nominal time, the same for both agents, so it lands anywhere
               in their flush cycles)
  kill-outage  uplink cut; kill -9 half way through the outage; restart after
               --down s; uplink restored at the end of the outage
  kill-drained uplink cut for --outage s, restored; once the server holds
               every sample acknowledged before the restore (the backlog
               drained), wait 1 s, kill -9, restart after --down s
  bound        queue/disk bound of 1 MiB (strata-edge: queue.max_bytes =
               1048576, segment_bytes 262144, overflow at its default,
               "refuse"; vmagent: -remoteWrite.maxDiskUsagePerURL=1048576);
               --bound-rate samples/s (default 10,000, requests of
               --bound-batch 500 lines: vmagent's queue holds compressed
               blocks, ~8 bytes a sample here, so at 2,000/s its 1 MiB would
               take minutes to fill); uplink cut for --bound-outage s, restored
  live-first   uplink cut for --long-outage s, restored; fresh-sample latency
               and backlog drain time (strata-edge's live lane is what was
               queued within forward.live_window, default 30 s: set
               --edge-live-window to change it)
  rss          (agents one after the other, uplink up, no proxy) --rss-rate
               samples/s in requests of --rss-batch lines from --rss-writers
               keep-alive connections for --rss-seconds s; VmRSS and VmHWM of
               the agent from /proc/PID/status every 200 ms

After the writer stops, the driver waits until the agent is quiet (nothing
pending in it: strata-edge's strata_edge_queue_batches is 0; vmagent's
pending data bytes and in-memory blocks are 0 and the last "re-sending the
block in X seconds" of its log has passed: a block waiting for its retry is
in neither counter)
and the server's count has not moved for 2 s (when every acknowledged sample
is there) or --settle s (when some are missing), at most --drain-timeout s.
Then it reads every stored sample of the series (a range-vector query) and
the server's counters.

Columns, per scenario and agent:

  acked      samples whose request was answered 2xx by the agent
  arrived    acknowledged samples the server holds (by value and timestamp)
  lost       acked - arrived (acknowledged, never stored); also in % of acked
  dup        samples the server's write path received more than once: the
             increase of its ingest counter for the agent's protocol
             (strata_ingest_samples_total minus strata_remote_write_samples_total
             for strata-edge, strata_remote_write_samples_total for vmagent)
             minus the distinct samples stored. The server keeps one value
             per (series, timestamp), so a re-sent sample does not change a
             count here; on a store without that (or with a different value)
             it would be counted twice
  dup applied  of those, how many were applied to the store again: vmagent
             has no de-duplication, so all of them; strata-edge's batches
             carry (agent id, seq) and the server skips a batch it applied
             (strata_ingest_edge_duplicates_skipped_total, in records = edge
             batches); estimated as dup - skipped x --batch, exact while one
             writer's requests are one edge batch each
  refused    samples answered non-2xx by the agent (503 at a full queue...)
  no answer  samples whose request got no answer (agent down: connection
             refused or reset)
  unacked arrived  samples not acknowledged that arrived anyway (a request in
             flight at a kill -9)
  drain s    seconds from the restore of the uplink (kill: from the restart)
             until the server held every sample acknowledged before it that
             ever arrived (polled every 250 ms)
  fresh s    seconds from the 2xx of the first request posted after the
             restore (restart) until its last sample was queryable (polled
             every 100 ms)
  present s  seconds from the restore (restart) until the server held a
             sample the agent had acknowledged at most 1 s before (what a
             dashboard of "now" needs; polled every 100 ms)

A benchmark, not a test: it exits 0 whatever it measures (1 only if a setup
step fails). Everything it started is stopped on exit, failures and Ctrl-C
included. Python standard library only.

  cargo build --release -p strata -p strata-edge
  python3 benches/drivers/edge.py                    # every scenario, ~7 min
  python3 benches/drivers/edge.py --quick            # shorter timeline, ~2.5 min
  python3 benches/drivers/edge.py --only kill,bound --json out.json
  python3 benches/drivers/edge.py --summarize r1.json r2.json r3.json   # medians
"""

import argparse
import calendar
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

AGENTS = ["edge", "vmagent"]
SCENARIOS = ["outage", "kill", "kill-outage", "kill-drained", "bound", "live-first", "rss"]
MIB = 1024 * 1024
RESEND = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z\twarn\t.*re-sending the block in ([\d.]+) seconds", re.M)
STARTED = []  # every Popen this driver started
STARTED_LOCK = threading.Lock()


class SetupError(Exception):
    pass


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def default_binary(name):
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        return os.path.join(target, "release", name)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.join(root, "target", "release", name)


def tail(path, n=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)"


def spawn(args, log_path, env=None):
    log = open(log_path, "a")
    log.write("\n=== %s: %s\n" % (time.strftime("%H:%M:%S"), " ".join(args)))
    log.flush()
    p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    log.close()
    with STARTED_LOCK:
        STARTED.append(p)
    return p


def stop_everything():
    with STARTED_LOCK:
        procs = list(STARTED)
    for p in procs:
        if p.poll() is None:
            try:
                p.terminate()
            except OSError:
                pass
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def get(port, path, timeout=10):
    """(status, body) of a GET; (0, b"") when nothing answers."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    except (OSError, http.client.HTTPException):
        return 0, b""
    finally:
        c.close()


def parse_metrics(text):
    """{name or name{labels}: value} of a Prometheus text exposition; labelled
    samples also summed under their bare name."""
    out = {}
    for line in text.decode("utf-8", "replace").splitlines():
        if not line or line.startswith("#"):
            continue
        try:
            name, value = line.rsplit(" ", 1)
            v = float(value)
        except ValueError:
            continue
        out[name] = v
        if "{" in name:
            bare = name.split("{", 1)[0]
            out[bare + "{}"] = out.get(bare + "{}", 0.0) + v
    return out


def metric(m, name):
    """A bare metric, or the sum of its labelled samples."""
    if name in m:
        return m[name]
    return m.get(name + "{}", 0.0)


def wait_http(port, path, proc, log, what, timeout=60):
    deadline = time.time() + timeout
    while get(port, path, timeout=2)[0] != 200:
        if proc.poll() is not None:
            raise SetupError("%s exited with %s; its log:\n%s" % (what, proc.returncode, tail(log)))
        if time.time() > deadline:
            raise SetupError("%s not ready after %d s; its log:\n%s" % (what, timeout, tail(log)))
        time.sleep(0.05)


# ---------------------------------------------------------------- server


class Server:
    def __init__(self, binary, work):
        self.binary = binary
        self.port = free_port()
        self.dir = os.path.join(work, "server")
        os.makedirs(self.dir)
        self.log = os.path.join(work, "server.log")
        self.proc = None

    def start(self):
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
        self.proc = spawn([self.binary, "serve", "--http-addr", "127.0.0.1:%d" % self.port,
                           "--data-dir", os.path.join(self.dir, "data")], self.log, env)
        wait_http(self.port, "/-/ready", self.proc, self.log, "strata")

    def query(self, q, at_s, timeout=30):
        """The parsed `data` of an instant query, or None."""
        path = "/api/v1/query?" + urllib.parse.urlencode({"query": q, "time": "%.3f" % at_s})
        status, body = get(self.port, path, timeout)
        if status != 200:
            return None
        try:
            return json.loads(body)["data"]
        except (ValueError, KeyError):
            return None

    def count(self, metric_name, first_ms, last_ms):
        """Samples of the series with timestamps in [first_ms, last_ms]; None on error."""
        if last_ms < first_ms:
            return 0
        d = self.query("count_over_time(%s[%dms])" % (metric_name, last_ms - first_ms + 1), last_ms / 1000.0)
        if d is None:
            return None
        return int(sum(float(r["value"][1]) for r in d["result"]))

    def values(self, metric_name, first_ms, last_ms):
        """Every stored value of the series with a timestamp in [first_ms, last_ms]: [(ts_ms, value)]."""
        d = self.query("%s[%dms]" % (metric_name, last_ms - first_ms + 1), last_ms / 1000.0, timeout=120)
        if d is None:
            raise SetupError("raw read of %s failed" % metric_name)
        out = []
        for r in d["result"]:
            for t, v in r["values"]:
                out.append((int(round(float(t) * 1000)), float(v)))
        return out

    def counters(self):
        m = parse_metrics(get(self.port, "/metrics")[1])
        return {k: metric(m, k) for k in ("strata_ingest_samples_total", "strata_remote_write_samples_total",
                                          "strata_ingest_edge_duplicates_skipped_total")}


# ---------------------------------------------------------------- proxy


class Proxy:
    """A TCP proxy to the server that can be cut (existing connections reset,
    new ones accepted and reset at once) and restored."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]
        self.is_cut = False
        self.closed = False
        self.lock = threading.Lock()
        self.conns = {}  # serial -> [client socket, upstream socket, pumps finished]
        self.serial = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @staticmethod
    def _reset(s):
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            s.close()
        except OSError:
            pass

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            if self.is_cut:
                self._reset(c)
                continue
            try:
                u = socket.create_connection(("127.0.0.1", self.upstream), timeout=2)
                u.settimeout(None)
            except OSError:
                self._reset(c)
                continue
            with self.lock:
                if self.is_cut:
                    self._reset(c)
                    self._reset(u)
                    continue
                self.serial += 1
                key = self.serial
                self.conns[key] = [c, u, 0]
            threading.Thread(target=self._pump, args=(c, u, key), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, key), daemon=True).start()

    def _pump(self, src, dst, key):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        last = False
        with self.lock:
            e = self.conns.get(key)
            if e is not None:
                e[2] += 1
                if e[2] == 2:
                    del self.conns[key]
                    last = True
        if last:  # the second pump of the pair to finish closes both
            for sock in (src, dst):
                try:
                    sock.close()
                except OSError:
                    pass

    def cut(self):
        with self.lock:
            self.is_cut = True
            conns = list(self.conns.values())
            self.conns.clear()
        for c, u, _ in conns:
            self._reset(c)
            self._reset(u)

    def restore(self):
        self.is_cut = False

    def close(self):
        self.closed = True
        self.cut()
        try:
            self.lsock.close()
        except OSError:
            pass


# ---------------------------------------------------------------- agents


class Agent:
    name = None

    def __init__(self, binary, work, scenario, upstream_port, opts, bound=False):
        self.binary = binary
        self.dir = os.path.join(work, "%s-%s" % (scenario, self.name))
        os.makedirs(self.dir)
        self.log = os.path.join(self.dir, "agent.log")
        self.port = free_port()
        self.upstream = upstream_port
        self.opts = opts
        self.bound = bound
        self.proc = None
        self.starts = 0

    def args(self):
        raise NotImplementedError

    def start(self):
        self.proc = spawn(self.args(), self.log, self.env())
        self.starts += 1
        wait_http(self.port, "/metrics", self.proc, self.log, self.name)

    def env(self):
        return None

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def metrics(self):
        status, body = get(self.port, "/metrics", timeout=5)
        return parse_metrics(body) if status == 200 else None

    def rss(self):
        """(VmRSS, VmHWM) in bytes, or None."""
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                text = f.read()
        except OSError:
            return None
        vals = {}
        for line in text.splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":", 1)
                vals[k] = int(v.split()[0]) * 1024
        if len(vals) != 2:
            return None
        return vals["VmRSS"], vals["VmHWM"]


class EdgeAgent(Agent):
    name = "edge"
    metric_suffix = ""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.config = os.path.join(self.dir, "strata-edge.toml")
        lines = ['agent_id = "bench-%s"' % os.path.basename(self.dir),
                 'listen = "127.0.0.1:%d"' % self.port,
                 'data_dir = "%s"' % os.path.join(self.dir, "data")]
        if self.bound:
            lines += ["[queue]", "max_bytes = %d" % MIB, "segment_bytes = %d" % (MIB // 4)]
        lines += ["[forward]", 'endpoints = ["http://127.0.0.1:%d"]' % self.upstream]
        if self.opts.edge_live_window:
            lines.append('live_window = "%s"' % self.opts.edge_live_window)
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")

    def args(self):
        return [self.binary, "--config", self.config]

    def env(self):
        return dict(os.environ, RUST_LOG="info")

    def pending(self, m, state):
        return metric(m, "strata_edge_queue_batches") > 0

    def notes(self, m):
        keys = ["strata_edge_intake_refused_total", "strata_edge_dropped_batches_total",
                "strata_edge_sent_batches_total", "strata_edge_sent_samples_total",
                "strata_edge_send_errors_total", "strata_edge_sent_live_batches_total",
                "strata_edge_sent_backlog_batches_total", "strata_edge_queue_batches"]
        return {k: metric(m, k) for k in keys}


class VmAgent(Agent):
    name = "vmagent"
    metric_suffix = "_value"

    def args(self):
        a = [self.binary, "-httpListenAddr=127.0.0.1:%d" % self.port,
             "-remoteWrite.url=http://127.0.0.1:%d/api/v1/write" % self.upstream,
             "-remoteWrite.tmpDataPath=%s" % os.path.join(self.dir, "data")]
        if self.bound:
            a.append("-remoteWrite.maxDiskUsagePerURL=%d" % MIB)
        return a

    def pending(self, m, state):
        """Data pending in its queue, or a block it holds for a retry: every
        failed send logs "re-sending the block in X seconds"; until the last
        of those moments (of the running process) has passed, a block may be
        held outside the queue's counters."""
        return (metric(m, "vmagent_remotewrite_pending_data_bytes") > 0
                or metric(m, "vmagent_remotewrite_pending_inmemory_blocks") > 0
                or time.time() < self.held_until() + 1.0)

    def held_until(self):
        try:
            with open(self.log, errors="replace") as f:
                text = f.read()
        except OSError:
            return 0.0
        text = text.rsplit("\n=== ", 1)[-1]  # this process's lines
        until = 0.0
        for mt in RESEND.finditer(text):
            t = calendar.timegm(time.strptime(mt.group(1), "%Y-%m-%dT%H:%M:%S")) + float(mt.group(2) or 0)
            until = max(until, t + float(mt.group(3)))
        return until

    def notes(self, m):
        keys = ["vm_persistentqueue_bytes_dropped_total", "vm_persistentqueue_blocks_dropped_total",
                "vmagent_remotewrite_blocks_sent_total", "vmagent_remotewrite_errors_total",
                "vmagent_remotewrite_retries_count_total", "vmagent_remotewrite_pending_data_bytes",
                "vmagent_remotewrite_packets_dropped_total"]
        return {k: metric(m, k) for k in keys}


# ---------------------------------------------------------------- writer


class Writer:
    """Posts `rate` samples/s in requests of `batch` lines over `conns`
    keep-alive connections; every request once. Records
    (first seq, lines, status, t_sent, t_answered) per request."""

    def __init__(self, port, measurement, agent, base_ms, rate, batch, conns=1):
        self.port = port
        self.measurement = measurement
        self.agent = agent
        self.base_ms = base_ms
        self.rate = rate
        self.batch = batch
        self.conns = conns
        self.next_seq = 0
        self.seq_lock = threading.Lock()
        self.records = []
        self.stop_ev = threading.Event()
        self.threads = []
        self.t_start = None
        self.t_stop = None

    def body(self, first, n):
        m, a, b = self.measurement, self.agent, self.base_ms
        return "".join("%s,agent=%s value=%d %d000000\n" % (m, a, s, b + s)
                       for s in range(first, first + n)).encode()

    def start(self):
        self.t_start = time.monotonic()
        for i in range(self.conns):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)

    def _run(self, i):
        interval = self.batch * self.conns / float(self.rate)
        next_at = time.monotonic() + interval * i / self.conns
        c = None
        while not self.stop_ev.is_set():
            delay = next_at - time.monotonic()
            if delay > 0:
                if self.stop_ev.wait(delay):
                    break
            next_at += interval
            with self.seq_lock:
                first = self.next_seq
                self.next_seq += self.batch
            body = self.body(first, self.batch)
            t0 = time.monotonic()
            status = 0
            try:
                if c is None:
                    c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                c.request("POST", "/api/v2/write", body=body, headers={"Content-Type": "text/plain"})
                r = c.getresponse()
                r.read()
                status = r.status
                if r.getheader("connection", "").lower() == "close":
                    c.close()
                    c = None
            except (OSError, http.client.HTTPException):
                if c is not None:
                    c.close()
                c = None
            self.records.append((first, self.batch, status, t0, time.monotonic()))
        if c is not None:
            c.close()

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(15)
        self.t_stop = time.monotonic()

    def seq_now(self):
        with self.seq_lock:
            return self.next_seq

    def acked(self):
        s = set()
        for first, n, status, _, _ in list(self.records):
            if 200 <= status < 300:
                s.update(range(first, first + n))
        return s

    def tally(self):
        out = {"acked": 0, "refused": 0, "no_answer": 0, "requests": len(self.records), "statuses": {}}
        for _, n, status, _, _ in self.records:
            if 200 <= status < 300:
                out["acked"] += n
            elif status == 0:
                out["no_answer"] += n
            else:
                out["refused"] += n
            out["statuses"][str(status)] = out["statuses"].get(str(status), 0) + 1
        return out


# ---------------------------------------------------------------- one agent's run of a scenario


class Run:
    """One agent's timeline in one scenario."""

    def __init__(self, scenario, agent, server, proxy, opts, rate, batch, conns=1, jitter=0.0):
        self.scenario = scenario
        self.jitter = jitter
        self.agent = agent
        self.server = server
        self.proxy = proxy
        self.opts = opts
        self.metric_name = "eb_%s_%s%s" % (scenario.replace("-", "_"), agent.name, agent.metric_suffix)
        self.base_ms = (int(time.time() * 1000) - 20 * 60 * 1000) // 1000 * 1000
        self.writer = Writer(agent.port, "eb_%s_%s" % (scenario.replace("-", "_"), agent.name), agent.name,
                             self.base_ms, rate, batch, conns)
        self.t0 = None
        self.event = None  # (t, boundary seq) of the restore / restart
        self.drain_polls = []
        self.fresh = None
        self.fresh_note = None
        self.present = None
        self.events = []
        self.poll_stop = threading.Event()
        self.pollers = []
        self.rss = []
        self.settled = None
        self.error = None

    def log(self, what):
        self.events.append((round(time.monotonic() - self.t0, 2), what))

    def sleep(self, s):
        time.sleep(max(0.0, s))

    # --- actions
    def cut(self):
        self.proxy.cut()
        self.log("uplink cut")

    def restore(self):
        self.proxy.restore()
        self.log("uplink restored")

    def kill9(self):
        self.agent.kill9()
        self.log("kill -9")

    def restart(self):
        self.agent.start()
        self.log("restarted")

    def mark(self):
        """The restore / restart: drain and fresh-sample pollers start."""
        self.event = (time.monotonic(), self.writer.seq_now())
        self.log("boundary at seq %d" % self.event[1])
        for f in (self._poll_drain, self._poll_fresh, self._poll_present):
            t = threading.Thread(target=f, daemon=True)
            t.start()
            self.pollers.append(t)

    def _poll_drain(self):
        t_ev, boundary = self.event
        while not self.poll_stop.is_set():
            c = self.server.count(self.metric_name, self.base_ms, self.base_ms + boundary - 1)
            if c is not None:
                self.drain_polls.append((time.monotonic() - t_ev, c))
            self.poll_stop.wait(0.25)

    def _poll_fresh(self):
        t_ev, _ = self.event
        rec = None
        while not self.poll_stop.is_set() and rec is None:
            for r in list(self.writer.records):
                if r[3] >= t_ev and 200 <= r[2] < 300:
                    rec = r
                    break
            else:
                self.poll_stop.wait(0.02)
        if rec is None:
            self.fresh_note = "no request acknowledged after the event"
            return
        first, n, _, _, t_ack = rec
        ts = self.base_ms + first + n - 1
        while not self.poll_stop.is_set():
            if self.server.count(self.metric_name, ts, ts):
                self.fresh = time.monotonic() - t_ack
                return
            self.poll_stop.wait(0.1)
        self.fresh_note = "not seen before the end"

    def _poll_present(self):
        t_ev, _ = self.event
        while not self.poll_stop.is_set():
            now = time.monotonic()
            recent = [r for r in list(self.writer.records)
                      if 200 <= r[2] < 300 and t_ev <= r[4] <= now - 1.0]
            if recent:
                first = max(r[0] for r in recent)
                if self.server.count(self.metric_name, self.base_ms + first, self.base_ms + 10 ** 7):
                    self.present = time.monotonic() - t_ev
                    return
            self.poll_stop.wait(0.1)

    def wait_backlog(self, timeout):
        """Until the server holds every sample acknowledged before the event."""
        _, boundary = self.event
        want = sum(1 for s in self.writer.acked() if s < boundary)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            c = self.server.count(self.metric_name, self.base_ms, self.base_ms + boundary - 1)
            if c is not None and c >= want:
                self.log("backlog drained (%d samples)" % c)
                return True
            time.sleep(0.25)
        self.log("backlog not drained after %d s" % timeout)
        return False

    def settle(self):
        acked = len(self.writer.acked())
        last_ms = self.base_ms + self.writer.seq_now()
        deadline = time.monotonic() + self.opts.drain_timeout
        state = {}
        last_count, last_change = None, time.monotonic()
        how = "timeout"
        while time.monotonic() < deadline:
            c = self.server.count(self.metric_name, self.base_ms, last_ms)
            m = self.agent.metrics()
            pending = True if m is None else self.agent.pending(m, state)
            now = time.monotonic()
            if c != last_count:
                last_count, last_change = c, now
            need = 2.0 if c is not None and c >= acked else self.opts.settle
            if not pending and now - last_change >= need:
                how = "quiet"
                break
            time.sleep(0.5)
        self.settled = how
        self.log("settled (%s)" % how)

    # --- the timelines
    def run(self):
        o = self.opts
        self.t0 = time.monotonic()
        try:
            self.agent.start()
            self.writer.start()
            self.log("writer started")
            s = self.scenario
            if s == "outage":
                self.sleep(o.pre)
                self.cut()
                self.sleep(o.outage)
                self.restore()
                self.mark()
                self.sleep(o.post)
            elif s == "kill":
                self.sleep(o.pre + self.jitter)
                self.kill9()
                self.sleep(o.down)
                self.restart()
                self.mark()
                self.sleep(o.post)
            elif s == "kill-outage":
                self.sleep(o.pre)
                self.cut()
                self.sleep(o.outage / 2.0 + self.jitter)
                self.kill9()
                self.sleep(o.down)
                self.restart()
                self.sleep(max(0.0, o.outage / 2.0 - o.down - self.jitter))
                self.restore()
                self.mark()
                self.sleep(o.post)
            elif s == "kill-drained":
                self.sleep(o.pre)
                self.cut()
                self.sleep(o.outage)
                self.restore()
                self.mark()
                self.wait_backlog(o.drain_timeout)
                self.sleep(1.0 + self.jitter)
                self.kill9()
                self.sleep(o.down)
                self.restart()
                self.sleep(o.post)
            elif s == "bound":
                self.sleep(o.pre)
                self.cut()
                self.sleep(o.bound_outage)
                self.restore()
                self.mark()
                self.sleep(o.post)
            elif s == "live-first":
                self.sleep(o.pre)
                self.cut()
                self.sleep(o.long_outage)
                self.restore()
                self.mark()
                self.sleep(o.post)
            elif s == "rss":
                end = time.monotonic() + o.rss_seconds
                while time.monotonic() < end:
                    r = self.agent.rss()
                    if r:
                        self.rss.append((time.monotonic() - self.t0, r[0], r[1]))
                    time.sleep(0.2)
            self.writer.stop()
            self.log("writer stopped")
            self.settle()
        except Exception as e:  # noqa: BLE001 - reported, the other agent's run goes on
            self.error = "%s: %s" % (type(e).__name__, e)
            self.writer.stop()
        finally:
            self.poll_stop.set()
            for t in self.pollers:
                t.join(30)
            self.agent_metrics = self.agent.metrics()


# ---------------------------------------------------------------- scenario


def run_scenario(name, server, opts, work, binaries):
    runs = []
    proxies = []
    agent_classes = {"edge": EdgeAgent, "vmagent": VmAgent}
    # A kill -9 lands at a random point of the agents' flush cycles (the same for both).
    jitter = round(opts.rng.uniform(0.0, opts.jitter), 3) if name.startswith("kill") else 0.0
    print("\n== %s%s" % (name, " (kill -9 %.3f s after its nominal time)" % jitter if jitter else ""), flush=True)
    try:
        for a in opts.agents:
            if name == "rss":
                upstream = server.port
                proxy = None
            else:
                proxy = Proxy(server.port)
                proxies.append(proxy)
                upstream = proxy.port
            agent = agent_classes[a](binaries[a], work, name, upstream, opts, bound=(name == "bound"))
            if name == "rss":
                runs.append(Run(name, agent, server, proxy, opts, opts.rss_rate, opts.rss_batch, opts.rss_writers))
            elif name == "bound":
                runs.append(Run(name, agent, server, proxy, opts, opts.bound_rate, opts.bound_batch))
            else:
                runs.append(Run(name, agent, server, proxy, opts, opts.rate, opts.batch, jitter=jitter))
        before = server.counters()
        if name == "rss":
            for r in runs:  # one after the other: the box has few cores
                r.run()
                r.agent.stop()
        else:
            threads = [threading.Thread(target=r.run, daemon=True) for r in runs]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        time.sleep(1.0)
        after = server.counters()
    finally:
        for r in runs:
            r.agent.stop()
        for p in proxies:
            p.close()
    delta = {k: after[k] - before[k] for k in after}
    received = {"edge": delta["strata_ingest_samples_total"] - delta["strata_remote_write_samples_total"],
                "vmagent": delta["strata_remote_write_samples_total"]}
    results = {}
    for r in runs:
        results[r.agent.name] = result_of(r, server, received[r.agent.name],
                                          delta["strata_ingest_edge_duplicates_skipped_total"]
                                          if r.agent.name == "edge" else 0, opts)
        print_result(name, r.agent.name, results[r.agent.name])
    return results


def ranges(seqs):
    out = []
    for s in sorted(seqs):
        if out and out[-1][1] == s - 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    return out


def result_of(r, server, received, skipped, opts):
    w = r.writer
    tally = w.tally()
    acked = w.acked()
    n = w.seq_now()
    stored = server.values(r.metric_name, r.base_ms, r.base_ms + max(n, 1) - 1) if n else []
    seqs = set()
    mismatched = 0
    for ts, v in stored:
        s = int(v)
        if ts != r.base_ms + s:
            mismatched += 1
        seqs.add(s)
    arrived = len(acked & seqs)
    lost = sorted(acked - seqs)
    dup = int(received) - len(seqs)
    dup_applied = dup if r.agent.name == "vmagent" else max(0, dup - int(skipped) * w.batch)
    drain = None
    if r.event is not None:
        boundary = r.event[1]
        final = sum(1 for s in seqs if s < boundary)
        for t, c in r.drain_polls:
            if c >= final:
                drain = round(t, 2)
                break
    elapsed = (w.t_stop - w.t_start) if w.t_stop and w.t_start else None
    res = {
        "acked": len(acked), "arrived": arrived, "lost": len(lost),
        "lost_pct": round(100.0 * len(lost) / len(acked), 3) if acked else 0.0,
        "lost_ranges": [[a, b] for a, b in ranges(lost)][:20],
        "dup": dup, "dup_applied": dup_applied, "dedup_skipped_batches": int(skipped),
        "refused": tally["refused"], "no_answer": tally["no_answer"],
        "unacked_arrived": len(seqs - acked), "stored": len(seqs), "received_by_server": int(received),
        "posted": n, "requests": tally["requests"], "statuses": tally["statuses"],
        "rate_achieved": round(n / elapsed, 1) if elapsed else None,
        "drain_s": drain, "fresh_s": round(r.fresh, 3) if r.fresh is not None else None,
        "present_s": round(r.present, 3) if r.present is not None else None,
        "fresh_note": r.fresh_note, "settled": r.settled, "error": r.error,
        "timestamp_mismatches": mismatched, "events": r.events,
        "agent_counters": r.agent.notes(r.agent_metrics) if r.agent_metrics else None,
        "starts": r.agent.starts, "log": r.agent.log, "kill_jitter_s": r.jitter,
    }
    if r.rss:
        half = [x[1] for x in r.rss[len(r.rss) // 2:]]
        res["rss"] = {"samples": len(r.rss), "steady_mib": round(statistics.median(half) / MIB, 1),
                      "max_rss_mib": round(max(x[1] for x in r.rss) / MIB, 1),
                      "peak_hwm_mib": round(max(x[2] for x in r.rss) / MIB, 1)}
    return res


def fmt(v, digits=2):
    if v is None:
        return "-"
    if isinstance(v, float):
        return ("%%.%df" % digits) % v
    return str(v)


def print_result(scenario, agent, x):
    print("  %-8s acked %d, arrived %d, lost %d (%.3f %%), dup %d (applied %s, dedup-skipped batches %d), "
          "refused %d, no answer %d, unacked arrived %d; drain %s s, fresh %s s, present %s s; %.0f samples/s posted; "
          "settled %s"
          % (agent, x["acked"], x["arrived"], x["lost"], x["lost_pct"], x["dup"], x["dup_applied"],
             x["dedup_skipped_batches"], x["refused"], x["no_answer"], x["unacked_arrived"], fmt(x["drain_s"]),
             fmt(x["fresh_s"], 3), fmt(x.get("present_s"), 3), x["rate_achieved"] or 0, x["settled"]))
    if x["lost_ranges"]:
        print("           lost seq ranges: %s" % ", ".join("%d-%d" % tuple(r) for r in x["lost_ranges"][:8]))
    if x["fresh_note"]:
        print("           fresh: %s" % x["fresh_note"])
    if x["error"]:
        print("           ERROR: %s (log %s)" % (x["error"], x["log"]))
    if x["timestamp_mismatches"]:
        print("           %d stored samples with a timestamp not matching their value" % x["timestamp_mismatches"])
    if x.get("agent_counters"):
        print("           agent: %s" % ", ".join("%s=%g" % kv for kv in x["agent_counters"].items()))
    print("           timeline: %s" % "; ".join("%.1f %s" % e for e in x["events"]))
    if "rss" in x:
        r = x["rss"]
        print("           RSS: steady (median of the second half) %.1f MiB, max %.1f MiB, VmHWM %.1f MiB "
              "(%d samples)" % (r["steady_mib"], r["max_rss_mib"], r["peak_hwm_mib"], r["samples"]))


def side_by_side(results, agents):
    """The markdown table; `results` {scenario: {agent: result}} (or medians)."""
    cols = [("acked", "acked"), ("arrived", "arrived"), ("lost", "lost"), ("lost_pct", "lost %"),
            ("dup", "dup (re-sent)"), ("dup_applied", "dup applied"), ("refused", "refused"),
            ("drain_s", "drain s"), ("fresh_s", "fresh s"), ("present_s", "present s")]
    out = ["| scenario | " + " | ".join(h for _, h in cols) + " |",
           "|---|" + "---|" * len(cols)]
    out[0] = out[0].replace("| scenario |", "| scenario (%s) |" % " / ".join(
        "strata-edge" if a == "edge" else a for a in agents))
    for s, per in results.items():
        if s == "rss":
            continue
        cells = []
        for k, _ in cols:
            vals = []
            for a in agents:
                v = per.get(a, {}).get(k)
                vals.append(fmt(v, 3 if k in ("fresh_s", "present_s", "lost_pct") else 2))
            cells.append(" / ".join(vals))
        out.append("| %s | %s |" % (s, " | ".join(cells)))
    if "rss" in results:
        out.append("")
        out.append("| RSS at intake | samples/s achieved | steady MiB | peak (VmHWM) MiB | lost | dup |")
        out.append("|---|---|---|---|---|---|")
        for a in agents:
            x = results["rss"].get(a)
            if not x or "rss" not in x:
                continue
            out.append("| %s | %s | %s | %s | %s | %s |" % (
                "strata-edge" if a == "edge" else a, fmt(x["rate_achieved"], 0), fmt(x["rss"]["steady_mib"], 1),
                fmt(x["rss"]["peak_hwm_mib"], 1), fmt(x["lost"]), fmt(x["dup"])))
    return "\n".join(out)


def median_results(reports):
    """Per scenario, agent and numeric column: the median over the reports."""
    out = {}
    for rep in reports:
        for s, per in rep["results"].items():
            for a, x in per.items():
                d = out.setdefault(s, {}).setdefault(a, {})
                for k, v in x.items():
                    if isinstance(v, (int, float)) and not isinstance(v, bool):
                        d.setdefault(k, []).append(v)
                    elif v is None and k in ("drain_s", "fresh_s", "present_s"):
                        d.setdefault(k, []).append(None)
                if "rss" in x:
                    for k, v in x["rss"].items():
                        d.setdefault("rss." + k, []).append(v)
    med = {}
    for s, per in out.items():
        for a, d in per.items():
            m = {}
            for k, vs in d.items():
                vs = [v for v in vs if v is not None]
                if not vs:
                    m[k] = None
                    continue
                v = statistics.median(vs)
                if all(isinstance(x, int) for x in vs):
                    v = int(round(v))
                m[k] = v
            if any(k.startswith("rss.") for k in m):
                m["rss"] = {k[4:]: m.pop(k) for k in list(m) if k.startswith("rss.")}
            med.setdefault(s, {})[a] = m
    return med


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strata", default=default_binary("strata"),
                    help="the server (default: $CARGO_TARGET_DIR/release/strata, else target/release/strata)")
    ap.add_argument("--strata-edge", default=default_binary("strata-edge"),
                    help="the agent (default: next to strata, the same way)")
    ap.add_argument("--vmagent", default="/usr/bin/vmagent", help="default: %(default)s (apt-get install victoria-metrics)")
    ap.add_argument("--agents", default="edge,vmagent", help="comma-separated: edge, vmagent (default both)")
    ap.add_argument("--only", default=",".join(SCENARIOS), help="scenarios to run (default: %(default)s)")
    ap.add_argument("--quick", action="store_true", help="a shorter timeline (~2.5 min in all)")
    ap.add_argument("--rate", type=int, default=2000, help="samples/s per agent (default 2000)")
    ap.add_argument("--batch", type=int, default=100, help="lines per request (default 100)")
    ap.add_argument("--pre", type=float, help="steady intake before the event, s (default 5; quick 2)")
    ap.add_argument("--post", type=float, help="intake after the restore/restart, s (default 8; quick 3)")
    ap.add_argument("--outage", type=float, help="uplink cut, s (default 15; quick 6)")
    ap.add_argument("--down", type=float, help="agent down after kill -9, s (default 2; quick 1)")
    ap.add_argument("--bound-outage", type=float, help="outage of the bound scenario, s (default 40; quick 18)")
    ap.add_argument("--bound-rate", type=int, default=10000,
                    help="samples/s per agent in the bound scenario (default 10000)")
    ap.add_argument("--bound-batch", type=int, default=500, help="lines per request in the bound scenario (default 500)")
    ap.add_argument("--long-outage", type=float, help="outage of live-first, s (default 60; quick 15)")
    ap.add_argument("--settle", type=float, help="no progress for this long ends the wait when samples are "
                    "missing, s (default 15; quick 5)")
    ap.add_argument("--drain-timeout", type=float, help="longest wait for the drain, s (default 120; quick 60)")
    ap.add_argument("--edge-live-window", help="strata-edge forward.live_window (default: the agent's, 30s)")
    ap.add_argument("--rss-rate", type=int, default=10000, help="samples/s of the rss scenario (default 10000)")
    ap.add_argument("--rss-batch", type=int, default=500, help="lines per request of the rss scenario (default 500)")
    ap.add_argument("--rss-writers", type=int, default=2, help="connections of the rss scenario (default 2)")
    ap.add_argument("--rss-seconds", type=float, help="length of the rss scenario per agent (default 30; quick 6)")
    ap.add_argument("--jitter", type=float, default=1.0,
                    help="a kill -9 comes up to this many s later than its nominal time, uniformly at random, "
                         "the same for both agents (default 1.0)")
    ap.add_argument("--seed", type=int, help="of the jitter (default: random, printed)")
    ap.add_argument("--json", dest="json_out", help="write the report (every number, timelines) here")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (configs, data, logs)")
    ap.add_argument("--summarize", nargs="+", metavar="JSON", help="print the median table of saved reports and exit")
    o = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    o.agents = [a for a in o.agents.split(",") if a]
    if not o.agents or any(a not in AGENTS for a in o.agents):
        ap.error("--agents: a comma-separated list of %s" % ", ".join(AGENTS))

    if o.summarize:
        reports = [json.load(open(p)) for p in o.summarize]
        agents = reports[0]["args"]["agents"]
        for p, rep in zip(o.summarize, reports):
            print("\n%s (%s):\n" % (p, rep.get("started", "")))
            print(side_by_side(rep["results"], agents))
        print("\nmedian of %d runs:\n" % len(reports))
        print(side_by_side(median_results(reports), agents))
        return

    defaults = {"pre": (5, 2), "post": (8, 3), "outage": (15, 6), "down": (2, 1), "bound_outage": (40, 18),
                "long_outage": (60, 15), "settle": (15, 5), "drain_timeout": (120, 60), "rss_seconds": (30, 6)}
    for k, (full, quick) in defaults.items():
        if getattr(o, k) is None:
            setattr(o, k, quick if o.quick else full)
    if o.seed is None:
        o.seed = random.SystemRandom().randrange(1 << 31)
    o.rng = random.Random(o.seed)
    o.only = [s for s in o.only.split(",") if s]
    if any(s not in SCENARIOS for s in o.only):
        ap.error("--only: a comma-separated list of %s" % ", ".join(SCENARIOS))
    binaries = {"edge": o.strata_edge, "vmagent": o.vmagent}
    for path, hint in [(o.strata, "cargo build --release -p strata")] + [
            (binaries[a], "cargo build --release -p strata-edge" if a == "edge"
             else "apt-get install -y victoria-metrics") for a in o.agents]:
        if not os.access(path, os.X_OK):
            sys.exit("no binary at %s: %s (or pass its path)" % (path, hint))

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored

    work = tempfile.mkdtemp(prefix="strata-edge-bench-")
    report = {"args": {k: v for k, v in vars(o).items() if k not in ("summarize", "rng")},
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "results": {}}
    t_all = time.monotonic()
    status = 0
    try:
        server = Server(o.strata, work)
        server.start()
        print("strata %s, strata-edge %s, vmagent %s; server on 127.0.0.1:%d; work dir %s" % (
            o.strata, o.strata_edge, o.vmagent, server.port, work))
        print("rate %d samples/s per agent in requests of %d lines; seed %d; load average %.2f %.2f %.2f on %d cores"
              % ((o.rate, o.batch, o.seed) + os.getloadavg() + (os.cpu_count(),)))
        for s in o.only:
            report["results"][s] = run_scenario(s, server, o, work, binaries)
            if server.proc.poll() is not None:
                raise SetupError("the server exited: %s" % tail(server.log))
        report["seconds"] = round(time.monotonic() - t_all, 1)
        print("\n== side by side (strata-edge / vmagent), %.0f s in all\n" % report["seconds"])
        print(side_by_side(report["results"], o.agents))
        if o.json_out:
            with open(o.json_out, "w") as f:
                json.dump(report, f, indent=1)
    except SetupError as e:
        print("setup failed: %s" % e, file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        print("interrupted; stopping what was started", file=sys.stderr)
        status = 130
    finally:
        stop_everything()
        if o.keep:
            print("kept %s" % work, file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(status)


if __name__ == "__main__":
    main()
