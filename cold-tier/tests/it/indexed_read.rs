//! The indexed samples read (`ReadPath::Indexed`): matchers resolved by the
//! series table, then only the matching series' rows read. Its answers
//! equal the labels path's; what it reads is counted by the reader.

use proptest::prelude::*;
use strata_cold_tier::{
    ColdTier, ColdTierConfig, CommitSource, ReadPath, ReadStats, SeriesEntry, SeriesSamples, file_prefix,
};
use strata_schemas::{Labels, Matcher, Sample, SeriesData, TenantId, TimeRange};

use crate::util::{BASE, runtime, tenant};

const MINUTE: i64 = 60_000;

/// Small row groups and one device bucket, so that pruning inside a file shows.
fn open(rt: &tokio::runtime::Runtime, dir: &std::path::Path) -> ColdTier {
    let config =
        ColdTierConfig { enabled: true, device_buckets: 1, row_group_rows: 1_000, ..ColdTierConfig::default() };
    rt.block_on(ColdTier::open(&config, dir)).unwrap()
}

/// A series of the soak's shape: `sensors_<field>{device, farm, kind}`.
fn iot(t: &TenantId, field: &str, device: u32, samples: Vec<Sample>) -> SeriesSamples {
    let (dev, farm) = (format!("dev-{device:04}"), format!("farm-{:02}", device / 5));
    let labels = Labels::from_pairs([
        ("__name__", format!("sensors_{field}").as_str()),
        ("device", dev.as_str()),
        ("farm", farm.as_str()),
        ("kind", ["soil", "air"][device as usize % 2]),
    ]);
    SeriesSamples {
        series_id: strata_schemas::series_id(t, &labels),
        device_hash: strata_schemas::device_hash_of(t, &dev),
        labels,
        samples,
    }
}

/// Commits `data` as one bucket's samples; records `recorded` of its series
/// in the series table first (as the compactor does before a roll).
fn roll(rt: &tokio::runtime::Runtime, cold: &ColdTier, t: &TenantId, data: &[SeriesSamples], recorded: &[bool]) {
    let b = data.iter().flat_map(|s| s.samples.first()).map(|s| s.ts).min().unwrap_or(BASE);
    let source = CommitSource { source: format!("hot:{t}:{b}"), segments: String::new() };
    let entries: Vec<SeriesEntry> = data
        .iter()
        .zip(recorded)
        .filter(|(_, r)| **r)
        .map(|(s, _)| SeriesEntry { labels: s.labels.clone(), series_id: s.series_id, device_hash: s.device_hash })
        .collect();
    if !entries.is_empty() {
        let view = cold.series_view();
        let written =
            rt.block_on(view.write_series_files(t, &entries, &file_prefix(&format!("series:{t}:{b}")))).unwrap();
        rt.block_on(view.commit_series_files(t, written, &source.source)).unwrap();
    }
    rt.block_on(cold.append(t, data, &source)).unwrap();
}

fn read(
    rt: &tokio::runtime::Runtime,
    cold: &ColdTier,
    t: &TenantId,
    m: &[Matcher],
    r: TimeRange,
    path: ReadPath,
) -> (Vec<SeriesData>, ReadStats) {
    rt.block_on(cold.select_via(t, m, r, path)).unwrap()
}

