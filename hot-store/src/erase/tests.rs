use std::path::Path;

use strata_schemas::{BatchSeries, ErrorKind, Labels, Matcher, ReadStore, Sample, TenantId, TimeRange, WriteBatch};

use super::*;
use crate::HotStoreConfig;

fn t(s: &str) -> TenantId {
    TenantId::new(s).unwrap()
}

fn dev(tenant: &str, device: &str, samples: &[(i64, f64)]) -> WriteBatch {
    let labels = Labels::from_pairs([("__name__", "temp"), ("device", device)]);
    let series = BatchSeries {
        id: strata_schemas::series_id(&t(tenant), &labels),
        device_hash: 0,
        labels,
        samples: samples.iter().map(|&(ts, v)| Sample::new(ts, v)).collect(),
    };
    WriteBatch { tenant: t(tenant), series: vec![series], origin: None }
}

fn open(dir: &Path) -> HotStore {
    HotStore::open(dir, HotStoreConfig::default()).unwrap()
}

fn req(tenant: &str, device: &str, start: i64, end: i64) -> EraseRequest {
    EraseRequest { tenant: t(tenant), selectors: vec![vec![Matcher::equal("device", device)]], start, end }
}

/// Per series (by device label): its samples, for the whole history.
fn dump(store: &HotStore, tenant: &str) -> Vec<(String, Vec<(i64, f64)>)> {
    store
        .select(&t(tenant), &[], TimeRange::ALL)
        .unwrap()
        .into_iter()
        .map(|s| (s.labels.get("device").unwrap_or("").to_owned(), s.samples.iter().map(|x| (x.ts, x.value)).collect()))
        .collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

fn clean(r: &HotVerifyReport) -> bool {
    r.samples_found == 0 && r.memtable_samples_found == 0 && r.series_found == 0
}

#[test]
fn rejects_requests_that_would_match_everything_or_nothing_sensible() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.apply(0, 0, &dev("a", "d-1", &[(1, 1.0)])).unwrap();
    let mut r = req("a", "d-1", 0, 10);
    r.selectors = vec![];
    let e = store.erase(&r).unwrap_err();
    assert!(matches!(e, Error::InvalidErase { .. }) && e.kind() == ErrorKind::InvalidInput, "{e}");
    r.selectors = vec![vec![Matcher::equal("device", "d-1")], vec![]];
    let e = store.erase(&r).unwrap_err();
    assert!(e.to_string().contains("every series"), "{e}");
    let e = store.verify_erased(&req("a", "d-1", 10, 9)).unwrap_err();
    assert!(e.to_string().contains("start 10 is after end 9"), "{e}");
    assert_eq!(dump(&store, "a"), vec![("d-1".into(), vec![(1, 1.0)])], "nothing touched");
}

#[test]
fn removes_the_range_of_matching_series_from_segments_and_memtable_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.apply(0, 0, &dev("a", "d-1", &[(5, 1.0), (10, 2.0), (15, 3.0)])).unwrap();
    store.apply(0, 1, &dev("a", "d-2", &[(10, 4.0)])).unwrap();
    store.flush().unwrap();
    store.apply(0, 2, &dev("a", "d-1", &[(20, 5.0), (25, 6.0)])).unwrap();
    store.apply(0, 3, &dev("b", "d-1", &[(10, 7.0)])).unwrap();
    let before = store.verify_erased(&req("a", "d-1", 10, 20)).unwrap();
    assert_eq!(
        before,
        HotVerifyReport { segments_scanned: 1, samples_found: 2, memtable_samples_found: 1, series_found: 1 }
    );

    let report = store.erase(&req("a", "d-1", 10, 20)).unwrap();
    assert_eq!(report.memtable_samples_removed, 1);
    assert_eq!((report.segments_rewritten, report.segments_dropped, report.samples_removed), (1, 0, 2));
    assert!(report.bytes_rewritten > 0);
    assert_eq!(report.series_forgotten, 0);
    assert_eq!(dump(&store, "a"), vec![("d-1".into(), vec![(5, 1.0), (25, 6.0)]), ("d-2".into(), vec![(10, 4.0)])]);
    assert_eq!(dump(&store, "b"), vec![("d-1".into(), vec![(10, 7.0)])], "another tenant's same series");
    let after = store.verify_erased(&req("a", "d-1", 10, 20)).unwrap();
    assert!(clean(&after) && after.segments_scanned == 2, "{after:?}");
    drop(store);
    let store = open(dir.path());
    assert_eq!(dump(&store, "a"), vec![("d-1".into(), vec![(5, 1.0), (25, 6.0)]), ("d-2".into(), vec![(10, 4.0)])]);
    assert!(clean(&store.verify_erased(&req("a", "d-1", 10, 20)).unwrap()));
}

