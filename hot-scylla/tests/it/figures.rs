//! Ingest and query figures of the tier on kassandra beside the embedded hot
//! store, on the same data (ignored: a measurement, not a check). Run:
//!
//! ```text
//! CARGO_TARGET_DIR=/root/.cache/strata-target-q nice -n 19 cargo test --release -p strata-hot-scylla \
//!     --test it figures -- --ignored --nocapture
//! ```
//!
//! Data: 1,000 series (100 devices × 10 fields, one tenant), 60 samples each
//! (1 per minute), written as 60 log records of 1,000 samples (one per
//! minute: a gateway's batch). Queries: one series over the hour, and all
//! 1,000 series over the hour (a `sum by` reads them all).

use std::time::{Duration, Instant};

use strata_hot_store::{HotStore, HotStoreConfig};
use strata_schemas::{BatchSeries, Labels, Matcher, ReadStore, Sample, TenantId, TimeRange, WriteBatch};

use crate::kassandra::Kassandra;

const DEVICES: usize = 100;
const FIELDS: usize = 10;
const MINUTES: i64 = 60;
const T0: i64 = 1_764_000_000_000;

fn records() -> Vec<WriteBatch> {
    let tenant = TenantId::new("acme").unwrap();
    (0..MINUTES)
        .map(|m| {
            let series = (0..DEVICES * FIELDS)
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

fn measure(name: &str, store: &dyn ReadStore, apply: &dyn Fn(u64, &WriteBatch)) {
    let recs = records();
    let samples = (DEVICES * FIELDS) as f64 * MINUTES as f64;
    let ((), ingest) = time(|| {
        for (o, r) in recs.iter().enumerate() {
            apply(o as u64, r);
        }
    });
    let tenant = TenantId::new("acme").unwrap();
    let range = TimeRange::new(T0, T0 + MINUTES * 60_000);
    let one = [Matcher::equal("__name__", "field3"), Matcher::equal("device", "d42")];
    let mut one_t = Vec::new();
    let mut all_t = Vec::new();
    for _ in 0..5 {
        let (r, d) = time(|| store.select(&tenant, &one, range).unwrap());
        assert_eq!(r.len(), 1);
        one_t.push(d);
        let (r, d) = time(|| store.select(&tenant, &[], range).unwrap());
        assert_eq!(r.len(), DEVICES * FIELDS);
        all_t.push(d);
    }
    one_t.sort();
    all_t.sort();
    println!(
        "{name}: ingest {:.0} samples/s ({:.2} s for {samples}); select 1 series median {:.2} ms; \
         select 1,000 series × 60 samples median {:.1} ms",
        samples / ingest.as_secs_f64(),
        ingest.as_secs_f64(),
        one_t[2].as_secs_f64() * 1e3,
        all_t[2].as_secs_f64() * 1e3
    );
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture (see the module docs)"]
fn figures() {
    let dir = std::env::temp_dir().join(format!("strata-figures-{}", std::process::id()));
    let embedded = HotStore::open(&dir, HotStoreConfig::default()).unwrap();
    measure("embedded hot store", &embedded, &|o, r| embedded.apply(0, o, r).unwrap());
    drop(embedded);
    let _ = std::fs::remove_dir_all(&dir);
    let k = Kassandra::start();
    let tier = k.connect("figures", Duration::from_secs(7200));
    measure("scylla tier on kassandra", &tier, &|o, r| tier.apply(0, o, r).unwrap());
}
