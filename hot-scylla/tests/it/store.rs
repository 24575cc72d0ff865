//! The tier against kassandra: writes read back through `ReadStore`, paging,
//! series-id collisions, exact float bits, offsets, a refused keyspace.

use std::time::Duration;

use strata_hot_scylla::{Error, ScyllaHot};
use strata_schemas::{
    BatchSeries, ErrorKind, Labels, Matcher, ReadStore, Sample, SeriesId, TenantId, TimeRange, WriteBatch,
};

use crate::kassandra::Kassandra;

const HOUR: Duration = Duration::from_secs(3600);
const H: i64 = 3_600_000;

fn tenant(t: &str) -> TenantId {
    TenantId::new(t).unwrap()
}

fn series(t: &str, labels: Labels, samples: &[(i64, f64)]) -> BatchSeries {
    let id = strata_schemas::series_id(&tenant(t), &labels);
    BatchSeries {
        id,
        device_hash: strata_schemas::device_hash(&tenant(t), &labels, "device", id),
        labels,
        samples: samples.iter().map(|&(ts, v)| Sample::new(ts, v)).collect(),
    }
}

fn batch(t: &str, series: Vec<BatchSeries>) -> WriteBatch {
    WriteBatch { tenant: tenant(t), series, origin: None }
}

fn temp(device: &str, farm: &str) -> Labels {
    Labels::from_pairs([("__name__", "temp"), ("device", device), ("farm", farm)])
}

fn points(store: &ScyllaHot, t: &str, m: &[Matcher], range: TimeRange) -> Vec<(String, Vec<(i64, f64)>)> {
    store
        .select(&tenant(t), m, range)
        .unwrap()
        .into_iter()
        .map(|s| (s.labels.to_string(), s.samples.iter().map(|p| (p.ts, p.value)).collect()))
        .collect()
}

#[test]
fn writes_are_read_back_through_the_read_trait_by_matchers_and_range() {
    let k = Kassandra::start();
    let store = k.connect("rw", HOUR);
    // Three buckets, two tenants, a later write of one timestamp.
    store
        .apply(
            0,
            0,
            &batch(
                "acme",
                vec![
                    series("acme", temp("d1", "north"), &[(H - 1, 1.0), (H, 2.0), (2 * H + 5, 3.0)]),
                    series("acme", temp("d2", "south"), &[(10, 4.0)]),
                ],
            ),
        )
        .unwrap();
    store.apply(1, 0, &batch("beta", vec![series("beta", temp("d1", "north"), &[(10, 9.0)])])).unwrap();
    store.apply(0, 1, &batch("acme", vec![series("acme", temp("d1", "north"), &[(H, 2.5)])])).unwrap();

    let all = TimeRange::ALL;
    let d1 = temp("d1", "north").to_string();
    let d2 = temp("d2", "south").to_string();
    assert_eq!(
        points(&store, "acme", &[], all),
        vec![(d1.clone(), vec![(H - 1, 1.0), (H, 2.5), (2 * H + 5, 3.0)]), (d2.clone(), vec![(10, 4.0)])]
    );
    // The range cuts inside buckets; equality, regex and negative matchers.
    assert_eq!(
        points(&store, "acme", &[Matcher::equal("farm", "north")], TimeRange::new(H, 2 * H + 5)),
        vec![(d1.clone(), vec![(H, 2.5), (2 * H + 5, 3.0)])]
    );
    assert_eq!(
        points(&store, "acme", &[Matcher::regex("device", "d[2-9]").unwrap()], all),
        vec![(d2.clone(), vec![(10, 4.0)])]
    );
    assert_eq!(points(&store, "acme", &[Matcher::not_equal("farm", "north")], all).len(), 1);
    assert_eq!(points(&store, "acme", &[Matcher::equal("farm", "east")], all), vec![]);
    // Tenants are apart.
    assert_eq!(points(&store, "beta", &[], all), vec![(d1.clone(), vec![(10, 9.0)])]);
    // series / label names / values, exact to the range: d2's only sample is at 10.
    let t = tenant("acme");
    assert_eq!(store.series(&t, &[], TimeRange::new(11, H)).unwrap(), vec![temp("d1", "north")]);
    assert_eq!(store.series(&t, &[], all).unwrap().len(), 2);
    assert_eq!(store.label_names(&t, &[], all).unwrap(), vec!["__name__", "device", "farm"]);
    assert_eq!(store.label_values(&t, "farm", &[], all).unwrap(), vec!["north", "south"]);
    assert_eq!(store.label_values(&t, "farm", &[], TimeRange::new(2 * H, 3 * H)).unwrap(), vec!["north"]);

    // Another connection (another node of the region) reads the same.
    let other = k.connect("rw", HOUR);
    assert_eq!(points(&other, "acme", &[Matcher::equal("device", "d2")], all), vec![(d2, vec![(10, 4.0)])]);
}

#[test]
fn a_partition_of_many_rows_is_read_page_by_page() {
    let k = Kassandra::start();
    let store = k.connect("paging", HOUR);
    // 12,000 samples of one series in one bucket: more than two pages.
    let samples: Vec<(i64, f64)> = (0..12_000).map(|i| (i, i as f64)).collect();
    store.apply(0, 0, &batch("acme", vec![series("acme", temp("d1", "north"), &samples)])).unwrap();
    let got = store.select(&tenant("acme"), &[], TimeRange::ALL).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].samples.len(), 12_000);
    assert!(got[0].samples.iter().enumerate().all(|(i, s)| s.ts == i as i64 && s.value == i as f64));
}

