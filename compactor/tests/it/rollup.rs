//! Rollups: the compactor writes 5 m / 1 h windows exactly once, and the
//! query engine answers the six rollup functions from them exactly like
//! from raw samples (engine over the federated store with and without
//! `select_rollup`), across the hot/cold seam, and only when the plan allows.

use std::sync::Arc;

use strata_cold_tier::Rollup;
use strata_compactor::{Error, FAILPOINTS};
use strata_query::{Engine, QueryConfig, QueryResult, Value};
use strata_schemas::labels::STALE_NAN_BITS;
use strata_schemas::{Labels, Matcher, ReadError, ReadStore, SeriesData, TenantId, TimeRange};

use crate::util::{Env, tenant};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
/// A day boundary after the test epoch.
const T0: i64 = 1_700_006_400_000 / DAY * DAY + DAY;

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

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// Sparse samples in minutes `[from, to)` after `T0`: about one minute in
/// twenty (always the whole hours, which are bucket starts), samples at the
/// minute's first and last millisecond and in between; values are multiples
/// of 0.25 (sums exact), some stale markers, one device with NaNs.
fn fill(env: &mut Env, rng: &mut Lcg, from: i64, to: i64) {
    let stale = f64::from_bits(STALE_NAN_BITS);
    for minute in from..to {
        if minute % 60 != 0 && !rng.next().is_multiple_of(20) {
            continue;
        }
        let t0 = T0 + minute * MIN;
        for (metric, dev) in [("temp", "d0"), ("temp", "d1"), ("hum", "d0"), ("temp", "nan")] {
            let mut samples = Vec::new();
            for off in [0, 1, 17_000, MIN - 1] {
                if rng.next().is_multiple_of(3) {
                    continue;
                }
                let v = match rng.next() % 10 {
                    0 => stale,
                    1 if dev == "nan" => f64::NAN,
                    _ => (rng.next() % 4000) as f64 / 4.0 - 500.0,
                };
                samples.push((t0 + off, v));
            }
            if !samples.is_empty() {
                env.write("acme", metric, dev, &samples);
            }
        }
    }
    env.hot.flush().unwrap();
}

fn roll_all(env: &Env, now: i64) {
    loop {
        let out = env.rt.block_on(env.compactor.roll_once(now)).unwrap();
        assert_eq!(out.failed_tenants, 0);
        if out.buckets == 0 {
            break;
        }
    }
}

fn engines(env: &Env) -> (Engine, Engine) {
    let fed: Arc<dyn ReadStore> = Arc::new(env.federated());
    let on = Engine::new(Arc::clone(&fed), QueryConfig::default());
    let off = Engine::new(Arc::new(RawOnly(fed)), QueryConfig::default());
    (on, off)
}

fn same(a: f64, b: f64, exact: bool) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if exact || a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn assert_same(got: &QueryResult, want: &QueryResult, exact: bool, ctx: &str) {
    match (&got.value, &want.value) {
        (Value::Matrix(g), Value::Matrix(w)) => {
            assert_eq!(g.len(), w.len(), "{ctx}: series");
            for (g, w) in g.iter().zip(w) {
                assert_eq!(g.labels, w.labels, "{ctx}");
                let gt: Vec<i64> = g.samples.iter().map(|s| s.ts).collect();
                let wt: Vec<i64> = w.samples.iter().map(|s| s.ts).collect();
                assert_eq!(gt, wt, "{ctx}: steps of {:?}", g.labels);
                for (a, b) in g.samples.iter().zip(&w.samples) {
                    assert!(
                        same(a.value, b.value, exact),
                        "{ctx}: {:?} at {}: {} vs {}",
                        g.labels,
                        a.ts,
                        a.value,
                        b.value
                    );
                }
            }
        }
        (Value::Vector(g), Value::Vector(w)) => {
            assert_eq!(g.len(), w.len(), "{ctx}: series");
            for (g, w) in g.iter().zip(w) {
                assert_eq!(g.labels, w.labels, "{ctx}");
                assert!(same(g.v, w.v, exact), "{ctx}: {:?}: {} vs {}", g.labels, g.v, w.v);
            }
        }
        (g, w) => panic!("{ctx}: {g:?} vs {w:?}"),
    }
}

