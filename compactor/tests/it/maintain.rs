//! Cold maintenance through the compactor: small-file merge, retention,
//! snapshot expiry and orphan removal, purge — exactly once across crashes
//! at every maintenance step.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use strata_compactor::{CompactorConfig, Error, FAILPOINTS, MAINTENANCE_FAILPOINTS, PURGE_FAILPOINT};
use strata_schemas::progress::{TaskKind, TaskState};
use strata_schemas::{ReadStore, TimeRange};

use crate::util::{BASE, BUCKET_MS, Env, tenant};

const DAY: i64 = 86_400_000;
/// Start of BASE's UTC day; buckets from here on stay within that day.
const DAY0: i64 = BASE - BASE % DAY;

/// Merges everything, expires at once, deletes orphans at once.
fn eager() -> CompactorConfig {
    CompactorConfig {
        grace: Some(Duration::ZERO),
        merge_min_files: 2,
        snapshot_retention: Duration::ZERO,
        orphan_grace: Duration::ZERO,
        ..CompactorConfig::default()
    }
}

/// Parquet files of the samples tables on disk (rollup and series tables excluded).
fn parquet_files(dir: &Path) -> usize {
    let other_table = |p: &Path| {
        p.strip_prefix(dir).unwrap_or(p).components().any(|c| {
            let name = c.as_os_str().to_string_lossy();
            name.starts_with("rollup") || name.starts_with("series")
        })
    };
    strata_test_support::fs::files_ending(dir, ".parquet").iter().filter(|p| !other_table(p)).count()
}

/// `buckets` one-minute buckets, 2 devices × 2 metrics for acme, one for beta.
fn fill(env: &mut Env, first: i64, buckets: i64) {
    for b in 0..buckets {
        let t0 = first + b * BUCKET_MS;
        for d in ["d1", "d2"] {
            let s: Vec<(i64, f64)> = (0..6).map(|i| (t0 + i * 10_000, (b * 100 + i) as f64 + 0.25)).collect();
            env.write("acme", "temp", d, &s);
            env.write("acme", "hum", d, &s);
        }
        env.write("beta", "temp", "x", &[(t0 + 5, b as f64)]);
    }
    env.hot.flush().unwrap();
}

fn live_files(env: &Env, t: &str) -> usize {
    env.rt.block_on(env.cold.live_files(&tenant(t))).unwrap().len()
}

/// Live data files of the tenant's 5 m and 1 h rollup tables.
fn rollup_files(env: &Env, t: &str) -> usize {
    strata_cold_tier::Rollup::ALL.into_iter().map(|r| tier_files(env, t, r)).sum()
}

fn tier_files(env: &Env, t: &str, r: strata_cold_tier::Rollup) -> usize {
    env.rt.block_on(env.cold.rollup_view(r).live_files(&tenant(t))).unwrap().len()
}

/// Asserts the federated read equals the model restricted by `keep`.
fn assert_model_where(env: &Env, context: &str, keep: impl Fn(&str, i64) -> bool) {
    let fed = env.federated();
    for t in ["acme", "beta"] {
        let got: BTreeMap<_, BTreeMap<i64, u64>> = fed
            .select(&tenant(t), &[], TimeRange::ALL)
            .unwrap()
            .into_iter()
            .map(|s| (s.labels, s.samples.iter().map(|x| (x.ts, x.value.to_bits())).collect()))
            .collect();
        let want: BTreeMap<_, BTreeMap<i64, u64>> = env
            .model
            .iter()
            .filter(|((mt, _), _)| mt == t)
            .map(|((_, l), v)| (l.clone(), v.iter().filter(|(ts, _)| keep(t, **ts)).map(|(a, b)| (*a, *b)).collect()))
            .filter(|(_, v): &(_, BTreeMap<i64, u64>)| !v.is_empty())
            .collect();
        assert_eq!(got, want, "{context}: tenant {t}");
    }
}

/// Twelve buckets rolled one by one (a small file per roll and partition),
/// the hot copies expired; returns the env and the time of the roll.
fn twelve_small_rolls(dir: &Path) -> (Env, i64) {
    let mut env = Env::open_with(dir, eager());
    fill(&mut env, DAY0 + BUCKET_MS, 12);
    let now = DAY0 + 14 * BUCKET_MS;
    env.rt.block_on(env.compactor.roll_once(now)).unwrap();
    env.hot.expire(now).unwrap();
    (env, now)
}

