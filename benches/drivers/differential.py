#!/usr/bin/env python3
"""Differential test: random series and random PromQL, Strata against a real Prometheus.

    python3 benches/drivers/differential.py --strata-bin $CARGO_TARGET_DIR/debug/strata \
        --seed 1 --series 40 --queries 400 --budget-s 60 --out /tmp/diff

Data (one seed decides everything): counters with resets, gauges (with the
odd plain NaN), series with gaps longer than the 5 m lookback, series that
end with Prometheus staleness markers and resume, all at jittered
millisecond timestamps. Strata gets every sample over Prometheus remote
write (staleness markers bit for bit) and a few gauges over line protocol,
in shuffled batches (out-of-order writes); Prometheus 2.42 (Debian) gets
every series without staleness markers through
`promtool tsdb create-blocks-from openmetrics` (as peer-bench backfills it)
and the series with staleness markers through its own remote-write
receiver (OpenMetrics cannot express a staleness marker), into the
out-of-order head (`out_of_order_time_window`) because they are older than
the backfilled blocks.

Queries come from a typed PromQL grammar (selectors with = != =~ !~, range
functions, aggregations with by/without, binary operators with
on/ignoring/group_left, bool and filtering comparisons, scalar functions,
offset, @, subqueries), as instant and range queries. Answers are compared
within 1e-6 (relative, or 1e-9 absolute), NaN == NaN, label sets equal.

The known differences between Prometheus 2.42 and the Prometheus 3
semantics Strata follows are listed in docs/prometheus-differences.md;
this harness accounts for each one (see KNOWN below: avoided by
construction, modelled and checked, or not generated) and counts what it
accounted for as "known-difference", apart from "equal". Strata bugs it
found are EXPECTED_FAILURES (each a regression case in
server/tests/it/differential.rs), matched by signature and counted as
"expected-failure". Every other difference is an unlisted mismatch: it is
written with its repro (seed, data end, query, parameters, both answers, a
command line) to <out>/mismatches.jsonl, with every other non-equal
query, and the exit status is 1.

    # CI size (server/tests/it/differential.rs)
    python3 benches/drivers/differential.py --strata-bin .../strata --seed 7 --series 40 --queries 4000 --budget-s 45
    # long, on demand
    python3 benches/drivers/differential.py --strata-bin .../strata --seed 42 --series 80 --queries 10000000 --budget-s 600
    # the queries of a mismatches file again, on the same data
    python3 benches/drivers/differential.py --seed 42 --series 80 --data-end-ms <data_end_ms> --replay mismatches.jsonl

Standard library only.
"""
import argparse
import json
import math
import os
import random
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

STALE_NAN_BITS = 0x7FF0000000000002
NORMAL_NAN_BITS = 0x7FF8000000000001  # Prometheus's value.NormalNaN
STEP_MS = 15_000  # nominal sample interval
SPAN_MS = 2 * 3600 * 1000  # data span
RTOL, ATOL = 1e-6, 1e-9

# The known differences, each accounted for by the harness (docs/prometheus-differences.md).
KNOWN = {
    "left-open": "range selectors and the lookback window are left-open in Prometheus 3, closed in 2.42: "
    "avoided by construction, no sample ever sits on a boundary (sample timestamps % 250 ms != 0; evaluation "
    "times, ranges, offsets, @ and subquery steps on the 250 ms grid)",
    "extrapolation": "rate/increase: Prometheus >= 2.51 caps the start extrapolation at the counter's zero point "
    "after the half-interval rule, 2.42 before it; the harness recomputes both rules on the windows the query "
    "reads and classifies a mismatch only when the two rules disagree on one of them",
    "name": "__name__ kept or dropped differently (values and the other labels equal)",
    "stddev-nan": "stddev/stdvar aggregation of a group whose first sample is NaN or Inf: NaN in Prometheus 3, "
    "0 in 2.42 (only Strata NaN against Prometheus 0 or a finite value derived from it is accepted)",
    "at-range-query": "a range query over predict_linear of an @-pinned range: 2.42 answers with too few points "
    "and values that disagree with its own instant queries; there the harness compares Strata with 2.42's "
    "instant queries step by step; inside a subquery (which 2.42 evaluates as a range query) it is not generated",
    "float-step": "ceil/floor/round/sgn of a value, or a counter-reset/changes test over subquery points, "
    "that both sides compute within 1e-6 but not bit for bit (2.42's incremental means vs 3's "
    "Kahan-compensated sums): accepted when the argument is equal within 1e-6 on both sides and the "
    "function of it is not",
    "float-conditioning": "stddev/stdvar of values with a large mean and a small spread (e.g. timestamps): the "
    "one-pass variance depends on the order of the series; accepted within 4·n·eps·|mean|·sigma on the variance",
    "timestamp-at-offset": "timestamp(<selector> offset o @ t): Prometheus (2.42 and 3) replaces the selector's "
    "offset with (step - t) and so ignores o (special case for issue 8433); Strata applies o. Not generated",
    "binop-filter-cardinality": "a filtering comparison between vectors (==, !=, >, <, >=, <= without bool): "
    "Prometheus 3.9+ (and Strata) run the matching checks ('multiple matches for labels: many-to-one matching "
    "must be explicit', '... grouping labels must ensure unique matches') on every matched pair and then drop "
    "the filtered ones; 2.42 (and 3.0-3.8) drop them first. Checked: Strata errors on the comparison itself, "
    "2.42 answers it, and 2.42 errors the same way on its bool form, which keeps every pair",
    "ties": "topk/bottomk among equal values: which series wins is implementation-defined; accepted when the "
    "sorted values at every timestamp are equal",
}

# Strata bugs the harness found (expected failures; each is a named regression case in
# server/tests/it/differential.rs). Matched by signature, counted apart, never equal.
EXPECTED_FAILURES = {
    # Fixed in 5d4df79, their regression cases now plain assertions, so a recurrence counts as a mismatch:
    # binop-empty-side, count-values-label-clash, absent-matcher-order (docs/prometheus-differences.md).
}


# ---------------------------------------------------------------------------
# data


COUNTERS = ["dc_requests_total", "dc_bytes_total"]
GAUGES = ["dg_temp", "dg_load"]
LP_GAUGE = ("dl", "level")  # line protocol measurement,field -> metric dl_level
LP_METRIC = "dl_level"
METRICS = COUNTERS + GAUGES + [LP_METRIC]
GROUPS = ["a", "b", "c"]
ZONES = ["z1", "z2"]


def jitter_ts(rng, t):
    """A timestamp near t that is not a multiple of 250 ms (never on an evaluation boundary)."""
    while True:
        x = t + rng.randint(-3000, 3000)
        if x % 250 != 0:
            return x


class Series:
    def __init__(self, metric, labels, kind, samples, channel_strata, channel_prom):
        self.metric = metric
        self.labels = labels  # without __name__
        self.kind = kind
        self.samples = samples  # [(ts_ms, float)], sorted; stale markers are float NaN with STALE bits
        self.channel_strata = channel_strata  # "rw" | "lp"
        self.channel_prom = channel_prom  # "om" | "rw"

    def all_labels(self):
        d = dict(self.labels)
        d["__name__"] = self.metric
        return d


def is_stale(v):
    return isinstance(v, float) and math.isnan(v) and struct.unpack("<Q", struct.pack("<d", v))[0] == STALE_NAN_BITS


def stale_nan():
    return struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]


def normal_nan():
    return struct.unpack("<d", struct.pack("<Q", NORMAL_NAN_BITS))[0]


