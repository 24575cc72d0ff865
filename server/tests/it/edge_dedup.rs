//! An edge agent's batch is applied once: the same (X-Strata-Agent-Id,
//! X-Strata-Agent-Seq) sent again — right away, after a `kill -9` and
//! restart (log replay), after a flush and restart (state from the
//! manifest) — is acknowledged and never applied a second time.

use crate::harness::*;

const ADMIN: &str = "edge-dedup-admin-token";
const AGENT: &str = "gw-e2e-1";

/// 16 devices (several log partitions), one sample each at `ts`, all `value`.
fn body(ts: i64, value: f64) -> Vec<u8> {
    (0..16).map(|d| format!("edge,device=d{d} temp={value} {ts}\n")).collect::<String>().into_bytes()
}

async fn send(c: &reqwest::Client, s: &Server, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, String) {
    let mut req = c.post(s.url("/api/v2/write?bucket=b&precision=ms")).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

async fn send_batch(c: &reqwest::Client, s: &Server, seq: u64, body: Vec<u8>) {
    let seq = seq.to_string();
    let answer = send(c, s, &[("X-Strata-Agent-Id", AGENT), ("X-Strata-Agent-Seq", &seq)], body).await;
    assert_eq!(answer, (204, String::new()), "seq {seq}");
}

async fn sum(c: &reqwest::Client, s: &Server, at: i64) -> f64 {
    single_value(&query(c, s, "sum(edge_temp)", at).await)
}

async fn count(c: &reqwest::Client, s: &Server, at: i64) -> f64 {
    single_value(&query(c, s, "count(count_over_time(edge_temp[10m]))", at).await)
}

async fn samples(c: &reqwest::Client, s: &Server, at: i64) -> f64 {
    single_value(&query(c, s, "sum(count_over_time(edge_temp[10m]))", at).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_edge_batch_is_applied_once_across_kill9_flush_and_restart() {
    let dir = data_dir();
    let env = [("STRATA_ADMIN__TOKEN", ADMIN)];
    let s = Server::start(dir.path(), &env);
    let c = client();
    let t0 = now_ms() / 1000 * 1000 - 120_000;
    let at = t0 + 30_000;

    // The batch, then its re-send with other values (a second apply would show).
    send_batch(&c, &s, 42, body(t0, 1.0)).await;
    send_batch(&c, &s, 42, body(t0, 2.0)).await;
    assert_eq!(sum(&c, &s, at).await, 16.0, "the first copy was applied, the second skipped");
    assert_eq!((count(&c, &s, at).await, samples(&c, &s, at).await), (16.0, 16.0));
    assert!(metric(&c, &s, "strata_ingest_edge_duplicates_skipped_total").await >= 1.0);
    // The same body from another agent, or without headers, is another write (latest wins).
    let other = [("X-Strata-Agent-Id", "gw-other"), ("X-Strata-Agent-Seq", "42")];
    assert_eq!(send(&c, &s, &other, body(t0 + 1, 3.0)).await.0, 204);

    // kill -9: the log replays both records; the second is skipped again.
    s.kill9();
    let s = Server::start(dir.path(), &env);
    assert_eq!(sum(&c, &s, t0).await, 16.0);
    send_batch(&c, &s, 42, body(t0, 4.0)).await;
    assert_eq!(sum(&c, &s, t0).await, 16.0);

    // Flush (the state goes into the manifest), kill -9, restart, re-send.
    let r = c.post(s.url("/internal/flush")).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    s.kill9();
    let s = Server::start(dir.path(), &env);
    send_batch(&c, &s, 42, body(t0, 5.0)).await;
    assert_eq!(sum(&c, &s, t0).await, 16.0);
    // The next batch of the agent, older than 42 (its backlog lane), is new.
    send_batch(&c, &s, 41, body(t0 + 2_000, 6.0)).await;
    assert_eq!(sum(&c, &s, at).await, 96.0);
    send_batch(&c, &s, 41, body(t0 + 2_000, 7.0)).await;
    assert_eq!(sum(&c, &s, at).await, 96.0);
    assert_eq!(samples(&c, &s, at).await, 48.0, "t0 (gw-e2e-1), t0+1 (gw-other), t0+2s: 16 each");

    // Graceful restart without flush in between: the same again.
    let (status, _) = s.terminate();
    assert!(status.success());
    let s = Server::start(dir.path(), &env);
    send_batch(&c, &s, 41, body(t0 + 2_000, 8.0)).await;
    send_batch(&c, &s, 42, body(t0, 8.0)).await;
    assert_eq!(sum(&c, &s, at).await, 96.0);
    assert_eq!(sum(&c, &s, t0).await, 16.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_agent_headers_are_refused_naming_the_header() {
    let dir = data_dir();
    let s = Server::start(dir.path(), &[]);
    let c = client();
    let t0 = now_ms() - 60_000;
    let long = "a".repeat(129);
    let cases: [(&[(&str, &str)], &str); 6] = [
        (&[("X-Strata-Agent-Id", "gw-1"), ("X-Strata-Agent-Seq", "x1")], "X-Strata-Agent-Seq"),
        (&[("X-Strata-Agent-Id", "gw-1"), ("X-Strata-Agent-Seq", "-1")], "X-Strata-Agent-Seq"),
        (&[("X-Strata-Agent-Id", "gw-1"), ("X-Strata-Agent-Seq", "18446744073709551616")], "X-Strata-Agent-Seq"),
        (&[("X-Strata-Agent-Id", "gw 1"), ("X-Strata-Agent-Seq", "1")], "X-Strata-Agent-Id"),
        (&[("X-Strata-Agent-Id", &long), ("X-Strata-Agent-Seq", "1")], "X-Strata-Agent-Id"),
        (&[("X-Strata-Agent-Seq", "1")], "X-Strata-Agent-Id"),
    ];
    for (headers, named) in cases {
        let (status, text) = send(&c, &s, headers, body(t0, 1.0)).await;
        assert_eq!(status, 400, "{headers:?}: {text}");
        assert!(text.contains(named), "{headers:?}: {text}");
    }
    let (status, text) = send(&c, &s, &[("X-Strata-Agent-Id", "gw-1")], body(t0, 1.0)).await;
    assert!(status == 400 && text.contains("X-Strata-Agent-Seq"), "{status} {text}");
    // Nothing of the refused requests was stored.
    assert_eq!(query(&c, &s, "edge_temp", t0).await["result"].as_array().unwrap().len(), 0);
    // The largest id and sequence number are fine.
    let id = "a".repeat(128);
    let ok = [("X-Strata-Agent-Id", id.as_str()), ("X-Strata-Agent-Seq", "18446744073709551615")];
    assert_eq!(send(&c, &s, &ok, body(t0, 1.0)).await, (204, String::new()));
}
