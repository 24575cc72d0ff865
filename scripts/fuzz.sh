#!/usr/bin/env bash
# Coverage-guided fuzzing of Strata's decoders with libFuzzer (cargo-fuzz,
# nightly toolchain): runs each target of fuzz/ for a bounded time, one
# after the other, and prints the executions of each.
#
#   scripts/fuzz.sh [seconds-per-target] [target...]     (default: 60 s, every target)
#
# Targets and what they check: fuzz-targets/src/lib.rs. Each run starts from
# the committed seeds in fuzz-targets/corpus/<target>/ and adds the inputs it
# finds interesting to fuzz/corpus/<target>/ (not committed). A crash stops
# that target: libFuzzer saves the input under fuzz/artifacts/<target>/;
# fix the decoder, then commit the input as
# fuzz-targets/regressions/<target>/<what-it-found> (cargo test replays it).
#
# cargo-fuzz is installed once into ~/.cache/strata-tools/cargo-fuzz.
# Environment: CARGO_TARGET_DIR (default ~/.cache/strata-fuzz-target, apart
# from the stable builds), FUZZ_SANITIZER (default none: the workspace is
# safe Rust, and what is sought is panics, overflow and runaway allocation,
# which libFuzzer catches without one; "address" for ASan), FUZZ_JOBS
# (libFuzzer -jobs, default 1), FUZZ_ARGS (more libFuzzer flags).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

seconds=${1:-60}
shift || true
all=$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^strata-fuzz$')
targets=${*:-$all}

tools="$HOME/.cache/strata-tools/cargo-fuzz"
if [ ! -x "$tools/bin/cargo-fuzz" ]; then
    echo "installing cargo-fuzz into $tools"
    cargo install --locked --root "$tools" cargo-fuzz
fi
export PATH="$tools/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/strata-fuzz-target}"
sanitizer=${FUZZ_SANITIZER:-none}
rustup run nightly rustc --version >/dev/null 2>&1 || { echo "the nightly toolchain is needed: rustup toolchain install nightly"; exit 1; }

summary=
status=0
cd fuzz
for t in $targets; do
    [ -f "fuzz_targets/$t.rs" ] || { echo "no fuzz target $t (have: $all)"; exit 1; }
    mkdir -p "corpus/$t"
    log=$(mktemp)
    echo "=== $t: $seconds s"
    # -a: debug assertions and overflow checks, as in the test profile.
    set +e
    cargo +nightly fuzz run -a -s "$sanitizer" "$t" "corpus/$t" "$root/fuzz-targets/corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
        ${FUZZ_JOBS:+-jobs=$FUZZ_JOBS -workers=$FUZZ_JOBS} ${FUZZ_ARGS:-} 2>&1 \
        | tee "$log" | grep --line-buffered -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^==[0-9]+==|^SUMMARY|panicked at'
    rc=${PIPESTATUS[0]}
    set -e
    if [ "$rc" = 0 ]; then
        result=ok
    else
        result="CRASH (input in fuzz/artifacts/$t/)"
        status=1
        tail -n 40 "$log"
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    summary+=$(printf '%-14s %12s executions  %s' "$t" "${execs:-?}" "$result")$'\n'
    rm -f "$log"
done
printf '\n=== executions per target (%s s each)\n%s' "$seconds" "$summary"
exit $status
