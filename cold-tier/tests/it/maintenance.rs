//! Snapshot expiry, orphan-file removal, whole-file deletes, file
//! replacement and purge, checked through reads and the files on disk.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use strata_cold_tier::{ColdReadStore, ColdTier, CommitSource, SUMMARY_OPERATION, SeriesSamples};
use strata_schemas::{Labels, ReadStore, TenantId, TimeRange};

use crate::util::{BASE, open, runtime, series, tenant};

const DAY: i64 = 86_400_000;

pub(crate) fn files_under(dir: &Path, ext: &str) -> Vec<std::path::PathBuf> {
    strata_test_support::fs::files_ending(dir, ext)
}

/// (labels → ts → value bits) of everything the tenant's table returns.
pub(crate) fn snapshot_of(
    rt: &tokio::runtime::Runtime,
    cold: &Arc<ColdTier>,
    t: &TenantId,
) -> BTreeMap<Labels, BTreeMap<i64, u64>> {
    let reader = ColdReadStore::new(Arc::clone(cold), rt.handle().clone());
    reader
        .select(t, &[], TimeRange::ALL)
        .unwrap()
        .into_iter()
        .map(|s| (s.labels, s.samples.iter().map(|x| (x.ts, x.value.to_bits())).collect()))
        .collect()
}

/// Three commits: day 0 (two devices), day 1, day 2 (one device each).
pub(crate) fn three_days(t: &TenantId) -> Vec<(String, Vec<SeriesSamples>)> {
    (0..3)
        .map(|d| {
            let start = BASE - BASE % DAY + d * DAY;
            let s: Vec<(i64, f64)> = (0..40).map(|i| (start + i * 60_000, d as f64 * 100.0 + i as f64)).collect();
            let mut data = vec![series(t, "temp", "d1", &s)];
            if d == 0 {
                data.push(series(t, "temp", "d2", &s));
            }
            (format!("hot:{t}:{d}"), data)
        })
        .collect()
}

fn append_all(rt: &tokio::runtime::Runtime, cold: &ColdTier, t: &TenantId) {
    for (src, data) in three_days(t) {
        let source = CommitSource { source: src, segments: String::new() };
        rt.block_on(cold.append(t, &data, &source)).unwrap();
    }
}

fn later() -> i64 {
    strata_schemas::time::now_millis() + 2_000
}

#[test]
fn expiry_keeps_the_current_and_protected_snapshots_and_orphan_removal_keeps_live_files() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let cold = Arc::new(open(&rt, dir.path()));
    let t = tenant("acme");
    append_all(&rt, &cold, &t);
    let before = snapshot_of(&rt, &cold, &t);
    assert_eq!(before.values().map(BTreeMap::len).sum::<usize>(), 160);
    // An orphan of a crashed write: written, never committed.
    let orphan = rt.block_on(cold.write_files(&t, &three_days(&t)[0].1, "hot-crashed")).unwrap();
    assert!(!orphan.files.is_empty());
    let parquet_before = files_under(dir.path(), ".parquet").len();

    // Retention of an hour: every snapshot was superseded seconds ago: nothing expires.
    let none = rt.block_on(cold.expire_snapshots(&t, later(), Duration::from_secs(3600), &|_| false)).unwrap();
    assert_eq!((none.expired, none.retained), (0, 3));
    // Young files survive a one-hour grace.
    let kept = rt.block_on(cold.remove_orphan_files(&t, later(), Duration::from_secs(3600))).unwrap();
    assert_eq!(kept.files, 0);

    // Protect the snapshot of day 1 (as the compactor does for sources above the watermark).
    let protect = |s: &iceberg::spec::Snapshot| {
        s.summary().additional_properties.get("strata.source").is_some_and(|v| v.ends_with(":1"))
    };
    let out = rt.block_on(cold.expire_snapshots(&t, later(), Duration::ZERO, &protect)).unwrap();
    assert_eq!((out.expired, out.retained), (1, 2), "day 0 expired; day 1 protected; day 2 current");
    assert!(rt.block_on(cold.committed_source(&t, &format!("hot:{t}:0"))).unwrap().is_none());
    assert!(rt.block_on(cold.committed_source(&t, &format!("hot:{t}:1"))).unwrap().is_some());
    assert_eq!(snapshot_of(&rt, &cold, &t), before, "expiry changes no data");

    let removed = rt.block_on(cold.remove_orphan_files(&t, later(), Duration::ZERO)).unwrap();
    // The orphan's Parquet files, plus the expired snapshot's manifest list and old metadata files
    // (metadata files stay while the metadata log lists them).
    assert!(removed.files >= orphan.files.len() as u64, "{removed:?}");
    assert_eq!(files_under(dir.path(), ".parquet").len(), parquet_before - orphan.files.len());
    for f in &orphan.files {
        assert!(!Path::new(f.file_path().trim_start_matches("file://")).exists(), "orphan deleted");
    }
    assert_eq!(snapshot_of(&rt, &cold, &t), before, "orphan removal keeps every live file");
    // A fresh reopen (new caches) still reads everything.
    let cold2 = Arc::new(open(&rt, dir.path()));
    assert_eq!(snapshot_of(&rt, &cold2, &t), before);
}

