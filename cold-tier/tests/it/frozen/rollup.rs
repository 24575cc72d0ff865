//! Rollup tables, layouts 1 and 2 (`tests/fixtures/rollup/v<N>/`): a cold
//! directory with `rollup5m_acme`, `rollup1h_acme`, `rollup1d_acme` and
//! `series_acme` after one roll of [`BUCKET`], read back window by window
//! (layout 1: no `exp` column, so every row reads with `exp = None`, and
//! `bucket[8]` for the 1 d table too; layout 2: `exp`, `bucket[1]` for 1 d),
//! through the series table (`select_rollup`, `select_rollup_grid`) and
//! whole files (`read_rollup_files`, the small-file merge's read). Layout 2
//! also has corrupt variants: a truncated data file and a truncated
//! metadata file fail with errors naming them.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use iceberg::Catalog;
use strata_cold_tier::table::{
    FIELD_EXP, PROPERTY_ROLLUP_SINCE, rollup_schema, samples_partition_spec, samples_properties, samples_sort_order,
};
use strata_cold_tier::{
    ClaimOutcome, ColdTier, CommitSource, RollClaim, Rollup, SeriesEntry, SeriesRollup, TableKind, file_prefix,
    roll_state_of, rollup_points,
};
use strata_schemas::{EXP_NAN, Matcher, RollupAnswer, RollupFields, RollupPoint, TimeRange};

use super::{BUCKET, BUCKET_MS, acme, bucket_series, copy_fixture, data_files, local, may_write, root_dir};
use crate::util::{open, runtime};

const DAY: i64 = 86_400_000;

/// One expected window: `(end, min, max, sum, count, last, last_ts, exp)`,
/// times as offsets from [`BUCKET`].
pub(crate) type Window = (i64, f64, f64, f64, u64, f64, i64, Option<i32>);

/// A window as compared: `(end offset, [min, max, sum, last] bits, count,
/// last_ts offset, exp)`.
type Comparable = (i64, [u64; 4], u64, i64, Option<i32>);

/// Each series' windows, `(labels text, windows)`.
type Table = Vec<(String, Vec<Comparable>)>;

/// Each series' windows of one width, as the roll wrote them (what the
/// compactor passes to `write_rollup_files`).
pub(crate) fn rolled(r: Rollup) -> Vec<SeriesRollup> {
    bucket_series()
        .into_iter()
        .filter_map(|s| {
            let points = rollup_points(&s.samples, r.width_ms());
            (!points.is_empty()).then_some(SeriesRollup {
                labels: s.labels,
                series_id: s.series_id,
                device_hash: s.device_hash,
                points,
            })
        })
        .collect()
}

/// The roll's source: every partition of a four-partition log claimed.
pub(crate) fn source() -> CommitSource {
    CommitSource { source: format!("hot:acme:{BUCKET}"), segments: "2".into() }
}

/// The roll's claim: partitions 0–3, the bucket.
pub(crate) fn claim() -> RollClaim {
    RollClaim { partitions: BTreeSet::from([0, 1, 2, 3]), start: BUCKET, end: BUCKET + BUCKET_MS }
}

/// What the roll writes per width, `(series labels text, windows)`; `exp`
/// as layout 2 stores it.
fn want(r: Rollup) -> Vec<(&'static str, Vec<Window>)> {
    let nan = f64::NAN;
    let (temp_a1, temp_a2, temp_b3, hum) = (
        r#"temp{device="gw1", farm="a", sensor="s1"}"#,
        r#"temp{device="gw1", farm="a", sensor="s2"}"#,
        r#"temp{device="gw1", farm="b", sensor="s3"}"#,
        r#"hum{device="gw1", farm="a", sensor="s1"}"#,
    );
    // Every width: the sample at the bucket start alone in the window ending there.
    let first: Window = (0, 20.5, 20.5, 20.5, 1, 20.5, 0, Some(-1));
    let (w, late) = match r {
        Rollup::FiveMinutes => (300_000, 3_900_000),
        Rollup::OneHour => (3_600_000, 7_200_000),
        Rollup::OneDay => (DAY, DAY),
    };
    let mut a1 = vec![first];
    if r == Rollup::OneDay {
        a1.push((w, 0.25, 21.0, 29.25, 3, 8.0, 3_600_001, Some(-2)));
    } else {
        a1.push((w, 0.25, 21.0, 21.25, 2, 0.25, 61_000, Some(-2)));
        a1.push((late, 8.0, 8.0, 8.0, 1, 8.0, 3_600_001, Some(3)));
    }
    let mut out = vec![
        (hum, vec![(w, 55.0, 55.0, 55.0, 1, 55.0, 30_000, Some(0))]),
        (temp_a1, a1),
        (temp_a2, vec![(w, -3.25, -3.25, nan, 2, nan, 120_000, Some(EXP_NAN))]),
        (temp_b3, vec![(w, 0.1, 0.2, 0.30000000000000004, 2, 0.2, 20, Some(-55))]),
    ];
    out.sort_by(|a, b| a.0.cmp(b.0));
    out
}