/// How many (day, bucket) partitions acme's live cold files span.
fn acme_partitions(env: &Env) -> usize {
    let files = env.rt.block_on(env.cold.live_files(&tenant("acme"))).unwrap();
    files.iter().map(|f| (f.day, f.bucket)).collect::<std::collections::BTreeSet<_>>().len()
}

#[test]
fn merge_turns_many_small_rolls_into_one_file_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    let (mut env, now) = twelve_small_rolls(dir.path());
    env.assert_exactly_once("after rolls");
    let (acme_before, beta_before) = (live_files(&env, "acme"), live_files(&env, "beta"));
    let partitions = acme_partitions(&env);
    assert!(acme_before >= 12, "one file per roll and partition: {acme_before}");
    let tasks = strata_schemas::progress::global();
    let before = tasks.running().iter().chain(tasks.recent().iter()).map(|t| t.id).max().unwrap_or(0);
    let t0 = Instant::now();
    let out = env.rt.block_on(env.compactor.maintain_once(now)).unwrap();
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "merge: acme {acme_before} → {} files, beta {beta_before} → {} files, {} merges, {secs:.2}s for the pass ({out:?})",
        live_files(&env, "acme"),
        live_files(&env, "beta"),
        out.merges
    );
    // Each tenant's planned merges were a progress task (the server logs it and
    // shows it on the console's storage page), finished with every merge done.
    let merges: Vec<_> = tasks.recent().into_iter().filter(|t| t.kind == TaskKind::Merge && t.id > before).collect();
    for (t, n) in [("acme", partitions as u64), ("beta", 1)] {
        assert!(
            merges.iter().any(|m| m.tenant.as_ref().map(|x| x.as_str()) == Some(t)
                && m.state == TaskState::Finished
                && (m.done, m.total, m.unit) == (n, Some(n), "merges")),
            "no finished merge task of {n} merges for {t}: {merges:?}"
        );
    }
    assert_eq!(live_files(&env, "acme"), partitions, "one file per partition");
    assert_eq!(live_files(&env, "beta"), 1);
    assert_eq!(out.merge_files_in as usize, acme_before + beta_before);
    env.assert_exactly_once("after merge");
    // Expiry and orphan removal ran in the same pass: only live files remain on disk.
    assert!(out.snapshots_expired > 0, "{out:?}");
    assert_eq!(parquet_files(dir.path()), partitions + 1, "replaced files deleted");
    // Sort order kept: each merged file reads back sorted by (metric, series, ts).
    let files = env.rt.block_on(env.cold.live_files(&tenant("acme"))).unwrap();
    let series = env.rt.block_on(env.cold.read_files(&tenant("acme"), &[files[0].path.clone()])).unwrap();
    assert!(series.iter().all(|s| s.samples.windows(2).all(|w| w[0].ts < w[1].ts)));
    // A second pass has nothing to merge.
    let again = env.rt.block_on(env.compactor.maintain_once(now)).unwrap();
    assert_eq!(again.merges, 0);
    let m = {
        let mut s = String::new();
        env.compactor.metrics().render_prometheus(&mut s);
        s
    };
    assert_eq!(out.merges as usize, partitions + 1);
    assert!(m.contains(&format!("strata_compactor_merges_total {}", out.merges)), "{m}");
    assert!(m.contains("strata_compactor_snapshots_expired_total"), "{m}");
    // Rolling continues on top of merged files.
    fill(&mut env, DAY0 + 20 * BUCKET_MS, 2);
    env.rt.block_on(env.compactor.roll_once(DAY0 + 23 * BUCKET_MS)).unwrap();
    env.assert_exactly_once("rolls after merge");
}

