//! Bad gateway clocks and jurisdictions, end to end: a gateway ten minutes
//! fast, a clock stepped back, and an endpoint list with a region of another
//! jurisdiction in it.
//!
//! The agent's wall clock is offset through `STRATA_EDGE_TEST_CLOCK_OFFSET_FILE`
//! (`clock.rs`), the host's clock is left alone; the server runs on the
//! host's clock.

use std::path::Path;
use std::time::Duration;

use crate::harness::{Agent, Server, free_port, get, post, query_scalar};
use crate::{now_ms, wait_until};

const OFFSET_ENV: &str = "STRATA_EDGE_TEST_CLOCK_OFFSET_FILE";

fn status(agent: &Agent) -> serde_json::Value {
    serde_json::from_str(&get(&agent.base, "/status").unwrap().2).unwrap()
}

fn hlc(agent: &Agent) -> strata_schemas::HlcTimestamp {
    strata_schemas::HlcTimestamp::parse(status(agent)["clock"]["hlc"].as_str().unwrap()).unwrap()
}

fn skew_ms(agent: &Agent) -> Option<i64> {
    status(agent)["clock"]["skew_ms"].as_i64()
}

fn start_agent(dir: &Path, offset_file: &Path, endpoint: &str, extra: &[&str]) -> Agent {
    Agent::start_env(dir, endpoint, extra, &[(OFFSET_ENV, offset_file)])
}

/// `n` lines without timestamps (so one timestamp for all), each its own
/// series `edge_clock{dev="d<k>"}` with value `k`, `k` in `first+1..=first+n`.
fn untimed(n: usize, first: usize) -> String {
    (first + 1..=first + n).map(|k| format!("edge_clock,dev=d{k} value={k}\n")).collect()
}

fn wait_drained(agent: &Agent) {
    wait_until("delivery", Duration::from_secs(30), || agent.metrics().get("strata_edge_queue_batches") == Some(&0.0));
}

/// A gateway ten minutes fast: the agent measures the skew on its first
/// answer (the start-up probe), says so (status, metric, log), and its
/// samples without a timestamp land at the server's present, where a
/// dashboard looks; a sample with its own timestamp keeps it. The server
/// does not let the fast clock drag its own: the agent's HLC is not folded
/// in (counted).
#[test]
fn a_gateway_ten_minutes_fast_is_detected_and_its_samples_land_at_the_right_time() {
    let (server_dir, agent_dir, clock_dir) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = Server::start(server_dir.path(), free_port());
    let offset = clock_dir.path().join("offset");
    std::fs::write(&offset, "600000").unwrap();
    let agent = start_agent(agent_dir.path(), &offset, &server.base, &[]);
    wait_until("a skew measurement", Duration::from_secs(20), || skew_ms(&agent).is_some());
    let skew = skew_ms(&agent).unwrap();
    assert!((skew + 600_000).abs() < 5_000, "skew {skew} ms, -600000 expected");
    let s = status(&agent);
    assert_eq!(s["clock"]["skewed"], true, "{s}");
    assert_eq!(agent.metrics()["strata_edge_clock_skewed"], 1.0);
    agent.wait_for_log("the gateway's clock is off from the server's");

    let explicit_ms = now_ms() - 30_000;
    let body = format!("{}edge_clock,dev=explicit value=1000 {}\n", untimed(30, 0), explicit_ms * 1_000_000);
    let (code, _, text) = post(&agent.base, "/api/v2/write", body.as_bytes(), &[]).unwrap();
    assert_eq!(code, 204, "{text}");
    wait_drained(&agent);
    let at = now_ms() + 1_000;
    // Every untimed sample is within the last two minutes of the server's clock, none ten minutes ahead.
    assert_eq!(query_scalar(&server, "sum(count_over_time(edge_clock{dev!=\"explicit\"}[2m]))", at), 30.0);
    assert_eq!(query_scalar(&server, "sum(sum_over_time(edge_clock{dev!=\"explicit\"}[2m]))", at), 465.0);
    assert_eq!(query_scalar(&server, "timestamp(edge_clock{dev=\"explicit\"})", at), (explicit_ms as f64) / 1e3);
    assert!(server.metric("strata_ingest_edge_clock_ahead_total") >= 1.0);
}

