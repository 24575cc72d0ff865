use super::*;

use strata_schemas::{RollupAnswer, RollupData, RollupFields, RollupGrid, SumCheck};

#[test]
fn windows_are_left_open_right_closed() {
    let w = 300_000;
    assert_eq!(window_end(0, w), 0);
    assert_eq!(window_end(1, w), w);
    assert_eq!(window_end(w, w), w);
    assert_eq!(window_end(w + 1, w), 2 * w);
    assert_eq!(window_end(-1, w), 0);
    assert_eq!(window_end(-w, w), -w);
    let stale = f64::from_bits(strata_schemas::labels::STALE_NAN_BITS);
    let s = [Sample::new(1, 2.0), Sample::new(w, 1.0), Sample::new(w + 1, stale), Sample::new(2 * w + 1, 5.0)];
    let p = rollup_points(&s, w);
    assert_eq!(p.len(), 2);
    assert_eq!((p[0].end, p[0].min, p[0].max, p[0].sum, p[0].count, p[0].last), (w, 1.0, 2.0, 3.0, 2, 1.0));
    assert_eq!((p[1].end, p[1].count, p[1].last_ts), (3 * w, 1, 2 * w + 1));
}

/// Layout version 2: `exp` is written and read back (null for a window
/// holding NaN), a 1 d table has one device bucket, a 1 h table the
/// configured number. A table created at layout version 1 (no `exp`
/// column, as before 2026-12-04) is still written and read, every row
/// with `exp` = `None`.
#[test]
fn layout_two_stores_exp_and_layout_one_tables_stay_readable() {
    use crate::config::ColdTierConfig;
    use crate::table::{FIELD_EXP, rollup_schema, samples_partition_spec, samples_sort_order};
    use crate::tier::CommitSource;
    use iceberg::Catalog;
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let config = ColdTierConfig { enabled: true, ..ColdTierConfig::default() };
    let cold = rt.block_on(ColdTier::open(&config, dir.path())).unwrap();
    let day0 = 1_700_006_400_000 - 1_700_006_400_000 % MS_PER_DAY;
    let rolled = |t: &TenantId, w: i64| -> Vec<SeriesRollup> {
        [("quarter", [0.25, -3.5, 8.0]), ("decimal", [0.1, 0.2, 0.3]), ("nan", [1.0, f64::NAN, 2.0])]
            .into_iter()
            .map(|(device, values)| {
                let labels = Labels::from_pairs([("__name__", "m"), ("device", device)]);
                let samples: Vec<Sample> =
                    values.iter().enumerate().map(|(i, &v)| Sample::new(day0 + 1 + i as i64 * 60_000, v)).collect();
                SeriesRollup {
                    series_id: strata_schemas::series_id(t, &labels),
                    device_hash: strata_schemas::device_hash_of(t, device),
                    points: rollup_points(&samples, w),
                    labels,
                }
            })
            .collect()
    };
    let write_and_read = |view: &ColdTier, t: &TenantId, w: i64| -> Vec<RollupSeries> {
        rt.block_on(async {
            let rows = rolled(t, w);
            let written = view.write_rollup_files(t, &rows, i64::MIN, "test").await.unwrap();
            let source = CommitSource { source: format!("hot:{t}:{day0}"), segments: String::new() };
            view.commit_files(t, written, &source).await.unwrap();
            // The series recorded (as a roll does), so the grid read resolves every row.
            let entries: Vec<crate::series::SeriesEntry> = rows.iter().map(crate::series::SeriesEntry::from).collect();
            let sv = cold.series_view();
            let ws = sv.write_series_files(t, &entries, &format!("series-{w}")).await.unwrap();
            sv.commit_series_files(t, ws, &format!("hot:{t}:{w}")).await.unwrap();
            let m = [Matcher::equal("__name__", "m")];
            let ends = TimeRange::new(day0, day0 + MS_PER_DAY);
            let got = view.select_rollup(t, &m, ends).await.unwrap().unwrap();
            // The grid read holds the same windows, and sum checks that agree with `exp`.
            let all = RollupFields { min: true, max: true, sum: true, last: true };
            let Some(RollupAnswer::Grid(grid)) = view.select_rollup_grid(t, &m, ends, all).await.unwrap() else {
                panic!("not a grid")
            };
            assert_eq!(grid_series(&grid, all), seen(&got, all));
            let exact: Vec<bool> = got.iter().map(|s| RollupPoint::sums_exactly(&s.points)).collect();
            assert_eq!(grid.sums.iter().map(SumCheck::exact).collect::<Vec<_>>(), exact);
            got
        })
    };
    let exps = |series: &[RollupSeries]| -> Vec<(String, Option<i32>, bool)> {
        series
            .iter()
            .map(|s| {
                let p = &s.points;
                (s.labels.get("device").unwrap_or_default().to_owned(), p[0].exp, RollupPoint::sums_exactly(p))
            })
            .collect()
    };
    let new = TenantId::new("new").unwrap();
    for (r, buckets) in [(Rollup::OneDay, 1), (Rollup::OneHour, config.device_buckets)] {
        let view = cold.rollup_view(r);
        let got = write_and_read(&view, &new, r.width_ms());
        assert_eq!(
            exps(&got),
            vec![
                ("decimal".into(), Some(-55), false),
                ("nan".into(), Some(strata_schemas::EXP_NAN), true),
                ("quarter".into(), Some(-2), true)
            ],
            "{r:?}"
        );
        let table = rt.block_on(view.load_table(&new)).unwrap().unwrap();
        assert_eq!(table_buckets(&table), Some(buckets), "{r:?}");
        assert_eq!(table.metadata().properties().get("strata.layout-version").map(String::as_str), Some("2"));
    }
    // A version 1 table: the rollup schema without field 15.
    let old = TenantId::new("old").unwrap();
    let view = cold.rollup_view(Rollup::OneDay);
    let fields = rollup_schema().as_struct().fields().iter().filter(|f| f.id != FIELD_EXP).cloned().collect::<Vec<_>>();
    let schema = iceberg::spec::Schema::builder().with_schema_id(0).with_fields(fields).build().unwrap();
    let ident = view.ident(&old);
    let creation = iceberg::TableCreation::builder()
        .name(ident.name().to_owned())
        .schema(schema)
        .partition_spec(samples_partition_spec(8))
        .sort_order(samples_sort_order())
        .properties(HashMap::from([
            (PROPERTY_ROLLUP_SINCE.to_owned(), i64::MIN.to_string()),
            ("strata.layout-version".to_owned(), "1".to_owned()),
        ]))
        .build();
    rt.block_on(cold.catalog().create_table(ident.namespace(), creation)).unwrap();
    let got = write_and_read(&view, &old, MS_PER_DAY);
    assert_eq!(
        exps(&got),
        vec![("decimal".into(), None, false), ("nan".into(), None, false), ("quarter".into(), None, false)]
    );
    assert_eq!(got[2].points[0].sum, 4.75, "the rest of the row as written");
}

