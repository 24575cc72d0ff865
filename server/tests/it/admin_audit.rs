//! The admin listener and the admin audit log (issue 20, item 4), against
//! the real binary: with `[http] admin_addr`, `/admin` and `/internal` are
//! served only there (the main listener answers 404); every admin action
//! made through `strata admin` and the API, refused ones included, is a line
//! of `<data_dir>/audit/admin.jsonl` naming who (the token's public id, never
//! a secret), what, when and the result.

use crate::harness::*;
use serde_json::Value;
use std::process::Command;

const ADMIN: &str = "audit-e2e-admin-token";

fn strata_admin(admin_url: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["admin", "--url", admin_url, "--admin-token", ADMIN, "--json"])
        .env("USER", "audit-e2e-operator")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "strata admin {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn records(dir: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("audit/admin.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_live_on_the_admin_listener_and_every_action_is_audited() {
    let dir = data_dir();
    let admin_port = free_port();
    let admin_url = format!("http://127.0.0.1:{admin_port}");
    let s = Server::start(
        dir.path(),
        &[("STRATA_HTTP__ADMIN_ADDR", &format!("127.0.0.1:{admin_port}")), ("STRATA_ADMIN__TOKEN", ADMIN)],
    );
    let c = client();

    // Separation: the main listener hides /admin and /internal, the admin one serves nothing else.
    let on_main = c.get(s.url("/admin/v1/tenants")).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(on_main.status(), 404);
    let on_main = c.post(s.url("/internal/flush")).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(on_main.status(), 404);
    let on_admin = c.get(format!("{admin_url}/api/v1/query?query=1")).send().await.unwrap();
    assert_eq!(on_admin.status(), 404);
    let on_admin = c.get(format!("{admin_url}/-/ready")).send().await.unwrap();
    assert_eq!(on_admin.status(), 200);
    let flushed = c.post(format!("{admin_url}/internal/flush")).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(flushed.status(), 200);
    assert!(
        records(dir.path()).is_empty() || records(dir.path()).iter().all(|r| r["path"] != "/admin/v1/tenants"),
        "requests the main listener refused are not admin actions"
    );

    // Actions through the real CLI.
    strata_admin(&admin_url, &["tenants", "create", "acme"]);
    let issued: Value =
        serde_json::from_str(&strata_admin(&admin_url, &["tokens", "issue", "acme", "--access", "write"])).unwrap();
    let (token, token_id) = (issued["token"].as_str().unwrap().to_owned(), issued["id"].as_str().unwrap().to_owned());
    strata_admin(&admin_url, &["limits", "set", "acme", "ingestion_rate=5000"]);
    strata_admin(&admin_url, &["tokens", "revoke", "acme", &token_id]);
    // A refused one: a wrong token.
    let refused = c
        .delete(format!("{admin_url}/admin/v1/tenants/acme?data=purge"))
        .bearer_auth("guess-guess")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    let all = records(dir.path());
    let find = |method: &str, route: &str| -> Value {
        all.iter()
            .find(|r| r["method"] == method && r["route"] == route)
            .cloned()
            .unwrap_or_else(|| panic!("no record of {method} {route} in {all:#?}"))
    };
    let flush = find("POST", "/internal/flush");
    assert_eq!(
        (flush["who"].as_str(), flush["result"].as_str(), flush["status"].as_u64()),
        (Some("admin"), Some("ok"), Some(200))
    );
    let create = find("POST", "/admin/v1/tenants");
    assert_eq!(create["who"], "admin");
    assert_eq!(create["request"]["id"], "acme");
    assert_eq!(create["status"], 201);
    assert!(create["user_agent"].as_str().is_some_and(|u| u.starts_with("strata-admin/")), "{create}");
    assert!(create["actor"].as_str().is_some_and(|a| a.starts_with("audit-e2e-operator@")), "{create}");
    assert!(create["client"].as_str().is_some_and(|a| a.starts_with("127.0.0.1:")), "{create}");
    assert!(create["time_ms"].as_i64().is_some_and(|t| (now_ms() - t).abs() < 60_000), "{create}");
    let issue = find("POST", "/admin/v1/tenants/{id}/tokens");
    assert_eq!((issue["tenant"].as_str(), issue["token_id"].as_str()), (Some("acme"), Some(token_id.as_str())));
    let limits = find("PUT", "/admin/v1/tenants/{id}/limits");
    assert_eq!(limits["request"]["ingestion_rate"], 5000);
    let revoke = find("DELETE", "/admin/v1/tenants/{id}/tokens/{token_id}");
    assert_eq!((revoke["status"].as_u64(), revoke["tenant"].as_str()), (Some(204), Some("acme")));
    let denied = find("DELETE", "/admin/v1/tenants/{id}");
    assert_eq!(
        (denied["who"].as_str(), denied["result"].as_str(), denied["status"].as_u64()),
        (Some("invalid-token"), Some("refused"), Some(401))
    );
    assert_eq!(denied["query"], "data=purge");
    assert!(denied["error"].as_str().is_some_and(|e| e.contains("admin token")), "{denied}");

    // No secret is in the file: not the admin token, not the issued token's secret.
    let text = std::fs::read_to_string(dir.path().join("audit/admin.jsonl")).unwrap();
    assert!(!text.contains(ADMIN) && !text.contains(&token) && !text.contains("guess-guess"), "{text}");

    // A flood of bad tokens is recorded at most 10 a second; the next record counts the rest.
    let before = records(dir.path()).len();
    for _ in 0..50 {
        let r = c.get(format!("{admin_url}/admin/v1/tenants")).bearer_auth("st_x_flood").send().await.unwrap();
        assert_eq!(r.status(), 401);
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = c.get(format!("{admin_url}/admin/v1/tenants")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let flood: Vec<Value> = records(dir.path()).split_off(before);
    // 10 a second: 50 requests in a second or two (or five on a loaded host) leave some unwritten.
    assert!(flood.len() < 51, "{} records of 51 unauthenticated requests", flood.len());
    assert!(flood.iter().all(|r| r["who"] == "invalid-token" || r["who"] == "none"), "{flood:?}");
    let last = flood.last().unwrap();
    assert_eq!(last["who"], "none");
    let dropped: u64 = flood.iter().filter_map(|r| r["dropped_before"].as_u64()).sum();
    assert_eq!(dropped + flood.len() as u64, 51, "every unauthenticated request is recorded or counted");

    // `strata admin actions` reads the log back (the reads are recorded too).
    let listed: Value = serde_json::from_str(&strata_admin(&admin_url, &["actions", "--tenant", "acme"])).unwrap();
    let listed = listed.as_array().unwrap();
    assert!(listed.len() >= 4 && listed.iter().all(|r| r["tenant"] == "acme"), "{listed:?}");
    let table = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["admin", "--url", &admin_url, "--admin-token", ADMIN, "actions", "--limit", "3"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.starts_with("TIME") && table.contains("GET /admin/v1/actions?limit=100&tenant=acme"), "{table}");

    // A registry token is named by its public id (the Prometheus delete API is an admin action too).
    let issued: Value =
        serde_json::from_str(&strata_admin(&admin_url, &["tokens", "issue", "acme", "--access", "admin"])).unwrap();
    let delete = c
        .post(s.url("/api/v1/admin/tsdb/delete_series"))
        .bearer_auth(issued["token"].as_str().unwrap())
        .query(&[("match[]", "{device=\"d1\"}")])
        .send()
        .await
        .unwrap();
    let status = delete.status().as_u16();
    let all = records(dir.path());
    let prom =
        all.iter().rev().find(|r| r["path"] == "/api/v1/admin/tsdb/delete_series").expect("delete_series audited");
    assert_eq!(prom["who"], format!("token:{}", issued["id"].as_str().unwrap()));
    assert_eq!(prom["status"], status);
}
