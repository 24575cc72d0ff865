#!/usr/bin/env python3
"""Checks the workspace's dependency graph against deny.toml.

deny.toml is in cargo-deny's format; this script applies its `[licenses]`,
`[bans]` and `[sources]` sections with `cargo metadata` alone, so CI needs no
tool build (see the comment at the top of deny.toml). Semantics follow
cargo-deny's where they overlap:

- licences: each package's SPDX expression (`OR`, `AND`, `WITH`, parentheses;
  the legacy `/` means `OR`) must be satisfiable by `licenses.allow`;
- bans: a crate in `bans.deny` fails; with `multiple-versions = "deny"`, a
  crate resolved at several versions fails unless all but one are in
  `bans.skip`; a registry dependency declared with version `*` fails;
- sources: every package comes from a workspace path or an allowed registry.

Only the dependency graph of `graph.targets` counts. Exit status 1 lists every
violation; unmatched `skip` entries are reported as warnings (stale entries
should be removed).
"""

import collections
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"


def metadata(target):
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", target],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)


def tokens(expr):
    return re.findall(r"\(|\)|[^\s()]+", expr.replace("/", " OR "))


def satisfiable(expr, allowed):
    """Whether the SPDX expression `expr` can be met with licences in `allowed`."""
    toks = tokens(expr)
    pos = 0

    def peek():
        return toks[pos] if pos < len(toks) else None

    def take():
        nonlocal pos
        pos += 1
        return toks[pos - 1]

    def primary():
        if peek() == "(":
            take()
            v = disjunction()
            if take() != ")":
                raise ValueError(f"unbalanced parentheses in {expr!r}")
            return v
        lic = take()
        if peek() == "WITH":
            take()
            lic = f"{lic} WITH {take()}"
            return lic in allowed or lic.split(" WITH ")[0] in allowed
        return lic.rstrip("+") in allowed

    def conjunction():
        v = primary()
        while peek() == "AND":
            take()
            v = primary() and v
        return v

    def disjunction():
        v = conjunction()
        while peek() == "OR":
            take()
            v = conjunction() or v
        return v

    result = disjunction()
    if pos != len(toks):
        raise ValueError(f"cannot parse licence expression {expr!r}")
    return result


def main():
    rules = tomllib.loads((ROOT / "deny.toml").read_text())
    targets = rules.get("graph", {}).get("targets", ["x86_64-unknown-linux-gnu"])
    packages = {}
    workspace = set()
    for target in targets:
        meta = metadata(target)
        workspace |= set(meta["workspace_members"])
        resolved = {n["id"] for n in meta["resolve"]["nodes"]}
        for p in meta["packages"]:
            if p["id"] in resolved:
                packages[p["id"]] = p
    errors, warnings = [], []

    allowed = set(rules["licenses"]["allow"])
    for p in sorted(packages.values(), key=lambda p: (p["name"], p["version"])):
        if p["id"] in workspace:
            continue
        lic = p.get("license")
        if not lic:
            errors.append(f"licence: {p['name']} {p['version']} declares no SPDX licence expression")
            continue
        try:
            ok = satisfiable(lic, allowed)
        except ValueError as e:
            errors.append(f"licence: {p['name']} {p['version']}: {e}")
            continue
        if not ok:
            errors.append(f"licence: {p['name']} {p['version']} is {lic!r}, not allowed by deny.toml [licenses] allow")

    bans = rules.get("bans", {})
    denied = {d["crate"] for d in bans.get("deny", [])}
    for p in packages.values():
        if p["name"] in denied:
            errors.append(f"ban: {p['name']} {p['version']} is denied by deny.toml [bans] deny")
    skip = {s["crate"] for s in bans.get("skip", [])}
    used_skip = set()
    versions = collections.defaultdict(set)
    for p in packages.values():
        versions[p["name"]].add(p["version"])
    if bans.get("multiple-versions", "warn") == "deny":
        for name, vs in sorted(versions.items()):
            if len(vs) < 2:
                continue
            kept = sorted(v for v in vs if f"{name}@{v}" not in skip)
            used_skip |= {f"{name}@{v}" for v in vs} & skip
            if len(kept) > 1:
                errors.append(
                    f"duplicate: {name} resolved at {', '.join(sorted(vs))}; unify the versions or add all but "
                    f"one to deny.toml [bans] skip with a reason"
                )
    for stale in sorted(skip - used_skip):
        warnings.append(f"skip entry {stale} matches no duplicated crate: remove it from deny.toml")
    if bans.get("wildcards") == "deny":
        for p in packages.values():
            if p["id"] not in workspace:
                continue
            for dep in p["dependencies"]:
                if dep.get("req") == "*" and dep.get("path") is None:
                    errors.append(f"wildcard: {p['name']} depends on {dep['name']} = \"*\"")

    sources = rules.get("sources", {})
    registries = {f"registry+{r}" for r in sources.get("allow-registry", [])} or {CRATES_IO}
    for p in packages.values():
        src = p.get("source")
        if src is None:
            continue
        if src.startswith("git+") and sources.get("unknown-git") == "deny":
            errors.append(f"source: {p['name']} {p['version']} comes from git ({src})")
        elif src.startswith("registry+") and src not in registries and sources.get("unknown-registry") == "deny":
            errors.append(f"source: {p['name']} {p['version']} comes from an unknown registry ({src})")

    for w in warnings:
        print(f"warning: {w}")
    for e in errors:
        print(f"error: {e}")
    third_party = len(packages) - len(workspace & set(packages))
    print(f"deny.toml: {third_party} third-party packages for {', '.join(targets)}: {len(errors)} violations")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
