//! The ScyllaDB hot tier (`strata-hot-scylla`) beside the embedded hot
//! store, on the same data: ingest and select.
//!
//! Data: `DEVICES` devices (default 100) × 10 fields = 1,000 series of one
//! tenant, `MINUTES` samples each (default 60, one per minute), written as
//! `MINUTES` log records of one sample per series (one per minute: a
//! gateway's batch) through each store's `apply`. Queries, `RUNS` times each
//! (default 5), over the whole span: one series
//! (`field3{device="d42"}`), and every series (what a `sum by` reads).
//!
//! The tier needs a CQL v4 server: by default kassandra, the in-memory
//! single-node server the tier's tests use (`strata_test_support::kassandra`:
//! built by `scripts/install-test-deps.sh` into `~/.cache/strata-tools`, or
//! `$STRATA_KASSANDRA_BIN`); with `SCYLLA_NODES` (comma-separated
//! `host:port` contact points), a real ScyllaDB cluster instead (keyspace
//! `strata_bench_<pid>`, replication factor 1, consistency ONE). Kassandra is
//! a stand-in with its own costs, not ScyllaDB's: its figures compare the
//! tier's client work and round trips, not a cluster's speed. With neither
//! (no `SCYLLA_NODES`, no kassandra binary) it measures the embedded store
//! only, says why, and exits 0. On a real cluster the keyspace is left
//! behind (drop it by hand).
//!
//! Prints per store: ingest samples/s, and the median select times (each
//! run with the load average).
//!
//! Run (release; the host is shared: note the load):
//! `CARGO_TARGET_DIR=/root/.cache/strata-target-q cargo bench -p strata-benches --bench hot_scylla_tier`
//! with `DEVICES` (100), `MINUTES` (60), `RUNS` (5), `SCYLLA_NODES`
//! (default: start kassandra) in the environment.
//! Replaces the ignored test `figures` of `hot-scylla/tests/it/figures.rs`
//! (issue 21 point 6).
#![allow(clippy::disallowed_methods)] // bench code owns its threads (clippy.toml)
#![allow(clippy::print_stdout, clippy::print_stderr)] // a bench prints its figures

use std::time::{Duration, Instant};

use strata_benches::{env_or, load_average, median};
use strata_hot_scylla::{ConsistencyLevel, HotTtls, ScyllaConfig, ScyllaHot};
use strata_hot_store::{HotStore, HotStoreConfig};
use strata_schemas::{BatchSeries, Labels, Matcher, ReadStore, Sample, TenantId, TimeRange, WriteBatch};

const FIELDS: usize = 10;
const T0: i64 = 1_764_000_000_000;

/// The data's shape.
#[derive(Debug, Clone, Copy)]
struct Shape {
    devices: usize,
    minutes: i64,
    runs: usize,
}

/// One log record a minute, one sample per series.
fn records(shape: Shape) -> Vec<WriteBatch> {
    let tenant = TenantId::new("acme").unwrap();
    (0..shape.minutes)
        .map(|m| {
            let series = (0..shape.devices * FIELDS)
                .map(|i| {
                    let labels = Labels::from_pairs([
                        ("__name__", format!("field{}", i % FIELDS)),
                        ("device", format!("d{}", i / FIELDS)),
                        ("farm", format!("f{}", i / FIELDS % 7)),
                    ]);
                    let id = strata_schemas::series_id(&tenant, &labels);
                    let device_hash = strata_schemas::device_hash(&tenant, &labels, "device", id);
                    BatchSeries {
                        id,
                        device_hash,
                        labels,
                        samples: [Sample::new(T0 + m * 60_000, (i as i64 * m) as f64)].into_iter().collect(),
                    }
                })
                .collect();
            WriteBatch { tenant: tenant.clone(), series, origin: None }
        })
        .collect()
}

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed())
}

