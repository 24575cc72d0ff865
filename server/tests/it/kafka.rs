//! The Kafka ingest log end to end: a real Kafka-protocol broker (tansu, in
//! memory) on loopback and real `strata` processes that produce through HTTP
//! and consume as one consumer group.
//!
//! The broker binary comes from `scripts/install-test-deps.sh`
//! (`$STRATA_TOOLS_DIR/tansu-0.6.0/bin/tansu`, `~/.cache/strata-tools` by default, or `$STRATA_TANSU_BIN`);
//! these tests fail, not skip, when it is missing.

use crate::harness::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) const CLUSTER_TOKEN: &str = "kafka-test-cluster-token";
pub(crate) const PARTITIONS: u32 = 6;

pub(crate) use crate::harness::free_port;
/// The tests' tansu broker (memory engine).
pub(crate) use strata_test_support::tansu::Broker;

/// The cluster id of the tests' brokers.
pub(crate) const TANSU_CLUSTER: &str = "strata-test";

/// How a strata node of these tests is configured.
pub(crate) struct NodeSpec<'a> {
    pub(crate) broker: &'a Broker,
    pub(crate) prefix: &'a str,
    pub(crate) port: u16,
    pub(crate) peers: &'a [u16],
    pub(crate) extra: &'a [(&'a str, &'a str)],
}

