#!/usr/bin/env bash
# The whole test suite: installs the external programs the end-to-end tests
# run against (scripts/install-test-deps.sh), then runs every test of the
# workspace. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
exec cargo test --workspace "$@"
