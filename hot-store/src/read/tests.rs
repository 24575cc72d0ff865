use proptest::prelude::*;

use super::seek_from;

proptest! {
    /// Lookups in ascending order through the cursor find exactly what a
    /// binary search over the whole table finds.
    #[test]
    fn cursor_finds_what_binary_search_finds(
        keys in proptest::collection::btree_set(0u32..2000, 0..300),
        asked in proptest::collection::btree_set(0u32..2100, 0..300),
    ) {
        let table: Vec<u32> = keys.into_iter().collect();
        let mut pos = 0;
        for r in asked {
            let expected = table.binary_search(&r).ok();
            prop_assert_eq!(seek_from(&table, &mut pos, r), expected);
            prop_assert!(table.get(..pos).unwrap_or_default().iter().all(|&k| k < r));
        }
    }
}

mod newest {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use proptest::prelude::*;
    use strata_schemas::labels::STALE_NAN_BITS;
    use strata_schemas::read::keep_newest;
    use strata_schemas::{BatchSeries, Labels, ReadError, ReadStore, Sample, TenantId, TimeRange, WriteBatch};

    use crate::{HotStore, HotStoreConfig};

    fn tenant() -> TenantId {
        TenantId::new("a").unwrap()
    }

    fn labels(i: usize) -> Labels {
        Labels::from_pairs([("__name__", "m"), ("i", &format!("{i:05}"))])
    }

    /// A store with 100 ms buckets (a few buckets per test).
    fn open(dir: &Path) -> HotStore {
        HotStore::open(dir, HotStoreConfig { bucket: Duration::from_millis(100), ..HotStoreConfig::default() }).unwrap()
    }

    /// Writes `samples` (ts, value bits) of series `i` at log offset `offset`.
    fn write(store: &HotStore, offset: u64, i: usize, samples: &[(i64, u64)]) {
        let labels = labels(i);
        let series = vec![BatchSeries {
            id: strata_schemas::series_id(&tenant(), &labels),
            device_hash: i as u64,
            labels,
            samples: samples.iter().map(|&(ts, v)| Sample::new(ts, f64::from_bits(v))).collect(),
        }];
        store.apply(0, offset, &WriteBatch { tenant: tenant(), series, origin: None }).unwrap();
    }

    type Flat = Vec<(String, Vec<(i64, u64)>)>;

    fn flat(s: SeriesData) -> (String, Vec<(i64, u64)>) {
        (s.labels.to_string(), s.samples.iter().map(|x| (x.ts, x.value.to_bits())).collect())
    }

    use strata_schemas::SeriesData;

    fn newest(store: &HotStore, range: TimeRange) -> Result<Flat, ReadError> {
        let mut out = Vec::new();
        store.select_newest(&tenant(), &[], range, &mut |s| {
            out.push(flat(s));
            Ok(())
        })?;
        Ok(out)
    }

    /// What the default (`select_each`, keep the last sample) answers.
    fn newest_by_select(store: &HotStore, range: TimeRange) -> Result<Flat, ReadError> {
        Ok(store.select(&tenant(), &[], range)?.into_iter().map(|s| flat(keep_newest(s))).collect())
    }

    fn bits(v: f64) -> u64 {
        v.to_bits()
    }