/// Windows as comparable values: floats by bits, except NaN as one value
/// (its payload is not part of the format), times as offsets.
fn comparable(points: &[RollupPoint], layout: u8) -> Vec<Comparable> {
    let bits = |v: f64| if v.is_nan() { u64::MAX } else { v.to_bits() };
    points
        .iter()
        .map(|p| {
            let exp = if layout == 1 { None } else { p.exp };
            (p.end - BUCKET, [bits(p.min), bits(p.max), bits(p.sum), bits(p.last)], p.count, p.last_ts - BUCKET, exp)
        })
        .collect()
}

fn want_comparable(r: Rollup, layout: u8) -> Table {
    want(r)
        .into_iter()
        .map(|(labels, windows)| {
            let points: Vec<RollupPoint> = windows
                .iter()
                .map(|&(end, min, max, sum, count, last, last_ts, exp)| RollupPoint {
                    end: BUCKET + end,
                    min,
                    max,
                    sum,
                    count,
                    last,
                    last_ts: BUCKET + last_ts,
                    exp,
                })
                .collect();
            (labels.to_owned(), comparable(&points, layout))
        })
        .collect()
}

/// All windows the roll wrote: ends from the bucket start to a day later.
fn all_ends() -> TimeRange {
    TimeRange::new(BUCKET, BUCKET + DAY)
}

/// Every series' windows of the rollup table of `r`, through
/// `select_rollup` (both metrics) and `read_rollup_files`, which must agree.
fn read_all(rt: &tokio::runtime::Runtime, cold: &ColdTier, r: Rollup, layout: u8) -> Table {
    let t = acme();
    let view = cold.rollup_view(r);
    let mut got = Vec::new();
    for metric in ["hum", "temp"] {
        let m = [Matcher::equal("__name__", metric)];
        let series = rt.block_on(view.select_rollup(&t, &m, all_ends())).unwrap().expect("the table answers");
        got.extend(series.iter().map(|s| (s.labels.to_string(), comparable(&s.points, layout))));
    }
    got.sort();
    // Whole files, as the small-file merge reads them: the same windows,
    // and the ids and device hashes the series were written with.
    let files = rt.block_on(view.read_rollup_files(&t, &live_files(rt, &view))).unwrap();
    let mut whole: Vec<_> = files.iter().map(|s| (s.labels.to_string(), comparable(&s.points, layout))).collect();
    whole.sort();
    assert_eq!(whole, got, "{r:?}: whole-file read");
    for s in &files {
        assert_eq!(s.series_id, strata_schemas::series_id(&t, &s.labels), "{r:?} {}", s.labels);
        assert_eq!(s.device_hash, strata_schemas::device_hash_of(&t, "gw1"));
    }
    got
}

/// The data file locations of `view`'s table of the fixtures' tenant.
pub(crate) fn live_files(rt: &tokio::runtime::Runtime, view: &ColdTier) -> Vec<String> {
    let mut out: Vec<String> = rt.block_on(view.live_files(&acme())).unwrap().into_iter().map(|f| f.path).collect();
    out.sort();
    out
}

