//! Hot-store sample codec: encode and decode speed of one segment sample block
//! (timestamps delta-of-delta, values the smaller of Gorilla XOR and decimal),
//! and bytes per sample of a whole flushed segment (labels, series table,
//! postings and block index included).
//!
//! Data: gen_iot-shaped (`strata_benches::iot_line` value formula): 1,000
//! devices × 10 fields, 720 points at a 10 s step (one 2 h bucket), values
//! with the generator's decimals. Throughput is in samples.
//!
//! Run: `cargo bench -p strata-benches --bench hot_store_codec`
//! (the bytes-per-sample figure is printed once before the benches run).
#![allow(clippy::disallowed_methods)] // test code owns its runtimes and threads (clippy.toml)

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use strata_hot_store::bench::{decode_block, encode_block};
use strata_hot_store::{HotStore, HotStoreConfig};
use strata_schemas::{BatchSeries, Labels, Sample, TenantId, WriteBatch};

const DEVICES: usize = 1000;
const POINTS: usize = 720;
const FIELDS: [(&str, f64, f64, usize); 10] = [
    ("ph", 6.5, 1.0, 2),
    ("moisture", 32.0, 10.0, 1),
    ("temp", 18.0, 8.0, 2),
    ("humidity", 65.0, 20.0, 1),
    ("nitrogen", 40.0, 20.0, 1),
    ("ec", 1.2, 0.5, 3),
    ("battery", 3.9, 0.2, 3),
    ("rssi", -78.0, 20.0, 0),
    ("light", 20000.0, 5000.0, 0),
    ("wind", 3.5, 3.0, 1),
];
const T0: i64 = 1_700_000_000_000;

/// The value `iot_line` writes for (device, step, field), parsed back like the server does.
fn value(device: usize, step: usize, field: usize) -> f64 {
    let (_, base, amp, dec) = FIELDS[field];
    let x = ((device * 7919 + step * 31) % 1000) as f64 / 1000.0;
    format!("{:.*}", dec, base + amp * (x - 0.5)).parse().unwrap()
}

fn series_samples(device: usize, field: usize) -> Vec<(i64, u64)> {
    (0..POINTS).map(|s| (T0 + s as i64 * 10_000, value(device, s, field).to_bits())).collect()
}

fn bytes_per_sample() -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let store = HotStore::open(dir.path(), HotStoreConfig::default()).unwrap();
    let tenant = TenantId::new("acme").unwrap();
    for d in 0..DEVICES {
        let series = FIELDS
            .iter()
            .enumerate()
            .map(|(f, (name, ..))| {
                let labels = Labels::from_pairs([
                    ("__name__", format!("sensors_{name}")),
                    ("device", format!("dev-{d:07}")),
                    ("farm", format!("farm-{:04}", d / 50)),
                    ("kind", ["soil", "weather", "tank", "drone"][d % 4].to_owned()),
                    ("region", ["eu", "us", "br"][d % 3].to_owned()),
                ]);
                let samples =
                    series_samples(d, f).into_iter().map(|(t, v)| Sample::new(t, f64::from_bits(v))).collect();
                BatchSeries { id: strata_schemas::series_id(&tenant, &labels), device_hash: d as u64, labels, samples }
            })
            .collect();
        store.apply(0, d as u64, &WriteBatch { tenant: tenant.clone(), series, origin: None }).unwrap();
    }
    let mem = store.stats().memtable_bytes;
    store.flush().unwrap();
    let samples = (DEVICES * FIELDS.len() * POINTS) as f64;
    println!("memtable: {:.2} bytes/sample (compressed chunks, in memory)", mem as f64 / samples);
    store.stats().disk_bytes as f64 / samples
}

fn bench(c: &mut Criterion) {
    println!("segment: {:.3} bytes/sample on disk (whole file)", bytes_per_sample());
    let blocks: Vec<Vec<(i64, u64)>> =
        (0..100).flat_map(|d| (0..FIELDS.len()).map(move |f| series_samples(d, f))).collect();
    let n: usize = blocks.iter().map(Vec::len).sum();
    let mut encoded: Vec<Vec<u8>> = Vec::new();
    for b in &blocks {
        let mut out = Vec::new();
        encode_block(b, &mut out);
        encoded.push(out);
    }
    let bytes: usize = encoded.iter().map(Vec::len).sum();
    println!("sample blocks alone: {:.3} bytes/sample", bytes as f64 / n as f64);
    let mut g = c.benchmark_group("hot_store_codec");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("encode", |b| {
        let mut out = Vec::with_capacity(1 << 16);
        b.iter(|| {
            for blk in &blocks {
                out.clear();
                encode_block(black_box(blk), &mut out);
            }
            black_box(out.len())
        })
    });
    g.bench_function("decode", |b| {
        b.iter(|| {
            encoded
                .iter()
                .zip(&blocks)
                .map(|(e, blk)| decode_block(black_box(e), blk.len(), blk[0].0).unwrap().len())
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
