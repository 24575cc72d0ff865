#!/usr/bin/env python3
"""Lengths of the workspace's non-test Rust functions, by brace matching.

Usage: python3 scripts/fn_lengths.py [--top N] [--root DIR] [--rev REV]

Reads every `*/src/**/*.rs` of the workspace's crates (not `test-support`,
not `tests.rs` / `tests/` / `test_util.rs` files, not `#[cfg(test)]`
modules), finds each `fn` with a body and counts its lines from the `fn`
line to the closing brace. Strings, raw strings, chars and comments are
skipped when matching braces. With `--rev`, the files are read from that
git revision instead of the working tree (before/after figures of a split).

Prints the count, median, p90, p99, the number over 40 and over 100
lines, and the N longest functions (default 15) as `lines path:line name`.
"""

import argparse
import re
import subprocess
import sys
from pathlib import Path

SKIP_CRATES = {"test-support", "target", "fuzz"}


def blank_literals(src: str) -> str:
    """`src` with comments, strings and char literals replaced by spaces (newlines kept)."""
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif (m := re.match(r'b?r(#*)"', src[i:i + 300])) and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")):
            end = '"' + m.group(1)
            j = src.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            j += 1
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c == "'":
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\x[0-9a-fA-F]{2}|\\.|[^\\'\n])'", src[i:i + 16])
            if m:
                out.append(" " * m.end())
                i += m.end()
            else:  # a lifetime or label
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def match_brace(code: str, open_at: int) -> int:
    depth = 0
    for j in range(open_at, len(code)):
        if code[j] == "{":
            depth += 1
        elif code[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(code) - 1


def test_module_spans(code: str):
    """Character spans of `#[cfg(test)] mod x { ... }` blocks."""
    spans = []
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", code):
        start = m.end() - 1
        spans.append((m.start(), match_brace(code, start)))
    return spans


FN = re.compile(r"\bfn\s+([A-Za-z_][A-Za-z0-9_]*)")


def functions(path: str, src: str):
    code = blank_literals(src)
    skip = test_module_spans(code)
    line_of = lambda pos: code.count("\n", 0, pos) + 1  # noqa: E731
    for m in FN.finditer(code):
        if any(a <= m.start() <= b for a, b in skip):
            continue
        # The body starts at the first `{` outside the signature's parens
        # and generics; a `;` first means no body (trait method).
        depth, j = 0, m.end()
        while j < len(code):
            ch = code[j]
            if ch in "(<[":
                depth += 1
            elif ch in ")>]":
                depth -= 1 if not (ch == ">" and code[j - 1] == "-") else 0
            elif ch == ";" and depth <= 0:
                j = -1
                break
            elif ch == "{" and depth <= 0:
                break
            j += 1
        if j < 0 or j >= len(code):
            continue
        end = match_brace(code, j)
        yield (line_of(end) - line_of(m.start()) + 1, f"{path}:{line_of(m.start())}", m.group(1))


def files(root: Path, rev):
    if rev:
        names = subprocess.run(["git", "-C", str(root), "ls-tree", "-r", "--name-only", rev],
                               check=True, capture_output=True, text=True).stdout.split()
    else:
        names = [str(p.relative_to(root)) for p in root.glob("*/src/**/*.rs")]
    for name in sorted(names):
        parts = name.split("/")
        if not name.endswith(".rs") or len(parts) < 3 or parts[1] != "src" or parts[0] in SKIP_CRATES:
            continue
        if parts[-1] in ("tests.rs", "test_util.rs") or "tests" in parts[2:-1]:
            continue
        if rev:
            text = subprocess.run(["git", "-C", str(root), "show", f"{rev}:{name}"],
                                  check=True, capture_output=True, text=True).stdout
        else:
            text = (root / name).read_text()
        yield name, text


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--root", default=str(Path(__file__).resolve().parent.parent))
    ap.add_argument("--rev")
    ap.add_argument("--grep", help="only functions whose path:line name contains this")
    a = ap.parse_args()
    fns = [f for name, text in files(Path(a.root), a.rev) for f in functions(name, text)]
    if a.grep:
        fns = [f for f in fns if a.grep in f"{f[1]} {f[2]}"]
    if not fns:
        sys.exit("no functions found")
    lens = sorted(f[0] for f in fns)
    pct = lambda p: lens[min(len(lens) - 1, int(p * len(lens)))]  # noqa: E731
    print(f"functions {len(lens)}  median {pct(0.5)}  p90 {pct(0.9)}  p99 {pct(0.99)}  "
          f"over 40: {sum(x > 40 for x in lens)}  over 100: {sum(x > 100 for x in lens)}")
    for length, where, name in sorted(fns, key=lambda f: -f[0])[: a.top]:
        print(f"{length:5}  {where}  {name}")


if __name__ == "__main__":
    main()
