//! Unit tests of the rollup grid (`super`): cells equal to merged points,
//! partial rows in any arrival order, the shape check.

use super::*;
use crate::{RollupSeries, Sample};
use proptest::prelude::*;

fn labels(name: &str) -> Labels {
    Labels::from_pairs([("__name__", "m"), ("s", name)])
}

/// What a cell should hold: the rows merged in time order, as the cold
/// tier's `merge_partials` does.
fn merged(rows: &[RollupPoint]) -> RollupPoint {
    let mut rows = rows.to_vec();
    rows.sort_by_key(|p| p.last_ts);
    let mut m = rows[0];
    for p in &rows[1..] {
        m.merge(p);
    }
    m
}

const ALL: RollupFields = RollupFields { min: true, max: true, sum: true, last: true };

/// A window's partial rows from values (one row per run of `per_row`
/// samples), the samples' time order is the rows' order.
fn partial_rows(end: i64, values: &[f64], per_row: usize) -> Vec<RollupPoint> {
    let samples: Vec<Sample> = values.iter().enumerate().map(|(i, &v)| Sample::new(end - 1000 + i as i64, v)).collect();
    samples.chunks(per_row.max(1)).filter_map(|c| RollupPoint::of(end, c)).collect()
}

#[test]
fn partial_rows_of_signed_zeros_keep_the_earliest_like_a_merge_in_time_order() {
    // +0 first, then a NaN-only row, then -0: min and max stay +0 (the earlier of equal values).
    let rows = partial_rows(10_000, &[0.0, f64::NAN, -0.0], 1);
    assert_eq!(rows.len(), 3);
    for order in [[0usize, 1, 2], [2, 0, 1], [1, 2, 0], [2, 1, 0]] {
        let mut b = RollupBlockBuilder::new(1, 1, ALL);
        for &i in &order {
            b.add(0, 0, &rows[i]).unwrap();
        }
        let (block, sums) = b.finish().unwrap();
        assert_eq!(block.min[0].to_bits(), 0.0f64.to_bits(), "{order:?}");
        assert_eq!(block.max[0].to_bits(), 0.0f64.to_bits(), "{order:?}");
        assert_eq!(block.last[0].to_bits(), (-0.0f64).to_bits(), "{order:?}");
        assert_eq!((block.count[0], block.last_ts[0]), (3, 10_000 - 1000 + 2));
        assert_eq!(sums.len(), 1);
    }
}

#[test]
fn a_grid_of_series_hands_back_each_series_windows_with_the_fields_asked() {
    let w = 100;
    let a = RollupSeries { labels: labels("a"), points: partial_rows(200, &[1.0, 2.5], 5) };
    let mut b_points = partial_rows(100, &[4.0], 1);
    b_points.extend(partial_rows(300, &[-1.0, 8.0], 5));
    b_points.extend(partial_rows(500, &[7.0], 1)); // after last_end: left out
    let b = RollupSeries { labels: labels("b"), points: b_points.clone() };
    let data = RollupData { covered_end: 300, series: vec![a.clone(), b] };
    let fields = RollupFields { sum: true, ..RollupFields::default() };
    let grid = RollupGrid::from_series(&data, 100, 300, w, fields, 1 << 20).unwrap().unwrap();
    grid.check(fields).unwrap();
    assert_eq!((grid.windows(), grid.rows(300), grid.rows(200), grid.rows(99)), (3, 3, 2, 0));
    let mut out = Vec::new();
    grid.push_windows(1, 300, fields, &mut out);
    assert_eq!(out.iter().map(|p| (p.end, p.sum, p.count)).collect::<Vec<_>>(), vec![(100, 4.0, 1), (300, 7.0, 2)]);
    assert!(out[0].min.is_nan() && out[0].last.is_nan() && out[0].exp.is_none(), "fields not asked are NaN");
    out.clear();
    grid.push_windows(1, 299, fields, &mut out);
    assert_eq!(out.len(), 1, "windows after `upto` are left out");
    out.clear();
    grid.push_windows(0, i64::MAX, fields, &mut out);
    assert_eq!(out.iter().map(|p| (p.end, p.sum)).collect::<Vec<_>>(), vec![(200, 3.5)]);
    assert!(grid.sums[0].exact() && grid.sums[1].exact());
    assert_eq!(RollupGrid::from_series(&data, 100, 300, w, fields, 5).unwrap(), None, "6 cells > 5");
    assert!(RollupGrid::from_series(&data, 300, 100, w, fields, 99).is_err());
}

