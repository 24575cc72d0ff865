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
    // A harsher shape than peer-bench (random steps, jittered timestamps):
    // 4.04 with zstd 3 and 16 device buckets, 3.71 with the defaults now.
    assert!(bps < 4.0, "{bps} bytes/sample (3.71 measured)");
}

/// Figures for the small-file merge: 24 hourly commits of 200 devices (one
/// sample a minute) into one day, then every partition's files merged.
#[test]
fn merge_figures_for_a_day_of_hourly_commits() {
    use std::collections::{BTreeMap, HashMap};

    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let cold = open(&rt, dir.path());
    let t = tenant("acme");
    let day = BASE - BASE % 86_400_000;
    let t0 = Instant::now();
    for h in 0..24i64 {
        let data: Vec<_> = (0..200)
            .map(|d| {
                let s: Vec<(i64, f64)> =
                    (0..60).map(|m| (day + h * 3_600_000 + m * 60_000, (d * 10 + m) as f64 / 4.0)).collect();
                series(&t, "temp", &format!("sensor-{d:03}"), &s)
            })
            .collect();
        let source = CommitSource { source: format!("hot:acme:{h}"), segments: String::new() };
        rt.block_on(cold.append(&t, &data, &source)).unwrap();
    }
    let write_secs = t0.elapsed().as_secs_f64();
    let before = rt.block_on(cold.live_files(&t)).unwrap();
    let bytes_before: u64 = before.iter().map(|f| f.bytes).sum();
    let mut partitions: BTreeMap<(i32, i32), Vec<String>> = BTreeMap::new();
    for f in &before {
        partitions.entry((f.day, f.bucket)).or_default().push(f.path.clone());
    }
    let t1 = Instant::now();
    let mut rows = 0;
    for paths in partitions.values() {
        let merged = rt.block_on(cold.read_files(&t, paths)).unwrap();
        let written = rt.block_on(cold.write_files(&t, &merged, "merge-figures")).unwrap();
        rows += written.rows;
        rt.block_on(cold.replace_files(&t, paths, written, HashMap::new())).unwrap();
    }
    let merge_secs = t1.elapsed().as_secs_f64();
    let after = rt.block_on(cold.live_files(&t)).unwrap();
    let bytes_after: u64 = after.iter().map(|f| f.bytes).sum();
    println!(
        "merge: {} files ({bytes_before} bytes) → {} files ({bytes_after} bytes), {rows} samples in {merge_secs:.2}s \
         ({:.0} samples/s); the 24 commits took {write_secs:.2}s",
        before.len(),
        after.len(),
        rows as f64 / merge_secs
    );
    assert_eq!(rows, 24 * 200 * 60);
    assert_eq!(after.len(), partitions.len());
    assert!(bytes_after < bytes_before, "fewer, larger files compress better");
}
