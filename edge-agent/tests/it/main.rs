//! End-to-end tests: the real `strata-edge` binary in front of the real
//! `strata` server.
//!
//! The `strata` binary is looked up next to `strata-edge` in the target
//! directory (`target/debug/strata`); `cargo test --workspace` builds it, and
//! so does `cargo build -p strata`. A test fails with that hint if it is
//! missing. Each test uses its own data directories and free ports.
//!
//! The server applies a re-sent batch (same agent id and sequence number)
//! once, and overwrites a (series, timestamp) written twice anyway, so a
//! re-send does not change counts or sums; re-sends are checked with the
//! counters instead (the agent's `strata_edge_sent_batches_total`, the
//! server's `strata_ingest_samples_total`, which counts at the write path,
//! and `strata_ingest_edge_duplicates_skipped_total`).
#![allow(clippy::disallowed_methods)] // test code owns its runtimes and threads (clippy.toml)

mod aggregate;
mod clock;
mod dedup;
mod fixtures;
mod harness;
mod lanes;
mod mqtt;
mod server_restart;

use harness::{Agent, Server, free_port, get, post, query_scalar};
use std::time::{Duration, Instant};

const SAMPLES_PER_REQUEST: usize = 100;

/// Request `r` of a run: `SAMPLES_PER_REQUEST` samples, each with a unique
/// value and timestamp, spread over four devices. Returns the body and the
/// sum of its values.
fn request_body(r: usize, base_ms: i64) -> (String, f64) {
    let mut body = String::new();
    let mut sum = 0.0;
    for j in 0..SAMPLES_PER_REQUEST {
        let i = r * SAMPLES_PER_REQUEST + j;
        let value = i as f64 + 1.0;
        sum += value;
        body.push_str(&format!("edge_e2e,dev=d{} value={value} {}\n", i % 4, (base_ms + i as i64) * 1_000_000));
    }
    (body, sum)
}

