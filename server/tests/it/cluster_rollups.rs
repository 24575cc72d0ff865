//! Rollups through `[cluster]` peers (`ClusterReadStore::select_rollup`):
//! a long-range query that the rollup tiers can answer gives, on every node,
//! the answer of the raw samples of every node.
//!
//! - Two nodes with embedded logs and hot stores: each rolls only what it
//!   ingested into its own cold tier, so a node's rollups miss the peer's
//!   samples and must not answer (the raw samples are gathered from both).
//! - Two nodes sharing the ScyllaDB hot tier (kassandra) and one catalog and
//!   warehouse: both roll the same keyspace, each bucket is committed once
//!   (PyIceberg count and sum), and each node answers from the shared rollups
//!   (`strata_query_rollup_tier_selects_total` moves).

use crate::harness::*;
use crate::scylla::{HOUR, Kassandra, answers, iceberg_rows, old_window, queries};
use std::path::Path;
use std::process::{Command, Stdio};

const ADMIN: &str = "cluster-rollups-admin-token-0123456789";
const CLUSTER_TOKEN: &str = "cluster-rollups-token";

fn node(dir: &Path, port: u16, peer: u16, extra: &[(&'static str, String)]) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.args(["serve", "--http-addr", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "info")
        .env("STRATA_ADMIN__TOKEN", ADMIN)
        .env("STRATA_CLUSTER__TOKEN", CLUSTER_TOKEN)
        .env("STRATA_CLUSTER__PEERS", format!("[\"http://127.0.0.1:{peer}\"]"))
        .env("STRATA_COLD__ENABLED", "true")
        .env("STRATA_COMPACTOR__GRACE", "1m")
        .env("STRATA_COMPACTOR__INTERVAL", "1h")
        .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    Server::spawn(cmd, format!("http://127.0.0.1:{port}"))
}

/// Two peered nodes, each written half of the old window's devices, and
/// their raw answers before any roll.
struct Pair {
    a: Server,
    b: Server,
    c: reqwest::Client,
    /// Samples and their sum over both halves.
    n: u64,
    sum: f64,
    qs: Vec<(String, i64)>,
    /// The answers to `qs` from the raw samples (both nodes give them).
    raw: Vec<f64>,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

/// Starts the pair with `env`, writes devices 0..6 to `a` and 6..12 to `b`
/// ten hours back, and checks both nodes answer the whole count and sum.
async fn pair(env: &[(&'static str, String)]) -> Pair {
    let (da, db) = (data_dir(), data_dir());
    let (pa, pb) = (free_port(), free_port());
    let a = node(da.path(), pa, pb, env);
    let b = node(db.path(), pb, pa, env);
    let c = client();
    let now = now_ms() / 1000 * 1000;
    let t0 = (now - 10 * HOUR).div_euclid(HOUR) * HOUR;
    let (body_a, n_a, sum_a) = old_window(t0, 0..6);
    let (body_b, n_b, sum_b) = old_window(t0, 6..12);
    assert_eq!(write(&c, &a, "/api/v2/write?precision=ms", body_a.into_bytes(), false).await.0, 204);
    assert_eq!(write(&c, &b, "/api/v2/write?precision=ms", body_b.into_bytes(), false).await.0, 204);
    let (n, sum) = (n_a + n_b, sum_a + sum_b);
    let qs = queries(t0, now);
    let raw = answers(&c, &a, &qs).await;
    assert_eq!((raw[0], raw[1]), (n as f64, sum), "{raw:?}");
    assert_eq!(answers(&c, &b, &qs).await, raw);
    Pair { a, b, c, n, sum, qs, raw, _dirs: (da, db) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_rolling_only_their_own_writes_answer_long_ranges_from_every_nodes_raw_samples() {
    // Raw: nothing is rolled yet; both nodes see both halves.
    let Pair { a, b, c, n, qs, raw, _dirs, .. } = pair(&[]).await;
    for s in [&a, &b] {
        internal(&c, s, ADMIN, "/internal/flush").await;
        let rolled = internal(&c, s, ADMIN, "/internal/roll").await;
        assert_eq!(rolled["samples"], n / 2, "each node rolls its own half: {rolled}");
    }
    // Each node's rollups hold its half only: the answers stay the raw ones.
    assert_eq!(answers(&c, &a, &qs).await, raw, "node a after the rolls");
    assert_eq!(answers(&c, &b, &qs).await, raw, "node b after the rolls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_sharing_the_scylla_tier_and_catalog_roll_once_and_answer_from_the_shared_rollups() {
    let k = Kassandra::start();
    let shared = tempfile::Builder::new().prefix("strata-e2e-shared").tempdir().unwrap();
    let mut env = crate::scylla::env(&k);
    env.retain(|(name, _)| *name != "STRATA_COLD__ENABLED");
    env.extend([
        ("STRATA_HOT__SCYLLA__BUCKET", "1h".to_owned()),
        ("STRATA_COLD__CATALOG_URL", format!("sqlite://{}?mode=rwc", shared.path().join("catalog.db").display())),
        ("STRATA_COLD__WAREHOUSE", format!("file://{}", shared.path().join("warehouse").display())),
    ]);
    let Pair { a, b, c, n, sum, qs, raw, _dirs } = pair(&env).await;
    // Both nodes roll the shared keyspace at once: the catalog's compare-and-swap
    // lets one commit each bucket; a pass that lost one retries, and a second
    // pass of each raises its watermark to the shared roll state.
    let (ra, rb) = tokio::join!(
        c.post(a.url("/internal/roll")).bearer_auth(ADMIN).send(),
        c.post(b.url("/internal/roll")).bearer_auth(ADMIN).send()
    );
    assert!(ra.unwrap().status().is_success() && rb.unwrap().status().is_success());
    let (again_a, again_b) =
        (internal(&c, &a, ADMIN, "/internal/roll").await, internal(&c, &b, ADMIN, "/internal/roll").await);
    let rolled = metric(&c, &a, "strata_compactor_samples_rolled_total").await
        + metric(&c, &b, "strata_compactor_samples_rolled_total").await;
    assert_eq!(rolled, n as f64, "every sample rolled by exactly one node ({again_a}, {again_b})");
    let v = iceberg_rows(shared.path(), "samples_default", n, Some(sum));
    assert_eq!(v["rows"], n, "{v}");
    iceberg_rows(shared.path(), "rollup1h_default", 12 * 6, None);
    for (name, s) in [("a", &a), ("b", &b)] {
        let before = metric(&c, s, "strata_query_rollup_tier_selects_total").await;
        assert_eq!(answers(&c, s, &qs).await, raw, "node {name} after the rolls");
        let after = metric(&c, s, "strata_query_rollup_tier_selects_total").await;
        assert!(after > before, "node {name} answered the 6 h aggregates from rollups ({before} -> {after})");
    }
}
