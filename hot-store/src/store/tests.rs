use super::*;
use proptest::strategy::Strategy;
use strata_schemas::{BatchSeries, Labels, Matcher, ReadError, ReadStore, Sample, SeriesId, TenantId, TimeRange};

fn t(s: &str) -> TenantId {
    TenantId::new(s).unwrap()
}

fn series(tenant: &str, pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> BatchSeries {
    let labels = Labels::from_pairs(pairs.iter().copied());
    BatchSeries {
        id: strata_schemas::series_id(&t(tenant), &labels),
        device_hash: 0,
        labels,
        samples: samples.iter().map(|&(ts, v)| Sample::new(ts, v)).collect(),
    }
}

fn batch(tenant: &str, series: Vec<BatchSeries>) -> WriteBatch {
    WriteBatch { tenant: t(tenant), series, origin: None }
}

fn one(tenant: &str, metric: &str, samples: &[(i64, f64)]) -> WriteBatch {
    batch(tenant, vec![series(tenant, &[("__name__", metric)], samples)])
}

fn open(dir: &Path) -> HotStore {
    HotStore::open(dir, HotStoreConfig::default()).unwrap()
}

fn values(store: &HotStore, tenant: &str, range: TimeRange) -> Vec<(String, Vec<(i64, f64)>)> {
    store
        .select(&t(tenant), &[], range)
        .unwrap()
        .into_iter()
        .map(|s| (s.labels.to_string(), s.samples.iter().map(|x| (x.ts, x.value)).collect()))
        .collect()
}

#[test]
fn select_returns_sorted_unique_samples_latest_write_wins() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.apply(0, 0, &one("a", "m", &[(3, 1.0), (1, 1.0), (3, 2.0)])).unwrap();
    store.apply(0, 1, &one("a", "m", &[(1, 9.0)])).unwrap();
    assert_eq!(values(&store, "a", TimeRange::ALL), vec![("m{}".into(), vec![(1, 9.0), (3, 2.0)])]);
}

#[test]
fn memtable_beats_segments_and_newer_segments_beat_older() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.apply(0, 0, &one("a", "m", &[(1, 1.0), (2, 1.0), (3, 1.0)])).unwrap();
    store.flush().unwrap();
    store.apply(0, 1, &one("a", "m", &[(2, 2.0)])).unwrap();
    store.flush().unwrap();
    store.apply(0, 2, &one("a", "m", &[(3, 3.0)])).unwrap();
    let want = vec![("m{}".to_string(), vec![(1, 1.0), (2, 2.0), (3, 3.0)])];
    assert_eq!(values(&store, "a", TimeRange::ALL), want);
    store.flush().unwrap();
    assert_eq!(store.stats().segments, 3);
    drop(store);
    let store = open(dir.path());
    assert_eq!(values(&store, "a", TimeRange::ALL), want);
    let c = store.compact().unwrap();
    assert_eq!((c.input_segments, c.samples), (3, 3));
    assert_eq!(store.stats().segments, 1);
    assert_eq!(values(&store, "a", TimeRange::ALL), want);
    drop(store);
    assert_eq!(values(&open(dir.path()), "a", TimeRange::ALL), want);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2, "MANIFEST plus one segment");
}

#[test]
fn apply_skips_records_below_the_next_expected_offset() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.apply(4, 10, &one("a", "m", &[(1, 1.0)])).unwrap();
    store.apply(4, 10, &one("a", "m", &[(1, 5.0)])).unwrap();
    store.apply(4, 3, &one("a", "m", &[(1, 6.0)])).unwrap();
    assert_eq!(values(&store, "a", TimeRange::ALL), vec![("m{}".into(), vec![(1, 1.0)])]);
    store.apply(5, 0, &one("a", "m", &[(1, 7.0)])).unwrap();
    assert_eq!(values(&store, "a", TimeRange::ALL), vec![("m{}".into(), vec![(1, 7.0)])]);
}

#[test]
fn flush_records_offsets_and_reopen_resumes_replay_there() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(store.replay_from(0), 0);
    store.apply(0, 0, &one("a", "m", &[(1, 1.0)])).unwrap();
    store.apply(1, 7, &one("a", "m", &[(2, 1.0)])).unwrap();
    let out = store.flush().unwrap();
    assert_eq!(out.flushed_offsets, BTreeMap::from([(0, 1), (1, 8)]));
    assert_eq!((out.series, out.samples), (1, 2));
    store.apply(0, 1, &one("a", "m", &[(3, 1.0)])).unwrap();
    drop(store);
    let store = open(dir.path());
    assert_eq!((store.replay_from(0), store.replay_from(1), store.replay_from(2)), (1, 8, 0));
    assert_eq!(store.flushed_offsets(), BTreeMap::from([(0, 1), (1, 8)]));
    assert_eq!(values(&store, "a", TimeRange::ALL), vec![("m{}".into(), vec![(1, 1.0), (2, 1.0)])]);
    store.apply(1, 7, &one("a", "m", &[(2, 9.0)])).unwrap(); // replay overlap: skipped
    assert_eq!(values(&store, "a", TimeRange::ALL), vec![("m{}".into(), vec![(1, 1.0), (2, 1.0)])]);
}

