#!/usr/bin/env python3
"""Fault campaign (issue 20, item 2): kill -9 of `strata serve` at random
instants while it ingests, flushes, compacts, rolls to the cold tier, runs
cold maintenance and consumes Kafka; after every restart, is every
acknowledged sample queryable exactly once?

Setup: one `strata serve` (--strata PATH, default $CARGO_TARGET_DIR/release/
strata, then .../debug/strata) on a free port and a temp data dir, with the
cold tier on (10-second hot buckets, rolled 2 s after they end, cold
maintenance every 2 s: retention, merges of 2+ small files, snapshot expiry
and orphan removal after 5 s) and, by default, the Kafka ingest log on a
tansu broker this driver starts ($STRATA_TANSU_BIN, else
$STRATA_TOOLS_DIR or ~/.cache/strata-tools, /tansu-0.6.0/bin/tansu, as
scripts/install-test-deps.sh installs it). `--log local` runs on the
embedded log instead (no broker); `--log-sync interval` makes that log
acknowledge once written, syncing every 10 ms in the background.

Each trial: start the server on the same data dir; --writers threads send
line protocol (`faults,device=wN-K v=<id> <ts>`: every sample has a
unique value and each series strictly increasing timestamps) while an
operations thread posts /internal/flush, /internal/compact and
/internal/roll at random; after a random delay (--min-run..--max-run
seconds) the server gets SIGKILL. A write answered 204 is *acknowledged*;
one without an answer is *in doubt* (may or may not be stored); one
refused is neither. Then the server is restarted and, once its ingest
status says caught up, every series is read back raw (`faults_v[range]`)
and each acknowledged sample must be there exactly once: *lost* counts
acknowledged samples missing (after waiting up to --settle seconds for the
consumer), *duplicated* samples read more than once, *unknown* samples
that were never sent. A trial also cross-checks count_over_time and
sum_over_time per series against the raw read.

Prints one line per trial (what was in flight at the kill) and a summary:
trials, acknowledged, lost, duplicated, wall time. Exit 1 if anything was
lost, duplicated or unknown, 2 when setup fails. Python standard library
only; --json writes everything to a file.

  export CARGO_TARGET_DIR=$HOME/.cache/strata-target-faults
  cargo build --release -p strata
  python3 benches/drivers/faults.py --trials 100            # Kafka (tansu) + cold tier
  python3 benches/drivers/faults.py --trials 100 --log local
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

ADMIN = "faults-driver-admin-token-0000001"
METRIC = "faults_v"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http(base, method, path, body=None, token=ADMIN, timeout=30):
    """(status, parsed body); status None when no answer came (connection refused or cut)."""
    data = body if isinstance(body, bytes) or body is None else body.encode()
    headers = {"Authorization": f"Bearer {token}"}
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw[:1] in (b"{", b"[") else raw)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (OSError, ValueError) as e:  # refused, reset, timeout, truncated body
        return None, str(e)


def find_binary(arg):
    if arg:
        return arg
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/strata-target"))
    for profile in ("release", "debug"):
        p = os.path.join(target, profile, "strata")
        if os.path.exists(p):
            return p
    print("no strata binary: build it or pass --strata", file=sys.stderr)
    sys.exit(2)


def tansu_binary():
    p = os.environ.get("STRATA_TANSU_BIN")
    if not p:
        tools = os.environ.get("STRATA_TOOLS_DIR", os.path.expanduser("~/.cache/strata-tools"))
        p = os.path.join(tools, "tansu-0.6.0/bin/tansu")
    if not os.path.isfile(p):
        print(f"tansu missing at {p}: run scripts/install-test-deps.sh or set STRATA_TANSU_BIN", file=sys.stderr)
        sys.exit(2)
    return p


def start_broker(workdir):
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = open(os.path.join(workdir, "tansu.log"), "w")
    proc = subprocess.Popen([tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                             "--storage-engine", "memory://tansu/", "--cluster-id", "strata-faults"],
                            env=dict(os.environ, RUST_LOG="warn"), stdout=subprocess.DEVNULL, stderr=log)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    print("tansu did not listen", file=sys.stderr)
    sys.exit(2)


class Node:
    """`strata serve` on a fixed port and data dir, restartable."""

    def __init__(self, binary, workdir, broker, log_sync="always"):
        self.binary, self.workdir, self.broker, self.log_sync = binary, workdir, broker, log_sync
        self.data = os.path.join(workdir, "data")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.starts = 0

    def env(self):
        env = dict(os.environ)
        env.update({
            "STRATA_ADMIN__TOKEN": ADMIN,
            "STRATA_LOG__PARTITIONS": "4",
            "STRATA_LOG__SYNC": self.log_sync,
            "STRATA_HOT_STORE__BUCKET": "10s",
            "STRATA_HOT_STORE__FLUSH_INTERVAL": "2s",
            "STRATA_HOT_STORE__COMPACT_SEGMENTS": "2",
            "STRATA_COLD__ENABLED": "true",
            "STRATA_COMPACTOR__GRACE": "2s",
            "STRATA_COMPACTOR__INTERVAL": "1s",
            "STRATA_COMPACTOR__MAINTENANCE_INTERVAL": "2s",
            "STRATA_COMPACTOR__MERGE_MIN_FILES": "2",
            "STRATA_COMPACTOR__SNAPSHOT_RETENTION": "5s",
            "STRATA_COMPACTOR__ORPHAN_GRACE": "5s",
            "RUST_LOG": "info,librdkafka=warn,rdkafka=warn",
        })
        if self.broker:
            env.update({
                "STRATA_LOG__KIND": "kafka",
                "STRATA_LOG__KAFKA__BROKERS": self.broker,
                "STRATA_LOG__KAFKA__TOPIC_PREFIX": "faults",
                "STRATA_LOG__KAFKA__DELIVERY_TIMEOUT": "5s",
            })
        return env

    def start(self):
        self.starts += 1
        log = open(os.path.join(self.workdir, "strata.log"), "a")
        log.write(f"\n===== start {self.starts} =====\n")
        log.flush()
        self.proc = subprocess.Popen([self.binary, "serve", "--http-addr", f"127.0.0.1:{self.port}",
                                      "--data-dir", self.data], env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        t0 = time.time()
        while time.time() - t0 < 120:
            if self.proc.poll() is not None:
                raise RuntimeError(f"strata exited with {self.proc.returncode} on start {self.starts} "
                                   f"(log: {self.workdir}/strata.log)")
            if http(self.base, "GET", "/-/ready", timeout=1)[0] == 200:
                return time.time() - t0
            time.sleep(0.05)
        raise RuntimeError("strata not ready within 120 s")

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill9()


class Ledger:
    """What was sent: per (series, ts) the value, and whether acknowledged."""

    def __init__(self, writers, series):
        self.lock = threading.Lock()
        self.next_id = 1
        self.acked = {}     # (series, ts) -> value
        self.doubt = {}     # (series, ts) -> value: sent, no answer
        self.refused = 0
        self.series = [[f"w{w}-{k}" for k in range(series)] for w in range(writers)]
        self.last_ts = [0] * writers

    def batch(self, w):
        with self.lock:
            ts = max(int(time.time() * 1000), self.last_ts[w] + 1)
            self.last_ts[w] = ts
            first = self.next_id
            self.next_id += len(self.series[w])
        return [(s, ts, float(first + i)) for i, s in enumerate(self.series[w])]


def writer(node, ledger, w, stop, inflight, pause):
    while not stop.wait(pause):
        samples = ledger.batch(w)
        body = "".join(f"faults,device={s} v={v:.0f} {ts}\n" for s, ts, v in samples)
        inflight[f"write{w}"] = True
        code, _ = http(node.base, "POST", "/api/v2/write?bucket=b&precision=ms", body, timeout=15)
        inflight[f"write{w}"] = False
        with ledger.lock:
            if code == 204:
                for s, ts, v in samples:
                    ledger.acked[(s, ts)] = v
            elif code is None:
                for s, ts, v in samples:
                    ledger.doubt[(s, ts)] = v
            else:
                ledger.refused += len(samples)
        if code not in (204, None):
            time.sleep(0.1)


def operations(node, stop, inflight, counts, rng):
    ops = ["flush", "compact", "roll"]
    while not stop.is_set():
        op = rng.choice(ops)
        inflight[op] = True
        code, _ = http(node.base, "POST", f"/internal/{op}", timeout=60)
        inflight[op] = False
        if code == 200:
            counts[op] = counts.get(op, 0) + 1
        stop.wait(rng.uniform(0.0, 0.4))


COUNTERS = ("strata_compactor_buckets_rolled_total", "strata_compactor_merges_total",
            "strata_compactor_maintenance_passes_total", "strata_compactor_snapshots_expired_total",
            "strata_compactor_orphan_files_deleted_total", "strata_kafka_applied_records_total")


def counters(node):
    """The node's cold-tier and Kafka counters since its start (unlabelled sums)."""
    code, text = http(node.base, "GET", "/metrics", timeout=2)
    out = {}
    if code != 200:
        return out
    for line in (text.decode() if isinstance(text, bytes) else str(text)).splitlines():
        name = line.split("{")[0].split(" ")[0]
        if name in COUNTERS:
            try:
                out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
            except ValueError:
                pass
    return out


