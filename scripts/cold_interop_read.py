"""Reads a Strata cold-tier table with PyIceberg through the same SQL catalog.

Usage: python cold_interop_read.py <expect.json>

expect.json: {"catalog_uri", "catalog_name", "warehouse", "table",
              "rows", "samples": [{"series_id", "ts_ms", "value", "metric", "labels"}],
              optional "value_sum" (sum of the non-NaN values, within 1e-9 relative)
              and "absent": [{"series_id", "ts_ms"}] (rows that must not be there)}

Checks the row count and every listed sample; prints one JSON line with what
it saw; exits non-zero on any mismatch.
"""
import json
import sys

from pyiceberg.catalog.sql import SqlCatalog

spec = json.load(open(sys.argv[1]))
catalog = SqlCatalog(spec["catalog_name"], uri=spec["catalog_uri"], warehouse=spec["warehouse"])
table = catalog.load_table(spec["table"])
arrow = table.scan().to_arrow()
errors = []
if arrow.num_rows != spec["rows"]:
    errors.append(f"row count {arrow.num_rows} != {spec['rows']}")
rows = arrow.to_pylist()
index = {}
for r in rows:
    ts_ms = int(r["ts"].timestamp() * 1000 + 0.5) if r.get("ts") is not None else None  # series tables: no ts
    index[(r["series_id"], ts_ms)] = r
for s in spec["samples"]:
    r = index.get((s["series_id"], s["ts_ms"]))
    if r is None:
        errors.append(f"missing sample {s}")
        continue
    if r["value"] != s["value"] or r["metric"] != s["metric"] or dict(r["labels"]) != s["labels"]:
        errors.append(f"sample {s} read back as value={r['value']} metric={r['metric']} labels={r['labels']}")
if "value_sum" in spec:
    total = sum(r["value"] for r in rows if r["value"] == r["value"])
    if abs(total - spec["value_sum"]) > 1e-9 * max(1.0, abs(spec["value_sum"])):
        errors.append(f"value sum {total} != {spec['value_sum']}")
for s in spec.get("absent", []):
    if (s["series_id"], s["ts_ms"]) in index:
        errors.append(f"row {s} is still there")
spec_fields = [f.name for f in table.spec().fields]
print(json.dumps({"rows": arrow.num_rows, "partition_fields": spec_fields, "errors": errors}))
sys.exit(1 if errors else 0)