const FUNCS: [&str; 6] =
    ["avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time", "last_over_time"];

/// Runs `query` over `[start, end]` by `step` on both engines; returns
/// whether rollups answered it.
fn compare(on: &Engine, off: &Engine, query: &str, start: i64, end: i64, step: i64) -> bool {
    let t = tenant("acme");
    let before = on.stats().rollup_selects();
    let got = on.query_range(&t, query, start, end, step).unwrap();
    let want = off.query_range(&t, query, start, end, step).unwrap();
    let exact = !(query.starts_with("avg") || query.starts_with("sum"));
    assert_same(&got, &want, exact, &format!("{query} [{start}, {end}] / {step}"));
    if let Value::Matrix(m) = &want.value {
        assert!(!m.is_empty(), "{query}: the comparison must see data");
    }
    let igot = on.query_instant(&t, query, end).unwrap();
    let iwant = off.query_instant(&t, query, end).unwrap();
    assert_same(&igot, &iwant, exact, &format!("{query} @ {end}"));
    on.stats().rollup_selects() > before
}

#[test]
fn the_six_functions_answer_from_rollups_exactly_like_raw_samples_across_the_seam() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Env::open(dir.path());
    let mut rng = Lcg(7);
    // Cold: minutes [-120, 20h); then hot only: [20h + 5m, 26h).
    fill(&mut env, &mut rng, -120, 20 * 60);
    roll_all(&env, T0 + 20 * HOUR + 5 * MIN);
    let w = env.hot.cold_watermark(&tenant("acme")).unwrap();
    assert!(w > T0 + 19 * HOUR && w <= T0 + 20 * HOUR, "watermark {w}");
    env.hot.expire(T0 + 20 * HOUR + 5 * MIN).unwrap();
    fill(&mut env, &mut rng, 20 * 60 + 5, 26 * 60);
    let (on, off) = engines(&env);
    let end = T0 + 26 * HOUR;
    for f in FUNCS {
        // Aligned: answered from rollups (5 m for ranges ≥ 1 h, 1 h for ranges ≥ 1 d).
        for (range, step, start) in
            [("1h", 5 * MIN, T0), ("2h", HOUR, T0 - HOUR), ("1d", HOUR, T0 + DAY), ("1d", 2 * HOUR, T0 + DAY)]
        {
            let q = format!("{f}(temp[{range}])");
            assert!(compare(&on, &off, &q, start, end, step), "{q} / {step} should use rollups");
        }
        // Fully cold, fully hot, offset and @ aligned.
        assert!(compare(&on, &off, &format!("{f}(temp[1h])"), T0, T0 + 19 * HOUR, 5 * MIN));
        // Entirely above the watermark: nothing in the rollups, raw samples.
        assert!(!compare(&on, &off, &format!("{f}(hum[2h])"), T0 + 23 * HOUR, end, HOUR));
        assert!(compare(&on, &off, &format!("{f}(temp[1h] offset 1h)"), T0, end, HOUR));
        assert!(compare(&on, &off, &format!("{f}(temp[1h] @ {})", (T0 + 10 * HOUR) / 1000), T0, end, HOUR));
        // Misaligned or not worth it: raw samples, same answers.
        for (q, start, step) in [
            (format!("{f}(temp[61m])"), T0, 5 * MIN),
            (format!("{f}(temp[1h])"), T0, 7 * MIN),
            (format!("{f}(temp[1h])"), T0 + 1, 5 * MIN),
            (format!("{f}(temp[1h] offset 1m)"), T0, 5 * MIN),
            (format!("{f}(temp[30m])"), T0, 5 * MIN),
            (format!("{f}(temp[1h] @ {})", (T0 + 10 * HOUR + 1000) / 1000), T0, HOUR),
        ] {
            assert!(!compare(&on, &off, &q, start, end, step), "{q} / {step} must not use rollups");
        }
    }
    // Functions rollups cannot answer never use them.
    for q in ["first_over_time(temp[1h])", "rate(temp[1h])", "quantile_over_time(0.5, temp[1h])"] {
        assert!(!compare(&on, &off, q, T0, end, 5 * MIN), "{q}");
    }
}

