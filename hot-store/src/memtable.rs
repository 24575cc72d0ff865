//! The memtable: samples applied since the last flush, per series.
//!
//! Samples are appended in arrival order (O(1) per sample); a series
//! remembers whether its samples are still strictly increasing so the
//! common in-order case needs no sort on read or flush. Out-of-order and
//! duplicate timestamps are resolved on read by a stable sort that keeps
//! the last write per timestamp.

use std::borrow::Cow;
use std::collections::HashMap;

use strata_schemas::{Sample, TimeRange};

use crate::index::SeriesRef;

/// One series' buffered samples as `(ts, value bits)`.
#[derive(Debug, Default)]
pub(crate) struct SeriesBuf {
    samples: Vec<(i64, u64)>,
    /// True once a sample arrived with `ts <=` the previous one.
    unsorted: bool,
}

impl SeriesBuf {
    fn push(&mut self, ts: i64, bits: u64) {
        if self.samples.last().is_some_and(|&(last, _)| ts <= last) {
            self.unsorted = true;
        }
        self.samples.push((ts, bits));
    }

    /// Samples sorted by ts, one per ts (the last written wins).
    pub(crate) fn sorted_unique(&self) -> Cow<'_, [(i64, u64)]> {
        if !self.unsorted {
            return Cow::Borrowed(&self.samples);
        }
        let mut v = self.samples.clone();
        v.sort_by_key(|&(ts, _)| ts); // stable: arrival order kept among equal ts
        let mut out: Vec<(i64, u64)> = Vec::with_capacity(v.len());
        for s in v {
            match out.last_mut() {
                Some(last) if last.0 == s.0 => *last = s,
                _ => out.push(s),
            }
        }
        Cow::Owned(out)
    }

    /// The sorted, unique samples within `range`.
    pub(crate) fn in_range(&self, range: TimeRange) -> Vec<(i64, u64)> {
        let all = self.sorted_unique();
        let start = all.partition_point(|&(ts, _)| ts < range.start);
        let end = all.partition_point(|&(ts, _)| ts <= range.end);
        all.get(start..end).map(<[_]>::to_vec).unwrap_or_default()
    }

    /// True when some sample lies in `range`.
    pub(crate) fn has_sample_in(&self, range: TimeRange) -> bool {
        self.samples.iter().any(|&(ts, _)| range.contains(ts))
    }
}

/// Buffered samples of every series, since the last flush.
#[derive(Debug, Default)]
pub(crate) struct Memtable {
    series: HashMap<SeriesRef, SeriesBuf>,
    samples: usize,
}

impl Memtable {
    /// Appends `samples` (arrival order) to series `r`; returns their (min, max) ts.
    pub(crate) fn insert(&mut self, r: SeriesRef, samples: &[Sample]) -> Option<(i64, i64)> {
        let first = samples.first()?;
        let buf = self.series.entry(r).or_default();
        let (mut min, mut max) = (first.ts, first.ts);
        for s in samples {
            buf.push(s.ts, s.value.to_bits());
            min = min.min(s.ts);
            max = max.max(s.ts);
        }
        self.samples += samples.len();
        Some((min, max))
    }

    /// The buffered samples of series `r`, if any.
    pub(crate) fn get(&self, r: SeriesRef) -> Option<&SeriesBuf> {
        self.series.get(&r)
    }

    /// Every buffered series.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (SeriesRef, &SeriesBuf)> {
        self.series.iter().map(|(&r, b)| (r, b))
    }

    /// Samples appended (duplicates included).
    pub(crate) fn samples(&self) -> usize {
        self.samples
    }

    /// True when nothing is buffered.
    pub(crate) fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(ts: i64, v: f64) -> Sample {
        Sample::new(ts, v)
    }

    #[test]
    fn later_write_wins_on_equal_timestamps() {
        let mut m = Memtable::default();
        m.insert(0, &[s(2, 1.0), s(1, 5.0), s(2, 3.0)]);
        m.insert(0, &[s(1, 7.0)]);
        let got = m.get(0).unwrap().sorted_unique().into_owned();
        assert_eq!(got, vec![(1, 7.0f64.to_bits()), (2, 3.0f64.to_bits())]);
        assert_eq!(m.samples(), 4);
    }

    #[test]
    fn in_order_series_are_borrowed_without_sorting() {
        let mut m = Memtable::default();
        m.insert(3, &[s(1, 1.0), s(2, 1.0), s(3, 1.0)]);
        assert!(matches!(m.get(3).unwrap().sorted_unique(), Cow::Borrowed(_)));
    }

    #[test]
    fn in_range_is_inclusive_on_both_ends() {
        let mut m = Memtable::default();
        m.insert(0, &[s(5, 0.0), s(1, 0.0), s(3, 0.0), s(9, 0.0)]);
        let b = m.get(0).unwrap();
        let ts: Vec<i64> = b.in_range(TimeRange::new(3, 5)).iter().map(|x| x.0).collect();
        assert_eq!(ts, vec![3, 5]);
        assert!(b.has_sample_in(TimeRange::new(9, 9)));
        assert!(!b.has_sample_in(TimeRange::new(6, 8)));
        assert!(b.in_range(TimeRange::new(6, 4)).is_empty());
    }

    #[test]
    fn insert_reports_min_and_max_and_ignores_empty_input() {
        let mut m = Memtable::default();
        assert_eq!(m.insert(0, &[]), None);
        assert!(m.is_empty());
        assert_eq!(m.insert(0, &[s(4, 0.0), s(-2, 0.0)]), Some((-2, 4)));
        assert_eq!(m.iter().count(), 1);
    }
}
