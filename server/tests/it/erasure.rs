//! Delete requests (right to erasure, first part): acknowledged durably and
//! immediately invisible — to queries, series and label APIs — for exactly
//! the selector and range asked, across a `kill -9`; neighbours unchanged;
//! writes after the request are kept. The Prometheus-shaped route needs a
//! token with admin access.

use crate::harness::*;

const ADMIN: &str = "erasure-admin-token-0123456789";

async fn admin(
    c: &reqwest::Client,
    s: &Server,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    admin_api(c, s, ADMIN, method, path, body).await
}

async fn ask(c: &reqwest::Client, s: &Server, token: &str, q: &str, at: i64) -> f64 {
    let t = format!("{:.3}", at as f64 / 1000.0);
    let r = c.get(s.url("/api/v1/query")).bearer_auth(token).query(&[("query", q), ("time", &t)]).send().await.unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    v["data"]["result"][0]["value"][1].as_str().map_or(0.0, |x| x.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_request_hides_exactly_its_selector_and_range_at_once_and_durably() {
    let dir = data_dir();
    let env = [("STRATA_ADMIN__TOKEN", ADMIN)];
    let s = Server::start(dir.path(), &env);
    let c = client();
    assert_eq!(
        admin(&c, &s, reqwest::Method::POST, "/admin/v1/tenants", Some(serde_json::json!({"id": "farm"}))).await.0,
        201
    );
    let (code, tok) = admin(
        &c,
        &s,
        reqwest::Method::POST,
        "/admin/v1/tenants/farm/tokens",
        Some(serde_json::json!({"access": "admin"})),
    )
    .await;
    assert!(code == 200 || code == 201, "{tok}");
    let token = tok["token"].as_str().unwrap().to_owned();
    // Devices d-17 and d-18, one sample a second for 100 s, value = the second.
    let t0 = now_ms() / 1000 * 1000 - 200_000;
    let body: String = (0..100)
        .flat_map(|i| ["d-17", "d-18"].map(move |d| format!("soil,device={d} temp={i} {}\n", t0 + i * 1000)))
        .collect();
    let r = c.post(s.url("/api/v2/write?precision=ms")).bearer_auth(&token).body(body).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let at = t0 + 120_000;
    let count = |d: &str| format!("count_over_time(soil_temp{{device=\"{d}\"}}[3m])");
    assert_eq!(ask(&c, &s, &token, &count("d-17"), at).await, 100.0);

    // Delete d-17 for seconds 20..=59.
    let (code, req) = admin(
        &c,
        &s,
        reqwest::Method::POST,
        "/admin/v1/tenants/farm/delete",
        Some(serde_json::json!({"match": ["soil_temp{device=\"d-17\"}"], "start": t0 + 20_000, "end": t0 + 59_000})),
    )
    .await;
    assert_eq!(code, 202, "{req}");
    let id = req["id"].as_str().unwrap().to_owned();
    // Invisible at once, on this node.
    assert_eq!(ask(&c, &s, &token, &count("d-17"), at).await, 60.0);
    assert_eq!(
        ask(&c, &s, &token, "sum_over_time(soil_temp{device=\"d-17\"}[3m])", at).await,
        (0..100).filter(|i| !(20..60).contains(i)).sum::<i64>() as f64
    );
    assert_eq!(ask(&c, &s, &token, &count("d-18"), at).await, 100.0, "the neighbour is unchanged");
    // An instant selector reads each series' newest sample: when a request
    // hides d-18's last ten seconds, the newest one left answers.
    let last = "soil_temp{device=\"d-18\"}";
    assert_eq!(ask(&c, &s, &token, last, at).await, 99.0);
    let (code, _) = admin(
        &c,
        &s,
        reqwest::Method::POST,
        "/admin/v1/tenants/farm/delete",
        Some(serde_json::json!({"match": [last], "start": t0 + 90_000, "end": t0 + 99_000})),
    )
    .await;
    assert_eq!(code, 202);
    assert_eq!(ask(&c, &s, &token, last, at).await, 89.0, "the newest sample the request leaves");

    // kill -9: the request is in the registry; still invisible after restart.
    s.kill9();
    let s = Server::start(dir.path(), &env);
    assert_eq!(ask(&c, &s, &token, &count("d-17"), at).await, 60.0);

    // The whole history of d-18, through the Prometheus route (admin access token).
    let r = c
        .post(s.url("/api/v1/admin/tsdb/delete_series"))
        .bearer_auth(&token)
        .query(&[("match[]", "{device=\"d-18\"}")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(ask(&c, &s, &token, &count("d-18"), at).await, 0.0);
    let series = json(c.get(s.url("/api/v1/series")).bearer_auth(&token).query(&[("match[]", "soil_temp")])).await;
    assert!(!series.to_string().contains("d-18"), "metadata hides a fully deleted series: {series}");
    let values: serde_json::Value =
        c.get(s.url("/api/v1/label/device/values")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(values["data"], serde_json::json!(["d-17"]), "{values}");
    // A write after the request is kept.
    let now = now_ms();
    let r = c
        .post(s.url("/api/v2/write?precision=ms"))
        .bearer_auth(&token)
        .body(format!("soil,device=d-18 temp=7 {now}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(ask(&c, &s, &token, "soil_temp{device=\"d-18\"}", now + 1).await, 7.0);

    // Status, and what is refused.
    let (code, st) = admin(&c, &s, reqwest::Method::GET, &format!("/admin/v1/deletes/{id}"), None).await;
    assert_eq!(code, 200, "{st}");
    assert!(["invisible", "purging", "completed"].contains(&st["status"]["state"].as_str().unwrap()), "{st}");
    let (_, list) = admin(&c, &s, reqwest::Method::GET, "/admin/v1/tenants/farm/deletes", None).await;
    assert_eq!(list["deletes"].as_array().unwrap().len(), 3);
    let (code, _) = admin(
        &c,
        &s,
        reqwest::Method::POST,
        "/admin/v1/tenants/farm/delete",
        Some(serde_json::json!({"match": ["rate(x[5m])"]})),
    )
    .await;
    assert_eq!(code, 400);
    let (_, plain) = admin(
        &c,
        &s,
        reqwest::Method::POST,
        "/admin/v1/tenants/farm/tokens",
        Some(serde_json::json!({"access": "read_write"})),
    )
    .await;
    let r = c
        .post(s.url("/api/v1/admin/tsdb/delete_series"))
        .bearer_auth(plain["token"].as_str().unwrap())
        .query(&[("match[]", "{device=\"d-17\"}")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a read_write token may not delete");
}