#[test]
fn a_time_budget_cuts_a_pass_after_one_merge_and_the_next_passes_finish_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (env, now) = twelve_small_rolls(dir.path());
    let partitions = acme_partitions(&env);
    let wanted = partitions + 1; // acme's partitions and beta's one
    assert!(wanted >= 3, "the case needs several merges: {wanted}");
    // A zero budget: each pass starts exactly one merge (the first always runs).
    let mut merged = 0;
    let mut passes = 0;
    loop {
        let out = env.rt.block_on(env.compactor.maintain_within(now, Some(Duration::ZERO))).unwrap();
        passes += 1;
        merged += out.merges;
        // Samples, rollup and series tables' merges alike: one per pass.
        let started = out.merges + out.rollup_merges;
        assert!(started <= 1, "pass {passes} started {started} merges past its budget: {out:?}");
        env.assert_exactly_once(&format!("after budgeted pass {passes}"));
        if !out.unfinished {
            break;
        }
        assert_eq!(started, 1, "an unfinished pass merged something: {out:?}");
        assert!(passes <= 4 * wanted, "passes go on after every merge was done: {out:?}");
    }
    assert_eq!(merged as usize, wanted);
    assert_eq!(live_files(&env, "acme"), partitions, "one file per partition");
    assert_eq!(live_files(&env, "beta"), 1);
    // Without a budget nothing is left.
    let again = env.rt.block_on(env.compactor.maintain_within(now, None)).unwrap();
    assert_eq!((again.merges, again.unfinished), (0, false));
}

#[test]
fn a_continuation_runs_only_the_merges_and_leaves_retention_expiry_and_orphans_to_the_full_pass() {
    let dir = tempfile::tempdir().unwrap();
    let (env, now) = twelve_small_rolls(dir.path());
    let partitions = acme_partitions(&env);
    let wanted = partitions + 1;
    // A retention that removes nothing yet still lists each table's files when applied.
    env.compactor.set_cold_retentions(BTreeMap::from([(tenant("acme"), Duration::from_secs(30 * 86_400))]));
    let first = env.rt.block_on(env.compactor.maintain_within(now, Some(Duration::ZERO))).unwrap();
    assert!(first.unfinished, "the case needs a backlog: {first:?}");
    // acme's samples, three rollup tables: retention; every table of both tenants: the sweep.
    assert_eq!(first.retention_tables, 4, "{first:?}");
    assert_eq!(first.swept_tables, 2 * 5, "{first:?}");
    let mut merged = first.merges;
    let mut passes = 0;
    loop {
        let out = env.rt.block_on(env.compactor.continue_merges(now, Some(Duration::ZERO))).unwrap();
        passes += 1;
        let started = out.merges + out.rollup_merges;
        assert!(started <= 1, "continuation {passes} started {started} merges past its budget: {out:?}");
        assert_eq!((out.retention_tables, out.swept_tables), (0, 0), "continuation {passes} swept: {out:?}");
        assert_eq!((out.snapshots_expired, out.orphan_files), (0, 0), "continuation {passes}: {out:?}");
        merged += out.merges;
        env.assert_exactly_once(&format!("after continuation {passes}"));
        if !out.unfinished {
            break;
        }
        assert!(passes <= 4 * wanted, "continuations go on after every merge was done: {out:?}");
    }
    assert_eq!(merged as usize, wanted);
    assert_eq!(live_files(&env, "acme"), partitions, "one file per partition");
    // The replaced files wait for the next full pass's expiry and orphan removal.
    let on_disk = parquet_files(dir.path());
    assert!(on_disk > partitions + 1, "replaced files deleted by a continuation: {on_disk}");
    let full = env.rt.block_on(env.compactor.maintain_within(now, None)).unwrap();
    assert!(full.snapshots_expired > 0 && full.orphan_files > 0, "{full:?}");
    assert_eq!(parquet_files(dir.path()), partitions + 1, "the full pass removed the replaced files");
    env.assert_exactly_once("after the full pass");
}

