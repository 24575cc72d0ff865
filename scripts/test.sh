#!/usr/bin/env bash
# The whole test suite: installs the external programs the end-to-end tests
# run against (scripts/install-test-deps.sh), then runs every test of the
# workspace. Extra arguments go to `cargo test`.
#
# The tests are built once, then run as two `cargo test` processes side by
# side: the server crate (`-p strata`, whose end-to-end tests spend most of
# their time waiting on the servers and brokers they start: ~3.5 of the
# suite's ~6.5 minutes on two cores) and every other crate. Each line is
# prefixed with its half ([server] or [crates]); a failing half's failures
# are printed again at the end. STRATA_TEST_SERIAL=1 runs the plain
# `cargo test --workspace` instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
if [ "${STRATA_TEST_SERIAL:-}" = 1 ]; then
    exec cargo test --workspace "$@"
fi

# Build every test binary first (one cargo holds the build lock at a time;
# the two runs below then only run what is built).
cargo test --workspace --no-run "$@"

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
run_half() {
    local name=$1
    shift
    # pipefail: the half's status is cargo's, not sed's.
    set -o pipefail
    cargo test "$@" 2>&1 | tee "$logs/$name.log" | sed -u "s/^/[$name] /"
}
run_half server -p strata "$@" &
server_pid=$!
run_half crates --workspace --exclude strata "$@" &
crates_pid=$!
status=0
failed=()
wait "$server_pid" || { status=1; failed+=(server); }
wait "$crates_pid" || { status=1; failed+=(crates); }
for half in "${failed[@]}"; do
    echo
    echo "=== the $half half failed; its failures again:"
    # libtest's summary of each failing binary, or cargo's own error when
    # nothing ran (a build error, a bad argument).
    grep -E -A1000 '^failures:$' "$logs/$half.log" || tail -n 40 "$logs/$half.log"
done
exit "$status"
