//! The cost of the right to erasure in the cold tier (issue 18's closing
//! note): one device erased over 1 day, and another over all 30 days, of a
//! fleet rolled the way the compactor rolls it.
//!
//! Data: `DEVICES` devices (default 1,000) with one `temp` series each, a
//! sample every 5 minutes for 30 days, rolled in daily buckets (generated a
//! day at a time): per day the samples (`ColdTier::append`), the series
//! table, and the 5 m and 1 h rollups, one commit source each, as the
//! compactor's roll writes them. Then `ColdTier::erase_with` (no orphan
//! grace) of device `DEVICES / 2` over one day (day `DAYS / 3`: day 10),
//! and of device `DEVICES / 2 + 1` over all time, each followed by `verify_erased` (asserted all zero).
//!
//! Prints the roll (samples, bytes of samples files, time), and per erase
//! its time, the verify's time and the erase report (JSON: files and bytes
//! rewritten, rollup rows recomputed, …), with the load average; `RUNS`
//! (default 1) repeats all of it on fresh data and prints the medians.
//!
//! Run (release; the host is shared: note the load):
//! `CARGO_TARGET_DIR=/root/.cache/strata-target-q cargo bench -p strata-benches --bench cold_erase`
//! with `DEVICES` (1000), `DAYS` (30), `RUNS` (1) in the environment.
//! Replaces the ignored test `erase_cost_one_device_over_one_and_thirty_days`
//! of `cold-tier/tests/it/erase.rs` (issue 21 point 6), whose debug-build
//! figures of 2026-12-03 were: 1,000 devices (8.6 M samples, 7.2 MB):
//! 1 day 1.5 s, 30 days 8.6 s; 10,000 devices (86 M samples, 112 MB):
//! 7.5 s and 102 s.
#![allow(clippy::disallowed_methods)] // bench code owns its runtimes (clippy.toml)
#![allow(clippy::print_stdout, clippy::print_stderr)] // a bench prints its figures

use std::time::{Duration, Instant};

use strata_benches::{env_or, load_average, median};
use strata_cold_tier::{
    ColdTier, ColdTierConfig, CommitSource, EraseOptions, EraseRequest, Rollup, SeriesEntry, SeriesRollup,
    SeriesSamples, file_prefix,
};
use strata_schemas::{Labels, Matcher, Sample, TenantId};

const DAY: i64 = 86_400_000;
const STEP_MS: i64 = 300_000;
/// Midnight UTC, 2023-11-14.
const DAY0: i64 = 1_699_920_000_000;

/// Device `d`'s samples of day `day`.
fn device_day(t: &TenantId, d: usize, day: i64) -> SeriesSamples {
    let device = format!("dev-{d:05}");
    let labels = Labels::from_pairs([("__name__", "temp"), ("device", device.as_str()), ("site", "north")]);
    SeriesSamples {
        series_id: strata_schemas::series_id(t, &labels),
        device_hash: strata_schemas::device_hash_of(t, &device),
        labels,
        samples: (0..DAY / STEP_MS)
            .map(|i| Sample::new(DAY0 + day * DAY + i * STEP_MS, d as f64 + ((i * 7 + d as i64) % 100) as f64 / 4.0))
            .collect(),
    }
}

/// One day's bucket rolled as the compactor rolls it: the samples, the
/// series table's entries, then each rollup, all with the bucket's source.
fn roll_day(rt: &tokio::runtime::Runtime, cold: &ColdTier, t: &TenantId, data: &[SeriesSamples], day: i64) {
    let b = DAY0 + day * DAY;
    let source = CommitSource { source: format!("hot:{t}:{b}"), segments: String::new() };
    rt.block_on(cold.append(t, data, &source)).unwrap();
    let view = cold.series_view();
    let entries: Vec<SeriesEntry> = data.iter().map(SeriesEntry::from).collect();
    let written = rt.block_on(view.write_series_files(t, &entries, &file_prefix(&format!("series:{t}:{b}")))).unwrap();
    rt.block_on(view.commit_series_files(t, written, &source.source)).unwrap();
    for r in Rollup::ALL {
        let view = cold.rollup_view(r);
        let rolled: Vec<SeriesRollup> =
            data.iter().map(|s| SeriesRollup::of(s, r.width_ms())).filter(|s| !s.points.is_empty()).collect();
        let prefix = file_prefix(&format!("rollup{}:{t}:{b}", r.name()));
        let written = rt.block_on(view.write_rollup_files(t, &rolled, i64::MIN, &prefix)).unwrap();
        rt.block_on(view.commit_files(t, written, &source)).unwrap();
    }
}

/// One run on fresh data: the erase times (1 day, all days) in seconds.
fn run(rt: &tokio::runtime::Runtime, devices: usize, days: i64) -> [f64; 2] {
    let dir = tempfile::tempdir().unwrap();
    let config = ColdTierConfig { enabled: true, ..ColdTierConfig::default() };
    let cold = rt.block_on(ColdTier::open(&config, dir.path())).unwrap();
    let t = TenantId::new("acme").unwrap();
    let t0 = Instant::now();
    for day in 0..days {
        let data: Vec<SeriesSamples> = (0..devices).map(|d| device_day(&t, d, day)).collect();
        roll_day(rt, &cold, &t, &data, day);
    }
    let stored = rt.block_on(cold.stored_bytes(&t)).unwrap();
    println!(
        "rolled {devices} devices x {days} days ({} samples, {stored} B of samples files) in {:.1?}",
        devices as i64 * days * DAY / STEP_MS,
        t0.elapsed()
    );
    let opts = EraseOptions { orphan_grace: Duration::ZERO };
    let (a, b) = (format!("dev-{:05}", devices / 2), format!("dev-{:05}", devices / 2 + 1));
    let one_day = (DAY0 + (days / 3) * DAY, DAY0 + (days / 3 + 1) * DAY - 1);
    let mut took = [0.0; 2];
    for (i, (device, (start, end), over)) in
        [(a, one_day, "1 day".to_owned()), (b, (i64::MIN, i64::MAX), format!("{days} days"))].into_iter().enumerate()
    {
        let req = EraseRequest { selectors: vec![vec![Matcher::equal("device", device.as_str())]], start, end };
        let load = load_average();
        let t0 = Instant::now();
        let r = rt.block_on(cold.erase_with(&t, &req, &opts)).unwrap();
        took[i] = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let v = rt.block_on(cold.verify_erased(&t, &req)).unwrap();
        println!(
            "erase {device} of {devices} over {over}: {:.2}s (verify {:.2?}), load {load}: {}",
            took[i],
            t1.elapsed(),
            serde_json::to_string(&r).unwrap()
        );
        assert_eq!((v.rows_found, v.rollup_rows_found, v.series_rows_found, v.unreferenced_objects), (0, 0, 0, 0));
    }
    took
}

fn main() {
    let (devices, days, runs) = (env_or("DEVICES", 1000usize), env_or("DAYS", 30i64), env_or("RUNS", 1usize));
    if !strata_benches::invoked_by_cargo_bench("cold_erase") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (mut one, mut all) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let [a, b] = run(&rt, devices, days);
        one.push(a);
        all.push(b);
    }
    println!(
        "erase one device of {devices}: median {:.2}s over 1 day, {:.2}s over {days} days ({runs} runs)",
        median(&mut one),
        median(&mut all)
    );
}
