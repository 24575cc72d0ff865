#!/usr/bin/env python3
"""A flame graph (SVG) from `perf script` output, with the standard library only.

    perf script -i query.data | python3 benches/drivers/perf_flame.py --title avg_by_farm > flame.svg

Stacks are collapsed root first (as Brendan Gregg's stackcollapse-perf.pl
does), Rust symbols keep their path without the hash suffix, and each frame's
width is its share of the samples; hover a frame for its name, sample count
and percentage. `--collapsed FILE` also writes the collapsed stacks
(`frame;frame;... count` per line) for other tools. `--min-pct` drops frames
narrower than that share (default 0.1 %) to keep the file small.
"""

import argparse
import collections
import html
import re
import sys
import zlib

HASH = re.compile(r"::h[0-9a-f]{16}$")
OFFSET = re.compile(r"\+0x[0-9a-f]+$")


def frames_of(lines):
    """Yields (process, [frames leaf first]) per sample of `perf script` text."""
    comm, frames = None, []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if comm is not None:
                yield comm, frames
            comm, frames = None, []
        elif not line[0].isspace():
            comm, frames = line.split()[0], []
        else:
            parts = line.strip().split(None, 1)
            sym = parts[1] if len(parts) > 1 else parts[0]
            sym = re.sub(r"\s+\([^)]*\)$", "", sym)  # the (dso) suffix
            sym = OFFSET.sub("", sym)
            sym = HASH.sub("", sym)
            frames.append(sym or "[unknown]")
    if comm is not None:
        yield comm, frames


def collapse(lines):
    counts = collections.Counter()
    for comm, frames in frames_of(lines):
        counts[";".join([comm] + frames[::-1])] += 1
    return counts


def tree(counts):
    root = {"n": 0, "kids": {}}
    for stack, n in counts.items():
        root["n"] += n
        node = root
        for f in stack.split(";"):
            node = node["kids"].setdefault(f, {"n": 0, "kids": {}})
            node["n"] += n
    return root


def color(name):
    h = zlib.crc32(name.encode())
    return "rgb(%d,%d,%d)" % (205 + h % 50, 80 + (h >> 8) % 120, 40 + (h >> 16) % 50)


def svg(root, title, min_pct, width=1600, row=16):
    total = max(root["n"], 1)
    rects = []
    depth_max = [0]

    def walk(node, name, x, depth):
        w = node["n"] / total * width
        if node["n"] * 100.0 / total < min_pct:
            return
        depth_max[0] = max(depth_max[0], depth)
        rects.append((x, depth, w, name, node["n"]))
        cx = x
        for k, child in sorted(node["kids"].items()):
            walk(child, k, cx, depth + 1)
            cx += child["n"] / total * width

    walk(root, "all", 0.0, 0)
    height = (depth_max[0] + 1) * row + 40
    out = ['<?xml version="1.0" standalone="no"?>',
           '<svg version="1.1" width="%d" height="%d" xmlns="http://www.w3.org/2000/svg" '
           'font-family="Verdana" font-size="11">' % (width, height),
           '<rect x="0" y="0" width="%d" height="%d" fill="#f8f8f8"/>' % (width, height),
           '<text x="%d" y="18" text-anchor="middle" font-size="15">%s (%d samples)</text>'
           % (width // 2, html.escape(title), total)]
    for x, depth, w, name, n in rects:
        y = height - (depth + 1) * row - 4
        label = html.escape(name)
        chars = int(w / 7)
        text = label if len(name) <= chars else (html.escape(name[: max(chars - 2, 0)]) + ".." if chars > 3 else "")
        out.append('<g><title>%s (%d samples, %.2f%%)</title><rect x="%.1f" y="%d" width="%.1f" height="%d" '
                   'fill="%s" rx="2"/><text x="%.1f" y="%d">%s</text></g>'
                   % (label, n, n * 100.0 / total, x, y, max(w - 0.5, 0.1), row - 1, color(name), x + 3,
                      y + row - 4, text))
    out.append("</svg>")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--title", default="flame graph")
    ap.add_argument("--min-pct", type=float, default=0.1)
    ap.add_argument("--collapsed", metavar="FILE")
    a = ap.parse_args()
    counts = collapse(sys.stdin)
    if not counts:
        raise SystemExit("no samples with stacks on stdin (perf record -g / --call-graph, then perf script)")
    if a.collapsed:
        with open(a.collapsed, "w") as f:
            for stack, n in sorted(counts.items()):
                f.write("%s %d\n" % (stack, n))
    sys.stdout.write(svg(tree(counts), a.title, a.min_pct))
    return 0


if __name__ == "__main__":
    sys.exit(main())
