#!/usr/bin/env python3
"""The per-query table of several peer-bench runs (`run_peers.py --out DIR`):
VictoriaMetrics / Strata median ms and their ratio per run, the median ratio
over the runs, and each run's start, load average, correctness and flush.

    python3 benches/drivers/peer_summary.py /tmp/pb-out-1 /tmp/pb-out-2 /tmp/pb-out-3 [--bound 0.7]

Prints Markdown (the layout of docs/benchmarks/*-query.md). A ratio is
Strata's median over VictoriaMetrics's; queries whose median ratio is above
`--bound` are listed at the end.
"""

import argparse
import json
import os
import statistics
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="run_peers.py --out directories")
    ap.add_argument("--target", default="strata", help="the cmd target's name (--cmd-name)")
    ap.add_argument("--peer", default="victoriametrics")
    ap.add_argument("--bound", type=float, default=0.7)
    a = ap.parse_args()
    runs = []
    for d in a.runs:
        with open(os.path.join(d, "results.json")) as f:
            runs.append(json.load(f))
    names = [q["name"] for q in runs[0]["queries"]]
    hdr = "| query | " + " | ".join("run %d %s / %s ms (ratio)" % (i + 1, a.peer, a.target)
                                   for i in range(len(runs))) + " | median ratio |"
    print(hdr)
    print("|" + "---|" * (len(runs) + 2))
    above = []
    for n in names:
        cells, ratios = [], []
        for r in runs:
            p = r["targets"].get(a.peer, {}).get("queries", {}).get(n, {}).get("median_ms")
            s = r["targets"].get(a.target, {}).get("queries", {}).get(n, {}).get("median_ms")
            if p and s:
                ratios.append(s / p)
                cells.append("%.3g / %.3g (%.2f)" % (p, s, s / p))
            else:
                cells.append("–")
        med = statistics.median(ratios) if ratios else float("nan")
        if ratios and med > a.bound:
            above.append(n)
        print("| %s | %s | **%.2f** |" % (n, " | ".join(cells), med))
    print()
    for i, r in enumerate(runs):
        t = r["targets"].get(a.target, {})
        p = r["targets"].get(a.peer, {})
        corr = r.get("correctness", {}).get(a.target, {})
        ok = sum(1 for v in corr.values() if v.get("status") in ("match", "match-ties"))
        print("run %d: started %s, loadavg at start %s, %s matches Prometheus %s, other load during queries %s, "
              "flush+visible %s %s / %s %s s, ingest %s samples/s"
              % (i + 1, r.get("started"), r.get("host", {}).get("loadavg_start"), a.target,
                 ("%d/%d" % (ok, len(corr))) if corr else "(no oracle)", t.get("other_load_during_queries"),
                 a.peer, p.get("flush_visible_s"), a.target, t.get("flush_visible_s"),
                 (t.get("ingest") or {}).get("samples_per_s")))
    print("median ratio above %.2f: %s" % (a.bound, ", ".join(above) if above else "(none)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