def gen_data(seed, n_series, end_ms):
    rng = random.Random(seed)
    start = end_ms - SPAN_MS
    series = []
    used = set()
    for i in range(n_series):
        metric = METRICS[i % len(METRICS)]
        while True:
            labels = {"inst": "i%d" % rng.randint(0, 7), "grp": rng.choice(GROUPS)}
            if rng.random() < 0.7:
                labels["zone"] = rng.choice(ZONES)
            key = (metric, tuple(sorted(labels.items())))
            if key not in used:
                used.add(key)
                break
        counter = metric in COUNTERS
        shape = rng.choice(["dense", "dense", "gappy", "stale"]) if metric != LP_METRIC else rng.choice(["dense", "gappy"])
        interval = rng.choice([STEP_MS, STEP_MS, 10_000, 30_000, 60_000])
        samples = []
        v = rng.uniform(0, 1000) if counter else rng.uniform(-50, 50)
        t = start + rng.randint(0, 5 * 60_000)
        gap_until = -1
        stale_at = []
        while t < end_ms:
            if shape == "gappy" and gap_until < 0 and rng.random() < 0.01:
                gap_until = t + rng.randint(2, 12) * 60_000  # gaps of 2..12 minutes (beyond the lookback)
            if gap_until >= 0 and t < gap_until:
                t += interval
                continue
            gap_until = -1
            ts = jitter_ts(rng, t)
            if samples and ts <= samples[-1][0]:
                ts = samples[-1][0] + 1
                if ts % 250 == 0:
                    ts += 1
            if counter:
                if rng.random() < 0.02:
                    v = rng.choice([0.0, rng.uniform(0, 20)])  # reset
                else:
                    v += rng.choice([0.0, rng.uniform(0, 30), float(rng.randint(0, 5))])
                val = round(v, 3)
            else:
                v += rng.gauss(0, 3)
                val = round(v, rng.choice([0, 2, 6]))
                if metric != LP_METRIC and rng.random() < 0.003:
                    val = normal_nan()
            samples.append((ts, val))
            if shape == "stale" and rng.random() < 0.015:
                # The series disappears: a staleness marker shortly after its last sample, then a pause.
                st = ts + rng.randint(1, interval // 2)
                if st % 250 == 0:
                    st += 1
                samples.append((st, stale_nan()))
                stale_at.append(st)
                t += rng.randint(1, 8) * 60_000
                continue
            t += interval
        if len(samples) < 2:
            samples = [(start + 1001, 1.0), (start + 61_001, 2.0)]
        chan_s = "lp" if metric == LP_METRIC else "rw"
        chan_p = "rw" if stale_at else "om"
        series.append(Series(metric, labels, "counter" if counter else "gauge", samples, chan_s, chan_p))
    return series


# ---------------------------------------------------------------------------
# wire formats


def _varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field_bytes(num, data):
    return _varint(num << 3 | 2) + _varint(len(data)) + data


def encode_write_request(series_list):
    """prometheus.WriteRequest protobuf: [(labels dict with __name__, [(ts, value)])]."""
    out = bytearray()
    for labels, samples in series_list:
        ts = bytearray()
        for k in sorted(labels):
            ts += _field_bytes(1, _field_bytes(1, k.encode()) + _field_bytes(2, labels[k].encode()))
        for t, v in samples:
            body = bytes([0x09]) + struct.pack("<d", v) + bytes([0x10]) + _varint(t)
            ts += _field_bytes(2, body)
        out += _field_bytes(1, bytes(ts))
    return bytes(out)


def snappy_block(data):
    """Snappy block format with literals only (valid, uncompressed)."""
    out = bytearray(_varint(len(data)))
    for i in range(0, len(data), 65536):
        chunk = data[i:i + 65536]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)
        else:
            out.append(61 << 2)
            out += struct.pack("<H", n)
        out += chunk
    return bytes(out)


def fmt_float(v):
    if math.isnan(v):
        return "NaN"
    return repr(float(v))


def om_ts(ms):
    return "%d.%03d" % divmod(ms, 1000)


def write_openmetrics(series, path):
    by_metric = {}
    for s in series:
        if s.channel_prom == "om":
            by_metric.setdefault(s.metric, []).append(s)
    with open(path, "w") as f:
        for metric in sorted(by_metric):
            f.write("# TYPE %s %s\n" % (metric, "gauge"))
            for s in by_metric[metric]:
                lbl = ",".join('%s="%s"' % kv for kv in sorted(s.labels.items()))
                for t, v in s.samples:
                    f.write("%s{%s} %s %s\n" % (metric, lbl, fmt_float(v), om_ts(t)))
        f.write("# EOF\n")


