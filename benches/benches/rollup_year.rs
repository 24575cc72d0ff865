//! The 12-month trend from the 1 d rollup tier (issue 16 point 3), against
//! the raw-data cost of the same query.
//!
//! Compared, through the PromQL engine over the cold tier (no HTTP, no JSON):
//!
//! * **year**: `avg by (farm) (avg_over_time(soil_moisture[1d]))` over 365
//!   days at a 1 d step for `FARMS` farms (default 40,000, one series each),
//!   and one farm's trend `avg_over_time(soil_moisture{farm="farm-00042"}[1d])`,
//!   answered from the 1 d tier (`rollup1d_<tenant>`), read as a grid of
//!   cells (`ReadStore::select_rollup_grid`), and the fleet query again
//!   with the tier read per series (`select_rollup`, the read before the
//!   grid): same answer bit for bit, both times printed;
//! * **raw**: the same queries over `RAW_DAYS` days (default 1) of raw
//!   samples every `RAW_INTERVAL_S` seconds (default 300) for the same farms,
//!   from the samples table and from the 1 d tier rolled from those samples:
//!   the answers must be equal, and the raw time scaled to 365 days is the
//!   stated raw cost of the year query (not measured: a year of raw samples
//!   for 40,000 series at 5 min, 4.2 G samples, does not fit this machine).
//!
//! Data: the year's rows are written through the cold tier's rollup write
//! path (`ColdTier::write_rollup_files` + `commit_files`, what the
//! compactor's roll calls, with the series table recorded first as the
//! roll does), one commit per 30 days, one row per (series, day): what the
//! small-file merge of maintenance leaves of the per-bucket partial rows.
//! Window aggregates are synthetic (count 280–288, values multiples of
//! 0.25, `exp` = −2: sums provably exact, so `avg_over_time` may be
//! answered from rollups). The raw slice is rolled like the compactor rolls a bucket
//! (`SeriesRollup::of` each series, written and committed).
//!
//! Run (release; the host is shared: note the load):
//! `CARGO_TARGET_DIR=/root/.cache/strata-target-q cargo bench -p strata-benches --bench rollup_year`
//! with `FARMS`, `DAYS` (365), `RUNS` (5), `RAW_DAYS`, `RAW_INTERVAL_S`,
//! `PER_SERIES` (1: also the fleet year with the rollup read per series,
//! the read before the grid, its answer compared bit for bit; 0: not),
//! `RAW` (1: the raw slice; 0: stop after the year),
//! `QUERY_TIMEOUT_S` (the engine's query timeout, default
//! `QueryConfig::default().timeout`, 120 s: raise it under valgrind),
//! `DEVICE_BUCKETS` (`cold.device_buckets`, default 8: files per day
//! partition of the samples table; a 1 d table created at rollup layout
//! version 2 has one), `BENCH_DIR` (default: a temporary directory) in the
//! environment.
//! Prints every run, the median, the load average, and the CPU time and
//! run-queue wait of the process (from `/proc/self/task/*/schedstat`) per
//! run.
//!
//! The process allocates as the server does: mimalloc (`no_thp`), the
//! server's global allocator; the server also shortens mimalloc's purge
//! delay to 10 ms, which here is `MIMALLOC_PURGE_DELAY=10` in the
//! environment (records state it). Under glibc's malloc the grid's cells,
//! a few hundred MB for the fleet year, were mapped and faulted in afresh
//! on every query.
#![allow(clippy::disallowed_methods)] // bench code owns its runtimes and threads (clippy.toml)
#![allow(clippy::print_stdout, clippy::print_stderr)] // a bench prints its figures
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_benches::{env_or, load_average, median};
use strata_cold_tier::{
    ColdReadStore, ColdTier, ColdTierConfig, CommitSource, Rollup, SeriesEntry, SeriesRollup, SeriesSamples,
};
use strata_query::{Engine, QueryConfig, Value};
use strata_schemas::{
    Labels, Matcher, ReadError, ReadStore, RollupData, RollupPoint, Sample, SeriesData, SeriesId, TenantId, TimeRange,
};

const MIN: i64 = 60_000;
const DAY: i64 = 1_440 * MIN;
/// Midnight UTC, 2025-01-01.
const T0: i64 = 1_735_689_600_000;
const METRIC: &str = "soil_moisture";

