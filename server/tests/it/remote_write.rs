//! Prometheus remote write 1.0 end to end: a real Prometheus scrapes itself
//! every second and remote-writes to the real `strata` binary with a bearer
//! token; the series must become queryable in Strata with their labels.
//!
//! Needs the `prometheus` binary on `PATH` (`scripts/install-test-deps.sh`
//! installs Debian's package); without it the test fails, it never skips.

use crate::harness::*;
use std::time::{Duration, Instant};
use strata_test_support::prometheus::{self, Prometheus};

const TOKEN: &str = "rw-e2e-token-1";
const TENANT: &str = "promtenant";

fn prometheus_config(port: u16, write_url: &str) -> String {
    format!(
        r#"global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:{port}"]
remote_write:
  - url: "{write_url}"
    authorization:
      credentials: "{TOKEN}"
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
    metadata_config:
      send_interval: 1s
"#
    )
}

/// An instant query as the test's tenant: `(HTTP status, body)`.
async fn query_as(c: &reqwest::Client, s: &Server, token: Option<&str>, q: &str) -> (u16, serde_json::Value) {
    let t = format!("{:.3}", now_ms() as f64 / 1000.0);
    let mut req = c.get(s.url("/api/v1/query")).query(&[("query", q), ("time", &t)]);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// The result series of a successful query as the tenant.
async fn series(c: &reqwest::Client, s: &Server, q: &str) -> Vec<serde_json::Value> {
    let (status, v) = query_as(c, s, Some(TOKEN), q).await;
    assert_eq!((status, &v["status"]), (200, &serde_json::json!("success")), "{q}: {v}");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// Waits (bounded) until `q` returns at least one series.
async fn wait_for(c: &reqwest::Client, s: &Server, p: &Prometheus, q: &str) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let result = series(c, s, q).await;
        if !result.is_empty() {
            return result;
        }
        assert!(
            Instant::now() < deadline,
            "no {q} in Strata after 60 s.\nprometheus log:\n{}\nstrata log:\n{}",
            p.log(),
            s.stderr.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_remote_writes_into_strata() {
    prometheus::binary(); // fail fast, with install instructions, before starting anything
    let dir = data_dir();
    let tokens = format!("{{ \"{TOKEN}\" = \"{TENANT}\" }}");
    let s = Server::start(&dir.path().join("strata"), &[("STRATA_AUTH__TOKENS", &tokens)]);
    let prom_dir = dir.path().join("prometheus");
    std::fs::create_dir_all(&prom_dir).unwrap();
    let write_url = s.url("/api/v1/write");
    let p = Prometheus::start(&prom_dir, |port| prometheus_config(port, &write_url));
    let c = client();

    let up = wait_for(&c, &s, &p, r#"up{job="prometheus"}"#).await;
    assert_eq!(up.len(), 1, "{up:?}");
    assert_eq!(up[0]["metric"]["instance"], format!("127.0.0.1:{}", p.port()));
    assert_eq!(up[0]["value"][1], "1");

    let build = wait_for(&c, &s, &p, r#"prometheus_build_info{job="prometheus"}"#).await;
    let labels = &build[0]["metric"];
    assert_eq!(labels["__name__"], "prometheus_build_info");
    assert!(labels["version"].as_str().is_some_and(|v| v.starts_with('2') || v.starts_with('3')), "{labels}");
    assert!(labels["goversion"].as_str().is_some_and(|v| v.starts_with("go")), "{labels}");

    // Many metric families arrive, histogram buckets with their `le` label among them.
    let names = series(&c, &s, r#"count by (__name__) ({job="prometheus"})"#).await;
    assert!(names.len() > 50, "only {} metric names arrived", names.len());
    let buckets = wait_for(&c, &s, &p, r#"prometheus_http_request_duration_seconds_bucket{le="+Inf"}"#).await;
    assert!(buckets.iter().all(|b| b["metric"]["handler"].is_string()), "{buckets:?}");

    // Prometheus itself reports that Strata refused nothing (the counter is remote-written too).
    let failed = wait_for(&c, &s, &p, "prometheus_remote_storage_samples_failed_total").await;
    assert!(failed.iter().all(|f| f["value"][1] == "0"), "Prometheus saw failed sends: {failed:?}\n{}", p.log());

    // The data belongs to the token's tenant: without the token there is no access.
    let (status, body) = query_as(&c, &s, None, "up").await;
    assert_eq!(status, 401, "{body}");
}
