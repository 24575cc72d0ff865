//! Roll state (`tests/fixtures/roll-state/v1/`): `samples_acme` after
//! three roll commits of a four-partition log whose series all sit in
//! partition `P` (`device_hash % 4` of gateway `gw1`): bucket [`BUCKET`]'s
//! data claiming `P`, an empty claim advancing the other partitions to the
//! bucket's end, and the next bucket's data claiming `P`. So the table
//! property `strata.roll.p<P>` = the second bucket's end, the others the
//! first's, and each snapshot summary carries `strata.roll.partitions`,
//! `strata.roll.start`, `strata.roll.end` and `strata.source`.
//!
//! The test reads the state back and lets this build's `commit_claim`
//! decide on it (already committed, lost, committed). Corrupt variants: a
//! truncated metadata file fails the load (`LoadTable`); a roll-state
//! value that is not a number is refused by `roll_state_of` as corruption
//! (`Corrupted` naming the table, the property and the value), and no
//! claim is committed on it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use strata_cold_tier::{ClaimOutcome, ColdTier, CommitSource, RollClaim, WrittenFiles, file_prefix};
use strata_schemas::{Sample, TimeRange};

use super::{BUCKET, BUCKET_MS, acme, bucket_series, copy_fixture, local, may_write, root_dir};
use crate::util::{open, runtime};

/// The partition of every fixture series: `device_hash("acme", "gw1") % 4`.
fn p() -> u32 {
    (strata_schemas::device_hash_of(&acme(), "gw1") % 4) as u32
}

fn others() -> BTreeSet<u32> {
    (0..4).filter(|&q| q != p()).collect()
}