#[test]
fn scan_parts_cut_whole_days_in_time_order() {
    let d = MS_PER_DAY;
    assert_eq!(scan_parts(TimeRange::new(5 * d, 5 * d), 2), vec![TimeRange::new(5 * d, 5 * d)]);
    assert_eq!(scan_parts(TimeRange::new(d, 365 * d), 1), vec![TimeRange::new(d, 365 * d)]);
    for (ends, parts) in [
        (TimeRange::new(d, 365 * d), 2),
        (TimeRange::new(3_600_000, 10 * d), 3),
        (TimeRange::new(-4 * d, 4 * d - 300_000), 8),
        (TimeRange::new(d, 2 * d), 8),
    ] {
        let got = scan_parts(ends, parts);
        assert!(got.len() <= parts && got.len() > 1, "{ends:?}: {got:?}");
        assert_eq!((got[0].start, got[got.len() - 1].end), (ends.start, ends.end));
        for pair in got.windows(2) {
            assert_eq!(pair[1].start, pair[0].end + 1, "{got:?}");
            assert_eq!(pair[1].start.rem_euclid(d), 0, "a cut at a day boundary: {got:?}");
            assert!(pair[0].start <= pair[0].end);
        }
    }
}

/// A read of many days (cut into parts read on their own tasks on a
/// multi-thread runtime, rows handed to series a block at a time)
/// answers what the rows hold: partial rows of one window in separate
/// files merged in time order, a series of another metric left out,
/// and a series the series table lacks read through the labels column.
#[test]
fn a_long_read_in_parts_answers_every_window_of_every_series() {
    use crate::config::ColdTierConfig;
    use crate::series::SeriesEntry;
    use crate::tier::CommitSource;
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let config = ColdTierConfig { enabled: true, ..ColdTierConfig::default() };
    let cold = rt.block_on(ColdTier::open(&config, dir.path())).unwrap();
    let t = TenantId::new("parts").unwrap();
    let day0 = 1_700_006_400_000 - 1_700_006_400_000 % MS_PER_DAY;
    let days = 12i64;
    let series = |name: &str, device: &str| {
        let labels = Labels::from_pairs([("__name__", name), ("device", device)]);
        (strata_schemas::series_id(&t, &labels), strata_schemas::device_hash_of(&t, device), labels)
    };
    let all = [series("m", "a"), series("m", "b"), series("other", "a"), series("m", "unrecorded")];
    let entries: Vec<SeriesEntry> = all[..3]
        .iter()
        .map(|(id, dev, labels)| SeriesEntry { labels: labels.clone(), series_id: *id, device_hash: *dev })
        .collect();
    // Samples every 6 h; each day's window in two partial rows (before
    // and after noon), written by separate commits: separate files.
    let sample = |k: usize, i: i64| Sample::new(day0 + i * 6 * 3_600_000 + 1, (k as f64 + 1.0) * 0.5 + i as f64);
    let samples: Vec<Vec<Sample>> = (0..all.len()).map(|k| (0..days * 4).map(|i| sample(k, i)).collect()).collect();
    let view = cold.rollup_view(Rollup::OneDay);
    let m = [Matcher::equal("__name__", "m")];
    // Every window but the first and the last.
    let ends = TimeRange::new(day0 + 2 * MS_PER_DAY, day0 + (days - 1) * MS_PER_DAY);
    let want: Vec<RollupSeries> = [0usize, 1, 3]
        .into_iter()
        .map(|k| RollupSeries {
            labels: all[k].2.clone(),
            points: rollup_points(&samples[k], MS_PER_DAY).into_iter().filter(|p| ends.contains(p.end)).collect(),
        })
        .collect();
    assert_eq!(want[0].points.len(), (days - 2) as usize);
    assert_eq!(want[2].labels.get("device"), Some("unrecorded"), "sorted by labels");
    rt.block_on(async {
        let sv = cold.series_view();
        let w = sv.write_series_files(&t, &entries, "test-series").await.unwrap();
        sv.commit_series_files(&t, w, "hot:parts:0").await.unwrap();
        let view = cold.rollup_view(Rollup::OneDay);
        // The unrecorded series last, whole days in one commit.
        for (half, of) in [(0i64, 0..3), (1, 0..3), (2, 3..4)] {
            let rolled: Vec<SeriesRollup> = all[of.clone()]
                .iter()
                .zip(&samples[of])
                .map(|((id, dev, labels), s)| {
                    let part: Vec<Sample> = s
                        .iter()
                        .filter(|x| {
                            half == 2 || ((x.ts - day0).rem_euclid(MS_PER_DAY) >= MS_PER_DAY / 2) as i64 == half
                        })
                        .copied()
                        .collect();
                    SeriesRollup {
                        labels: labels.clone(),
                        series_id: *id,
                        device_hash: *dev,
                        points: rollup_points(&part, MS_PER_DAY),
                    }
                })
                .collect();
            let written = view.write_rollup_files(&t, &rolled, i64::MIN, &format!("half{half}")).await.unwrap();
            let source = CommitSource { source: format!("hot:parts:{half}"), segments: String::new() };
            view.commit_files(&t, written, &source).await.unwrap();
            if half == 1 {
                // Every row's series recorded: the series-table path.
                let got = view.select_rollup(&t, &m, ends).await.unwrap().unwrap();
                assert_eq!(got, want[..2].to_vec());
                // And as a grid: each series' cells the merged windows (for every field set).
                for fields in grid_fields() {
                    let answer = view.select_rollup_grid(&t, &m, ends, fields).await.unwrap().unwrap();
                    let RollupAnswer::Grid(grid) = answer else { panic!("{fields:?}: not a grid") };
                    assert!(grid.blocks.len() > 1, "one block per part");
                    assert_eq!(grid_series(&grid, fields), seen(&want[..2], fields), "{fields:?}");
                    if fields.sum {
                        assert!(grid.sums.iter().all(SumCheck::exact), "halves sum exactly");
                    }
                }
            }
        }
    });
    let got = rt.block_on(view.select_rollup(&t, &m, ends)).unwrap().unwrap();
    // A row of a series the series table lacks: the labels column's path.
    assert_eq!(got, want);
    let fields = RollupFields { sum: true, ..RollupFields::default() };
    let answer = rt.block_on(view.select_rollup_grid(&t, &m, ends, fields)).unwrap().unwrap();
    assert_eq!(answer, RollupAnswer::Series(RollupData { covered_end: ends.end, series: want }), "per series");
}