#[test]
fn flush_with_nothing_new_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let out = store.flush().unwrap();
    assert_eq!((out.segment, out.flushed_offsets.len()), (None, 0));
    store.apply(2, 0, &batch("a", vec![])).unwrap();
    let out = store.flush().unwrap();
    assert_eq!((out.segment, out.flushed_offsets), (None, BTreeMap::from([(2, 1)])), "offsets advance without data");
    assert_eq!(store.stats().segments, 0);
    assert_eq!(open(dir.path()).replay_from(2), 1);
}

#[test]
fn colliding_series_ids_never_merge_label_sets() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut a = series("t", &[("__name__", "m"), ("dev", "a")], &[(1, 1.0)]);
    let mut b = series("t", &[("__name__", "m"), ("dev", "b")], &[(1, 2.0)]);
    (a.id, b.id) = (SeriesId(42), SeriesId(42));
    store.apply(0, 0, &batch("t", vec![a.clone()])).unwrap();
    store.flush().unwrap();
    store.apply(0, 1, &batch("t", vec![b.clone()])).unwrap();
    let want = vec![("m{dev=\"a\"}".to_string(), vec![(1, 1.0)]), ("m{dev=\"b\"}".to_string(), vec![(1, 2.0)])];
    assert_eq!(values(&store, "t", TimeRange::ALL), want);
    assert_eq!(store.stats().id_collisions, 1);
    store.flush().unwrap();
    store.compact().unwrap();
    drop(store);
    let store = open(dir.path());
    assert_eq!(values(&store, "t", TimeRange::ALL), want);
    let only_b = store.select(&t("t"), &[Matcher::equal("dev", "b")], TimeRange::ALL).unwrap();
    assert_eq!(only_b.len(), 1);
    assert_eq!(only_b[0].labels, b.labels);
}

#[test]
fn tenants_only_see_their_own_series() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.apply(0, 0, &one("a", "m", &[(1, 1.0)])).unwrap();
    store.apply(0, 1, &one("b", "m", &[(1, 2.0)])).unwrap();
    store.flush().unwrap();
    store.apply(0, 2, &one("b", "n", &[(2, 2.0)])).unwrap();
    assert_eq!(values(&store, "a", TimeRange::ALL), vec![("m{}".into(), vec![(1, 1.0)])]);
    assert_eq!(store.label_values(&t("a"), "__name__", &[], TimeRange::ALL).unwrap(), vec!["m"]);
    assert_eq!(store.label_values(&t("b"), "__name__", &[], TimeRange::ALL).unwrap(), vec!["m", "n"]);
    assert!(store.series(&t("c"), &[], TimeRange::ALL).unwrap().is_empty());
}

#[test]
fn series_and_labels_do_not_read_sample_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let s = series("a", &[("__name__", "m"), ("k", "v")], &[(10, 1.0), (20, 1.0)]);
    store.apply(0, 0, &batch("a", vec![s])).unwrap();
    let path = store.flush().unwrap().segment.unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[14] ^= 0xff; // inside the only sample block
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(store.series(&t("a"), &[], TimeRange::ALL).unwrap().len(), 1);
    assert_eq!(store.label_names(&t("a"), &[], TimeRange::ALL).unwrap(), vec!["__name__", "k"]);
    assert_eq!(store.series(&t("a"), &[], TimeRange::new(20, 30)).unwrap().len(), 1, "max ts in range");
    assert!(store.series(&t("a"), &[], TimeRange::new(21, 30)).unwrap().is_empty(), "outside min/max");
    let err = store.select(&t("a"), &[], TimeRange::ALL).unwrap_err();
    assert!(matches!(&err, ReadError::Corrupted { location, .. } if location.contains(&path.display().to_string())));
}

#[test]
fn series_excludes_series_whose_samples_straddle_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.apply(0, 0, &one("a", "m", &[(10, 1.0), (30, 1.0)])).unwrap();
    store.apply(0, 1, &one("a", "n", &[(10, 1.0), (20, 1.0), (30, 1.0)])).unwrap();
    let names = |s: &HotStore| -> Vec<String> {
        s.series(&t("a"), &[], TimeRange::new(15, 25)).unwrap().iter().map(|l| l.metric_name().to_owned()).collect()
    };
    assert_eq!(names(&store), vec!["n"]);
    store.flush().unwrap();
    assert_eq!(names(&store), vec!["n"], "decided by decoding straddling blocks");
    assert_eq!(values(&store, "a", TimeRange::new(15, 25)), vec![("n{}".into(), vec![(20, 1.0)])]);
}

#[test]
fn matchers_follow_prometheus_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let b = batch(
        "a",
        vec![
            series("a", &[("__name__", "m"), ("farm", "f1")], &[(1, 1.0)]),
            series("a", &[("__name__", "m"), ("farm", "f2")], &[(1, 1.0)]),
            series("a", &[("__name__", "m")], &[(1, 1.0)]),
        ],
    );
    store.apply(0, 0, &b).unwrap();
    let count = |m: Vec<Matcher>| store.series(&t("a"), &m, TimeRange::ALL).unwrap().len();
    assert_eq!(count(vec![Matcher::equal("farm", "f1")]), 1);
    assert_eq!(count(vec![Matcher::equal("farm", "")]), 1);
    assert_eq!(count(vec![Matcher::regex("farm", "f.*").unwrap()]), 2);
    assert_eq!(count(vec![Matcher::not_equal("farm", "f1")]), 2);
    assert_eq!(count(vec![]), 3);
}

