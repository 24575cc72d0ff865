#!/usr/bin/env bash
# Installs PostgreSQL's server programs (Debian's `postgresql` package) for
# server/tests/it/postgres.rs, which starts its own throwaway cluster on a
# loopback port (the package's own service is not used).
#
# Idempotent: does nothing when /usr/lib/postgresql/<version>/bin/initdb exists.
set -euo pipefail

if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    echo "install-postgres: $(ls -d /usr/lib/postgresql/*/bin | tail -n 1)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-postgres: PostgreSQL's server programs are missing and apt-get is not available; install PostgreSQL and set STRATA_TEST_PG_BIN to its bin directory" >&2
    exit 1
fi
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo -E "$@"; else
        echo "install-postgres: need root or sudo to run: $*" >&2
        exit 1
    fi
}
echo "install-postgres: installing Debian's postgresql package"
export DEBIAN_FRONTEND=noninteractive
as_root apt-get update -q
as_root apt-get install -y -q --no-install-recommends postgresql
echo "install-postgres: $(ls -d /usr/lib/postgresql/*/bin | tail -n 1)"
