//! Unit tests of the rollup grid (`super`): the grid read against the per-series path.

use super::*;
use crate::config::ColdTierConfig;
use crate::series::{IdMap, SeriesEntry};
use crate::table::Rollup;
use crate::tier::CommitSource;
use crate::{SeriesRollup, rollup_points};
use strata_schemas::{Labels, Sample};

const DAY: i64 = 86_400_000;

/// A cold tier in a temporary directory with tenant `t`'s 1 d rollup
/// table, written a day at a time as the compactor's roll writes it.
struct DayTier {
    _dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    cold: ColdTier,
    t: TenantId,
    /// Midnight of day 0.
    day0: i64,
}

impl DayTier {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let config = ColdTierConfig { enabled: true, ..ColdTierConfig::default() };
        let cold = rt.block_on(ColdTier::open(&config, dir.path())).unwrap();
        let day0 = 1_700_006_400_000 - 1_700_006_400_000 % DAY;
        Self { _dir: dir, rt, cold, t: TenantId::new("t").unwrap(), day0 }
    }

    fn view(&self) -> ColdTier {
        self.cold.rollup_view(Rollup::OneDay)
    }

    /// `metric{device}`'s 1 d window of day `day`: `values` a minute apart from 00:01.
    fn series(&self, metric: &str, device: &str, day: i64, values: &[f64]) -> SeriesRollup {
        let labels = Labels::from_pairs([("__name__", metric), ("device", device)]);
        let samples: Vec<Sample> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Sample::new(self.day0 + day * DAY + 60_000 * (i as i64 + 1), *v))
            .collect();
        SeriesRollup {
            series_id: strata_schemas::series_id(&self.t, &labels),
            device_hash: strata_schemas::device_hash_of(&self.t, device),
            points: rollup_points(&samples, DAY),
            labels,
        }
    }

    /// Each day's rows in a file of its own, its series recorded first.
    fn write_days(&self, days: &[Vec<SeriesRollup>]) {
        let (t, view) = (&self.t, self.view());
        self.rt.block_on(async {
            for (d, rows) in days.iter().enumerate() {
                let entries: Vec<SeriesEntry> = rows.iter().map(SeriesEntry::from).collect();
                let sv = self.cold.series_view();
                let ws = sv.write_series_files(t, &entries, &format!("series-{d}")).await.unwrap();
                sv.commit_series_files(t, ws, &format!("hot:{t}:s{d}")).await.unwrap();
                let written = view.write_rollup_files(t, rows, i64::MIN, &format!("day-{d}")).await.unwrap();
                let source = CommitSource { source: format!("hot:{t}:{d}"), segments: String::new() };
                view.commit_files(t, written, &source).await.unwrap();
            }
        });
    }
}

/// Day 0's file holds two metrics, days 1 and 2 only `m`: the grid read
/// of `m` reads day 1's file without the per-row metric test (its bounds
/// prove it), day 0's with it (the other metric's rows left out, not
/// made unresolved), and answers the windows `select_rollup` answers.
#[test]
fn a_grid_read_filters_only_files_whose_bounds_do_not_prove_the_metric() {
    let tier = DayTier::new();
    let (rt, t, view, day0) = (&tier.rt, tier.t.clone(), tier.view(), tier.day0);
    let series = |metric: &str, device: &str, day: i64, v: f64| tier.series(metric, device, day, &[v, v + 0.5]);
    tier.write_days(&[
        vec![series("m", "a", 0, 1.0), series("other", "a", 0, 2.0), series("m", "b", 0, 3.0)],
        vec![series("m", "a", 1, 4.0), series("m", "b", 1, 5.0)],
        vec![series("m", "b", 2, 6.0)],
    ]);
    let m = [Matcher::equal("__name__", "m")];
    let table = rt.block_on(view.load_table(&t)).unwrap().unwrap();
    let proven = rt.block_on(view.proven_files(&table, &t, &m)).unwrap();
    assert_eq!(proven.len(), 2, "days 1 and 2: {proven:?}");
    assert!(proven.iter().all(|p| !p.contains("day-0")), "{proven:?}");
    let other = [Matcher::equal("__name__", "other")];
    assert!(rt.block_on(view.proven_files(&table, &t, &other)).unwrap().is_empty());
    assert!(rt.block_on(view.proven_files(&table, &t, &[])).unwrap().is_empty(), "nothing pushed, nothing to prove");
    // Window ends are midnights: day 1's window lies in the partition of
    // day 2, inside the range (read without a predicate), day 2's not.
    let ends = TimeRange::new(day0 + DAY, day0 + 3 * DAY);
    let fields = RollupFields { sum: true, ..RollupFields::default() };
    let Some(RollupAnswer::Grid(grid)) = rt.block_on(view.select_rollup_grid(&t, &m, ends, fields)).unwrap() else {
        panic!("not a grid")
    };
    let want = rt.block_on(view.select_rollup(&t, &m, ends)).unwrap().unwrap();
    assert_eq!(grid.series, want.iter().map(|s| s.labels.clone()).collect::<Vec<_>>());
    for (s, series) in want.iter().enumerate() {
        let mut got = Vec::new();
        grid.push_windows(s, ends.end, fields, &mut got);
        let cells = |p: &[RollupPoint]| p.iter().map(|p| (p.end, p.count, p.sum)).collect::<Vec<_>>();
        assert_eq!(cells(&got), cells(&series.points), "{}", series.labels);
    }
    assert_eq!(grid.windows(), 3);
    assert_eq!(grid.rows(ends.end), 5, "m's rows, not the other metric's");
    assert!(grid.sums.iter().all(SumCheck::exact));
}