/// What the server holds of `edge_e2e`: (count, sum).
fn server_totals(server: &Server, at_ms: i64) -> (f64, f64) {
    let count = query_scalar(server, "sum(count_over_time(edge_e2e[1h]))", at_ms);
    let sum = query_scalar(server, "sum(sum_over_time(edge_e2e[1h]))", at_ms);
    (count, sum)
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// 2,000 samples through the agent while the server is down, with a
/// `kill -9` of the agent in the middle of the stream; then the server
/// starts: everything acknowledged arrives. After the backlog drained, a
/// `kill -9` and restart of the agent sends nothing again.
#[test]
fn outage_and_kill9_lose_nothing_acknowledged_and_restart_resends_nothing() {
    let server_dir = tempfile::tempdir().unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let server_port = free_port();
    let endpoint = format!("http://127.0.0.1:{server_port}");
    let base_ms = now_ms() - 120_000;

    let mut agent = Agent::start(agent_dir.path(), &endpoint, &[]);
    let (mut acked_count, mut acked_sum) = (0usize, 0.0);
    // The request a kill may have interrupted: stored or not, never acknowledged.
    let mut unacked: Vec<(usize, f64)> = Vec::new();
    for r in 0..20 {
        if r == 10 {
            // kill -9 while a request is in flight.
            let (body, sum) = request_body(r, base_ms);
            let url = agent.base.clone();
            let sender = std::thread::spawn(move || post(&url, "/api/v2/write", body.as_bytes(), &[]));
            std::thread::sleep(Duration::from_millis(2));
            agent.kill9();
            match sender.join().unwrap() {
                Some((204, _, _)) => {
                    acked_count += SAMPLES_PER_REQUEST;
                    acked_sum += sum;
                }
                _ => unacked.push((SAMPLES_PER_REQUEST, sum)),
            }
            agent = Agent::start(agent_dir.path(), &endpoint, &[]);
            continue;
        }
        let (body, sum) = request_body(r, base_ms);
        let (status, _, text) = post(&agent.base, "/write", body.as_bytes(), &[]).expect("agent answers");
        assert_eq!(status, 204, "{text}");
        acked_count += SAMPLES_PER_REQUEST;
        acked_sum += sum;
    }
    assert!(acked_count >= 1900);
    let m = agent.metrics();
    assert!(m.get("strata_edge_queue_batches").copied().unwrap_or(0.0) >= 19.0 - 1.0, "{m:?}");
    assert!(m["strata_edge_send_errors_total"] >= 1.0, "the server is down: {m:?}");
    assert_eq!(m["strata_edge_sent_batches_total"], 0.0);
    let status = get(&agent.base, "/status").unwrap().2;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["current_endpoint"], endpoint.as_str());
    assert!(status["last_error"].as_str().unwrap_or("").contains("127.0.0.1"), "{status}");
    assert!(status["oldest_unsent_age_seconds"].as_f64().unwrap() > 0.0, "{status}");

    let server = Server::start(server_dir.path(), server_port);
    wait_until("the backlog to drain", Duration::from_secs(60), || {
        agent.metrics().get("strata_edge_queue_batches") == Some(&0.0)
    });
    let at = now_ms();
    let (count, sum) = server_totals(&server, at);
    let ok = (count, sum) == (acked_count as f64, acked_sum)
        || unacked.iter().any(|(n, s)| (count, sum) == ((acked_count + n) as f64, acked_sum + s));
    assert!(ok, "server holds {count} samples summing to {sum}; acknowledged {acked_count} summing to {acked_sum}");
    let sent = agent.metrics()["strata_edge_sent_samples_total"];
    let stored = server.metric("strata_ingest_samples_total");
    assert!(sent >= acked_count as f64, "sent {sent}");
    assert_eq!(stored, sent, "the server stored what the agent counted as sent");

    // After the drain: kill -9 and restart; nothing is sent again.
    agent.kill9();
    let agent = Agent::start(agent_dir.path(), &endpoint, &[]);
    std::thread::sleep(Duration::from_millis(1500));
    let m = agent.metrics();
    assert_eq!(m["strata_edge_sent_batches_total"], 0.0, "{m:?}");
    assert_eq!(m["strata_edge_queue_batches"], 0.0, "{m:?}");
    assert_eq!(server.metric("strata_ingest_samples_total"), stored, "nothing re-sent");
    assert_eq!(server_totals(&server, at), (count, sum));
}

/// `kill -9` of the agent while it drains a backlog into a running server:
/// after the restart everything arrives (a batch sent but not yet marked may
/// be sent twice; the server then skips it: `dedup.rs`).
#[test]
fn kill9_mid_send_loses_nothing() {
    let server_dir = tempfile::tempdir().unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let server_port = free_port();
    let endpoint = format!("http://127.0.0.1:{server_port}");
    let base_ms = now_ms() - 120_000;
    let mut agent = Agent::start(agent_dir.path(), &endpoint, &[]);
    let mut expected = (0.0, 0.0);
    for r in 0..100 {
        let (body, sum) = request_body(r, base_ms);
        let (status, _, text) = post(&agent.base, "/api/v2/write", body.as_bytes(), &[]).unwrap();
        assert_eq!(status, 204, "{text}");
        expected.0 += SAMPLES_PER_REQUEST as f64;
        expected.1 += sum;
    }
    let server = Server::start(server_dir.path(), server_port);
    wait_until("the first batches to be sent", Duration::from_secs(30), || {
        agent.metrics().get("strata_edge_sent_batches_total").is_some_and(|&n| n >= 1.0)
    });
    agent.kill9();
    let stored_before = server.metric("strata_ingest_samples_total");
    // Usually mid-drain; a kill just after the drain is fine too (then the restart must send nothing).
    eprintln!("killed with {stored_before} of {} samples stored", expected.0);
    let agent = Agent::start(agent_dir.path(), &endpoint, &[]);
    wait_until("the backlog to drain", Duration::from_secs(60), || {
        agent.metrics().get("strata_edge_queue_batches") == Some(&0.0)
    });
    assert_eq!(server_totals(&server, now_ms()), expected);
    // At most the one batch in flight at the kill is stored twice.
    let stored = server.metric("strata_ingest_samples_total");
    assert!(stored >= expected.0 && stored <= expected.0 + SAMPLES_PER_REQUEST as f64, "stored {stored}");
}