#[test]
fn crash_at_every_maintenance_step_keeps_each_sample_exactly_once() {
    for point in MAINTENANCE_FAILPOINTS {
        let dir = tempfile::tempdir().unwrap();
        let mut env = Env::open_with(dir.path(), eager());
        fill(&mut env, DAY0 + BUCKET_MS, 4);
        // A second day for retention to leave alone.
        fill(&mut env, DAY0 + DAY + BUCKET_MS, 3);
        let now = DAY0 + DAY + 10 * BUCKET_MS;
        env.rt.block_on(env.compactor.roll_once(now)).unwrap();
        env.hot.expire(now).unwrap();
        // Retention: day 0 goes once a whole day has passed after it.
        let retention = BTreeMap::from([(tenant("acme"), Duration::from_secs(86_400))]);
        let later = DAY0 + 2 * DAY + 1;
        let kept = |t: &str, ts: i64| t != "acme" || ts >= DAY0 + DAY;
        env.compactor.set_cold_retentions(retention.clone());
        env.compactor.arm_failpoint(point);
        let err = env.rt.block_on(env.compactor.maintain_once(later)).unwrap_err();
        assert!(matches!(err, Error::Injected { point: p } if p == point), "{point}: {err}");
        let retention_done = point != "retention_before_commit";
        if retention_done {
            assert_model_where(&env, &format!("{point}: right after the crash"), kept);
        } else {
            env.assert_exactly_once(&format!("{point}: right after the crash"));
        }
        let env = env.reopen(dir.path());
        env.compactor.set_cold_retentions(retention);
        let out = env.rt.block_on(env.compactor.maintain_once(later)).unwrap();
        assert_model_where(&env, &format!("{point}: after the retry"), kept);
        assert_eq!(out.retention_files > 0, !retention_done, "{point}: {out:?}");
        // Everything merged, crash leftovers gone: disk holds exactly the live files.
        let live = live_files(&env, "acme") + live_files(&env, "beta");
        assert_eq!(parquet_files(dir.path()), live, "{point}: no orphan left");
        let again = env.rt.block_on(env.compactor.maintain_once(later)).unwrap();
        assert_eq!((again.merges, again.retention_files), (0, 0), "{point}: nothing left to do");
        assert_model_where(&env, &format!("{point}: after a second pass"), kept);
    }
}

#[test]
fn expiry_keeps_the_snapshot_of_a_commit_the_watermark_has_not_passed() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Env::open_with(dir.path(), eager());
    fill(&mut env, DAY0 + BUCKET_MS, 3);
    env.rt.block_on(env.compactor.roll_once(DAY0 + 3 * BUCKET_MS)).unwrap(); // buckets 1, 2
    // Bucket 3 commits, then the process dies before its watermark step.
    env.compactor.arm_failpoint("after_commit");
    let now = DAY0 + 5 * BUCKET_MS;
    assert!(env.rt.block_on(env.compactor.roll_once(now)).is_err());
    let env = env.reopen(dir.path());
    // Merge makes the commit non-current; expiry must still keep its snapshot.
    let out = env.rt.block_on(env.compactor.maintain_once(now)).unwrap();
    assert!(out.merges > 0 && out.snapshots_expired > 0, "{out:?}");
    let roll = env.rt.block_on(env.compactor.roll_once(now)).unwrap();
    assert_eq!(roll.already_committed, 1, "acme's bucket 3 found committed: {roll:?}");
    env.assert_exactly_once("after the retry");
    env.hot.expire(now).unwrap();
    env.assert_exactly_once("after hot expiry");
}

#[test]
fn retention_removes_only_whole_days_past_the_tenant_retention() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Env::open_with(dir.path(), eager());
    fill(&mut env, DAY0 + BUCKET_MS, 2);
    let now = DAY0 + 5 * BUCKET_MS;
    env.rt.block_on(env.compactor.roll_once(now)).unwrap();
    env.hot.expire(now).unwrap();
    env.compactor.set_cold_retentions(BTreeMap::from([(tenant("acme"), Duration::from_secs(86_400))]));
    // One day after the data, but day 0 has not wholly passed the retention yet.
    assert!(rollup_files(&env, "acme") > 0);
    let out = env.rt.block_on(env.compactor.maintain_once(DAY0 + DAY + 10 * BUCKET_MS)).unwrap();
    assert_eq!(out.retention_files, 0);
    assert!(out.rollup_merges > 0, "small rollup files merged: {out:?}");
    assert!(rollup_files(&env, "acme") > 0, "rollups kept inside retention");
    env.assert_exactly_once("inside retention");
    let out = env.rt.block_on(env.compactor.maintain_once(DAY0 + 2 * DAY)).unwrap();
    assert!(out.retention_files > 0 && out.retention_samples == 2 * 2 * 2 * 6, "{out:?}");
    assert_model_where(&env, "after retention", |t, _| t != "acme");
    assert_eq!(live_files(&env, "acme"), 0);
    // The same whole days of the 5 m and 1 h tables go; a 1 d window ends at
    // midnight, so day 0's lives in day 1 (cold-tier/FORMAT.md, Maintenance)
    // and goes with day 1.
    use strata_cold_tier::Rollup;
    assert_eq!(tier_files(&env, "acme", Rollup::FiveMinutes) + tier_files(&env, "acme", Rollup::OneHour), 0);
    assert!(tier_files(&env, "acme", Rollup::OneDay) > 0, "day 0's 1 d window lives in day 1");
    assert!(out.retention_rollup_rows > 0, "{out:?}");
    assert!(rollup_files(&env, "beta") > 0);
    let out = env.rt.block_on(env.compactor.maintain_once(DAY0 + 3 * DAY)).unwrap();
    assert_eq!(out.retention_files, 0, "{out:?}");
    assert_eq!(rollup_files(&env, "acme"), 0, "the 1 d window goes with day 1: {out:?}");
    assert!(rollup_files(&env, "beta") > 0);
    assert_eq!(parquet_files(dir.path()), live_files(&env, "beta"), "acme's files deleted");
}

