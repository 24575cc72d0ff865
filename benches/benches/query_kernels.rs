//! Fleet-wide PromQL queries through the engine over a flushed hot store:
//! the in-process cost of peer-bench's fleet queries (no HTTP, no JSON), so
//! a change to the selector, aggregation or block-read path shows up here
//! before a peer-bench run.
//!
//! Data: peer-bench's 100k-series shape — 10,000 devices × 10 fields
//! (`sensors_<field>` with `device`, `farm` (20 devices each), `kind`,
//! `region` labels), 60 samples 30 s apart, jittered values, flushed to a
//! segment. Queries run at the last sample + 7.5 s; range queries cover the
//! 30 minutes at a 60 s step, like peer-bench.
//!
//! Run: `cargo bench -p strata-benches --bench query_kernels`; with
//! `STRATA_READ_THREADS=0` the hot store decodes every query on the calling
//! thread (default: the read pool's workers split a read of 1,024 series
//! or more), so the two runs compare one core with all of them.
#![allow(clippy::disallowed_methods)] // test code owns its runtimes and threads (clippy.toml)

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::Arc;
use strata_hot_store::{HotStore, HotStoreConfig};
use strata_query::{Engine, QueryConfig};
use strata_schemas::{BatchSeries, Labels, ReadStore, Sample, TenantId, WriteBatch};

const DEVICES: usize = 10_000;
const POINTS: i64 = 60;
const INTERVAL_MS: i64 = 30_000;
const T0: i64 = 1_700_000_000_000;
const FIELDS: [&str; 10] = ["ph", "moisture", "temp", "humidity", "nitrogen", "ec", "battery", "rssi", "light", "wind"];

fn store(dir: &std::path::Path) -> HotStore {
    let cfg = HotStoreConfig { max_memtable_samples: 100_000_000, ..HotStoreConfig::default() };
    let store = HotStore::open(dir, cfg).unwrap();
    let tenant = TenantId::new("acme").unwrap();
    for d in 0..DEVICES {
        let series = FIELDS
            .iter()
            .enumerate()
            .map(|(fi, f)| {
                let labels = Labels::from_pairs([
                    ("__name__", format!("sensors_{f}")),
                    ("device", format!("dev-{d:06}")),
                    ("farm", format!("farm-{:04}", d / 20)),
                    ("kind", ["soil", "weather", "tank", "drone"][d % 4].to_owned()),
                    ("region", ["eu", "us", "br"][d % 3].to_owned()),
                ]);
                let id = strata_schemas::series_id(&tenant, &labels);
                let samples: Vec<Sample> = (0..POINTS)
                    .map(|i| {
                        let v = ((d * 31 + fi * 7) as i64 * 13 + i * 17) % 1000;
                        Sample::new(T0 + i * INTERVAL_MS, v as f64 / 10.0)
                    })
                    .collect();
                BatchSeries { id, device_hash: d as u64, labels, samples: samples.into() }
            })
            .collect();
        store.apply(0, d as u64, &WriteBatch { tenant: tenant.clone(), series, origin: None }).unwrap();
    }
    store.flush().unwrap();
    store
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ReadStore> = Arc::new(store(dir.path()));
    let engine = Engine::new(store, QueryConfig::default());
    let tenant = TenantId::new("acme").unwrap();
    let end = T0 + (POINTS - 1) * INTERVAL_MS + 7_500;
    let start = end - POINTS * INTERVAL_MS;
    let instant = [
        ("count_all", "count(sensors_temp)"),
        ("avg_by_farm", "avg by (farm) (avg_over_time(sensors_moisture[10m]))"),
        ("topk_max_1h", "topk(10, max_over_time(sensors_temp[1h]))"),
        ("sum_without_device", "sum without (device, kind, region) (last_over_time(sensors_light[5m]))"),
        ("quantile_by_region", "quantile by (region) (0.9, last_over_time(sensors_moisture[5m]))"),
        ("binop_all_avg", "avg(sensors_temp - on(device) sensors_humidity)"),
    ];
    let range = [
        ("max_by_region", "max by (region) (sensors_temp)"),
        ("count_by_kind", "count by (kind) (sensors_battery)"),
        ("negative_matchers", "count by (kind) (sensors_battery{kind!=\"drone\", region!~\"br|us\"})"),
        // Range functions streamed into the aggregation, at every step.
        ("avg_over_time_by_farm_range", "avg by (farm) (avg_over_time(sensors_moisture[5m]))"),
        ("sum_rate_by_region_range", "sum by (region) (rate(sensors_temp[5m]))"),
    ];
    let mut g = c.benchmark_group("query_fleet_100k_series");
    g.sample_size(20);
    for (name, q) in instant {
        g.bench_function(name, |b| b.iter(|| engine.query_instant(&tenant, black_box(q), end).unwrap()));
    }
    for (name, q) in range {
        g.bench_function(name, |b| b.iter(|| engine.query_range(&tenant, black_box(q), start, end, 60_000).unwrap()));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
