//! Live first after an outage: with a backlog queued while the server was
//! down, a fresh sample is queryable within seconds while the backlog is
//! still draining at `--backlog-rate`; everything arrives exactly once; a
//! `kill -9` mid-drain (live batches acknowledged out of order above the
//! contiguous prefix) re-sends nothing acknowledged.

use std::time::{Duration, Instant};

use super::harness::{Agent, Server, free_port, get, post, query_scalar};
use super::{SAMPLES_PER_REQUEST, now_ms, request_body, server_totals, wait_until};

/// Backlog requests (100 samples each, one batch each).
const BACKLOG_REQUESTS: usize = 30;
/// 30 batches at 5 per second: about 6 s of drain.
const LANE_ARGS: [&str; 4] = ["--live-window", "1s", "--backlog-rate", "5"];

/// `n` fresh samples of `edge_e2e` (series `dev=live<k>`, timestamps from now on, 1 ms apart),
/// with values unique across calls; returns the body and the sum.
fn live_body(k: usize, n: usize) -> (String, f64) {
    let ts = now_ms();
    let mut body = String::new();
    let mut sum = 0.0;
    for j in 0..n {
        let value = 1_000_000.0 + (k * 1000 + j) as f64;
        sum += value;
        body.push_str(&format!("edge_e2e,dev=live{k} value={value} {}\n", (ts + j as i64) * 1_000_000));
    }
    (body, sum)
}

/// Queues the backlog with the server down (timestamps 30 min back) and
/// waits until it is older than the live window.
fn queue_backlog(agent: &Agent) -> (f64, f64) {
    let base_ms = now_ms() - 30 * 60_000;
    let mut expected = (0.0, 0.0);
    for r in 0..BACKLOG_REQUESTS {
        let (body, sum) = request_body(r, base_ms);
        let (status, _, text) = post(&agent.base, "/api/v2/write", body.as_bytes(), &[]).expect("agent answers");
        assert_eq!(status, 204, "{text}");
        expected.0 += SAMPLES_PER_REQUEST as f64;
        expected.1 += sum;
    }
    std::thread::sleep(Duration::from_millis(1300));
    let m = agent.metrics();
    assert_eq!(m["strata_edge_backlog_batches"], BACKLOG_REQUESTS as f64, "{m:?}");
    assert_eq!(m["strata_edge_live_batches"], 0.0, "{m:?}");
    assert!(m["strata_edge_backlog_oldest_unsent_age_seconds"] >= 1.0, "{m:?}");
    expected
}

fn status(agent: &Agent) -> serde_json::Value {
    serde_json::from_str(&get(&agent.base, "/status").expect("agent answers").2).unwrap()
}