#[test]
fn nan_payloads_survive_flush_bitwise() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let stale = f64::from_bits(strata_schemas::labels::STALE_NAN_BITS);
    store.apply(0, 0, &one("a", "m", &[(1, stale), (2, f64::NAN), (3, -0.0)])).unwrap();
    store.flush().unwrap();
    let got = store.select(&t("a"), &[], TimeRange::ALL).unwrap();
    let bits: Vec<u64> = got[0].samples.iter().map(|s| s.value.to_bits()).collect();
    assert_eq!(bits, vec![stale.to_bits(), f64::NAN.to_bits(), (-0.0f64).to_bits()]);
}

#[test]
fn writes_and_reads_continue_during_concurrent_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let flusher = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            for _ in 0..20 {
                store.flush().unwrap();
            }
        })
    };
    for i in 0..400i64 {
        store.apply(0, i as u64, &one("a", "m", &[(i, i as f64)])).unwrap();
        let got = store.select(&t("a"), &[], TimeRange::ALL).unwrap();
        assert_eq!(got[0].samples.len() as i64, i + 1, "no sample disappears while a flush runs");
    }
    flusher.join().unwrap();
    store.flush().unwrap();
    let s = store.stats();
    assert_eq!((s.memtable_samples, s.frozen_samples), (0, 0));
    assert_eq!(store.select(&t("a"), &[], TimeRange::ALL).unwrap()[0].samples.len(), 400);
}

#[test]
fn concurrent_partitions_removals_and_flushes_lose_nothing() {
    // Four partitions apply at once (series looked up under the shared lock,
    // appended under the exclusive one) while another tenant's series are
    // created and purged (removals invalidate lookups made before them) and
    // the memtable is flushed. Label sets are the same shared objects record
    // after record (found by address) except every 7th record, which carries
    // equal copies (compared, then remembered).
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    const RECORDS: i64 = 150;
    const SERIES: usize = 20;
    let writers: Vec<_> = (0..4u32)
        .map(|p| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let shared: Vec<BatchSeries> = (0..SERIES)
                    .map(|i| series("a", &[("__name__", "m"), ("p", &p.to_string()), ("s", &i.to_string())], &[]))
                    .collect();
                for r in 0..RECORDS {
                    let batch = batch(
                        "a",
                        shared
                            .iter()
                            .map(|s| {
                                let labels = if r % 7 == 3 {
                                    Labels::from_sorted(s.labels.iter().cloned().collect())
                                } else {
                                    s.labels.clone()
                                };
                                BatchSeries { labels, samples: [Sample::new(r, r as f64)].into(), ..s.clone() }
                            })
                            .collect(),
                    );
                    store.apply(p, r as u64, &batch).unwrap();
                }
            })
        })
        .collect();
    let churn = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            for i in 0..40u64 {
                store.apply(9, i, &one("b", &format!("x{i}"), &[(1, 1.0)])).unwrap();
                if i % 5 == 4 {
                    store.purge_tenant(&t("b")).unwrap();
                }
                if i % 10 == 0 {
                    store.flush().unwrap();
                }
            }
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    churn.join().unwrap();
    let got = store.select(&t("a"), &[], TimeRange::ALL).unwrap();
    assert_eq!(got.len(), 4 * SERIES, "one series per label set, none duplicated");
    for s in &got {
        let ts: Vec<i64> = s.samples.iter().map(|x| x.ts).collect();
        assert_eq!(ts, (0..RECORDS).collect::<Vec<_>>(), "{}", s.labels);
    }
    assert_eq!(store.tenant_series(&t("a")), 4 * SERIES as u64);
}

#[test]
fn hot_store_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<HotStore>();
    assert_send_sync::<Arc<HotStore>>();
}

#[test]
fn a_flush_failing_for_a_full_disk_is_retried_without_poisoning_the_store() {
    // A small tmpfs gives a real ENOSPC; mounting needs root.
    let mnt = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(mnt.path())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!(
            "SKIPPED a_flush_failing_for_a_full_disk_is_retried_without_poisoning_the_store: cannot mount a tmpfs"
        );
        return;
    }
    struct Umount<'a>(&'a Path);
    impl Drop for Umount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _umount = Umount(mnt.path());
    let dir = mnt.path().join("hot");
    let store = open(&dir);
    let samples: Vec<(i64, f64)> = (0..20_000).map(|i| (i, (i * 7919 % 1000) as f64 / 3.0)).collect();
    store.apply(0, 0, &one("a", "m", &samples)).unwrap();
    let filler = mnt.path().join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        while f.write_all(&[0xa5; 4096]).is_ok() {}
    }
    let err = store.flush().unwrap_err();
    assert!(format!("{err}").contains("No space"), "{err}");
    assert!(store.flush_pending());
    // Not poisoned: applies go on, reads see both memtables.
    store.apply(0, 1, &one("a", "m", &[(50_000, 1.0)])).unwrap();
    assert_eq!(values(&store, "a", TimeRange::ALL)[0].1.len(), 20_001);
    let leftovers = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "seg"))
        .count();
    assert_eq!(leftovers, 0, "files of the failed flush are deleted");

    std::fs::remove_file(&filler).unwrap();
    let out = store.flush().unwrap();
    assert_eq!(out.samples, 20_001, "the retried memtable and the current one");
    assert!(!store.flush_pending());
    assert_eq!(out.flushed_offsets[&0], 2);
    drop(store);
    let store = open(&dir);
    assert_eq!(values(&store, "a", TimeRange::ALL)[0].1.len(), 20_001);
    assert_eq!(store.replay_from(0), 2);
}