/// The metadata Strata writes itself on a rollup table of `layout`, and
/// the device buckets of its spec.
fn check_table_metadata(rt: &tokio::runtime::Runtime, cold: &ColdTier, r: Rollup, layout: u8) {
    let t = acme();
    let table = rt.block_on(cold.rollup_view(r).load_table(&t)).unwrap().expect("rollup table");
    let meta = table.metadata();
    let props = meta.properties();
    let layout_text = layout.to_string();
    assert_eq!(props.get("strata.layout-version"), Some(&layout_text), "{r:?}");
    assert_eq!(props.get(PROPERTY_ROLLUP_SINCE).map(String::as_str), Some("-9223372036854775808"));
    let end = BUCKET + BUCKET_MS;
    assert_eq!(roll_state_of(&t, props).unwrap(), (0..4).map(|p| (p, end)).collect(), "{r:?}: roll state");
    assert_eq!(meta.current_schema().field_by_name("exp").is_some(), layout == 2, "{r:?}");
    let spec = meta.default_partition_spec();
    let buckets: Vec<String> = spec.fields().iter().map(|f| format!("{}:{}", f.name, f.transform)).collect();
    let device = if layout == 2 && r == Rollup::OneDay { "bucket[1]" } else { "bucket[8]" };
    assert_eq!(buckets, vec!["ts_day:day".to_owned(), format!("device_bucket:{device}")], "{r:?}");
    let snap = meta.current_snapshot().unwrap();
    let summary = &snap.summary().additional_properties;
    let get = |k: &str| summary.get(k).map(String::as_str);
    let end_text = end.to_string();
    assert_eq!(get("strata.source"), Some(source().source.as_str()));
    assert_eq!(get("strata.roll.partitions"), Some("0,1,2,3"));
    assert_eq!((get("strata.roll.start"), get("strata.roll.end")), (Some("1700006400000"), Some(end_text.as_str())));
    let rows: usize = want(r).iter().map(|(_, w)| w.len()).sum();
    assert_eq!(get("strata.rows"), Some(rows.to_string().as_str()), "{r:?}");
}

/// Reads the fixture of `layout`: tables, windows, metadata; then the
/// current build's exactly-once check recognises the roll.
fn reads_back_exactly(layout: u8) {
    let copy = copy_fixture(&format!("rollup/v{layout}"));
    let rt = runtime();
    let cold = open(&rt, copy.root.path());
    let t = acme();
    for r in Rollup::ALL {
        check_table_metadata(&rt, &cold, r, layout);
        assert_eq!(read_all(&rt, &cold, r, layout), want_comparable(r, layout), "{r:?} layout {layout}");
    }
    // The series table recorded each series once.
    let recorded = rt.block_on(cold.series_view().recorded_series(&t)).unwrap();
    assert_eq!(recorded.len(), 4);
    // The grid read (the engine's long-range path) holds the same windows
    // (`exp` is not a cell: per series the grid says whether sums are exact).
    let all = RollupFields { min: true, max: true, sum: true, last: true };
    for r in Rollup::ALL {
        let view = cold.rollup_view(r);
        let m = [Matcher::equal("__name__", "temp")];
        let answer = rt.block_on(view.select_rollup_grid(&t, &m, all_ends(), all)).unwrap().unwrap();
        let RollupAnswer::Grid(grid) = answer else { panic!("{r:?} layout {layout}: not a grid") };
        let mut got = Vec::new();
        for s in 0..grid.series.len() {
            let mut points = Vec::new();
            grid.push_windows(s, i64::MAX, all, &mut points);
            got.push((grid.series[s].to_string(), comparable(&points, 1)));
        }
        let want: Vec<_> = want_comparable(r, 1).into_iter().filter(|(l, _)| l.starts_with("temp")).collect();
        assert_eq!(got, want, "{r:?} layout {layout}: grid");
        let series = rt.block_on(view.select_rollup(&t, &m, all_ends())).unwrap().unwrap();
        let exact: Vec<bool> = series.iter().map(|s| RollupPoint::sums_exactly(&s.points)).collect();
        assert_eq!(grid.sums.iter().map(strata_schemas::SumCheck::exact).collect::<Vec<_>>(), exact, "{r:?}");
        // Layout 2 proves the sums of s1 (quarters and integers) and s2
        // (NaN either way) exact, not s3's decimals; layout 1 none.
        assert_eq!(exact, if layout == 2 { vec![true, true, false] } else { vec![false; 3] }, "{r:?}");
    }
    // A retried roll of the same bucket is not applied twice.
    for r in Rollup::ALL {
        let view = cold.rollup_view(r);
        let again = rt.block_on(view.commit_claim(&t, Default::default(), &source(), &claim())).unwrap();
        assert_eq!(again, ClaimOutcome::AlreadyCommitted, "{r:?}");
    }
}

