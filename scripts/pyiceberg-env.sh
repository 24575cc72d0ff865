#!/usr/bin/env bash
# Prepares the Python environment the cold-tier interoperability test reads
# Strata's Iceberg tables with (PyIceberg + PyArrow + SQLAlchemy for the SQL
# catalog), and prints the path of its python interpreter.
#
# The venv lives outside the clone, in ${STRATA_TOOLS:-~/.cache/strata-tools}/pyenv,
# and is reused when it already has the packages. Needs python3 with venv and
# network access to PyPI on first use.
set -euo pipefail
tools="${STRATA_TOOLS:-$HOME/.cache/strata-tools}"
venv="$tools/pyenv"
# Pinned: the versions the interop test was written and last passed against.
packages=(pyiceberg==0.12.0 pyarrow==26.0.1 sqlalchemy==2.1.9)
check='import importlib.metadata as m, sys; sys.exit(any(m.version(p.split("==")[0]) != p.split("==")[1] for p in sys.argv[1:]))'
if ! "$venv/bin/python" -c "$check" "${packages[@]}" >/dev/null 2>&1; then
    mkdir -p "$tools"
    python3 -m venv "$venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${packages[@]}" >&2
fi
echo "$venv/bin/python"