# ---------------------------------------------------------------------------
# processes and HTTP


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def http(method, url, body=None, headers=None, timeout=60):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_ready(url, proc, name, log, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit("%s exited (rc %s) before it was ready; log %s:\n%s" % (name, proc.returncode, log, tail(log)))
        try:
            st, _ = http("GET", url, timeout=2)
            if st == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("%s not ready after %ds; log %s:\n%s" % (name, timeout, log, tail(log)))


def tail(path, n=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def start_strata(a, tmp):
    port = free_port()
    data = os.path.join(tmp, "strata")
    os.makedirs(data, exist_ok=True)
    log = os.path.join(tmp, "strata.log")
    env = dict(os.environ, STRATA_COLD__ENABLED="false", RUST_LOG=os.environ.get("RUST_LOG", "warn"))
    proc = subprocess.Popen([a.strata_bin, "serve", "--http-addr", "127.0.0.1:%d" % port, "--data-dir", data],
                            stdout=subprocess.DEVNULL, stderr=open(log, "w"), env=env)
    base = "http://127.0.0.1:%d" % port
    wait_ready(base + "/-/ready", proc, "strata", log)
    return proc, base


def start_prometheus(a, tmp, om_path):
    tsdb = os.path.join(tmp, "prom")
    os.makedirs(tsdb, exist_ok=True)
    cfg = os.path.join(tmp, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1m\n  evaluation_interval: 1m\nscrape_configs: []\n"
                "storage:\n  tsdb:\n    out_of_order_time_window: 30d\n")
    log = os.path.join(tmp, "promtool.log")
    r = subprocess.run([a.promtool_bin, "tsdb", "create-blocks-from", "openmetrics", "--quiet", om_path, tsdb],
                       stdout=open(log, "w"), stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise SystemExit("promtool backfill failed (rc %d):\n%s" % (r.returncode, tail(log)))
    port = free_port()
    log = os.path.join(tmp, "prometheus.log")
    proc = subprocess.Popen([a.prometheus_bin, "--config.file=" + cfg, "--storage.tsdb.path=" + tsdb,
                             "--storage.tsdb.retention.time=100y", "--web.listen-address=127.0.0.1:%d" % port,
                             "--web.enable-remote-write-receiver", "--query.max-samples=100000000",
                             "--query.timeout=30s", "--log.level=warn"],
                            stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    base = "http://127.0.0.1:%d" % port
    wait_ready(base + "/-/ready", proc, "prometheus", log)
    return proc, base


def remote_write(base, series_list):
    body = snappy_block(encode_write_request(series_list))
    st, resp = http("POST", base + "/api/v1/write", body, {
        "Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
        "X-Prometheus-Remote-Write-Version": "0.1.0"})
    if st not in (200, 204):
        raise SystemExit("remote write to %s: %d %s" % (base, st, resp[:500]))


def lp_escape(s):
    return s.replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def load_strata(base, series, rng):
    """Every sample to Strata in shuffled batches: out-of-order writes across and within requests."""
    items = []
    for s in series:
        chunk = max(5, len(s.samples) // rng.randint(2, 6))
        for i in range(0, len(s.samples), chunk):
            items.append((s, s.samples[i:i + chunk]))
    rng.shuffle(items)
    for i in range(0, len(items), 16):
        batch = items[i:i + 16]
        rw, lp = [], []
        for s, part in batch:
            part = list(part)
            if rng.random() < 0.3:
                rng.shuffle(part)  # out of order within a series in one request
            if s.channel_strata == "lp":
                tags = ",".join("%s=%s" % (lp_escape(k), lp_escape(v)) for k, v in sorted(s.labels.items()))
                for t, v in part:
                    lp.append("%s,%s %s=%s %d" % (LP_GAUGE[0], tags, LP_GAUGE[1], repr(float(v)), t))
            else:
                rw.append((s.all_labels(), part))
        if rw:
            remote_write(base, rw)
        if lp:
            st, resp = http("POST", base + "/api/v2/write?precision=ms", ("\n".join(lp) + "\n").encode())
            if st != 204:
                raise SystemExit("line protocol write: %d %s" % (st, resp[:500]))


def load_prometheus_rw(base, series, end_ms):
    rw = [(s.all_labels(), s.samples) for s in series if s.channel_prom == "rw"]
    # A sentinel sample after the backfilled blocks: the head's max time, so the
    # older samples below go to the out-of-order head instead of being out of bounds.
    remote_write(base, [({"__name__": "zz_sentinel"}, [(end_ms + 60_000, 1.0)])])
    for i in range(0, len(rw), 8):
        remote_write(base, rw[i:i + 8])


# ---------------------------------------------------------------------------
# query generator


TIMESTAMP_AT_OFFSET = re.compile(r"\btimestamp\((\{[^}]*\}|\w+(\{[^}]*\})?) offset -?\w+ @ ")
RANGES = ["30s", "1m", "90s", "2m", "5m", "10m", "17m", "30m"]
SUB_STEPS = ["10s", "15s", "30s", "1m", "2m"]
OFFSETS = ["1m", "5m", "90s", "17m", "-2m", "-30s"]


class Gen:
    def __init__(self, rng, anchor_s, lo_s):
        self.rng = rng
        self.anchor_s = anchor_s  # evaluation end, x.250 s
        self.lo_s = lo_s

    def r(self):
        return self.rng.random()

    def choice(self, xs):
        return self.rng.choice(xs)

    def matchers(self):
        ms = []
        for _ in range(self.choice([0, 0, 1, 1, 2])):
            lab = self.choice(["grp", "inst", "zone"])
            vals = {"grp": GROUPS, "inst": ["i%d" % i for i in range(8)], "zone": ZONES}[lab]
            op = self.choice(["=", "!=", "=~", "!~"])
            if op in ("=~", "!~"):
                v = self.choice([
                    "%s|%s" % (self.choice(vals), self.choice(vals)),
                    {"grp": "[ab]", "inst": "i[0-3]", "zone": "z.*"}[lab],
                    ".*", ".+", "",
                ])
            else:
                v = self.choice(vals + ([""] if lab == "zone" else []))
            ms.append('%s%s"%s"' % (lab, op, v))
        return ms

    def selector(self, kind):
        if kind == "counter":
            metric = self.choice(COUNTERS)
        elif kind == "gauge":
            metric = self.choice(GAUGES + [LP_METRIC])
        else:
            metric = self.choice(METRICS)
        ms = self.matchers()
        if self.r() < 0.08:
            ms = ['__name__=~"%s"' % ("dg_.*" if metric in GAUGES else "dc_.*total")] + ms
            return "{%s}" % ",".join(ms)
        return metric + ("{%s}" % ",".join(ms) if ms else "")

    def modifiers(self):
        s = ""
        if self.r() < 0.15:
            s += " offset " + self.choice(OFFSETS)
        if self.r() < 0.1:
            s += " @ " + self.choice(["start()", "end()", "%.3f" % (self.anchor_s - self.rng.randint(60, 3000))])
        return s

    def range_vec(self, kind, depth):
        rng_s = self.choice(RANGES)
        if depth > 0 and self.r() < 0.12:
            inner = self.inst(depth - 1, kind)
            return "(%s)[%s:%s]%s" % (inner, self.choice(["5m", "10m", "30m"]), self.choice(SUB_STEPS), self.modifiers())
        return "%s[%s]%s" % (self.selector(kind), rng_s, self.modifiers())

    def range_fn(self, depth):
        f = self.choice([
            "rate", "rate", "increase", "increase", "irate", "delta", "idelta", "resets", "changes", "deriv",
            "predict_linear", "avg_over_time", "sum_over_time", "min_over_time", "max_over_time",
            "count_over_time", "last_over_time", "stddev_over_time", "stdvar_over_time", "present_over_time",
            "quantile_over_time", "absent_over_time"])
        kind = "counter" if f in ("rate", "increase", "irate", "resets") else (
            "gauge" if f in ("delta", "idelta", "deriv", "predict_linear") else "any")
        rv = self.range_vec(kind, depth)
        if f == "predict_linear":
            return "predict_linear(%s, %d)" % (rv, self.choice([60, 300, -120, 3600]))
        if f == "quantile_over_time":
            return "quantile_over_time(%s, %s)" % (self.choice(["0", "0.25", "0.5", "0.9", "1", "1.5", "-0.5"]), rv)
        return "%s(%s)" % (f, rv)

    def grouping(self):
        labs = self.rng.sample(["grp", "inst", "zone"], self.rng.randint(0, 2))
        if self.r() < 0.3:
            return ""
        return " %s (%s)" % (self.choice(["by", "without"]), ", ".join(labs))

    def scalar(self, depth):
        x = self.r()
        if depth <= 0 or x < 0.5:
            return self.choice(["2", "0.5", "-3", "100", "0", "1e3"])
        if x < 0.65:
            return "time()"
        if x < 0.85:
            return "scalar(%s)" % self.inst(depth - 1)
        return "(%s %s %s)" % (self.scalar(depth - 1), self.choice(["+", "-", "*", "/"]), self.scalar(depth - 1))

    def inst(self, depth, kind="any"):
        x = self.r()
        if depth <= 0 or x < 0.15:
            return self.selector(kind) + self.modifiers()
        if x < 0.45:
            return self.range_fn(depth - 1)
        if x < 0.62:
            op = self.choice(["sum", "avg", "min", "max", "count", "stddev", "stdvar", "group",
                              "topk", "bottomk", "quantile", "count_values"])
            inner = self.inst(depth - 1, kind)
            if op in ("topk", "bottomk"):
                return "%s%s (%d, %s)" % (op, self.grouping(), self.choice([1, 2, 3]), inner)
            if op == "quantile":
                return "quantile%s (%s, %s)" % (self.grouping(), self.choice(["0.5", "0.9", "0", "1"]), inner)
            if op == "count_values":
                return 'count_values%s ("val", round(%s))' % (self.grouping(), inner)
            return "%s%s (%s)" % (op, self.grouping(), inner)
        if x < 0.80:
            return self.binary(depth)
        if x < 0.92:
            f = self.choice(["abs", "ceil", "floor", "round", "sqrt", "ln", "exp", "sgn", "clamp_min",
                             "clamp_max", "clamp", "timestamp", "absent", "label_replace"])
            inner = self.inst(depth - 1, kind)
            if f == "clamp_min" or f == "clamp_max":
                return "%s(%s, %s)" % (f, inner, self.choice(["0", "10", "-5"]))
            if f == "clamp":
                return "clamp(%s, -10, %s)" % (inner, self.choice(["10", "500"]))
            if f == "round":
                return "round(%s%s)" % (inner, self.choice(["", ", 0.5", ", 10"]))
            if f == "exp":
                return "exp(%s / 100)" % inner
            if f == "label_replace":
                return 'label_replace(%s, "g2", "$1-x", "grp", "(.*)")' % inner
            return "%s(%s)" % (f, inner)
        if x < 0.96:
            return "vector(%s)" % self.scalar(depth - 1)
        return "%s %s %s" % (self.inst(depth - 1, kind), self.choice(["+", "*", "-", "/", ">", "<"]),
                             self.scalar(depth - 1))

    def binary(self, depth):
        op = self.choice(["+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<=", "and", "or", "unless"])
        lhs, rhs = self.inst(depth - 1), self.inst(depth - 1)
        mod = ""
        if op in ("==", "!=", ">", "<", ">=", "<=") and self.r() < 0.5:
            mod += " bool"
        y = self.r()
        if y < 0.3:
            mod += " on (%s)" % ", ".join(self.rng.sample(["grp", "inst", "zone"], self.rng.randint(0, 2)))
        elif y < 0.5:
            mod += " ignoring (%s)" % ", ".join(self.rng.sample(["grp", "inst", "zone"], self.rng.randint(1, 2)))
        if mod and op not in ("and", "or", "unless") and self.r() < 0.3:
            mod += " group_left" + self.choice(["", " (zone)"])
        if op == "^":
            rhs = self.choice(["2", "0.5"])
            mod = ""
        return "(%s) %s%s (%s)" % (lhs, op, mod, rhs)

    def query(self):
        while True:
            q = self.inst(self.choice([1, 2, 2, 3]))
            # KNOWN["timestamp-at-offset"]: not generated.
            if TIMESTAMP_AT_OFFSET.search(q):
                continue
            # KNOWN["at-range-query"] inside a subquery (2.42 evaluates it as a range query): not generated.
            if any(" @ " in sub and _in_subquery(q, q.index(sub)) for sub in _agg_calls(q, ("predict_linear",))):
                continue
            return q


# ---------------------------------------------------------------------------
# the extrapolation model (KNOWN["extrapolation"])


def _extrapolated(w, start_ms, end_ms, new_rule):
    """Prometheus's extrapolatedRate for increase on a counter (the rate factor cancels out), both rules."""
    first, last = w[0], w[-1]
    result = last[1] - first[1]
    for a, b in zip(w, w[1:]):
        if b[1] < a[1]:
            result += a[1]
    to_start = (first[0] - start_ms) / 1000.0
    to_end = (end_ms - last[0]) / 1000.0
    sampled = (last[0] - first[0]) / 1000.0
    avg = sampled / (len(w) - 1)
    thr = avg * 1.1
    if new_rule:
        if to_start >= thr:
            to_start = avg / 2
        if result > 0 and first[1] >= 0:
            to_start = min(to_start, sampled * (first[1] / result))
    else:
        if result > 0 and first[1] >= 0:
            to_start = min(to_start, sampled * (first[1] / result))
        if to_start >= thr:
            to_start = avg / 2
    if to_end >= thr:
        to_end = avg / 2
    return result * (sampled + to_start + to_end) / sampled


DUR = re.compile(r"^(-?)(\d+)(ms|s|m|h|d)$")


def dur_ms(s):
    m = DUR.match(s)
    return (-1 if m.group(1) else 1) * int(m.group(2)) * {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000,
                                                          "d": 86_400_000}[m.group(3)]


def match_labels(ms_text, s):
    lbl = s.all_labels()
    for m in re.finditer(r'(\w+)(=~|!~|!=|=)"([^"]*)"', ms_text):
        k, op, v = m.groups()
        x = lbl.get(k, "")
        if op == "=" and x != v or op == "!=" and x == v:
            return False
        if op == "=~" and not re.fullmatch(v, x) or op == "!~" and re.fullmatch(v, x):
            return False
    return True


def _calls(query):
    """(argument text, position) of every rate( / increase( call, its argument balanced."""
    for m in re.finditer(r"\b(rate|increase)\(", query):
        j, depth = m.end(), 1
        while j < len(query) and depth:
            c = query[j]
            if c == '"':
                j = query.index('"', j + 1)
            elif c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
            j += 1
        yield query[m.end():j - 1], m.start()


def _in_subquery(query, pos):
    pairs, _ = _paren_pairs(query)
    return any(o < pos < c and re.match(r"\[\w+:\w*\]", query[c + 1:]) for o, c in pairs.items())


def _subquery_grid(params):
    """Query parameters for an expression inside a subquery: it is evaluated at multiples of the
    subquery step (10 s .. 2 m) up to 30 m + 17 m before the query's first time, so a 5 s grid over
    that span covers every one."""
    first = float(params.get("start", params.get("time")))
    last = float(params.get("end", params.get("time")))
    return {"start": "%d" % (int(first - 4000) // 5 * 5), "end": "%d" % (int(last) // 5 * 5), "step": "5"}


TAIL = re.compile(r"\[(\w+)(:\w*)?\]( offset (-?\w+))?( @ ([\w.()]+))?$")


def extrapolation_hits(query, series, eval_times_ms, pbase, params):
    """Where the 2.42 and the >= 2.51 rules of rate/increase disagree on a window this query reads:
    [(labels, window end ms)]. A call outside any subquery: its argument (selector or subquery) is
    evaluated by Prometheus at each of the query's times and both rules are applied to the points it
    returns. A call inside a subquery, on a plain selector: the generated samples are checked at every
    window end where the window's contents change (a superset of the windows read)."""
    hits = []
    for arg, pos in _calls(query):
        m = TAIL.search(arg)
        if not m:
            continue
        rng_ms = dur_ms(m.group(1))
        off_ms = dur_ms(m.group(4)) if m.group(4) else 0
        at = m.group(6)
        if not _in_subquery(query, pos):
            first = float(params.get("start", params.get("time")))
            last = float(params.get("end", params.get("time")))
            at_ms = None
            if at:
                at_s = first if at == "start()" else last if at == "end()" else float(at)
                at_ms = int(round(at_s * 1000))
                arg = arg[:m.start(5)] + " @ %.3f" % at_s + arg[m.end(5):]
            seen = set()
            for t in eval_times_ms[:400]:
                e = (at_ms if at_ms is not None else t) - off_ms
                if e in seen:
                    continue
                seen.add(e)
                doc = run_query(pbase, arg, {"time": "%.3f" % (t / 1000)})
                if doc.get("status") != "success" or doc["data"]["resultType"] != "matrix":
                    continue
                for s in doc["data"]["result"]:
                    w = [(int(round(float(x) * 1000)), float(v)) for x, v in s["values"]]
                    if len(w) < 2:
                        continue
                    a, b = _extrapolated(w, e - rng_ms, e, False), _extrapolated(w, e - rng_ms, e, True)
                    if not close(a, b):
                        hits.append((s["metric"], e))
                        break
                if hits:
                    return hits
            continue
        if m.group(2) or at:
            continue  # a subquery or an @ inside a subquery: not modelled, the mismatch stays a mismatch
        sel = arg[:m.start()]
        name = re.match(r"\w*", sel).group(0)
        ms_text = sel[len(name):]
        lo = min(eval_times_ms) - 3_600_000 - off_ms
        hi = max(eval_times_ms) + 3_600_000
        for s in series:
            if name and s.metric != name or not match_labels(ms_text, s):
                continue
            pts = [(t, v) for t, v in s.samples if not math.isnan(v)]
            es = sorted({t + 1 for t, _ in pts} | {t + rng_ms + 1 for t, _ in pts})
            for e in (e for e in es if lo <= e <= hi):
                w = [p for p in pts if e - rng_ms < p[0] <= e]
                if len(w) < 2:
                    continue
                if not close(_extrapolated(w, e - rng_ms, e, False), _extrapolated(w, e - rng_ms, e, True)):
                    hits.append((s.all_labels(), e))
                    return hits
    return hits


# ---------------------------------------------------------------------------
# comparison


def close(x, y):
    if isinstance(x, str) or isinstance(y, str):
        return x == y
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    if x == y:
        return True
    return abs(x - y) <= RTOL * max(abs(x), abs(y)) or abs(x - y) <= ATOL


def norm(doc):
    if doc.get("status") != "success":
        return "error", doc.get("error", "")
    data = doc["data"]
    typ, res = data["resultType"], data["result"]
    out = {}

    def key(metric):
        k = tuple(sorted(metric.items()))
        n = 1
        while k in out:  # the same label set twice in one answer: never equal to an answer without it
            k = tuple(sorted(metric.items())) + (("~duplicate", str(n)),)
            n += 1
        return k
    if typ == "vector":
        for s in res:
            out[key(s["metric"])] = [(float(s["value"][0]), float(s["value"][1]))]
    elif typ == "matrix":
        for s in res:
            out[key(s["metric"])] = [(float(t), float(v)) for t, v in s["values"]]
    elif typ == "scalar":
        out[()] = [(float(res[0]), float(res[1]))]
    else:
        out[()] = [(float(res[0]), res[1])]
    return typ, out


def diff_maps(a, b):
    if set(a) != set(b):
        miss, extra = sorted(set(a) - set(b)), sorted(set(b) - set(a))
        return "%d series vs %d; only in prometheus: %s; only in strata: %s" % (
            len(a), len(b), [dict(k) for k in miss[:2]], [dict(k) for k in extra[:2]])
    for k in sorted(a):
        pa, pb = a[k], b[k]
        if len(pa) != len(pb):
            ta, tb = {t for t, _ in pa}, {t for t, _ in pb}
            return "%s: %d vs %d points (only prometheus at %s, only strata at %s)" % (
                dict(k), len(pa), len(pb), sorted(ta - tb)[:3], sorted(tb - ta)[:3])
        for (ta, va), (tb, vb) in zip(pa, pb):
            if abs(ta - tb) > 0.0005:
                return "%s: timestamp %.3f vs %.3f" % (dict(k), ta, tb)
            if not close(va, vb):
                return "%s: value %r vs %r at %.3f" % (dict(k), va, vb, ta)
    return None


def compare(pdoc, sdoc):
    """(status, detail): equal | name | mismatch."""
    pt, po = norm(pdoc)
    st, so = norm(sdoc)
    if pt == "error" or st == "error":
        if pt == st:
            return "equal", "both errors"
        return "mismatch", "prometheus %s: %s / strata %s: %s" % (
            pt, po if pt == "error" else "ok", st, so if st == "error" else "ok")
    if pt != st:
        return "mismatch", "result type %s vs %s" % (pt, st)
    d = diff_maps(po, so)
    if d is None:
        return "equal", ""

    def strip(m):
        o = {}
        for k, v in m.items():
            o.setdefault(tuple(x for x in k if x[0] != "__name__"), v)
        return o
    sa, sb = strip(po), strip(so)
    if len(sa) == len(po) and len(sb) == len(so) and diff_maps(sa, sb) is None:
        return "name", "equal but for __name__: " + d
    return "mismatch", d


def _per_ts_values(m):
    out = {}
    for pts in m.values():
        for t, v in pts:
            out.setdefault(round(t, 3), []).append(v)
    return {t: sorted(vs, key=lambda x: (math.isnan(x), x)) for t, vs in out.items()}


def _values_close(a, b, nan_ok):
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if not (close(x, y) or nan_ok and math.isnan(y)):
            return False
    return True


def _std_explained(q, params, pbase, sbase, pdoc, sdoc):
    """Evaluate every stddev/stdvar aggregation of the query on both sides. The mismatch is explained when
    they differ, and only by (a) Strata answering NaN where 2.42 answers 0 (KNOWN["stddev-nan"]) or (b) a
    difference within the rounding error of the one-pass variance, which the
    order of the series decides: Welford's update rounds x - mean at eps·|mean| each step, so the variance
    is good to about 2·eps·|mean|·sigma; accepted within 4·n·eps·|mean|·sigma (KNOWN["float-conditioning"];
    e.g. stdvar of timestamps: mean 1.8e9, sigma 0.1)."""
    nan = cond = False
    for sub in _agg_calls(q, ("stddev", "stdvar")):
        p = params
        if _in_subquery(q, q.index(sub)):
            p = _subquery_grid(params)
        if sub == q.strip():
            # The query itself: its answers as compared (2.42's may change when asked again, see below).
            (_, pa), (_, sa) = norm(pdoc), norm(sdoc)
        else:
            _, pa = norm(run_query(pbase, sub, p))
            _, sa = norm(run_query(sbase, sub, p))
        if not isinstance(pa, dict) or not isinstance(sa, dict) or set(pa) != set(sa):
            return None
        op = "stddev" if sub.startswith("stddev") else "stdvar"
        stats = None
        for k in pa:
            if len(pa[k]) != len(sa[k]):
                return None
            for (ta, va), (tb, vb) in zip(pa[k], sa[k]):
                if ta != tb:
                    return None
                if close(va, vb):
                    continue
                if math.isnan(vb) and va == 0:
                    nan = True
                    continue
                if stats is None:
                    _, mean = norm(run_query(pbase, "avg" + sub[len(op):], p))
                    _, cnt = norm(run_query(pbase, "count" + sub[len(op):], p))
                    if not isinstance(mean, dict) or not isinstance(cnt, dict):
                        return None
                    stats = (mean, cnt)
                m = dict(stats[0].get(k, [])).get(ta)
                n = dict(stats[1].get(k, [])).get(ta)
                if m is None or n is None:
                    return None
                sigma = max(abs(va), abs(vb)) if op == "stddev" else math.sqrt(max(abs(va), abs(vb)))
                bound = 4 * n * 2.2e-16 * abs(m) * sigma
                err = abs(va * va - vb * vb) if op == "stddev" else abs(va - vb)
                if err > bound:
                    return None
                cond = True
    if nan:
        return "stddev-nan", "stddev/stdvar: Strata NaN where 2.42 answers 0 (a group whose first sample is NaN)"
    if cond:
        return "float-conditioning", "stddev/stdvar within the rounding error of the one-pass variance"
    # Every aggregation agreed this time: 2.42 adds a group's series in an order that changes between
    # evaluations (found: stddev by (inst) (timestamp(dc_bytes_total)) answering 0.09499984979627647 and
    # 0.09499996900556602 by turns, Strata always the second). Explained when 2.42's own answer to the
    # query, asked again, now equals Strata's.
    for _ in range(4):
        if compare(run_query(pbase, q, params), sdoc)[0] == "equal":
            return "float-conditioning", "2.42's answer changes between evaluations; asked again it equals Strata's"
    return None


def _count_values_labels_close(q, po, so):
    """count_values turns each value into a label (Go's strconv.FormatFloat(v, 'f', -1, 64)): a value both
    sides compute within 1e-6 but not bit for bit (e.g. exp() one ulp apart) makes a different label. The
    mismatch is explained so when the answers pair up series by series with every other label equal, the labels
    count_values set equal as numbers within 1e-6, and the points equal."""
    names = set(re.findall(r'\bcount_values\b[^(]*\(\s*"([^"]+)"', q))
    if not names or not isinstance(po, dict) or not isinstance(so, dict) or len(po) != len(so):
        return None

    def keyed(m):
        out = []
        for k, pts in m.items():
            rest = tuple(kv for kv in k if kv[0] not in names)
            try:
                vals = tuple(float(v) for n, v in k if n in names)
            except ValueError:
                return None
            out.append((rest, vals, pts))
        return sorted(out, key=lambda x: (x[0], x[1]))

    a, b = keyed(po), keyed(so)
    if a is None or b is None:
        return None
    differ = 0
    for (ra, va, pa), (rb, vb, pb) in zip(a, b):
        if ra != rb or len(va) != len(vb) or not all(close(x, y) for x, y in zip(va, vb)):
            return None
        if diff_maps({(): pa}, {(): pb}) is not None:
            return None
        differ += va != vb
    return differ and "count_values labels of %d series are values equal within 1e-6, not bit for bit" % differ


def _agg_calls(q, names):
    """The full text of every aggregation call named in names (with its by/without clause)."""
    for m in re.finditer(r"\b(%s)\b\s*(?:(?:by|without)\s*\([^)]*\)\s*)?\(" % "|".join(names), q):
        j, depth = m.end(), 1
        while j < len(q) and depth:
            c = q[j]
            if c == '"':
                j = q.index('"', j + 1)
            elif c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
            j += 1
        yield q[m.start():j]


def _topk_args(q):
    """The vector argument of every topk/bottomk call."""
    for m in re.finditer(r"\b(topk|bottomk)\b[^(]*(\([^)]*\))?\s*\(", q):
        j, depth, comma = m.end(), 1, None
        while j < len(q) and depth:
            c = q[j]
            if c == '"':
                j = q.index('"', j + 1)
            elif c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
            elif c == "," and depth == 1 and comma is None:
                comma = j
            j += 1
        if comma is not None:
            yield q[comma + 1:j - 1].strip()


def _has_ties(pbase, expr, params):
    doc = run_query(pbase, expr, params)
    if doc.get("status") != "success":
        return False
    _, m = norm(doc)
    for vs in _per_ts_values(m).values():
        # NaN equals NaN here as everywhere in the comparison: which of two NaNs topk/bottomk keeps is
        # implementation-defined too (found: bottomk without (inst) (1, stdvar_over_time(...)) of two
        # NaN series, 2.42 keeping one, Strata the other).
        if any(a == b or math.isnan(a) and math.isnan(b) for a, b in zip(vs, vs[1:])):
            return True
    return False


def _tied_topk_arg(q, params, pbase):
    """The first topk/bottomk argument of q that has equal values among its series on 2.42 (inside a
    subquery: at every subquery step, a 5 s grid over the span it reads), or None."""
    for inner in _topk_args(q):
        p = _subquery_grid(params) if _in_subquery(q, q.index(inner)) else params
        if _has_ties(pbase, inner, p):
            return inner
    return None


def classify(q, params, times, pdoc, sdoc, series, pbase, sbase):
    """Which known difference (or expected failure) explains a mismatch: (name, detail) or (None, None)."""
    pt, po = norm(pdoc)
    st, so = norm(sdoc)
    if pt != "error" and st == "error" and "multiple matches for labels" in so:
        why = _filter_cardinality_explained(q, params, so, pbase, sbase)
        if why:
            return "binop-filter-cardinality", why
    if "step" in params and "predict_linear" in q and " @ " in q:
        # predict_linear is @-unsafe (AtModifierUnsafeFunctions): a range query is its instant queries
        # step by step. 2.42's range query is not; its instant queries are the oracle here.
        res = []
        by = {}
        q1 = q.replace("@ start()", "@ " + params["start"]).replace("@ end()", "@ " + params["end"])
        for t in times[:400]:
            doc = run_query(pbase, q1, {"time": "%.3f" % (t / 1000)})
            if st == "error" and doc.get("status") != "success" and doc.get("error") == so:
                # Strata's range query fails as 2.42's instant query at one of its steps does (2.42's
                # range query lacks the points that meet the error).
                return "at-range-query", "2.42's instant query at %.3f fails as Strata does" % (t / 1000)
            if doc.get("status") != "success" or doc["data"]["resultType"] != "vector":
                by = None
                break
            for x in doc["data"]["result"]:
                by.setdefault(json.dumps(x["metric"], sort_keys=True), []).append(x["value"])
        if by is not None and len(times) <= 400:
            res = [{"metric": json.loads(k), "values": v} for k, v in by.items()]
            built = {"status": "success", "data": {"resultType": "matrix", "result": res}}
            st2, d2 = compare(built, sdoc)
            if st2 != "mismatch":
                return "at-range-query", "Strata equals Prometheus 2.42's instant queries step by step"
            if st != "error" and re.search(r"\b(rate|increase)\(", q):
                # Both at once: every series where 2.42's instant queries step by step still differ from
                # Strata reads a rate/increase window that the two extrapolation rules disagree on.
                _, pi = norm(built)
                _, si = norm(sdoc)
                differing = [k for k in set(pi) | set(si) if diff_maps({k: pi.get(k, [])}, {k: si.get(k, [])})]
                hits = [extrapolation_hits(q, [x for x in series if sorted(x.labels.items()) ==
                                               sorted(kv for kv in k if kv[0] != "__name__")], times, pbase, params)
                        for k in differing]
                if differing and all(hits):
                    return "extrapolation", (
                        "compared with 2.42's instant queries step by step (at-range-query), each of %d differing "
                        "series reads a window where 2.42 and >= 2.51 extrapolation disagree" % len(differing))
            if st != "error" and re.search(r"\bstd(dev|var)\s*(\(|by|without)", q):
                # Both at once: a stddev/stdvar difference (e.g. stddev-nan: predict_linear's NaN makes 3
                # answer NaN where 2.42 answers 0) between Strata and 2.42's instant queries step by step.
                why = _std_explained(q, params, pbase, sbase, built, sdoc)
                if why:
                    return why[0], why[1] + " (compared with 2.42's instant queries step by step: at-range-query)"
        return None, None
    if (pt == "error") != (st == "error") and re.search(r"\b(topk|bottomk)\b", q):
        # A tie decides which series topk/bottomk keep, and so whether an operator further up meets
        # duplicate match groups (found: `... * ignoring (inst, grp) group_left (zone) (count without ()
        # (topk by () (3, dg_load{grp!="a"})))`, Strata failing on the series its tie-break kept).
        inner = _tied_topk_arg(q, params, pbase)
        if inner:
            return "ties", "one side fails; a topk/bottomk argument has equal values among its series: %s" % inner
    if pt == "error" or st == "error" or pt != st:
        return None, None
    if re.search(r"\b(topk|bottomk)\b", q):
        a, b = _per_ts_values(po), _per_ts_values(so)
        if set(a) == set(b) and all(_values_close(a[t], b[t], False) for t in a):
            return "ties", "same sorted values at every timestamp"
        inner = _tied_topk_arg(q, params, pbase)
        if inner:
            return "ties", "a topk/bottomk argument has equal values among its series: %s" % inner
    if re.search(r"\bstd(dev|var)\s*(\(|by|without)", q):
        why = _std_explained(q, params, pbase, sbase, pdoc, sdoc)
        if why:
            return why
    if "count_values" in q:
        why = _count_values_labels_close(q, po, so)
        if why:
            return "float-step", why
    if re.search(r"\b(ceil|floor|round|sgn)\(", q):
        # A step function of a value both sides compute within 1e-6 but not bit for bit (2.42's
        # incremental mean vs 3's Kahan sums): the last bits decide on which side of the step it lands.
        for sub in _agg_calls(q, ("ceil", "floor", "round", "sgn")):
            inner = sub[sub.index("(") + 1:-1]
            if sub.startswith("round") and "," in inner:
                continue
            a, b = run_query(pbase, inner, params), run_query(sbase, inner, params)
            if compare(a, b)[0] == "equal" and compare(run_query(pbase, sub, params),
                                                       run_query(sbase, sub, params))[0] != "equal":
                return "float-step", "%s: argument equal within 1e-6, the step function is not" % sub
    for sub in _agg_calls(q, ("rate", "increase", "irate", "resets", "changes")):
        # A counter-reset test (v[i] < v[i-1]) or changes' v[i] != v[i-1] over subquery points both sides
        # compute within 1e-6 but not bit for bit (2.42's incremental avg_over_time vs 3's Kahan sum: e.g.
        # -38.38100865 then -38.381008650000005 is a "reset" for 2.42 only).
        arg = sub[sub.index("(") + 1:-1]
        m = TAIL.search(arg)
        if not m or not m.group(2) or _in_subquery(q, q.index(sub)):
            continue
        first = float(params.get("start", params.get("time")))
        last = float(params.get("end", params.get("time")))
        if m.group(6):
            at_s = first if m.group(6) == "start()" else last if m.group(6) == "end()" else float(m.group(6))
            arg = arg[:m.start(5)] + " @ %.3f" % at_s + arg[m.end(5):]
            sub = sub[:sub.index("(") + 1] + arg + ")"
        differs = False
        for t in times[:120]:
            tp = {"time": "%.3f" % (t / 1000)}
            if compare(run_query(pbase, arg, tp), run_query(sbase, arg, tp))[0] != "equal":
                differs = None
                break
            if compare(run_query(pbase, sub, tp), run_query(sbase, sub, tp))[0] != "equal":
                differs = True
        if differs:
            return "float-step", "%s: the subquery's points are equal within 1e-6, the function of them is not" % sub
    if re.search(r"\b(rate|increase)\(", q):
        hits = extrapolation_hits(q, series, times, pbase, params)
        if hits:
            checked = _check_plain_rate(q, po, so, series)
            if checked is False:
                return None, None
            return "extrapolation", "2.42 and >= 2.51 extrapolation disagree for %s at %.3f%s" % (
                hits[0][0], hits[0][1] / 1000,
                "; every point checked: Prometheus = the 2.42 rule, Strata = the >= 2.51 rule" if checked else "")
    return None, None


# A vector/vector comparison as the generator writes it: "(lhs) OP[ on (..)| ignoring (..)][ group_left[ (..)]] (rhs)",
# without bool (filtering).
FILTER_BINOP = re.compile(r"\) (==|!=|>=|<=|>|<)((?: on \([^)]*\)| ignoring \([^)]*\))?(?: group_left(?: \([^)]*\))?)?) \(")


def _paren_pairs(q):
    """{index of '(': index of its ')'} and the reverse, skipping string literals."""
    pairs, back, stack, j = {}, {}, [], 0
    while j < len(q):
        c = q[j]
        if c == '"':
            j = q.index('"', j + 1)
        elif c == "(":
            stack.append(j)
        elif c == ")" and stack:
            o = stack.pop()
            pairs[o], back[j] = j, o
        j += 1
    return pairs, back


ARITH_OP = re.compile(r" ([-+*/%^]) ")
SCALAR_TERM = re.compile(r"-?[0-9.e]+|time\(\)|scalar\(|\(")


def _operand_end(q, j, pairs):
    """The end of a comparison's right operand whose first term ends at j: arithmetic operators bind
    tighter than comparisons, so "(x) > (y) - scalar(z)" compares with "(y) - scalar(z)"."""
    while True:
        m = ARITH_OP.match(q, j)
        if not m:
            return j
        t = SCALAR_TERM.match(q, m.end())
        if not t:
            return j
        j = pairs[t.end() - 1] + 1 if t.group().endswith("(") and t.group() != "time()" else t.end()


def _filter_cardinality_explained(q, params, strata_error, pbase, sbase):
    """KNOWN["binop-filter-cardinality"]: Prometheus 3.9 (prometheus/prometheus 4cad87ca, "Fix insufficient
    cardinality checking for filter ops") runs VectorBinop's matching checks on every matched pair before a
    filtering comparison drops the pairs it filters; 2.42 drops them first. Explained when some filtering
    comparison of the query, evaluated alone, makes Strata fail with the same error, and 2.42 fails with
    that error on the comparison's bool form (which keeps every pair, as 3.9 checks them), alone and in
    the query in the comparison's place. Under group_left the bool form would drop __name__ from the
    result label sets the uniqueness check compares, so the many side's name is first copied into a label
    (and ignored for matching). A comparison inside a subquery is evaluated alone on a 5 s grid over the
    span the query reads (a superset of the subquery's steps); the query with its bool form is evaluated
    as asked, at exactly its own steps."""
    what = "grouping labels must ensure unique matches" if "grouping labels" in strata_error else "many-to-one"
    pairs, back = _paren_pairs(q)
    for m in FILTER_BINOP.finditer(q):
        lo, ro = back.get(m.start()), m.end() - 1
        if lo is None or ro not in pairs:
            continue
        end = _operand_end(q, pairs[ro] + 1, pairs)
        lhs, op, mod, rhs = q[lo:m.start() + 1], m.group(1), m.group(2), q[ro:end]
        p = params
        if _in_subquery(q, lo):
            p = _subquery_grid(params)
        st, so = norm(run_query(sbase, "%s %s%s %s" % (lhs, op, mod, rhs), p))
        if st != "error" or what not in so:
            continue
        if "group_left" in mod:
            lhs = 'label_replace(%s, "__strata_name", "$1", "__name__", "(.+)")' % lhs
            mod = re.sub(r" ignoring \(([^)]*)\)", lambda x: " ignoring (%s)" % ", ".join(
                [n for n in x.group(1).split(", ") if n] + ["__strata_name"]), mod)
        as_bool = "(%s %s bool%s %s)" % (lhs, op, mod, rhs)
        pt, po = norm(run_query(pbase, as_bool, p))
        if pt != "error" or what not in po:
            continue
        pt, po = norm(run_query(pbase, q[:lo] + as_bool + q[end:], params))
        if pt == "error" and what in po:
            return "%s %s%s %s: 2.42 fails like Strata on its bool form" % (q[lo:m.start() + 1], op, m.group(2), rhs)
    return None


PLAIN_RATE = re.compile(r'^(rate|increase)\((\w+)(\{[^}]*\})?\[(\w+)\]( offset (-?\w+))?\)$')


def _check_plain_rate(q, po, so, series):
    """For a query that is just rate/increase(<selector>[r] [offset o]): True when every point of both
    answers is the model's value (Prometheus the 2.42 rule, Strata the >= 2.51 rule), False when one
    is not, None for any other query (not checked point by point)."""
    m = PLAIN_RATE.match(q.strip())
    if not m or set(po) != set(so):
        return None
    fn, name, ms_text, rng_s, off = m.group(1), m.group(2), m.group(3) or "", m.group(4), m.group(6)
    rng_ms, off_ms = dur_ms(rng_s), dur_ms(off) if off else 0
    by_labels = {}
    for s in series:
        if s.metric == name and match_labels(ms_text, s):
            by_labels[tuple(sorted(s.labels.items()))] = [(t, v) for t, v in s.samples if not math.isnan(v)]
    for k in po:
        pts = by_labels.get(tuple(x for x in k if x[0] != "__name__"))
        if pts is None or len(po[k]) != len(so[k]):
            return False
        for (t, vp), (_, vs) in zip(po[k], so[k]):
            e = int(round(t * 1000)) - off_ms
            w = [p for p in pts if e - rng_ms < p[0] <= e]
            if len(w) < 2:
                return False
            div = rng_ms / 1000.0 if fn == "rate" else 1.0
            if not (close(vp, _extrapolated(w, e - rng_ms, e, False) / div)
                    and close(vs, _extrapolated(w, e - rng_ms, e, True) / div)):
                return False
    return True


# ---------------------------------------------------------------------------
# main


def run_query(base, q, params, timeout=30):
    p = dict(params, query=q)
    path = "/api/v1/query_range" if "step" in p else "/api/v1/query"
    try:
        st, body = http("POST", base + path, urllib.parse.urlencode(p).encode(),
                        {"Content-Type": "application/x-www-form-urlencoded"}, timeout=timeout)
    except OSError as e:
        return {"status": "error", "error": "transport: %s" % e}
    try:
        return json.loads(body)
    except ValueError:
        return {"status": "error", "error": "HTTP %d: %s" % (st, body[:200])}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--series", type=int, default=40)
    ap.add_argument("--queries", type=int, default=400, help="at most this many queries")
    ap.add_argument("--budget-s", type=float, default=60, help="stop generating queries after this long (wall, from start)")
    ap.add_argument("--strata-bin", default=os.environ.get("STRATA_BIN", "strata"))
    ap.add_argument("--prometheus-bin", default=shutil.which("prometheus") or "prometheus")
    ap.add_argument("--promtool-bin", default=shutil.which("promtool") or "promtool")
    ap.add_argument("--out", default=None, help="directory for mismatches.jsonl and summary.json (default: a temp dir)")
    ap.add_argument("--query", action="append", default=[], help="run only these queries (repro); repeatable")
    ap.add_argument("--params", action="append", default=[],
                    help="JSON query parameters of the --query at the same position ({\"time\": ..} or start/end/step), "
                    "relative to the data's end when --data-end-ms is given")
    ap.add_argument("--data-end-ms", type=int, default=None,
                    help="end of the generated data (a repro: the value a mismatch record names)")
    ap.add_argument("--replay", default=None,
                    help="run the queries of a mismatches.jsonl again (with its --seed, --series and --data-end-ms)")
    ap.add_argument("--keep", action="store_true", help="keep the data directories")
    ap.add_argument("--verbose", "-v", action="store_true")
    a = ap.parse_args(argv)
    if a.replay:
        for line in open(a.replay):
            r = json.loads(line)
            a.query.append(r["query"])
            a.params.append(json.dumps(r["params"]))
    t_start = time.time()
    for b in (a.strata_bin, a.prometheus_bin, a.promtool_bin):
        if not shutil.which(b) and not os.path.exists(b):
            raise SystemExit("differential: %s not found (install Debian's prometheus with scripts/install-test-deps.sh, "
                             "build strata with cargo build -p strata)" % b)
    out = a.out or tempfile.mkdtemp(prefix="strata-diff-out-")
    os.makedirs(out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="strata-diff-")
    # Data ends 10 minutes ago on a whole minute; times are fixed by the seed relative to that end.
    end_ms = a.data_end_ms or (int(time.time()) // 60 - 10) * 60_000
    series = gen_data(a.seed, a.series, end_ms)
    om = os.path.join(tmp, "data.om")
    write_openmetrics(series, om)
    n_samples = sum(len(s.samples) for s in series)
    procs = []
    try:
        sp, sbase = start_strata(a, tmp)
        procs.append(sp)
        pp, pbase = start_prometheus(a, tmp, om)
        procs.append(pp)
        load_strata(sbase, series, random.Random(a.seed + 1))
        load_prometheus_rw(pbase, series, end_ms)
        print("differential: seed %d, %d series, %d samples (%d stale markers), data %s .. %s, strata %s, prometheus %s" % (
            a.seed, len(series), n_samples, sum(1 for s in series for _, v in s.samples if is_stale(v)),
            end_ms - SPAN_MS, end_ms, sbase, pbase), file=sys.stderr)
        # Evaluation times: x.250 s, so no boundary (t - range, t - offset, subquery steps) meets a sample.
        anchor_s = end_ms / 1000.0 + 7.25
        lo_s = (end_ms - SPAN_MS) / 1000.0
        wait_visible(sbase, pbase, anchor_s)
        qrng = random.Random(a.seed * 7919 + 13)
        gen = Gen(qrng, anchor_s, lo_s)
        counts = {"run": 0, "equal": 0, "known-difference": 0, "expected-failure": 0, "mismatch": 0}
        known_counts = {}
        fails = []
        mf = open(os.path.join(out, "mismatches.jsonl"), "w")
        fixed = list(a.query)
        i = 0
        while True:
            if fixed:
                if i >= len(fixed):
                    break
                q = fixed[i]
            else:
                if i >= a.queries or time.time() - t_start > a.budget_s:
                    break
                q = gen.query()
            i += 1
            if fixed and i - 1 < len(a.params):
                params = json.loads(a.params[i - 1])
                if "time" in params:
                    times = [int(round(float(params["time"]) * 1000))]
                else:
                    times = list(range(int(round(float(params["start"]) * 1000)),
                                       int(round(float(params["end"]) * 1000)) + 1, int(params["step"]) * 1000))
            elif qrng.random() < 0.5:
                t = anchor_s - qrng.randint(0, 90) * 60
                params = {"time": "%.3f" % t}
                times = [int(round(t * 1000))]
            else:
                step = qrng.choice([15, 30, 60, 120, 300])
                end = anchor_s - qrng.randint(0, 30) * 60
                start = end - qrng.choice([10, 30, 60, 90]) * 60
                params = {"start": "%.3f" % start, "end": "%.3f" % end, "step": str(step)}
                times = list(range(int(round(start * 1000)), int(round(end * 1000)) + 1, step * 1000))
            pdoc = run_query(pbase, q, params)
            sdoc = run_query(sbase, q, params)
            counts["run"] += 1
            status, detail = compare(pdoc, sdoc)
            known = None
            if status == "name":
                known = "name"
            elif status == "mismatch":
                known, extra = classify(q, params, times, pdoc, sdoc, series, pbase, sbase)
                if known:
                    detail += " [%s]" % extra
            if status == "equal":
                counts["equal"] += 1
            elif known in EXPECTED_FAILURES:
                counts["expected-failure"] += 1
                known_counts[known] = known_counts.get(known, 0) + 1
            elif known:
                counts["known-difference"] += 1
                known_counts[known] = known_counts.get(known, 0) + 1
            else:
                counts["mismatch"] += 1
            if status != "equal":
                rec = {"status": ("expected-failure:" if known in EXPECTED_FAILURES else "known-difference:") + known if known else "mismatch", "seed": a.seed,
                       "series": a.series, "data_end_ms": end_ms, "query": q, "params": params, "detail": detail,
                       "prometheus": pdoc, "strata": sdoc,
                       "repro": "python3 benches/drivers/differential.py --seed %d --series %d --data-end-ms %d "
                                "--query %s --params %s" % (a.seed, a.series, end_ms, shlex.quote(q),
                                                            shlex.quote(json.dumps(params)))}
                mf.write(json.dumps(rec) + "\n")
                mf.flush()
                if not known:
                    fails.append(rec)
                if a.verbose or not known:
                    print("%s: %s %s\n  %s" % (rec["status"], q, params, detail[:400]), file=sys.stderr)
            elif a.verbose:
                print("equal: %s %s" % (q, params), file=sys.stderr)
        mf.close()
        summary = dict(counts, known=known_counts, seed=a.seed, series=a.series, samples=n_samples,
                       seconds=round(time.time() - t_start, 1), mismatches_file=os.path.join(out, "mismatches.jsonl"))
        with open(os.path.join(out, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
        print("differential: %d queries run, %d equal, %d known-difference, %d expected-failure %s, %d mismatched "
              "(%.1f s); repros in %s" % (
                  counts["run"], counts["equal"], counts["known-difference"], counts["expected-failure"],
                  json.dumps(known_counts, sort_keys=True), counts["mismatch"], time.time() - t_start,
                  summary["mismatches_file"]))
        return 1 if fails else 0
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("differential: data kept in %s" % tmp, file=sys.stderr)


def wait_visible(sbase, pbase, anchor_s):
    q = "count(count_over_time({__name__=~\"d.*\"}[3h]))"
    deadline = time.time() + 30
    while True:
        a = run_query(pbase, q, {"time": "%.3f" % anchor_s})
        b = run_query(sbase, q, {"time": "%.3f" % anchor_s})
        if compare(a, b)[0] == "equal":
            return
        if time.time() > deadline:
            raise SystemExit("data not visible on both sides after 30 s: prometheus %s, strata %s" % (a, b))
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