/// 60 devices × 4 fields × 10 minutes at 1 sample/s in one file of ~144
/// row groups; a one-device query and a one-farm query (5 devices, a
/// matcher the scan cannot push down by itself) read a small part of it.
#[test]
fn selective_reads_touch_only_their_series_rows() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let cold = open(&rt, dir.path());
    let t = tenant("soak");
    let data: Vec<SeriesSamples> = (0..60)
        .flat_map(|d| {
            ["temp", "wind", "ph", "rssi"].map(|f| {
                iot(&t, f, d, (0..600).map(|i| Sample::new(BASE + i * 1000, f64::from(d) + i as f64)).collect())
            })
        })
        .collect();
    roll(&rt, &cold, &t, &data, &vec![true; data.len()]);
    let range = TimeRange { start: BASE, end: BASE + 10 * MINUTE };

    // One device: the pushed-down device hash already selects its series
    // (no id filter, no census). One farm: 5 of the metric's 60 series, by
    // a matcher only the series table resolves: their ids are pushed down.
    for (what, matchers, series, id_filter) in [
        ("one device", vec![Matcher::equal("__name__", "sensors_temp"), Matcher::equal("device", "dev-0042")], 1, None),
        ("one farm", vec![Matcher::equal("__name__", "sensors_wind"), Matcher::equal("farm", "farm-07")], 5, Some(5)),
    ] {
        let (want, full) = read(&rt, &cold, &t, &matchers, range, ReadPath::Labels);
        let (got, pruned) = read(&rt, &cold, &t, &matchers, range, ReadPath::Indexed);
        assert_eq!(got, want, "{what}: the indexed read answers as the labels read");
        assert_eq!(got.len(), series, "{what}");
        assert_eq!(pruned.path, ReadPath::Indexed, "{what}");
        assert_eq!(pruned.id_filter, id_filter, "{what}");
        assert_eq!(full.path, ReadPath::Labels);
        // The data scan returns the matching rows only (600 per series),
        // without their label maps; the labels read returns and groups
        // every row its pushed-down predicate lets through, label map and all.
        eprintln!("{what}: indexed {pruned:?}\n{what}: labels  {full:?}");
        assert_eq!(pruned.rows, (series * 600) as u64, "{what}: {pruned:?}");
        assert!(pruned.census_rows <= full.rows, "{what}: {pruned:?} vs {full:?}");
        if what == "one farm" {
            assert_eq!(full.rows, 60 * 600, "{what}: the whole metric: {full:?}");
        }
    }
}

/// A series the series table lacks (written before series tables existed)
/// makes the read fall back to the labels path, which finds it.
#[test]
fn unrecorded_series_fall_back_to_the_labels_read() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let cold = open(&rt, dir.path());
    let t = tenant("old");
    let data: Vec<SeriesSamples> =
        (0..10).map(|d| iot(&t, "temp", d, vec![Sample::new(BASE + i64::from(d), 1.0)])).collect();
    let recorded: Vec<bool> = (0..10).map(|d| d != 3).collect();
    roll(&rt, &cold, &t, &data, &recorded);
    // dev-0003 is in farm-00 with dev-0000..0004: the pushed id filter would drop it.
    let m = [Matcher::equal("__name__", "sensors_temp"), Matcher::equal("farm", "farm-00")];
    let (got, stats) = read(&rt, &cold, &t, &m, TimeRange::ALL, ReadPath::Indexed);
    assert_eq!(stats.path, ReadPath::Labels, "{stats:?}");
    assert_eq!(got.len(), 5);
    assert!(got.iter().any(|s| s.labels.get("device") == Some("dev-0003")));
    // Every series recorded but one of another farm: the unknown id is met
    // by the census or the data scan, and the answer is the same.
    let m = [Matcher::equal("__name__", "sensors_temp"), Matcher::equal("farm", "farm-01")];
    let (got, _) = read(&rt, &cold, &t, &m, TimeRange::ALL, ReadPath::Indexed);
    let (want, _) = read(&rt, &cold, &t, &m, TimeRange::ALL, ReadPath::Labels);
    assert_eq!(got, want);
    assert_eq!(got.len(), 5);
}

