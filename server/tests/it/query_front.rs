//! The query front through the real binary: a range query's settled days
//! are answered from the cache, a late write and a delete request into a
//! cached day change the answer exactly as an unsplit evaluation does
//! (checked against the same data served with `query.front = false`), and
//! identical concurrent queries are coalesced — all read from `/metrics`.

use crate::harness::*;

const ADMIN: &str = "front-admin-token-0123456789abcdef";

async fn admin(c: &reqwest::Client, s: &Server, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let r = c.post(s.url(path)).bearer_auth(ADMIN).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

/// `strata_query_front_<name>` from `/metrics`.
/// `strata_query_front_<name>` in `/metrics`.
async fn front_metric(c: &reqwest::Client, s: &Server, name: &str) -> u64 {
    metric(c, s, &format!("strata_query_front_{name}")).await as u64
}

async fn range(c: &reqwest::Client, s: &Server, token: &str, q: &str, (start, end, step): (i64, i64, i64)) -> String {
    let r = c
        .post(s.url("/api/v1/query_range"))
        .bearer_auth(token)
        .form(&[
            ("query", q.to_owned()),
            ("start", (start / 1000).to_string()),
            ("end", (end / 1000).to_string()),
            ("step", format!("{}s", step / 1000)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains("\"status\":\"success\""), "{body}");
    body
}

/// The value at `t_ms` of the series of `device` in a range answer.
fn value_at(body: &str, device: &str, t_ms: i64) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    let series = v["data"]["result"].as_array().unwrap().iter().find(|s| s["metric"]["device"] == device)?;
    series["values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p[0].as_f64() == Some(t_ms as f64 / 1000.0))
        .map(|p| p[1].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_days_late_writes_deletes_and_coalescing_through_the_binary() {
    let dir = data_dir();
    let env = [("STRATA_ADMIN__TOKEN", ADMIN)];
    let s = Server::start(dir.path(), &env);
    let c = client();
    assert_eq!(admin(&c, &s, "/admin/v1/tenants", serde_json::json!({"id": "farm"})).await.0, 201);
    let (code, tok) = admin(&c, &s, "/admin/v1/tenants/farm/tokens", serde_json::json!({"access": "admin"})).await;
    assert!(code == 200 || code == 201, "{tok}");
    let token = tok["token"].as_str().unwrap().to_owned();

    // Two devices, one sample a minute for the last two days and a half.
    let minute = 60_000;
    let now = now_ms() / minute * minute;
    let first = now - 60 * 60 * minute;
    let lines: Vec<String> = (0..(60 * 60))
        .flat_map(|i| {
            let t = first + i * minute;
            ["d1", "d2"].map(move |d| format!("soil,device={d} temp={} {t}\n", (i % 97) as f64 / 4.0))
        })
        .collect();
    for chunk in lines.chunks(2000) {
        let r =
            c.post(s.url("/api/v2/write?precision=ms")).bearer_auth(&token).body(chunk.concat()).send().await.unwrap();
        assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    }

    let q = "avg by (device) (avg_over_time(soil_temp[10m]))";
    let step = 300_000;
    let grid = (first + 3_600_000) / step * step;
    let span = (grid, (now - 2 * 3_600_000) / step * step, step);
    let r1 = range(&c, &s, &token, q, span).await;
    let (hits1, evals1, misses1) = (
        front_metric(&c, &s, "cache_hits_total").await,
        front_metric(&c, &s, "evaluations_total").await,
        front_metric(&c, &s, "cache_misses_total").await,
    );
    assert!(misses1 >= 3, "two days and a half of settled steps span at least three UTC days: {misses1}");
    let r2 = range(&c, &s, &token, q, span).await;
    assert_eq!(r2, r1, "the cached answer is the computed one");
    assert_eq!(front_metric(&c, &s, "cache_hits_total").await, hits1 + misses1, "every part from the cache");
    assert_eq!(front_metric(&c, &s, "evaluations_total").await, evals1, "and nothing evaluated");

    // A late write into the middle of the range (a cached day).
    let late = grid + ((span.1 - grid) / 2) / step * step;
    let before = value_at(&r2, "d1", late).expect("a value at the late step");
    let inv = front_metric(&c, &s, "cache_invalidations_total").await;
    let r = c
        .post(s.url("/api/v2/write?precision=ms"))
        .bearer_auth(&token)
        .body(format!("soil,device=d1 temp=5000 {}\n", late - 30_000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let dropped = front_metric(&c, &s, "cache_invalidations_total").await - inv;
    assert!((1..=2).contains(&dropped), "the late write dropped the part(s) reading its minute only: {dropped}");
    let r3 = range(&c, &s, &token, q, span).await;
    assert_ne!(value_at(&r3, "d1", late).unwrap(), before, "the late sample is in the answer");
    assert_eq!(value_at(&r3, "d2", late), value_at(&r2, "d2", late));

    // A delete request over an hour of d2 around the same step.
    let r = c
        .post(s.url("/api/v1/admin/tsdb/delete_series"))
        .bearer_auth(&token)
        .query(&[
            ("match[]", "{device=\"d2\"}".to_owned()),
            ("start", ((late - 3_600_000) / 1000).to_string()),
            ("end", ((late + 3_600_000) / 1000).to_string()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r4 = range(&c, &s, &token, q, span).await;
    assert_eq!(value_at(&r4, "d2", late), None, "the deleted hour is gone from the cached day");

    // Coalescing: bursts of identical queries share evaluations.
    let heavy = "count_over_time(soil_temp[3d])";
    let t = format!("{}", now / 1000);
    let mut coalesced = 0;
    for _ in 0..20 {
        let before = front_metric(&c, &s, "coalesced_total").await;
        let burst: Vec<_> = (0..16)
            .map(|_| {
                let (c, url, token, t) = (c.clone(), s.url("/api/v1/query"), token.clone(), t.clone());
                tokio::spawn(async move {
                    let r =
                        c.get(url).bearer_auth(token).query(&[("query", heavy), ("time", &t)]).send().await.unwrap();
                    r.text().await.unwrap()
                })
            })
            .collect();
        let mut bodies = Vec::new();
        for b in burst {
            bodies.push(b.await.unwrap());
        }
        assert!(bodies.iter().all(|b| *b == bodies[0] && b.contains("success")), "{bodies:?}");
        coalesced = front_metric(&c, &s, "coalesced_total").await - before;
        if coalesced > 0 {
            break;
        }
    }
    assert!(coalesced > 0, "20 bursts of 16 identical queries never shared an evaluation");

    // The same data with the front off: equal, byte for byte.
    s.kill9();
    let off = [("STRATA_ADMIN__TOKEN", ADMIN), ("STRATA_QUERY__FRONT", "false")];
    let s = Server::start(dir.path(), &off);
    let plain = range(&c, &s, &token, q, span).await;
    assert_eq!(plain, r4, "front on (split, cached, invalidated) and off answer the same bytes");
    assert_eq!(front_metric(&c, &s, "evaluations_total").await, 0, "the front is off");
}
