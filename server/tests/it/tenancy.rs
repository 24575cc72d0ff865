//! Tenancy through the real binary and the real CLI: create a tenant, issue
//! tokens, write and query with them, hit each write limit and read the exact
//! error, be refused in the wrong region, revoke, delete.

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_lifecycle_limits_and_tokens_through_the_cli() {
    let dir = data_dir();
    let s = Server::start(dir.path(), &[("STRATA_REGION", "eu")]);
    let c = client();
    let t = now_ms() / 1000 * 1000 - 60_000;

    // Open mode before any tenant exists; the CLI reads the generated admin token.
    let (ok, out, _) = admin_cli(&s, dir.path(), &["tenants", "list"]);
    assert!(ok);
    assert_eq!(out.trim(), "ID  NAME  HOME REGION  DATA REGIONS  QUERY REGIONS  EXPORT  RESIDENCY");
    let created = admin_cli_json(&s, dir.path(), &["tenants", "create", "acme", "--display-name", "ACME Farms"]);
    assert_eq!(created["home_region"], "eu");
    let (ok, _, err) = admin_cli(&s, dir.path(), &["tenants", "create", "acme"]);
    assert!(!ok && err.contains("409") && err.contains("already exists"), "{err}");
    admin_cli_json(&s, dir.path(), &["tenants", "create", "brazil-co", "--home-region", "br"]);
    let (ok, out, _) = admin_cli(&s, dir.path(), &["tenants", "list"]);
    assert!(ok && out.contains("acme") && out.contains("ACME Farms") && out.contains("brazil-co"), "{out}");

    let (ok, out, _) =
        admin_cli(&s, dir.path(), &["tokens", "issue", "acme", "--access", "write", "--description", "gw"]);
    assert!(ok && out.contains("not shown again"), "{out}");
    let writer = out.split_whitespace().find(|w| w.starts_with("st_")).unwrap().to_owned();
    let reader = admin_cli_json(&s, dir.path(), &["tokens", "issue", "acme", "--access", "read"])["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let br = admin_cli_json(&s, dir.path(), &["tokens", "issue", "brazil-co"])["token"].as_str().unwrap().to_owned();

    // Open mode ended: anonymous writes are refused; tokens act for their tenant only.
    let anon = c.post(s.url("/api/v2/write")).body("m v=1").send().await.unwrap();
    assert_eq!(anon.status(), 401);
    assert_eq!(write_as(&c, &s, &writer, format!("m,device=d1 v=1 {t}")).await.0, 204);
    let (status, _, body) = write_as(&c, &s, &reader, format!("m,device=d1 v=1 {t}")).await;
    assert_eq!(status, 403, "{body}");
    let (status, v) = query_as(&c, &s, &reader, "m_v", t + 1000).await;
    assert_eq!(status, 200);
    assert_eq!(single_value(&v["data"]), 1.0);
    let (status, _) = query_as(&c, &s, &writer, "m_v", t + 1000).await;
    assert_eq!(status, 403, "a write-only token cannot query");

    // Residency: brazil-co is homed in br, this node is eu.
    let (status, _, body) = write_as(&c, &s, &br, format!("m v=1 {t}")).await;
    assert_eq!(status, 403);
    assert!(body.contains("data regions: br"), "{body}");

    // Label limits: the exact limit, value and observed size, other lines still stored.
    admin_cli_json(&s, dir.path(), &["limits", "set", "acme", "max_labels_per_series=3", "max_label_value_length=16"]);
    let (status, _, body) = write_as(
        &c,
        &s,
        &writer,
        format!("m,device=d2 v=2 {t}\nm,device=d3,a=1,b=2 v=3 {t}\nm,device=dddddddddddddddddddd v=4 {t}\n"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["accepted_lines"], 1);
    assert_eq!(
        v["errors"][0]["reason"],
        "limit max_labels_per_series exceeded: the line has more than 2 tags, so its series would have more than \
         3 labels (__name__ included), the limit is 3"
    );
    assert_eq!(
        v["errors"][1]["reason"],
        "limit max_label_value_length exceeded: value of label \"device\" is 20 bytes, the limit is 16"
    );

    // Request size.
    admin_cli_json(&s, dir.path(), &["limits", "set", "acme", "max_request_bytes=100"]);
    let (status, _, body) = write_as(&c, &s, &writer, format!("m,device=d1 v=1 {t}\n").repeat(10)).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("limit max_request_bytes exceeded") && body.contains("100 bytes"), "{body}");

    // Active series: acme has m_v{device=d1} and m_v{device=d2}; a third fits, a fourth does not.
    admin_cli_json(&s, dir.path(), &["limits", "set", "acme", "max_request_bytes=1000000", "max_active_series=3"]);
    let (status, _, body) =
        write_as(&c, &s, &writer, format!("m,device=d1 v=5 {t}\nm,device=d4 v=6 {t}\nm,device=d5 v=7 {t}\n")).await;
    assert_eq!(status, 400, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["rejected_series"][0]["series"], "m_v{device=\"d5\"}", "{v}");
    assert_eq!(
        v["rejected_series"][0]["reason"],
        "limit max_active_series exceeded: tenant acme has 3 active series, the limit is 3"
    );
    let (_, v) = query_as(&c, &s, &reader, "count(m_v)", t + 1000).await;
    assert_eq!(single_value(&v["data"]), 3.0, "d1 and d4 stored, d5 not");

    // Rate: 429 with Retry-After, nothing stored.
    admin_cli_json(
        &s,
        dir.path(),
        &["limits", "set", "acme", "max_active_series=100", "ingestion_rate=1", "ingestion_burst=5"],
    );
    let five: String = (0..5).map(|i| format!("r,device=d{i} v=1 {t}\n")).collect();
    let (status, _, body) = write_as(&c, &s, &writer, five.clone()).await;
    assert_eq!(status, 204, "{body}");
    let (status, retry, body) = write_as(&c, &s, &writer, five.replace("r,", "q,")).await;
    assert_eq!(status, 429, "{body}");
    assert!(retry.is_some_and(|r| r.parse::<u64>().unwrap() >= 1));
    assert!(body.contains("limit ingestion_rate exceeded: 1 samples/s (burst 5)"), "{body}");
    // The next request, before the bucket refilled, is refused without reading it.
    let (status, retry, body) = write_as(&c, &s, &writer, five.replace("r,", "p,")).await;
    assert_eq!(status, 429, "{body}");
    assert!(retry.is_some() && body.contains("last refused request of 5") && body.contains("unread"), "{body}");
    let (_, v) = query_as(&c, &s, &reader, "count(q_v)", t + 1000).await;
    assert_eq!(v["data"]["result"].as_array().unwrap().len(), 0, "a refused write stores nothing");

    // Usage.
    let usage = admin_cli_json(&s, dir.path(), &["usage", "acme"]);
    assert_eq!(usage["samples_accepted"], 9, "{usage}");
    assert_eq!(usage["rejected_by_reason"]["max_active_series"], 1);
    assert_eq!(usage["active_series"], 8, "m_v d1 d2 d4 and five r_v: {usage}");
    assert_eq!(usage["queries"], 3, "{usage}");
    assert!(usage["query_samples"].as_u64().unwrap() > 0, "{usage}");
    assert_eq!(usage["rejected_by_reason"]["ingestion_rate"], 5);
    assert_eq!(usage["rejected_by_reason"]["ingestion_rate_unread_requests"], 1);
    assert_eq!(usage["rejected_by_reason"]["max_labels_per_series"], 1);
    // Per-tenant series name every tenant: only with the admin token (or `[metrics] per_tenant`).
    let open = c.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(!open.contains("tenant=\"acme\""), "{open}");
    let admin_token = std::fs::read_to_string(dir.path().join("admin.token")).unwrap();
    let metrics = c.get(s.url("/metrics")).bearer_auth(admin_token.trim()).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("strata_tenant_samples_accepted_total{tenant=\"acme\"} 9"), "{metrics}");

    // Revoke: refused within a second.
    let tokens = admin_cli_json(&s, dir.path(), &["tokens", "list", "acme"]);
    let reader_id =
        tokens.as_array().unwrap().iter().find(|t| t["access"] == "read").unwrap()["id"].as_str().unwrap().to_owned();
    let (ok, out, _) = admin_cli(&s, dir.path(), &["tokens", "revoke", "acme", &reader_id]);
    assert!(ok && out.contains("revoked"), "{out}");
    assert_eq!(query_as(&c, &s, &reader, "m_v", t + 1000).await.0, 401);

    // Delete: explicit about the data; tokens die with the tenant.
    let (ok, _, err) = admin_cli(&s, dir.path(), &["tenants", "delete", "acme", "--data", "later"]);
    assert!(!ok && err.contains("data=keep"), "{err}");
    let (ok, out, _) = admin_cli(&s, dir.path(), &["tenants", "delete", "acme", "--data", "keep"]);
    assert!(ok && out.contains("deleted tenant acme"), "{out}");
    assert_eq!(write_as(&c, &s, &writer, format!("m v=1 {t}")).await.0, 401);
    let (ok, _, err) = admin_cli(&s, dir.path(), &["tenants", "get", "acme"]);
    assert!(!ok && err.contains("404"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_needs_the_admin_token() {
    let dir = data_dir();
    let s = Server::start(dir.path(), &[("STRATA_ADMIN__TOKEN", "a-very-long-admin-token")]);
    let c = client();
    assert_eq!(c.get(s.url("/admin/v1/tenants")).send().await.unwrap().status(), 401);
    let r = c.get(s.url("/admin/v1/tenants")).bearer_auth("a-very-long-admin-token").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(!dir.path().join("admin.token").exists(), "a configured token is not written to disk");
}

/// Issue 13, item 2: once open mode has ended, a token that is not a live
/// registry token (or a configured static token) is refused — it used to act
/// as the tenant `default`, read and write, whatever its text (the admin
/// token included). The open-mode data stays the tenant `default`'s,
/// reachable only through a token issued for `default`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_open_mode_unknown_tokens_are_refused_and_open_mode_data_stays_defaults() {
    let dir = data_dir();
    let s = Server::start(dir.path(), &[("STRATA_ADMIN__TOKEN", "the-admin-token-of-this-node")]);
    let c = client();
    let t = now_ms() / 1000 * 1000 - 60_000;

    // Open mode: no token needed.
    let (status, body) =
        write(&c, &s, "/api/v2/write?precision=ms", format!("secret,device=d1 v=42 {t}").into(), false).await;
    assert_eq!(status, 204, "{body}");
    admin_cli_json(&s, dir.path(), &["--admin-token", "the-admin-token-of-this-node", "tenants", "create", "acme"]);
    // Past the registry's reload period, on this node or one sharing the registry.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;

    for token in ["garbage", "x", "default", "the-admin-token-of-this-node", "st_nope", "st_abc_def"] {
        let (status, v) = query_as(&c, &s, token, "secret_v", t + 1000).await;
        assert_eq!(status, 401, "query with token {token:?} must be refused: {v}");
        assert_eq!(v["errorType"], "unauthorized", "{v}");
        let (status, _, body) = write_as(&c, &s, token, format!("secret,device=d1 v=666 {t}")).await;
        assert_eq!(status, 401, "write with token {token:?} must be refused: {body}");
    }
    let anon = c.get(s.url("/api/v1/query")).query(&[("query", "secret_v")]).send().await.unwrap();
    assert_eq!(anon.status(), 401);

    // The open-mode sample is still there, unchanged, for a token issued for `default`.
    admin_cli_json(&s, dir.path(), &["--admin-token", "the-admin-token-of-this-node", "tenants", "create", "default"]);
    let token = admin_cli_json(
        &s,
        dir.path(),
        &["--admin-token", "the-admin-token-of-this-node", "tokens", "issue", "default", "--access", "read"],
    )["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, v) = query_as(&c, &s, &token, "secret_v", t + 1000).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(single_value(&v["data"]), 42.0, "{v}");
}

/// The node's `[limits]` are the limits of open mode's `default` tenant (so a
/// load test can raise the ingestion rate without declaring a tenant) and
/// where a tenant created through the admin API starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_limits_apply_to_tenants_without_a_policy_and_seed_new_ones() {
    let dir = data_dir();
    let s = Server::start(
        dir.path(),
        &[
            ("STRATA_LIMITS__INGESTION_RATE", "1"),
            ("STRATA_LIMITS__INGESTION_BURST", "5"),
            ("STRATA_LIMITS__HOT_TTL", "30d"),
        ],
    );
    let c = client();
    let t = now_ms() / 1000 * 1000 - 60_000;
    let five: String = (0..5).map(|i| format!("r,device=d{i} v=1 {t}\n")).collect();
    let write = |body: String| {
        let c = c.clone();
        let url = s.url("/api/v2/write?precision=ms");
        async move {
            let r = c.post(url).body(body).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, body) = write(five.clone()).await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = write(five.replace("r,", "q,")).await;
    assert_eq!(status, 429, "open mode's tenant runs under [limits]: {body}");
    assert!(body.contains("limit ingestion_rate exceeded: 1 samples/s (burst 5)"), "{body}");

    let created = admin_cli_json(&s, dir.path(), &["tenants", "create", "acme"]);
    assert_eq!(created["limits"]["ingestion_rate"], 1.0, "{created}");
    assert_eq!(created["limits"]["ingestion_burst"], 5, "{created}");
    assert_eq!(created["limits"]["hot_ttl"], "30days", "{created}");
    assert_eq!(created["limits"]["max_active_series"], 5_000_000, "the rest keeps the defaults: {created}");
}
