//! Residency through the real binary: a node of region `us-east`
//! (jurisdiction `us`), a tenant whose data regions span us-east and
//! eu-central with the residency label `country`, created through the admin
//! API and changed through `strata admin tenants update`; a line labelled for
//! another jurisdiction is refused on its own, naming where it belongs, and
//! policy changes apply to the next write without a restart.

use crate::harness::*;
use serde_json::{Value, json};
use std::path::Path;

/// `POST /admin/v1{path}` with the node's generated admin token.
async fn admin_post(c: &reqwest::Client, s: &Server, dir: &Path, path: &str, body: Value) -> (u16, Value) {
    let token = std::fs::read_to_string(dir.join("admin.token")).unwrap();
    let r = c.post(s.url(&format!("/admin/v1{path}"))).bearer_auth(token.trim()).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// [`write_as`] with the answer's body as JSON (`null` when empty).
async fn write_json(c: &reqwest::Client, s: &Server, token: &str, body: String) -> (u16, Value) {
    let (status, _, text) = write_as(c, s, token, body).await;
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
}

/// The series of an instant query, as `label value` strings of `label`.
async fn series_of(c: &reqwest::Client, s: &Server, token: &str, q: &str, label: &str, t_ms: i64) -> Vec<String> {
    let r = c
        .get(s.url("/api/v1/query"))
        .bearer_auth(token)
        .query(&[("query", q), ("time", &format!("{}", t_ms / 1000))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let mut out: Vec<String> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["metric"][label].as_str().unwrap_or("-").to_owned())
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn residency_label_refuses_lines_of_other_jurisdictions_and_policy_changes_apply_live() {
    let dir = data_dir();
    let s = Server::start(dir.path(), &[("STRATA_REGION", "us-east"), ("STRATA_FEDERATION__JURISDICTION", "us")]);
    let c = client();
    let t = now_ms() / 1000 * 1000 - 60_000;

    // A fleet in the us and in Germany: the admin API, home region defaulted to the first data region.
    let (status, created) = admin_post(
        &c,
        &s,
        dir.path(),
        "/tenants",
        json!({
            "id": "fleet",
            "data_regions": ["us-east", "eu-central"],
            "exports": {"eu": "aggregates"},
            "residency": {"label": "country", "jurisdictions": {"us": "us", "de": "eu"}},
        }),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["home_region"], "us-east");
    assert_eq!(created["data_regions"], json!(["us-east", "eu-central"]));
    assert_eq!(created["exports"], json!({"eu": "aggregates"}));
    assert_eq!(created["residency"], json!({"label": "country", "jurisdictions": {"de": "eu", "us": "us"}}));
    let (status, token) =
        admin_post(&c, &s, dir.path(), "/tenants/fleet/tokens", json!({"access": "read_write"})).await;
    assert_eq!(status, 201, "{token}");
    let token = token["token"].as_str().unwrap().to_owned();

    // Invalid policies are refused with the reason.
    let (status, err) = admin_post(
        &c,
        &s,
        dir.path(),
        "/tenants",
        json!({"id": "bad", "residency": {"label": "__country", "jurisdictions": {"de": "eu"}}}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(err["error"].as_str().unwrap().contains("not a valid label name"), "{err}");
    let (status, err) =
        admin_post(&c, &s, dir.path(), "/tenants", json!({"id": "bad", "data_regions": ["us-east", "us-east"]})).await;
    assert_eq!(status, 400);
    assert!(err["error"].as_str().unwrap().contains("listed twice in data_regions"), "{err}");

    // Three lines: us, de, no country. The de line alone is refused.
    let body = format!("m,country=us,device=a v=1 {t}\nm,country=de,device=b v=2 {t}\nm,device=c v=3 {t}\n");
    let (status, v) = write_json(&c, &s, &token, body.clone()).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!((v["accepted_lines"].as_u64(), v["rejected_lines"].as_u64()), (Some(2), Some(1)), "{v}");
    assert_eq!(v["errors"][0]["line"], 2, "{v}");
    let reason = v["errors"][0]["reason"].as_str().unwrap();
    // This node's directory lists only its own region: eu-central is named bare.
    assert!(
        reason.starts_with(
            "label country=\"de\" places this series in jurisdiction eu; this node is region us-east (jurisdiction \
             us): none of the tenant's data regions is in jurisdiction eu (its data regions: us-east (us, http://"
        ) && reason.ends_with("), eu-central)"),
        "{reason}"
    );
    assert!(v["message"].as_str().unwrap().contains("first error: line 2: label country=\"de\""), "{v}");
    assert_eq!(series_of(&c, &s, &token, "m_v", "device", t + 1000).await, ["a", "c"]);
    let usage = admin_cli_json(&s, dir.path(), &["usage", "fleet"]);
    assert_eq!(usage["rejected_by_reason"]["residency"], 1, "{usage}");

    // A tenant stored in Europe only: refused here, naming its data regions.
    let eu = admin_cli_json(&s, dir.path(), &["tenants", "create", "eu-only", "--data-regions", "eu-central,eu-west"]);
    assert_eq!((&eu["home_region"], &eu["data_regions"]), (&json!("eu-central"), &json!(["eu-central", "eu-west"])));
    let eu_token =
        admin_cli_json(&s, dir.path(), &["tokens", "issue", "eu-only"])["token"].as_str().unwrap().to_owned();
    let (status, v) = write_json(&c, &s, &eu_token, format!("m,device=x v=9 {t}\n")).await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["code"], "wrong region");
    let msg = v["message"].as_str().unwrap();
    assert!(msg.contains("\"us-east\" (jurisdiction us)") && msg.contains("eu-central, eu-west"), "{msg}");

    // The CLI changes the policy; the next write, without a restart, follows it.
    let updated = admin_cli_json(
        &s,
        dir.path(),
        &["tenants", "update", "fleet", "--residency-label", "country", "--residency", "de=us"],
    );
    assert_eq!(updated["residency"], json!({"label": "country", "jurisdictions": {"de": "us"}}));
    let (status, v) = write_json(&c, &s, &token, body.clone()).await;
    assert_eq!(status, 204, "{v}");
    assert_eq!(series_of(&c, &s, &token, "m_v", "device", t + 1000).await, ["a", "b", "c"]);
    let (ok, out, err) = admin_cli(&s, dir.path(), &["tenants", "get", "fleet"]);
    assert!(ok, "{err}");
    assert!(out.contains("RESIDENCY") && out.contains("us-east,eu-central") && out.contains("country:de=us"), "{out}");
    assert!(out.contains("none eu=aggregates"), "{out}");

    // Europe only from now on: the same write is refused as a whole.
    let updated = admin_cli_json(&s, dir.path(), &["tenants", "update", "fleet", "--data-regions", "eu-central"]);
    assert_eq!(updated["home_region"], "eu-central");
    let (status, v) = write_json(&c, &s, &token, format!("m,device=z v=1 {t}\n")).await;
    assert_eq!(status, 403, "{v}");
    assert!(v["message"].as_str().unwrap().contains("data regions: eu-central"), "{v}");

    // Back in us-east, residency removed: every line is stored again.
    admin_cli_json(
        &s,
        dir.path(),
        &["tenants", "update", "fleet", "--data-regions", "us-east,eu-central", "--clear-residency"],
    );
    let (status, v) = write_json(&c, &s, &token, format!("m,country=de,device=d v=4 {t}\n")).await;
    assert_eq!(status, 204, "{v}");
    let (ok, _, err) = admin_cli(&s, dir.path(), &["tenants", "update", "fleet", "--export", "eu=everything"]);
    assert!(!ok && err.contains("400"), "{err}");
}
