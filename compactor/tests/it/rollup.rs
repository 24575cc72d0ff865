//! Rollups: the compactor writes 5 m / 1 h / 1 d windows exactly once, and
//! the query engine answers the six rollup functions from them exactly like
//! from raw samples (engine over the federated store with and without
//! `select_rollup`), across the hot/cold seam, and only when the plan allows.
//! The figures (a year of 1 d windows, raw vs rollups) are
//! `benches/benches/rollup_year.rs`.

use std::sync::Arc;

use strata_cold_tier::Rollup;
use strata_compactor::{Error, FAILPOINTS};
use strata_query::{Engine, QueryConfig, QueryResult, Value};
use strata_schemas::labels::STALE_NAN_BITS;
use strata_schemas::{Matcher, ReadStore, TimeRange};

use crate::util::{Env, Lcg, RawOnly, tenant};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
/// A day boundary after the test epoch.
const T0: i64 = 1_700_006_400_000 / DAY * DAY + DAY;

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
    // Bit for bit for all six: sum and avg come from rollups only where provably exact.
    let exact = true;
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
        // Aligned: answered from rollups (the coarsest tier the range, step and ends align with).
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
    let mut reference: Option<Vec<u64>> = None;
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
        let rows: Vec<(u64, bool)> = Rollup::ALL.iter().map(|&r| rollup_rows(&env, r)).collect();
        assert!(rows.iter().all(|r| r.1), "{point}: a rollup source committed twice");
        let rows: Vec<u64> = rows.into_iter().map(|r| r.0).collect();
        assert!(rows.iter().all(|&n| n > 0), "{point}: every tier has rows: {rows:?}");
        match &reference {
            None => reference = Some(rows),
            Some(want) => assert_eq!(&rows, want, "{point}: rollup rows differ from a clean roll"),
        }
        let (on, off) = engines(&env);
        for f in FUNCS {
            assert!(compare(&on, &off, &format!("{f}(temp[1h])"), T0 + HOUR, T0 + 3 * HOUR, 5 * MIN), "{point}");
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

/// Which tiers (`5m`, `1h`, `1d`) answered since `before`.
fn tiers_since(on: &Engine, before: &[(&'static str, u64)]) -> Vec<&'static str> {
    on.stats().rollup_selects_by_tier().iter().zip(before).filter(|(a, b)| a.1 > b.1).map(|(a, _)| a.0).collect()
}

/// Four days and a half of sparse samples (every sample on a midnight, a
/// bucket start or an hour edge, quarter values, stale markers, NaNs) in
/// 4 h hot buckets.
fn fill_days(env: &mut Env, rng: &mut Lcg, hours: std::ops::Range<i64>) {
    let stale = f64::from_bits(STALE_NAN_BITS);
    for hour in hours {
        if hour % 4 != 0 && rng.next().is_multiple_of(3) {
            continue;
        }
        let t0 = T0 + hour * HOUR;
        for (metric, dev) in [("temp", "d0"), ("temp", "d1"), ("hum", "d0"), ("temp", "nan")] {
            let mut samples = Vec::new();
            for off in [0, 1, 30 * MIN, HOUR - 1] {
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

/// The 1 d tier end to end: each day's window is written by six 4 h bucket
/// rolls (plus the next day's first, for a sample at exactly midnight) as
/// partial rows, exactly once; the read merges them into the day's
/// aggregates; the six functions over whole days answer from the 1 d tier
/// bit for bit like raw samples across the hot/cold seam, before and after
/// the small-file merge stores one row per day; other alignments use the
/// 1 h tier, and `/metrics`' per-tier counter says which.
#[test]
fn day_windows_merge_the_buckets_of_each_day_and_answer_like_raw_samples() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let hot = strata_hot_store::HotStoreConfig {
        bucket: Duration::from_secs(4 * 3600),
        default_hot_ttl: Duration::from_millis(1),
        ..strata_hot_store::HotStoreConfig::default()
    };
    let cc = strata_compactor::CompactorConfig {
        grace: Some(Duration::ZERO),
        merge_min_files: 2,
        snapshot_retention: Duration::ZERO,
        orphan_grace: Duration::ZERO,
        ..strata_compactor::CompactorConfig::default()
    };
    let cold = strata_cold_tier::ColdTierConfig { enabled: true, ..strata_cold_tier::ColdTierConfig::default() };
    let mut env = Env::open_with_hot(dir.path(), cc, cold, hot);
    // Hours [0, 4 d + 12 h): cold below T0 + 4 d (day windows up to T0 + 3 d
    // answered by the 1 d tier: a sample at T0 + 4 d lies in the next
    // bucket), hot above.
    fill_days(&mut env, &mut Lcg(13), 0..4 * 24 + 12);
    roll_all(&env, T0 + 4 * DAY);
    let t = tenant("acme");
    let w = env.hot.cold_watermark(&t).unwrap();
    assert!(w > T0 + 3 * DAY && w <= T0 + 4 * DAY, "watermark {w}");
    env.hot.expire(T0 + 4 * DAY).unwrap();
    env.assert_exactly_once("rolled");
    let (rows, unique) = rollup_rows(&env, Rollup::OneDay);
    assert!(unique, "a 1 d source committed twice");
    // Stored: one partial row per (series, day, bucket with samples of the day).
    assert!(rows > 4 * 5, "partial rows per bucket, more than (series, day) pairs: {rows}");
    let day = env.cold.rollup_view(Rollup::OneDay);
    let m = [Matcher::equal("__name__", "temp"), Matcher::equal("device", "d0")];
    let days = TimeRange::new(T0 + DAY, T0 + 3 * DAY);
    let got = env.rt.block_on(day.select_rollup(&t, &m, days)).unwrap().unwrap();
    let model = &env.model[&("acme".to_owned(), crate::util::labels("temp", "d0"))];
    let samples: Vec<strata_schemas::Sample> =
        model.iter().map(|(&ts, &bits)| strata_schemas::Sample::new(ts, f64::from_bits(bits))).collect();
    let want: Vec<_> =
        strata_cold_tier::rollup_points(&samples, DAY).into_iter().filter(|p| days.contains(p.end)).collect();
    assert_eq!(got[0].points, want, "the partial rows of each day merged equal the day's aggregates");

    // Shapes: whole days (1 d tier, the last windows from finer tiers and
    // raw samples above the watermark), then alignments only 1 h windows
    // tile (the query crate's `day_rollups_answer_like_raw_samples` draws
    // many more). `shapes` of them are checked (CI time).
    let check = |env: &Env, ctx: &str, shapes: usize| {
        let (on, off) = engines(env);
        let t = tenant("acme");
        for f in FUNCS {
            let end = T0 + 5 * DAY;
            let all = [
                (format!("{f}(temp[1d])"), T0 + DAY, DAY, "1d"),
                (format!("{f}(temp[2d] offset 1d)"), T0 + 2 * DAY, DAY, "1d"),
                (format!("{f}(hum[3d] @ {})", (T0 + 3 * DAY) / 1000), T0 + DAY, DAY, "1d"),
                (format!("{f}(temp{{device=\"d0\"}}[1d])"), T0 + DAY + HOUR, DAY, "1h"),
                (format!("{f}(temp[25h])"), T0 + 2 * DAY, 6 * HOUR, "1h"),
            ];
            for (q, start, step, tier) in all.into_iter().take(shapes) {
                // Bit for bit (quarter values: every sum is exact).
                let before = on.stats().rollup_selects_by_tier();
                let got = on.query_range(&t, &q, start, end, step).unwrap();
                let want = off.query_range(&t, &q, start, end, step).unwrap();
                assert_same(&got, &want, true, &format!("{ctx}: {q} / {step}"));
                assert_eq!(tiers_since(&on, &before), [tier], "{ctx}: {q} / {step}");
                if let Value::Matrix(m) = &want.value {
                    assert!(!m.is_empty(), "{q}: the comparison must see data");
                }
            }
        }
    };
    check(&env, "partial rows", 5);
    let out = env.rt.block_on(env.compactor.maintain_once(T0 + 4 * DAY)).unwrap();
    assert!(out.rollup_merges > 0, "{out:?}");
    let got = env.rt.block_on(day.select_rollup(&t, &m, days)).unwrap().unwrap();
    assert_eq!(got[0].points, want, "merged rows");
    check(&env, "merged rows", 2);
    env.assert_exactly_once("merged");
}
