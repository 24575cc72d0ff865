//! Write → commit → read, idempotency, pruning.

use std::sync::Arc;

use strata_cold_tier::{ColdReadStore, CommitOutcome, CommitSource};
use strata_schemas::{Matcher, ReadStore, Sample, TimeRange};

use crate::util::{BASE, open, runtime, series, tenant};

#[test]
fn commit_is_idempotent_and_reads_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let cold = Arc::new(open(&rt, dir.path()));
    let t = tenant("acme");
    let data = vec![
        series(&t, "temp", "d1", &[(BASE, 20.5), (BASE + 1000, f64::from_bits(0x7ff0_0000_0000_0002))]),
        series(&t, "temp", "d2", &[(BASE + 5, -3.25)]),
        // crosses midnight UTC: two day partitions
        series(&t, "hum", "d1", &[(BASE - BASE % 86_400_000 - 1, 1.0), (BASE - BASE % 86_400_000, 2.0)]),
    ];
    let source = CommitSource { source: "hot:acme:1".into(), segments: "7,8".into() };
    let (written, outcome) = rt.block_on(cold.append(&t, &data, &source)).unwrap();
    assert!(matches!(outcome, CommitOutcome::Committed { .. }));
    assert_eq!(written.rows, 5);
    assert!(written.files.len() >= 3, "day × device bucket partitions: {}", written.files.len());
    let (_, again) = rt.block_on(cold.append(&t, &data, &source)).unwrap();
    assert!(matches!(again, CommitOutcome::AlreadyCommitted { .. }));
    // commit_files itself refuses a second commit of the same source.
    let w2 = rt.block_on(cold.write_files(&t, &data, "hot-1-retry")).unwrap();
    let o2 = rt.block_on(cold.commit_files(&t, w2, &source)).unwrap();
    assert!(matches!(o2, CommitOutcome::AlreadyCommitted { .. }));

    let reader = ColdReadStore::new(Arc::clone(&cold), rt.handle().clone());
    let all = reader.select(&t, &[], TimeRange::ALL).unwrap();
    assert_eq!(all.len(), 3);
    let total: usize = all.iter().map(|s| s.samples.len()).sum();
    assert_eq!(total, 5, "no duplicates");
    let d1 = reader
        .select(&t, &[Matcher::equal("__name__", "temp"), Matcher::equal("device", "d1")], TimeRange::ALL)
        .unwrap();
    assert_eq!(d1.len(), 1);
    assert_eq!(d1[0].samples[0], Sample::new(BASE, 20.5));
    assert_eq!(d1[0].samples[1].value.to_bits(), 0x7ff0_0000_0000_0002, "stale marker bits survive");
    let ranged =
        reader.select(&t, &[Matcher::equal("__name__", "temp")], TimeRange::new(BASE + 1, BASE + 999)).unwrap();
    assert_eq!(ranged.iter().map(|s| s.samples.len()).sum::<usize>(), 1);
    let re = reader.select(&t, &[Matcher::regex("device", "d2|zz").unwrap()], TimeRange::ALL).unwrap();
    assert_eq!(re.len(), 1);
    assert_eq!(reader.label_values(&t, "device", &[], TimeRange::ALL).unwrap(), vec!["d1", "d2"]);
    // Other tenants see nothing.
    assert!(reader.select(&tenant("other"), &[], TimeRange::ALL).unwrap().is_empty());
}

#[test]
fn reopened_catalog_finds_committed_sources() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let t = tenant("beta.io");
    {
        let cold = open(&rt, dir.path());
        let source = CommitSource { source: "hot:beta.io:5".into(), segments: String::new() };
        rt.block_on(cold.append(&t, &[series(&t, "m", "x", &[(BASE, 1.0)])], &source)).unwrap();
    }
    let cold = open(&rt, dir.path());
    assert!(rt.block_on(cold.committed_source(&t, "hot:beta.io:5")).unwrap().is_some());
    assert!(rt.block_on(cold.committed_source(&t, "hot:beta.io:6")).unwrap().is_none());
}