/// Day 0 holds quarter values up to |−7.5|, day 1 a NaN window: the
/// bounds of day 0 alone are its lowest `exp` and largest |min|, |max|;
/// with day 1 there are none (the read checks rows one by one), and
/// either way the grid's sum checks are those of the windows.
#[test]
fn sum_checks_come_from_file_bounds_only_for_days_without_nan_or_inf() {
    let tier = DayTier::new();
    let (rt, t, view, day0) = (&tier.rt, tier.t.clone(), tier.view(), tier.day0);
    tier.write_days(&[
        vec![tier.series("m", "a", 0, &[1.25, -7.5]), tier.series("m", "b", 0, &[3.0, 2.5])],
        vec![tier.series("m", "a", 1, &[f64::NAN, 1.0]), tier.series("m", "b", 1, &[4.0])],
    ]);
    let table = rt.block_on(view.load_table(&t)).unwrap().unwrap();
    let files = rt.block_on(view.live_entries(&table, &t)).unwrap();
    // Window ends are the next midnights: day 0's window ends on day 1.
    let first = TimeRange::new(day0 + DAY, day0 + DAY);
    let bounds = ColdTier::sum_bounds(&table, &files, first).expect("day 0's file has its bounds");
    assert_eq!(bounds.get(&(day0 / DAY + 1)), Some(&(-2, 7.5)), "{bounds:?}");
    let both = TimeRange::new(day0 + DAY, day0 + 2 * DAY);
    assert!(ColdTier::sum_bounds(&table, &files, both).is_none(), "a NaN window on day 1");
    let m = [Matcher::equal("__name__", "m")];
    let fields = RollupFields { sum: true, ..RollupFields::default() };
    for ends in [first, both] {
        let Some(RollupAnswer::Grid(grid)) = rt.block_on(view.select_rollup_grid(&t, &m, ends, fields)).unwrap() else {
            panic!("not a grid")
        };
        let want = rt.block_on(view.select_rollup(&t, &m, ends)).unwrap().unwrap();
        let exact: Vec<bool> = want.iter().map(|s| RollupPoint::sums_exactly(&s.points)).collect();
        assert_eq!(grid.sums.iter().map(SumCheck::exact).collect::<Vec<_>>(), exact, "{ends:?}");
        for (s, series) in want.iter().enumerate() {
            let mut got = Vec::new();
            grid.push_windows(s, ends.end, fields, &mut got);
            let cells = |p: &[RollupPoint]| p.iter().map(|p| (p.end, p.count, p.sum.to_bits())).collect::<Vec<_>>();
            assert_eq!(cells(&got), cells(&series.points), "{}", series.labels);
        }
    }
}

#[test]
fn part_windows_place_ends_on_their_grid_and_refuse_ends_off_it() {
    let w = PartWindows { first_end: 1_000, width: 100, windows: 3 };
    assert_eq!(w.of(1_000), Ok(Some(0)));
    assert_eq!(w.of(1_200), Ok(Some(2)));
    assert_eq!(w.of(1_300), Ok(None), "after the part's last window");
    assert_eq!(w.of(900), Ok(None), "before the part");
    assert!(w.of(1_050).is_err());
    assert!(w.of(950).is_err(), "before the part and off the grid");
}

#[test]
fn a_slot_is_looked_up_once_per_run_of_one_id() {
    let mut ids: IdMap<Option<u32>> = IdMap::default();
    for (id, slot) in [(10, Some(0)), (20, None), (30, Some(1))] {
        ids.insert(id, slot);
    }
    let l = |s: &str| Labels::from_pairs([("__name__", "m"), ("s", s)]);
    let (sorted, _) = SortedIds::of(SeriesIndex { ids, labels: vec![l("a"), l("b")] });
    let (mut cursor, mut last) = (0, None);
    assert_eq!(sorted.slot(10, &mut cursor, &mut last), Some(Some(0)));
    assert_eq!(last, Some((10, Some(0))));
    assert_eq!(sorted.slot(10, &mut cursor, &mut last), Some(Some(0)));
    assert_eq!(sorted.slot(20, &mut cursor, &mut last), Some(None), "a series that does not match");
    assert_eq!(sorted.slot(25, &mut cursor, &mut last), None, "an id no series has");
    assert_eq!(sorted.slot(30, &mut cursor, &mut last), Some(Some(1)));
}

#[test]
fn sorted_ids_put_slots_in_label_order_and_find_ids_from_a_cursor() {
    let l = |s: &str| Labels::from_pairs([("__name__", "m"), ("s", s)]);
    let mut ids: IdMap<Option<u32>> = IdMap::default();
    // Slots as the index made them: "c" 0, "a" 1, "b" 2; id 7 does not match.
    for (id, slot) in [(30, Some(0)), (10, Some(1)), (20, Some(2)), (7, None)] {
        ids.insert(id, slot);
    }
    let index = SeriesIndex { ids, labels: vec![l("c"), l("a"), l("b")] };
    let (sorted, labels) = SortedIds::of(index);
    assert_eq!(labels, vec![l("a"), l("b"), l("c")]);
    assert_eq!(sorted.ids, vec![7, 10, 20, 30]);
    assert_eq!(sorted.slots, vec![None, Some(0), Some(1), Some(2)]);
    let mut cursor = 0;
    assert_eq!(sorted.find(10, &mut cursor), Some(1));
    assert_eq!(sorted.find(30, &mut cursor), Some(3));
    assert_eq!(sorted.find(7, &mut cursor), Some(0), "back to an earlier id");
    assert_eq!(sorted.find(8, &mut cursor), None);
    assert_eq!(sorted.find(31, &mut cursor), None);
    assert_eq!(sorted.find(20, &mut cursor), Some(2));
}
