//! Bytes per sample on disk for a realistic IoT shape: 1000 series × 720
//! samples at a 10 s interval with jittered timestamps and sensor-like values.
//! Run with `cargo test -p strata-hot-store --test it size -- --nocapture`
//! to see the numbers; the assertion guards against regressions. Measured
//! after compaction (V4 blocks: what stays on disk); right after a flush
//! the segments hold stream blocks (memtable chunks copied), printed too.

use strata_schemas::{BatchSeries, Labels, Sample, WriteBatch};

use crate::util::{open, tenant};

/// xorshift64*: a seeded, dependency-free RNG.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Temperature: slow sine + noise, 0.01 °C resolution.
    Temperature,
    /// Relative humidity: random walk, 0.1 % resolution.
    Humidity,
    /// A monotonically increasing integer counter (e.g. pulses).
    Counter,
    /// A status gauge that rarely changes.
    Status,
}

fn values(kind: Kind, rng: &mut Rng, n: usize) -> Vec<f64> {
    let mut v = 50.0f64;
    let mut c = (rng.next() % 1_000_000) as f64;
    (0..n)
        .map(|i| match kind {
            Kind::Temperature => {
                let x = 20.0 + 5.0 * (i as f64 / 120.0).sin() + (rng.unit() - 0.5) * 0.2;
                (x * 100.0).round() / 100.0
            }
            Kind::Humidity => {
                v = (v + (rng.unit() - 0.5)).clamp(0.0, 100.0);
                (v * 10.0).round() / 10.0
            }
            Kind::Counter => {
                c += (rng.next() % 5) as f64;
                c
            }
            Kind::Status => {
                if rng.unit() < 0.01 {
                    v = (rng.next() % 4) as f64;
                }
                v
            }
        })
        .collect()
}

/// Bytes per sample on disk of `series` series of `kind`s: right after the
/// flush (stream blocks) and after compaction (V4 blocks).
fn bytes_per_sample(kinds: &[Kind], series: usize, jitter_ms: u64) -> (f64, f64) {
    const SAMPLES: usize = 720;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut rng = Rng(0x5eed);
    for s in 0..series {
        let kind = kinds[s % kinds.len()];
        let labels = Labels::from_pairs([
            ("__name__", format!("sensor_{kind:?}").to_lowercase()),
            ("device", format!("dev-{:07}", s / 4)),
            ("farm", format!("farm-{}", s % 17)),
        ]);
        let start = 1_700_000_000_000 + (rng.next() % 10_000) as i64;
        let samples = values(kind, &mut rng, SAMPLES)
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                let jitter =
                    if jitter_ms == 0 { 0 } else { (rng.next() % (2 * jitter_ms + 1)) as i64 - jitter_ms as i64 };
                Sample::new(start + i as i64 * 10_000 + jitter, v)
            })
            .collect();
        let id = strata_schemas::series_id(&tenant("acme"), &labels);
        let b = WriteBatch {
            tenant: tenant("acme"),
            series: vec![BatchSeries { id, device_hash: 0, labels, samples }],
            origin: None,
        };
        store.apply(0, s as u64, &b).unwrap();
    }
    store.flush().unwrap();
    let flushed = store.stats().disk_bytes as f64 / (series * SAMPLES) as f64;
    store.compact().unwrap();
    (flushed, store.stats().disk_bytes as f64 / (series * SAMPLES) as f64)
}

#[test]
fn realistic_iot_series_stay_compact() {
    let all = [Kind::Temperature, Kind::Humidity, Kind::Counter, Kind::Status];
    let (mixed_flushed, mixed) = bytes_per_sample(&all, 1000, 0);
    let (jittered_flushed, jittered) = bytes_per_sample(&all, 1000, 50);
    println!(
        "1000 series x 720 samples, 10 s interval, mixed kinds: {mixed:.3} B/sample (exact), {jittered:.3} B/sample (±50 ms jitter); \
         right after the flush (stream blocks): {mixed_flushed:.3} / {jittered_flushed:.3}"
    );
    for kind in all {
        let (f, b) = bytes_per_sample(&[kind], 100, 50);
        println!("  {kind:?}: {b:.3} B/sample (100 series, ±50 ms jitter; after the flush {f:.3})");
    }
    assert!(mixed < 1.3 && jittered < 2.5, "{mixed} / {jittered} bytes per sample");
}