#[test]
fn a_sample_at_a_bucket_start_lands_in_the_window_ending_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Env::open(dir.path());
    let b = T0 + HOUR; // a bucket start, a 5 m and a 1 h window end
    env.write("acme", "temp", "d0", &[(b - HOUR + 1, 1.0), (b - 1, 2.0), (b, 4.0), (b + 1, 8.0)]);
    env.hot.flush().unwrap();
    roll_all(&env, b + HOUR);
    let t = tenant("acme");
    let view = env.cold.rollup_view(Rollup::FiveMinutes);
    let m = [Matcher::equal("__name__", "temp")];
    let got = env.rt.block_on(view.select_rollup(&t, &m, TimeRange::new(b, b + 5 * MIN))).unwrap().unwrap();
    let p: Vec<(i64, f64, u64, f64)> = got[0].points.iter().map(|p| (p.end, p.sum, p.count, p.last)).collect();
    // (b - 5m, b] holds 2.0 (bucket before) and 4.0 (the bucket starting at b): two partials merged.
    assert_eq!(p, vec![(b, 6.0, 2, 4.0), (b + 5 * MIN, 8.0, 1, 8.0)]);
    let (on, off) = engines(&env);
    for q in ["sum_over_time(temp[1h])", "count_over_time(temp[1h])", "last_over_time(temp[1h])"] {
        assert!(compare(&on, &off, q, b, b + HOUR, 5 * MIN), "{q}");
    }
    let r = on.query_instant(&t, "sum_over_time(temp[1h])", b).unwrap();
    let Value::Vector(v) = r.value else { panic!() };
    assert_eq!(v[0].v, 7.0, "(b - 1h, b] = 1 + 2 + 4");
}

/// Sources of the tenant's rollup table are unique; returns rows committed.
fn rollup_rows(env: &Env, r: Rollup) -> (u64, bool) {
    let Some(table) = env.rt.block_on(env.cold.rollup_view(r).load_table(&tenant("acme"))).unwrap() else {
        return (0, true);
    };
    let mut sources = std::collections::BTreeSet::new();
    let (mut rows, mut unique) = (0, true);
    for s in table.metadata().snapshots() {
        let p = &s.summary().additional_properties;
        rows += p.get("strata.rows").map_or(0, |r| r.parse::<u64>().unwrap());
        if let Some(src) = p.get("strata.source") {
            unique &= sources.insert(src.clone());
        }
    }
    (rows, unique)
}

#[test]
fn a_crash_at_any_roll_step_leaves_each_rollup_window_exactly_once() {
    let mut reference: Option<(u64, u64)> = None;
    for point in FAILPOINTS {
        let dir = tempfile::tempdir().unwrap();
        let mut env = Env::open(dir.path());
        fill(&mut env, &mut Lcg(11), 0, 3 * 60);
        env.compactor.arm_failpoint(point);
        let r = env.rt.block_on(env.compactor.roll_once(T0 + 4 * HOUR));
        assert!(matches!(r, Err(Error::Injected { .. })), "{point}: {r:?}");
        env = env.reopen(dir.path());
        roll_all(&env, T0 + 4 * HOUR);
        env.assert_exactly_once(point);
        let rows = (rollup_rows(&env, Rollup::FiveMinutes), rollup_rows(&env, Rollup::OneHour));
        assert!(rows.0.1 && rows.1.1, "{point}: a rollup source committed twice");
        match reference {
            None => reference = Some((rows.0.0, rows.1.0)),
            Some(want) => assert_eq!((rows.0.0, rows.1.0), want, "{point}: rollup rows differ from a clean roll"),
        }
        let (on, off) = engines(&env);
        for f in FUNCS {
            assert!(compare(&on, &off, &format!("{f}(temp[1h])"), T0 + HOUR, T0 + 3 * HOUR, 5 * MIN), "{point}");
        }
    }
}