#[test]
fn rollup_v1_fixture_reads_back_exactly() {
    reads_back_exactly(1);
}

#[test]
fn rollup_v2_fixture_reads_back_exactly() {
    reads_back_exactly(2);
}

/// `rollup/v2/corrupt/truncated.parquet` (the first half of the 5 m
/// table's data file) in place of that file: every read of the table
/// fails with an error naming the file, none panics or answers less.
#[test]
fn rollup_v2_truncated_data_file_fails_reads_naming_the_file() {
    let copy = copy_fixture("rollup/v2");
    let rt = runtime();
    let cold = open(&rt, copy.root.path());
    let t = acme();
    let file = data_files(&copy.root.path().join("cold"), "rollup5m_acme");
    assert_eq!(file.len(), 1, "{file:?}");
    std::fs::write(&file[0], copy.relocated("corrupt/truncated.parquet")).unwrap();
    let name = file[0].file_name().unwrap().to_str().unwrap().to_owned();
    let view = cold.rollup_view(Rollup::FiveMinutes);
    let m = [Matcher::equal("__name__", "temp")];
    let err = rt.block_on(view.select_rollup(&t, &m, all_ends())).unwrap_err();
    assert!(matches!(err, strata_cold_tier::Error::Corrupted { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&name) && text.contains("rollup5m_acme"), "{text}");
    let err = rt.block_on(view.read_rollup_files(&t, &live_files(&rt, &view))).unwrap_err();
    assert!(matches!(err, strata_cold_tier::Error::Corrupted { .. }), "{err:?}");
    assert!(err.to_string().contains(&name), "{err}");
    // The other tables are untouched.
    let hour = read_all(&rt, &cold, Rollup::OneHour, 2);
    assert_eq!(hour, want_comparable(Rollup::OneHour, 2));
}

/// `rollup/v2/corrupt/truncated.metadata.json` (the first half of the 5 m
/// table's current metadata file) in its place: loading the table fails
/// with `LoadTable`, and so does every read and commit through it.
#[test]
fn rollup_v2_truncated_metadata_fails_the_load() {
    let copy = copy_fixture("rollup/v2");
    let rt = runtime();
    let cold = open(&rt, copy.root.path());
    let t = acme();
    let view = cold.rollup_view(Rollup::FiveMinutes);
    let table = rt.block_on(view.load_table(&t)).unwrap().unwrap();
    let current = local(table.metadata_location().unwrap());
    drop(table);
    std::fs::write(&current, copy.relocated("corrupt/truncated.metadata.json")).unwrap();
    let err = rt.block_on(view.load_table(&t)).unwrap_err();
    assert!(matches!(err, strata_cold_tier::Error::LoadTable { .. }), "{err:?}");
    let m = [Matcher::equal("__name__", "temp")];
    assert!(matches!(
        rt.block_on(view.select_rollup(&t, &m, all_ends())),
        Err(strata_cold_tier::Error::LoadTable { .. })
    ));
    let outcome = rt.block_on(view.commit_claim(&t, Default::default(), &source(), &claim()));
    assert!(outcome.is_err(), "{outcome:?}");
}

/// The table of `r` as the code before a8695e5 (2026-12-03) created it:
/// layout version 1, the rollup schema without field 15 (`exp`),
/// `bucket[8]` whatever the width (`git show a8695e5^:cold-tier/src/tier.rs`).
async fn create_layout_1(cold: &ColdTier, r: Rollup) {
    let t = acme();
    let fields: Vec<_> =
        rollup_schema().as_struct().fields().iter().filter(|f| f.id != FIELD_EXP).cloned().collect::<Vec<_>>();
    let schema = iceberg::spec::Schema::builder().with_schema_id(0).with_fields(fields).build().unwrap();
    let mut properties: HashMap<String, String> = samples_properties(cold.config().target_file_size);
    properties.insert(PROPERTY_ROLLUP_SINCE.to_owned(), i64::MIN.to_string());
    let ident = TableKind::Rollup(r).ident(&cold.config().namespace, &t);
    let creation = iceberg::TableCreation::builder()
        .name(ident.name().to_owned())
        .schema(schema)
        .partition_spec(samples_partition_spec(cold.config().device_buckets))
        .sort_order(samples_sort_order())
        .properties(properties)
        .build();
    cold.catalog().create_table(ident.namespace(), creation).await.unwrap();
}

/// One roll as the compactor makes it (`compactor/src/roll.rs`): the
/// series recorded, then each width's windows written and committed with
/// the bucket's claim.
pub(crate) async fn roll_rollups(cold: &ColdTier) {
    let t = acme();
    let entries: Vec<SeriesEntry> = bucket_series()
        .into_iter()
        .map(|s| SeriesEntry { labels: s.labels, series_id: s.series_id, device_hash: s.device_hash })
        .collect();
    let view = cold.series_view();
    let written = view.write_series_files(&t, &entries, &file_prefix(&format!("series:acme:{BUCKET}"))).await.unwrap();
    view.commit_series_files(&t, written, &source().source).await.unwrap();
    for r in Rollup::ALL {
        let view = cold.rollup_view(r);
        let prefix = file_prefix(&format!("rollup{}:acme:{BUCKET}", r.name()));
        let written = view.write_rollup_files(&t, &rolled(r), i64::MIN, &prefix).await.unwrap();
        let outcome = view.commit_claim(&t, written, &source(), &claim()).await.unwrap();
        assert!(matches!(outcome, ClaimOutcome::Committed { .. }), "{r:?}: {outcome:?}");
    }
}

/// Writes `rollup/v<layout>/` (and for layout 2 its corrupt variants).
fn write_rollup_fixture(layout: u8) {
    let rel = format!("rollup/v{layout}");
    if !may_write(&rel) {
        return;
    }
    let root = root_dir();
    let rt = runtime();
    {
        let cold = Arc::new(open(&rt, root.path()));
        rt.block_on(async {
            if layout == 1 {
                for r in Rollup::ALL {
                    create_layout_1(&cold, r).await;
                }
            }
            roll_rollups(&cold).await;
        });
        if layout == 2 {
            let view = cold.rollup_view(Rollup::FiveMinutes);
            let table = rt.block_on(view.load_table(&acme())).unwrap().unwrap();
            let data = std::fs::read(local(&live_files(&rt, &view)[0])).unwrap();
            super::store_file(&rel, "corrupt/truncated.parquet", &data[..data.len() / 2]);
            let meta = std::fs::read(local(table.metadata_location().unwrap())).unwrap();
            super::store_file(&rel, "corrupt/truncated.metadata.json", &meta[..meta.len() / 2]);
        }
    }
    drop(rt);
    super::store_fixture(root.path(), &rel);
}

/// Writes `tests/fixtures/rollup/v2/` (the current layout) with this build:
/// `STRATA_WRITE_FIXTURES=1 cargo test -p strata-cold-tier --test it
/// frozen::rollup::regenerate_rollup_v2_fixture -- --ignored`. Only for a
/// new layout version's first fixture, never to refresh a shipped one.
#[test]
#[ignore = "writes tests/fixtures/rollup/v2; run by hand only (README)"]
fn regenerate_rollup_v2_fixture() {
    write_rollup_fixture(2);
}

/// Wrote `tests/fixtures/rollup/v1/` once (2026-12-04): the layout 1 tables
/// created as the code of a8695e5^ created them, rows written by this
/// build (what a current node writes into a layout 1 table).
#[test]
#[ignore = "wrote tests/fixtures/rollup/v1 once; a shipped version is never regenerated"]
fn write_rollup_v1_fixture_once() {
    write_rollup_fixture(1);
}
