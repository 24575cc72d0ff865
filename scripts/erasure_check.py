"""Checks a tenant's Iceberg tables with PyIceberg for erased data.

Usage: python erasure_check.py <spec.json>

spec.json: {"catalog_uri", "catalog_name", "warehouse", "namespace", "tenant",
            "device_label", "mode": "devices" | "check",
            "checks": [{"series_ids": [..], "start_ms", "end_ms"}]}   (mode check)

mode "devices": reads the current snapshot of the samples table and prints
  {"devices": {device: {"series_ids": [...], "rows": n, "sum": x}}}.
mode "check": reads EVERY snapshot still in the metadata of every table of
  the tenant (samples, rollup*, series) and counts rows of the listed series
  inside the range (rollup rows: windows (end - width, end] lying inside the
  range; series rows: any row of a series whose whole history is covered,
  i.e. start_ms/end_ms null). Prints
  {"tables": {name: {"snapshots": n, "rows_read": n, "found": n}}, "found": n}
  and exits 1 when anything was found.
"""
import json
import sys

from pyiceberg.catalog.sql import SqlCatalog

WIDTH_MS = {"rollup5m": 300_000, "rollup1h": 3_600_000, "rollup1d": 86_400_000}


def suffix(tenant):
    return "_" + tenant.replace(".", "~")


def ts_ms(arrow):
    # Timestamptz in microseconds.
    return [None if v is None else v // 1000 for v in arrow.column("ts").cast("int64").to_pylist()]


def devices(table, label):
    arrow = table.scan().to_arrow()
    out = {}
    labels = arrow.column("labels").to_pylist()
    ids = arrow.column("series_id").to_pylist()
    values = arrow.column("value").to_pylist()
    for lab, sid, v in zip(labels, ids, values):
        d = dict(lab).get(label)
        e = out.setdefault(d, {"series_ids": set(), "rows": 0, "sum": 0.0})
        e["series_ids"].add(sid)
        e["rows"] += 1
        e["sum"] += v
    for e in out.values():
        e["series_ids"] = sorted(e["series_ids"])
    return out


def count_found(name, arrow, checks):
    kind = name.split("_", 1)[0]
    has_ts = "ts" in arrow.column_names
    ids = arrow.column("series_id").to_pylist()
    ts = ts_ms(arrow) if has_ts else [None] * len(ids)
    found = 0
    for c in checks:
        wanted = set(c["series_ids"])
        start = c.get("start_ms")
        end = c.get("end_ms")
        whole = start is None and end is None
        for sid, t in zip(ids, ts):
            if sid not in wanted:
                continue
            if whole or not has_ts:
                found += 1 if (whole or kind != "series") else 0
            elif kind in WIDTH_MS:
                if t - WIDTH_MS[kind] + 1 >= start and t <= end:
                    found += 1
            elif start <= t <= end:
                found += 1
    return found


def main():
    spec = json.load(open(sys.argv[1]))
    catalog = SqlCatalog(spec["catalog_name"], uri=spec["catalog_uri"], warehouse=spec["warehouse"])
    ns = spec["namespace"]
    tail = suffix(spec["tenant"])
    if spec["mode"] == "devices":
        table = catalog.load_table(f"{ns}.samples{tail}")
        print(json.dumps({"devices": devices(table, spec["device_label"])}))
        return 0
    report = {"tables": {}, "found": 0}
    for ident in catalog.list_tables(ns):
        name = ident[-1]
        if not name.endswith(tail):
            continue
        table = catalog.load_table(f"{ns}.{name}")
        entry = {"snapshots": 0, "rows_read": 0, "found": 0}
        for snap in table.snapshots():
            arrow = table.scan(snapshot_id=snap.snapshot_id).to_arrow()
            entry["snapshots"] += 1
            entry["rows_read"] += arrow.num_rows
            entry["found"] += count_found(name, arrow, spec["checks"])
        report["tables"][name] = entry
        report["found"] += entry["found"]
    print(json.dumps(report))
    return 1 if report["found"] else 0


sys.exit(main())
