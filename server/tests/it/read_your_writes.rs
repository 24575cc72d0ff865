//! Read-your-writes tokens on the embedded log: every write answers with
//! `X-Strata-Write-Token`; a query presenting it (header or `read_after`
//! parameter) is answered with the write in it; a token this log never
//! reached fails with 503 at the timeout instead of answering without it;
//! a malformed token is a 400 naming what is wrong. (Kafka, where the token
//! matters: `kafka::a_write_token_makes_a_query_on_another_node_see_the_write`.)

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_with_the_write_token_sees_the_write_and_bad_tokens_are_refused() {
    let dir = data_dir();
    let s = Server::start(dir.path(), &[("STRATA_CLUSTER__READ_AFTER_TIMEOUT", "1s")]);
    let c = client();
    let t = now_ms() - 1_000;
    let r = c
        .post(s.url("/api/v2/write?precision=ms"))
        .body(format!("ryw,device=a value=1 {t}\nryw,device=b value=2 {t}\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let token = r.headers()["x-strata-write-token"].to_str().unwrap().to_owned();
    assert!(token.starts_with("v1:"), "{token}");
    let ask = |q: &str, token: Option<(&str, &str)>| {
        let mut r =
            c.get(s.url("/api/v1/query")).query(&[("query", q), ("time", &format!("{:.3}", now_ms() as f64 / 1e3))]);
        if let Some((how, value)) = token {
            r = if how == "header" {
                r.header("X-Strata-Read-After", value)
            } else {
                r.query(&[("read_after", value)])
            };
        }
        async move {
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.json::<serde_json::Value>().await.unwrap())
        }
    };
    for how in ["header", "param"] {
        let (status, v) = ask("sum(ryw)", Some((how, &token))).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["data"]["result"][0]["value"][1], "3", "{v}");
    }
    // A position this log never reached: 503 after the timeout, naming the partition.
    let far = "v1:0:999999999";
    let started = std::time::Instant::now();
    let (status, v) = ask("sum(ryw)", Some(("header", far))).await;
    assert_eq!(status, 503, "{v}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
    assert_eq!(v["errorType"], "timeout");
    assert!(v["error"].as_str().unwrap().contains("partition 0: offset 999999999"), "{v}");
    for (bad, why) in [("v1:x:1", "partition"), ("garbage", "not a write token"), ("v1:9999:1", "partitions")] {
        let (status, v) = ask("sum(ryw)", Some(("param", bad))).await;
        assert_eq!(status, 400, "{bad}: {v}");
        assert!(v["error"].as_str().unwrap().contains(why), "{bad}: {v}");
    }
}
