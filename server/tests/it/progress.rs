//! Progress of long-running work on the real binary: the embedded log's
//! startup replay and a hot → cold roll are tasks that `GET
//! /api/v1/status/tasks` shows (done/total, scoped per tenant), that the
//! log reports ("task progress" every 2 s while running, "task finished"),
//! and that `/metrics` counts; `GET /api/v1/status/cold` shows the rolled
//! table's snapshots, files and the tenant's watermark.
//!
//! The listener opens before the replay (`strata::startup`): a replay of a
//! few hundred thousand samples is watched while it runs (the tasks API,
//! `/-/ready` answering 503 with its progress, queries and writes refused
//! with 503 and `Retry-After`, `task progress` lines at a short
//! `progress_log_interval`). A node starting on a Kafka topic that holds
//! data shows a `rebuild` task per partition until it caught up.
//!
//! The other checks do not depend on speed: the first replay test checks
//! the finished tasks once the node is ready, the roll test its finished
//! task; running states seen while polling are checked for consistency
//! when seen, and reported either way.

use crate::harness::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ADMIN: &str = "progress-test-admin-token-0123456789";

async fn admin_post(c: &reqwest::Client, s: &Server, path: &str, body: Value) -> Value {
    let r = c.post(s.url(path)).bearer_auth(ADMIN).json(&body).send().await.unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {v}");
    v
}

/// Creates a tenant and returns a read-write token of it.
async fn tenant(c: &reqwest::Client, s: &Server, id: &str) -> String {
    admin_post(c, s, "/admin/v1/tenants", serde_json::json!({"id": id})).await;
    let t =
        admin_post(c, s, &format!("/admin/v1/tenants/{id}/tokens"), serde_json::json!({"access": "read_write"})).await;
    t["token"].as_str().unwrap().to_owned()
}

async fn get_json(c: &reqwest::Client, s: &Server, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut r = c.get(s.url(path));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn tasks_of<'a>(data: &'a Value, list: &str, kind: &str) -> Vec<&'a Value> {
    data[list].as_array().unwrap().iter().filter(|t| t["kind"] == kind).collect()
}

