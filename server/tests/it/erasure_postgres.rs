//! Right to erasure on two nodes sharing a PostgreSQL registry (a child
//! module of `postgres`, for its server): each node has its own embedded
//! log, hot store and cold tier, and they are `[cluster]` peers (queries fan
//! out). Half of every device's samples are written through node A, half
//! through node B, both rolled cold. A delete acknowledged by node A is
//! invisible on node B at once (A asks its peers to reload the registry
//! before it answers): no query, series or label-values answer of either
//! node shows the device. Both nodes then purge their own tiers; the request
//! completes only when both are done, with a clean verification from each,
//! no byte of the device id left in either node's log, hot or cold
//! directory, and the neighbours' answers unchanged on both nodes.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::Postgres;
use crate::erasure_purge::files_containing;
use crate::harness::*;

const ADMIN: &str = "erasure-pg-admin-token-0123456";
const CLUSTER: &str = "erasure-pg-cluster-token-012345";
const H: i64 = 3_600_000;
const DEVICES: usize = 8;

fn device(i: usize) -> String {
    format!("meter-{i:02}")
}

fn start(dir: &Path, port: u16, peer: u16, registry: &str) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.args(["serve", "--http-addr", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "info")
        .env("STRATA_REGISTRY__URL", registry)
        .env("STRATA_ADMIN__TOKEN", ADMIN)
        .env("STRATA_CLUSTER__TOKEN", CLUSTER)
        .env("STRATA_CLUSTER__PEERS", format!("[\"http://127.0.0.1:{peer}\"]"))
        .env("STRATA_COLD__ENABLED", "true")
        .env("STRATA_COMPACTOR__GRACE", "1m")
        .env("STRATA_COMPACTOR__INTERVAL", "1h")
        .env("STRATA_HOT_STORE__DEFAULT_HOT_TTL", "1d")
        .env("STRATA_ERASURE__CHECK_INTERVAL", "1s")
        .env("STRATA_ERASURE__PURGE_WITHIN", "10m")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    Server::spawn(cmd, format!("http://127.0.0.1:{port}"))
}

/// Old samples (10 h to 6 h ago: rolled cold) and recent ones, every
/// device; `half` 0 takes the even minutes, 1 the odd ones.
fn fleet(now: i64, half: i64) -> String {
    let old0 = (now - 10 * H) / H * H;
    let mut body = String::new();
    for i in 0..DEVICES {
        for m in (half..240).step_by(2) {
            body.push_str(&format!("power,device={} watts={} {}\n", device(i), (m % 17) + i as i64, old0 + m * 60_000));
        }
        for m in (half..50).step_by(2) {
            body.push_str(&format!(
                "power,device={} watts={} {}\n",
                device(i),
                m + 100,
                now - 51 * 60_000 + m * 60_000
            ));
        }
    }
    body
}

