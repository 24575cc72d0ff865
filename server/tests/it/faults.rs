//! Faults beyond a clean `kill -9` (issue 20, item 2), through the real
//! binary: the short fault campaign (`benches/drivers/faults.py`, kill -9 at
//! random instants with the cold tier and Kafka on, and on the embedded
//! log), a peer frozen with SIGSTOP during a fan-out query, a Kafka broker
//! frozen under load, and an fsync that fails (injected with an
//! `LD_PRELOAD` shim over `fsync`/`fdatasync`) poisoning the store.
//!
//! The full disk is `log_damage::a_full_disk_answers_507_and_writes_resume_when_space_returns`
//! (a size-limited tmpfs). The broker is tansu from `scripts/install-test-deps.sh`
//! (as in `kafka.rs`); these tests fail, not skip, when it is missing.

use crate::harness::*;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ADMIN: &str = "faults-test-admin-token-0123456789";
const CLUSTER_TOKEN: &str = "faults-test-cluster-token";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Runs the fault driver against this build's binary; returns its output.
fn run_driver(args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg(repo_root().join("benches/drivers/faults.py"))
        .args(["--strata", env!("CARGO_BIN_EXE_strata"), "--seed", "20"])
        .args(args)
        .output()
        .expect("run python3 benches/drivers/faults.py");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "fault campaign failed ({}):\n{text}", out.status);
    text
}

/// The summary line's `name value` pairs.
fn summary_value(text: &str, name: &str) -> u64 {
    let line = text.lines().find(|l| l.starts_with("trials ")).unwrap_or_else(|| panic!("no summary:\n{text}"));
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == name {
            return words.next().unwrap().parse().unwrap();
        }
    }
    panic!("{name} missing from {line}")
}

/// Four kill -9 trials with the cold tier and the Kafka log: every acknowledged sample read back exactly once.
#[test]
fn kill9_campaign_with_kafka_and_cold_tier_loses_and_duplicates_nothing() {
    let _ = tansu_bin();
    let text = run_driver(&["--trials", "4", "--max-run", "2"]);
    println!("{text}");
    assert_eq!(summary_value(&text, "trials"), 4, "{text}");
    assert!(summary_value(&text, "acknowledged") > 0, "{text}");
    assert_eq!(summary_value(&text, "lost"), 0, "{text}");
    assert_eq!(summary_value(&text, "duplicated"), 0, "{text}");
}

/// Three kill -9 trials on the embedded log (no broker), cold tier on.
#[test]
fn kill9_campaign_on_the_embedded_log_loses_and_duplicates_nothing() {
    let text = run_driver(&["--trials", "3", "--max-run", "2", "--log", "local"]);
    println!("{text}");
    assert_eq!(summary_value(&text, "trials"), 3, "{text}");
    assert!(summary_value(&text, "acknowledged") > 0, "{text}");
    assert_eq!(summary_value(&text, "lost"), 0, "{text}");
    assert_eq!(summary_value(&text, "duplicated"), 0, "{text}");
}

fn tansu_bin() -> PathBuf {
    let path = std::env::var_os("STRATA_TANSU_BIN").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("STRATA_TOOLS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/strata-tools"))
            .join("tansu-0.6.0/bin/tansu")
    });
    assert!(path.is_file(), "tansu missing at {}: run `bash scripts/install-test-deps.sh`", path.display());
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success();
    assert!(ok, "kill {sig} {pid}");
}

/// A tansu broker (in-memory engine) on loopback.
struct Broker {
    child: Child,
    port: u16,
}