/// The fields of the JSON log lines (`STRATA_LOG_FORMAT=json`) saying `msg` about a task of `kind`.
fn log_fields(log: &str, msg: &str, kind: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| v["fields"].clone())
        .filter(|f| f["message"] == msg && f["task"] == kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_replay_is_a_task_per_partition_in_the_log_the_api_and_metrics() {
    let dir = data_dir();
    // Nothing is flushed before the kill: every record is replayed at the next start.
    let env = [
        ("STRATA_ADMIN__TOKEN", ADMIN),
        ("STRATA_LOG_FORMAT", "json"),
        ("STRATA_HOT_STORE__FLUSH_INTERVAL", "1h"),
        ("STRATA_LOG__PARTITIONS", "4"),
    ];
    let s = Server::start(dir.path(), &env);
    let c = client();
    let acme = tenant(&c, &s, "acme").await;
    let now = now_ms();
    for batch in 0..200i64 {
        let body: String = (0..50)
            .map(|d| format!("replay_temp,device=d{d} value={} {}\n", batch + d, now - (200 - batch) * 1000))
            .collect();
        let r = c.post(s.url("/api/v2/write?precision=ms")).bearer_auth(&acme).body(body).send().await.unwrap();
        assert_eq!(r.status(), 204);
    }
    // What the replay must cover: each partition's records past the hot store's flushed offset.
    let (status, ingest) = get_json(&c, &s, "/api/v1/status/ingest", Some(ADMIN)).await;
    assert_eq!(status, 200, "{ingest}");
    let flushed = &ingest["data"]["hot_flushed_offsets"];
    let mut expected = std::collections::BTreeMap::new();
    for p in ingest["data"]["local"]["partitions"].as_array().unwrap() {
        let part = p["partition"].as_u64().unwrap();
        let from = flushed.get(part.to_string()).and_then(Value::as_u64).unwrap_or(0);
        expected.insert(part, p["next_offset"].as_u64().unwrap() - from);
    }
    let records: u64 = expected.values().sum();
    assert!(records >= 200, "every write is at least one log record: {expected:?}");
    s.kill9();

    let s = Server::start(dir.path(), &env);
    // The listener opened after the replay: its tasks ended, one per partition.
    let (status, body) = get_json(&c, &s, "/api/v1/status/tasks", Some(ADMIN)).await;
    assert_eq!(status, 200, "{body}");
    let data = &body["data"];
    assert_eq!(data["scope"], "all");
    assert!(tasks_of(data, "running", "replay").is_empty(), "{data}");
    let replays = tasks_of(data, "recent", "replay");
    assert_eq!(replays.len(), 4, "one replay task per partition: {data}");
    for t in &replays {
        let p = t["partition"].as_u64().unwrap();
        assert_eq!(t["state"], "finished", "{t}");
        assert_eq!(t["unit"], "records");
        assert_eq!(t["done"], t["total"], "{t}");
        assert_eq!(t["done"].as_u64().unwrap(), expected[&p], "partition {p}: {t}");
        assert!(t["tenant"].is_null() && t["started_ms"].as_i64().unwrap() > 0, "{t}");
    }
    // The data is back (the replay really applied the records).
    let (status, q) = get_json(&c, &s, "/api/v1/query?query=count(replay_temp)", Some(&acme)).await;
    assert_eq!(status, 200, "{q}");
    assert_eq!(q["data"]["result"][0]["value"][1], "50", "{q}");

    // A tenant's token sees none of the node-wide replays; no token is refused.
    let (status, mine) = get_json(&c, &s, "/api/v1/status/tasks", Some(&acme)).await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["data"]["scope"], "tenant");
    assert!(tasks_of(&mine["data"], "recent", "replay").is_empty(), "{mine}");
    let (status, _) = get_json(&c, &s, "/api/v1/status/tasks", None).await;
    assert_eq!(status, 401);

    // The log: a "task finished" line per partition with the same figures
    // (the reporter logs within its 2 s period); "task progress" lines, if
    // the replay ran long enough to get any, count up to the total.
    let log = s.wait_for_log(
        |l| log_fields(l, "task finished", "replay").len() >= 4,
        "no 'task finished' log line for each partition's replay",
    );
    let finished = log_fields(&log, "task finished", "replay");
    let mut logged: u64 = 0;
    for f in &finished {
        assert_eq!(f["done"], f["total"], "{f}");
        assert_eq!(f["unit"], "records");
        logged += f["done"].as_u64().unwrap();
    }
    assert_eq!(logged, records, "{finished:?}");
    let progress = log_fields(&log, "task progress", "replay");
    for f in &progress {
        let (done, total) = (f["done"].as_u64().unwrap(), f["total"].as_u64().unwrap());
        assert!(done <= total && f["per_sec"].is_u64() && f["eta_secs"].is_i64(), "{f}");
    }
    println!("replay of {records} records: {} 'task progress' lines while running", progress.len());

    let m = c.get(s.url("/metrics")).bearer_auth(ADMIN).send().await.unwrap().text().await.unwrap();
    let ended: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("strata_progress_ended_tasks_total{task=\"replay\"} "))
        .unwrap_or_else(|| panic!("no replay counter in /metrics:\n{m}"))
        .parse()
        .unwrap();
    assert!(ended >= 4, "{m}");
    assert!(m.contains("strata_progress_running_tasks{task=\"roll\"} 0"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roll_is_a_tenant_task_and_the_cold_status_shows_its_table() {
    let dir = data_dir();
    let env = [
        ("STRATA_ADMIN__TOKEN", ADMIN),
        ("STRATA_COLD__ENABLED", "true"),
        ("STRATA_COMPACTOR__GRACE", "1m"),
        ("STRATA_COMPACTOR__INTERVAL", "1h"),
        ("STRATA_HOT_STORE__BUCKET", "10m"),
    ];
    let s = Server::start(dir.path(), &env);
    let c = client();
    let acme = tenant(&c, &s, "acme").await;
    let other = tenant(&c, &s, "other").await;
    // Twenty-four sealed 10-minute buckets of acme, one of other.
    let bucket = 600_000i64;
    let start = (now_ms() - 6 * 3_600_000) / bucket * bucket;
    let body: String = (0..24i64)
        .flat_map(|b| {
            (0..5).map(move |d| format!("roll_temp,device=d{d} value={} {}\n", b + d, start + b * bucket + d * 1000))
        })
        .collect();
    let r = c.post(s.url("/api/v2/write?precision=ms")).bearer_auth(&acme).body(body).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = c
        .post(s.url("/api/v2/write?precision=ms"))
        .bearer_auth(&other)
        .body(format!("other_temp,device=x value=1 {start}\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    internal(&c, &s, ADMIN, "/internal/flush").await;

    // Roll while polling acme's view of the tasks.
    let roll = {
        let (c, url) = (c.clone(), s.url("/internal/roll"));
        tokio::spawn(async move { c.post(url).bearer_auth(ADMIN).send().await.unwrap().json::<Value>().await.unwrap() })
    };
    let mut seen_running = Vec::new();
    while !roll.is_finished() {
        let (status, body) = get_json(&c, &s, "/api/v1/status/tasks", Some(&acme)).await;
        assert_eq!(status, 200, "{body}");
        for t in tasks_of(&body["data"], "running", "roll") {
            let (done, total) = (t["done"].as_u64().unwrap(), t["total"].as_u64().unwrap());
            assert!(done <= total && total == 24, "{t}");
            assert_eq!(t["tenant"], "acme");
            seen_running.push(done);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rolled = roll.await.unwrap();
    assert_eq!(rolled["status"], "success", "{rolled}");
    assert_eq!(rolled["buckets"], 25, "{rolled}");
    println!("roll of 24 buckets: running states seen while polling (done): {seen_running:?}");
    assert!(seen_running.windows(2).all(|w| w[0] <= w[1]), "done never goes back: {seen_running:?}");

    let (_, mine) = get_json(&c, &s, "/api/v1/status/tasks", Some(&acme)).await;
    let rolls = tasks_of(&mine["data"], "recent", "roll");
    assert_eq!(rolls.len(), 1, "acme sees its own roll only: {mine}");
    let t = rolls[0];
    assert_eq!(
        (t["tenant"].as_str(), t["state"].as_str(), t["unit"].as_str()),
        (Some("acme"), Some("finished"), Some("buckets"))
    );
    assert_eq!((t["done"].as_u64(), t["total"].as_u64()), (Some(24), Some(24)), "{t}");
    let (_, theirs) = get_json(&c, &s, "/api/v1/status/tasks", Some(&other)).await;
    let rolls = tasks_of(&theirs["data"], "recent", "roll");
    assert_eq!(rolls.len(), 1, "{theirs}");
    assert_eq!((rolls[0]["tenant"].as_str(), rolls[0]["done"].as_u64()), (Some("other"), Some(1)));
    let (_, all) = get_json(&c, &s, "/api/v1/status/tasks", Some(ADMIN)).await;
    assert_eq!(tasks_of(&all["data"], "recent", "roll").len(), 2, "{all}");

    // The cold status: acme's table, its watermark past the rolled buckets; other's token sees other only.
    let (status, cold) = get_json(&c, &s, "/api/v1/status/cold", Some(&acme)).await;
    assert_eq!(status, 200, "{cold}");
    assert_eq!(cold["data"]["enabled"], true);
    let tenants = cold["data"]["tenants"].as_array().unwrap();
    assert_eq!(tenants.len(), 1, "{cold}");
    assert_eq!(tenants[0]["tenant"], "acme");
    assert!(tenants[0]["watermark_ms"].as_i64().unwrap() >= start + 24 * bucket, "{cold}");
    let tables = tenants[0]["tables"].as_array().unwrap();
    let names: Vec<&str> = tables.iter().map(|t| t["table"].as_str().unwrap()).collect();
    assert_eq!(names, ["samples", "rollup 5m", "rollup 1h", "rollup 1d", "series"], "{cold}");
    let samples = &tables[0];
    assert_eq!(samples["exists"], true, "{cold}");
    assert_eq!(samples["records"], 120, "{cold}");
    assert!(samples["snapshots"].as_u64().unwrap() >= 1 && samples["data_files"].as_u64().unwrap() >= 1, "{cold}");
    assert!(samples["bytes"].as_u64().unwrap() > 0, "{cold}");
    let (_, cold_other) = get_json(&c, &s, "/api/v1/status/cold", Some(&other)).await;
    let t = cold_other["data"]["tenants"].as_array().unwrap();
    assert_eq!((t.len(), t[0]["tenant"].as_str()), (1, Some("other")), "{cold_other}");
    assert!(!cold_other.to_string().contains("acme"), "{cold_other}");
    let (_, cold_all) = get_json(&c, &s, "/api/v1/status/cold", Some(ADMIN)).await;
    assert_eq!(cold_all["data"]["tenants"].as_array().unwrap().len(), 2, "{cold_all}");
}

/// Starts `strata serve` without waiting for `/-/ready` (the caller watches the startup).
fn spawn_starting(dir: &std::path::Path, env: &[(&str, &str)]) -> Server {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.args(["serve", "--http-addr", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start strata");
    let stderr = capture_stderr(&mut child);
    Server { child, base: format!("http://127.0.0.1:{port}"), stderr }
}

/// Requests and lines per request of the replay test's log: about a second
/// or more of replay in the test profile (write and replay take ~4 s here).
const REPLAY_REQUESTS: i64 = 240;
const REPLAY_LINES: i64 = 1000;

/// What the poll loop saw while the node started.
#[derive(Default, Debug)]
struct Seen {
    /// (task id, partition, done, total) of each running replay task observed.
    running: Vec<(u64, u64, u64, u64)>,
    /// Bodies of `/-/ready` while it answered 503.
    not_ready: Vec<String>,
    /// Queries and writes refused with 503 while starting.
    refused_queries: usize,
    refused_writes: usize,
}

/// Polls the starting node until `/-/ready` answers 200: its tasks, its
/// readiness and, every few rounds, a query and a write, each checked.
async fn watch_startup(c: &reqwest::Client, s: &Server, expected: &str) -> Seen {
    let mut seen = Seen::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    for round in 0u64.. {
        assert!(Instant::now() < deadline, "not ready within 60 s: {seen:?}\n{}", s.stderr.lock().unwrap());
        let (_, tasks) = get_json(c, s, "/api/v1/status/tasks", Some(ADMIN)).await;
        for t in tasks_of(&tasks["data"], "running", "replay") {
            let (done, total) = (t["done"].as_u64().unwrap(), t["total"].as_u64().unwrap());
            assert!(done <= total, "{t}");
            seen.running.push((t["id"].as_u64().unwrap(), t["partition"].as_u64().unwrap(), done, total));
        }
        if round % 4 == 1 {
            // A query answers 503 while starting, or (sent as the node turned ready) the whole answer.
            let r = c
                .get(s.url("/api/v1/query"))
                .query(&[("query", "sum(count_over_time(live_temp[1h]))")])
                .bearer_auth(ADMIN)
                .send()
                .await
                .unwrap();
            let (status, retry) = (r.status().as_u16(), r.headers().get("retry-after").cloned());
            let v: Value = r.json().await.unwrap();
            if status == 503 {
                assert_eq!(retry.as_ref().map(|h| h.to_str().unwrap()), Some("2"), "{v}");
                assert_eq!(
                    (v["status"].as_str(), v["errorType"].as_str()),
                    (Some("error"), Some("unavailable")),
                    "{v}"
                );
                assert!(v["error"].as_str().unwrap().starts_with("the node is starting ("), "{v}");
                seen.refused_queries += 1;
            } else {
                assert_eq!(status, 200, "{v}");
                assert_eq!(v["data"]["result"][0]["value"][1], expected, "never a partial answer: {v}");
            }
            let r = c
                .post(s.url("/api/v2/write?precision=ms"))
                .body(format!("live_probe,device=p value=1 {}\n", now_ms()))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let retry = r.headers().get("retry-after").cloned();
            let body = r.text().await.unwrap();
            if status == 503 {
                assert!(retry.is_some(), "{body}");
                let v: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(v["code"], "unavailable", "{v}");
                seen.refused_writes += 1;
            } else {
                assert_eq!(status, 204, "{body}");
            }
        }
        let r = c.get(s.url("/-/ready")).send().await.unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        if status == 200 {
            return seen;
        }
        assert_eq!(status, 503, "{body}");
        assert!(body.starts_with("Strata is not ready: "), "{body}");
        seen.not_ready.push(body);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_startup_replay_is_watched_while_it_runs_and_nothing_is_answered_before_it_ended() {
    let dir = data_dir();
    let env = [
        ("STRATA_ADMIN__TOKEN", ADMIN),
        ("STRATA_LOG_FORMAT", "json"),
        ("STRATA_HOT_STORE__FLUSH_INTERVAL", "1h"),
        ("STRATA_LOG__PARTITIONS", "2"),
        ("STRATA_PROGRESS_LOG_INTERVAL", "100ms"),
    ];
    let s = Server::start(dir.path(), &env);
    let c = client();
    let t0 = Instant::now();
    let start = now_ms() - 50 * 60_000;
    let bodies: Vec<String> = (0..REPLAY_REQUESTS)
        .map(|r| {
            (0..REPLAY_LINES)
                .map(|l| {
                    format!("live_temp,device=d{} value={} {}\n", l % 100, r + l, start + (r * 10 + l / 100) * 100)
                })
                .collect()
        })
        .collect();
    // Four writers at once: the log's group commit takes their records together.
    let mut writers = tokio::task::JoinSet::new();
    for chunk in bodies.chunks(bodies.len().div_ceil(4)) {
        let (c, url, chunk) = (c.clone(), s.url("/api/v2/write?precision=ms"), chunk.to_vec());
        writers.spawn(async move {
            for body in chunk {
                let r = c.post(&url).body(body).send().await.unwrap();
                assert_eq!(r.status(), 204);
            }
        });
    }
    while let Some(r) = writers.join_next().await {
        r.unwrap();
    }
    let expected = (REPLAY_REQUESTS * REPLAY_LINES).to_string();
    let wrote = t0.elapsed();
    s.kill9();

    let t1 = Instant::now();
    let s = spawn_starting(dir.path(), &env);
    while http_status(&s.base, "/-/healthy") != Some(200) {
        assert!(t1.elapsed() < Duration::from_secs(30), "listener never opened:\n{}", s.stderr.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let listener_open = t1.elapsed();
    let seen = watch_startup(&c, &s, &expected).await;
    let ready = t1.elapsed();
    println!(
        "wrote {expected} samples in {wrote:?}; restart: listener open after {listener_open:?}, ready after {ready:?}; \
         seen while starting: {} running replay states, {} /-/ready 503s, {} queries and {} writes refused",
        seen.running.len(),
        seen.not_ready.len(),
        seen.refused_queries,
        seen.refused_writes
    );
    // Live: a running replay with done < total whose done rose between two looks.
    assert!(seen.running.iter().any(|&(_, _, done, total)| done < total), "no running replay seen: {seen:?}");
    let mut by_task: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for &(id, _, done, _) in &seen.running {
        by_task.entry(id).or_default().push(done);
    }
    assert!(by_task.values().all(|d| d.windows(2).all(|w| w[0] <= w[1])), "done never goes back: {by_task:?}");
    assert!(by_task.values().any(|d| d.first() < d.last()), "no replay seen progressing: {by_task:?}");
    assert!(
        seen.not_ready.iter().any(|b| b.starts_with("Strata is not ready: replaying the ingest log: partition ")),
        "/-/ready never said which partition it replays: {:?}",
        seen.not_ready
    );
    assert!(seen.refused_queries > 0 && seen.refused_writes > 0, "{seen:?}");

    // Ready: the whole data, the replay tasks finished.
    let (status, q) = get_json(&c, &s, "/api/v1/query?query=sum(count_over_time(live_temp[1h]))", Some(ADMIN)).await;
    assert_eq!(status, 200, "{q}");
    assert_eq!(q["data"]["result"][0]["value"][1], expected.as_str(), "{q}");
    let (_, tasks) = get_json(&c, &s, "/api/v1/status/tasks", Some(ADMIN)).await;
    let replays = tasks_of(&tasks["data"], "recent", "replay");
    assert_eq!(replays.len(), 2, "{tasks}");
    assert!(replays.iter().all(|t| t["state"] == "finished" && t["done"] == t["total"]), "{tasks}");

    // The log: the listener opened early, progress lines while replaying, then ready.
    let log = s
        .wait_for_log(|l| log_fields(l, "task finished", "replay").len() >= 2, "no 'task finished' line per partition");
    let progress = log_fields(&log, "task progress", "replay");
    assert!(
        progress.iter().any(|f| f["done"].as_u64() < f["total"].as_u64() && f["percent"].as_f64() < Some(100.0)),
        "no 'task progress' line while the replay ran: {progress:?}"
    );
    let at = |needle: &str| log.find(needle).unwrap_or_else(|| panic!("no {needle:?} in the log:\n{log}"));
    let open = at("HTTP listener open while the node starts");
    let replaying = at("replaying the ingest log past the hot store's flushed offsets");
    let ready_line = at("strata is ready");
    assert!(open < replaying && replaying < ready_line, "startup lines out of order:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_starting_on_a_kafka_topic_with_data_shows_a_rebuild_task_per_partition_until_caught_up() {
    use crate::kafka::{ADMIN_TOKEN, Broker, NodeSpec, PARTITIONS, scalar, start_node, status, write_acked};
    let broker = Broker::start(crate::kafka::TANSU_CLUSTER);
    let extra = [("STRATA_LOG_FORMAT", "json"), ("STRATA_PROGRESS_LOG_INTERVAL", "200ms")];
    let (dir_a, dir_b) = (data_dir(), data_dir());
    let spec = NodeSpec { broker: &broker, prefix: "progress", port: free_port(), peers: &[], extra: &extra };
    let a = start_node(dir_a.path(), &spec);
    let c = client();
    let base = now_ms() - 10 * 60_000;
    for k in 0..4u64 {
        write_acked(&c, &[&a], base, k * 500, (k + 1) * 500).await;
    }
    // Acknowledged: in the topic (acks=all). The node leaves; another with an empty data dir starts.
    let (code, _) = a.terminate();
    assert!(code.success());
    let spec = NodeSpec { port: free_port(), ..spec };
    let b = start_node(dir_b.path(), &spec);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut running_seen = Vec::new();
    let finished = loop {
        let (code, tasks) = get_json(&c, &b, "/api/v1/status/tasks", Some(ADMIN_TOKEN)).await;
        assert_eq!(code, 200, "{tasks}");
        for t in tasks_of(&tasks["data"], "running", "rebuild") {
            running_seen.push(t.clone());
        }
        let finished: Vec<Value> = tasks_of(&tasks["data"], "recent", "rebuild")
            .into_iter()
            .filter(|t| t["state"] == "finished")
            .cloned()
            .collect();
        if finished.len() == PARTITIONS as usize {
            break finished;
        }
        assert!(
            Instant::now() < deadline,
            "not every partition's rebuild finished: {tasks}\n{}",
            b.stderr.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let states: std::collections::BTreeSet<(u64, u64, Option<u64>)> = running_seen
        .iter()
        .map(|t| (t["partition"].as_u64().unwrap(), t["done"].as_u64().unwrap(), t["total"].as_u64()))
        .collect();
    println!("rebuild tasks seen running, as (partition, done, total): {states:?}");
    assert!(
        tasks_of(&get_json(&c, &b, "/api/v1/status/tasks", Some(ADMIN_TOKEN)).await.1["data"], "running", "replay")
            .is_empty()
    );
    // Each partition's task counted the records up to its high watermark.
    let (st, high) = loop {
        let st = status(&c, &b).await;
        let high: BTreeMap<u64, u64> = st["kafka"]["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| Some((p["partition"].as_u64()?, p["high_watermark"].as_u64()?)))
            .collect();
        if high.len() == PARTITIONS as usize {
            break (st, high);
        }
        assert!(Instant::now() < deadline, "no high watermark of every partition: {st}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut partitions: Vec<u64> = finished.iter().map(|t| t["partition"].as_u64().unwrap()).collect();
    partitions.sort_unstable();
    assert_eq!(partitions, (0..u64::from(PARTITIONS)).collect::<Vec<_>>(), "{finished:?}");
    for t in &finished {
        let p = t["partition"].as_u64().unwrap();
        assert_eq!((t["unit"].as_str(), t["tenant"].as_str()), (Some("records"), None), "{t}");
        assert_eq!(t["done"].as_u64(), Some(high[&p]), "partition {p} rebuilt up to its high watermark: {t} {st}");
        assert_eq!(t["done"], t["total"], "{t}");
    }
    for t in &running_seen {
        assert!(t["total"].is_null() || t["done"].as_u64() <= t["total"].as_u64(), "{t}");
    }
    assert!(high.values().sum::<u64>() > 0, "{st}");
    // Every acknowledged sample is on the new node, and the log said each rebuild finished.
    assert_eq!(scalar(&c, &b, "sum(count_over_time(kt[1h]))", now_ms()).await, 2000.0);
    let log = b.wait_for_log(
        |l| log_fields(l, "task finished", "rebuild").len() >= PARTITIONS as usize,
        "no 'task finished' line per rebuilt partition",
    );
    assert_eq!(log_fields(&log, "task finished", "rebuild").len(), PARTITIONS as usize, "{log}");
}