fn edge(agent: &str, seq: u64, mut b: WriteBatch) -> WriteBatch {
    b.origin = Some(strata_schemas::BatchOrigin::new(agent, seq).unwrap());
    b
}

#[test]
fn an_edge_batch_is_applied_once_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.apply(0, 0, &edge("gw-1", 7, one("a", "m", &[(1, 1.0)]))).unwrap();
    // The re-sent batch (here with another value, to make a second apply visible).
    store.apply(0, 1, &edge("gw-1", 7, one("a", "m", &[(1, 2.0), (2, 2.0)]))).unwrap();
    assert_eq!(values(&store, "a", TimeRange::ALL), vec![("m{}".into(), vec![(1, 1.0)])]);
    assert_eq!(store.stats().edge_duplicates_skipped, 1);
    assert_eq!(store.stats().memtable_samples, 1, "the duplicate never reached the memtable");
    // Another sequence number, agent or partition is another batch.
    store.apply(0, 2, &edge("gw-1", 6, one("a", "m", &[(3, 1.0)]))).unwrap();
    store.apply(0, 3, &edge("gw-2", 7, one("a", "m", &[(4, 1.0)]))).unwrap();
    store.apply(1, 0, &edge("gw-1", 7, one("a", "n", &[(1, 1.0)]))).unwrap();
    // Without an origin: applied as always (latest write wins).
    store.apply(0, 4, &one("a", "m", &[(4, 5.0)])).unwrap();
    assert_eq!(
        values(&store, "a", TimeRange::ALL),
        vec![("m{}".into(), vec![(1, 1.0), (3, 1.0), (4, 5.0)]), ("n{}".into(), vec![(1, 1.0)])]
    );
    assert_eq!(store.stats().edge_duplicates_skipped, 1);
    // A duplicate consumes its offset: a flush records it.
    store.apply(0, 5, &edge("gw-2", 7, one("a", "m", &[(4, 9.0)]))).unwrap();
    assert_eq!(store.flush().unwrap().flushed_offsets, BTreeMap::from([(0, 6), (1, 1)]));
    assert_eq!(store.stats().edge_duplicates_skipped, 2);
}

/// The in-memory log of a test: records per partition in offset order.
struct TestLog(BTreeMap<u32, Vec<WriteBatch>>);

impl TestLog {
    fn append(&mut self, store: &HotStore, p: u32, b: WriteBatch) {
        let records = self.0.entry(p).or_default();
        store.apply(p, records.len() as u64, &b).unwrap();
        records.push(b);
    }

    /// What the server does on open: every partition from its flushed offset.
    fn replay(&self, store: &HotStore) {
        for (&p, records) in &self.0 {
            for (o, b) in records.iter().enumerate().skip(store.replay_from(p) as usize) {
                store.apply(p, o as u64, b).unwrap();
            }
        }
    }
}

#[test]
fn applied_edge_batches_survive_flush_restart_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog(BTreeMap::new());
    let store = open(dir.path());
    // Out of order, as the agent's two lanes send: 5, 1, 2, 9.
    for (seq, ts) in [(5, 5), (1, 1), (2, 2), (9, 9)] {
        log.append(&store, 0, edge("gw-1", seq, one("a", "m", &[(ts, 1.0)])));
        log.append(&store, 1, edge("gw-1", seq, one("a", "n", &[(ts, 1.0)])));
    }
    store.flush().unwrap();
    // After the flush, not flushed: seq 3 in partition 0 only.
    log.append(&store, 0, edge("gw-1", 3, one("a", "m", &[(3, 1.0)])));
    drop(store); // a crash: the memtable is lost, the log is not

    let manifest = manifest::load(dir.path()).unwrap().unwrap();
    assert_eq!(manifest.edge_origins[&0]["gw-1"], "1-2,5,9 @3");
    assert_eq!(manifest.edge_origins[&1]["gw-1"], "1-2,5,9 @3");
    let store = open(dir.path());
    log.replay(&store);
    assert_eq!(store.stats().edge_duplicates_skipped, 0, "replay applies what was not flushed, once");
    // Re-sends of every batch, with other values: all skipped, in both partitions.
    for seq in [1, 2, 3, 5, 9] {
        log.append(&store, 0, edge("gw-1", seq, one("a", "m", &[(seq as i64, 2.0)])));
    }
    for seq in [1, 2, 5, 9] {
        log.append(&store, 1, edge("gw-1", seq, one("a", "n", &[(seq as i64, 2.0)])));
    }
    assert_eq!(store.stats().edge_duplicates_skipped, 9);
    // Seq 3 never reached partition 1: applied there.
    log.append(&store, 1, edge("gw-1", 3, one("a", "n", &[(3, 1.0)])));
    let want = |m: &str| (format!("{m}{{}}"), vec![(1, 1.0), (2, 1.0), (3, 1.0), (5, 1.0), (9, 1.0)]);
    assert_eq!(values(&store, "a", TimeRange::ALL), vec![want("m"), want("n")]);

    // Flush, restart, replay again (nothing left to replay), re-send again.
    store.flush().unwrap();
    drop(store);
    let store = open(dir.path());
    log.replay(&store);
    log.append(&store, 0, edge("gw-1", 3, one("a", "m", &[(3, 3.0)])));
    log.append(&store, 1, edge("gw-1", 3, one("a", "n", &[(3, 3.0)])));
    assert_eq!(store.stats().edge_duplicates_skipped, 2);
    assert_eq!(values(&store, "a", TimeRange::ALL), vec![want("m"), want("n")]);

    // A crash without any flush after the last restart: replay from the
    // flushed offsets rebuilds the same decisions.
    drop(store);
    let store = open(dir.path());
    log.replay(&store);
    assert_eq!(store.stats().edge_duplicates_skipped, 2);
    assert_eq!(values(&store, "a", TimeRange::ALL), vec![want("m"), want("n")]);
}