#[test]
fn delete_then_expiry_removes_a_day_and_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let cold = Arc::new(open(&rt, dir.path()));
    let t = tenant("acme");
    append_all(&rt, &cold, &t);
    let live = rt.block_on(cold.live_files(&t)).unwrap();
    let day0 = live[0].day;
    let doomed: Vec<String> = live.iter().filter(|f| f.day == day0).map(|f| f.path.clone()).collect();
    assert!(!doomed.is_empty());
    let props = HashMap::from([(SUMMARY_OPERATION.to_owned(), "retention".to_owned())]);
    let out = rt.block_on(cold.delete_files(&t, &doomed, props.clone())).unwrap();
    assert_eq!(out.removed_files, doomed.len());
    assert_eq!(out.removed_rows, 80);
    // Deleting the same files again conflicts: they are no longer live.
    assert!(matches!(
        rt.block_on(cold.delete_files(&t, &doomed, props)),
        Err(strata_cold_tier::Error::Conflict { .. })
    ));
    let after = snapshot_of(&rt, &cold, &t);
    assert_eq!(after.values().map(BTreeMap::len).sum::<usize>(), 80, "day 0 (2 × 40 samples) is gone");
    assert!(after.values().flat_map(|m| m.keys()).all(|&ts| ts >= BASE - BASE % DAY + DAY));
    let table = rt.block_on(cold.load_table(&t)).unwrap().unwrap();
    let cur = table.metadata().current_snapshot().unwrap();
    assert_eq!(cur.summary().operation.as_str(), "delete");
    assert_eq!(cur.summary().additional_properties["total-records"], "80");

    // The files stay while an older snapshot references them, then go.
    for p in &doomed {
        assert!(Path::new(p.trim_start_matches("file://")).exists());
    }
    rt.block_on(cold.expire_snapshots(&t, later(), Duration::ZERO, &|_| false)).unwrap();
    rt.block_on(cold.remove_orphan_files(&t, later(), Duration::ZERO)).unwrap();
    for p in &doomed {
        assert!(!Path::new(p.trim_start_matches("file://")).exists(), "{p} deleted after expiry");
    }
    assert_eq!(snapshot_of(&rt, &cold, &t), after);
}

#[test]
fn replace_swaps_files_without_changing_data() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let cold = Arc::new(open(&rt, dir.path()));
    let t = tenant("acme");
    // Five small commits into the same day partition(s).
    for i in 0..5 {
        let s: Vec<(i64, f64)> = (0..10).map(|j| (BASE + i * 600_000 + j * 1000, (i * 10 + j) as f64)).collect();
        let source = CommitSource { source: format!("hot:acme:{i}"), segments: String::new() };
        rt.block_on(cold.append(&t, &[series(&t, "temp", "d1", &s)], &source)).unwrap();
    }
    let before = snapshot_of(&rt, &cold, &t);
    let live = rt.block_on(cold.live_files(&t)).unwrap();
    assert_eq!(live.len(), 5);
    let paths: Vec<String> = live.iter().map(|f| f.path.clone()).collect();
    let series = rt.block_on(cold.read_files(&t, &paths)).unwrap();
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].samples.len(), 50);
    assert!(series[0].samples.windows(2).all(|w| w[0].ts < w[1].ts), "sorted by time");
    let written = rt.block_on(cold.write_files(&t, &series, "merge-test")).unwrap();
    assert_eq!(written.files.len(), 1);
    let out = rt.block_on(cold.replace_files(&t, &paths, written, HashMap::new())).unwrap();
    assert_eq!((out.removed_files, out.added_files, out.removed_rows), (5, 1, 50));
    assert_eq!(rt.block_on(cold.live_files(&t)).unwrap().len(), 1);
    assert_eq!(snapshot_of(&rt, &cold, &t), before);
    let table = rt.block_on(cold.load_table(&t)).unwrap().unwrap();
    let summary = table.metadata().current_snapshot().unwrap().summary().clone();
    assert_eq!(summary.operation.as_str(), "replace");
    assert_eq!(summary.additional_properties["total-records"], "50");
    assert_eq!(summary.additional_properties["total-data-files"], "1");
    // Sources of the replaced commits are still known (exactly-once keeps working).
    assert!(rt.block_on(cold.committed_source(&t, "hot:acme:3")).unwrap().is_some());
}

