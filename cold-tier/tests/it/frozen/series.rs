//! The series table (`tests/fixtures/series/v1/`): `series_acme` after
//! the roll of [`BUCKET`] recorded its four series, then a retried append
//! (as after a crash between the series commit and the rollup commits)
//! recorded one of them again with a new one. Readers keep one row per
//! (`series_id`, `labels`). A truncated data file fails the read with an
//! error naming it.

use std::sync::Arc;

use strata_cold_tier::{ColdTier, SeriesEntry, file_prefix};
use strata_schemas::Labels;

use super::rollup::live_files;
use super::{BUCKET, BUCKET_MS, acme, bucket_series, copy_fixture, data_files, labels, local, may_write, root_dir};
use crate::util::{open, runtime};

/// The series the table records, in label order.
fn want() -> Vec<Labels> {
    let mut v = vec![
        labels("hum", "a", "s1"),
        labels("temp", "a", "s1"),
        labels("temp", "a", "s2"),
        labels("temp", "b", "s3"),
        labels("temp", "b", "s4"),
    ];
    v.sort();
    v
}

fn entry(l: Labels) -> SeriesEntry {
    let t = acme();
    SeriesEntry {
        series_id: strata_schemas::series_id(&t, &l),
        device_hash: strata_schemas::device_hash_of(&t, "gw1"),
        labels: l,
    }
}

#[test]
fn series_v1_fixture_reads_back_exactly() {
    let copy = copy_fixture("series/v1");
    let rt = runtime();
    let cold = open(&rt, copy.root.path());
    let t = acme();
    let view = cold.series_view();
    let table = rt.block_on(view.load_table(&t)).unwrap().expect("series_acme");
    // Two appends, two files, six rows, five series.
    let paths = live_files(&rt, &view);
    assert_eq!(paths.len(), 2, "{paths:?}");
    let entries = rt.block_on(view.read_series_files(&t, &paths)).unwrap();
    assert_eq!(entries, want().into_iter().map(entry).collect::<Vec<_>>());
    let recorded = rt.block_on(view.recorded_series(&t)).unwrap();
    let keys: std::collections::HashSet<_> =
        want().iter().map(|l| strata_cold_tier::series_key(strata_schemas::series_id(&t, l), l)).collect();
    assert_eq!(recorded, keys);
    // Layout: no ts, bucket[8](device_hash) only, sorted by metric, series_id.
    let meta = table.metadata();
    let fields: Vec<(i32, &str)> =
        meta.current_schema().as_struct().fields().iter().map(|f| (f.id, f.name.as_str())).collect();
    assert_eq!(fields, vec![(1, "metric"), (2, "labels"), (3, "series_id"), (4, "device_hash")]);
    let spec: Vec<String> =
        meta.default_partition_spec().fields().iter().map(|f| format!("{}:{}", f.name, f.transform)).collect();
    assert_eq!(spec, vec!["device_bucket:bucket[8]"]);
    let order: Vec<i32> = meta.default_sort_order().fields.iter().map(|f| f.source_id).collect();
    assert_eq!(order, vec![1, 3]);
    assert_eq!(meta.properties().get("strata.layout-version").map(String::as_str), Some("1"));
    // Each append's summary: the roll it recorded for, its rows, no idempotency key.
    let mut summaries: Vec<(Option<String>, Option<String>, bool)> = meta
        .snapshots()
        .map(|s| {
            let p = &s.summary().additional_properties;
            (p.get("strata.series-of").cloned(), p.get("strata.rows").cloned(), p.contains_key("strata.source"))
        })
        .collect();
    summaries.sort();
    let of = |b: i64| Some(format!("hot:acme:{b}"));
    assert_eq!(
        summaries,
        vec![(of(BUCKET), Some("4".into()), false), (of(BUCKET + BUCKET_MS), Some("2".into()), false)]
    );
}

/// `series/v1/corrupt/truncated.parquet` (the first half of the first
/// append's file) in its place: the recorded-series scan and the
/// whole-file read fail, the latter naming the file.
#[test]
fn series_v1_truncated_data_file_fails_reads() {
    let copy = copy_fixture("series/v1");
    let rt = runtime();
    let cold = open(&rt, copy.root.path());
    let t = acme();
    let first: Vec<_> = data_files(&copy.root.path().join("cold"), "series_acme")
        .into_iter()
        .filter(|p| p.to_str().unwrap().contains(&format!("series-{BUCKET}-")))
        .collect();
    assert_eq!(first.len(), 1, "{first:?}");
    std::fs::write(&first[0], copy.relocated("corrupt/truncated.parquet")).unwrap();
    let view = cold.series_view();
    assert!(rt.block_on(view.recorded_series(&t)).is_err());
    let err = rt.block_on(view.read_series_files(&t, &live_files(&rt, &view))).unwrap_err();
    assert!(matches!(err, strata_cold_tier::Error::Corrupted { .. }), "{err:?}");
    let name = first[0].file_name().unwrap().to_str().unwrap();
    assert!(err.to_string().contains(name), "{err}");
}

async fn record(cold: &ColdTier, series: &[SeriesEntry], bucket: i64) {
    let t = acme();
    let view = cold.series_view();
    let written = view.write_series_files(&t, series, &file_prefix(&format!("series:acme:{bucket}"))).await.unwrap();
    view.commit_series_files(&t, written, &format!("hot:acme:{bucket}")).await.unwrap();
}

/// Writes `tests/fixtures/series/v1/` with this build:
/// `STRATA_WRITE_FIXTURES=1 cargo test -p strata-cold-tier --test it
/// frozen::series::regenerate_series_v1_fixture -- --ignored`. Only for a
/// new version's first fixture, never to refresh a shipped one.
#[test]
#[ignore = "writes tests/fixtures/series/v1; run by hand only (README)"]
fn regenerate_series_v1_fixture() {
    let rel = "series/v1";
    if !may_write(rel) {
        return;
    }
    let root = root_dir();
    let rt = runtime();
    {
        let cold = Arc::new(open(&rt, root.path()));
        let roll: Vec<SeriesEntry> = bucket_series().into_iter().map(|s| entry(s.labels)).collect();
        rt.block_on(record(&cold, &roll, BUCKET));
        let retry = vec![entry(labels("temp", "a", "s1")), entry(labels("temp", "b", "s4"))];
        rt.block_on(record(&cold, &retry, BUCKET + BUCKET_MS));
        let first = live_files(&rt, &cold.series_view())
            .into_iter()
            .find(|p| p.contains(&format!("series-{BUCKET}-")))
            .unwrap();
        let data = std::fs::read(local(&first)).unwrap();
        super::store_file(rel, "corrupt/truncated.parquet", &data[..data.len() / 2]);
    }
    drop(rt);
    super::store_fixture(root.path(), rel);
}