#[test]
fn a_wholly_covered_segment_is_dropped_and_the_series_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.apply(0, 0, &dev("a", "d-17", &[(1, 1.0), (2, 2.0)])).unwrap();
    store.flush().unwrap();
    store.apply(0, 1, &dev("a", "d-18", &[(3, 3.0)])).unwrap();
    store.flush().unwrap();
    let kept = segment_files(dir.path()).pop().unwrap();
    assert_eq!(store.tenant_series(&t("a")), 2);

    let report = store.erase(&req("a", "d-17", i64::MIN, i64::MAX)).unwrap();
    assert_eq!((report.segments_rewritten, report.segments_dropped, report.samples_removed), (0, 1, 2));
    assert_eq!(report.series_forgotten, 1);
    assert_eq!(segment_files(dir.path()), vec![kept], "the dropped segment's file is deleted");
    assert_eq!(store.tenant_series(&t("a")), 1);
    let all = TimeRange::ALL;
    assert_eq!(store.label_values(&t("a"), "device", &[], all).unwrap(), vec!["d-18".to_owned()]);
    assert!(store.series(&t("a"), &[Matcher::equal("device", "d-17")], all).unwrap().is_empty());
}

#[test]
fn a_series_emptied_in_a_rewritten_segment_leaves_its_table() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.apply(0, 0, &dev("a", "d-17", &[(1, 1.0)])).unwrap();
    store.apply(0, 1, &dev("a", "d-18", &[(1, 2.0)])).unwrap();
    store.flush().unwrap();
    store.erase(&req("a", "d-17", 0, 100)).unwrap();
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 1);
    let (_, series) = open_segment(&files[0]).unwrap();
    let devices: Vec<String> = series
        .iter()
        .flat_map(|s| s.labels.iter().filter(|(n, _)| n.as_str() == "device"))
        .map(|(_, v)| v.to_string())
        .collect();
    assert_eq!(devices, vec!["d-18".to_owned()]);
    let bytes = std::fs::read(&files[0]).unwrap();
    assert!(!bytes.windows(4).any(|w| w == b"d-17"), "no trace of the erased label value");
}

#[test]
fn a_rewrite_keeps_its_inputs_place_so_newer_writes_still_win() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.apply(0, 0, &dev("a", "d-1", &[(5, 1.0)])).unwrap();
    store.apply(0, 1, &dev("a", "d-2", &[(5, 1.0)])).unwrap();
    store.flush().unwrap();
    store.apply(0, 2, &dev("a", "d-1", &[(5, 2.0)])).unwrap();
    store.flush().unwrap();
    // The older segment is rewritten (d-2 goes) and gets a higher file id
    // than the newer one: d-1's newer value must still win.
    let report = store.erase(&req("a", "d-2", 0, 10)).unwrap();
    assert_eq!(report.segments_rewritten, 1);
    assert_eq!(dump(&store, "a"), vec![("d-1".into(), vec![(5, 2.0)])]);
    drop(store);
    let store = open(dir.path());
    assert_eq!(dump(&store, "a"), vec![("d-1".into(), vec![(5, 2.0)])]);
    store.compact().unwrap();
    assert_eq!(dump(&store, "a"), vec![("d-1".into(), vec![(5, 2.0)])]);
}

#[test]
fn a_second_erase_finds_nothing_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.apply(0, 0, &dev("a", "d-1", &[(5, 1.0), (50, 2.0)])).unwrap();
    store.flush().unwrap();
    store.erase(&req("a", "d-1", 0, 10)).unwrap();
    let files = segment_files(dir.path());
    let again = store.erase(&req("a", "d-1", 0, 10)).unwrap();
    assert_eq!(again, HotEraseReport::default());
    assert_eq!(segment_files(dir.path()), files, "no file rewritten");
}

