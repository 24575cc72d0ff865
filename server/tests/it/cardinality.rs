//! `GET /api/v1/status/tsdb` through the binary: counts of the token's tenant
//! only, narrowed by `match[]`, `focusLabel`, `date` and `topN`, with the
//! tenant's `max_active_series` headroom; no token, no answer.

use crate::harness::*;

const TOKENS: &str = "{ \"tok-acme-0123456789\" = \"acme\", \"tok-other-012345678\" = \"other\" }";

async fn status(
    c: &reqwest::Client,
    s: &Server,
    token: Option<&str>,
    params: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let mut r = c.get(s.url("/api/v1/status/tsdb")).query(params);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn names(v: &serde_json::Value, list: &str) -> Vec<(String, u64)> {
    v["data"][list]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_owned(), e["value"].as_u64().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cardinality_of_the_tokens_tenant_only() {
    let dir = data_dir();
    let s = Server::start(dir.path(), &[("STRATA_AUTH__TOKENS", TOKENS)]);
    let c = client();
    let now = now_ms();
    let mut acme = String::new();
    for farm in 0..3 {
        for dev in 0..5 {
            acme.push_str(&format!("soil,farm=f{farm},device=d{farm}{dev} temp=1,moisture=2 {now}\n"));
        }
    }
    for (token, body) in [("tok-acme-0123456789", acme), ("tok-other-012345678", format!("secret,site=x v=1 {now}\n"))]
    {
        let r = c.post(s.url("/api/v2/write?precision=ms")).bearer_auth(token).body(body).send().await.unwrap();
        assert_eq!(r.status(), 204);
    }
    let (code, v) = status(&c, &s, Some("tok-acme-0123456789"), &[]).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["headStats"]["numSeries"], 30, "{v}");
    assert_eq!(names(&v, "seriesCountByMetricName"), [("soil_moisture".to_owned(), 15), ("soil_temp".to_owned(), 15)]);
    assert_eq!(names(&v, "labelValueCountByLabelName")[0], ("device".to_owned(), 15));
    assert!(!v.to_string().contains("secret"), "another tenant's metric: {v}");
    assert_eq!(v["data"]["activeSeries"]["used"], 30);
    assert!(v["data"]["activeSeries"]["limit"].as_u64().unwrap() > 0);

    let (_, v) = status(
        &c,
        &s,
        Some("tok-acme-0123456789"),
        &[("match[]", "soil_temp{farm=\"f1\"}"), ("focusLabel", "device"), ("topN", "2")],
    )
    .await;
    assert_eq!(v["data"]["totalSeries"], 5, "{v}");
    assert_eq!(names(&v, "seriesCountByFocusLabelValue").len(), 2, "topN: {v}");
    let today = {
        let d = std::process::Command::new("date").args(["-u", "+%Y-%m-%d"]).output().unwrap();
        String::from_utf8(d.stdout).unwrap().trim().to_owned()
    };
    let (_, v) = status(&c, &s, Some("tok-acme-0123456789"), &[("date", &today)]).await;
    assert_eq!(v["data"]["totalSeries"], 30, "{today}: {v}");
    let (_, v) = status(&c, &s, Some("tok-acme-0123456789"), &[("date", "2001-01-01")]).await;
    assert_eq!(v["data"]["totalSeries"], 0, "{v}");

    let (_, v) = status(&c, &s, Some("tok-other-012345678"), &[]).await;
    assert_eq!(names(&v, "seriesCountByMetricName"), [("secret_v".to_owned(), 1)]);
    let (code, _) = status(&c, &s, None, &[]).await;
    assert_eq!(code, 401);
    let (code, v) = status(&c, &s, Some("tok-acme-0123456789"), &[("topN", "x")]).await;
    assert_eq!((code, v["errorType"].as_str()), (400, Some("bad_data")), "{v}");
}