fn matcher() -> impl Strategy<Value = Matcher> {
    prop_oneof![
        (0u32..3).prop_map(|f| Matcher::equal("__name__", format!("sensors_{}", ["temp", "wind", "ph"][f as usize]))),
        (0u32..12).prop_map(|d| Matcher::equal("device", format!("dev-{d:04}"))),
        (0u32..3).prop_map(|f| Matcher::equal("farm", format!("farm-{f:02}"))),
        (0u32..3).prop_map(|f| Matcher::not_equal("farm", format!("farm-{f:02}"))),
        Just(Matcher::regex("device", "dev-000[0-5]").unwrap()),
        Just(Matcher::not_regex("kind", "soil").unwrap()),
        Just(Matcher::equal("kind", "air")),
        Just(Matcher::equal("missing", "")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random series over two buckets, some not recorded in the series
    /// table, random matchers and range: the indexed read answers exactly
    /// as the labels read.
    #[test]
    fn indexed_read_equals_labels_read(
        series in prop::collection::vec((0u32..12, 0usize..3, prop::collection::vec((0i64..120, -1e3f64..1e3), 1..20), any::<bool>()), 1..30),
        all_recorded in any::<bool>(),
        queries in prop::collection::vec((prop::collection::vec(matcher(), 1..3), 0i64..120, 0i64..120), 1..6),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime();
        let cold = open(&rt, dir.path());
        let t = tenant("prop");
        let mut data: Vec<SeriesSamples> = Vec::new();
        let mut recorded = Vec::new();
        for (d, f, samples, rec) in series {
            let s: Vec<Sample> = samples.into_iter().map(|(i, v)| Sample::new(BASE + i * 1000, v)).collect();
            data.push(iot(&t, ["temp", "wind", "ph"][f], d, s));
            recorded.push(all_recorded || rec);
        }
        for bucket in 0..2 {
            let lo = BASE + bucket * MINUTE;
            let part: Vec<SeriesSamples> = data
                .iter()
                .map(|s| SeriesSamples {
                    samples: s.samples.iter().copied().filter(|x| x.ts >= lo && x.ts < lo + MINUTE).collect(),
                    ..s.clone()
                })
                .collect();
            let keep: Vec<bool> = part.iter().map(|s| !s.samples.is_empty()).collect();
            let rec: Vec<bool> = recorded.iter().zip(&keep).filter(|(_, k)| **k).map(|(r, _)| *r).collect();
            let part: Vec<SeriesSamples> = part.into_iter().filter(|s| !s.samples.is_empty()).collect();
            if !part.is_empty() {
                roll(&rt, &cold, &t, &part, &rec);
            }
        }
        for (m, a, b) in queries {
            let r = TimeRange { start: BASE + a.min(b) * 1000, end: BASE + a.max(b) * 1000 };
            let (got, stats) = read(&rt, &cold, &t, &m, r, ReadPath::Indexed);
            let (want, _) = read(&rt, &cold, &t, &m, r, ReadPath::Labels);
            prop_assert_eq!(&got, &want, "matchers {:?}, range {:?}, {:?}", m, r, stats);
            if all_recorded {
                prop_assert_eq!(stats.path, ReadPath::Indexed);
            }
        }
    }
}

/// A `sensors_<metric>{device, sel}` series: `sel` picks it into a query.
fn picked(t: &TenantId, metric: &str, device: u32, sel: bool, samples: Vec<Sample>) -> SeriesSamples {
    let dev = format!("dev-{device:04}");
    let labels = Labels::from_pairs([
        ("__name__", format!("sensors_{metric}").as_str()),
        ("device", dev.as_str()),
        ("sel", if sel { "y" } else { "n" }),
    ]);
    SeriesSamples {
        series_id: strata_schemas::series_id(t, &labels),
        device_hash: strata_schemas::device_hash_of(t, &dev),
        labels,
        samples,
    }
}

/// 200 of a metric's 1,000 series (above the 32 ids an `IN` filter took):
/// the read decodes `ts` and `value` of those 200 series' rows only, and
/// `series_id` of the metric's rows (plus at most one row group at the
/// metric's edge); the labels read decodes every row of the metric.
#[test]
fn two_hundred_of_a_thousand_series_decode_only_their_rows() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let cold = open(&rt, dir.path());
    let t = tenant("many");
    let data: Vec<SeriesSamples> = (0..1000)
        .flat_map(|d| {
            ["wind", "temp"].map(|f| {
                iot(&t, f, d, (0..60).map(|i| Sample::new(BASE + i * 1000, f64::from(d) * 0.5 + i as f64)).collect())
            })
        })
        .collect();
    roll(&rt, &cold, &t, &data, &vec![true; data.len()]);
    // farm-00 … farm-39: 40 farms of 5 devices.
    let m = [Matcher::equal("__name__", "sensors_wind"), Matcher::regex("farm", "farm-[0-3][0-9]").unwrap()];
    for (range, rows_in_range) in [
        (TimeRange { start: BASE, end: BASE + MINUTE }, 60),
        (TimeRange { start: BASE + 10_000, end: BASE + 39_000 }, 30),
    ] {
        let (want, full) = read(&rt, &cold, &t, &m, range, ReadPath::Labels);
        let (got, stats) = read(&rt, &cold, &t, &m, range, ReadPath::Indexed);
        eprintln!("indexed {stats:?}\nlabels  {full:?}");
        assert_eq!(got, want);
        assert_eq!(got.len(), 200);
        assert!(got.iter().all(|s| s.samples.len() == rows_in_range));
        assert_eq!(stats.path, ReadPath::Indexed);
        assert_eq!(stats.id_filter, Some(200));
        // Every series spans the minute, so every `ts` page meets either range.
        assert_eq!(stats.rows, 200 * 60, "{stats:?}");
        assert!(stats.census_rows >= 1000 * 60 && stats.census_rows <= 1000 * 60 + 1000, "{stats:?}");
        assert_eq!(full.rows, 1000 * rows_in_range as u64, "{full:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, failure_persistence: None, ..ProptestConfig::default() })]

    /// N picked series among M of a metric (N and M from a few to ~120,
    /// around and above 32), beside another metric's series, over three
    /// rolls; some series unrecorded; ranges cutting the files: the
    /// selected read answers as the labels read (a full read filtered),
    /// and stays indexed while every series of the metric is recorded.
    #[test]
    fn selected_reads_of_any_number_of_series_equal_the_labels_read(
        devices in 1u32..120,
        pick in 0.0f64..1.0,
        seed in any::<u64>(),
        unrecorded in prop::sample::select(vec![0u32, 1, 2]),
        ranges in prop::collection::vec((0i64..190, 0i64..190), 1..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime();
        let cold = open(&rt, dir.path());
        let t = tenant("picked");
        // A small deterministic generator from `seed` (proptest shrinks the seed).
        let mut x = seed | 1;
        let mut next = move || { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x };
        // 1: another metric's series unrecorded; 2: also some of this metric's
        // (a series is recorded in every roll or in none).
        let recorded: Vec<[bool; 2]> = (0..devices)
            .map(|_| match unrecorded {
                1 => [true, next() % 4 != 0],
                2 => [next() % 8 != 0, next() % 8 != 0],
                _ => [true, true],
            })
            .collect();
        let all_wind_recorded = recorded.iter().all(|r| r[0]);
        for bucket in 0..3i64 {
            let lo = BASE + bucket * MINUTE;
            let mut part = Vec::new();
            let mut rec = Vec::new();
            for d in 0..devices {
                let sel = (f64::from(d) * 0.618_034 + pick).fract() < pick;
                for (k, metric) in ["wind", "temp"].into_iter().enumerate() {
                    let n = (next() % 40) as i64;
                    let samples: Vec<Sample> =
                        (0..n).map(|i| Sample::new(lo + i * 1500, (next() % 1000) as f64 / 8.0)).collect();
                    if samples.is_empty() {
                        continue;
                    }
                    part.push(picked(&t, metric, d, sel, samples));
                    rec.push(recorded[d as usize][k]);
                }
            }
            if !part.is_empty() {
                roll(&rt, &cold, &t, &part, &rec);
            }
        }
        let m = [Matcher::equal("__name__", "sensors_wind"), Matcher::equal("sel", "y")];
        for (a, b) in ranges {
            let r = TimeRange { start: BASE + a.min(b) * 1000, end: BASE + a.max(b) * 1000 };
            let (got, stats) = read(&rt, &cold, &t, &m, r, ReadPath::Indexed);
            let (want, _) = read(&rt, &cold, &t, &m, r, ReadPath::Labels);
            prop_assert_eq!(&got, &want, "range {:?}, {:?}", r, stats);
            if all_wind_recorded {
                prop_assert_eq!(stats.path, ReadPath::Indexed, "{:?}", stats);
            }
        }
    }
}