impl Broker {
    fn start() -> Broker {
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(tansu_bin())
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/", "--cluster-id", "strata-faults"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Broker { child, port }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.child.id().to_string()]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A strata node on the Kafka log of `broker` (topic prefix `prefix`).
fn kafka_node(dir: &Path, broker: &Broker, prefix: &str, port: u16, peers: &[u16], extra: &[(&str, &str)]) -> Server {
    let peers: Vec<String> = peers.iter().map(|p| format!("\"http://127.0.0.1:{p}\"")).collect();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.args(["serve", "--http-addr", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "info,librdkafka=warn,rdkafka=warn")
        .env("STRATA_LOG__KIND", "kafka")
        .env("STRATA_LOG__PARTITIONS", "4")
        .env("STRATA_LOG__KAFKA__BROKERS", format!("127.0.0.1:{}", broker.port))
        .env("STRATA_LOG__KAFKA__TOPIC_PREFIX", prefix)
        .env("STRATA_ADMIN__TOKEN", ADMIN)
        .env("STRATA_CLUSTER__TOKEN", CLUSTER_TOKEN)
        .env("STRATA_CLUSTER__PEERS", format!("[{}]", peers.join(",")))
        .envs(extra.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    Server::spawn(cmd, format!("http://127.0.0.1:{port}"))
}

async fn scalar(c: &reqwest::Client, s: &Server, q: &str) -> f64 {
    let data = query(c, s, q, now_ms()).await;
    match data["result"].as_array() {
        Some(a) if a.is_empty() => 0.0,
        _ => single_value(&data),
    }
}

/// Kafka partitions assigned to `s` (from its ingest status).
async fn assigned(c: &reqwest::Client, s: &Server) -> usize {
    let r = c.get(s.url("/api/v1/status/ingest")).bearer_auth(ADMIN).send().await.unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    v["data"]["kafka"]["partitions"].as_array().map_or(0, |p| p.iter().filter(|p| p["assigned"] == true).count())
}

/// Two nodes on one topic; node B is frozen with SIGSTOP (its TCP port still
/// accepts connections, nothing answers). A query on A answers 200 within
/// `cluster.timeout` plus a margin, with what A holds, and A logs and counts
/// the peer that did not answer. After SIGCONT the answer is whole again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_peer_does_not_hang_a_fan_out_query() {
    let broker = Broker::start();
    let (da, db) = (data_dir(), data_dir());
    let (pa, pb) = (free_port(), free_port());
    let extra = [("STRATA_CLUSTER__TIMEOUT", "2s")];
    let a = kafka_node(da.path(), &broker, "frozen", pa, &[pb], &extra);
    let b = kafka_node(db.path(), &broker, "frozen", pb, &[pa], &extra);
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(60);
    while assigned(&c, &a).await == 0 || assigned(&c, &b).await == 0 {
        assert!(Instant::now() < deadline, "the group never split the partitions");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let t0 = now_ms() - 60_000;
    let body: String = (0..40).map(|i| format!("frz,device=d{i} v=1 {}\n", t0 + i)).collect();
    let (status, text) = write(&c, &a, "/api/v2/write?precision=ms", body.into_bytes(), false).await;
    assert_eq!(status, 204, "{text}");
    let q = "count(count_over_time(frz_v[10m]))";
    let deadline = Instant::now() + Duration::from_secs(30);
    while scalar(&c, &a, q).await != 40.0 {
        assert!(Instant::now() < deadline, "the 40 series never showed on a");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    signal(b.child.id(), "-STOP");
    let started = Instant::now();
    let r = c.get(a.url("/api/v1/query")).query(&[("query", q)]).send().await.unwrap();
    let took = started.elapsed();
    let status = r.status();
    let v: serde_json::Value = r.json().await.unwrap();
    signal(b.child.id(), "-CONT");
    println!("query with a frozen peer: {status} in {took:?}: {v}");
    assert_eq!(status, 200, "{v}");
    assert!(took >= Duration::from_millis(1900), "answered before the peer timeout: {took:?} {v}");
    assert!(took < Duration::from_secs(6), "a frozen peer held the query {took:?}");
    let held = v["data"]["result"][0]["value"][1].as_str().map_or(0.0, |s| s.parse().unwrap());
    assert!(held < 40.0, "B's partitions are missing while it is frozen: {v}");
    let log = a.stderr.lock().unwrap().clone();
    assert!(log.contains("peer did not answer"), "no warning in a's log:\n{log}");
    let r = c.get(a.url("/api/v1/status/ingest")).bearer_auth(ADMIN).send().await.unwrap();
    let st: serde_json::Value = r.json().await.unwrap();
    assert!(st["data"]["peer_errors"].as_u64() >= Some(1), "{st}");

    // Thawed, B answers again: the whole answer.
    let deadline = Instant::now() + Duration::from_secs(30);
    while scalar(&c, &a, q).await != 40.0 {
        assert!(Instant::now() < deadline, "the answer never became whole after SIGCONT");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(b);
}
