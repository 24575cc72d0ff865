//! Group rollups through the real binary: declared with the admin API,
//! written by the roll, answering the matching aggregation exactly like the
//! data, counted in `/metrics`; other groupings answered as before.

use crate::harness::*;

/// An instant query answered 200 with tenant token `token`.
async fn query_ok(c: &reqwest::Client, s: &Server, token: &str, q: &str, t_ms: i64) -> serde_json::Value {
    let (status, v) = query_as(c, s, token, q, t_ms).await;
    assert_eq!(status, 200, "{q}: {v}");
    v
}

/// `{farm → value}` of an instant vector answer.
fn by_farm(answer: &serde_json::Value) -> std::collections::BTreeMap<String, f64> {
    answer["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let farm = r["metric"]["farm"].as_str().unwrap_or("").to_owned();
            (farm, r["value"][1].as_str().unwrap().parse().unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_rollup_declared_through_the_admin_api_answers_its_aggregation_and_is_counted() {
    let dir = data_dir();
    let env = [
        ("STRATA_COLD__ENABLED", "true"),
        ("STRATA_COMPACTOR__GRACE", "1m"),
        ("STRATA_COMPACTOR__INTERVAL", "1h"),
        ("STRATA_HOT_STORE__DEFAULT_HOT_TTL", "1d"),
    ];
    let s = Server::start(dir.path(), &env);
    let c = client();
    let admin = admin_token(dir.path());
    // A bad declaration is refused with the reason; a good one is stored with the tenant.
    let bad = serde_json::json!({"id": "acme", "group_rollups": [{"metric": "soil_moisture", "by": ["__name__"]}]});
    let r = c.post(s.url("/admin/v1/tenants")).bearer_auth(&admin).json(&bad).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(text.contains("group_rollups") && text.contains("__name__"), "{text}");
    let good = serde_json::json!({"id": "acme", "group_rollups": [{"metric": "soil_moisture", "by": ["farm"]}]});
    let r = c.post(s.url("/admin/v1/tenants")).bearer_auth(&admin).json(&good).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let got: serde_json::Value =
        c.get(s.url("/admin/v1/tenants/acme")).bearer_auth(&admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(got["group_rollups"], good["group_rollups"], "{got}");
    let token = |access: &'static str| {
        let admin = admin.clone();
        let c = c.clone();
        let url = s.url("/admin/v1/tenants/acme/tokens");
        async move {
            let r = c.post(url).bearer_auth(admin).json(&serde_json::json!({"access": access})).send().await.unwrap();
            let v: serde_json::Value = r.json().await.unwrap();
            v["token"].as_str().unwrap_or_else(|| panic!("{v}")).to_owned()
        }
    };
    let (writer, reader) = (token("write").await, token("read").await);

    // Three hours of a sample every 5 minutes from 3 farms × 3 devices (and one device without a farm).
    const H: i64 = 3_600_000;
    let h0 = (now_ms() / H - 3) * H;
    let mut points: Vec<(String, i64, i64)> = Vec::new();
    let mut body = String::new();
    for d in 0..10 {
        let farm = if d < 9 { format!("f{}", d / 3) } else { String::new() };
        let tag = if farm.is_empty() { String::new() } else { format!(",farm={farm}") };
        for i in 0..36 {
            let t = h0 - 3 * H + i * 300_000 + 1000 * d;
            let v = (i * 7 + d * 13) % 50 + 1;
            body.push_str(&format!("soil,device=d{d}{tag} moisture={v} {t}\n"));
            points.push((farm.clone(), t, v));
        }
    }
    assert_eq!(write_as(&c, &s, &writer, body).await.0, 204);
    internal(&c, &s, &admin, "/internal/flush").await;
    let rolled = internal(&c, &s, &admin, "/internal/roll").await;
    assert_eq!(rolled["samples"], points.len(), "{rolled}");
    assert!(metric(&c, &s, "strata_compactor_group_rollup_rows_written_total").await > 0.0);

    let expect = |t: i64, f: &dyn Fn(&[i64]) -> i64| -> std::collections::BTreeMap<String, f64> {
        let mut groups: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
        for (farm, ts, v) in &points {
            if *ts > t - H && *ts <= t {
                groups.entry(farm.clone()).or_default().push(*v);
            }
        }
        groups.into_iter().map(|(k, v)| (k, f(&v) as f64)).collect()
    };
    let max = |v: &[i64]| *v.iter().max().unwrap();
    let count = |v: &[i64]| v.len() as i64;
    let sum = |v: &[i64]| v.iter().sum();
    for (q, f) in [
        ("max by (farm) (max_over_time(soil_moisture[1h]))", &max as &dyn Fn(&[i64]) -> i64),
        ("sum by (farm) (count_over_time(soil_moisture[1h]))", &count),
        ("sum by (farm) (sum_over_time(soil_moisture[1h]))", &sum),
    ] {
        // Windows ending at or before h0 − H: the roll's watermark is h0 or later (the bucket of the
        // last sample, h0 − 5 min, has ended), and a window ending at the watermark itself is not
        // wholly cold (a sample at exactly the watermark belongs to the next, hot bucket), so the
        // engine rightly reads it raw (with 2 h buckets: h0 whenever the test ran in an odd UTC hour).
        for t in [h0 - 2 * H, h0 - H] {
            let before = metric(&c, &s, "strata_query_group_rollup_selects_total").await;
            let got = by_farm(&query_ok(&c, &s, &reader, q, t).await);
            assert_eq!(got, expect(t, f), "{q} @ {t}");
            assert_eq!(got.len(), 4, "three farms and the farmless group: {got:?}");
            let after = metric(&c, &s, "strata_query_group_rollup_selects_total").await;
            assert_eq!(after, before + 1.0, "{q} @ {t} answered from the group rollup");
        }
    }
    // Another grouping, another function, an extra matcher: answered as before.
    for q in [
        "max by (device) (max_over_time(soil_moisture[1h]))",
        "avg by (farm) (avg_over_time(soil_moisture[1h]))",
        "max by (farm) (max_over_time(soil_moisture{device=\"d1\"}[1h]))",
    ] {
        let before = metric(&c, &s, "strata_query_group_rollup_selects_total").await;
        let answer = query_ok(&c, &s, &reader, q, h0).await;
        assert!(!answer["data"]["result"].as_array().unwrap().is_empty(), "{q}: {answer}");
        assert_eq!(metric(&c, &s, "strata_query_group_rollup_selects_total").await, before, "{q}");
    }
}