#[test]
fn purge_deletes_hot_and_cold_data_of_one_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Env::open_with(dir.path(), eager());
    fill(&mut env, DAY0 + BUCKET_MS, 3);
    // Bucket 1, 2 rolled to cold; bucket 3 stays hot.
    env.rt.block_on(env.compactor.roll_once(DAY0 + 3 * BUCKET_MS + 1)).unwrap();
    assert!(live_files(&env, "acme") > 0);
    assert!(rollup_files(&env, "acme") > 0);
    let out = env.rt.block_on(env.compactor.purge_tenant(&tenant("acme"))).unwrap();
    assert!(out.hot_segments > 0 && out.cold_files > 0, "{out:?}");
    assert_model_where(&env, "after purge", |t, _| t != "acme");
    assert!(env.rt.block_on(env.cold.load_table(&tenant("acme"))).unwrap().is_none());
    assert!(!dir.path().join("cold/warehouse/strata/samples_acme").exists());
    assert!(!dir.path().join("cold/warehouse/strata/rollup5m_acme").exists());
    assert!(!dir.path().join("cold/warehouse/strata/rollup1h_acme").exists());
    assert_eq!(rollup_files(&env, "acme"), 0);
    // A purge that died after the hot half finishes when repeated.
    env.rt.block_on(env.compactor.roll_once(DAY0 + 4 * BUCKET_MS + 1)).unwrap();
    assert!(live_files(&env, "beta") > 0);
    env.compactor.arm_failpoint(PURGE_FAILPOINT);
    assert!(env.rt.block_on(env.compactor.purge_tenant(&tenant("beta"))).is_err());
    assert!(env.rt.block_on(env.cold.load_table(&tenant("beta"))).unwrap().is_some(), "cold half not done yet");
    env.rt.block_on(env.compactor.purge_tenant(&tenant("beta"))).unwrap();
    assert!(env.rt.block_on(env.cold.load_table(&tenant("beta"))).unwrap().is_none());
    env.model.retain(|(t, _), _| t != "beta");
    // Later passes do not bring anything back; the id can start over.
    env.rt.block_on(env.compactor.roll_once(DAY0 + 10 * BUCKET_MS)).unwrap();
    assert_model_where(&env, "after a later roll", |t, _| t != "acme" && t != "beta");
    env.model.retain(|(t, _), _| t != "acme");
    fill(&mut env, DAY0 + 20 * BUCKET_MS, 2);
    env.rt.block_on(env.compactor.roll_once(DAY0 + 30 * BUCKET_MS)).unwrap();
    env.assert_exactly_once("the id starts over");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// Random writes over eight buckets; after each chunk a roll and a
    /// maintenance pass (eager merge, expiry and orphan removal), with a crash
    /// at a random roll or maintenance step of a random chunk, restarts and hot
    /// expiry: every sample exactly once throughout, and no orphan left at the end.
    #[test]
    fn exactly_once_across_rolls_merges_and_expiry(
        writes in prop::collection::vec((0usize..2, 0usize..3, 0i64..8 * BUCKET_MS, -100.0f64..100.0), 1..60),
        crash_at in prop::option::of((0usize..6, 0usize..9)),
        steps in prop::collection::vec(0i64..2 * BUCKET_MS, 6),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut env = Env::open_with(dir.path(), eager());
        let mut now = DAY0;
        let points: Vec<&'static str> = FAILPOINTS.iter().chain(MAINTENANCE_FAILPOINTS.iter()).copied().collect();
        for (i, chunk) in writes.chunks(10).enumerate() {
            let open_from = DAY0 + (now - DAY0).div_euclid(BUCKET_MS) * BUCKET_MS;
            for &(t, d, ts, v) in chunk {
                env.write(["acme", "beta"][t], "temp", ["d0", "d1", "d2"][d], &[((DAY0 + ts).max(open_from), v)]);
            }
            env.hot.flush().unwrap();
            now += steps[i % steps.len()];
            if let Some((pass, point)) = crash_at && pass == i {
                env.compactor.arm_failpoint(points[point]);
            }
            let rolled = env.rt.block_on(env.compactor.roll_once(now));
            let maintained = if rolled.is_ok() { env.rt.block_on(env.compactor.maintain_once(now)).map(|_| ()) } else { Ok(()) };
            env.compactor.disarm_failpoints();
            env.assert_exactly_once("after a pass");
            if rolled.is_err() || maintained.is_err() {
                env = env.reopen(dir.path());
                env.assert_exactly_once("after restart");
            }
            env.hot.expire(now).unwrap();
            env.assert_exactly_once("after expiry");
        }
        env.rt.block_on(env.compactor.roll_once(DAY0 + 20 * BUCKET_MS)).unwrap();
        env.rt.block_on(env.compactor.maintain_once(DAY0 + 20 * BUCKET_MS)).unwrap();
        env.assert_exactly_once("final");
        let live = live_files(&env, "acme") + live_files(&env, "beta");
        prop_assert_eq!(parquet_files(dir.path()), live, "only live files remain");
    }
}