    #[test]
    fn newest_across_memtable_and_segments_late_rewrites_and_stale_markers() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        // Series 0: a segment up to 150, a newer segment up to 250, the memtable up to 260.
        write(&store, 1, 0, &[(10, bits(1.0)), (120, bits(1.5)), (150, bits(2.0))]);
        store.flush().unwrap();
        write(&store, 2, 0, &[(200, bits(3.0)), (250, bits(3.5))]);
        store.flush().unwrap();
        write(&store, 3, 0, &[(255, bits(4.0)), (260, bits(4.25))]);
        // Series 1: its newest (250) in a segment; a late older sample (240) in the memtable.
        write(&store, 4, 1, &[(100, bits(7.0)), (250, bits(7.5))]);
        store.flush().unwrap();
        write(&store, 5, 1, &[(240, bits(8.0))]);
        // Series 2: 250 rewritten in the memtable: the later write wins its timestamp.
        write(&store, 6, 2, &[(230, bits(9.0)), (250, bits(9.5))]);
        store.flush().unwrap();
        write(&store, 7, 2, &[(250, bits(10.0))]);
        // Series 3: ends with a staleness marker in the memtable chunk, after in-order samples.
        write(&store, 8, 3, &[(200, bits(11.0)), (210, STALE_NAN_BITS)]);
        // Series 4: in-order memtable samples whose last is rewritten out of order.
        write(&store, 9, 4, &[(200, bits(0.1)), (220, bits(0.2))]);
        write(&store, 10, 4, &[(220, bits(f64::MAX)), (205, bits(0.3))]);
        // Series 5: an older segment reaching past the range end, its last
        // sample in the range (240) rewritten in the memtable.
        write(&store, 11, 5, &[(240, bits(5.0)), (290, bits(5.5))]);
        store.flush().unwrap();
        write(&store, 12, 5, &[(240, bits(6.0))]);
        // Series 6: its last timestamp rewritten twice in the memtable: the later rewrite wins.
        write(&store, 13, 6, &[(200, bits(1.0)), (210, bits(2.0)), (220, bits(3.0))]);
        write(&store, 14, 6, &[(220, bits(4.0))]);
        write(&store, 15, 6, &[(220, bits(4.5))]);
        let name = |i: usize| labels(i).to_string();
        let want = vec![
            (name(0), vec![(260, bits(4.25))]),
            (name(1), vec![(250, bits(7.5))]),
            (name(2), vec![(250, bits(10.0))]),
            (name(3), vec![(210, STALE_NAN_BITS)]),
            (name(4), vec![(220, bits(f64::MAX))]),
            (name(5), vec![(290, bits(5.5))]),
            (name(6), vec![(220, bits(4.5))]),
        ];
        assert_eq!(newest(&store, TimeRange::new(0, 1000)).unwrap(), want);
        // Ending inside the memtable's and the segments' spans.
        let at_205 = vec![
            (name(0), vec![(200, bits(3.0))]),
            (name(1), vec![(100, bits(7.0))]),
            (name(3), vec![(200, bits(11.0))]),
            (name(4), vec![(205, bits(0.3))]),
            (name(6), vec![(200, bits(1.0))]),
        ];
        assert_eq!(newest(&store, TimeRange::new(100, 205)).unwrap(), at_205);
        let at_245 = (name(5), vec![(240, bits(6.0))]);
        assert_eq!(newest(&store, TimeRange::new(241, 245)).unwrap(), vec![]);
        assert_eq!(newest(&store, TimeRange::new(239, 245)).unwrap().last(), Some(&at_245), "the rewrite wins");
        // A series whose newest sample lies before the range is absent.
        assert_eq!(newest(&store, TimeRange::new(252, 280)).unwrap(), vec![(name(0), vec![(260, bits(4.25))])]);
        assert!(newest(&store, TimeRange::new(261, 280)).unwrap().is_empty());
        for range in [
            TimeRange::new(0, 1000),
            TimeRange::new(100, 205),
            TimeRange::new(0, 120),
            TimeRange::new(241, 249),
            TimeRange::new(0, 260),
        ] {
            assert_eq!(newest(&store, range).unwrap(), newest_by_select(&store, range).unwrap(), "{range:?}");
        }
        // Flushed and compacted, the answers stay.
        store.flush().unwrap();
        store.compact().unwrap();
        assert_eq!(newest(&store, TimeRange::new(0, 1000)).unwrap(), want);
        assert_eq!(newest(&store, TimeRange::new(100, 205)).unwrap(), at_205);
        assert_eq!(newest(&store, TimeRange::new(239, 245)).unwrap().last(), Some(&at_245));
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

