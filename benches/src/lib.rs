//! # strata-benches — benchmarks
//!
//! Criterion micro-benchmarks live in `benches/benches/*.rs` (each opens with
//! what it measures and how to run it); end-to-end comparisons against
//! VictoriaMetrics, InfluxDB and Prometheus use `../shared/peer-bench` with
//! the `strata` binary (see `docs/benchmarks/`).
//!
//! The library holds shared data generators for the benches, and the
//! plain-`main` benches' helpers: their environment knobs ([`env_or`]), the
//! load they ran under ([`load_average`]) and the [`median`] of their runs.
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))] // libraries log through tracing; only binaries print
#![cfg_attr(test, allow(clippy::disallowed_methods))] // unit tests own their runtimes and threads (clippy.toml)

/// One line of IoT telemetry shaped like `../shared/peer-bench/gen_iot.py`
/// output (ten float fields, five tags, nanosecond timestamp).
pub fn iot_line(out: &mut String, device: usize, step: usize, ts_ns: i64) {
    use std::fmt::Write;
    let farm = device / 50;
    let kind = ["soil", "weather", "tank", "drone"][device % 4];
    let region = ["eu", "us", "br"][device % 3];
    let tenant = ["acme", "globex", "initech"][device % 3];
    let w = |base: f64, amp: f64, dec: usize| {
        let x = ((device * 7919 + step * 31) % 1000) as f64 / 1000.0;
        format!("{:.*}", dec, base + amp * (x - 0.5))
    };
    let _ = writeln!(
        out,
        "sensors,device=dev-{device:07},farm=farm-{farm:04},kind={kind},region={region},tenant={tenant} \
         ph={},moisture={},temp={},humidity={},nitrogen={},ec={},battery={},rssi={},light={},wind={} {ts_ns}",
        w(6.5, 1.0, 2),
        w(32.0, 10.0, 1),
        w(18.0, 8.0, 2),
        w(65.0, 20.0, 1),
        w(40.0, 20.0, 1),
        w(1.2, 0.5, 3),
        w(3.9, 0.2, 3),
        w(-78.0, 20.0, 0),
        w(20000.0, 5000.0, 0),
        w(3.5, 3.0, 1),
    );
}

/// True when the bench binary `name` was started by `cargo bench` (which
/// passes `--bench`); otherwise (`cargo test --benches` runs bench binaries
/// without it) it says how to run it and returns false, so a bench whose
/// setup takes minutes does nothing under the test command.
#[cfg_attr(not(test), expect(clippy::print_stdout, reason = "the bench binary's one line to its runner"))]
pub fn invoked_by_cargo_bench(name: &str) -> bool {
    let bench = std::env::args().any(|a| a == "--bench");
    if !bench {
        println!("{name}: run with `cargo bench` (see the module doc)");
    }
    bench
}

/// The environment variable `name` parsed as a `T`, or `default` when it is
/// unset or does not parse (the benches' size and run-count knobs).
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The 1, 5 and 15 minute load averages from `/proc/loadavg` (empty where
/// `/proc` does not say): every record states the load it ran under.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The median of `v` (sorted in place; the upper one of an even count, NaN
/// when empty).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}