/// The benchmark figure: `avg_over_time(temp[1d])` over 7 days at a 1 h
/// step (and `avg_over_time(temp[1h])` over 1 day at 5 m), 200 series with
/// a sample a minute (2 M samples, 2 h hot buckets), all cold, from rollups
/// and from raw samples. Run:
/// `cargo test -p strata-compactor --test it rollup_benchmark -- --ignored --nocapture`
#[test]
#[ignore = "benchmark; prints figures"]
fn rollup_benchmark() {
    use strata_schemas::{BatchSeries, Sample, WriteBatch};
    let dir = tempfile::tempdir().unwrap();
    let hot = strata_hot_store::HotStoreConfig {
        bucket: std::time::Duration::from_secs(7200),
        default_hot_ttl: std::time::Duration::from_millis(1),
        ..strata_hot_store::HotStoreConfig::default()
    };
    let cc = strata_compactor::CompactorConfig {
        grace: Some(std::time::Duration::ZERO),
        ..strata_compactor::CompactorConfig::default()
    };
    let cold = strata_cold_tier::ColdTierConfig { enabled: true, ..strata_cold_tier::ColdTierConfig::default() };
    let mut env = Env::open_with_hot(dir.path(), cc, cold, hot);
    let (devices, days) = (200usize, 7i64);
    let t = tenant("acme");
    let started = std::time::Instant::now();
    for bucket in 0..days * 12 {
        let from = T0 + bucket * 2 * HOUR;
        let series = (0..devices)
            .map(|d| {
                let dev = format!("d{d:03}");
                let labels = crate::util::labels("temp", &dev);
                BatchSeries {
                    id: strata_schemas::series_id(&t, &labels),
                    device_hash: strata_schemas::device_hash_of(&t, &dev),
                    labels,
                    samples: (0..120)
                        .map(|m| {
                            let ts = from + m * MIN + 1;
                            Sample::new(ts, 20.0 + ((ts / MIN + d as i64) % 97) as f64 / 8.0)
                        })
                        .collect(),
                }
            })
            .collect();
        env.write_batch(&WriteBatch { tenant: t.clone(), series, origin: None });
        if bucket % 6 == 5 {
            env.hot.flush().unwrap();
        }
    }
    env.hot.flush().unwrap();
    roll_all(&env, T0 + days * DAY + HOUR);
    env.hot.expire(T0 + days * DAY + HOUR).unwrap();
    eprintln!("setup: {} samples rolled in {:.1?}", devices as i64 * days * 24 * 60, started.elapsed());
    if std::env::var_os("STRATA_BENCH_NO_MERGE").is_none() {
        // What maintenance does between rolls in production: small rollup and sample files merged.
        let t0 = std::time::Instant::now();
        let mut merges = (0, 0);
        loop {
            let out = env.rt.block_on(env.compactor.maintain_once(T0 + days * DAY + HOUR)).unwrap();
            merges = (merges.0 + out.merges, merges.1 + out.rollup_merges);
            if out.merges + out.rollup_merges == 0 {
                break;
            }
        }
        eprintln!("maintenance: {} sample and {} rollup partition merges in {:.1?}", merges.0, merges.1, t0.elapsed());
    }
    let fed = env.federated();
    let m = [Matcher::equal("__name__", "temp")];
    let t0 = std::time::Instant::now();
    let r = fed.select_rollup(&t, &m, HOUR, TimeRange::new(T0 + HOUR, T0 + days * DAY)).unwrap().unwrap();
    eprintln!(
        "select_rollup 1h over 7d: {:.1?}, {} series, covered_end = end - {} h",
        t0.elapsed(),
        r.series.len(),
        (T0 + days * DAY - r.covered_end) / HOUR
    );
    let t0 = std::time::Instant::now();
    let raw = fed.select(&t, &m, TimeRange::new(T0 + days * DAY - HOUR + 1, T0 + days * DAY)).unwrap();
    eprintln!("raw select of the last hour: {:.1?}, {} series", t0.elapsed(), raw.len());
    let (on, off) = engines(&env);
    for (q, start, step) in
        [("avg_over_time(temp[1d])", T0 + DAY, HOUR), ("avg_over_time(temp[1h])", T0 + 6 * DAY, 5 * MIN)]
    {
        let end = T0 + days * DAY;
        for (name, engine) in [("rollups", &on), ("raw", &off)] {
            let before = engine.stats().of(&t).1;
            let t0 = std::time::Instant::now();
            let r = engine.query_range(&t, q, start, end, step).unwrap();
            let took = t0.elapsed();
            let Value::Matrix(m) = r.value else { panic!() };
            eprintln!(
                "{q} [{}d, step {}m] {name}: {:.1?}, {} series, samples processed {}",
                (end - start) / DAY,
                step / MIN,
                took,
                m.len(),
                engine.stats().of(&t).1 - before
            );
        }
    }
}