#[test]
fn selectors_are_alternatives_and_matchers_within_one_conjunctions() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for (i, d) in ["d-1", "d-2", "d-3"].iter().enumerate() {
        store.apply(0, i as u64, &dev("a", d, &[(1, 1.0)])).unwrap();
    }
    let r = EraseRequest {
        tenant: t("a"),
        selectors: vec![
            vec![Matcher::equal("__name__", "temp"), Matcher::regex("device", "d-[12]").unwrap()],
            vec![Matcher::equal("__name__", "other"), Matcher::equal("device", "d-3")],
        ],
        start: 0,
        end: 1,
    };
    store.erase(&r).unwrap();
    assert_eq!(dump(&store, "a"), vec![("d-3".into(), vec![(1, 1.0)])]);
}

#[test]
fn a_crash_between_commit_and_delete_is_finished_by_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.apply(0, 0, &dev("a", "d-1", &[(5, 1.0), (50, 2.0)])).unwrap();
    store.flush().unwrap();
    let input = segment_files(dir.path());
    crate::failpoint::arm("erase.before_delete_input");
    assert!(store.erase(&req("a", "d-1", 0, 10)).is_err());
    assert!(input[0].exists(), "the crash left the replaced file behind");
    drop(store);
    let store = open(dir.path());
    assert!(!input[0].exists(), "a file the manifest does not name is deleted on open");
    assert_eq!(dump(&store, "a"), vec![("d-1".into(), vec![(50, 2.0)])]);
    assert!(clean(&store.verify_erased(&req("a", "d-1", 0, 10)).unwrap()));
}

#[test]
fn a_failed_commit_poisons_and_the_rerun_after_reopen_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.apply(0, 0, &dev("a", "d-1", &[(5, 1.0), (50, 2.0)])).unwrap();
    store.flush().unwrap();
    // The manifest is written once by the erase's flush (nothing new: skipped) then per segment.
    crate::failpoint::arm("manifest.before_rename");
    assert!(store.erase(&req("a", "d-1", 0, 10)).is_err());
    let e = store.erase(&req("a", "d-1", 0, 10)).unwrap_err();
    assert!(matches!(e, Error::Poisoned { .. }), "{e}");
    drop(store);
    let store = open(dir.path());
    assert_eq!(dump(&store, "a"), vec![("d-1".into(), vec![(5, 1.0), (50, 2.0)])], "nothing committed");
    store.erase(&req("a", "d-1", 0, 10)).unwrap();
    assert_eq!(dump(&store, "a"), vec![("d-1".into(), vec![(50, 2.0)])]);
}

#[test]
fn verify_reads_the_files_not_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.apply(0, 0, &dev("a", "d-1", &[(5, 1.0)])).unwrap();
    store.flush().unwrap();
    // Forget the series in memory only: the file still holds it.
    {
        let mut st = store.state.write();
        let r = st.index.select(&t("a"), &[Matcher::equal("device", "d-1")]).minimum().unwrap();
        st.index.remove(r);
    }
    let v = store.verify_erased(&req("a", "d-1", 0, 10)).unwrap();
    assert_eq!((v.samples_found, v.series_found), (1, 1), "{v:?}");
}

#[test]
fn a_corrupt_block_met_while_erasing_quarantines_its_segment_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.apply(0, 0, &dev("a", "d-1", &[(5, 1.0), (6, 2.0), (7, 3.0)])).unwrap();
    store.apply(0, 1, &dev("a", "d-2", &[(5, 1.0)])).unwrap();
    store.flush().unwrap();
    let file = segment_files(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[14] ^= 0x40; // inside the first sample block (the header is 12 bytes)
    std::fs::write(&file, &bytes).unwrap();
    let e = store.erase(&req("a", "d-1", 6, 6)).unwrap_err();
    assert!(matches!(e, Error::EraseRead { .. }) && e.kind() == ErrorKind::Corruption, "{e}");
    assert_eq!(store.quarantined().len(), 1);
    assert!(segment_files(dir.path()).is_empty(), "the corrupt file left the live directory");
    let again = store.erase(&req("a", "d-1", 6, 6)).unwrap();
    // Nothing live is left to erase from; the quarantined segment's series,
    // which quarantine leaves in the index, have no data and are forgotten.
    assert_eq!(again, HotEraseReport { series_forgotten: 2, ..HotEraseReport::default() });
    assert_eq!(store.tenant_series(&t("a")), 0);
}
