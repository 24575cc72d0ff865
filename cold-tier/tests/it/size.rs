//! Bytes per sample of the Parquet files on a realistic IoT shape: 500
//! devices × 2 metrics, one sample every 10 s for 2 h (one hot bucket),
//! decimal sensor readings with jitter.

use std::time::Instant;

use strata_cold_tier::CommitSource;

use crate::util::{BASE, open, runtime, series, tenant};

#[test]
fn parquet_bytes_per_sample_on_an_iot_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let cold = open(&rt, dir.path());
    let t = tenant("acme");
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut data = Vec::new();
    for d in 0..500 {
        for (m, base) in [("temp", 20.0), ("hum", 55.0)] {
            let mut v: f64 = base + (d % 7) as f64;
            let samples: Vec<(i64, f64)> = (0..720)
                .map(|i| {
                    v += ((rnd() % 21) as f64 - 10.0) / 100.0;
                    (BASE + i * 10_000 + (rnd() % 50) as i64, (v * 100.0).round() / 100.0)
                })
                .collect();
            data.push(series(&t, m, &format!("sensor-{d:04}"), &samples));
        }
    }
    let t0 = Instant::now();
    let source = CommitSource { source: "hot:acme:size".into(), segments: String::new() };
    let (written, _) = rt.block_on(cold.append(&t, &data, &source)).unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let bps = written.bytes as f64 / written.rows as f64;
    println!(
        "cold parquet: {} samples, {} files, {} bytes, {bps:.2} bytes/sample, {:.0} samples/s written+committed",
        written.rows,
        written.files.len(),
        written.bytes,
        written.rows as f64 / secs
    );
    assert_eq!(written.rows, 720_000);
    assert!(bps < 4.5, "{bps} bytes/sample (4.04 measured when written)");
}