#[test]
fn merging_small_rollup_files_keeps_every_answer() {
    let dir = tempfile::tempdir().unwrap();
    let eager = strata_compactor::CompactorConfig {
        grace: Some(std::time::Duration::ZERO),
        merge_min_files: 2,
        snapshot_retention: std::time::Duration::ZERO,
        orphan_grace: std::time::Duration::ZERO,
        ..strata_compactor::CompactorConfig::default()
    };
    let mut env = Env::open_with(dir.path(), eager);
    fill(&mut env, &mut Lcg(5), -60, 5 * 60);
    roll_all(&env, T0 + 6 * HOUR);
    let files = |env: &Env| -> usize {
        Rollup::ALL
            .into_iter()
            .map(|r| env.rt.block_on(env.cold.rollup_view(r).live_files(&tenant("acme"))).unwrap().len())
            .sum()
    };
    let before = files(&env);
    let check = |env: &Env, ctx: &str| {
        let (on, off) = engines(env);
        for f in FUNCS {
            let q = format!("{f}(temp[1h])");
            assert!(compare(&on, &off, &q, T0, T0 + 5 * HOUR, 5 * MIN), "{ctx}: {q}");
        }
    };
    check(&env, "before the merge");
    let out = env.rt.block_on(env.compactor.maintain_once(T0 + 6 * HOUR)).unwrap();
    assert!(out.rollup_merges > 0, "{out:?}");
    assert!(files(&env) < before, "{} -> {}", before, files(&env));
    check(&env, "after the merge");
    env.assert_exactly_once("after the merge");
}

#[test]
fn rollups_written_before_series_tables_are_read_from_their_labels() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Env::open(dir.path());
    let mut rng = Lcg(3);
    // Minutes [-120, 4h): hum/d0, temp/d0, temp/d1, temp/nan, then drop the
    // series table, as if those rollups were written before it existed.
    fill(&mut env, &mut rng, -120, 4 * 60);
    roll_all(&env, T0 + 4 * HOUR + 5 * MIN);
    let t = tenant("acme");
    let series_table = |env: &Env| env.rt.block_on(env.cold.series_view().load_table(&t)).unwrap();
    assert!(series_table(&env).is_some(), "the compactor records series");
    env.rt.block_on(env.cold.series_view().purge(&t)).unwrap();
    env = env.reopen(dir.path());
    let check = |env: &Env, ctx: &str| {
        let (on, off) = engines(env);
        for f in FUNCS {
            for q in [format!("{f}(temp[1h])"), format!("{f}(hum[1h])"), format!("{f}(temp{{device=\"d0\"}}[1h])")] {
                assert!(compare(&on, &off, &q, T0, T0 + 7 * HOUR, 5 * MIN), "{ctx}: {q}");
            }
        }
    };
    check(&env, "no series table");
    // Later buckets record only what they hold: temp/d1 alone, so the older
    // rows of the other series are unknown to the new series table.
    for minute in 4 * 60..7 * 60 {
        env.write("acme", "temp", "d1", &[(T0 + minute * MIN, minute as f64)]);
    }
    env.hot.flush().unwrap();
    roll_all(&env, T0 + 7 * HOUR + 5 * MIN);
    assert!(series_table(&env).is_some());
    check(&env, "a series table lacking older series");
    env.assert_exactly_once("mixed");
}