/// The field sets the engine asks for (avg/sum, min, max, last, count) and all of them.
fn grid_fields() -> Vec<RollupFields> {
    let none = RollupFields::default();
    vec![
        RollupFields { sum: true, ..none },
        RollupFields { min: true, ..none },
        RollupFields { max: true, ..none },
        RollupFields { last: true, ..none },
        none,
        RollupFields { min: true, max: true, sum: true, last: true },
    ]
}

/// Each series' windows of a grid: (labels, [(end, count, fields asked as bits)]).
type Seen = Vec<(Labels, Vec<(i64, u64, Vec<u64>)>)>;

fn grid_series(grid: &RollupGrid, fields: RollupFields) -> Seen {
    let mut points = Vec::new();
    (0..grid.series.len())
        .map(|s| {
            points.clear();
            grid.push_windows(s, i64::MAX, fields, &mut points);
            (grid.series[s].clone(), seen_points(&points, fields))
        })
        .collect()
}

fn seen(series: &[RollupSeries], fields: RollupFields) -> Seen {
    series.iter().map(|s| (s.labels.clone(), seen_points(&s.points, fields))).collect()
}

fn seen_points(points: &[RollupPoint], fields: RollupFields) -> Vec<(i64, u64, Vec<u64>)> {
    points
        .iter()
        .map(|p| {
            let asked = [(fields.sum, p.sum), (fields.min, p.min), (fields.max, p.max), (fields.last, p.last)];
            (p.end, p.count, asked.iter().filter(|a| a.0).map(|a| a.1.to_bits()).collect())
        })
        .collect()
}

#[test]
fn partials_merge_in_time_order() {
    let a = RollupPoint::of(10, &[Sample::new(3, f64::NAN), Sample::new(4, 2.0)]).unwrap();
    let b = RollupPoint::of(10, &[Sample::new(10, 1.0)]).unwrap();
    let mut v = vec![b, a];
    merge_partials(&mut v);
    let want = RollupPoint::of(10, &[Sample::new(3, f64::NAN), Sample::new(4, 2.0), Sample::new(10, 1.0)]).unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!((v[0].min, v[0].max, v[0].count, v[0].last, v[0].last_ts), (1.0, 2.0, 3, 1.0, 10));
    assert_eq!((want.min, want.max), (1.0, 2.0));
    assert!(v[0].sum.is_nan() && want.sum.is_nan());
}