#[test]
fn applies_during_a_flush_do_not_leak_into_its_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.apply(0, 0, &edge("gw-1", 1, one("a", "m", &[(1, 1.0)]))).unwrap();
    let (frozen, offsets, origins, seq) = store.freeze().unwrap().unwrap();
    // Applied while the flush writes: not part of the flushed state.
    store.apply(0, 1, &edge("gw-1", 2, one("a", "m", &[(2, 1.0)]))).unwrap();
    store.write_frozen(&frozen, offsets, &origins, seq, FlushEncoding { threads: 1, cpu_share: 1.0 }).unwrap();
    let m = manifest::load(dir.path()).unwrap().unwrap();
    assert_eq!((m.flushed_offsets[&0], m.edge_origins[&0]["gw-1"].as_str()), (1, "1 @0"));
    store.flush().unwrap();
    let m = manifest::load(dir.path()).unwrap().unwrap();
    assert_eq!((m.flushed_offsets[&0], m.edge_origins[&0]["gw-1"].as_str()), (2, "1-2 @1"));
}

#[test]
fn too_many_agents_or_ranges_are_forgotten_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let config = HotStoreConfig { edge_dedup_max_agents: 2, edge_dedup_max_ranges: 2, ..HotStoreConfig::default() };
    let store = HotStore::open(dir.path(), config).unwrap();
    let mut o = 0;
    let mut apply = |agent: &str, seq: u64| {
        store.apply(0, o, &edge(agent, seq, one("a", "m", &[(o as i64, 1.0)]))).unwrap();
        o += 1;
    };
    apply("a", 1);
    apply("a", 3);
    apply("a", 5); // three ranges: {1} forgotten
    apply("b", 1);
    apply("c", 1); // a third agent: "a" (seen least recently) forgotten
    apply("a", 5); // applied again
    let s = store.stats();
    assert_eq!((s.edge_ranges_dropped, s.edge_agents_evicted, s.edge_duplicates_skipped), (1, 2, 0));
}

#[test]
fn a_version_4_store_opens_and_is_written_as_the_current_version() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("MANIFEST"), include_bytes!("../../tests/fixtures/manifest/v4/MANIFEST")).unwrap();
    let store = open(dir.path());
    assert_eq!((store.replay_from(0), store.replay_from(3)), (5, 2));
    store.apply(0, 5, &edge("gw-1", 1, one("a", "m", &[(1, 1.0)]))).unwrap();
    store.flush().unwrap();
    drop(store);
    let bytes = std::fs::read(dir.path().join("MANIFEST")).unwrap();
    assert_eq!(bytes[4], crate::FormatVersion::CURRENT.as_u8());
    let store = open(dir.path());
    store.apply(0, 6, &edge("gw-1", 1, one("a", "m", &[(1, 2.0)]))).unwrap();
    assert_eq!(store.stats().edge_duplicates_skipped, 1);
    assert_eq!(values(&store, "a", TimeRange::ALL), vec![("m{}".into(), vec![(1, 1.0)])]);
}

/// Every sample of tenant `a`, value bits (NaN payloads compare).
fn all_bits(store: &HotStore) -> Vec<(String, Vec<(i64, u64)>)> {
    let mut v: Vec<_> = store
        .select(&t("a"), &[], TimeRange::ALL)
        .unwrap()
        .into_iter()
        .map(|s| (s.labels.to_string(), s.samples.iter().map(|x| (x.ts, x.value.to_bits())).collect()))
        .collect();
    v.sort();
    v
}