/// With a tiny bound and the server down the agent answers 503 with
/// `Retry-After`, keeps what it acknowledged, and delivers it once the
/// server is up.
#[test]
fn full_queue_refuses_with_503_and_keeps_what_it_acknowledged() {
    let server_dir = tempfile::tempdir().unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let server_port = free_port();
    let endpoint = format!("http://127.0.0.1:{server_port}");
    let base_ms = now_ms() - 120_000;
    let agent =
        Agent::start(agent_dir.path(), &endpoint, &["--queue-max-bytes", "16384", "--queue-segment-bytes", "4096"]);
    let mut expected = (0.0, 0.0);
    let mut refused = false;
    for r in 0..40 {
        let (body, sum) = request_body(r, base_ms);
        let (status, headers, text) = post(&agent.base, "/api/v2/write", body.as_bytes(), &[]).unwrap();
        match status {
            204 => {
                assert!(!refused, "a 204 after a 503 with the server down: the queue dropped something");
                expected.0 += SAMPLES_PER_REQUEST as f64;
                expected.1 += sum;
            }
            503 => {
                assert!(headers.to_ascii_lowercase().contains("retry-after: 1"), "{headers}");
                refused = true;
            }
            other => panic!("{other}: {text}"),
        }
    }
    assert!(refused, "the bound was never reached");
    assert!(expected.0 >= 300.0, "only {} samples fit", expected.0);
    let m = agent.metrics();
    assert!(m["strata_edge_intake_refused_total"] >= 1.0);
    assert!(m["strata_edge_queue_disk_bytes"] <= 16384.0);
    assert_eq!(m["strata_edge_dropped_batches_total"], 0.0);

    let server = Server::start(server_dir.path(), server_port);
    wait_until("the backlog to drain", Duration::from_secs(60), || {
        agent.metrics().get("strata_edge_queue_batches") == Some(&0.0)
    });
    assert_eq!(server_totals(&server, now_ms()), expected);
    // Room again.
    let (body, _) = request_body(100, base_ms);
    assert_eq!(post(&agent.base, "/api/v2/write", body.as_bytes(), &[]).unwrap().0, 204);
}

/// Bad lines get the server's per-line errors and the valid lines arrive;
/// gzip bodies and `precision` are honoured; a sample without a timestamp
/// gets the agent's time.
#[test]
fn per_line_errors_gzip_and_precision() {
    let server_dir = tempfile::tempdir().unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let server = Server::start(server_dir.path(), free_port());
    let agent = Agent::start(agent_dir.path(), &server.base, &[]);
    let t_s = now_ms() / 1000 - 60;
    let body = format!("edge_e2e,dev=a value=1 {t_s}\nedge_e2e,dev=a value=\nedge_e2e,dev=b value=2\n");
    let (status, _, text) = post(&agent.base, "/api/v2/write?precision=s", body.as_bytes(), &[]).unwrap();
    assert_eq!(status, 400, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["accepted_lines"], 2);
    assert_eq!(v["rejected_lines"], 1);
    assert_eq!(v["errors"][0]["line"], 2);
    assert!(v["errors"][0]["column"].as_u64().is_some(), "{v}");
    let gz = harness::gzip(format!("edge_e2e,dev=c value=4 {}\n", t_s * 1000).as_bytes());
    let (status, _, text) = post(&agent.base, "/write?precision=ms", &gz, &[("Content-Encoding", "gzip")]).unwrap();
    assert_eq!(status, 204, "{text}");
    wait_until("delivery", Duration::from_secs(30), || agent.metrics().get("strata_edge_queue_batches") == Some(&0.0));
    assert_eq!(server_totals(&server, now_ms()), (3.0, 7.0));
    let at = query_scalar(&server, "timestamp(edge_e2e{dev=\"a\"})", now_ms());
    assert_eq!(at as i64, t_s);
    let stamped = query_scalar(&server, "timestamp(edge_e2e{dev=\"b\"})", now_ms()) as i64;
    assert!((stamped - now_ms() / 1000).abs() < 60, "agent time stamped: {stamped}");
}