pub(crate) fn start_node(dir: &Path, spec: &NodeSpec<'_>) -> Server {
    let peers: Vec<String> = spec.peers.iter().map(|p| format!("\"http://127.0.0.1:{p}\"")).collect();
    let mut env: Vec<(String, String)> = vec![
        ("STRATA_LOG__KIND".into(), "kafka".into()),
        ("STRATA_LOG__PARTITIONS".into(), PARTITIONS.to_string()),
        ("STRATA_LOG__KAFKA__BROKERS".into(), spec.broker.addr()),
        ("STRATA_LOG__KAFKA__TOPIC_PREFIX".into(), spec.prefix.into()),
        ("STRATA_LOG__KAFKA__DELIVERY_TIMEOUT".into(), "5s".into()),
        ("STRATA_HOT_STORE__FLUSH_INTERVAL".into(), "1s".into()),
        ("STRATA_CLUSTER__TOKEN".into(), CLUSTER_TOKEN.into()),
        ("STRATA_ADMIN__TOKEN".into(), ADMIN_TOKEN.into()),
        ("STRATA_CLUSTER__TIMEOUT".into(), "3s".into()),
        ("STRATA_CLUSTER__PEERS".into(), format!("[{}]", peers.join(","))),
    ];
    env.extend(spec.extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.args(["serve", "--http-addr", &format!("127.0.0.1:{}", spec.port), "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "info,librdkafka=warn,rdkafka=warn")
        .envs(env)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start strata");
    let stderr = crate::harness::capture_stderr(&mut child);
    let server = Server { child, base: format!("http://127.0.0.1:{}", spec.port), stderr };
    server.wait_ready();
    server
}

/// Samples of the test metric `kt` and what was acknowledged.
#[derive(Default)]
pub(crate) struct Ledger {
    pub(crate) samples: u64,
    pub(crate) sum: f64,
}

/// Line protocol for samples `from..to`: device `i % 40`, timestamp `base + i` ms, value `i % 97`.
pub(crate) fn lines(base: i64, from: u64, to: u64) -> String {
    (from..to).map(|i| format!("kt,device=d{} value={} {}\n", i % 40, i % 97, base + i as i64)).collect()
}

pub(crate) fn add(ledger: &mut Ledger, from: u64, to: u64) {
    for i in from..to {
        ledger.samples += 1;
        ledger.sum += (i % 97) as f64;
    }
}

/// Writes samples `from..to` through one of `targets`, retrying on the next
/// target until one acknowledges (a retried write is idempotent).
pub(crate) async fn write_acked(c: &reqwest::Client, targets: &[&Server], base: i64, from: u64, to: u64) {
    let body = lines(base, from, to);
    let deadline = Instant::now() + Duration::from_secs(60);
    for attempt in 0.. {
        let s = targets[attempt % targets.len()];
        let r = c.post(s.url("/api/v2/write?bucket=b&precision=ms")).body(body.clone()).send().await;
        match r {
            Ok(r) if r.status() == 204 => return,
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                assert!(Instant::now() < deadline, "write {from}..{to} never acknowledged: {status} {text}");
            }
            Err(e) => assert!(Instant::now() < deadline, "write {from}..{to} never acknowledged: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls `s` until the sample count and value sum of `kt` match the ledger.
async fn wait_for_all(c: &reqwest::Client, s: &Server, ledger: &Ledger, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = (0.0, 0.0, 0.0);
    while Instant::now() < deadline {
        let at = now_ms();
        let count = scalar(c, s, "sum(count_over_time(kt[1h]))", at).await;
        let sum = scalar(c, s, "sum(sum_over_time(kt[1h]))", at).await;
        let series = scalar(c, s, "count(count_over_time(kt[1h]))", at).await;
        last = (count, sum, series);
        if count == ledger.samples as f64 && sum == ledger.sum && series == 40.0 {
            return;
        }
        assert!(count <= ledger.samples as f64, "{what}: more samples than acknowledged: {count} > {}", ledger.samples);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!(
        "{what}: expected {} samples (sum {}) in 40 series, last saw {last:?}; node log:\n{}",
        ledger.samples,
        ledger.sum,
        s.stderr.lock().unwrap()
    );
}

pub(crate) async fn scalar(c: &reqwest::Client, s: &Server, q: &str, at: i64) -> f64 {
    let t = format!("{:.3}", at as f64 / 1000.0);
    let Ok(r) = c.get(s.url("/api/v1/query")).query(&[("query", q), ("time", &t)]).send().await else {
        return -1.0;
    };
    let v: serde_json::Value = r.json().await.unwrap_or_default();
    match v["data"]["result"].as_array() {
        Some(a) if a.len() == 1 => a[0]["value"][1].as_str().and_then(|x| x.parse().ok()).unwrap_or(-1.0),
        Some(a) if a.is_empty() => 0.0,
        _ => -1.0,
    }
}

pub(crate) async fn status(c: &reqwest::Client, s: &Server) -> serde_json::Value {
    let r = c.get(s.url("/api/v1/status/ingest")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    r.json::<serde_json::Value>().await.unwrap()["data"].clone()
}

/// The nodes' admin token (`/internal/*` and the ingest status need it).
pub(crate) const ADMIN_TOKEN: &str = "kafka-test-admin-token";

pub(crate) fn assigned(st: &serde_json::Value) -> Vec<u64> {
    st["kafka"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["assigned"] == true)
        .map(|p| p["partition"].as_u64().unwrap())
        .collect()
}

/// Two nodes produce and consume one topic; one is killed with SIGKILL mid-stream and
/// restarted, a third joins: every acknowledged sample is counted exactly once on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_split_partitions_survive_kill9_and_rebalance() {
    let broker = Broker::start(TANSU_CLUSTER);
    let (pa, pb, pc) = (free_port(), free_port(), free_port());
    let (da, db, dc) = (data_dir(), data_dir(), data_dir());
    let prefix = "split";
    let a = start_node(da.path(), &NodeSpec { broker: &broker, prefix, port: pa, peers: &[pb, pc], extra: &[] });
    let b = start_node(db.path(), &NodeSpec { broker: &broker, prefix, port: pb, peers: &[pa, pc], extra: &[] });
    let c = client();
    let base = now_ms() - 20 * 60_000;
    let mut ledger = Ledger::default();
    let batch = 400u64;
    let mut next = 0u64;

    // Both nodes take writes while the group settles.
    for round in 0..10 {
        let target = if round % 2 == 0 { &a } else { &b };
        write_acked(&c, &[target], base, next, next + batch).await;
        add(&mut ledger, next, next + batch);
        next += batch;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The two members split the partitions.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (sa, sb) = (assigned(&status(&c, &a).await), assigned(&status(&c, &b).await));
        if !sa.is_empty() && !sb.is_empty() && sa.len() + sb.len() == PARTITIONS as usize {
            assert!(sa.iter().all(|p| !sb.contains(p)), "overlapping assignment {sa:?} {sb:?}");
            break;
        }
        assert!(Instant::now() < deadline, "partitions never split: a {sa:?} b {sb:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    wait_for_all(&c, &a, &ledger, "two nodes, queried on a").await;
    wait_for_all(&c, &b, &ledger, "two nodes, queried on b").await;

    // Kill -9 b while writes keep coming in through a.
    let writer = {
        let c = c.clone();
        let a_url = a.base.clone();
        tokio::spawn(async move {
            let mut written = Vec::new();
            let mut next = next;
            for _ in 0..20 {
                let body = lines(base, next, next + batch);
                loop {
                    let r =
                        c.post(format!("{a_url}/api/v2/write?bucket=b&precision=ms")).body(body.clone()).send().await;
                    if r.is_ok_and(|r| r.status() == 204) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                written.push((next, next + batch));
                next += batch;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (written, next)
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    b.kill9();
    let (written, after_kill) = writer.await.unwrap();
    for (from, to) in written {
        add(&mut ledger, from, to);
    }
    next = after_kill;
    // While b is down, a takes over its partitions after the session timeout.
    wait_for_all(&c, &a, &ledger, "b killed, queried on a").await;

    // b comes back on the same data dir and port; a third node joins.
    let b = start_node(db.path(), &NodeSpec { broker: &broker, prefix, port: pb, peers: &[pa, pc], extra: &[] });
    write_acked(&c, &[&b, &a], base, next, next + batch).await;
    add(&mut ledger, next, next + batch);
    next += batch;
    let cn = start_node(dc.path(), &NodeSpec { broker: &broker, prefix, port: pc, peers: &[pa, pb], extra: &[] });
    for _ in 0..5 {
        write_acked(&c, &[&cn, &a, &b], base, next, next + batch).await;
        add(&mut ledger, next, next + batch);
        next += batch;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let parts =
            [assigned(&status(&c, &a).await), assigned(&status(&c, &b).await), assigned(&status(&c, &cn).await)];
        if parts.iter().all(|p| !p.is_empty()) && parts.iter().map(Vec::len).sum::<usize>() == PARTITIONS as usize {
            break;
        }
        assert!(Instant::now() < deadline, "three nodes never split the partitions: {parts:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for (s, name) in [(&a, "a"), (&b, "b"), (&cn, "c")] {
        wait_for_all(&c, s, &ledger, &format!("three nodes, queried on {name}")).await;
    }
    // Series metadata fans out too.
    let start = format!("{}", base / 1000 - 60);
    let r = json(c.get(a.url("/api/v1/series")).query(&[("match[]", "kt"), ("start", &start)])).await;
    assert_eq!(r["data"].as_array().map(Vec::len), Some(40), "{r}");
    // Lag and apply rate are visible.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = status(&c, &a).await;
        // (During a rebalance a node may briefly hold no partition: wait for one.)
        if let (true, Some(&first)) = (st["caught_up"] == true, assigned(&st).first()) {
            let p = &st["kafka"]["partitions"][first as usize];
            assert_eq!(p["lag"], 0, "{st}");
            assert!(p["applied_records"].as_u64().unwrap() > 0, "{st}");
            break;
        }
        assert!(Instant::now() < deadline, "a never caught up: {st}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let metrics = c.get(a.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for name in ["strata_kafka_consumer_lag{", "strata_kafka_apply_rate{", "strata_kafka_produced_records_total{"] {
        assert!(metrics.contains(name), "{name} missing from /metrics:\n{metrics}");
    }
    drop(broker);
}

/// With the broker gone, a write is refused with 503 and Retry-After, never acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_turns_writes_into_503_with_retry_after() {
    let mut broker = Broker::start(TANSU_CLUSTER);
    let dir = data_dir();
    let extra = [("STRATA_LOG__KAFKA__DELIVERY_TIMEOUT", "2s")];
    let s = start_node(
        dir.path(),
        &NodeSpec { broker: &broker, prefix: "outage", port: free_port(), peers: &[], extra: &extra },
    );
    let c = client();
    let base = now_ms() - 60_000;
    write_acked(&c, &[&s], base, 0, 10).await;
    broker.kill9();
    let t0 = Instant::now();
    let r = c.post(s.url("/api/v2/write?bucket=b&precision=ms")).body(lines(base, 10, 20)).send().await.unwrap();
    assert_eq!(r.status(), 503, "{:?}", r.text().await);
    assert_eq!(r.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    let body = r.text().await.unwrap();
    assert!(body.contains("kafka"), "{body}");
    assert!(t0.elapsed() < Duration::from_secs(15), "took {:?}", t0.elapsed());
    let metrics = c.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(!metrics.contains("strata_kafka_delivery_failures_total{topic=\"outage.local.ingest\"} 0"), "{metrics}");
    let _ = broker.stderr().len();
}

/// A node whose data dir is wiped rebuilds its partitions from the topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wiped_data_dir_is_rebuilt_from_the_topic() {
    let broker = Broker::start(TANSU_CLUSTER);
    let dir = data_dir();
    let port = free_port();
    let spec = NodeSpec { broker: &broker, prefix: "rebuild", port, peers: &[], extra: &[] };
    let s = start_node(dir.path(), &spec);
    let c = client();
    let base = now_ms() - 30 * 60_000;
    let mut ledger = Ledger::default();
    for k in 0..8u64 {
        write_acked(&c, &[&s], base, k * 500, (k + 1) * 500).await;
        add(&mut ledger, k * 500, (k + 1) * 500);
    }
    wait_for_all(&c, &s, &ledger, "before the wipe").await;
    internal(&c, &s, ADMIN_TOKEN, "/internal/flush").await;
    // Flushed offsets reach the consumer group.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = status(&c, &s).await;
        let committed =
            st["kafka"]["partitions"].as_array().unwrap().iter().any(|p| p["committed_offset"].as_i64() > Some(0));
        if committed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no offset committed after a flush: {st}\nnode log:\n{}",
            s.stderr.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status_code, _) = s.terminate();
    assert!(status_code.success());
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
    }
    let s = start_node(dir.path(), &spec);
    wait_for_all(&c, &s, &ledger, "after the wipe").await;
    // Progress lines: the rebuild is announced and every partition reports catching up.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = s.stderr.lock().unwrap().clone();
        assert!(log.contains("rebuilt from the Kafka topic"), "{log}");
        if log.matches("kafka partition caught up").count() == PARTITIONS as usize {
            break;
        }
        assert!(Instant::now() < deadline, "no caught-up line per partition:\n{log}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The ingest status endpoint also describes the embedded log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_status_describes_the_local_log_too() {
    let dir = data_dir();
    let s = Server::start(dir.path(), &[("STRATA_LOG__PARTITIONS", "2"), ("STRATA_ADMIN__TOKEN", ADMIN_TOKEN)]);
    let c = client();
    write_acked(&c, &[&s], now_ms() - 60_000, 0, 10).await;
    let st = status(&c, &s).await;
    assert_eq!(st["kind"], "local", "{st}");
    assert_eq!(st["caught_up"], true, "{st}");
    let next: u64 =
        st["local"]["partitions"].as_array().unwrap().iter().map(|p| p["next_offset"].as_u64().unwrap()).sum();
    assert!(next >= 1, "{st}");
    assert!(st.get("kafka").is_none(), "{st}");
}

/// An edge agent's batch re-sent (its acknowledgement lost) through another
/// node of the cluster: both nodes produce it to the topic, the consumer
/// applying the partition skips the copy, whichever node consumes it; and
/// so does a node that replays the topic after a `kill -9`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resent_edge_batch_is_applied_once_through_kafka_on_any_node() {
    let broker = Broker::start(TANSU_CLUSTER);
    let (dir_a, dir_b) = (data_dir(), data_dir());
    let (port_a, port_b) = (free_port(), free_port());
    let spec_a = NodeSpec { broker: &broker, prefix: "edge", port: port_a, peers: &[port_b], extra: &[] };
    let spec_b = NodeSpec { broker: &broker, prefix: "edge", port: port_b, peers: &[port_a], extra: &[] };
    let a = start_node(dir_a.path(), &spec_a);
    let b = start_node(dir_b.path(), &spec_b);
    let c = client();
    let t0 = now_ms() - 10 * 60_000;
    let batch =
        |value: f64| -> String { (0..40).map(|i| format!("edge_k,device=d{i} value={value} {}\n", t0 + i)).collect() };
    let send = |s: &Server, body: String, edge: bool| {
        let mut r = c.post(s.url("/api/v2/write?precision=ms")).body(body);
        if edge {
            r = r.header("X-Strata-Agent-Id", "gw-kafka.00000000000000aa").header("X-Strata-Agent-Seq", "7");
        }
        async move {
            let r = r.send().await.unwrap();
            let status = r.status();
            assert_eq!(status, 204, "{}", r.text().await.unwrap());
        }
    };
    // A barrier after each step: a plain write of the same series; once it
    // is visible, every record produced before it to those partitions was
    // consumed (a partition is applied in order).
    let barrier = |n: i64| -> (String, i64) {
        let at = t0 + 100_000 * n;
        ((0..40).map(|i| format!("edge_k,device=d{i} value=100 {}\n", at + i)).collect(), at + 30_000)
    };
    send(&a, batch(1.0), true).await;
    send(&b, batch(2.0), true).await; // the re-send, through the other node
    let (body, at) = barrier(1);
    send(&a, body, false).await;
    for s in [&a, &b] {
        wait_until_scalar(&c, s, "sum(count_over_time(edge_k[1m]))", at, 40.0).await;
        assert_eq!(
            scalar(&c, s, "sum(sum_over_time(edge_k[1m]))", t0 + 30_000).await,
            40.0,
            "applied once, the first copy"
        );
    }
    // kill -9 of a node and a re-send to it after its restart (it consumes again from the committed offsets).
    a.kill9();
    let a = start_node(dir_a.path(), &spec_a);
    send(&a, batch(3.0), true).await;
    let (body, at) = barrier(2);
    send(&a, body, false).await;
    for s in [&a, &b] {
        wait_until_scalar(&c, s, "sum(count_over_time(edge_k[1m]))", at, 40.0).await;
        assert_eq!(scalar(&c, s, "sum(sum_over_time(edge_k[1m]))", t0 + 30_000).await, 40.0, "still once");
        assert_eq!(scalar(&c, s, "sum(count_over_time(edge_k[1m]))", t0 + 30_000).await, 40.0);
    }
}

/// Polls until `q` at `at` equals `want` on `s` (90 s at most).
async fn wait_until_scalar(c: &reqwest::Client, s: &Server, q: &str, at: i64, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let got = scalar(c, s, q, at).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{q} at {at}: {got}, {want} expected; node log:\n{}",
            s.stderr.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Two nodes on one topic: a client writes through node A and at once
/// queries node B. With the write's token every answer holds the write
/// (B waits for the node applying each partition, itself or A); without it
/// the answer can be stale (the consumer applies a moment after the
/// acknowledgement) — counted and printed, and it happened in our runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_token_makes_a_query_on_another_node_see_the_write() {
    let broker = Broker::start(TANSU_CLUSTER);
    let (dir_a, dir_b) = (data_dir(), data_dir());
    let (port_a, port_b) = (free_port(), free_port());
    let a = start_node(
        dir_a.path(),
        &NodeSpec { broker: &broker, prefix: "ryw", port: port_a, peers: &[port_b], extra: &[] },
    );
    let b = start_node(
        dir_b.path(),
        &NodeSpec { broker: &broker, prefix: "ryw", port: port_b, peers: &[port_a], extra: &[] },
    );
    let c = client();
    // Both nodes hold partitions before the measured rounds.
    let deadline = Instant::now() + Duration::from_secs(60);
    while assigned(&status(&c, &a).await).is_empty() || assigned(&status(&c, &b).await).is_empty() {
        assert!(Instant::now() < deadline, "the group never split the partitions");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let t = now_ms() - 5_000;
    let (mut stale_without, mut rounds) = (0, 0);
    for round in 0..40u64 {
        // A new series per round, so an answer either has it or not.
        let body = format!("ryw_k,device=r{round} value={round} {t}\n");
        let r = c.post(a.url("/api/v2/write?precision=ms")).body(body).send().await.unwrap();
        assert_eq!(r.status(), 204);
        let token = r.headers()["x-strata-write-token"].to_str().unwrap().to_owned();
        let q = format!("count(ryw_k{{device=\"r{round}\"}})");
        let at = format!("{:.3}", now_ms() as f64 / 1e3);
        let without =
            c.get(b.url("/api/v1/query")).query(&[("query", q.as_str()), ("time", &at)]).send().await.unwrap();
        let v: serde_json::Value = without.json().await.unwrap();
        if v["data"]["result"].as_array().is_none_or(|r| r.is_empty()) {
            stale_without += 1;
        }
        let with = c
            .get(b.url("/api/v1/query"))
            .query(&[("query", q.as_str()), ("time", &at)])
            .header("X-Strata-Read-After", &token)
            .send()
            .await
            .unwrap();
        let status = with.status();
        let v: serde_json::Value = with.json().await.unwrap();
        assert_eq!(status, 200, "{v}");
        assert_eq!(
            v["data"]["result"][0]["value"][1], "1",
            "round {round}: the write is missing with its token {token}: {v}"
        );
        rounds += 1;
    }
    println!(
        "read-your-writes: {rounds} rounds; without the token {stale_without} answers missed the write just acknowledged"
    );
}

#[path = "erasure_kafka.rs"]
mod erasure_kafka;
