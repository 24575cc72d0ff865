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
//! * `convert_100k_series`: `convert` on 10,000 devices (100,000 series) in
//!   requests of 300 lines, each request the next 300 devices, as
//!   `benches/drivers/write_latency.py` sends them: the series' labels and
//!   cache entries no longer fit in the CPU's caches, and the cost is the
//!   cache misses more than the instructions.
//! * `hot_store_apply_100k_series`: the hot store's apply of those
//!   requests' batches (as the log's writer hands them over), a new time
//!   step each request.
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

/// The converter of `tenant`'s requests (nanosecond timestamps, 8 partitions) over `cache`.
fn converter_for<'a>(tenant: &'a TenantId, cache: &'a SeriesCache) -> Converter<'a> {
    Converter {
        tenant,
        precision: Precision::Nanoseconds,
        now_ms: 0,
        device_label: "device",
        partitions: 8,
        cache: Some(cache),
        limits: LabelLimits::default(),
    }
}

/// Converts one request body and encodes its batches, as the write path
/// does before the log; the encoded bytes.
fn converted_bytes(converter: &Converter<'_>, body: &str) -> usize {
    let conv = converter.convert(black_box(body.as_bytes()));
    conv.batches.iter().map(|(_, b)| b.to_bytes().len()).sum()
}

fn bench(c: &mut Criterion) {
    let tenant = TenantId::new("acme").unwrap();
    let bodies: Vec<String> = (0..16).map(body).collect();
    let samples = (DEVICES * 10) as u64;
    let cache = SeriesCache::new(1 << 20);
    let converter = converter_for(&tenant, &cache);

    let mut g = c.benchmark_group("ingest_path");
    g.throughput(Throughput::Elements(samples));
    let mut i = 0;
    g.bench_function("convert", |b| {
        b.iter(|| {
            i += 1;
            black_box(converted_bytes(&converter, &bodies[i % bodies.len()]))
        })
    });

    // 10,000 devices, 300 lines per request, the requests cycling through
    // them (two time steps, so the series cache holds them all).
    const MANY: usize = 10_000;
    const LINES: usize = 300;
    let many: Vec<String> = (0..2 * MANY / LINES)
        .map(|r| {
            let mut out = String::with_capacity(LINES * 250);
            for k in 0..LINES {
                let d = (r * LINES + k) % MANY;
                iot_line(&mut out, d, r, 1_700_000_000_000_000_000 + (r * LINES + k) as i64 * 1_000_000);
            }
            out
        })
        .collect();
    let big_cache = SeriesCache::new(1 << 20);
    let many_converter = converter_for(&tenant, &big_cache);
    for b in &many {
        black_box(many_converter.convert(b.as_bytes()));
    }
    g.throughput(Throughput::Elements((LINES * 10) as u64));
    let mut j = 0;
    g.bench_function("convert_100k_series", |b| {
        b.iter(|| {
            j += 1;
            black_box(converted_bytes(&many_converter, &many[j % many.len()]))
        })
    });

    // The hot store's apply of those requests' batches alone (decoded, as
    // the log's writer hands them over), a new time step each request.
    let apply_dir = tempfile::tempdir().unwrap();
    let apply_hot = HotStore::open(&apply_dir.path().join("hot"), HotStoreConfig::default()).unwrap();
    let mut offsets = [0u64; 8];
    let mut k = 0usize;
    let mut next_batches = || {
        k += 1;
        if apply_hot.memtable_samples() > 4_000_000 {
            apply_hot.flush().unwrap();
        }
        let mut out = String::with_capacity(LINES * 250);
        for l in 0..LINES {
            let d = (k * LINES + l) % MANY;
            iot_line(&mut out, d, k, 1_700_000_000_000_000_000 + k as i64 * 1_000_000_000);
        }
        many_converter.convert(out.as_bytes()).batches
    };
    g.bench_function("hot_store_apply_100k_series", |b| {
        b.iter_batched(
            &mut next_batches,
            |batches| {
                for (p, batch) in &batches {
                    let o = &mut offsets[*p as usize];
                    apply_hot.apply(*p, *o, batch).unwrap();
                    *o += 1;
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.throughput(Throughput::Elements(samples));

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