/// The figure, rollup side only: 10,000 series × 30 days of 1 h
/// rollup rows (written straight to the table: 7.2 M windows, no raw data;
/// the series table written as the compactor does),
/// `avg_over_time(temp[1d])` over 30 days at a 1 h step through the engine.
/// Run: `cargo test --release -p strata-compactor --test it rollup_benchmark_30d -- --ignored --nocapture`
#[test]
#[ignore = "benchmark; prints figures"]
fn rollup_benchmark_30d_10k_series() {
    use strata_cold_tier::{ColdReadStore, CommitSource, SeriesEntry, SeriesRollup};
    use strata_schemas::{RollupPoint, Sample};
    let dir = tempfile::tempdir().unwrap();
    let env = Env::open(dir.path());
    let t = tenant("acme");
    let view = env.cold.rollup_view(Rollup::OneHour);
    let (devices, days) = (10_000usize, 31i64);
    let started = std::time::Instant::now();
    let series: Vec<(Labels, strata_schemas::SeriesId, u64)> = (0..devices)
        .map(|d| {
            let dev = format!("d{d:05}");
            let l = crate::util::labels("temp", &dev);
            (l.clone(), strata_schemas::series_id(&t, &l), strata_schemas::device_hash_of(&t, &dev))
        })
        .collect();
    let entries: Vec<SeriesEntry> =
        series.iter().map(|(l, id, dh)| SeriesEntry { labels: l.clone(), series_id: *id, device_hash: *dh }).collect();
    let sv = env.cold.series_view();
    let w = env.rt.block_on(sv.write_series_files(&t, &entries, "bench-series")).unwrap();
    env.rt.block_on(sv.commit_series_files(&t, w, "hot:acme:0")).unwrap();
    for day in 0..days {
        let rolled: Vec<SeriesRollup> = series
            .iter()
            .enumerate()
            .map(|(d, (l, id, dh))| SeriesRollup {
                labels: l.clone(),
                series_id: *id,
                device_hash: *dh,
                points: (1..=24)
                    .map(|h| {
                        let end = T0 + day * DAY + h * HOUR;
                        let s: Vec<Sample> = (0..60)
                            .map(|m| Sample::new(end - HOUR + (m + 1) * MIN, ((d as i64 + m) % 50) as f64))
                            .collect();
                        RollupPoint::of(end, &s).unwrap()
                    })
                    .collect(),
            })
            .collect();
        let w = env.rt.block_on(view.write_rollup_files(&t, &rolled, i64::MIN, &format!("bench-{day}"))).unwrap();
        let source = CommitSource { source: format!("hot:acme:{day}"), segments: String::new() };
        env.rt.block_on(view.commit_files(&t, w, &source)).unwrap();
    }
    eprintln!("setup: {} windows written in {:.1?}", devices as i64 * days * 24, started.elapsed());
    let store: Arc<dyn ReadStore> = Arc::new(ColdReadStore::new(Arc::clone(&env.cold), env.rt.handle().clone()));
    let m = [Matcher::equal("__name__", "temp")];
    let on = Engine::new(Arc::clone(&store), QueryConfig { max_samples: usize::MAX, ..QueryConfig::default() });
    let run = |what: &str| {
        for _ in 0..2 {
            let t0 = std::time::Instant::now();
            let got = store.select_rollup(&t, &m, HOUR, TimeRange::new(T0 + HOUR, T0 + days * DAY)).unwrap().unwrap();
            eprintln!("{what}: select_rollup alone: {:.1?}, {} series", t0.elapsed(), got.series.len());
        }
        for _ in 0..3 {
            let t0 = std::time::Instant::now();
            let r = on.query_range(&t, "avg_over_time(temp[1d])", T0 + DAY, T0 + days * DAY, HOUR).unwrap();
            let Value::Matrix(m) = r.value else { panic!() };
            eprintln!(
                "{what}: avg_over_time(temp[1d]) 30 d / 1 h over {} series from 1 h rollups: {:.1?} ({} rollup selects)",
                m.len(),
                t0.elapsed(),
                on.stats().rollup_selects()
            );
        }
    };
    run("series table");
    // Tables written before series tables existed: labels from every rollup row.
    env.rt.block_on(sv.purge(&t)).unwrap();
    run("labels column");
}