def caught_up(node, timeout):
    t0 = time.time()
    while time.time() - t0 < timeout:
        code, st = http(node.base, "GET", "/api/v1/status/ingest", timeout=5)
        data = st.get("data", {}) if code == 200 and isinstance(st, dict) else {}
        parts = data.get("kafka", {}).get("partitions", [])
        # With Kafka: every partition assigned (caught_up alone is true before the group assigns any).
        if data.get("caught_up") and ("kafka" not in data or (parts and all(p.get("assigned") for p in parts))):
            return True
        time.sleep(0.2)
    return False


def read_back(node, since_ms):
    """Every stored sample of the metric: {(series, ts): [values]}, plus count/sum per series by PromQL."""
    now = time.time()
    rng = int(now - since_ms / 1000) + 60
    at = f"{now:.3f}"
    q = urllib.parse.urlencode({"query": f"{METRIC}[{rng}s]", "time": at})
    code, v = http(node.base, "GET", f"/api/v1/query?{q}", timeout=120)
    if code != 200:
        raise RuntimeError(f"raw read: {code} {str(v)[:300]}")
    got = {}
    for series in v["data"]["result"]:
        dev = series["metric"]["device"]
        for ts, val in series["values"]:
            got.setdefault((dev, round(float(ts) * 1000)), []).append(float(val))
    agg = {}
    for fn in ("count_over_time", "sum_over_time"):
        q = urllib.parse.urlencode({"query": f"{fn}({METRIC}[{rng}s])", "time": at})
        code, v = http(node.base, "GET", f"/api/v1/query?{q}", timeout=120)
        if code != 200:
            raise RuntimeError(f"{fn}: {code} {str(v)[:300]}")
        for r in v["data"]["result"]:
            agg.setdefault(r["metric"]["device"], {})[fn] = float(r["value"][1])
    return got, agg