/// The same store without rollups (the engine's "rollups off").
#[derive(Debug)]
struct RawOnly(Arc<dyn ReadStore>);

impl ReadStore for RawOnly {
    fn select(&self, t: &TenantId, m: &[Matcher], r: TimeRange) -> Result<Vec<SeriesData>, ReadError> {
        self.0.select(t, m, r)
    }
    fn series(&self, t: &TenantId, m: &[Matcher], r: TimeRange) -> Result<Vec<Labels>, ReadError> {
        self.0.series(t, m, r)
    }
}

/// The same store answering rollups per series only (`select_rollup`,
/// not its grid read): the rollup read as it was before the grid.
#[derive(Debug)]
struct PerSeries(Arc<dyn ReadStore>);

impl ReadStore for PerSeries {
    fn select(&self, t: &TenantId, m: &[Matcher], r: TimeRange) -> Result<Vec<SeriesData>, ReadError> {
        self.0.select(t, m, r)
    }
    fn series(&self, t: &TenantId, m: &[Matcher], r: TimeRange) -> Result<Vec<Labels>, ReadError> {
        self.0.series(t, m, r)
    }
    fn select_rollup(
        &self,
        t: &TenantId,
        m: &[Matcher],
        w: i64,
        ends: TimeRange,
    ) -> Result<Option<RollupData>, ReadError> {
        self.0.select_rollup(t, m, w, ends)
    }
}

struct Farm {
    labels: Labels,
    id: SeriesId,
    device_hash: u64,
}

fn farms(tenant: &TenantId, n: usize) -> Vec<Farm> {
    (0..n)
        .map(|f| {
            let device = format!("dev-{f:05}");
            let labels = Labels::from_pairs([
                ("__name__", METRIC.to_owned()),
                ("device", device.clone()),
                ("farm", format!("farm-{f:05}")),
                ("region", ["eu", "us", "br"][f % 3].to_owned()),
            ]);
            Farm {
                id: strata_schemas::series_id(tenant, &labels),
                device_hash: strata_schemas::device_hash_of(tenant, &device),
                labels,
            }
        })
        .collect()
}

/// The day window ending at `T0 + (day + 1) d` of farm `f` (synthetic).
fn day_point(f: usize, day: i64) -> RollupPoint {
    let end = T0 + (day + 1) * DAY;
    let count = 280 + ((f as i64 + day) % 9) as u64;
    let mean = 20.0 + ((f as i64 * 7 + day * 3) % 40) as f64 / 4.0;
    RollupPoint {
        end,
        min: mean - 5.0,
        max: mean + 5.0,
        sum: mean * count as f64,
        count,
        last: mean,
        last_ts: end - MIN,
        // Every value a multiple of 0.25: sums exact, so avg/sum may come from rollups.
        exp: Some(-2),
    }
}

async fn record_series(cold: &ColdTier, t: &TenantId, farms: &[Farm]) {
    let entries: Vec<SeriesEntry> = farms
        .iter()
        .map(|f| SeriesEntry { labels: f.labels.clone(), series_id: f.id, device_hash: f.device_hash })
        .collect();
    let sv = cold.series_view();
    let w = sv.write_series_files(t, &entries, "bench-series").await.unwrap();
    sv.commit_series_files(t, w, &format!("hot:{t}:0")).await.unwrap();
}

/// A year (`days`) of 1 d rows, one commit per 30 days.
async fn write_year(cold: &ColdTier, t: &TenantId, farms: &[Farm], days: i64) {
    record_series(cold, t, farms).await;
    let view = cold.rollup_view(Rollup::OneDay);
    for from in (0..days).step_by(30) {
        let to = (from + 30).min(days);
        let rolled: Vec<SeriesRollup> = farms
            .iter()
            .enumerate()
            .map(|(i, f)| SeriesRollup {
                labels: f.labels.clone(),
                series_id: f.id,
                device_hash: f.device_hash,
                points: (from..to).map(|d| day_point(i, d)).collect(),
            })
            .collect();
        let w = view.write_rollup_files(t, &rolled, i64::MIN, &format!("bench-{from}")).await.unwrap();
        let source = CommitSource { source: format!("hot:{t}:{}", T0 + from * DAY), segments: String::new() };
        view.commit_files(t, w, &source).await.unwrap();
    }
}

