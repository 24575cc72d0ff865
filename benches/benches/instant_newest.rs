//! A dense fleet instant query (issue 16 point 1, issue 20 point 3): each
//! series' newest sample read alone ([`ReadStore::select_newest`]) against
//! the read the engine made before, every sample of the 5-minute lookback.
//!
//! Data: `SERIES` series (default 10,000) `soil_moisture{farm, device}` in
//! 100 farms, each with `SAMPLES` samples (default 2,000: the soak's ~6.9
//! samples/s/series over 5 minutes) 150 ms apart, decimal values (two
//! decimals, like a sensor), in the embedded hot store. `LAYOUT`:
//! `mixed` (default: the older half flushed to a segment, the newer half in
//! the memtable, as between two flushes) or `flushed` (two segments, the
//! newest samples in the second).
//!
//! Compared, through the PromQL engine over the hot store (no HTTP, no JSON),
//! on the same data: **newest**, the hot store as it is; **full**, the same
//! store behind a wrapper whose `select_newest` hands over every sample of
//! the window (`select_each`), which is what the engine read before. The
//! answers must be equal. Queries at the newest sample's time:
//! `avg by (farm) (soil_moisture)` and `count(soil_moisture)`.
//!
//! Run (release; the host is shared: note the load):
//! `CARGO_TARGET_DIR=/root/.cache/strata-target-q cargo bench -p strata-benches --bench instant_newest`
//! with `SERIES`, `SAMPLES`, `LAYOUT`, `RUNS` (default 5), `ONLY`
//! (`newest` or `full`: one side, for a profiler) in the environment.
//! Prints every run (wall and process CPU ms), the median and the load average.
#![allow(clippy::disallowed_methods)] // bench code owns its threads (clippy.toml)
#![allow(clippy::print_stdout, clippy::print_stderr)] // a bench prints its figures

use std::sync::Arc;
use std::time::Instant;

use strata_benches::{env_or, load_average, median};
use strata_hot_store::{HotStore, HotStoreConfig};
use strata_query::{Engine, QueryConfig, Value};
use strata_schemas::{
    BatchSeries, Labels, Matcher, ReadError, ReadStore, Sample, SeriesData, TenantId, TimeRange, WriteBatch,
};

/// 2025-01-01 00:00 UTC.
const T0: i64 = 1_735_689_600_000;
const STEP_MS: i64 = 150;

/// The engine's read before `select_newest`: every sample of the window.
#[derive(Debug)]
struct Full(Arc<HotStore>);

impl ReadStore for Full {
    fn select(&self, t: &TenantId, m: &[Matcher], r: TimeRange) -> Result<Vec<SeriesData>, ReadError> {
        self.0.select(t, m, r)
    }

    fn select_each(
        &self,
        t: &TenantId,
        m: &[Matcher],
        r: TimeRange,
        each: &mut dyn FnMut(SeriesData) -> Result<(), ReadError>,
    ) -> Result<(), ReadError> {
        self.0.select_each(t, m, r, each)
    }

    fn select_newest(
        &self,
        t: &TenantId,
        m: &[Matcher],
        r: TimeRange,
        each: &mut dyn FnMut(SeriesData) -> Result<(), ReadError>,
    ) -> Result<(), ReadError> {
        self.0.select_each(t, m, r, each)
    }

    fn series(&self, t: &TenantId, m: &[Matcher], r: TimeRange) -> Result<Vec<Labels>, ReadError> {
        self.0.series(t, m, r)
    }
}

/// Writes `samples` samples of every series, `from` on, in batches of 500 series.
fn write(store: &HotStore, tenant: &TenantId, series: usize, from: usize, samples: usize, offset: &mut u64) {
    for first in (0..series).step_by(500) {
        let batch = (first..(first + 500).min(series))
            .map(|i| {
                let (farm, device) = (format!("farm-{:03}", i % 100), format!("dev-{i:05}"));
                let labels = Labels::from_pairs([("__name__", "soil_moisture"), ("farm", &farm), ("device", &device)]);
                BatchSeries {
                    id: strata_schemas::series_id(tenant, &labels),
                    device_hash: strata_schemas::hash::device_hash_of(tenant, &device),
                    labels,
                    samples: (from..from + samples)
                        .map(|k| {
                            let v = 20.0 + ((i * 7 + k * 13) % 2000) as f64 / 100.0;
                            Sample::new(T0 + k as i64 * STEP_MS, v)
                        })
                        .collect(),
                }
            })
            .collect();
        *offset += 1;
        store.apply(0, *offset, &WriteBatch { tenant: tenant.clone(), series: batch, origin: None }).expect("apply");
    }
}

fn process_cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 (utime, stime), counted from the state field (3) on; clock ticks of 10 ms.
    (ticks(11) + ticks(12)) * 10.0
}

/// Runs `q` at `t` `runs` times; prints each run and the median; returns the answer.
fn time(engine: &Engine, tenant: &TenantId, what: &str, q: &str, t: i64, runs: usize) -> Value {
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    let mut last = None;
    for run in 0..runs {
        let load = load_average();
        let (c0, w0) = (process_cpu_ms(), Instant::now());
        let r = engine.query_instant(tenant, q, t).expect(q);
        let (w, c) = (w0.elapsed().as_secs_f64() * 1000.0, process_cpu_ms() - c0);
        println!("  {what:6} run {run}: wall {w:8.1} ms, cpu {c:6.0} ms (load {load})");
        wall.push(w);
        cpu.push(c);
        last = Some(r.value);
    }
    println!("  {what:6} median: wall {:.1} ms, cpu {:.0} ms  `{q}`", median(&mut wall), median(&mut cpu));
    last.expect("runs > 0")
}

fn main() {
    let (series, samples) = (env_or("SERIES", 10_000usize), env_or("SAMPLES", 2_000usize));
    let (layout, runs, only) =
        (env_or("LAYOUT", "mixed".to_string()), env_or("RUNS", 5usize), env_or("ONLY", String::new()));
    let tenant = TenantId::new("bench").expect("tenant");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = HotStoreConfig {
        max_memtable_samples: usize::MAX / 4,
        memtable_hard_limit_samples: usize::MAX / 2,
        ..HotStoreConfig::default()
    };
    let store = Arc::new(HotStore::open(dir.path(), config).expect("open"));
    let w0 = Instant::now();
    let mut offset = 0;
    let half = samples / 2;
    write(&store, &tenant, series, 0, half, &mut offset);
    store.flush().expect("flush");
    write(&store, &tenant, series, half, samples - half, &mut offset);
    if layout == "flushed" {
        store.flush().expect("flush");
    }
    println!(
        "{series} series x {samples} samples ({layout}), written in {:.1} s; load {}",
        w0.elapsed().as_secs_f64(),
        load_average()
    );
    let t = T0 + (samples as i64 - 1) * STEP_MS;
    assert!(samples as i64 * STEP_MS <= 300_000, "every sample within the 5-minute lookback");
    let newest = Engine::new(Arc::clone(&store) as Arc<dyn ReadStore>, QueryConfig::default());
    let full = Engine::new(Arc::new(Full(Arc::clone(&store))) as Arc<dyn ReadStore>, QueryConfig::default());
    for q in ["avg by (farm) (soil_moisture)", "count(soil_moisture)"] {
        println!("{q}");
        let a = (only != "full").then(|| time(&newest, &tenant, "newest", q, t, runs));
        let b = (only != "newest").then(|| time(&full, &tenant, "full", q, t, runs));
        if let (Some(a), Some(b)) = (a, b) {
            assert_eq!(a, b, "{q}: the answers differ");
        }
    }
}