#[test]
fn the_shape_check_refuses_what_the_engine_cannot_index() {
    let fields = RollupFields { min: true, ..RollupFields::default() };
    let data = RollupData {
        covered_end: 0,
        series: vec![
            RollupSeries { labels: labels("a"), points: partial_rows(0, &[1.0], 1) },
            RollupSeries { labels: labels("b"), points: partial_rows(0, &[2.0], 1) },
        ],
    };
    let grid = RollupGrid::from_series(&data, 0, 0, 10, fields, 99).unwrap().unwrap();
    grid.check(fields).unwrap();
    let err = grid.check(RollupFields { max: true, ..fields }).unwrap_err();
    assert!(err.contains("0 max cells, 2 expected"), "{err}");
    let err = grid.check(RollupFields { sum: true, ..fields }).unwrap_err();
    assert!(err.contains("sum"), "{err}");
    let mut bad = grid.clone();
    bad.series.swap(0, 1);
    assert!(bad.check(fields).unwrap_err().contains("not sorted"));
    let mut bad = grid.clone();
    bad.blocks[0].count.pop();
    assert!(bad.check(fields).unwrap_err().contains("1 count cells, 2 expected"));
    let mut bad = grid;
    bad.width_ms = 0;
    assert!(bad.check(fields).is_err());
    let mut b = RollupBlockBuilder::new(1, 1, fields);
    assert!(b.add(1, 0, &data.series[0].points[0]).is_err(), "window outside the block");
    assert!(b.add(0, 0, &RollupPoint { count: 0, ..data.series[0].points[0] }).is_err(), "no samples");
}

proptest! {
    /// Rows of random windows, split into partial rows, added in a random
    /// order: every cell holds the fields of the rows merged in time
    /// order (bits; sums where they are exact or NaN), and where a
    /// series' row-wise `SumCheck` says exact, its sums are: the cells'
    /// sums added in time order equal the values added in reverse order.
    /// With one row per window the check is `sums_exactly`'s.
    #[test]
    fn cells_equal_the_rows_merged_in_time_order(
        windows in prop::collection::vec((0usize..3, 0usize..4, prop::collection::vec(-6i32..6, 1..6), 1usize..4), 1..16),
        seed in any::<u64>(),
        which in 0usize..5,
    ) {
        let fields = [
            ALL,
            RollupFields { sum: true, ..RollupFields::default() },
            RollupFields { min: true, ..RollupFields::default() },
            RollupFields { last: true, max: true, ..RollupFields::default() },
            RollupFields::default(),
        ][which];
        let w = 1000;
        let value = |v: i32| match v { -6 => f64::NAN, -5 => -0.0, 5 => 0.1, v => v as f64 / 4.0 };
        // (series, window) → (values, rows); the first draw of a cell counts.
        let mut cells: std::collections::BTreeMap<(usize, usize), (Vec<f64>, Vec<RollupPoint>)> = Default::default();
        for (s, k, values, per_row) in windows {
            let values: Vec<f64> = values.into_iter().map(value).collect();
            cells.entry((s, k)).or_insert_with(|| {
                let rows = partial_rows((k as i64 + 1) * w, &values, per_row);
                (values, rows)
            });
        }
        let mut rows: Vec<(usize, usize, RollupPoint)> =
            cells.iter().flat_map(|(&(s, k), (_, r))| r.iter().map(move |p| (s, k, *p))).collect();
        // A shuffle from the seed (xorshift).
        let mut x = seed | 1;
        for i in (1..rows.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            rows.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let mut b = RollupBlockBuilder::new(4, 3, fields);
        for (s, k, p) in &rows {
            b.add(*k, *s, p).unwrap();
        }
        let (block, sums) = b.finish().unwrap();
        for (s, check) in (0..3).zip(sums.iter().chain(std::iter::repeat(&SumCheck::default()))) {
            let (mut cell_sum, mut reverse) = (0.0f64, 0.0f64);
            let mut one_row_each = Vec::new();
            for k in 0..4 {
                let i = k * 3 + s;
                let Some((values, r)) = cells.get(&(s, k)) else {
                    prop_assert_eq!(block.count[i], 0);
                    continue;
                };
                let m = merged(r);
                if r.len() == 1 {
                    one_row_each.push(m);
                }
                prop_assert_eq!(u64::from(block.count[i]), m.count);
                let bits = |v: &[f64]| v.get(i).map(|x| x.to_bits());
                if fields.min { prop_assert_eq!(bits(&block.min), Some(m.min.to_bits())); }
                if fields.max { prop_assert_eq!(bits(&block.max), Some(m.max.to_bits())); }
                if fields.last { prop_assert_eq!(bits(&block.last), Some(m.last.to_bits())); }
                if fields.sum {
                    cell_sum += block.sum[i];
                    reverse = values.iter().rev().fold(reverse, |a, v| a + v);
                }
            }
            if fields.sum && check.exact() {
                let same = cell_sum.to_bits() == reverse.to_bits() || (cell_sum.is_nan() && reverse.is_nan());
                prop_assert!(same, "series {}: {} vs {}", s, cell_sum, reverse);
            }
            let rows_of_s = cells.iter().filter(|((t, _), _)| *t == s).count();
            if fields.sum && one_row_each.len() == rows_of_s {
                prop_assert_eq!(check.exact(), RollupPoint::sums_exactly(&one_row_each), "one row per window");
            }
        }
    }
}
