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
if ! "$venv/bin/python" -c 'import pyiceberg, pyarrow, sqlalchemy' >/dev/null 2>&1; then
    mkdir -p "$tools"
    python3 -m venv "$venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check pyiceberg pyarrow sqlalchemy >&2
fi
echo "$venv/bin/python"