/// `days` of raw samples every `interval` ms in the samples table, and the
/// 1 d tier rolled from them; returns the samples written.
async fn write_raw(cold: &ColdTier, t: &TenantId, farms: &[Farm], days: i64, interval: i64) -> u64 {
    record_series(cold, t, farms).await;
    let mut written = 0;
    for day in 0..days {
        let series: Vec<SeriesSamples> = farms
            .iter()
            .enumerate()
            .map(|(i, f)| SeriesSamples {
                labels: f.labels.clone(),
                series_id: f.id,
                device_hash: f.device_hash,
                samples: (1..=DAY / interval)
                    .map(|k| {
                        let ts = T0 + day * DAY + k * interval;
                        Sample::new(ts, 20.0 + ((i as i64 * 7 + k * 3) % 40) as f64 / 4.0)
                    })
                    .collect(),
            })
            .collect();
        let source = CommitSource { source: format!("hot:{t}:{}", T0 + day * DAY), segments: String::new() };
        let rolled: Vec<SeriesRollup> = series.iter().map(|s| SeriesRollup::of(s, DAY)).collect();
        let view = cold.rollup_view(Rollup::OneDay);
        let w = view.write_rollup_files(t, &rolled, i64::MIN, &format!("raw-rollup-{day}")).await.unwrap();
        view.commit_files(t, w, &source).await.unwrap();
        let w = cold.write_files(t, &series, &format!("raw-{day}")).await.unwrap();
        written += w.rows;
        cold.commit_files(t, w, &source).await.unwrap();
    }
    written
}

/// Nanoseconds the process's threads have waited for a CPU (0 where
/// `/proc` does not say).
fn run_queue_wait_ns() -> u64 {
    schedstat_ns(1)
}

/// Nanoseconds the process's threads have run on a CPU (0 where `/proc`
/// does not say): on a shared host, the figure the load does not inflate
/// much.
fn cpu_ns() -> u64 {
    schedstat_ns(0)
}

/// Field `field` of every thread's `/proc/self/task/*/schedstat`, summed.
fn schedstat_ns(field: usize) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
    tasks
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().nth(field)?.parse::<u64>().ok())
        .sum()
}

/// Runs `q` over `(start, end, step)` `runs` times; prints each run and
/// the median; returns the last answer.
fn time(engine: &Engine, t: &TenantId, what: &str, q: &str, (start, end, step): (i64, i64, i64), runs: usize) -> Value {
    let mut ms = Vec::new();
    let mut last = None;
    for run in 0..runs {
        let (wait0, cpu0, load) = (run_queue_wait_ns(), cpu_ns(), load_average());
        let t0 = Instant::now();
        let r = engine.query_range(t, q, start, end, step).unwrap();
        let took = t0.elapsed();
        let wait = Duration::from_nanos(run_queue_wait_ns().saturating_sub(wait0));
        let cpu = Duration::from_nanos(cpu_ns().saturating_sub(cpu0));
        let Value::Matrix(m) = &r.value else { panic!("{q}: not a matrix") };
        let points: usize = m.iter().map(|s| s.samples.len()).sum();
        println!(
            "{what} run {run}: {:.1} ms, {} series, {points} points, CPU {:.1} ms, run-queue wait {:.1} ms, load {load}",
            took.as_secs_f64() * 1e3,
            m.len(),
            cpu.as_secs_f64() * 1e3,
            wait.as_secs_f64() * 1e3
        );
        ms.push(took.as_secs_f64() * 1e3);
        last = Some(r.value);
    }
    println!("{what}: median {:.1} ms of {runs} runs ({q})", median(&mut ms));
    last.unwrap()
}

/// The two answers have the same series, steps and value bits.
fn assert_same(a: &Value, b: &Value, what: &str) {
    let (Value::Matrix(a), Value::Matrix(b)) = (a, b) else { panic!("not matrices") };
    assert_eq!(a.len(), b.len(), "series");
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.labels, y.labels);
        assert_eq!(x.samples.len(), y.samples.len(), "{:?}", x.labels);
        for (p, q) in x.samples.iter().zip(&y.samples) {
            assert_eq!((p.ts, p.value.to_bits()), (q.ts, q.value.to_bits()), "{:?}", x.labels);
        }
    }
    println!("{what} answers are equal bit for bit ({} series)", a.len());
}