/// (stream blocks, all blocks) of the live segments.
fn block_kinds(store: &HotStore) -> (usize, usize) {
    let st = store.state.read();
    let blocks = st.segments.iter().flat_map(|s| s.blocks.iter());
    blocks.fold((0, 0), |(s, n), (_, b)| (s + usize::from(b.stream), n + 1))
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// A flush copies memtable chunks into stream blocks; what the segment
    /// then serves is exactly what the memtable served, bit for bit, with
    /// out-of-order writes, rewrites of a timestamp, staleness markers, NaN
    /// payloads, -0.0, infinities and huge values, across buckets; and so
    /// do the V4 blocks compaction rewrites them into, and a reopened store.
    /// Chunks with out-of-order samples aside are merged in their own mode
    /// (or encoded when a merged value does not fit it): the number of
    /// stream blocks is the number of chunks copied or merged.
    #[test]
    fn a_flushed_by_copy_segment_reads_back_exactly_what_the_memtable_held(
        batches in proptest::collection::vec(
            proptest::collection::vec((0usize..5, -3i64..60, proptest::prop_oneof![
                8 => (-5000i64..5000, 0u32..4).prop_map(|(m, k)| m as f64 / 10f64.powi(k as i32)),
                1 => proptest::prelude::any::<u64>().prop_map(f64::from_bits),
                1 => proptest::prelude::Just(f64::from_bits(strata_schemas::labels::STALE_NAN_BITS)),
                1 => proptest::prelude::Just(-0.0),
                1 => proptest::prelude::Just(f64::INFINITY),
                1 => proptest::prelude::Just(1e308),
            ]), 1..40),
            1..8,
        ),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        // Timestamps mostly move forward by 30 s per step, with steps back
        // (out of order, rewrites); 2 h buckets: 60 steps cross a boundary.
        let bucket0 = 1_700_006_400_000i64;
        let mut clock = [0i64; 5];
        for (offset, b) in batches.iter().enumerate() {
            let mut per_series: Vec<Vec<(i64, f64)>> = vec![Vec::new(); 5];
            for &(i, step, v) in b {
                let c = &mut clock[i];
                *c += step;
                per_series[i].push((bucket0 + 7_000_000 + *c * 30_000 + step.rem_euclid(3), v));
            }
            let series: Vec<BatchSeries> = per_series
                .iter()
                .enumerate()
                .filter(|(_, s)| !s.is_empty())
                .map(|(i, s)| {
                    let (dev, i) = (format!("d{}", i % 2), i.to_string());
                    series("a", &[("__name__", "m"), ("dev", dev.as_str()), ("i", i.as_str())], s)
                })
                .collect();
            store.apply(0, offset as u64, &batch("a", series)).unwrap();
        }
        let held = all_bits(&store);
        let copyable = store
            .state
            .read()
            .memtable
            .iter()
            .filter(|(_, _, c)| c.stream_block().is_some() || c.merged().is_some())
            .count();
        let chunks = store.state.read().memtable.iter().count();

        store.flush().unwrap();
        proptest::prop_assert_eq!(block_kinds(&store), (copyable, chunks));
        proptest::prop_assert_eq!(&all_bits(&store), &held, "after the flush");

        store.compact().unwrap();
        proptest::prop_assert_eq!(block_kinds(&store).0, 0, "compaction rewrites stream blocks");
        proptest::prop_assert_eq!(&all_bits(&store), &held, "after compaction");
        drop(store);
        proptest::prop_assert_eq!(&all_bits(&open(dir.path())), &held, "after reopening");
    }
}

/// Stream blocks survive a restart: a store reopened right after a flush
/// (before any compaction) reads them back.
#[test]
fn stream_blocks_are_read_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let stale = f64::from_bits(strata_schemas::labels::STALE_NAN_BITS);
    store.apply(0, 0, &one("a", "dec", &[(1_000, 20.25), (31_000, 20.5), (61_000, 19.75)])).unwrap();
    store.apply(0, 1, &one("a", "gor", &[(1_000, 0.1 + 0.2), (31_000, stale), (60_990, f64::NAN)])).unwrap();
    let held = all_bits(&store);
    store.flush().unwrap();
    assert_eq!(block_kinds(&store), (2, 2));
    drop(store);
    let store = open(dir.path());
    assert_eq!(block_kinds(&store), (2, 2));
    assert_eq!(all_bits(&store), held);
}

#[test]
fn a_flush_walking_the_memtable_in_slices_keeps_every_series_while_applies_go_on() {
    // More series than one hold of the read lock groups (`LOCK_SLICE`), in
    // two tenants and two buckets, flushed while a writer creates series and
    // appends to old ones between the slices; then flushed again, reopened
    // and read back exactly.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let n = LOCK_SLICE * 2 + 100;
    assert!(50 * 40 < n, "the writer appends to old series only");
    let bucket = store.bucket_ms;
    let mk = |tenant: &str, i: usize, ts: i64| {
        series(tenant, &[("__name__", "m"), ("s", &i.to_string())], &[(ts, i as f64)])
    };
    store.apply(0, 0, &batch("a", (0..n).map(|i| mk("a", i, 1)).collect())).unwrap();
    store.apply(0, 1, &batch("b", (0..1000).map(|i| mk("b", i, bucket + 1)).collect())).unwrap();
    let writer = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            for k in 0..50usize {
                let new = (0..200).map(|j| mk("a", n + k * 200 + j, 2));
                let old = (k * 40..k * 40 + 40).map(|i| mk("a", i, 3));
                store.apply(1, k as u64, &batch("a", new.chain(old).collect())).unwrap();
            }
        })
    };
    let flushed = store.flush().unwrap();
    writer.join().unwrap();
    assert!(flushed.series >= n + 1000, "the first flush holds every series applied before it: {}", flushed.series);
    store.flush().unwrap();
    drop(store);
    let store = open(dir.path());
    let expect = |i: usize| -> Vec<(i64, f64)> {
        match i {
            i if i >= n => vec![(2, i as f64)],
            i if i < 50 * 40 => vec![(1, i as f64), (3, i as f64)],
            i => vec![(1, i as f64)],
        }
    };
    let mut got = values(&store, "a", TimeRange::ALL);
    assert_eq!(got.len(), n + 50 * 200);
    got.sort_by_key(|(labels, _)| labels.clone());
    for (labels, samples) in got {
        let i: usize = labels.split("s=\"").nth(1).and_then(|r| r.split('"').next()).unwrap().parse().unwrap();
        assert_eq!(samples, expect(i), "{labels}");
    }
    let b = values(&store, "b", TimeRange::ALL);
    assert_eq!(b.len(), 1000);
    assert!(b.iter().all(|(_, s)| s.len() == 1 && s[0].0 == bucket + 1));
}