#[test]
fn two_label_sets_with_one_series_id_stay_apart_and_float_bits_are_kept() {
    let k = Kassandra::start();
    let store = k.connect("collide", HOUR);
    let stale = f64::from_bits(strata_schemas::labels::STALE_NAN_BITS);
    let mut a = series("acme", temp("d1", "north"), &[(5, stale), (6, f64::NAN), (7, -0.0)]);
    let mut b = series("acme", temp("d2", "north"), &[(5, 1.0)]);
    (a.id, b.id) = (SeriesId(42), SeriesId(42));
    b.device_hash = a.device_hash;
    store.apply(0, 0, &batch("acme", vec![a, b])).unwrap();
    let got = store.select(&tenant("acme"), &[], TimeRange::ALL).unwrap();
    assert_eq!(got.len(), 2, "{got:?}");
    let bits: Vec<u64> = got[0].samples.iter().map(|s| s.value.to_bits()).collect();
    assert_eq!(bits, vec![strata_schemas::labels::STALE_NAN_BITS, f64::NAN.to_bits(), (-0.0f64).to_bits()]);
    assert_eq!(got[1].samples, vec![Sample::new(5, 1.0)]);
}

#[test]
fn offsets_are_those_the_cluster_acknowledged_and_outlive_the_connection() {
    let k = Kassandra::start();
    let store = k.connect("offsets", HOUR);
    let b = batch("acme", vec![series("acme", temp("d1", "north"), &[(1, 1.0)])]);
    store.apply(3, 7, &b).unwrap();
    store.apply(3, 8, &b).unwrap();
    store.apply(5, 0, &b).unwrap();
    assert_eq!(store.replay_from(3).unwrap(), 9);
    assert_eq!(store.stored_offsets().unwrap(), Default::default(), "nothing recorded before a flush");
    let flushed = store.flush().unwrap();
    assert_eq!(flushed, [(3, 9), (5, 1)].into());
    drop(store);
    let again = k.connect("offsets", HOUR);
    assert_eq!(
        (again.replay_from(3).unwrap(), again.replay_from(5).unwrap(), again.replay_from(1).unwrap()),
        (9, 1, 0)
    );

    // The cluster gone: the write fails as retryable and its offset does not count.
    drop(k);
    let e = again.apply(3, 9, &b).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert_eq!(again.applied_offsets().get(&3), None);
}

#[test]
fn a_keyspace_of_another_bucket_width_is_refused() {
    let k = Kassandra::start();
    drop(k.connect("width", HOUR));
    let e = ScyllaHot::connect(k.config("width", 2 * HOUR), "r", Default::default()).unwrap_err();
    assert!(matches!(e, Error::Incompatible { .. }), "{e}");
    assert!(e.to_string().contains("bucket_ms 3600000"), "{e}");
}

#[test]
fn sealed_buckets_are_listed_per_tenant_and_read_back_whole_for_the_roll() {
    let k = Kassandra::start();
    let store = k.connect("roll", HOUR);
    let d1 = series(
        "acme",
        temp("d1", "north"),
        &[(2 * H + 5, 3.0), (H + 1, 1.0), (H + 2, f64::from_bits(0x7ff8_0000_0000_0001))],
    );
    let d2 = series("acme", temp("d2", "south"), &[(H + 7, 4.0)]);
    store.apply(0, 0, &batch("acme", vec![d1.clone(), d2.clone()])).unwrap();
    store.apply(1, 0, &batch("beta", vec![series("beta", temp("d1", "north"), &[(10, 9.0)])])).unwrap();
    // A later write of one timestamp wins.
    store.apply(0, 1, &batch("acme", vec![series("acme", temp("d1", "north"), &[(H + 1, 1.5)])])).unwrap();

    let mut tenants: Vec<String> = store.tenants().unwrap().iter().map(|t| t.as_str().to_owned()).collect();
    tenants.sort();
    assert_eq!(tenants, ["acme", "beta"]);
    assert_eq!(store.tenant_buckets(&tenant("acme")).unwrap(), vec![H, 2 * H]);
    assert_eq!(store.tenant_buckets(&tenant("beta")).unwrap(), vec![0]);
    assert_eq!(store.bucket_ms(), H);

    let got = store.read_bucket(&tenant("acme"), H).unwrap();
    /// (labels, series id, device hash, (ts, value bits)).
    type Row = (String, u64, u64, Vec<(i64, u64)>);
    let view: Vec<Row> = got
        .iter()
        .map(|s| {
            let samples = s.samples.iter().map(|p| (p.ts, p.value.to_bits())).collect();
            (s.labels.to_string(), s.series_id, s.device_hash, samples)
        })
        .collect();
    assert_eq!(
        view,
        vec![
            (
                temp("d1", "north").to_string(),
                d1.id.0,
                d1.device_hash,
                vec![(H + 1, 1.5f64.to_bits()), (H + 2, 0x7ff8_0000_0000_0001)]
            ),
            (temp("d2", "south").to_string(), d2.id.0, d2.device_hash, vec![(H + 7, 4.0f64.to_bits())]),
        ],
        "sorted by labels, samples sorted, the later write of a timestamp, NaN payload bits kept"
    );
    assert_eq!(store.read_bucket(&tenant("acme"), 2 * H).unwrap().len(), 1);
    assert!(store.read_bucket(&tenant("acme"), 5 * H).unwrap().is_empty(), "a bucket without rows");
}
