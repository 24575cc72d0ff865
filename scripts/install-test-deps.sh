#!/usr/bin/env bash
# Installs the external programs the end-to-end tests run against.
#
#   prometheus   Debian's `prometheus` package: server/tests/it/remote_write.rs
#                starts a real Prometheus that remote-writes into strata, and
#                server/tests/it/promtool.rs runs its promtool against strata.
#   tansu        a Kafka-compatible broker in Rust (crates.io `tansu`, pinned
#                below, built from scripts/tansu/ with its in-memory engine
#                `memory://` and its SlateDB engine `slatedb://memory`, the one
#                whose DeleteRecords works; see scripts/tansu/Cargo.toml): the
#                broker server/tests/it/kafka.rs starts on loopback. Built once
#                into ~/.cache/strata-tools/tansu-<version> (outside the clone,
#                so CI caches it) with its own target dir; the tests look for it
#                there, or at $STRATA_TANSU_BIN.
#   kassandra    an in-memory CQL v4 server (crates.io `kassandra`, served by
#                scripts/kassandra-server): the ScyllaDB hot tier's tests
#                (hot-scylla/tests/it, server/tests/it/scylla.rs). Built once
#                into ~/.cache/strata-tools/kassandra-<version>, like tansu.
#   postgresql   Debian's package (scripts/install-postgres.sh): the tenant
#                registry and the cold tier's catalog on a real PostgreSQL.
#   s3s-fs       an S3-compatible server on loopback (scripts/install-s3s.sh,
#                cached like tansu): the cold tier on S3 for real.
#   vmalert      Debian's `victoria-metrics` package: server/tests/it/clients.rs
#                runs vmalert's recording and alerting rules against strata (and
#                benches/drivers/edge.py compares strata-edge with its vmagent).
#   openssl, curl, requests  server/tests/it/tls.rs: a throwaway CA (openssl
#                CLI), HTTPS clients (curl; Python requests from PyPI, pinned below).
#   influxdb-client  InfluxData's Python client from PyPI (pinned below):
#                server/tests/it/clients.rs writes through it unchanged.
#   opentelemetry-sdk + opentelemetry-exporter-otlp-proto-http  from PyPI
#                (pinned below): clients.rs exports metrics over OTLP/HTTP.
#   mosquitto    Debian's `mosquitto` and `mosquitto-clients`: the edge agent's
#                MQTT intake against a real broker, `mosquitto_pub` publishing
#                (edge-agent/tests/it/mqtt.rs; the broker is /usr/sbin/mosquitto).
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

# Mosquitto's broker lives in /usr/sbin, often not on a non-root PATH.
have_mosquitto() {
    { command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; } && command -v mosquitto_pub >/dev/null 2>&1
}

