#!/usr/bin/env python3
"""Fails when a workspace crate depends on a sibling the architecture forbids.

Dependencies point inwards (ARCHITECTURE.md): everything may use schemas;
query reads through schemas' ReadStore and never sees a storage crate; only
the server and the benches know every crate.
"""
import json
import subprocess
import sys

ALLOWED = {
    "strata-schemas": set(),
    "strata-ingest": {"strata-schemas"},
    "strata-hot-store": {"strata-schemas"},
    "strata-hot-scylla": {"strata-schemas"},  # the ScyllaDB hot tier: a sibling of hot-store
    "strata-cold-tier": {"strata-schemas"},
    "strata-compactor": {"strata-schemas", "strata-hot-store", "strata-cold-tier"},
    "strata-query": {"strata-schemas"},
    "strata-edge": {"strata-schemas"},
    "strata": None,  # the top: anything
    "strata-benches": None,
    "strata-fuzz-targets": None,  # fuzz targets drive every decoder (outermost, like the benches)
    "strata-test-support": set(),  # throwaway servers for tests: std and tempfile only
}
# Crates every other crate may take as a dev-dependency only.
DEV_ONLY = {"strata-test-support"}

meta = json.loads(subprocess.check_output(["cargo", "metadata", "--format-version", "1", "--no-deps"]))
members = {p["name"] for p in meta["packages"]}
bad = []
for p in meta["packages"]:
    allowed = ALLOWED.get(p["name"], set())
    if p["name"] not in ALLOWED:
        bad.append(f"{p['name']}: not in the architecture's crate table (.ci/depcheck.py)")
        continue
    for d in p["dependencies"]:
        if d["name"] in DEV_ONLY and d.get("kind") != "dev":
            bad.append(f"{p['name']} depends on {d['name']} outside [dev-dependencies]")
    if allowed is None:
        continue
    for d in p["dependencies"]:
        if d["name"] in members and d["name"] not in allowed and d.get("kind") != "dev":
            bad.append(f"{p['name']} depends on {d['name']}, which the architecture forbids")
if bad:
    print("\n".join(bad))
    sys.exit(1)
print(f"dependency direction ok ({len(members)} crates)")
