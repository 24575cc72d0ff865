"""Reads a Strata samples table with PyIceberg and reports what it holds.

Usage: python kafka_cold_check.py <spec.json>

spec.json: {"catalog_uri", "catalog_name", "warehouse", "table", "metric",
            "partitions" (the log's partition count), "until" (ms),
            "wait_s" (how long to wait for every partition's roll state to reach `until`)}

Polls the table's properties until every `strata.roll.p<n>` (n < partitions)
is at least `until`, then scans the table once and prints one JSON line:
rows and value sum of `metric`, distinct (series_id, ts) pairs, the roll
state, and the snapshots' sources (a source committed twice is listed in
"duplicate_sources"). Exits non-zero when the roll state never got there.
"""
import json
import sys
import time
from collections import Counter

from pyiceberg.catalog.sql import SqlCatalog

spec = json.load(open(sys.argv[1]))
catalog = SqlCatalog(spec["catalog_name"], uri=spec["catalog_uri"], warehouse=spec["warehouse"])
deadline = time.time() + spec["wait_s"]
state = {}
while True:
    try:
        table = catalog.load_table(spec["table"])
        props = table.properties
        state = {k: int(v) for k, v in props.items() if k.startswith("strata.roll.p")}
        if all(state.get(f"strata.roll.p{n}", -(2**63)) >= spec["until"] for n in range(spec["partitions"])):
            break
    except Exception as e:  # table not created yet
        state = {"error": str(e)}
    if time.time() > deadline:
        print(json.dumps({"error": "roll state never reached until", "state": state, "until": spec["until"]}))
        sys.exit(1)
    time.sleep(0.5)
arrow = table.scan(row_filter=f"metric == '{spec['metric']}'").to_arrow()
rows = arrow.to_pylist()
total = sum(r["value"] for r in rows)
pairs = {(r["series_id"], r["ts"]) for r in rows}
sources = Counter(
    s.summary.additional_properties.get("strata.source")
    for s in table.metadata.snapshots
    if s.summary is not None and s.summary.additional_properties.get("strata.source")
)
actual = Counter(
    f"{dict(r['labels'])['device']}|{int(r['ts'].timestamp() * 1000 + 0.5) // spec['bucket_ms'] * spec['bucket_ms']}"
    for r in rows
)
part_of = {dict(r["labels"])["device"]: r["device_hash"] % spec["partitions"] for r in rows}
expected = spec.get("expected", {})
diff = {k: [expected.get(k, 0), actual.get(k, 0)] for k in set(expected) | set(actual) if expected.get(k, 0) != actual.get(k, 0)}
by_part = Counter(r["device_hash"] % spec["partitions"] for r in rows)
print(json.dumps({
    "differences": {f"p{part_of.get(k.split('|')[0])}|{k}": v for k, v in sorted(diff.items())[:80]},
    "by_partition": {str(k): v for k, v in sorted(by_part.items())},
    "rows": len(rows),
    "sum": total,
    "distinct": len(pairs),
    "series": len({r["series_id"] for r in rows}),
    "state": state,
    "snapshots": len(table.metadata.snapshots),
    "duplicate_sources": [s for s, n in sources.items() if n > 1],
}))