# Debian packages, installed in one apt transaction (one `apt-get update`).
pkgs=()
command -v prometheus >/dev/null 2>&1 || pkgs+=(prometheus)
# mosquitto (the broker) and mosquitto-clients (mosquitto_pub, a real MQTT
# client): edge-agent/tests/it/mqtt.rs starts its own broker on loopback.
have_mosquitto || pkgs+=(mosquitto mosquitto-clients)
command -v vmalert >/dev/null 2>&1 || pkgs+=(victoria-metrics)
# openssl and curl: server/tests/it/tls.rs makes a throwaway CA with the openssl
# CLI and talks HTTPS to strata with curl.
command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
command -v curl >/dev/null 2>&1 || pkgs+=(curl)
if [ "${#pkgs[@]}" -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install-test-deps: ${pkgs[*]} missing and apt-get is not available; install Prometheus (>= 2.25) so that \`prometheus\` is on PATH, and Mosquitto (broker and clients)" >&2
        exit 1
    fi
    echo "install-test-deps: installing Debian's ${pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -q
    # --no-install-recommends: the binaries are all the tests need; the
    # packages' services are not used (the tests start their own instances).
    # PostgreSQL in the same transaction when it is missing too
    # (scripts/install-postgres.sh then finds it).
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || pkgs+=(postgresql)
    as_root apt-get install -y -q --no-install-recommends "${pkgs[@]}"
fi

echo "install-test-deps: $(command -v prometheus): $(prometheus --version 2>&1 | head -n 1)"
echo "install-test-deps: vmalert at $(command -v vmalert)"

# requests (PyPI): server/tests/it/tls.rs's Python HTTPS client (verify= the test CA).
REQUESTS_VERSION=2.32.3
if ! python3 -c 'import requests' >/dev/null 2>&1; then
    echo "install-test-deps: installing requests $REQUESTS_VERSION (PyPI)"
    python3 -m pip install -q "requests==$REQUESTS_VERSION" \
        || python3 -m pip install -q --break-system-packages "requests==$REQUESTS_VERSION"
fi

INFLUXDB_CLIENT_VERSION=1.50.0
if ! python3 -c 'import influxdb_client' >/dev/null 2>&1; then
    echo "install-test-deps: installing influxdb-client $INFLUXDB_CLIENT_VERSION (PyPI)"
    python3 -m pip install -q "influxdb-client==$INFLUXDB_CLIENT_VERSION" \
        || python3 -m pip install -q --break-system-packages "influxdb-client==$INFLUXDB_CLIENT_VERSION"
fi
echo "install-test-deps: influxdb-client $(python3 -c 'import influxdb_client; print(influxdb_client.__version__)')"

OTEL_VERSION=1.45.2
if ! python3 -c 'import opentelemetry.exporter.otlp.proto.http.metric_exporter' >/dev/null 2>&1; then
    echo "install-test-deps: installing the OpenTelemetry Python SDK $OTEL_VERSION and its OTLP/HTTP exporter (PyPI)"
    python3 -m pip install -q "opentelemetry-sdk==$OTEL_VERSION" "opentelemetry-exporter-otlp-proto-http==$OTEL_VERSION" \
        || python3 -m pip install -q --break-system-packages "opentelemetry-sdk==$OTEL_VERSION" \
            "opentelemetry-exporter-otlp-proto-http==$OTEL_VERSION"
fi
echo "install-test-deps: opentelemetry-sdk $(python3 -c 'from importlib.metadata import version; print(version("opentelemetry-sdk"))')"
echo "install-test-deps: $(command -v mosquitto || echo /usr/sbin/mosquitto): $("$(command -v mosquitto || echo /usr/sbin/mosquitto)" -h 2>&1 | head -n 1)"

TANSU_VERSION=0.6.0
TOOLS="${STRATA_TOOLS_DIR:-$HOME/.cache/strata-tools}"
TANSU_ROOT="$TOOLS/tansu-$TANSU_VERSION"
# A usable binary has this version and both engines (a cache built before
# scripts/tansu/, with dynostore only, is rebuilt).
tansu_ok() {
    [ -x "$1/bin/tansu" ] || return 1
    grep -q "$TANSU_VERSION" <<<"$("$1/bin/tansu" --version 2>&1)" \
        && grep -q "^Storage engines:.*dynostore.*slatedb" <<<"$("$1/bin/tansu" --help 2>&1)"
}
if ! tansu_ok "$TANSU_ROOT"; then
    # A build started by hand into tansu-build/ (same version and features):
    # wait for it instead of starting a second one, then adopt it.
    if [ -d "$TOOLS/tansu-build" ]; then
        while [ ! -x "$TOOLS/tansu-build/bin/tansu" ] && pgrep -f "cargo install .*tansu-build" >/dev/null 2>&1; do
            echo "install-test-deps: waiting for the tansu build running into $TOOLS/tansu-build"
            sleep 30
        done
        if tansu_ok "$TOOLS/tansu-build"; then
            rm -rf "$TANSU_ROOT"
            mv "$TOOLS/tansu-build" "$TANSU_ROOT"
        fi
    fi
fi
if ! tansu_ok "$TANSU_ROOT"; then
    echo "install-test-deps: building tansu $TANSU_VERSION into $TANSU_ROOT (takes a while, once)"
    mkdir -p "$TOOLS"
    # Its own target dir: CI exports CARGO_TARGET_DIR for the workspace.
    # A light release profile (no LTO, opt-level 1, many codegen units): the
    # tests need a working broker, not a fast one, and this halves a cold build.
    (unset CARGO_TARGET_DIR; . "$(dirname "$0")/tool-build-profile.sh"
     cargo install --locked --force --path "$(dirname "$0")/tansu" \
        --root "$TANSU_ROOT" --target-dir "$TOOLS/build")
fi
echo "install-test-deps: $TANSU_ROOT/bin/tansu: $("$TANSU_ROOT/bin/tansu" --version 2>&1 | head -n 1)"

# kassandra (crates.io `kassandra`, pinned in scripts/kassandra-server/Cargo.toml):
# an in-memory, single-node CQL v4 server the ScyllaDB hot tier's tests run
# against (hot-scylla/tests/it, server/tests/it/scylla.rs). The crate is a
# library; scripts/kassandra-server is the small program serving it. Built
# once into ~/.cache/strata-tools/kassandra-<version> like tansu (light
# profile, the shared tools target dir); the tests look for it there, or at
# $STRATA_KASSANDRA_BIN.
KASSANDRA_VERSION=0.14.0
KASSANDRA_ROOT="$TOOLS/kassandra-$KASSANDRA_VERSION"
# The serving program's revision (its --version): a cache built from an older one is rebuilt.
KASSANDRA_SERVER_REV=r2
if ! "$KASSANDRA_ROOT/bin/kassandra" --version 2>/dev/null | grep -q "$KASSANDRA_SERVER_REV (kassandra $KASSANDRA_VERSION"; then
    echo "install-test-deps: building the kassandra CQL server ($KASSANDRA_VERSION) into $KASSANDRA_ROOT (once)"
    mkdir -p "$TOOLS"
    (unset CARGO_TARGET_DIR; . "$(dirname "$0")/tool-build-profile.sh"
     cargo install --locked --force --path "$(dirname "$0")/kassandra-server" \
        --root "$KASSANDRA_ROOT" --target-dir "$TOOLS/build")
fi
echo "install-test-deps: $KASSANDRA_ROOT/bin/kassandra: $("$KASSANDRA_ROOT/bin/kassandra" --version 2>&1 | head -n 1)"

# PostgreSQL server programs (server/tests/it/postgres.rs, the cold tier's
# PostgreSQL catalog test) and s3s-fs (compactor/tests/it/s3.rs).
bash "$(dirname "$0")/install-postgres.sh"
bash "$(dirname "$0")/install-s3s.sh"

# --- the web console's browser test (server/tests/it/console.rs) -------------
#   chromium         Debian's package, driven headless by
#   playwright-core  from npm (pinned below, no bundled browser download),
#                    installed under ~/.cache/strata-tools/node, where
#                    server/tests/browser/console.mjs looks for it
#                    (or $PLAYWRIGHT_CORE_DIR); Node.js from Debian if missing.
# Node is only for the test: the console itself is plain files in the binary.
PLAYWRIGHT_CORE_VERSION=1.65.1
console_pkgs=()
[ -x /usr/bin/chromium ] || console_pkgs+=(chromium)
command -v node >/dev/null 2>&1 || console_pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || console_pkgs+=(npm)
if [ "${#console_pkgs[@]}" -gt 0 ]; then
    echo "install-test-deps: installing Debian's ${console_pkgs[*]} (the console's browser test)"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -q
    as_root apt-get install -y -q --no-install-recommends "${console_pkgs[@]}"
fi
NODE_TOOLS="${STRATA_TOOLS_DIR:-$HOME/.cache/strata-tools}/node"
if ! grep -qs "\"version\": \"$PLAYWRIGHT_CORE_VERSION\"" "$NODE_TOOLS/node_modules/playwright-core/package.json"; then
    echo "install-test-deps: installing playwright-core $PLAYWRIGHT_CORE_VERSION (npm) into $NODE_TOOLS"
    mkdir -p "$NODE_TOOLS"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix "$NODE_TOOLS" --no-audit --no-fund --silent \
        "playwright-core@$PLAYWRIGHT_CORE_VERSION"
fi
echo "install-test-deps: $(/usr/bin/chromium --version 2>/dev/null | head -n 1), node $(node --version), playwright-core $PLAYWRIGHT_CORE_VERSION"