#[test]
fn purge_drops_the_table_and_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let cold = Arc::new(open(&rt, dir.path()));
    let (t, other) = (tenant("acme"), tenant("acme2"));
    append_all(&rt, &cold, &t);
    append_all(&rt, &cold, &other);
    rt.block_on(cold.write_files(&t, &three_days(&t)[0].1, "hot-orphan")).unwrap();
    let other_before = snapshot_of(&rt, &cold, &other);
    let out = rt.block_on(cold.purge(&t)).unwrap();
    assert!(out.files >= 5, "{out:?}");
    assert!(rt.block_on(cold.load_table(&t)).unwrap().is_none());
    assert!(snapshot_of(&rt, &cold, &t).is_empty());
    let table_dir = dir.path().join("cold/warehouse/strata/samples_acme");
    assert!(files_under(&table_dir, "").is_empty(), "nothing left under {}", table_dir.display());
    assert_eq!(snapshot_of(&rt, &cold, &other), other_before, "a tenant with a longer id sharing the prefix");
    // Idempotent, and the tenant can start over.
    assert_eq!(rt.block_on(cold.purge(&t)).unwrap().files, 0);
    append_all(&rt, &cold, &t);
    assert_eq!(snapshot_of(&rt, &cold, &t).values().map(BTreeMap::len).sum::<usize>(), 160);
}

#[test]
fn many_appends_fold_into_one_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let cold = Arc::new(open(&rt, dir.path()));
    let t = tenant("acme");
    for i in 0..12 {
        let source = CommitSource { source: format!("hot:acme:{i}"), segments: String::new() };
        rt.block_on(cold.append(&t, &[series(&t, "temp", "d1", &[(BASE + i * 1000, i as f64)])], &source)).unwrap();
    }
    let manifests = |cold: &ColdTier| {
        let table = rt.block_on(cold.load_table(&t)).unwrap().unwrap();
        let cur = Arc::clone(table.metadata().current_snapshot().unwrap());
        rt.block_on(table.manifest_list_reader(&cur).load()).unwrap().entries().len()
    };
    assert_eq!(manifests(&cold), 12);
    let before = snapshot_of(&rt, &cold, &t);
    assert!(rt.block_on(cold.compact_manifests(&t, 12)).unwrap().is_none(), "at the limit: nothing to do");
    let out = rt.block_on(cold.compact_manifests(&t, 4)).unwrap().unwrap();
    assert_eq!((out.removed_files, out.added_files), (0, 0));
    assert_eq!(manifests(&cold), 1);
    assert_eq!(rt.block_on(cold.live_files(&t)).unwrap().len(), 12);
    assert_eq!(snapshot_of(&rt, &cold, &t), before);
    // Later appends and deletes work on top of the folded manifest.
    let live = rt.block_on(cold.live_files(&t)).unwrap();
    rt.block_on(cold.delete_files(&t, &[live[0].path.clone()], HashMap::new())).unwrap();
    assert_eq!(snapshot_of(&rt, &cold, &t).values().map(BTreeMap::len).sum::<usize>(), 11);
}

#[test]
fn a_reader_planned_on_a_replaced_snapshot_finishes_within_the_retention() {
    use futures::TryStreamExt;

    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let cold = Arc::new(open(&rt, dir.path()));
    let t = tenant("acme");
    append_all(&rt, &cold, &t);
    // A reader loads the table (current snapshot = the last append) ...
    let reader_table = rt.block_on(cold.load_table(&t)).unwrap().unwrap();
    // ... meanwhile every file is merged away, and maintenance runs with a
    // one-hour snapshot retention but no orphan grace at all.
    let live = rt.block_on(cold.live_files(&t)).unwrap();
    let paths: Vec<String> = live.iter().map(|f| f.path.clone()).collect();
    let merged = rt.block_on(cold.read_files(&t, &paths)).unwrap();
    let written = rt.block_on(cold.write_files(&t, &merged, "merge-reader")).unwrap();
    rt.block_on(cold.replace_files(&t, &paths, written, HashMap::new())).unwrap();
    rt.block_on(cold.expire_snapshots(&t, later(), Duration::from_secs(3600), &|_| false)).unwrap();
    let deleted = rt.block_on(cold.remove_orphan_files(&t, later(), Duration::ZERO)).unwrap();
    assert_eq!(deleted.files, 0, "the replaced snapshot is retained, so its files are referenced");
    // The reader's scan of the old snapshot still reads every row.
    let scan = reader_table.scan().build().unwrap();
    let batches: Vec<arrow_array::RecordBatch> =
        rt.block_on(async { scan.to_arrow().await.unwrap().try_collect().await.unwrap() });
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 160);
}
