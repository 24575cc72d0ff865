//! The tenant registry on a real PostgreSQL server (Debian's `postgresql`
//! package, installed by scripts/install-test-deps.sh): two nodes sharing one
//! registry database see each other's tenant, token and limit changes within
//! a second, and nothing is kept in the nodes' SQLite files.

use crate::harness::*;
use std::time::{Duration, Instant};
use strata_test_support::postgres::Postgres;

const ADMIN: &str = "admin-token-for-the-pg-test";

async fn admin_call(
    c: &reqwest::Client,
    s: &Server,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let r = c.request(method.parse().unwrap(), s.url(path)).bearer_auth(ADMIN).json(&body).send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(status.is_success(), "{method} {path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

/// Polls `f` until it returns true or `within` passes.
async fn eventually<F, Fut>(within: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_a_postgresql_registry() {
    let pg = Postgres::start();
    let url = pg.url();
    let env = [("STRATA_REGISTRY__URL", url.as_str()), ("STRATA_ADMIN__TOKEN", ADMIN), ("STRATA_REGION", "eu")];
    let (dir_a, dir_b) = (data_dir(), data_dir());
    let a = Server::start(dir_a.path(), &env);
    let b = Server::start(dir_b.path(), &env);
    assert!(a.stderr.lock().unwrap().contains("postgres://strata:***@127.0.0.1"), "startup names the registry");
    let c = client();
    let t = now_ms() / 1000 * 1000 - 60_000;

    admin_call(&c, &a, "POST", "/admin/v1/tenants", serde_json::json!({"id": "acme"})).await;
    let issued =
        admin_call(&c, &a, "POST", "/admin/v1/tenants/acme/tokens", serde_json::json!({"access": "read_write"})).await;
    let token = issued["token"].as_str().unwrap().to_owned();

    // Node B learns the tenant and its token from the shared database.
    let line = format!("env,device_id=d1 temp=21.5 {t}");
    assert!(
        eventually(Duration::from_secs(3), || async { write_as(&c, &b, &token, line.clone()).await.0 == 204 }).await,
        "node B accepts node A's token within a second or so"
    );
    let listed = admin_call(&c, &b, "GET", "/admin/v1/tenants", serde_json::Value::Null).await;
    assert!(listed.to_string().contains("acme"), "{listed}");

    // A limit changed through node A applies on node B.
    admin_call(&c, &a, "PATCH", "/admin/v1/tenants/acme", serde_json::json!({"limits": {"max_labels_per_series": 2}}))
        .await;
    let wide = format!("env,device_id=d1,farm=f1,zone=z temp=1 {t}");
    assert!(
        eventually(Duration::from_secs(3), || async {
            let (status, _, body) = write_as(&c, &b, &token, wide.clone()).await;
            status == 400 && body.contains("max_labels_per_series")
        })
        .await,
        "node B enforces the limit set through node A"
    );

    // Revoked through node B, refused by node A.
    let token_id = issued["id"].as_str().unwrap().to_owned();
    admin_call(&c, &b, "DELETE", &format!("/admin/v1/tenants/acme/tokens/{token_id}"), serde_json::Value::Null).await;
    assert!(
        eventually(Duration::from_secs(3), || async { write_as(&c, &a, &token, line.clone()).await.0 == 401 }).await,
        "node A refuses the token revoked through node B"
    );

    // Nothing lives in the nodes' own files: a restarted node still knows the tenant.
    assert!(!dir_a.path().join("registry.db").exists() && !dir_b.path().join("registry.db").exists());
    a.terminate();
    let a = Server::start(dir_a.path(), &env);
    let got = admin_call(&c, &a, "GET", "/admin/v1/tenants/acme", serde_json::Value::Null).await;
    assert_eq!(got["limits"]["max_labels_per_series"], 2, "{got}");
    b.terminate();
    a.terminate();
}

#[path = "erasure_postgres.rs"]
mod erasure_postgres;
