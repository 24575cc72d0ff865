#!/usr/bin/env python3
"""Fails when a build without tests would compile the crash-test hooks.

The `failpoints` cargo feature (hot-store, cold-tier, compactor, server)
compiles in the failpoints and the server's `STRATA_*_CRASH_AT` hooks. Each
crate turns it on for its own tests through a dev-dependency on itself, so it
must be on when dev-dependencies are part of the build (tests, benches) and off
otherwise (`cargo build --release -p strata`). `cargo tree` resolves features
the way a build does, dev-dependencies included only when its edges include
`dev`; this compares the two resolutions, without building anything.

`--binary <path>` instead checks a built `strata` binary: none of the strings
that exist only with the feature (the crash hooks' environment variables, the
injected errors' messages) may be in it.
"""
import subprocess
import sys

CRATES = ("strata", "strata-hot-store", "strata-cold-tier", "strata-compactor")


def features(edges):
    """Maps each of CRATES in the tree of `strata` to its enabled features."""
    out = subprocess.check_output(
        ["cargo", "tree", "-p", "strata", "-e", edges, "--prefix", "none", "-f", "{p}|{f}"], text=True)
    found = {}
    for line in out.splitlines():
        pkg, _, feats = line.removesuffix(" (*)").partition("|")
        name = pkg.split(" ", 1)[0]
        if name in CRATES:
            found.setdefault(name, set()).update(f for f in feats.strip().split(",") if f)
    return found


# Strings compiled in only with the feature (the failpoint *names* are not
# among them: their call sites pass them to an inert `hit` without it).
FEATURE_ONLY = (b"STRATA_ERASURE_CRASH_AT", b"STRATA_ROLL_CRASH_AT", b"injected failure at ")

if sys.argv[1:2] == ["--binary"]:
    path = sys.argv[2]
    with open(path, "rb") as f:
        data = f.read()
    found = [s.decode() for s in FEATURE_ONLY if s in data]
    if found:
        print(f"{path}: built with the `failpoints` feature: holds {', '.join(found)}")
        sys.exit(1)
    print(f"failpoints: none of {len(FEATURE_ONLY)} feature-only strings in {path} ({len(data) >> 20} MiB)")
    sys.exit(0)

bad = []
release = features("normal,build")
for name in CRATES:
    if name not in release:
        bad.append(f"{name}: not in `cargo tree -p strata -e normal,build`")
    elif "failpoints" in release[name]:
        bad.append(f"{name}: feature `failpoints` is on in a build without tests (`-e normal,build`)")
tests = features("normal,build,dev")
for name in CRATES:
    if "failpoints" not in tests.get(name, set()):
        bad.append(f"{name}: feature `failpoints` is off when the tests are built (its dev-dependency on itself?)")
if bad:
    print("\n".join(bad))
    sys.exit(1)
print(f"failpoints: off without tests, on with them ({len(CRATES)} crates)")
