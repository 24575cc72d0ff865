//! The write path below HTTP, on one core: what a million samples cost.
//!
//! * `convert`: line protocol → series → per-partition `WriteBatch` bytes
//!   (parse, series id and device hash, labels from the series cache, encoding).
//! * `log_and_hot_store`: the same, then appended to a real `LocalLog`
//!   (group commit, fdatasync) whose sink applies every record to a real
//!   `HotStore` memtable — everything a `POST /api/v2/write` does except HTTP.
//!
//! Data: 1,000 devices × 10 fields shaped like `../shared/peer-bench/gen_iot.py`
//! (one request body = 1,000 lines = 10,000 samples). Throughput is in
//! samples (`Throughput::Elements`); 1 / throughput × 10⁶ is CPU-seconds per
//! million samples on this core.
//!
//! Run: `cargo bench -p strata-benches --bench ingest_path`
#![allow(clippy::disallowed_methods)] // test code owns its runtimes and threads (clippy.toml)

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::Arc;
use strata_benches::iot_line;
use strata_hot_store::{HotStore, HotStoreConfig};
use strata_ingest::convert::{Converter, LabelLimits};
use strata_ingest::series_cache::SeriesCache;
use strata_ingest::{IngestLog, LocalLog, LogConfig, LogRecord, LogSink};
use strata_schemas::TenantId;
use strata_schemas::time::Precision;

const DEVICES: usize = 1000;

fn body(step: usize) -> String {
    let mut out = String::with_capacity(DEVICES * 250);
    for d in 0..DEVICES {
        iot_line(&mut out, d, step, 1_700_000_000_000_000_000 + step as i64 * 10_000_000_000);
    }
    out
}

fn bench(c: &mut Criterion) {
    let tenant = TenantId::new("acme").unwrap();
    let bodies: Vec<String> = (0..16).map(body).collect();
    let samples = (DEVICES * 10) as u64;
    let cache = SeriesCache::new(1 << 20);
    let converter = Converter {
        tenant: &tenant,
        precision: Precision::Nanoseconds,
        now_ms: 0,
        device_label: "device",
        partitions: 8,
        cache: Some(&cache),
        limits: LabelLimits::default(),
    };

    let mut g = c.benchmark_group("ingest_path");
    g.throughput(Throughput::Elements(samples));
    let mut i = 0;
    g.bench_function("convert", |b| {
        b.iter(|| {
            i += 1;
            let conv = converter.convert(black_box(bodies[i % bodies.len()].as_bytes()));
            let bytes: usize = conv.batches.iter().map(|(_, b)| b.to_bytes().len()).sum();
            black_box(bytes)
        })
    });

    let dir = tempfile::tempdir().unwrap();
    let hot = Arc::new(HotStore::open(&dir.path().join("hot"), HotStoreConfig::default()).unwrap());
    // The converter's 8 partitions (the default count is automatic: one per core).
    let config = LogConfig { partitions: 8, ..LogConfig::default() };
    let log = LocalLog::open(&dir.path().join("log"), &config, |_| 0, Arc::clone(&hot) as Arc<dyn LogSink>).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut step = 0;
    g.bench_function("log_and_hot_store", |b| {
        // A new time step each iteration, so the memtable grows like real ingest;
        // generating the body is setup, not measured.
        let mut next_body = || {
            step += 1;
            body(step)
        };
        b.iter_batched(
            &mut next_body,
            |body| {
                let conv = converter.convert(body.as_bytes());
                let records = conv
                    .batches
                    .into_iter()
                    .map(|(p, b)| LogRecord { partition: p, payload: b.to_bytes(), decoded: Some(Box::new(b)) })
                    .collect();
                rt.block_on(log.append(records)).unwrap();
                if hot.memtable_samples() > 2_000_000 {
                    hot.flush().unwrap();
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
