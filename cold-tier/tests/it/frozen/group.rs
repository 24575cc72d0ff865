//! Group rollup tables (`tests/fixtures/group-rollup/v1/`): the
//! declaration `temp by (farm)` rolled for [`BUCKET`] into
//! `group5m_<id>_acme`, `group1h_<id>_acme`, `group1d_<id>_acme` (rollup
//! layout 2 in every column; one row per group and window), read back
//! through the group view with the `__group__` matcher the engine sends.
//! The declaration id (`xxh3_64("group-rollup-v1" …)`) names the tables, so
//! it is frozen here too.

use std::sync::Arc;

use strata_cold_tier::{ClaimOutcome, ColdTier, Rollup, file_prefix, group_label_value, group_points, roll_state_of};
use strata_schemas::{EXP_NAN, GROUP_LABEL, GroupRollup, Matcher, RollupPoint, TimeRange};

use super::rollup::{Window, claim, live_files, rolled, source};
use super::{BUCKET, BUCKET_MS, acme, copy_fixture, may_write, root_dir};
use crate::util::{open, runtime};

const DAY: i64 = 86_400_000;
/// `GroupRollup { metric: "temp", by: ["farm"] }.id()`, as the table names hold it.
const ID: &str = "bf16892f4be6532d";

fn decl() -> GroupRollup {
    GroupRollup { metric: "temp".into(), by: vec!["farm".into()] }
}

/// Windows as `(end, [min, max, sum, last] bits or NaN, count, last_ts, exp)`, times from [`BUCKET`].
type Seen = Vec<(String, Vec<(i64, [u64; 4], u64, i64, Option<i32>)>)>;

fn seen(series: impl IntoIterator<Item = (String, Vec<RollupPoint>)>) -> Seen {
    let bits = |v: f64| if v.is_nan() { u64::MAX } else { v.to_bits() };
    let mut out: Seen = series
        .into_iter()
        .map(|(l, points)| {
            let p = points
                .iter()
                .map(|p| {
                    let v = [bits(p.min), bits(p.max), bits(p.sum), bits(p.last)];
                    (p.end - BUCKET, v, p.count, p.last_ts - BUCKET, p.exp)
                })
                .collect();
            (l, p)
        })
        .collect();
    out.sort();
    out
}