#[test]
fn a_merge_whose_files_an_erase_replaced_first_is_lost_not_failed_and_the_next_pass_merges() {
    let dir = tempfile::tempdir().unwrap();
    let (mut env, now) = twelve_small_rolls(dir.path());
    let partitions = acme_partitions(&env);
    // The pass lists acme's files and plans its merges; before the first one
    // reads them, an erase of every `temp` series rewrites each of those files
    // and deletes them (as the server's erasure does, outside the pass).
    let erase = strata_cold_tier::EraseRequest {
        selectors: vec![vec![strata_schemas::Matcher::equal("__name__", "temp")]],
        start: i64::MIN,
        end: i64::MAX,
    };
    let (cold, fired) = (Arc::clone(&env.cold), Arc::new(AtomicBool::new(false)));
    let hook_fired = Arc::clone(&fired);
    env.compactor.set_pass_hook(Arc::new(move |point| {
        if point == "merge_before_write" && !hook_fired.swap(true, Ordering::SeqCst) {
            let report = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(cold.erase(&tenant("acme"), &erase))
            });
            report.unwrap();
        }
    }));
    let out = env.rt.block_on(env.compactor.maintain_once(now)).unwrap();
    assert!(fired.load(Ordering::SeqCst));
    assert_eq!(out.failed_tenants, 0, "a lost race is not a failure: {out:?}");
    assert!(out.merges_lost >= 1, "{out:?}");
    let metrics = {
        let mut s = String::new();
        env.compactor.metrics().render_prometheus(&mut s);
        s
    };
    assert!(metrics.contains(&format!("strata_compactor_merges_lost_total {}\n", out.merges_lost)), "{metrics}");
    assert!(metrics.contains("strata_compactor_maintenance_errors_total 0\n"), "{metrics}");
    env.model.retain(|(t, l), _| !(t == "acme" && l.get("__name__") == Some("temp")));
    env.assert_exactly_once("after the pass the erase raced");
    // The next pass plans on the erase's files and merges every partition.
    let again = env.rt.block_on(env.compactor.maintain_once(now)).unwrap();
    assert_eq!((again.failed_tenants, again.merges_lost), (0, 0), "{again:?}");
    assert_eq!(live_files(&env, "acme"), partitions, "one file per partition: {again:?}");
    env.assert_exactly_once("after the next pass");
}
