#!/usr/bin/env bash
# The whole test suite: installs the external programs the end-to-end tests
# run against (scripts/install-test-deps.sh), then runs every test of the
# workspace. Extra arguments go to `cargo test --workspace` as they are.
#
# Without arguments the tests are built once, then the server crate's
# end-to-end binary (which spends most of its time waiting on the servers
# and brokers it starts) runs beside every other test binary
# (scripts/run-test-binaries.py), then the doctests. STRATA_TEST_SERIAL=1
# runs the plain `cargo test --workspace` instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
if [ "${STRATA_TEST_SERIAL:-}" = 1 ] || [ "$#" -gt 0 ]; then
    exec cargo test --workspace "$@"
fi
cargo test --workspace --no-run
python3 scripts/run-test-binaries.py
cargo test --workspace --doc
