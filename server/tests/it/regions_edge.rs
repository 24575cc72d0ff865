//! Failover within a jurisdiction through the edge agent while federation
//! is on: the real `strata-edge` (endpoints `us-east`, then `us-west`;
//! jurisdiction `us`) writes to `us-east`; `us-east` is killed and the
//! agent delivers to `us-west`; `us-east` restarts. A federated query from
//! `eu-central` then counts every sample once: no gap, and no double count
//! at the seam, where the test also stores the last pre-outage samples in
//! `us-west` a second time (what a batch `us-east` stored but never
//! acknowledged becomes when the agent re-sends it to the sibling). Checked
//! with `us: raw` (eu merges both us regions per series and timestamp) and
//! `us: aggregates` (us-east evaluates the partials over its jurisdiction).
//!
//! `strata-edge` is looked up next to the `strata` binary in the target
//! directory; `cargo test --workspace` builds both (else `cargo build -p
//! strata-edge`).

use crate::harness::{Server, client, now_ms};
use crate::regions::{ADMIN, Region, admin_post, close, config, free_port, get_json, value_of};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "edge-failover-token-agro-01";

fn edge_binary() -> PathBuf {
    let strata = Path::new(env!("CARGO_BIN_EXE_strata"));
    let path = strata.with_file_name(format!("strata-edge{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p strata-edge` (`cargo test --workspace` does)",
        path.display()
    );
    path
}

fn start(r: &Region, all: &[Region], dir: &Path) -> Server {
    start_with_token(r, all, dir, TOKEN)
}

/// A region (`regions::config`) whose config also maps the static `token` to tenant `agro`.
pub(crate) fn start_with_token(r: &Region, all: &[Region], dir: &Path, token: &str) -> Server {
    let file = dir.join(format!("{}.toml", r.name));
    // `[auth]` after the directory's array of tables starts a new table.
    std::fs::write(&file, format!("{}[auth]\ntokens = {{ \"{token}\" = \"agro\" }}\n", config(r, all))).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.args(["serve", "--config"])
        .arg(&file)
        .args(["--http-addr", &format!("127.0.0.1:{}", r.port), "--data-dir"])
        .arg(dir.join(r.name))
        .env("RUST_LOG", "info")
        .env("STRATA_ADMIN__TOKEN", ADMIN)
        .env_remove("STRATA_REGION")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    Server::spawn(cmd, format!("http://127.0.0.1:{}", r.port))
}

/// A running `strata-edge`.
struct Agent {
    child: Child,
    base: String,
    log: Arc<Mutex<String>>,
}

impl Agent {
    fn start(dir: &Path, endpoints: &[&str]) -> Agent {
        let port = free_port();
        let mut cmd = Command::new(edge_binary());
        cmd.args(["--agent-id", "farm-gw-1", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(dir)
            .args(["--jurisdiction", "us", "--token", TOKEN, "--backoff-initial", "50ms", "--backoff-max", "300ms"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for e in endpoints {
            cmd.args(["--endpoint", e]);
        }
        let mut child = cmd.spawn().expect("start strata-edge");
        let log = crate::harness::capture_stderr(&mut child);
        let agent = Agent { child, base: format!("http://127.0.0.1:{port}"), log };
        agent.wait(Duration::from_secs(60), "ready", |a| crate::harness::http_status(&a.base, "/-/ready") == Some(200));
        agent
    }

    fn wait(&self, limit: Duration, what: &str, done: impl Fn(&Agent) -> bool) {
        let deadline = Instant::now() + limit;
        while !done(self) {
            assert!(Instant::now() < deadline, "strata-edge: no {what}; log:\n{}", self.log.lock().unwrap());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn get(&self, path: &str) -> String {
        http_get(&format!("{}{path}", self.base))
    }

    /// Until the agent's queue is empty (everything delivered and acknowledged).
    fn wait_drained(&self) {
        self.wait(Duration::from_secs(60), "delivery", |a| {
            a.get("/metrics").lines().any(|l| l.trim() == "strata_edge_queue_batches 0")
        });
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain blocking HTTP/1.0 GET: the whole response, or empty when nothing answers.
fn http_get(url: &str) -> String {
    use std::io::{Read, Write};
    let addr = url.strip_prefix("http://").unwrap();
    let (host, path) = addr.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((addr, "/".into()));
    let Ok(mut s) = std::net::TcpStream::connect(host) else { return String::new() };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Samples the server counted at its write path.
fn ingested(s: &Server) -> f64 {
    let text = http_get(&s.url("/metrics"));
    text.lines()
        .find_map(|l| l.strip_prefix("strata_ingest_samples_total ").and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// `n` samples of four devices, one a second from `t0`; their sum.
fn batch(from: usize, n: usize, t0: i64) -> (String, f64) {
    let mut body = String::new();
    let mut sum = 0.0;
    for i in from..from + n {
        let v = i as f64 * 1.5 + 0.125;
        body.push_str(&format!("edgefo,device=d{} v={v} {}\n", i % 4, (t0 + i as i64 * 1000) * 1_000_000));
        sum += v;
    }
    (body, sum)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_agent_fails_over_within_us_and_eu_counts_every_sample_once() {
    let all = [("us-east", "us"), ("us-west", "us"), ("eu-central", "eu")].map(|(name, jurisdiction)| {
        let port = free_port();
        Region { name, jurisdiction, port, proxy_port: port }
    });
    let dir = crate::harness::data_dir();
    let mut servers: Vec<Option<Server>> = all.iter().map(|r| Some(start(r, &all, dir.path()))).collect();
    let c = client();
    let policy = serde_json::json!({
        "id": "agro",
        "home_region": "us-east",
        "data_regions": ["us-east", "us-west", "eu-central"],
        "allowed_query_regions": ["us-east", "us-west", "eu-central"],
        "exports": {"us": "raw", "eu": "raw"},
    });
    for s in servers.iter().flatten() {
        admin_post(&c, s, "/admin/v1/tenants", policy.clone()).await;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let base = |i: usize, s: &Vec<Option<Server>>| s[i].as_ref().unwrap().base.clone();
    let agent_dir = crate::harness::data_dir();
    let agent = Agent::start(agent_dir.path(), &[&base(0, &servers), &base(1, &servers)]);

    // Before the outage: everything lands in us-east.
    let t0 = now_ms() - 120_000;
    let (before, sum_before) = batch(0, 40, t0);
    let r = c.post(format!("{}/api/v2/write", agent.base)).body(before.clone()).send().await.unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    agent.wait_drained();
    assert_eq!(ingested(servers[0].as_ref().unwrap()), 40.0);
    assert_eq!(ingested(servers[1].as_ref().unwrap()), 0.0);

    // us-east dies; the agent delivers the next samples to us-west.
    servers[0].take().unwrap().kill9();
    let (during, sum_during) = batch(40, 40, t0);
    let r = c.post(format!("{}/api/v2/write", agent.base)).body(during).send().await.unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    agent.wait_drained();
    assert_eq!(
        ingested(servers[1].as_ref().unwrap()),
        40.0,
        "us-west took the batch; agent log:\n{}",
        agent.log.lock().unwrap()
    );
    let status = agent.get("/status");
    assert!(status.contains(&base(1, &servers)), "the agent's current endpoint is us-west: {status}");
    // The seam: the last ten pre-outage samples stored in us-west too.
    let seam: String = before.lines().skip(30).map(|l| format!("{l}\n")).collect();
    let r = c.post(format!("{}/api/v2/write", base(1, &servers))).bearer_auth(TOKEN).body(seam).send().await.unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());

    let at = t0 + 80_000 + 1_000;
    let q = |query: &str| vec![("query", query.to_owned()), ("time", format!("{:.3}", at as f64 / 1000.0))];
    let eu_server = servers.pop().unwrap().unwrap();
    let eu = || &eu_server;
    let count_q = "sum(count_over_time(edgefo_v[10m]))";
    let sum_q = "sum(sum_over_time(edgefo_v[10m]))";

    // While us-east is down, eu answers what it can reach and says what is missing.
    let (st, v) = get_json(&c, eu(), "/api/v1/query", TOKEN, &q(count_q)).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(value_of(&v), 50.0, "us-west's 40 and the 10 seam samples: {v}");
    assert!(v["warnings"].to_string().contains("us-east"), "{v}");

    // us-east is back: every sample once, whichever region holds it (or both).
    servers[0] = Some(start(&all[0], &all, dir.path()));
    for policy in ["raw", "aggregates"] {
        if policy == "aggregates" {
            for s in servers.iter().flatten().chain([&eu_server]) {
                let r = c
                    .patch(s.url("/admin/v1/tenants/agro"))
                    .bearer_auth(ADMIN)
                    .json(&serde_json::json!({"exports": {"us": "aggregates", "eu": "raw"}}))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{}", r.text().await.unwrap());
            }
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        let (st, v) = get_json(&c, eu(), "/api/v1/query", TOKEN, &q(count_q)).await;
        assert_eq!(st, 200, "{v}");
        assert!(v["warnings"].as_array().is_none_or(|w| w.is_empty()), "us {policy}: {v}");
        assert_eq!(value_of(&v), 80.0, "us {policy}: every sample once: {v}");
        let (_, v) = get_json(&c, eu(), "/api/v1/query", TOKEN, &q(sum_q)).await;
        assert!(close(value_of(&v), sum_before + sum_during), "us {policy}: {v} vs {}", sum_before + sum_during);
        let (_, v) = get_json(&c, eu(), "/api/v1/query", TOKEN, &q("count(edgefo_v)")).await;
        assert_eq!(value_of(&v), 4.0, "us {policy}: four devices: {v}");
    }
    // The second round was pushed down to us-east, the first read raw.
    let (_, v) = get_json(&c, eu(), "/admin/v1/audit", ADMIN, &[("side", "sent".into())]).await;
    let records = v["data"].as_array().unwrap();
    for crossed in ["raw_series", "aggregate_series"] {
        assert!(
            records
                .iter()
                .any(|r| r["data_region"] == "us-east" && r["crossed"] == crossed && r["decision"] == "allowed"),
            "{crossed}: {v}"
        );
    }
}