#[test]
fn fresh_data_overtakes_the_backlog_which_drains_at_the_configured_rate() {
    let server_dir = tempfile::tempdir().unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let server_port = free_port();
    let endpoint = format!("http://127.0.0.1:{server_port}");
    let agent = Agent::start(agent_dir.path(), &endpoint, &LANE_ARGS);
    let mut expected = queue_backlog(&agent);

    let server = Server::start(server_dir.path(), server_port);
    let t0 = Instant::now();
    let fresh_ms = now_ms();
    let line = format!("edge_live,dev=now value=42 {}\n", fresh_ms * 1_000_000);
    assert_eq!(post(&agent.base, "/write", line.as_bytes(), &[]).unwrap().0, 204);
    // Live first: the fresh sample is queryable within seconds...
    let mut seen = false;
    while t0.elapsed() < Duration::from_secs(5) {
        if query_scalar(&server, "count_over_time(edge_live[1h])", now_ms()) == 1.0 {
            seen = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let backlog_arrived = server_totals(&server, now_ms()).0;
    assert!(seen, "the fresh sample was not queryable within 5 s; {backlog_arrived} backlog samples were");
    // ... while the backlog is still on its way.
    assert!(backlog_arrived < expected.0, "the backlog had fully arrived first ({backlog_arrived})");
    let s = status(&agent);
    assert!(s["lanes"]["backlog_batches"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["lanes"]["backlog_rate"], 5, "{s}");
    eprintln!("fresh sample seen after {:?} with {backlog_arrived} backlog samples stored", t0.elapsed());

    // Fresh data keeps going first while the backlog drains.
    std::thread::sleep(Duration::from_millis(600));
    let (body, sum) = live_body(0, 10);
    assert_eq!(post(&agent.base, "/write", body.as_bytes(), &[]).unwrap().0, 204);
    expected.0 += 10.0;
    expected.1 += sum;
    let rate = status(&agent)["lanes"]["backlog_drain_rate"].as_f64().unwrap();
    assert!(rate > 0.0 && rate <= 7.0, "drain rate {rate} (limit 5/s)");

    wait_until("the backlog to drain", Duration::from_secs(60), || {
        agent.metrics().get("strata_edge_queue_batches") == Some(&0.0)
    });
    let drained_after = t0.elapsed();
    assert!(drained_after >= Duration::from_secs(4), "30 batches at 5/s drained in {drained_after:?}");
    assert_eq!(server_totals(&server, now_ms()), expected);
    assert_eq!(query_scalar(&server, "sum_over_time(edge_live[1h])", now_ms()), 42.0);
    let m = agent.metrics();
    assert_eq!(m["strata_edge_sent_batches_total"], BACKLOG_REQUESTS as f64 + 2.0, "{m:?}");
    assert_eq!(m["strata_edge_sent_backlog_batches_total"], BACKLOG_REQUESTS as f64, "{m:?}");
    assert_eq!(m["strata_edge_sent_live_batches_total"], 2.0, "{m:?}");
    assert_eq!(m["strata_edge_backlog_batches"] + m["strata_edge_live_batches"], 0.0, "{m:?}");
    assert_eq!(server.metric("strata_ingest_samples_total"), expected.0 + 1.0, "nothing sent twice");
}

#[test]
fn kill9_mid_drain_loses_nothing_and_resends_nothing_acknowledged_out_of_order() {
    let server_dir = tempfile::tempdir().unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let server_port = free_port();
    let endpoint = format!("http://127.0.0.1:{server_port}");
    let mut agent = Agent::start(agent_dir.path(), &endpoint, &LANE_ARGS);
    let mut expected = queue_backlog(&agent);

    let server = Server::start(server_dir.path(), server_port);
    // Live batches of 50 samples, acknowledged ahead of the backlog.
    let live = |agent: &Agent, k: usize, expected: &mut (f64, f64)| {
        let (body, sum) = live_body(k, 50);
        assert_eq!(post(&agent.base, "/write", body.as_bytes(), &[]).unwrap().0, 204);
        expected.0 += 50.0;
        expected.1 += sum;
    };
    for k in 0..8 {
        live(&agent, k, &mut expected);
        std::thread::sleep(Duration::from_millis(150));
    }
    wait_until("the live batches to be acknowledged", Duration::from_secs(10), || {
        agent.metrics().get("strata_edge_sent_live_batches_total") == Some(&8.0)
    });
    let before = agent.metrics();
    assert!(before["strata_edge_backlog_batches"] > 0.0, "the backlog drained too fast: {before:?}");
    let s = status(&agent);
    assert!(s["queue"]["acked_above"].as_u64().unwrap() >= 8, "live acks above the prefix: {s}");
    agent.kill9();
    let stored_at_kill = server.metric("strata_ingest_samples_total");
    eprintln!("killed mid-drain with {stored_at_kill} samples stored of {}", expected.0);
    assert!(stored_at_kill < expected.0);

    let agent = Agent::start(agent_dir.path(), &endpoint, &LANE_ARGS);
    for k in 8..10 {
        live(&agent, k, &mut expected);
    }
    wait_until("the backlog to drain", Duration::from_secs(60), || {
        agent.metrics().get("strata_edge_queue_batches") == Some(&0.0)
    });
    assert_eq!(server_totals(&server, now_ms()), expected, "nothing lost");
    // At most the one batch whose acknowledgement was being stored at the
    // kill is sent again; the live batches acknowledged above the prefix are not.
    let stored = server.metric("strata_ingest_samples_total");
    assert!(
        stored >= expected.0 && stored <= expected.0 + SAMPLES_PER_REQUEST as f64,
        "stored {stored} for {} acknowledged samples",
        expected.0
    );
    let m = agent.metrics();
    let resent = m["strata_edge_sent_samples_total"] + stored_at_kill - expected.0;
    assert!(resent <= SAMPLES_PER_REQUEST as f64, "re-sent {resent} samples: {m:?}");
}
