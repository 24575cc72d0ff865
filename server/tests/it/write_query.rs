//! Write line protocol over HTTP, query it back through the Prometheus API,
//! survive `kill -9` and SIGTERM, keep tenants apart.

use crate::harness::*;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_plain_and_gzip_and_queries_them_back() {
    let dir = data_dir();
    let s = Server::start(dir.path(), &[]);
    let c = client();
    let t0 = now_ms() / 1000 * 1000 - 120_000;
    let plain = format!(
        "sensors,device=d1,farm=f1 temp=18.5,moisture=31 {t0}\n\
         sensors,device=d1,farm=f1 temp=19.5,moisture=32 {}\n\
         sensors,device=d2,farm=f1 temp=10,moisture=40i {}\n",
        t0 + 10_000,
        t0 + 10_000
    );
    assert_eq!(
        write(&c, &s, "/api/v2/write?bucket=b&precision=ms", plain.into_bytes(), false).await,
        (204, String::new())
    );
    let gz = gzip(format!("sensors,device=d3,farm=f2 temp=30 {}\n", (t0 + 20_000) / 1000).as_bytes());
    assert_eq!(write(&c, &s, "/write?db=x&precision=s", gz, true).await.0, 204);

    let at = t0 + 30_000;
    let d1 = query(&c, &s, r#"sensors_temp{device="d1"}"#, at).await;
    assert_eq!(single_value(&d1), 19.5);
    assert_eq!(d1["result"][0]["metric"]["farm"], "f1");
    assert_eq!(d1["result"][0]["metric"]["__name__"], "sensors_temp");
    let gz_sample = query(&c, &s, r#"sensors_temp{device="d3"}"#, at).await;
    assert_eq!(single_value(&gz_sample), 30.0);
    let sum = query(&c, &s, r#"sum by (farm) (sensors_temp{farm="f1"})"#, at).await;
    assert_eq!(single_value(&sum), 29.5);
    let regex = query(&c, &s, r#"count(sensors_moisture{device=~"d[12]"})"#, at).await;
    assert_eq!(single_value(&regex), 2.0);

    let r = c
        .get(s.url("/api/v1/query_range"))
        .query(&[
            ("query", r#"sensors_temp{device="d1"}"#),
            ("start", &format!("{}", t0 / 1000)),
            ("end", &format!("{}", (t0 + 20_000) / 1000)),
            ("step", "10s"),
        ])
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["data"]["resultType"], "matrix", "{v}");
    let values: Vec<&str> =
        v["data"]["result"][0]["values"].as_array().unwrap().iter().map(|p| p[1].as_str().unwrap()).collect();
    assert_eq!(values, vec!["18.5", "19.5", "19.5"]);

    // POST form body, as Grafana sends it.
    let r = c
        .post(s.url("/api/v1/query"))
        .form(&[("query", "count(sensors_temp)"), ("time", &format!("{}", at / 1000))])
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(single_value(&v["data"]), 3.0);

    let labels: serde_json::Value = c.get(s.url("/api/v1/labels")).send().await.unwrap().json().await.unwrap();
    let labels: Vec<&str> = labels["data"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert_eq!(labels, vec!["__name__", "device", "farm"]);
    let values: serde_json::Value =
        c.get(s.url("/api/v1/label/device/values")).send().await.unwrap().json().await.unwrap();
    assert_eq!(values["data"], serde_json::json!(["d1", "d2", "d3"]));
    let series = json(c.get(s.url("/api/v1/series")).query(&[("match[]", "sensors_moisture")])).await;
    assert_eq!(series["data"].as_array().unwrap().len(), 2, "{series}");

    let bad: serde_json::Value =
        c.get(s.url("/api/v1/query")).query(&[("query", "sum(")]).send().await.unwrap().json().await.unwrap();
    assert_eq!(bad["status"], "error");
    assert_eq!(bad["errorType"], "bad_data");

    let build: serde_json::Value = c.get(s.url("/api/v1/status/buildinfo")).send().await.unwrap().json().await.unwrap();
    assert!(build["data"]["version"].as_str().unwrap().starts_with('3'), "{build}");
    assert_eq!(c.get(s.url("/-/healthy")).send().await.unwrap().status(), 200);
    let metrics = c.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("strata_ingest_samples_total 7"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lines_are_named_and_good_lines_stored() {
    let dir = data_dir();
    let s = Server::start(dir.path(), &[]);
    let c = client();
    let t = now_ms() - 60_000;
    let body = format!(
        "good,device=a v=1 {t}\n\
         bad,device=b v= {t}\n\
         good,device=c v=3 {t}\n\
         # a comment\n\
         bad,device=d v=\"text\" {t}\n\
         good,device=e v=5i {t}\n"
    );
    let (status, text) = write(&c, &s, "/api/v2/write?precision=ms", body.into_bytes(), false).await;
    assert_eq!(status, 400, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["accepted_lines"], 3, "{v}");
    assert_eq!(v["rejected_lines"], 2, "{v}");
    let lines: Vec<u64> = v["errors"].as_array().unwrap().iter().map(|e| e["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, vec![2, 5], "{v}");
    assert!(v["errors"][1]["reason"].as_str().unwrap().contains("string field"), "{v}");
    let sum = query(&c, &s, "sum(good_v)", t + 1000).await;
    assert_eq!(single_value(&sum), 9.0);

    let (status, text) = write(&c, &s, "/api/v2/write?precision=hours", b"m v=1".to_vec(), false).await;
    assert_eq!(status, 400);
    assert!(text.contains("precision"), "{text}");
    let (status, text) = write(&c, &s, "/api/v2/write", b"not gzip".to_vec(), true).await;
    assert_eq!(status, 400);
    assert!(text.contains("gzip"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_map_requests_to_tenants() {
    let dir = data_dir();
    let tokens = r#"{ "token-of-acme" = "acme", "token-of-globex" = "globex" }"#;
    let s = Server::start(dir.path(), &[("STRATA_AUTH__TOKENS", tokens)]);
    let c = client();
    let t = now_ms() - 60_000;
    let unauth = c.post(s.url("/api/v2/write")).body(format!("m v=1 {t}000000")).send().await.unwrap();
    assert_eq!(unauth.status(), 401);
    for (token, v) in [("token-of-acme", 1), ("token-of-globex", 2)] {
        let r = c
            .post(s.url("/api/v2/write?precision=ms"))
            .header("Authorization", format!("Token {token}"))
            .body(format!("m,device=x v={v} {t}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }
    let time = format!("{}", (t + 1000) / 1000);
    let r: serde_json::Value = c
        .get(s.url("/api/v1/query"))
        .header("Authorization", "Bearer token-of-globex")
        .query(&[("query", "m_v"), ("time", &time)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(single_value(&r["data"]), 2.0, "globex sees only its own sample");
    let r = c.get(s.url("/api/v1/query")).query(&[("query", "m_v")]).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

/// Sends writes one after another until stopped; returns the acknowledged values.
fn write_stream(base: String, stop: Arc<AtomicBool>, t0: i64) -> Vec<i64> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let c = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
        let mut acked = Vec::new();
        let mut i = 0i64;
        while !stop.load(Ordering::Relaxed) {
            let mut body = String::new();
            for j in 0..10 {
                let n = i * 10 + j;
                body.push_str(&format!("stream,device=dev{} v={n} {}\n", n % 7, t0 + n));
            }
            match c.post(format!("{base}/api/v2/write?precision=ms")).body(body).send().await {
                Ok(r) if r.status() == 204 => acked.extend((0..10).map(|j| i * 10 + j)),
                Ok(r) => panic!("unexpected status {}", r.status()),
                Err(_) => break, // the server was killed mid-request: not acknowledged
            }
            i += 1;
        }
        acked
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let dir = data_dir();
    // Small memtable budget so segments are flushed (and log segments
    // released) while the stream runs, not only the log tail replayed.
    let env = [("STRATA_HOT_STORE__MAX_MEMTABLE_SAMPLES", "3000"), ("STRATA_LOG__SEGMENT_BYTES", "65536")];
    let s = Server::start(dir.path(), &env);
    let t0 = now_ms() - 3_600_000;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (base, stop) = (s.base.clone(), Arc::clone(&stop));
        std::thread::spawn(move || write_stream(base, stop, t0))
    };
    std::thread::sleep(Duration::from_millis(2500));
    s.kill9();
    stop.store(true, Ordering::Relaxed);
    let acked = writer.join().unwrap();
    assert!(acked.len() > 1000, "the stream should have made progress: {} acks", acked.len());

    let s = Server::start(dir.path(), &env);
    let c = client();
    let at = t0 + 3_000_000;
    let data = query(&c, &s, "stream_v[1h]", at).await;
    let mut stored: Vec<(i64, i64)> = Vec::new();
    for series in data["result"].as_array().unwrap() {
        for p in series["values"].as_array().unwrap() {
            let ts = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
            stored.push((ts - t0, p[1].as_str().unwrap().parse::<f64>().unwrap() as i64));
        }
    }
    stored.sort_unstable();
    let stored_values: std::collections::HashSet<i64> = stored.iter().map(|(_, v)| *v).collect();
    for (offset, v) in &stored {
        assert_eq!(offset, v, "sample at t0+{offset} has value {v}");
    }
    let missing: Vec<&i64> = acked.iter().filter(|v| !stored_values.contains(v)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged samples lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    // At most the one in-flight request may have landed without its acknowledgement.
    assert!(stored.len() <= acked.len() + 10, "stored {} > acked {} + 10", stored.len(), acked.len());
    let count = query(&c, &s, "sum(count_over_time(stream_v[1h]))", at).await;
    assert_eq!(single_value(&count) as usize, stored.len());
    drop(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_and_restart_serves_the_data() {
    let dir = data_dir();
    let s = Server::start(dir.path(), &[]);
    let c = client();
    let t = now_ms() - 60_000;
    let body: String = (0..100).map(|i| format!("m,device=d{} v={i} {}\n", i % 5, t + i)).collect();
    assert_eq!(write(&c, &s, "/api/v2/write?precision=ms", body.into_bytes(), false).await.0, 204);
    let (status, log) = s.terminate();
    assert!(status.success(), "exit status {status}; log:\n{log}");
    assert!(log.contains("strata stopped cleanly"), "{log}");
    assert!(log.contains("flushed memtable to segment"), "{log}");
    assert!(segment_files(&dir.path().join("hot")) > 0, "shutdown flush wrote a segment");

    let s = Server::start(dir.path(), &[]);
    let sum = query(&c, &s, "sum(sum_over_time(m_v[5m]))", t + 1000).await;
    assert_eq!(single_value(&sum), 4950.0);
}

fn segment_files(dir: &Path) -> usize {
    strata_test_support::fs::files_under(dir)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg" || e == "sst" || e == "hseg"))
        .count()
}

#[test]
fn second_process_on_the_same_data_dir_is_refused() {
    let dir = data_dir();
    let _s = Server::start(dir.path(), &[]);
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["serve", "--http-addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another strata process"), "{err}");
}