/// With the first endpoint down the agent fails over to the next one in
/// the list and says so in `/status`.
#[test]
fn fails_over_to_the_next_endpoint() {
    let server_dir = tempfile::tempdir().unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let server = Server::start(server_dir.path(), free_port());
    let dead = format!("http://127.0.0.1:{}", free_port());
    let agent = Agent::start(agent_dir.path(), &dead, &["--endpoint", &server.base]);
    let base_ms = now_ms() - 120_000;
    let mut expected = (0.0, 0.0);
    for r in 0..5 {
        let (body, sum) = request_body(r, base_ms);
        assert_eq!(post(&agent.base, "/api/v2/write", body.as_bytes(), &[]).unwrap().0, 204);
        expected.0 += SAMPLES_PER_REQUEST as f64;
        expected.1 += sum;
    }
    wait_until("delivery", Duration::from_secs(30), || agent.metrics().get("strata_edge_queue_batches") == Some(&0.0));
    assert_eq!(server_totals(&server, now_ms()), expected);
    let status: serde_json::Value = serde_json::from_str(&get(&agent.base, "/status").unwrap().2).unwrap();
    assert_eq!(status["current_endpoint"], server.base.as_str(), "{status}");
    assert!(status["send_errors"].as_u64().unwrap() >= 1, "{status}");
    assert_eq!(status["sent_batches"], 5, "{status}");
}

/// A batch the server refuses for good (here: a timestamp from 1970,
/// outside the server's window, which the agent's parser cannot know) is
/// acknowledged and counted, not retried for ever: the batches behind it
/// arrive.
#[test]
fn a_batch_the_server_refuses_for_good_does_not_block_the_queue() {
    let server_dir = tempfile::tempdir().unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let server = Server::start(server_dir.path(), free_port());
    let agent = Agent::start(agent_dir.path(), &server.base, &[]);
    assert_eq!(post(&agent.base, "/write", b"edge_e2e,dev=old value=5 1\n", &[]).unwrap().0, 204);
    let (body, sum) = request_body(0, now_ms() - 60_000);
    assert_eq!(post(&agent.base, "/write", body.as_bytes(), &[]).unwrap().0, 204);
    wait_until("delivery", Duration::from_secs(30), || agent.metrics().get("strata_edge_queue_batches") == Some(&0.0));
    let m = agent.metrics();
    assert_eq!(m["strata_edge_server_rejected_batches_total"], 1.0, "{m:?}");
    assert_eq!(m["strata_edge_sent_batches_total"], 1.0, "{m:?}");
    assert_eq!(server_totals(&server, now_ms()), (SAMPLES_PER_REQUEST as f64, sum));
    let status: serde_json::Value = serde_json::from_str(&get(&agent.base, "/status").unwrap().2).unwrap();
    assert!(status["last_error"].as_str().unwrap().contains("HTTP 400"), "{status}");
}

/// Concurrent writers (requests waiting together are queued as one batch
/// with one fsync): every acknowledged sample arrives.
#[test]
fn concurrent_writers_all_arrive() {
    let server_dir = tempfile::tempdir().unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let server = Server::start(server_dir.path(), free_port());
    let agent = Agent::start(agent_dir.path(), &server.base, &[]);
    let base_ms = now_ms() - 120_000;
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let url = agent.base.clone();
            std::thread::spawn(move || {
                let mut sum = 0.0;
                for k in 0..10 {
                    let (body, s) = request_body(w * 10 + k, base_ms);
                    let (status, _, text) = post(&url, "/api/v2/write", body.as_bytes(), &[]).unwrap();
                    assert_eq!(status, 204, "{text}");
                    sum += s;
                }
                sum
            })
        })
        .collect();
    let sum: f64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    wait_until("delivery", Duration::from_secs(60), || agent.metrics().get("strata_edge_queue_batches") == Some(&0.0));
    assert_eq!(server_totals(&server, now_ms()), (80.0 * SAMPLES_PER_REQUEST as f64, sum));
    let batches = agent.metrics()["strata_edge_sent_batches_total"];
    assert!((1.0..=80.0).contains(&batches), "{batches} batches for 80 requests");
    assert_eq!(agent.metrics()["strata_edge_sent_samples_total"], 80.0 * SAMPLES_PER_REQUEST as f64);
}