/// Two tenants, one of them over two buckets, more series than three parts
/// of a parallel flush ([`FLUSH_PART_SERIES`]); chunks that are copied (in
/// order), merged (one late sample aside) and encoded (a late value that
/// does not fit the chunk's decimal mode).
fn fill_for_parallel_flush(store: &HotStore) -> usize {
    let n = FLUSH_PART_SERIES * 3 + 17;
    let bucket = store.bucket_ms;
    let a: Vec<BatchSeries> = (0..n)
        .map(|i| {
            let mut s: Vec<(i64, f64)> = (1..=12).map(|k| (k * 30_000, (i as f64) + k as f64 * 0.25)).collect();
            match i % 3 {
                1 => s.push((15_000, 7.5)),
                2 => s.push((15_000, 0.1 + 0.2)),
                _ => {}
            }
            let (dev, i) = (format!("d{}", i % 97), i.to_string());
            series("a", &[("__name__", "m"), ("dev", dev.as_str()), ("i", i.as_str())], &s)
        })
        .collect();
    store.apply(0, 0, &batch("a", a)).unwrap();
    let b: Vec<BatchSeries> = (0..500)
        .map(|i| {
            let i = i.to_string();
            series("b", &[("__name__", "m"), ("i", i.as_str())], &[(1_000, 1.0), (bucket + 1_000, 2.0)])
        })
        .collect();
    store.apply(1, 0, &batch("b", b)).unwrap();
    n
}

/// Every file of a store directory, by name, with its bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    v.sort();
    v
}

#[test]
fn a_flush_on_several_threads_writes_the_very_files_of_a_flush_on_one() {
    let (one, many) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (s1, sn) = (open(one.path()), open(many.path()));
    let n = fill_for_parallel_flush(&s1);
    fill_for_parallel_flush(&sn);
    let held = all_bits(&sn);
    let kinds = {
        let st = sn.state.read();
        let copied = st.memtable.iter().filter(|(_, _, c)| c.stream_block().is_some()).count();
        let merged = st.memtable.iter().filter(|(_, _, c)| c.merged().is_some()).count();
        (copied, merged, st.memtable.iter().count())
    };
    assert!(kinds.0 > 0 && kinds.1 > 0 && kinds.0 + kinds.1 < kinds.2, "copied, merged and encoded: {kinds:?}");
    let o1 = s1.flush_on(1).unwrap();
    let on = sn.flush_on(4).unwrap();
    assert_eq!((on.series, on.samples, on.segments.len()), (n + 1000, o1.samples, 3));
    assert_eq!((o1.series, &o1.flushed_offsets), (on.series, &on.flushed_offsets));
    let (f1, fnn) = (files(one.path()), files(many.path()));
    assert_eq!(f1.iter().map(|f| &f.0).collect::<Vec<_>>(), fnn.iter().map(|f| &f.0).collect::<Vec<_>>());
    for ((name, a), (_, b)) in f1.iter().zip(&fnn) {
        assert!(a == b, "{name} differs between the one-thread and the four-thread flush");
    }
    assert_eq!(block_kinds(&sn), (kinds.0 + kinds.1, kinds.2));
    assert_eq!(all_bits(&sn), held, "after the flush");
    drop(sn);
    assert_eq!(all_bits(&open(many.path())), held, "after reopening");
}

#[test]
fn a_paced_flush_writes_the_very_files_of_an_unpaced_one_and_pauses_between_parts() {
    let (one, paced) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s1 = open(one.path());
    let config = HotStoreConfig { flush_cpu_share: 0.25, ..HotStoreConfig::default() };
    let sp = HotStore::open(paced.path(), config).unwrap();
    fill_for_parallel_flush(&s1);
    fill_for_parallel_flush(&sp);
    let held = all_bits(&sp);
    let o1 = s1.flush_on(1).unwrap();
    let op = sp.flush_paced().unwrap();
    assert_eq!(o1.paused, std::time::Duration::ZERO, "an unpaced flush never pauses");
    assert!(op.paused > std::time::Duration::ZERO, "the memtable has room: the paced flush paused");
    assert_eq!((op.series, op.samples, &op.flushed_offsets), (o1.series, o1.samples, &o1.flushed_offsets));
    let (f1, fp) = (files(one.path()), files(paced.path()));
    assert_eq!(f1.iter().map(|f| &f.0).collect::<Vec<_>>(), fp.iter().map(|f| &f.0).collect::<Vec<_>>());
    for ((name, a), (_, b)) in f1.iter().zip(&fp) {
        assert!(a == b, "{name} differs between the paced and the unpaced flush");
    }
    assert_eq!(all_bits(&sp), held);
}

