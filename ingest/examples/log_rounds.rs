//! The local ingest log alone, open loop: requests of one record per
//! partition (like a 300-line IoT request over 8 partitions) appended at a
//! fixed rate, acknowledgement latency measured from each request's
//! scheduled time. No HTTP, no hot store (the sink discards), so what it
//! shows is the log's group commit and its syncs.
//!
//! ```sh
//! cargo run -p strata-ingest --example log_rounds -- DIR RATE SECONDS [PARTITIONS] [RECORD_BYTES]
//! ```
//!
//! Prints the requests' p50 / p90 / p99 / p99.9 / max in ms, then the mean
//! and p99 (bucket bound) of the log's stages (`strata_write_stage_seconds`).
//! DIR is emptied first and removed at the end.

#![allow(clippy::disallowed_methods)] // a main: it owns its runtime and tasks (clippy.toml)

use std::sync::Arc;
use std::time::{Duration, Instant};
use strata_ingest::log::{IngestLog, LocalLog, LogConfig, LogRecord};
use strata_schemas::{DiscardSink, LogSink};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: log_rounds DIR RATE SECONDS [PARTITIONS] [RECORD_BYTES]";
    let dir = std::path::PathBuf::from(args.get(1).expect(usage));
    let rate: f64 = args.get(2).expect(usage).parse().expect("RATE: requests per second");
    let seconds: f64 = args.get(3).expect(usage).parse().expect("SECONDS");
    let partitions: u32 = args.get(4).map_or(8, |p| p.parse().expect("PARTITIONS"));
    let record_bytes: usize = args.get(5).map_or(4000, |b| b.parse().expect("RECORD_BYTES"));
    let _ = std::fs::remove_dir_all(&dir);
    let config = LogConfig { partitions, ..LogConfig::default() };
    let sink: Arc<dyn LogSink> = Arc::new(DiscardSink);
    let log = Arc::new(LocalLog::open(&dir, &config, |_| 0, sink).expect("open the log"));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let latencies = rt.block_on(async {
        let start = Instant::now();
        let n = (rate * seconds) as u64;
        let mut tasks = Vec::with_capacity(n as usize);
        for i in 0..n {
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
            let log = Arc::clone(&log);
            tasks.push(tokio::spawn(async move {
                let records = (0..partitions).map(|p| LogRecord::new(p, vec![(i % 251) as u8; record_bytes])).collect();
                log.append(records).await.expect("append");
                due.elapsed()
            }));
        }
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            out.push(t.await.expect("task"));
        }
        out
    });
    let mut ms: Vec<f64> = latencies.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let q = |f: f64| ms[((ms.len() as f64 * f) as usize).min(ms.len() - 1)];
    println!(
        "requests {} rate {rate}/s partitions {partitions} record {record_bytes} B: ack p50 {:.2} p90 {:.2} p99 {:.2} p99.9 {:.2} max {:.2} ms",
        ms.len(),
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        ms[ms.len() - 1]
    );
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
    print_stages();
}

/// Mean and p99 (bucket bound) of the log's stages from `strata_write_stage_seconds`.
fn print_stages() {
    let mut text = String::new();
    strata_ingest::stages::global().render(&mut text);
    for stage in ["log_queue", "log_write", "log_round", "log_sync", "apply"] {
        let (mut buckets, mut sum) = (Vec::new(), 0.0);
        for line in text.lines() {
            let Some((key, value)) = line.rsplit_once(' ') else { continue };
            let value: f64 = value.parse().unwrap_or(0.0);
            if key.starts_with("strata_write_stage_seconds_bucket") && key.contains(&format!("stage=\"{stage}\"")) {
                let le = key.rsplit_once("le=\"").map_or("", |(_, l)| l.trim_end_matches("\"}"));
                buckets.push((le.to_owned(), value));
            } else if key == format!("strata_write_stage_seconds_sum{{stage=\"{stage}\"}}") {
                sum = value;
            }
        }
        let count = buckets.last().map_or(0.0, |b| b.1);
        if count == 0.0 {
            continue;
        }
        let p99 = buckets.iter().find(|b| b.1 >= count * 0.99).map_or("?".to_owned(), |b| b.0.clone());
        println!("  {stage:<9} n {count:>7} mean {:>8.3} ms  p99 <= {p99} s", sum / count * 1e3);
    }
}
