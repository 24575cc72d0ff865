//! Hot-store postings: resolving label matchers (equality, regex, negative,
//! empty-matching) over 1M series through croaring postings, returning the
//! matching series' labels (`ReadStore::series` over the whole range, which
//! never touches samples).
//!
//! Data: 100,000 devices × 10 fields = 1,000,000 series of one tenant with
//! gen_iot labels (`device`, `farm` (50 devices each), `kind`, `region`), one
//! sample each, held in the memtable.
//!
//! Also the cardinality statistics of `/api/v1/status/tsdb` over the same
//! 1M series (`hot_store_cardinality_1M`).
//!
//! Run: `cargo bench -p strata-benches --bench hot_store_postings`
#![allow(clippy::disallowed_methods)] // test code owns its runtimes and threads (clippy.toml)

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use strata_hot_store::{CardinalityRequest, HotStore, HotStoreConfig};
use strata_schemas::{BatchSeries, Labels, Matcher, ReadStore, Sample, TenantId, TimeRange, WriteBatch};

const DEVICES: usize = 100_000;
const FIELDS: [&str; 10] = ["ph", "moisture", "temp", "humidity", "nitrogen", "ec", "battery", "rssi", "light", "wind"];

fn store(dir: &std::path::Path) -> HotStore {
    let cfg = HotStoreConfig { max_memtable_samples: 10_000_000, ..HotStoreConfig::default() };
    let store = HotStore::open(dir, cfg).unwrap();
    let tenant = TenantId::new("acme").unwrap();
    let t0 = std::time::Instant::now();
    for d in 0..DEVICES {
        let series = FIELDS
            .iter()
            .map(|f| {
                let labels = Labels::from_pairs([
                    ("__name__", format!("sensors_{f}")),
                    ("device", format!("dev-{d:07}")),
                    ("farm", format!("farm-{:04}", d / 50)),
                    ("kind", ["soil", "weather", "tank", "drone"][d % 4].to_owned()),
                    ("region", ["eu", "us", "br"][d % 3].to_owned()),
                ]);
                let id = strata_schemas::series_id(&tenant, &labels);
                BatchSeries {
                    id,
                    device_hash: d as u64,
                    labels,
                    samples: vec![Sample::new(1_700_000_000_000, 1.0)].into(),
                }
            })
            .collect();
        store.apply(0, d as u64, &WriteBatch { tenant: tenant.clone(), series, origin: None }).unwrap();
    }
    println!("indexed {} series in {:.2?}", store.stats().series, t0.elapsed());
    store
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let tenant = TenantId::new("acme").unwrap();
    let cases: Vec<(&str, Vec<Matcher>)> = vec![
        ("one_device_eq", vec![Matcher::equal("device", "dev-0012345")]),
        ("one_device_regex_alternation", vec![Matcher::regex("device", "dev-0012345|dev-0054321").unwrap()]),
        ("device_regex_prefix_10", vec![Matcher::regex("device", "dev-001234.").unwrap()]),
        (
            "metric_and_farm_regex",
            vec![Matcher::equal("__name__", "sensors_temp"), Matcher::regex("farm", "farm-000[1-3]").unwrap()],
        ),
        (
            "farm_and_negative_kind",
            vec![Matcher::equal("farm", "farm-0042"), Matcher::not_regex("kind", "soil|tank").unwrap()],
        ),
        ("device_and_missing_label", vec![Matcher::equal("device", "dev-0000007"), Matcher::equal("site", "")]),
    ];
    let mut g = c.benchmark_group("hot_store_postings_1M");
    for (name, m) in &cases {
        let n = store.series(&tenant, m, TimeRange::ALL).unwrap().len();
        println!("{name}: {n} series");
        g.bench_function(*name, |b| b.iter(|| store.series(&tenant, black_box(m), TimeRange::ALL).unwrap().len()));
    }
    g.bench_function("select_one_device", |b| {
        let m = vec![Matcher::equal("device", "dev-0012345")];
        b.iter(|| store.select(&tenant, black_box(&m), TimeRange::ALL).unwrap().len())
    });
    g.finish();
    // `/api/v1/status/tsdb`'s work (hot_store::cardinality): the whole
    // tenant, one metric with a focus label, and one day.
    let mut g = c.benchmark_group("hot_store_cardinality_1M");
    let cases = [
        ("all_series_top10", CardinalityRequest { top_n: 10, ..CardinalityRequest::default() }),
        (
            "one_metric_focus_farm",
            CardinalityRequest {
                matchers: vec![Matcher::equal("__name__", "sensors_temp")],
                focus_label: Some("farm".into()),
                top_n: 10,
                ..CardinalityRequest::default()
            },
        ),
        (
            "one_day_top10",
            CardinalityRequest { range: Some((1_699_920_000_000, 1_700_006_399_999)), top_n: 10, ..Default::default() },
        ),
    ];
    for (name, req) in &cases {
        println!("{name}: {} series", store.cardinality(&tenant, req).total_series);
        g.bench_function(*name, |b| b.iter(|| store.cardinality(&tenant, black_box(req)).total_series));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