/// After a failover the agent goes back to the first endpoint once it is
/// up again (`--primary-retry`).
#[test]
fn returns_to_the_first_endpoint_when_it_is_back() {
    let primary_dir = tempfile::tempdir().unwrap();
    let secondary_dir = tempfile::tempdir().unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let secondary = Server::start(secondary_dir.path(), free_port());
    let primary_port = free_port();
    let primary_url = format!("http://127.0.0.1:{primary_port}");
    let agent =
        Agent::start(agent_dir.path(), &primary_url, &["--endpoint", &secondary.base, "--primary-retry", "500ms"]);
    let base_ms = now_ms() - 120_000;
    let (body, first_sum) = request_body(0, base_ms);
    assert_eq!(post(&agent.base, "/write", body.as_bytes(), &[]).unwrap().0, 204);
    wait_until("delivery to the second endpoint", Duration::from_secs(30), || {
        agent.metrics().get("strata_edge_queue_batches") == Some(&0.0)
    });
    assert_eq!(server_totals(&secondary, now_ms()), (SAMPLES_PER_REQUEST as f64, first_sum));
    let primary = Server::start(primary_dir.path(), primary_port);
    std::thread::sleep(Duration::from_millis(700));
    let (body, sum) = request_body(1, base_ms);
    assert_eq!(post(&agent.base, "/write", body.as_bytes(), &[]).unwrap().0, 204);
    wait_until("delivery to the first endpoint", Duration::from_secs(30), || {
        agent.metrics().get("strata_edge_queue_batches") == Some(&0.0)
    });
    assert_eq!(server_totals(&primary, now_ms()), (SAMPLES_PER_REQUEST as f64, sum));
    assert_eq!(server_totals(&secondary, now_ms()), (SAMPLES_PER_REQUEST as f64, first_sum));
    let status: serde_json::Value = serde_json::from_str(&get(&agent.base, "/status").unwrap().2).unwrap();
    assert_eq!(status["current_endpoint"], primary_url.as_str(), "{status}");
}