#[test]
fn a_flush_on_several_threads_keeps_every_series_while_applies_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let n = fill_for_parallel_flush(&store);
    let writer = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            for k in 0..20usize {
                let more = (k * 50..k * 50 + 50)
                    .map(|i| series("a", &[("__name__", "late"), ("i", &i.to_string())], &[(1_000, i as f64)]));
                store.apply(2, k as u64, &batch("a", more.collect())).unwrap();
            }
        })
    };
    let flushed = store.flush_on(2).unwrap();
    writer.join().unwrap();
    assert!(flushed.series >= n + 1000, "{}", flushed.series);
    let held = all_bits(&store);
    assert_eq!(held.len(), n + 1000);
    store.flush_on(2).unwrap();
    drop(store);
    assert_eq!(all_bits(&open(dir.path())), held);
}

#[test]
fn a_compaction_reading_the_index_in_slices_keeps_every_series_while_applies_go_on() {
    // Two segments of one bucket with more series than three holds of the
    // read lock (`LOCK_SLICE`), compacted while a writer creates series and
    // appends to old ones; then flushed, compacted again, reopened and read
    // back exactly.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let n = LOCK_SLICE * 3 + 7;
    let mk = |i: usize, ts: i64| series("a", &[("__name__", "m"), ("s", &i.to_string())], &[(ts, i as f64)]);
    store.apply(0, 0, &batch("a", (0..n).map(|i| mk(i, 1)).collect())).unwrap();
    store.flush().unwrap();
    store.apply(0, 1, &batch("a", (0..n).step_by(2).map(|i| mk(i, 2)).collect())).unwrap();
    store.flush().unwrap();
    let writer = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            for k in 0..40usize {
                let new = (0..100).map(|j| mk(n + k * 100 + j, 3));
                let old = (k * 10..k * 10 + 10).map(|i| mk(i, 4));
                store.apply(1, k as u64, &batch("a", new.chain(old).collect())).unwrap();
            }
        })
    };
    let c = store.compact().unwrap();
    writer.join().unwrap();
    assert_eq!(c.input_segments, 2, "{c:?}");
    assert_eq!(c.series, n, "the compaction wrote every series of its inputs");
    store.flush().unwrap();
    store.compact().unwrap();
    drop(store);
    let store = open(dir.path());
    let expect = |i: usize| -> Vec<(i64, f64)> {
        let v = i as f64;
        if i >= n {
            return vec![(3, v)];
        }
        let mut s = vec![(1, v)];
        if i.is_multiple_of(2) {
            s.push((2, v));
        }
        if i < 400 {
            s.push((4, v));
        }
        s
    };
    let got = values(&store, "a", TimeRange::ALL);
    assert_eq!(got.len(), n + 4000);
    for (labels, samples) in got {
        let i: usize = labels.split("s=\"").nth(1).and_then(|r| r.split('"').next()).unwrap().parse().unwrap();
        assert_eq!(samples, expect(i), "{labels}");
    }
}

#[test]
fn expiry_forgets_only_candidates_that_gained_no_memtable_sample() {
    // The candidates are found under the read lock; a series that receives
    // a sample before the write lock is taken must be kept.
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mk = |i: usize, ts: i64| series("a", &[("__name__", "m"), ("s", &i.to_string())], &[(ts, i as f64)]);
    store.apply(0, 0, &batch("a", (0..10).map(|i| mk(i, 1)).collect())).unwrap();
    store.flush().unwrap();
    let candidates = {
        let st = store.state.read();
        let ids: Vec<u64> = st.segments.iter().map(|s| s.id).collect();
        crate::maintenance::dataless_candidates(&st, &ids)
    };
    assert_eq!(candidates.len(), 10, "with its only segment doomed, every series is a candidate");
    store.apply(0, 1, &batch("a", vec![mk(3, 2), mk(7, 2)])).unwrap();
    let forgotten = crate::maintenance::forget_candidates_without_data(&mut store.state.write(), &candidates);
    assert_eq!(forgotten, 8);
    let st = store.state.read();
    let live: Vec<SeriesRef> = st.index.live_refs().collect();
    assert_eq!(live.len(), 2);
    assert!(live.iter().all(|&r| !st.memtable.get(r).is_empty()));
}

#[test]
fn flushes_go_on_while_an_expiry_waits_for_a_running_compaction() {
    // A compaction holds `compact_lock` for seconds on a busy host. An
    // expiry waiting for it must not hold `flush_lock` meanwhile: the soak's
    // writes stalled at the memtable's hard limit until the compaction ended.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    store.apply(0, 0, &one("a", "m", &[(1, 1.0)])).unwrap();
    let compaction = store.compact_lock.lock(); // a compaction "running"
    let expiry = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || store.expire(i64::MAX / 2).unwrap())
    };
    std::thread::sleep(Duration::from_millis(100)); // the expiry is waiting now
    let (tx, rx) = std::sync::mpsc::channel();
    let flusher = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || tx.send(store.flush().map(|o| o.samples)).unwrap())
    };
    let flushed = rx.recv_timeout(Duration::from_secs(10));
    drop(compaction);
    expiry.join().unwrap();
    flusher.join().unwrap();
    assert_eq!(flushed.expect("the flush waited for the expiry, which waited for the compaction").unwrap(), 1);
}