def check(ledger, got, agg):
    with ledger.lock:
        acked, doubt = dict(ledger.acked), dict(ledger.doubt)
    missing = sorted(k for k, v in acked.items() if v not in got.get(k, []))
    lost = len(missing)
    dup = sum(len(vs) - 1 for vs in got.values() if len(vs) > 1)
    unknown = 0
    for k, vs in got.items():
        want = acked.get(k, doubt.get(k))
        unknown += sum(1 for x in vs if x != want)
    # PromQL aggregates must agree with the raw read.
    per = {}
    for (dev, _), vs in got.items():
        c, s = per.get(dev, (0, 0.0))
        per[dev] = (c + len(vs), s + sum(vs))
    mismatch = [d for d, (c, s) in per.items()
                if agg.get(d, {}).get("count_over_time") != c or agg.get(d, {}).get("sum_over_time") != s]
    return {"acked": len(acked), "doubt": len(doubt), "lost": lost, "duplicated": dup, "unknown": unknown,
            "agg_mismatch": len(mismatch),
            # Which ones, for the log of a failed campaign: (device, ts ms, value acknowledged, values read).
            "lost_samples": [(d, ts, acked[(d, ts)], got.get((d, ts), [])) for d, ts in missing[:10]]}


def print_lost(r):
    """Lists the (first ten) lost samples of a check: the sample's time says
    which trial wrote it and, against the server's log, what it went through."""
    for d, ts, want, seen in r["lost_samples"]:
        print(f"  lost: device {d} ts {ts} ms ({time.strftime('%H:%M:%S', time.gmtime(ts / 1000))}"
              f".{ts % 1000:03} UTC) acknowledged {want}, read back {seen or 'nothing'}", flush=True)