    /// The older segment's block is never read when the newer one already
    /// holds a newer sample: corrupt, it fails a full read but not this one.
    #[test]
    fn an_older_block_is_not_decoded_when_a_newer_one_answers() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path());
            write(&store, 1, 0, &(0..40).map(|t| (t, bits(t as f64))).collect::<Vec<_>>());
            store.flush().unwrap();
        }
        let old = segment_files(dir.path());
        assert_eq!(old.len(), 1);
        {
            let store = open(dir.path());
            write(&store, 2, 0, &(40..80).map(|t| (t, bits(t as f64 / 4.0))).collect::<Vec<_>>());
            store.flush().unwrap();
        }
        assert_eq!(segment_files(dir.path()).len(), 2);
        let mut bytes = std::fs::read(&old[0]).unwrap();
        let at = bytes.len() / 3;
        bytes[at] ^= 0x10;
        std::fs::write(&old[0], &bytes).unwrap();
        let store = open(dir.path());
        assert_eq!(
            newest(&store, TimeRange::new(0, 99)).unwrap(),
            vec![(labels(0).to_string(), vec![(79, bits(19.75))])]
        );
        // Ending before the newer segment: the old block must be read, and is corrupt.
        assert!(matches!(newest(&store, TimeRange::new(0, 39)), Err(ReadError::Corrupted { .. })));
    }

    /// Enough series for the read pool's split read: the same answers, in order.
    #[test]
    fn a_split_newest_read_answers_what_select_keeps() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let n = crate::read_pool::PARALLEL_MIN_SERIES + 300;
        let mut offset = 0;
        for (round, ts) in [(0u64, 10i64), (1, 60), (2, 110)] {
            for i in 0..n {
                // Every third series skips the last round: its newest is in a segment.
                if round == 2 && i % 3 == 0 {
                    continue;
                }
                offset += 1;
                let v = i as f64 + round as f64 / 8.0;
                write(&store, offset, i, &[(ts + (i % 7) as i64, bits(v)), (ts + 20, bits(v * 3.0))]);
            }
            if round < 2 {
                store.flush().unwrap();
            }
        }
        for range in [TimeRange::new(0, 1000), TimeRange::new(0, 85), TimeRange::new(75, 112), TimeRange::new(0, 5)] {
            let got = newest(&store, range).unwrap();
            assert_eq!(got, newest_by_select(&store, range).unwrap(), "{range:?}");
            assert!(got.iter().all(|(_, s)| s.len() == 1));
        }
        assert_eq!(newest(&store, TimeRange::new(0, 1000)).unwrap().len(), n);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Write(usize, Vec<(i64, u64)>),
        Flush,
        Compact,
    }

    fn value() -> impl Strategy<Value = u64> {
        prop_oneof![
            4 => (-500i64..500).prop_map(|m| (m as f64 / 10.0).to_bits()),
            2 => any::<u64>(),
            1 => Just(STALE_NAN_BITS),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => (0usize..4, proptest::collection::vec((0i64..250, value()), 1..12)).prop_map(|(i, s)| Op::Write(i, s)),
            2 => Just(Op::Flush),
            1 => Just(Op::Compact),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

        /// Over writes in any order (rewrites, late samples, stale markers,
        /// decimal and arbitrary values), flushes and compactions:
        /// `select_newest` answers what `select` + keep-last and a model
        /// (latest write per timestamp) answer.
        #[test]
        fn newest_equals_select_keeping_the_last_sample(
            ops in proptest::collection::vec(op(), 1..24),
            ranges in proptest::collection::vec((0i64..260, 0i64..260), 1..8),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let store = open(dir.path());
            let mut model: BTreeMap<usize, BTreeMap<i64, u64>> = BTreeMap::new();
            for (offset, op) in ops.iter().enumerate() {
                match op {
                    Op::Write(i, samples) => {
                        write(&store, offset as u64 + 1, *i, samples);
                        model.entry(*i).or_default().extend(samples.iter().copied());
                    }
                    Op::Flush => {
                        store.flush().unwrap();
                    }
                    Op::Compact => {
                        store.compact().unwrap();
                    }
                }
            }
            for (a, b) in ranges {
                let range = TimeRange::new(a.min(b), a.max(b));
                let got = newest(&store, range).unwrap();
                prop_assert_eq!(&got, &newest_by_select(&store, range).unwrap(), "{:?}", range);
                let expected: Flat = model
                    .iter()
                    .filter_map(|(i, s)| {
                        s.range(range.start..=range.end).next_back().map(|(&ts, &v)| (labels(*i).to_string(), vec![(ts, v)]))
                    })
                    .collect();
                prop_assert_eq!(got, expected, "{:?}", range);
            }
        }
    }
}
