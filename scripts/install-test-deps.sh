#!/usr/bin/env bash
# Installs the external programs the end-to-end tests run against.
#
#   prometheus   Debian's `prometheus` package: server/tests/it/remote_write.rs
#                starts a real Prometheus that remote-writes into strata, and
#                server/tests/it/promtool.rs runs its promtool against strata.
#
# Idempotent and non-interactive: does nothing when the program is already on
# PATH. Needs root (or sudo) only when something must be installed.
set -euo pipefail

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -E "$@"
    else
        echo "install-test-deps: need root or sudo to run: $*" >&2
        exit 1
    fi
}

if ! command -v prometheus >/dev/null 2>&1; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install-test-deps: prometheus is missing and apt-get is not available; install Prometheus (>= 2.25) so that \`prometheus\` is on PATH" >&2
        exit 1
    fi
    echo "install-test-deps: installing Debian's prometheus package"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -q
    # --no-install-recommends: the binary is all the tests need; the package's
    # service is not used (the tests start their own instances).
    as_root apt-get install -y -q --no-install-recommends prometheus
fi

echo "install-test-deps: $(command -v prometheus): $(prometheus --version 2>&1 | head -n 1)"