def verify(node, ledger, since_ms, settle):
    """Waits for the consumer, then checks; lost samples get up to `settle` seconds to show up."""
    caught_up(node, settle)
    t0 = time.time()
    while True:
        got, agg = read_back(node, since_ms)
        r = check(ledger, got, agg)
        if (r["lost"] == 0 and r["agg_mismatch"] == 0) or time.time() - t0 > settle:
            r["settle_s"] = round(time.time() - t0, 2)
            return r
        time.sleep(0.5)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--strata")
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--log", choices=["kafka", "local"], default="kafka")
    ap.add_argument("--log-sync", choices=["always", "interval"], default="always",
                    help="the embedded log's [log] sync mode (interval: acknowledged once written, synced every 10 ms)")
    ap.add_argument("--writers", type=int, default=3)
    ap.add_argument("--series", type=int, default=10, help="series per writer")
    ap.add_argument("--pause", type=float, default=0.02, help="pause between a writer's requests (s)")
    ap.add_argument("--min-run", type=float, default=0.3, help="shortest run before the kill (s)")
    ap.add_argument("--max-run", type=float, default=4.0, help="longest run before the kill (s)")
    ap.add_argument("--settle", type=float, default=60.0, help="how long lost samples may take to appear (s)")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--json")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (data and logs)")
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    binary = find_binary(a.strata)
    work = tempfile.mkdtemp(prefix="strata-faults-")
    broker_proc, broker = (start_broker(work) if a.log == "kafka" else (None, None))
    node = Node(binary, work, broker, a.log_sync)
    ledger = Ledger(a.writers, a.series)
    since_ms = int(time.time() * 1000)
    trials, failed = [], False
    print(f"faults: {a.trials} trials, log {a.log} (sync {a.log_sync}), cold tier on, binary {binary}, seed {seed}, work dir {work}",
          flush=True)
    t_start = time.time()
    try:
        for n in range(1, a.trials + 1):
            ready_s = node.start()
            if n > 1:  # the restart after the previous kill: check everything so far
                r = verify(node, ledger, since_ms, a.settle)
                trials[-1].update(r, restart_s=round(ready_s, 2))
                t = trials[-1]
                print(f"trial {t['trial']:3} ran {t['run_s']:5.2f} s, in flight {','.join(t['inflight']) or '-':22} "
                      f"acked {r['acked']:8} in doubt {r['doubt']:5} lost {r['lost']} dup {r['duplicated']} "
                      f"unknown {r['unknown']} agg-mismatch {r['agg_mismatch']} (ready {ready_s:.1f} s, "
                      f"settled {r['settle_s']} s)", flush=True)
                if r["lost"] or r["duplicated"] or r["unknown"] or r["agg_mismatch"]:
                    failed = True
                print_lost(r)
            stop = threading.Event()
            inflight, counts = {}, {}
            threads = [threading.Thread(target=writer, args=(node, ledger, w, stop, inflight, a.pause))
                       for w in range(a.writers)]
            threads.append(threading.Thread(target=operations,
                                            args=(node, stop, inflight, counts, random.Random(rng.random()))))
            for t in threads:
                t.start()
            run = rng.uniform(a.min_run, a.max_run)
            time.sleep(run)
            done = counters(node)  # what this run did, just before its kill
            at_kill = sorted(k for k, v in inflight.items() if v)
            node.kill9()
            stop.set()
            for t in threads:
                t.join()
            trials.append({"trial": n, "run_s": round(run, 2), "inflight": at_kill, "ops_done": counts, "counters": done})
        # The last kill's restart.
        ready_s = node.start()
        r = verify(node, ledger, since_ms, a.settle)
        trials[-1].update(r, restart_s=round(ready_s, 2))
        t = trials[-1]
        print(f"trial {t['trial']:3} ran {t['run_s']:5.2f} s, in flight {','.join(t['inflight']) or '-':22} "
              f"acked {r['acked']:8} in doubt {r['doubt']:5} lost {r['lost']} dup {r['duplicated']} "
              f"unknown {r['unknown']} agg-mismatch {r['agg_mismatch']}", flush=True)
        if r["lost"] or r["duplicated"] or r["unknown"] or r["agg_mismatch"]:
            failed = True
        print_lost(r)
        wall = time.time() - t_start
        cold = {}
        for t in trials:
            for k, v in t["counters"].items():
                cold[k.removeprefix("strata_")] = cold.get(k.removeprefix("strata_"), 0) + v
            for k, v in t["ops_done"].items():
                cold["internal_" + k] = cold.get("internal_" + k, 0) + v
        inflight_kills = {}
        for t in trials:  # trials killed with at least one such request of the driver unanswered
            for k in {"write" if k.startswith("write") else k for k in t["inflight"]}:
                inflight_kills[k] = inflight_kills.get(k, 0) + 1
        summary = {"trials": len(trials), "acknowledged": r["acked"], "in_doubt": r["doubt"],
                   "refused": ledger.refused, "lost": r["lost"], "duplicated": r["duplicated"],
                   "unknown": r["unknown"], "agg_mismatch": r["agg_mismatch"],
                   "kills_with_in_flight": inflight_kills, "work_done": cold, "wall_s": round(wall, 1),
                   "log": a.log, "log_sync": a.log_sync, "seed": seed, "binary": binary}
        print()
        print(f"trials {summary['trials']}  acknowledged {summary['acknowledged']}  lost {summary['lost']}  "
              f"duplicated {summary['duplicated']}  (in doubt {summary['in_doubt']}, refused {ledger.refused}, "
              f"unknown {summary['unknown']})  wall {wall:.1f} s")
        print(f"kills with in flight: {inflight_kills}")
        print(f"work done before the kills (sum over runs): {cold}")
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"summary": summary, "trials": trials}, f, indent=1)
    except RuntimeError as e:
        print(f"setup failed: {e}", file=sys.stderr)
        failed = None
    finally:
        node.stop()
        if broker_proc:
            broker_proc.kill()
            broker_proc.wait()
        if a.keep or failed is not False:
            print(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(2 if failed is None else 1 if failed else 0)


if __name__ == "__main__":
    main()