/// What goes on the wire: one request per queued batch, zstd,
/// `precision=ns`, the agent id and sequence headers, the token; a 500 and
/// a 401 are retried (the batch is sent again with its sequence number), a
/// 2xx acknowledges it. Both batches are live, and the live lane sends the
/// newest unacknowledged one first, so which batch the failures hit depends
/// on whether the second was queued before the first send: each is
/// acknowledged exactly once either way. Every request carries the agent's
/// clock, growing; the first is the empty clock probe.
#[test]
fn sends_each_batch_with_its_sequence_number_and_retries_until_acknowledged() {
    let agent_dir = tempfile::tempdir().unwrap();
    let fake = harness::FakeServer::start(vec![204, 500, 401, 204, 204]);
    let agent = Agent::start(agent_dir.path(), &fake.base, &["--token", "s3cret"]);
    for (i, line) in ["m,dev=a value=1 1000000000", "m,dev=a value=2"].iter().enumerate() {
        let (status, _, text) = post(&agent.base, "/write", line.as_bytes(), &[]).unwrap();
        assert_eq!(status, 204, "request {i}: {text}");
    }
    wait_until("delivery", Duration::from_secs(30), || agent.metrics().get("strata_edge_queue_batches") == Some(&0.0));
    let all = fake.received();
    let hlcs: Vec<strata_schemas::HlcTimestamp> =
        all.iter().map(|r| strata_schemas::HlcTimestamp::parse(&r.headers["x-strata-agent-hlc"]).unwrap()).collect();
    assert!(hlcs.windows(2).all(|w| w[0] < w[1]), "{hlcs:?}");
    let (probe, received): (Vec<_>, Vec<_>) =
        all.into_iter().partition(|r| !r.headers.contains_key("x-strata-agent-seq"));
    assert_eq!(probe.len(), 1, "one clock probe");
    assert!(harness::body_text(&probe[0]).is_empty());
    let seqs: Vec<&str> = received.iter().map(|r| r.headers["x-strata-agent-seq"].as_str()).collect();
    // The fake answers 500 and 401 to the first two batch requests, 204 to the next two.
    assert_eq!(seqs.len(), 4, "{received:?}");
    let mut acked = seqs[2..].to_vec();
    acked.sort_unstable();
    assert_eq!(acked, ["1", "2"], "each batch acknowledged once: {seqs:?}");
    assert!(seqs[..2].iter().all(|s| ["1", "2"].contains(s)), "{seqs:?}");
    // `<agent_id>.<queue id>`: one id for the queue, 16 hex digits after the agent id.
    let origin = received[0].headers["x-strata-agent-id"].clone();
    let (id, queue) = origin.split_once('.').unwrap();
    assert!(id == "e2e-gw" && queue.len() == 16 && queue.bytes().all(|b| b.is_ascii_hexdigit()), "{origin}");
    for r in &received {
        assert_eq!(r.request_line, "POST /api/v2/write?precision=ns HTTP/1.1");
        assert_eq!(r.headers["x-strata-agent-id"], origin);
        assert_eq!(r.headers["authorization"], "Token s3cret");
        assert_eq!(r.headers["content-encoding"], "zstd");
    }
    let body_of = |seq: &str| {
        let r = received.iter().rfind(|r| r.headers["x-strata-agent-seq"] == seq).unwrap();
        harness::body_text(r)
    };
    assert_eq!(body_of("1"), "m,dev=a value=1 1000000000\n");
    let second = body_of("2");
    let stamped: i64 = second.trim_end().rsplit_once(' ').unwrap().1.parse().unwrap();
    assert!((stamped / 1_000_000 - now_ms()).abs() < 60_000, "agent time in ns: {second}");
    let m = agent.metrics();
    assert_eq!(m["strata_edge_send_errors_total"], 2.0);
    assert_eq!(m["strata_edge_sent_batches_total"], 2.0);
    assert_eq!(m["strata_edge_sent_samples_total"], 2.0);
}

/// `overflow = drop_oldest`: every request is taken, the oldest batches are
/// dropped (counted), and exactly the newest ones arrive.
#[test]
fn drop_oldest_keeps_the_newest_and_counts_what_it_dropped() {
    let server_dir = tempfile::tempdir().unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let server_port = free_port();
    let endpoint = format!("http://127.0.0.1:{server_port}");
    let base_ms = now_ms() - 120_000;
    let agent = Agent::start(
        agent_dir.path(),
        &endpoint,
        &["--queue-max-bytes", "16384", "--queue-segment-bytes", "4096", "--overflow", "drop_oldest"],
    );
    let mut sums = Vec::new();
    for r in 0..40 {
        let (body, sum) = request_body(r, base_ms);
        let (status, _, text) = post(&agent.base, "/api/v2/write", body.as_bytes(), &[]).unwrap();
        assert_eq!(status, 204, "{text}");
        sums.push(sum);
    }
    let m = agent.metrics();
    let dropped = m["strata_edge_dropped_batches_total"] as usize;
    assert!(dropped > 0 && dropped < 40, "{m:?}");
    assert_eq!(m["strata_edge_queue_batches"] as usize, 40 - dropped, "{m:?}");
    assert!(m["strata_edge_queue_disk_bytes"] <= 16384.0);
    let server = Server::start(server_dir.path(), server_port);
    wait_until("the backlog to drain", Duration::from_secs(60), || {
        agent.metrics().get("strata_edge_queue_batches") == Some(&0.0)
    });
    let kept = 40 - dropped;
    let expected_sum: f64 = sums[dropped..].iter().sum();
    assert_eq!(server_totals(&server, now_ms()), ((kept * SAMPLES_PER_REQUEST) as f64, expected_sum));
}
