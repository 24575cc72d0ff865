//! A data region that accepts connections but never answers (its process
//! stopped with SIGSTOP: the kernel still completes TCP handshakes, nothing
//! reads them): a federated query at another region answers within
//! `[federation] timeout` with Prometheus warnings naming what is missing,
//! `partial_response=false` turns that into 503, and after SIGCONT the
//! answer is whole again.
//!
//! Three regions, no proxies: `us-east` asks; `eu-central` (`eu:
//! aggregates`, asked for partial aggregations) and `br-south` (`br: raw`,
//! asked for raw series) are the ones stopped.

use crate::harness::{Server, client, now_ms};
use crate::regions::{ADMIN, Region, admin_post, close, free_port, get_json, start, value_of};
use std::process::Command;
use std::time::{Duration, Instant};

/// `[federation] timeout` of these regions (set by `regions::config`).
const FEDERATION_TIMEOUT: Duration = Duration::from_secs(3);

fn signal(s: &Server, sig: &str) {
    let ok = Command::new("kill").args([sig, &s.child.id().to_string()]).status().unwrap().success();
    assert!(ok, "kill {sig}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_that_accepts_but_never_answers_is_a_warning_within_the_timeout() {
    let all = [("us-east", "us"), ("eu-central", "eu"), ("br-south", "br")].map(|(name, jurisdiction)| {
        let port = free_port();
        Region { name, jurisdiction, port, proxy_port: port }
    });
    let dir = crate::harness::data_dir();
    let servers: Vec<Server> = all.iter().map(|r| start(r, &all, dir.path())).collect();
    let c = client();
    let policy = serde_json::json!({
        "id": "agro",
        "home_region": "us-east",
        "data_regions": ["us-east", "eu-central", "br-south"],
        "allowed_query_regions": ["us-east", "eu-central", "br-south"],
        "exports": {"us": "raw", "eu": "aggregates", "br": "raw"},
    });
    let mut tokens = Vec::new();
    for s in &servers {
        admin_post(&c, s, "/admin/v1/tenants", policy.clone()).await;
        let t = admin_post(&c, s, "/admin/v1/tenants/agro/tokens", serde_json::json!({"access": "read_write"})).await;
        tokens.push(t["token"].as_str().unwrap().to_owned());
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // Four devices per region, values known.
    let t = now_ms() - 30_000;
    let mut sums = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        let mut body = String::new();
        let mut sum = 0.0;
        for d in 0..4 {
            let v = (i * 10 + d) as f64 + 0.25;
            body.push_str(&format!("stall,device=d-{}-{d} v={v} {}\n", all[i].name, t * 1_000_000));
            sum += v;
        }
        sums.push(sum);
        let r = c.post(s.url("/api/v2/write")).bearer_auth(&tokens[i]).body(body).send().await.unwrap();
        assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    }
    let total: f64 = sums.iter().sum();
    let at = format!("{:.3}", (t + 1000) as f64 / 1000.0);
    let params = |q: &str, strict: bool| {
        let mut p = vec![("query", q.to_owned()), ("time", at.clone())];
        if strict {
            p.push(("partial_response", "false".to_owned()));
        }
        p
    };
    let us = &servers[0];

    // Whole: us raw, eu pushed down, br raw.
    let (st, v) = get_json(&c, us, "/api/v1/query", &tokens[0], &params("sum(stall_v)", false)).await;
    assert_eq!(st, 200, "{v}");
    assert!(close(value_of(&v), total), "{v} vs {total}");
    assert!(v["warnings"].as_array().is_none_or(|w| w.is_empty()), "{v}");

    // eu-central and br-south stop answering (their sockets still accept).
    signal(&servers[1], "-STOP");
    signal(&servers[2], "-STOP");
    let started = Instant::now();
    let (st, v) = get_json(&c, us, "/api/v1/query", &tokens[0], &params("sum(stall_v)", false)).await;
    let took = started.elapsed();
    eprintln!("query with two stopped regions answered in {took:?} (federation timeout {FEDERATION_TIMEOUT:?})");
    assert_eq!(st, 200, "{v}");
    assert!(close(value_of(&v), sums[0]), "us data only: {v} vs {}", sums[0]);
    let warnings = v["warnings"].to_string();
    assert!(warnings.contains("br-south"), "the raw region is named: {v}");
    assert!(warnings.contains("eu-central") && warnings.contains("jurisdiction eu"), "eu is named: {v}");
    // Bounded by the federation timeout (the raw reads and the partials are
    // asked at the same time and each waits at most that long: 3.0 s on a
    // quiet host), far below the query's own 120 s limit and the client's
    // 30 s; the margin is for a loaded host.
    assert!(took < FEDERATION_TIMEOUT + Duration::from_secs(15), "{took:?}");

    let (st, v) = get_json(&c, us, "/api/v1/query", &tokens[0], &params("sum(stall_v)", true)).await;
    assert_eq!(st, 503, "partial_response=false: {v}");
    assert_eq!(v["errorType"], "unavailable", "{v}");
    let (st, v) = get_json(&c, us, "/api/v1/query", &tokens[0], &params("count(stall_v)", true)).await;
    assert_eq!(st, 503, "{v}");

    // us-east's audit log says which requests went unanswered.
    let (st, v) = get_json(&c, us, "/admin/v1/audit", ADMIN, &[("decision", "unanswered".into())]).await;
    assert_eq!(st, 200, "{v}");
    let unanswered = v["data"].as_array().unwrap();
    for region in ["eu-central", "br-south"] {
        assert!(unanswered.iter().any(|r| r["data_region"] == region), "{region} not recorded as unanswered: {v}");
    }

    // Back: whole again, no warning.
    signal(&servers[1], "-CONT");
    signal(&servers[2], "-CONT");
    let (st, v) = get_json(&c, us, "/api/v1/query", &tokens[0], &params("sum(stall_v)", true)).await;
    assert_eq!(st, 200, "{v}");
    assert!(close(value_of(&v), total), "{v} vs {total}");
    assert!(v["warnings"].as_array().is_none_or(|w| w.is_empty()), "{v}");
    let (_, v) = get_json(&c, us, "/api/v1/query", &tokens[0], &params("count(stall_v)", false)).await;
    assert_eq!(value_of(&v), 12.0, "{v}");
}