/// The group rows of each width, written out: farm `a` folds sensors s1
/// and s2 (s2's NaN makes the sum and `last` NaN, `exp` NaN), farm `b` is
/// sensor s3 alone.
fn want(r: Rollup) -> Seen {
    let nan = f64::NAN;
    let a = format!(r#"temp{{__group__="{ID}", farm="a"}}"#);
    let b = format!(r#"temp{{__group__="{ID}", farm="b"}}"#);
    let first = (0, 20.5, 20.5, 20.5, 1, 20.5, 0, Some(-1));
    let (w, late) = match r {
        Rollup::FiveMinutes => (300_000, 3_900_000),
        Rollup::OneHour => (3_600_000, 7_200_000),
        Rollup::OneDay => (DAY, DAY),
    };
    let mut farm_a = vec![first];
    if r == Rollup::OneDay {
        farm_a.push((w, -3.25, 21.0, nan, 5, 8.0, 3_600_001, Some(EXP_NAN)));
    } else {
        farm_a.push((w, -3.25, 21.0, nan, 4, nan, 120_000, Some(EXP_NAN)));
        farm_a.push((late, 8.0, 8.0, 8.0, 1, 8.0, 3_600_001, Some(3)));
    }
    let farm_b = vec![(w, 0.1, 0.2, 0.30000000000000004, 2, 0.2, 20, Some(-55))];
    let points = |v: Vec<Window>| -> Vec<RollupPoint> {
        v.into_iter()
            .map(|(end, min, max, sum, count, last, last_ts, exp)| RollupPoint {
                end: BUCKET + end,
                min,
                max,
                sum,
                count,
                last,
                last_ts: BUCKET + last_ts,
                exp,
            })
            .collect()
    };
    seen([(a, points(farm_a)), (b, points(farm_b))])
}

#[test]
fn group_rollup_v1_fixture_reads_back_exactly() {
    let copy = copy_fixture("group-rollup/v1");
    let rt = runtime();
    let cold = open(&rt, copy.root.path());
    let t = acme();
    assert_eq!(group_label_value(decl().id()), ID, "the declaration id names the tables");
    let id = decl().id();
    for r in Rollup::ALL {
        let name = format!("group{}_{ID}_acme", r.name());
        assert!(copy.root.path().join("cold/warehouse/strata").join(&name).is_dir(), "{name}");
        let view = cold.group_view(r, id);
        // What the engine asks: the metric and the declaration.
        let m = [Matcher::equal("__name__", "temp"), Matcher::equal(GROUP_LABEL, ID)];
        let got = rt.block_on(view.select_rollup(&t, &m, TimeRange::new(BUCKET, BUCKET + DAY))).unwrap().unwrap();
        assert_eq!(seen(got.into_iter().map(|s| (s.labels.to_string(), s.points))), want(r), "{r:?}");
        let table = rt.block_on(view.load_table(&t)).unwrap().unwrap();
        let files = rt.block_on(view.read_rollup_files(&t, &live_files(&rt, &view))).unwrap();
        for s in &files {
            // A group's id and device hash are the series id of its labels.
            assert_eq!(s.series_id, strata_schemas::series_id(&t, &s.labels));
            assert_eq!(s.device_hash, s.series_id.0);
        }
        assert_eq!(seen(files.into_iter().map(|s| (s.labels.to_string(), s.points))), want(r), "{r:?}: files");
        let props = table.metadata().properties();
        assert_eq!(props.get("strata.layout-version").map(String::as_str), Some("2"));
        assert_eq!(props.get("strata.rollup-since-ms").map(String::as_str), Some("-9223372036854775808"));
        assert_eq!(roll_state_of(&t, props).unwrap(), (0..4).map(|p| (p, BUCKET + BUCKET_MS)).collect());
        let again = rt.block_on(view.commit_claim(&t, Default::default(), &source(), &claim())).unwrap();
        assert_eq!(again, ClaimOutcome::AlreadyCommitted, "{r:?}");
    }
}

/// The group roll as the compactor makes it (`compactor/src/group.rs`).
async fn roll_groups(cold: &ColdTier) {
    let t = acme();
    let decl = decl();
    for r in Rollup::ALL {
        let rows = group_points(&decl, &t, &rolled(r));
        let view = cold.group_view(r, decl.id());
        let prefix = file_prefix(&format!("group{}:{:016x}:acme:{BUCKET}", r.name(), decl.id()));
        let written = view.write_rollup_files(&t, &rows, i64::MIN, &prefix).await.unwrap();
        let outcome = view.commit_claim(&t, written, &source(), &claim()).await.unwrap();
        assert!(matches!(outcome, ClaimOutcome::Committed { .. }), "{r:?}: {outcome:?}");
    }
}

/// Writes `tests/fixtures/group-rollup/v1/` with this build:
/// `STRATA_WRITE_FIXTURES=1 cargo test -p strata-cold-tier --test it
/// frozen::group::regenerate_group_rollup_v1_fixture -- --ignored`. Only
/// for a new version's first fixture, never to refresh a shipped one.
#[test]
#[ignore = "writes tests/fixtures/group-rollup/v1; run by hand only (README)"]
fn regenerate_group_rollup_v1_fixture() {
    let rel = "group-rollup/v1";
    if !may_write(rel) {
        return;
    }
    eprintln!("declaration id {}", group_label_value(decl().id()));
    let root = root_dir();
    let rt = runtime();
    {
        let cold = Arc::new(open(&rt, root.path()));
        rt.block_on(roll_groups(&cold));
    }
    drop(rt);
    super::store_fixture(root.path(), rel);
}
