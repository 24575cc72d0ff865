#!/usr/bin/env bash
# Prepares the Python environment the benchmark drivers plot with (matplotlib,
# for benches/drivers/soak.py's PNG) and prints the path of its python
# interpreter. The drivers themselves need only the standard library; they
# run their plotting step under this interpreter when the one running them
# has no matplotlib.
#
# The venv lives outside the clone, in ${STRATA_TOOLS:-~/.cache/strata-tools}/plotenv,
# and is reused when it already has the package. Needs python3 with venv and
# network access to PyPI on first use.
set -euo pipefail
tools="${STRATA_TOOLS:-$HOME/.cache/strata-tools}"
venv="$tools/plotenv"
# Pinned: the version the soak plot was written and last drawn with.
packages=(matplotlib==3.11.2)
check='import importlib.metadata as m, sys; sys.exit(any(m.version(p.split("==")[0]) != p.split("==")[1] for p in sys.argv[1:]))'
if ! "$venv/bin/python" -c "$check" "${packages[@]}" >/dev/null 2>&1; then
    mkdir -p "$tools"
    python3 -m venv "$venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${packages[@]}" >&2
fi
echo "$venv/bin/python"
