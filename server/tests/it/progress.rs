//! Progress of long-running work on the real binary: the embedded log's
//! startup replay and a hot → cold roll are tasks that `GET
//! /api/v1/status/tasks` shows (done/total, scoped per tenant), that the
//! log reports ("task progress" every 2 s while running, "task finished"),
//! and that `/metrics` counts; `GET /api/v1/status/cold` shows the rolled
//! table's snapshots, files and the tenant's watermark.
//!
//! Nothing here depends on speed: the replay is checked after startup (the
//! HTTP listener opens once replay is done) and the roll by its finished
//! task; a running state seen while polling during the roll is checked for
//! consistency when it is seen, and reported either way.

use crate::harness::*;
use serde_json::Value;
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

fn wait_for_log(s: &Server, what: impl Fn(&str) -> bool, why: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = s.stderr.lock().unwrap().clone();
        if what(&log) {
            return log;
        }
        assert!(Instant::now() < deadline, "{why}; server log:\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    }
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
    let log = wait_for_log(
        &s,
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
    let r = c.post(s.url("/internal/flush")).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(r.status(), 200);

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
    assert_eq!(names, ["samples", "rollup 5m", "rollup 1h", "series"], "{cold}");
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