fn list(ps: &BTreeSet<u32>) -> String {
    ps.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// The three commits: `(source, claim)`, oldest first.
fn commits() -> Vec<(String, RollClaim)> {
    let (b1, b2, b3) = (BUCKET, BUCKET + BUCKET_MS, BUCKET + 2 * BUCKET_MS);
    let p = BTreeSet::from([p()]);
    vec![
        (format!("hot:acme:{b1}:p{}", list(&p)), RollClaim { partitions: p.clone(), start: b1, end: b2 }),
        (format!("empty:acme:{b2}:p{}", list(&others())), RollClaim { partitions: others(), start: i64::MIN, end: b2 }),
        (format!("hot:acme:{b2}:p{}", list(&p)), RollClaim { partitions: p, start: b2, end: b3 }),
    ]
}

fn want_state() -> BTreeMap<u32, i64> {
    (0..4).map(|q| (q, if q == p() { BUCKET + 2 * BUCKET_MS } else { BUCKET + BUCKET_MS })).collect()
}

/// The second bucket's samples: one sample of the first series.
fn second_bucket() -> Vec<strata_cold_tier::SeriesSamples> {
    let mut s = bucket_series().swap_remove(0);
    s.samples = vec![Sample::new(BUCKET + BUCKET_MS + 1_000, 22.5)];
    vec![s]
}

#[test]
fn roll_state_v1_fixture_reads_back_and_decides_claims() {
    assert_eq!(p(), P_WRITTEN, "the device hash moved: the fixture's partition no longer holds gw1");
    let copy = copy_fixture("roll-state/v1");
    let rt = runtime();
    let cold = open(&rt, copy.root.path());
    let t = acme();
    assert_eq!(rt.block_on(cold.roll_state(&t)).unwrap(), want_state());
    // Each snapshot's summary, oldest first.
    let table = rt.block_on(cold.load_table(&t)).unwrap().unwrap();
    let mut snaps: Vec<_> = table.metadata().snapshots().collect();
    snaps.sort_by_key(|s| s.sequence_number());
    let got: Vec<[Option<String>; 4]> = snaps
        .iter()
        .map(|s| {
            let p = &s.summary().additional_properties;
            ["strata.source", "strata.roll.partitions", "strata.roll.start", "strata.roll.end"]
                .map(|k| p.get(k).cloned())
        })
        .collect();
    let want: Vec<[Option<String>; 4]> = commits()
        .into_iter()
        .map(|(source, c)| {
            [Some(source), Some(list(&c.partitions)), Some(c.start.to_string()), Some(c.end.to_string())]
        })
        .collect();
    assert_eq!(got, want);
    // The samples as committed: the first bucket's and the second's.
    let reader = strata_cold_tier::ColdReadStore::new(Arc::new(open(&rt, copy.root.path())), rt.handle().clone());
    let rows: usize = {
        use strata_schemas::ReadStore;
        reader.select(&t, &[], TimeRange::ALL).unwrap().iter().map(|s| s.samples.len()).sum()
    };
    assert_eq!(rows, 10 + 1);

    // This build's decisions on that state.
    let decide = |source: String, claim: RollClaim| {
        let source = CommitSource { source, segments: String::new() };
        rt.block_on(cold.commit_claim(&t, WrittenFiles::default(), &source, &claim)).unwrap()
    };
    let (b2, b3) = (BUCKET + BUCKET_MS, BUCKET + 2 * BUCKET_MS);
    // The first bucket again under its source: already committed.
    let (s1, c1) = commits().swap_remove(0);
    assert_eq!(decide(s1, c1), ClaimOutcome::AlreadyCommitted);
    // Partition P's second bucket under another source: its state says done.
    let p_only = RollClaim { partitions: BTreeSet::from([p()]), start: b2, end: b3 };
    assert_eq!(decide("hot:acme:other".into(), p_only), ClaimOutcome::AlreadyCommitted);
    // Every partition for the second bucket: P is done, the others are not: lost.
    let every = RollClaim { partitions: (0..4).collect(), start: b2, end: b3 };
    assert_eq!(decide(format!("hot:acme:{b2}"), every), ClaimOutcome::Lost { partitions: vec![p()] });
    // The others for the second bucket: committed, and the state moves.
    let rest = RollClaim { partitions: others(), start: b2, end: b3 };
    assert!(matches!(decide(format!("empty:acme:{b3}:p{}", list(&others())), rest), ClaimOutcome::Committed { .. }));
    assert_eq!(rt.block_on(cold.roll_state(&t)).unwrap(), (0..4).map(|q| (q, b3)).collect());
}

/// `roll-state/v1/corrupt/truncated.metadata.json` (the first half of the
/// current metadata file) in its place: the state cannot be read
/// (`LoadTable`) and no claim is committed on it.
#[test]
fn roll_state_v1_truncated_metadata_fails_the_load() {
    let copy = copy_fixture("roll-state/v1");
    let rt = runtime();
    let cold = open(&rt, copy.root.path());
    let t = acme();
    let table = rt.block_on(cold.load_table(&t)).unwrap().unwrap();
    std::fs::write(local(table.metadata_location().unwrap()), copy.relocated("corrupt/truncated.metadata.json"))
        .unwrap();
    let err = rt.block_on(cold.roll_state(&t)).unwrap_err();
    assert!(matches!(err, strata_cold_tier::Error::LoadTable { .. }), "{err:?}");
    let (s, c) = commits().swap_remove(2);
    let source = CommitSource { source: s, segments: String::new() };
    assert!(rt.block_on(cold.commit_claim(&t, WrittenFiles::default(), &source, &c)).is_err());
}

/// `roll-state/v1/corrupt/malformed.metadata.json`: the current metadata
/// with `strata.roll.p<Q>` (`Q` the lowest other partition) set to `soon`.
/// The roll state cannot be read: `roll_state` is `Corrupted` naming the
/// table, the property and its value, and no claim is committed on it,
/// neither `Q`'s first bucket again (which a reader skipping the property
/// would commit a second time) nor `P`'s next one.
#[test]
fn roll_state_v1_malformed_entry_is_refused_as_corruption() {
    let copy = copy_fixture("roll-state/v1");
    let rt = runtime();
    let cold = open(&rt, copy.root.path());
    let t = acme();
    let table = rt.block_on(cold.load_table(&t)).unwrap().unwrap();
    let current = local(table.metadata_location().unwrap());
    std::fs::write(&current, copy.relocated("corrupt/malformed.metadata.json")).unwrap();
    let q = *others().first().unwrap();
    let err = rt.block_on(cold.roll_state(&t)).unwrap_err();
    assert!(matches!(&err, strata_cold_tier::Error::Corrupted { tenant, .. } if tenant == &t), "{err:?}");
    let text = err.to_string();
    for needle in ["samples_acme", &format!("strata.roll.p{q} = \"soon\"")] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    let (b2, b3) = (BUCKET + BUCKET_MS, BUCKET + 2 * BUCKET_MS);
    let claims = [
        (format!("empty:acme:{b2}:p{q}"), RollClaim { partitions: BTreeSet::from([q]), start: i64::MIN, end: b2 }),
        (
            format!("hot:acme:{b3}:p{}", p()),
            RollClaim { partitions: BTreeSet::from([p()]), start: b3, end: b3 + BUCKET_MS },
        ),
    ];
    for (source, claim) in claims {
        let source = CommitSource { source, segments: String::new() };
        let err = rt.block_on(cold.commit_claim(&t, WrittenFiles::default(), &source, &claim)).unwrap_err();
        assert!(matches!(err, strata_cold_tier::Error::Corrupted { .. }), "{claim:?}: {err:?}");
    }
    // Nothing was committed: the catalog still points at the damaged
    // metadata, which holds the three snapshots of the fixture.
    let table = rt.block_on(cold.load_table(&t)).unwrap().unwrap();
    assert_eq!(local(table.metadata_location().unwrap()), current);
    assert_eq!(table.metadata().snapshots().count(), commits().len());
}

/// Partition `P` when the fixture was written.
const P_WRITTEN: u32 = 1;

async fn roll(cold: &ColdTier) {
    let t = acme();
    for (i, (source, claim)) in commits().into_iter().enumerate() {
        let series = match i {
            0 => bucket_series(),
            1 => Vec::new(),
            _ => second_bucket(),
        };
        let written = if series.is_empty() {
            WrittenFiles::default()
        } else {
            cold.write_files(&t, &series, &file_prefix(&source)).await.unwrap()
        };
        let source = CommitSource { source, segments: if series.is_empty() { String::new() } else { "2".into() } };
        let outcome = cold.commit_claim(&t, written, &source, &claim).await.unwrap();
        assert!(matches!(outcome, ClaimOutcome::Committed { .. }), "{outcome:?}");
    }
}

/// Writes `tests/fixtures/roll-state/v1/` with this build:
/// `STRATA_WRITE_FIXTURES=1 cargo test -p strata-cold-tier --test it
/// frozen::roll_state::regenerate_roll_state_v1_fixture -- --ignored`.
/// Only for a new version's first fixture, never to refresh a shipped one.
#[test]
#[ignore = "writes tests/fixtures/roll-state/v1; run by hand only (README)"]
fn regenerate_roll_state_v1_fixture() {
    let rel = "roll-state/v1";
    if !may_write(rel) {
        return;
    }
    eprintln!("partition P = {}", p());
    let root = root_dir();
    let rt = runtime();
    {
        let cold = Arc::new(open(&rt, root.path()));
        rt.block_on(roll(&cold));
        let table = rt.block_on(cold.load_table(&acme())).unwrap().unwrap();
        let meta = std::fs::read_to_string(local(table.metadata_location().unwrap())).unwrap();
        super::store_file(rel, "corrupt/truncated.metadata.json", &meta.as_bytes()[..meta.len() / 2]);
        let q = *others().first().unwrap();
        let from = format!("\"strata.roll.p{q}\":\"{}\"", BUCKET + BUCKET_MS);
        assert_eq!(meta.matches(&from).count(), 1, "{from} in {meta}");
        let malformed = meta.replace(&from, &format!("\"strata.roll.p{q}\":\"soon\""));
        super::store_file(rel, "corrupt/malformed.metadata.json", malformed.as_bytes());
    }
    drop(rt);
    super::store_fixture(root.path(), rel);
}