async fn post_admin(c: &reqwest::Client, s: &Server, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let r = c.post(s.url(path)).bearer_auth(ADMIN).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

async fn get_json(c: &reqwest::Client, s: &Server, path: &str, params: &[(&str, &str)]) -> serde_json::Value {
    let mut r = c.get(s.url(path)).query(params);
    if path.starts_with("/admin") {
        r = r.bearer_auth(ADMIN);
    }
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

/// `{device: value}` of an instant query grouped by device.
async fn by_device(c: &reqwest::Client, s: &Server, q: &str, at: i64) -> std::collections::BTreeMap<String, f64> {
    query(c, s, q, at).await["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["metric"]["device"].as_str().unwrap().to_owned(), r["value"][1].as_str().unwrap().parse().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_on_node_a_is_invisible_on_node_b_at_once_and_purged_on_both() {
    let pg = Postgres::start();
    let url = pg.url();
    let (dir_a, dir_b) = (data_dir(), data_dir());
    let (pa, pb) = (free_port(), free_port());
    let a = start(dir_a.path(), pa, pb, &url);
    let b = start(dir_b.path(), pb, pa, &url);
    let c = client();
    let now = now_ms();
    for (s, half) in [(&a, 0), (&b, 1)] {
        let (code, text) = write(&c, s, "/api/v2/write?precision=ms", fleet(now, half).into_bytes(), false).await;
        assert_eq!(code, 204, "{text}");
        for path in ["/internal/flush", "/internal/roll"] {
            let r = c.post(s.url(path)).bearer_auth(ADMIN).send().await.unwrap();
            assert_eq!(r.status(), 200, "{path}");
        }
    }
    let gone = device(3);
    let count_q = "sum by (device) (count_over_time(power_watts[11h]))";
    let sum_q = "sum by (device) (sum_over_time(power_watts[11h]))";
    let (counts_before, sums_before) = (by_device(&c, &b, count_q, now).await, by_device(&c, &b, sum_q, now).await);
    assert_eq!(counts_before.len(), DEVICES, "node B sees both nodes' data: {counts_before:?}");
    assert!(counts_before.values().all(|&n| n == 290.0), "{counts_before:?}");
    assert_eq!(by_device(&c, &a, count_q, now).await, counts_before, "node A answers the same");

    // Acknowledged by A; B hides the device at once (no wait, no retry).
    let (code, r) = post_admin(
        &c,
        &a,
        "/admin/v1/tenants/default/delete",
        serde_json::json!({"match": [format!("{{device=\"{gone}\"}}")]}),
    )
    .await;
    assert_eq!(code, 202, "{r}");
    assert_eq!(r["peers"]["hiding"], serde_json::json!([format!("http://127.0.0.1:{pb}")]), "{r}");
    let id = r["id"].as_str().unwrap().to_owned();
    let selector = format!("{{device=\"{gone}\"}}");
    let (start, end) = (((now - 11 * H) / 1000).to_string(), (now / 1000).to_string());
    for (name, s) in [("B", &b), ("A", &a)] {
        let counts = by_device(&c, s, count_q, now).await;
        assert!(!counts.contains_key(&gone), "node {name} still answers {gone} after the ack: {counts:?}");
        assert_eq!(counts.len(), DEVICES - 1, "node {name}: {counts:?}");
        let one = query(&c, s, &format!("count_over_time(power_watts{selector}[11h])"), now).await;
        assert_eq!(one["result"], serde_json::json!([]), "node {name}: {one}");
        let series =
            get_json(&c, s, "/api/v1/series", &[("match[]", &selector), ("start", &start), ("end", &end)]).await;
        assert_eq!(series["data"], serde_json::json!([]), "node {name}: series {series}");
        let values = get_json(&c, s, "/api/v1/label/device/values", &[("start", &start), ("end", &end)]).await;
        let values: Vec<&str> = values["data"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert!(
            !values.contains(&gone.as_str()) && values.len() == DEVICES - 1,
            "node {name}: label values {values:?}"
        );
    }

    // Both nodes purge their own tiers; the request completes once both are done.
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let st = loop {
        let st = get_json(&c, &b, &format!("/admin/v1/deletes/{id}"), &[]).await;
        if st["status"]["state"] == "completed" {
            break st;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not completed: {st:#}\nA:\n{}\nB:\n{}",
            a.stderr.lock().unwrap(),
            b.stderr.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let status = &st["status"];
    assert_eq!(status["nodes_expected"], 2, "{st:#}");
    let nodes = status["nodes"].as_object().unwrap();
    assert_eq!(nodes.len(), 2, "both nodes purged: {st:#}");
    for (node, p) in nodes {
        assert!(p["done_at"].is_i64(), "{node}: {p:#}");
        for step in ["log", "hot", "cold"] {
            assert_eq!(p["steps"][step]["state"], "done", "{node} {step}: {p:#}");
        }
        assert!(p["steps"]["hot"]["rows_removed"].as_u64().unwrap() > 0, "{node} held {gone} hot: {p:#}");
        assert!(p["steps"]["cold"]["rows_removed"].as_u64().unwrap() > 0, "{node} held {gone} cold: {p:#}");
        for k in ["hot_samples", "hot_series", "cold_rows", "log_samples"] {
            assert_eq!(p["verification"][k], 0, "{node} verification {k}: {p:#}");
        }
    }
    assert_eq!(status["bound_met"], true, "{st:#}");
    for (name, s, dir) in [("A", &a, &dir_a), ("B", &b, &dir_b)] {
        let mut want = counts_before.clone();
        want.remove(&gone);
        assert_eq!(by_device(&c, s, count_q, now).await, want, "node {name}: neighbours' counts");
        let mut want = sums_before.clone();
        want.remove(&gone);
        assert_eq!(by_device(&c, s, sum_q, now).await, want, "node {name}: neighbours' sums");
        for sub in ["hot", "log", "cold"] {
            let found = files_containing(&dir.path().join(sub), gone.as_bytes());
            assert!(found.is_empty(), "node {name}: {sub} still holds {gone}: {found:?}");
        }
    }
    b.terminate();
    a.terminate();
}