fn main() {
    let (n, days, runs) = (env_or("FARMS", 40_000usize), env_or("DAYS", 365i64), env_or("RUNS", 5usize));
    let (raw_days, raw_interval) = (env_or("RAW_DAYS", 1i64), env_or("RAW_INTERVAL_S", 300i64) * 1000);
    if !strata_benches::invoked_by_cargo_bench("rollup_year") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("BENCH_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| tmp.path().to_owned());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let buckets = env_or("DEVICE_BUCKETS", ColdTierConfig::default().device_buckets);
    let config = ColdTierConfig { enabled: true, device_buckets: buckets, ..ColdTierConfig::default() };
    let cold = Arc::new(rt.block_on(ColdTier::open(&config, &dir)).unwrap());
    let (year, raw) = (TenantId::new("year").unwrap(), TenantId::new("raw").unwrap());
    let fresh = rt.block_on(cold.load_table(&year)).unwrap().is_none()
        && rt.block_on(cold.rollup_view(Rollup::OneDay).load_table(&year)).unwrap().is_none();
    let started = Instant::now();
    if fresh {
        let f = farms(&year, n);
        rt.block_on(write_year(&cold, &year, &f, days));
        println!(
            "setup: {} 1 d rows ({n} series × {days} days; samples table {buckets} device buckets, 1 d table 1) written in {:.1?}",
            n as i64 * days,
            started.elapsed()
        );
        let t0 = Instant::now();
        let f = farms(&raw, n);
        let samples = rt.block_on(write_raw(&cold, &raw, &f, raw_days, raw_interval));
        println!(
            "setup: {samples} raw samples ({raw_days} d at {} s) and their 1 d rows in {:.1?}",
            raw_interval / 1000,
            t0.elapsed()
        );
    } else {
        println!("setup: reusing {}", dir.display());
    }
    let store: Arc<dyn ReadStore> = Arc::new(ColdReadStore::new(Arc::clone(&cold), rt.handle().clone()));
    let timeout = Duration::from_secs(env_or("QUERY_TIMEOUT_S", QueryConfig::default().timeout.as_secs()));
    let unlimited = QueryConfig { max_samples: usize::MAX, max_bytes: usize::MAX, timeout, ..QueryConfig::default() };
    let on = Engine::new(Arc::clone(&store), unlimited.clone());
    let off = Engine::new(Arc::new(RawOnly(Arc::clone(&store))), unlimited.clone());
    let fleet = format!("avg by (farm) (avg_over_time({METRIC}[1d]))");
    let one = format!("avg_over_time({METRIC}{{farm=\"farm-00042\"}}[1d])");
    println!("load average at start: {}", load_average());
    let (start, end) = (T0 + DAY, T0 + days * DAY);
    let grid = time(&on, &year, "year fleet, 1 d tier", &fleet, (start, end, DAY), runs);
    time(&on, &year, "year one farm, 1 d tier", &one, (start, end, DAY), runs);
    println!("tiers used: {:?}", on.stats().rollup_selects_by_tier());
    if env_or("PER_SERIES", 1) == 1 {
        // The same query with the rollup read per series (before the grid): same answer, its time beside.
        let per_series = Engine::new(Arc::new(PerSeries(Arc::clone(&store))), unlimited.clone());
        let before = time(&per_series, &year, "year fleet, 1 d tier per series", &fleet, (start, end, DAY), runs);
        assert_same(&grid, &before, "the grid read's and the per-series read's");
    }
    if env_or("RAW", 1) == 0 {
        return;
    }
    let defaults = Engine::new(Arc::clone(&store), QueryConfig::default());
    match defaults.query_range(&year, &fleet, start, end, DAY) {
        Ok(_) => println!("with the default query limits: answered"),
        Err(e) => println!("with the default query limits: {e}"),
    }
    let (start, end) = (T0 + DAY, T0 + raw_days * DAY);
    let a = time(&on, &raw, "raw slice fleet, 1 d tier", &fleet, (start, end, DAY), runs);
    let b = time(&off, &raw, "raw slice fleet, raw samples", &fleet, (start, end, DAY), runs);
    assert_same(&a, &b, "the 1 d tier's and the raw samples'");
    time(&off, &raw, "raw slice one farm, raw samples", &one, (start, end, DAY), runs);
    println!(
        "raw cost of the year query: the raw-slice median × {:.0} (365 days / {raw_days})",
        365.0 / raw_days as f64
    );
    println!("load average at the end: {}", load_average());
}
