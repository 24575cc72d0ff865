//! The cost of the right to erasure in the embedded hot store (issue 18's
//! closing note): one device erased over a day of a fleet.
//!
//! Data: `DEVICES` devices (default 10,000), `soil_moisture{device}`, a
//! sample every 5 minutes for one day (288 samples each), applied in 288
//! batches of one sample per device and flushed every 2 h: 12 segments, one
//! per 2 h bucket (the default bucket). Then `HotStore::erase` of device
//! `d-17` over the day and `verify_erased`. Every segment of the range holds
//! the device, so each is rewritten in full: the bytes rewritten are the
//! tenant's hot bytes in the range. Asserted: 12 segments rewritten, 288
//! samples removed, none found after.
//!
//! Prints the store before (segments, bytes), the erase's and the verify's
//! time with their reports, the bytes after, and the load average; `RUNS`
//! (default 1) repeats all of it on fresh data and prints the medians.
//!
//! Run (release; the host is shared: note the load):
//! `CARGO_TARGET_DIR=/root/.cache/strata-target-q cargo bench -p strata-benches --bench hot_store_erase`
//! with `DEVICES` (10000), `RUNS` (1) in the environment.
//! Replaces the ignored test `erase_figures_one_device_of_ten_thousand_over_a_day`
//! of `hot-store/tests/it/erase.rs` (issue 21 point 6).
#![allow(clippy::disallowed_methods)] // bench code owns its threads (clippy.toml)
#![allow(clippy::print_stdout, clippy::print_stderr)] // a bench prints its figures

use std::time::Instant;

use strata_benches::{env_or, load_average, median};
use strata_hot_store::{EraseRequest, HotStore, HotStoreConfig};
use strata_schemas::{BatchSeries, Labels, Matcher, Sample, TenantId, WriteBatch};

const STEP_MS: i64 = 300_000;
/// A bucket boundary.
const DAY0: i64 = 1_764_720_000_000;

/// One run on fresh data: the erase and verify times in milliseconds.
fn run(devices: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let store = HotStore::open(dir.path(), HotStoreConfig::default()).unwrap();
    let tenant = TenantId::new("farm").unwrap();
    let labels: Vec<Labels> = (0..devices)
        .map(|d| Labels::from_pairs([("__name__", "soil_moisture"), ("device", &format!("d-{d}"))]))
        .collect();
    for k in 0..288i64 {
        let ts = DAY0 + k * STEP_MS;
        let series = labels
            .iter()
            .enumerate()
            .map(|(d, l)| BatchSeries {
                id: strata_schemas::series_id(&tenant, l),
                device_hash: d as u64,
                labels: l.clone(),
                samples: vec![Sample::new(ts, 20.0 + (d % 50) as f64 * 0.25)].into(),
            })
            .collect();
        store.apply(0, k as u64, &WriteBatch { tenant: tenant.clone(), series, origin: None }).unwrap();
        if k % 24 == 23 {
            store.flush().unwrap();
        }
    }
    let before = store.stats();
    let req = EraseRequest {
        tenant,
        selectors: vec![vec![Matcher::equal("device", "d-17")]],
        start: DAY0,
        end: DAY0 + 86_400_000 - 1,
    };
    let load = load_average();
    let t0 = Instant::now();
    let report = store.erase(&req).unwrap();
    let erase_ms = t0.elapsed().as_secs_f64() * 1e3;
    let t1 = Instant::now();
    let verify = store.verify_erased(&req).unwrap();
    let verify_ms = t1.elapsed().as_secs_f64() * 1e3;
    assert_eq!((report.segments_rewritten, report.samples_removed, verify.samples_found), (12, 288, 0));
    println!(
        "{devices} devices x 288 samples, {} segments, {} bytes: erase {erase_ms:.0} ms {report:?}; \
         verify {verify_ms:.0} ms {verify:?}; after: {} bytes; load {load}",
        before.segments,
        before.disk_bytes,
        store.stats().disk_bytes
    );
    (erase_ms, verify_ms)
}

fn main() {
    let (devices, runs) = (env_or("DEVICES", 10_000usize), env_or("RUNS", 1usize));
    if !strata_benches::invoked_by_cargo_bench("hot_store_erase") {
        return;
    }
    let (mut erase, mut verify) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let (e, v) = run(devices);
        erase.push(e);
        verify.push(v);
    }
    println!(
        "erase one device of {devices} over a day: median {:.0} ms, verify {:.0} ms ({runs} runs)",
        median(&mut erase),
        median(&mut verify)
    );
}
