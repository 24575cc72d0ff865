#!/usr/bin/env bash
# Installs `s3s-fs`, the S3-compatible server (backed by a local directory) that
# the cold tier's S3 test (cold-tier/tests/s3.rs) starts on loopback.
#
# The binary is cached outside the clone, under
#   ~/.cache/strata-tools/s3s-fs-0.14.1/bin/s3s-fs
# (override the root with STRATA_TOOLS_DIR). Idempotent: does nothing when the
# binary already exists. Building from source takes several minutes on a
# two-core machine; it uses its own target directory so that it neither
# invalidates nor blocks the workspace build.
#
# 0.14.1 is the newest release that builds with this machine's rustc.
set -euo pipefail

VERSION=0.14.1
TOOLS="${STRATA_TOOLS_DIR:-$HOME/.cache/strata-tools}"
ROOT="$TOOLS/s3s-fs-$VERSION"
BIN="$ROOT/bin/s3s-fs"

if [ -x "$BIN" ]; then
    echo "install-s3s: $BIN already installed"
    exit 0
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "install-s3s: cargo is required to build s3s-fs" >&2
    exit 1
fi

mkdir -p "$TOOLS/build"
echo "install-s3s: building s3s-fs $VERSION into $ROOT (takes minutes)"
# CARGO_TARGET_DIR would override --target-dir and mix this build with the
# workspace's; unset it for this command only.
# The same light release profile as tansu's build (scripts/tool-build-profile.sh),
# in the same target dir, so the two share their common dependencies.
. "$(dirname "$0")/tool-build-profile.sh"
env -u CARGO_TARGET_DIR nice -n 5 cargo install --locked "s3s-fs@$VERSION" --features binary \
    --root "$ROOT" --target-dir "$TOOLS/build"

if [ ! -x "$BIN" ]; then
    echo "install-s3s: cargo install finished but $BIN is missing" >&2
    exit 1
fi
echo "install-s3s: installed $BIN"
