//! End-to-end ingest through the Kafka log vs the local log, on the same data.
//!
//! Both runs do everything a `POST /api/v2/write` does below HTTP — line
//! protocol → series → per-partition `WriteBatch` → `IngestLog::append` —
//! and stop the clock when every sample is applied to a real `HotStore`:
//!
//! * `local`: `LocalLog` (group commit, fdatasync; the writer thread applies).
//! * `kafka`: `KafkaLog` against a tansu broker (in-memory engine) started on
//!   loopback (`strata_test_support::tansu::Broker`): idempotent producer,
//!   `acks=all`, lz4 batches; a consumer-group member decodes and applies
//!   every record, as `strata serve` does.
//!
//! Writers: 4 concurrent tasks, each appending whole request bodies (1,000
//! devices × 10 fields = 10,000 samples) and waiting for the acknowledgement,
//! like 4 HTTP connections. Reported: when every write was acknowledged,
//! samples/s (wall clock from the first append to the last apply) and CPU-seconds per million samples of this
//! process (all its threads: writers, log, librdkafka, consumer; from
//! `/proc/self/stat`) and, for Kafka, of the broker process too.
//!
//! Run (needs tansu from `scripts/install-test-deps.sh`, or `STRATA_TANSU_BIN`):
//!
//! ```sh
//! cargo bench -p strata-benches --bench kafka_ingest
//! # knobs: STRATA_BENCH_STEPS (bodies, default 200), STRATA_BENCH_WRITERS (4), STRATA_BENCH_KAFKA_COMPRESSION (lz4),
//! #        STRATA_BENCH_KAFKA_LINGER_MS (5)
//! ```
#![allow(clippy::disallowed_methods)] // test code owns its runtimes and threads (clippy.toml)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use strata_benches::iot_line;
use strata_hot_store::{HotStore, HotStoreConfig};
use strata_ingest::convert::{Converter, LabelLimits};
use strata_ingest::series_cache::SeriesCache;
use strata_ingest::{IngestLog, KafkaLog, KafkaLogConfig, LocalLog, LogConfig, LogRecord};
use strata_schemas::TenantId;
use strata_schemas::time::Precision;
use strata_test_support::tansu::Broker;

const DEVICES: usize = 1000;
const PARTITIONS: u32 = 8;
/// Concurrent writers (`STRATA_BENCH_WRITERS`, default 4).
fn writers() -> usize {
    std::env::var("STRATA_BENCH_WRITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(4)
}

fn body(step: usize) -> String {
    let mut out = String::with_capacity(DEVICES * 250);
    for d in 0..DEVICES {
        iot_line(&mut out, d, step, 1_700_000_000_000_000_000 + step as i64 * 10_000_000_000);
    }
    out
}

/// Samples the hot store has taken in (nothing is flushed during a run).
fn applied_samples(hot: &HotStore) -> u64 {
    let s = hot.stats();
    (s.memtable_samples + s.frozen_samples) as u64
}

/// utime + stime of a process in seconds (clock ticks of 10 ms).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // After the command name: state is field 0, utime 11, stime 12.
    (ticks(11) + ticks(12)) / 100.0
}

struct Run {
    name: String,
    samples: u64,
    acked: Duration,
    wall: Duration,
    cpu: f64,
    broker_cpu: Option<f64>,
}