/// The gateway's clock steps back ten minutes while the agent runs: the
/// step is counted and logged, the HLC does not go back (nor across a
/// `kill -9` and restart with the clock still behind), the skew is measured
/// (+10 min), and samples without a timestamp written after the step still
/// land at the server's present.
#[test]
fn a_clock_stepped_back_does_not_move_the_hlc_back_and_its_samples_are_corrected() {
    let (server_dir, agent_dir, clock_dir) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = Server::start(server_dir.path(), free_port());
    let offset = clock_dir.path().join("offset");
    std::fs::write(&offset, "0").unwrap();
    let mut agent = start_agent(agent_dir.path(), &offset, &server.base, &[]);
    assert_eq!(post(&agent.base, "/api/v2/write", untimed(10, 0).as_bytes(), &[]).unwrap().0, 204);
    wait_drained(&agent);
    let before = hlc(&agent);
    assert!(skew_ms(&agent).is_some_and(|s| s.abs() < 5_000), "{}", status(&agent));

    std::fs::write(&offset, "-600000").unwrap();
    wait_until("the step back", Duration::from_secs(10), || {
        status(&agent)["clock"]["steps_back"].as_u64().unwrap_or(0) >= 1
    });
    agent.wait_for_log("stepped back");
    // The next answer measures the skew; the write after it is corrected.
    assert_eq!(post(&agent.base, "/api/v2/write", untimed(10, 10).as_bytes(), &[]).unwrap().0, 204);
    wait_drained(&agent);
    wait_until("a +10 min skew", Duration::from_secs(20), || skew_ms(&agent).is_some_and(|s| s > 590_000));
    assert_eq!(post(&agent.base, "/api/v2/write", untimed(10, 20).as_bytes(), &[]).unwrap().0, 204);
    wait_drained(&agent);
    let after = hlc(&agent);
    assert!(after > before, "HLC {after} after the step, {before} before");
    assert!(agent.metrics()["strata_edge_clock_steps_back_total"] >= 1.0);

    agent.kill9();
    let agent = start_agent(agent_dir.path(), &offset, &server.base, &[]);
    let restarted = hlc(&agent);
    assert!(restarted > after, "HLC {restarted} after a restart, {after} before");
    assert!(skew_ms(&agent).is_some_and(|s| s > 590_000), "the skew is remembered: {}", status(&agent));
    assert_eq!(post(&agent.base, "/api/v2/write", untimed(10, 30).as_bytes(), &[]).unwrap().0, 204);
    wait_drained(&agent);

    let at = now_ms() + 1_000;
    // The second write may have been stamped before the skew was known (ten
    // minutes back); the first, third and fourth are at the present.
    let recent = query_scalar(&server, "sum(count_over_time(edge_clock[2m]))", at);
    let all = query_scalar(&server, "sum(count_over_time(edge_clock[15m]))", at);
    assert_eq!(all, 40.0, "every sample arrived once: {}", status(&agent));
    assert!(recent >= 30.0, "{recent} of the 30 samples written with a known skew are at the present");
    let sum_recent = query_scalar(&server, "sum(sum_over_time(edge_clock[2m]))", at);
    assert!(sum_recent >= 55.0 + 255.0 + 355.0, "{sum_recent}");
}

/// An endpoint list whose first entry is a region of another jurisdiction:
/// that server refuses every batch (421) before storing anything, the agent
/// logs it and delivers to the next endpoint, a region of its own
/// jurisdiction; not one sample reaches the other jurisdiction.
#[test]
fn never_sends_to_another_jurisdiction_and_fails_over_within_its_own() {
    let (br_dir, eu_dir, agent_dir) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let br = Server::start_env(
        br_dir.path(),
        free_port(),
        &[("STRATA_REGION", "br-south"), ("STRATA_FEDERATION__JURISDICTION", "br")],
    );
    let eu = Server::start_env(
        eu_dir.path(),
        free_port(),
        &[("STRATA_REGION", "eu-central"), ("STRATA_FEDERATION__JURISDICTION", "eu")],
    );
    let agent = Agent::start(agent_dir.path(), &br.base, &["--endpoint", &eu.base, "--jurisdiction", "eu"]);
    let base_ms = now_ms() - 60_000;
    let body: String = (0..50).map(|i| format!("edge_j,dev=d{i} value={i} {}\n", (base_ms + i) * 1_000_000)).collect();
    assert_eq!(post(&agent.base, "/api/v2/write", body.as_bytes(), &[]).unwrap().0, 204);
    wait_drained(&agent);
    let at = now_ms();
    assert_eq!(query_scalar(&eu, "count(count_over_time(edge_j[5m]))", at), 50.0);
    assert_eq!(br.metric("strata_ingest_samples_total"), 0.0, "nothing stored in br");
    agent.wait_for_log("another jurisdiction");
    let s = status(&agent);
    assert_eq!(s["current_endpoint"], eu.base.as_str(), "{s}");
    // Without a jurisdiction the header is not sent and any server takes the batch.
    let (code, _, text) = post(&br.base, "/api/v2/write", b"edge_j,dev=x value=1", &[]).unwrap();
    assert_eq!(code, 204, "{text}");
    let (code, _, text) =
        post(&br.base, "/api/v2/write", b"edge_j,dev=x value=1", &[("X-Strata-Jurisdiction", "eu")]).unwrap();
    assert_eq!(code, 421, "{text}");
    assert!(text.contains("jurisdiction \\\"br\\\"") || text.contains("jurisdiction \"br\""), "{text}");
}
