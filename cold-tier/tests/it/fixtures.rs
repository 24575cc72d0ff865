//! A frozen cold-tier directory (`tests/fixtures/table/v1/`): the SQLite
//! catalog and an Iceberg warehouse with one tenant's samples table, written
//! by this build's `ColdTier::append`, read back through `ColdTier::open`
//! and `ColdReadStore`, and the metadata Strata writes itself (table
//! property `strata.layout-version`, snapshot summary `strata.*` keys)
//! checked. Iceberg files hold absolute paths: the fixture records the
//! directory it was written in (`ROOT`) and is copied into a directory
//! whose path has the same length, with that path replaced in every file
//! (`relocate.rs`).
//! `tests/fixtures/README.md` says how it was made; it is never regenerated.

use std::path::Path;
use std::sync::Arc;

use strata_cold_tier::{ColdReadStore, CommitOutcome, CommitSource, SeriesSamples};
use strata_schemas::labels::STALE_NAN_BITS;
use strata_schemas::{ReadStore, TimeRange};

use crate::relocate::{copy_relocated, root_dir, store_relocatable};
use crate::util::{open, runtime, series, tenant};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/table/v1");
/// Start of the hot bucket the fixture's commit rolled.
const BUCKET: i64 = 1_700_006_400_000;
const SOURCE: &str = "hot:acme:1700006400000";

fn fixture_series() -> Vec<SeriesSamples> {
    let t = tenant("acme");
    let day = BUCKET - BUCKET % 86_400_000 + 86_400_000;
    vec![
        series(&t, "temp", "d1", &[(BUCKET, 20.5), (BUCKET + 1000, f64::from_bits(STALE_NAN_BITS))]),
        series(&t, "temp", "d2", &[(BUCKET + 5, -3.25)]),
        // two day partitions
        series(&t, "hum", "d1", &[(day - 1, 1.0), (day, 2.0)]),
    ]
}

/// `(labels, samples as (ts, value bits))`, sorted.
fn bits(v: &[strata_schemas::SeriesData]) -> Vec<(String, Vec<(i64, u64)>)> {
    let mut out: Vec<_> = v
        .iter()
        .map(|s| (s.labels.to_string(), s.samples.iter().map(|x| (x.ts, x.value.to_bits())).collect()))
        .collect();
    out.sort();
    out
}

fn expected() -> Vec<(String, Vec<(i64, u64)>)> {
    let mut out: Vec<_> = fixture_series()
        .iter()
        .map(|s| (s.labels.to_string(), s.samples.iter().map(|x| (x.ts, x.value.to_bits())).collect()))
        .collect();
    out.sort();
    out
}

#[test]
fn cold_table_v1_fixture_reads_back_exactly() {
    let (root, _) = copy_relocated(Path::new(FIXTURE));
    let rt = runtime();
    let cold = Arc::new(open(&rt, root.path()));
    let t = tenant("acme");
    assert_eq!(rt.block_on(cold.tenants()).unwrap(), std::slice::from_ref(&t));
    let reader = ColdReadStore::new(Arc::clone(&cold), rt.handle().clone());
    assert_eq!(bits(&reader.select(&t, &[], TimeRange::ALL).unwrap()), expected());

    // What Strata writes itself: the layout version, the commit's summary.
    let table = rt.block_on(cold.load_table(&t)).unwrap().expect("samples_acme");
    let meta = table.metadata();
    assert_eq!(meta.properties().get("strata.layout-version").map(String::as_str), Some("1"));
    let snap = meta.current_snapshot().unwrap();
    let summary = &snap.summary().additional_properties;
    let get = |k: &str| summary.get(k).map(String::as_str);
    assert_eq!(snap.summary().operation.as_str(), "append");
    assert_eq!((get("strata.source"), get("strata.source-segments")), (Some(SOURCE), Some("2")));
    assert_eq!((get("strata.rows"), get("strata.series")), (Some("5"), Some("3")));
    assert_eq!(rt.block_on(cold.committed_source(&t, SOURCE)).unwrap(), Some(snap.snapshot_id()));

    // The current build recognises the commit: a retry is not applied twice.
    let source = CommitSource { source: SOURCE.into(), segments: "2".into() };
    let (_, again) = rt.block_on(cold.append(&t, &fixture_series(), &source)).unwrap();
    assert!(matches!(again, CommitOutcome::AlreadyCommitted { .. }), "{again:?}");
    assert_eq!(bits(&reader.select(&t, &[], TimeRange::ALL).unwrap()), expected());
}

/// Writes the fixture (`tests/fixtures/table/v1/`) with this build. The
/// layout is version 1 (`FORMAT.md`); a new layout version gets a new
/// directory and generator. Never run it to refresh `v1`:
/// `cargo test -p strata-cold-tier --test it fixtures::regenerate_current_fixture -- --ignored`.
#[test]
#[ignore = "writes tests/fixtures/table/v1; run by hand for a new layout version only"]
fn regenerate_current_fixture() {
    let root = root_dir();
    let rt = runtime();
    {
        let cold = open(&rt, root.path());
        let source = CommitSource { source: SOURCE.into(), segments: "2".into() };
        let (_, outcome) = rt.block_on(cold.append(&tenant("acme"), &fixture_series(), &source)).unwrap();
        assert!(matches!(outcome, CommitOutcome::Committed { .. }));
    }
    drop(rt);
    store_relocatable(root.path(), Path::new(FIXTURE));
}
