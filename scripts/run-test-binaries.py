#!/usr/bin/env python3
"""Runs the workspace's built test binaries in two groups side by side (used
by scripts/test.sh): the server crate's end-to-end `it` binary, which spends
most of its time waiting on the servers and brokers it starts, beside every
other test binary in turn. The binaries are those `cargo test --workspace
--no-run --message-format=json` lists (built with the workspace's feature
resolution, so nothing is rebuilt: two `cargo test` runs of different package
sets would unify features differently and rebuild shared crates). Each
binary runs as cargo would run it: from its package's directory, with
CARGO_MANIFEST_DIR and CARGO_PKG_NAME set. A binary's output lines are
prefixed with its group's name, except its `running N tests` and `test
result:` lines, which are printed as cargo prints them (after a `Running` line naming the binary), so
that tools reading cargo's output count every binary's tests; a total over
all binaries follows, and a group's failures are printed again at the end.
The exit status is non-zero when any binary failed."""
import json
import os
import subprocess
import sys
import threading

LONG = ("strata", "it")  # (package, target) run beside the rest


def binaries():
    out = subprocess.run(["cargo", "test", "--workspace", "--no-run", "--message-format=json"],
                         check=True, stdout=subprocess.PIPE, text=True).stdout
    found = []
    for line in out.splitlines():
        try:
            m = json.loads(line)
        except ValueError:
            continue
        if m.get("reason") != "compiler-artifact" or not m.get("executable") or not m["profile"]["test"]:
            continue
        pkg = m["package_id"]
        manifest = m["manifest_path"]
        name = os.path.basename(os.path.dirname(manifest))
        found.append({"exe": m["executable"], "dir": os.path.dirname(manifest), "target": m["target"]["name"],
                      "kind": m["target"]["kind"][0], "pkg_name": pkg_name(pkg, name)})
    return found


def pkg_name(package_id, fallback):
    # "path+file:///…/server#strata@0.1.0" or "strata 0.1.0 (path+file://…)"
    if "#" in package_id:
        tail = package_id.rsplit("#", 1)[1]
        return tail.split("@", 1)[0] if "@" in tail else fallback
    return package_id.split(" ", 1)[0]


def run_group(name, bins, failures, lock):
    for b in bins:
        env = dict(os.environ, CARGO_MANIFEST_DIR=b["dir"], CARGO_PKG_NAME=b["pkg_name"])
        with lock:
            print("[%s]      Running %s %s (%s)" % (name, b["kind"], b["target"], b["exe"]), flush=True)
        p = subprocess.Popen([b["exe"]], cwd=b["dir"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, errors="replace")
        lines = []
        for line in p.stdout:
            lines.append(line)
            with lock:
                if line.startswith("test result:"):
                    # cargo's own shape, unprefixed, with the binary it belongs to
                    sys.stdout.write("     Running %s (%s)\n%s" % (b["target"], b["exe"], line))
                    totals.add(line)
                elif line.startswith("running ") and line.rstrip().endswith((" tests", " test")):
                    sys.stdout.write(line)  # cargo's "running N tests", unprefixed too
                else:
                    sys.stdout.write("[%s] %s" % (name, line))
                sys.stdout.flush()
        if p.wait() != 0:
            failures.append((name, b, lines))


class Totals:
    """Sums the counts of the `test result:` lines seen."""

    KEYS = ("passed", "failed", "ignored", "measured", "filtered out")

    def __init__(self):
        self.counts = dict.fromkeys(self.KEYS, 0)
        self.binaries = 0

    def add(self, line):
        self.binaries += 1
        for part in line.split(";"):
            words = part.replace("test result: ok.", "").replace("test result: FAILED.", "").split()
            if len(words) >= 2 and words[0].isdigit() and " ".join(words[1:]).strip() in self.KEYS:
                self.counts[" ".join(words[1:]).strip()] += int(words[0])


totals = Totals()


def main():
    bins = binaries()
    long = [b for b in bins if (b["pkg_name"], b["target"]) == LONG]
    rest = [b for b in bins if (b["pkg_name"], b["target"]) != LONG]
    failures, lock = [], threading.Lock()
    threads = [threading.Thread(target=run_group, args=("server-it", long, failures, lock)),
               threading.Thread(target=run_group, args=("tests", rest, failures, lock))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("ran %d test binaries (%d beside the rest)" % (len(bins), len(long)))
    c = totals.counts
    print("all %d binaries: %d passed; %d failed; %d ignored; %d filtered out"
          % (totals.binaries, c["passed"], c["failed"], c["ignored"], c["filtered out"]))
    for name, b, lines in failures:
        print("\n=== %s failed (%s); its failures again:" % (b["exe"], name))
        text = "".join(lines)
        i = text.find("\nfailures:\n")
        sys.stdout.write(text[i:] if i >= 0 else "".join(lines[-40:]))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