fn run(name: &str, bodies: &[String], log: Arc<dyn IngestLog>, hot: &HotStore, broker_pid: Option<&str>) -> Run {
    let tenant = TenantId::new("acme").unwrap();
    let cache = Arc::new(SeriesCache::new(1 << 20));
    let expected = (bodies.len() * DEVICES * 10) as u64;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (cpu0, broker0) = (cpu_seconds("self"), broker_pid.map(cpu_seconds));
    let t0 = Instant::now();
    rt.block_on(async {
        let next = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..writers() {
            let (next, log) = (Arc::clone(&next), Arc::clone(&log));
            let (bodies, tenant, cache) = (bodies.to_vec(), tenant.clone(), Arc::clone(&cache));
            tasks.push(tokio::spawn(async move {
                let converter = Converter {
                    tenant: &tenant,
                    precision: Precision::Nanoseconds,
                    now_ms: 0,
                    device_label: "device",
                    partitions: PARTITIONS,
                    cache: Some(&cache),
                    limits: LabelLimits::default(),
                };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(body) = bodies.get(i) else { break };
                    let records: Vec<LogRecord> = converter
                        .convert(body.as_bytes())
                        .batches
                        .into_iter()
                        .map(|(p, b)| LogRecord { partition: p, payload: b.to_bytes(), decoded: Some(Box::new(b)) })
                        .collect();
                    log.append(records).await.expect("append");
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let acked = t0.elapsed();
    while applied_samples(hot) < expected {
        assert!(t0.elapsed() < Duration::from_secs(600), "{name}: samples never all applied");
        std::thread::sleep(Duration::from_millis(2));
    }
    let wall = t0.elapsed();
    Run {
        name: name.to_owned(),
        samples: expected,
        acked,
        wall,
        cpu: cpu_seconds("self") - cpu0,
        broker_cpu: broker_pid.map(|p| cpu_seconds(p) - broker0.unwrap_or(0.0)),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs a smoke pass.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let steps: usize = std::env::var("STRATA_BENCH_STEPS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let steps = if smoke { 2 } else { steps };
    let bodies: Vec<String> = (0..steps).map(body).collect();
    let mut runs = Vec::new();

    let dir = tempfile::tempdir().unwrap();
    let hot = Arc::new(HotStore::open(&dir.path().join("hot"), HotStoreConfig::default()).unwrap());
    let config = LogConfig { partitions: PARTITIONS, ..LogConfig::default() };
    let local = Arc::new(LocalLog::open(&dir.path().join("log"), &config, |_| 0, Arc::clone(&hot) as _).unwrap());
    runs.push(run("local log", &bodies, Arc::clone(&local) as _, &hot, None));
    local.close();
    drop(dir);

    let broker = Broker::start("bench");
    let dir = tempfile::tempdir().unwrap();
    let hot = Arc::new(HotStore::open(&dir.path().join("hot"), HotStoreConfig::default()).unwrap());
    let mut kc = KafkaLogConfig { brokers: broker.addr(), ..KafkaLogConfig::default() };
    if let Ok(c) = std::env::var("STRATA_BENCH_KAFKA_COMPRESSION") {
        kc.compression = c;
    }
    if let Some(ms) = std::env::var("STRATA_BENCH_KAFKA_LINGER_MS").ok().and_then(|v| v.parse().ok()) {
        kc.linger = Duration::from_millis(ms);
    }
    for kv in std::env::var("STRATA_BENCH_KAFKA_OPTIONS").unwrap_or_default().split(',').filter(|s| !s.is_empty()) {
        if let Some((k, v)) = kv.split_once('=') {
            kc.options.insert(k.to_owned(), v.to_owned());
        }
    }
    let label = format!("kafka (tansu, {}, linger {:?} {:?})", kc.compression, kc.linger, kc.options);
    let kafka = Arc::new(KafkaLog::open(&kc, PARTITIONS, "bench", Arc::new(|_| 0), Arc::clone(&hot) as _).unwrap());
    // Wait for the consumer to hold every partition before the clock starts.
    let deadline = Instant::now() + Duration::from_secs(60);
    while kafka.status().partitions.iter().any(|p| !p.assigned) {
        assert!(Instant::now() < deadline, "consumer never got its partitions");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = broker.pid().to_string();
    runs.push(run(&label, &bodies, Arc::clone(&kafka) as _, &hot, Some(&pid)));
    kafka.close(Duration::from_secs(5));
    drop(broker);

    println!(
        "\n| log | samples | all acked s | all applied s | samples/s | strata CPU s / M samples | broker CPU s / M samples |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in &runs {
        let m = r.samples as f64 / 1e6;
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.0} | {:.2} | {} |",
            r.name,
            r.samples,
            r.acked.as_secs_f64(),
            r.wall.as_secs_f64(),
            r.samples as f64 / r.wall.as_secs_f64(),
            r.cpu / m,
            r.broker_cpu.map_or("—".to_owned(), |c| format!("{:.2}", c / m)),
        );
    }
}
