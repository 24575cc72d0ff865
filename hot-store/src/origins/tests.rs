use super::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

const WIDE: Limits = Limits { max_agents: usize::MAX, max_ranges: usize::MAX };

fn origin(agent: &str, seq: u64) -> BatchOrigin {
    BatchOrigin::new(agent, seq).unwrap()
}

proptest! {
    /// Out-of-order, duplicated sequence numbers against a BTreeSet.
    #[test]
    fn ranges_match_a_set(seqs in prop::collection::vec(prop_oneof![0u64..64, Just(u64::MAX), Just(u64::MAX - 1), any::<u64>()], 0..300)) {
        let mut model = BTreeSet::new();
        let mut set = SeqRanges::default();
        for &s in &seqs {
            prop_assert_eq!(set.insert(s), model.insert(s));
            prop_assert!(set.contains(s));
        }
        for probe in seqs.iter().flat_map(|&s| [s.wrapping_sub(1), s, s.wrapping_add(1)]).chain(0..70) {
            prop_assert_eq!(set.contains(probe), model.contains(&probe), "probe {}", probe);
        }
        // Canonical: ascending, disjoint, non-adjacent, and exactly the model's runs.
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for &s in &model {
            match runs.last_mut() {
                Some(r) if r.1.checked_add(1) == Some(s) => r.1 = s,
                _ => runs.push((s, s)),
            }
        }
        prop_assert_eq!(set.ranges(), &runs[..]);
    }

    /// The partition state (duplicates, persistence) against a model of
    /// (agent, seq) pairs; a round trip through the manifest form changes nothing.
    #[test]
    fn partition_state_matches_a_model(ops in prop::collection::vec((0usize..4, 0u64..40), 0..200)) {
        let agents = ["gw-1", "gw-2", "farm/7:a", "x"];
        let mut model = BTreeSet::new();
        let mut p = PartitionOrigins::default();
        for (offset, &(a, s)) in ops.iter().enumerate() {
            let adm = p.admit(&origin(agents[a], s), offset as u64 + 10, WIDE);
            prop_assert_eq!(adm.duplicate, !model.insert((a, s)));
        }
        let back = PartitionOrigins::from_persisted(&p.to_persisted()).unwrap();
        prop_assert_eq!(&back, &p);
    }
}

#[test]
fn too_many_ranges_forget_the_lowest() {
    let limits = Limits { max_agents: 10, max_ranges: 3 };
    let mut p = PartitionOrigins::default();
    for (o, s) in [1u64, 3, 5].into_iter().enumerate() {
        assert_eq!(p.admit(&origin("a", s), o as u64, limits), Admission::default());
    }
    let adm = p.admit(&origin("a", 7), 3, limits);
    assert_eq!(adm, Admission { duplicate: false, agents_evicted: 0, ranges_dropped: 1 });
    assert_eq!(p.agent("a").unwrap().applied.ranges(), &[(3, 3), (5, 5), (7, 7)]);
    // Forgotten: applied again (never the reverse: 2, never seen, is not skipped).
    assert!(!p.admit(&origin("a", 1), 4, limits).duplicate);
    assert!(!p.admit(&origin("b", 2), 5, limits).duplicate);
    // Filling a gap merges and frees a range.
    assert!(!p.admit(&origin("a", 4), 6, limits).duplicate);
    assert!(p.admit(&origin("a", 5), 7, limits).duplicate);
}

#[test]
fn too_many_agents_evict_the_least_recently_seen() {
    let limits = Limits { max_agents: 2, max_ranges: 8 };
    let mut p = PartitionOrigins::default();
    p.admit(&origin("a", 1), 0, limits);
    p.admit(&origin("b", 1), 1, limits);
    assert!(p.admit(&origin("a", 1), 2, limits).duplicate, "a seen again: b is now the oldest");
    let adm = p.admit(&origin("c", 1), 3, limits);
    assert_eq!(adm.agents_evicted, 1);
    assert_eq!(p.agents(), 2);
    assert!(p.agent("b").is_none());
    assert!(p.admit(&origin("a", 1), 4, limits).duplicate);
    assert!(!p.admit(&origin("b", 1), 5, limits).duplicate, "b was forgotten: applied again");
}

#[test]
fn persisted_form_is_frozen() {
    let mut p = PartitionOrigins::default();
    for (o, s) in [1u64, 2, 3, 9, 11, 12].into_iter().enumerate() {
        p.admit(&origin("gw-1", s), 100 + o as u64, WIDE);
    }
    p.admit(&origin("gw-2", 0), 200, WIDE);
    let m = p.to_persisted();
    assert_eq!(
        m,
        BTreeMap::from([("gw-1".to_owned(), "1-3,9,11-12 @105".to_owned()), ("gw-2".to_owned(), "0 @200".to_owned())])
    );
    assert_eq!(PartitionOrigins::from_persisted(&m).unwrap(), p);
    for bad in ["", "1-3", "3-1 @1", "1-3,4 @1", "4,1 @1", "x @1", "1 @x", "1--2 @1"] {
        let m = BTreeMap::from([("a".to_owned(), bad.to_owned())]);
        assert!(PartitionOrigins::from_persisted(&m).is_err(), "{bad:?}");
    }
    let m = BTreeMap::from([("a b".to_owned(), "1 @1".to_owned())]);
    assert!(PartitionOrigins::from_persisted(&m).is_err());
    // An agent seen but with every range forgotten is kept (its recency counts).
    let m = BTreeMap::from([("a".to_owned(), " @4".to_owned())]);
    assert_eq!(PartitionOrigins::from_persisted(&m).unwrap().agents(), 1);
}