/// Applies the records through `apply`, then times the two selects.
fn measure(name: &str, shape: Shape, store: &dyn ReadStore, apply: &dyn Fn(u64, &WriteBatch)) {
    let recs = records(shape);
    let series = shape.devices * FIELDS;
    let samples = series as f64 * shape.minutes as f64;
    let load = load_average();
    let ((), ingest) = time(|| {
        for (o, r) in recs.iter().enumerate() {
            apply(o as u64, r);
        }
    });
    println!(
        "{name}: ingest {:.0} samples/s ({:.2} s for {samples}), load {load}",
        samples / ingest.as_secs_f64(),
        ingest.as_secs_f64()
    );
    let tenant = TenantId::new("acme").unwrap();
    let range = TimeRange::new(T0, T0 + shape.minutes * 60_000);
    let one = [Matcher::equal("__name__", "field3"), Matcher::equal("device", "d42")];
    let (mut one_ms, mut all_ms) = (Vec::new(), Vec::new());
    for run in 0..shape.runs {
        let load = load_average();
        let (r, d1) = time(|| store.select(&tenant, &one, range).unwrap());
        assert_eq!(r.len(), usize::from(shape.devices > 42));
        let (r, d2) = time(|| store.select(&tenant, &[], range).unwrap());
        assert_eq!(r.len(), series);
        println!(
            "  run {run}: select 1 series {:.2} ms, {series} series × {} samples {:.1} ms, load {load}",
            d1.as_secs_f64() * 1e3,
            shape.minutes,
            d2.as_secs_f64() * 1e3
        );
        one_ms.push(d1.as_secs_f64() * 1e3);
        all_ms.push(d2.as_secs_f64() * 1e3);
    }
    println!(
        "{name}: select 1 series median {:.2} ms; select {series} series × {} samples median {:.1} ms ({} runs)",
        median(&mut one_ms),
        shape.minutes,
        median(&mut all_ms),
        shape.runs
    );
}

/// The tier's configuration for the contact points `nodes`.
fn config(nodes: Vec<String>) -> ScyllaConfig {
    ScyllaConfig {
        nodes,
        keyspace: format!("strata_bench_{}", std::process::id()),
        replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}".to_owned(),
        consistency: ConsistencyLevel::One,
        bucket: Duration::from_secs(7200),
        request_timeout: Duration::from_secs(30),
        log_id: String::new(),
    }
}

fn main() {
    let shape =
        Shape { devices: env_or("DEVICES", 100usize), minutes: env_or("MINUTES", 60i64), runs: env_or("RUNS", 5usize) };
    if !strata_benches::invoked_by_cargo_bench("hot_scylla_tier") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let embedded = HotStore::open(dir.path(), HotStoreConfig::default()).unwrap();
    measure("embedded hot store", shape, &embedded, &|o, r| embedded.apply(0, o, r).unwrap());
    drop(embedded);

    let nodes: Vec<String> = std::env::var("SCYLLA_NODES")
        .map(|v| v.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    let kassandra_bin = strata_test_support::kassandra::binary_path();
    if nodes.is_empty() && !kassandra_bin.is_file() {
        println!(
            "scylla tier: not measured: no ScyllaDB (SCYLLA_NODES is unset) and no kassandra stand-in at {} \
             (`bash scripts/install-test-deps.sh` builds it, or set STRATA_KASSANDRA_BIN)",
            kassandra_bin.display()
        );
        return;
    }
    if nodes.is_empty() {
        println!(
            "scylla tier: SCYLLA_NODES is unset, so no ScyllaDB: the tier runs on kassandra, an in-memory CQL \
             stand-in (its figures are the tier's client work and round trips, not a ScyllaDB cluster's speed)"
        );
    }
    // Killed on drop, after the tier.
    let kassandra = nodes.is_empty().then(strata_test_support::kassandra::Kassandra::start);
    let (name, nodes) = match &kassandra {
        Some(k) => ("scylla tier on kassandra", vec![k.addr().to_owned()]),
        None => ("scylla tier on SCYLLA_NODES", nodes),
    };
    let tier = ScyllaHot::connect(config(nodes), "bench-region", HotTtls::default()).expect("connect");
    measure(name, shape, &tier, &|o, r| tier.apply(0, o, r).unwrap());
}
