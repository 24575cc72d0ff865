//! Pre-aggregation end to end (`aggregate.rs`): raw samples through the
//! real agent with `[[aggregate]]` rules, a late sample after the first
//! emission, `kill -9` mid-window and a restart; the server's aggregates
//! equal the raw truth exactly, and raw lines of a measurement without
//! passthrough are not stored.

use crate::harness::{Agent, Server, free_port, get, post, query_scalar};
use crate::{now_ms, wait_until};
use std::time::Duration;

const WINDOW_MS: i64 = 2_000;

/// The raw samples the agent acknowledged: (device, ms, value).
#[derive(Default)]
struct Truth {
    agg: Vec<(usize, i64, f64)>,
    pass: Vec<(usize, i64, f64)>,
}

impl Truth {
    /// Posts `n` samples of each measurement at `at_ms + i` (unique per
    /// device), values counting up from `first`; records them once acknowledged.
    fn write(&mut self, agent: &Agent, at_ms: i64, n: usize, first: f64) {
        let mut body = String::new();
        let mut agg = Vec::new();
        let mut pass = Vec::new();
        for i in 0..n {
            let (dev, ts, v) = (i % 3, at_ms + i as i64, first + i as f64);
            body.push_str(&format!("agg_e2e,dev=d{dev} v={v} {ts}\nagg_pass,dev=d{dev} v={} {ts}\n", v * 2.0));
            agg.push((dev, ts, v));
            pass.push((dev, ts, v * 2.0));
        }
        let (status, _, text) = post(&agent.base, "/api/v2/write?precision=ms", body.as_bytes(), &[]).unwrap();
        assert_eq!(status, 204, "{text}");
        self.agg.extend(agg);
        self.pass.extend(pass);
    }
}

fn totals(samples: &[(usize, i64, f64)], dev: Option<usize>) -> (f64, f64, f64, f64) {
    let vs: Vec<f64> = samples.iter().filter(|s| dev.is_none_or(|d| s.0 == d)).map(|s| s.2).collect();
    let min = vs.iter().copied().fold(f64::INFINITY, f64::min);
    let max = vs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (vs.len() as f64, vs.iter().sum(), min, max)
}

/// (count, sum, min, max) of a measurement's aggregates on the server,
/// merged over agents and windows (optionally of one device).
fn server_aggregates(server: &Server, m: &str, dev: Option<usize>) -> (f64, f64, f64, f64) {
    let sel = dev.map_or(String::new(), |d| format!("{{dev=\"d{d}\"}}"));
    let at = now_ms();
    (
        query_scalar(server, &format!("sum(sum_over_time({m}_v_count{sel}[1h]))"), at),
        query_scalar(server, &format!("sum(sum_over_time({m}_v_sum{sel}[1h]))"), at),
        query_scalar(server, &format!("min(min_over_time({m}_v_min{sel}[1h]))"), at),
        query_scalar(server, &format!("max(max_over_time({m}_v_max{sel}[1h]))"), at),
    )
}

/// Sleeps until the current window has at least `left_ms` to run.
fn early_in_a_window(left_ms: i64) {
    let into = now_ms().rem_euclid(WINDOW_MS);
    if WINDOW_MS - into < left_ms {
        std::thread::sleep(Duration::from_millis((WINDOW_MS - into + 50) as u64));
    }
}

#[test]
fn aggregates_equal_the_raw_truth_across_a_late_sample_and_kill9_mid_window() {
    let server_dir = tempfile::tempdir().unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("agent.toml");
    std::fs::write(
        &config,
        "[[aggregate]]\nmeasurement = \"agg_e2e\"\nwindow = \"2s\"\ndelay = \"500ms\"\nmax_late = \"1h\"\n\n\
         [[aggregate]]\nmeasurement = \"agg_pass\"\nwindow = \"2s\"\ndelay = \"500ms\"\npassthrough = true\n",
    )
    .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let server = Server::start(server_dir.path(), free_port());
    let mut agent = Agent::start(agent_dir.path(), &server.base, &["--config", &config]);
    let metric = |agent: &Agent, name: &str| agent.metrics().get(name).copied().unwrap_or(0.0);
    let mut truth = Truth::default();

    // A first window, emitted after its end + delay.
    early_in_a_window(1_200);
    let first_window_ms = now_ms() - now_ms().rem_euclid(WINDOW_MS);
    truth.write(&agent, first_window_ms + 10, 30, 1.0);
    wait_until("the first emission", Duration::from_secs(30), || {
        metric(&agent, "strata_edge_aggregate_emissions_total") >= 3.0
            && metric(&agent, "strata_edge_queue_batches") == 0.0
    });
    assert_eq!(server_aggregates(&server, "agg_e2e", None), totals(&truth.agg, None));

    // A late sample for that window: a correction replaces the emission.
    truth.write(&agent, first_window_ms + 500, 1, 1000.0);
    wait_until("the correction", Duration::from_secs(30), || {
        metric(&agent, "strata_edge_aggregate_corrections_total") >= 1.0
            && metric(&agent, "strata_edge_queue_batches") == 0.0
    });
    assert_eq!(server_aggregates(&server, "agg_e2e", None), totals(&truth.agg, None), "replaced, not added");

    // kill -9 mid-window: samples acknowledged, the window still open.
    early_in_a_window(1_500);
    let open_window_ms = now_ms() - now_ms().rem_euclid(WINDOW_MS);
    truth.write(&agent, open_window_ms + 20, 20, 2000.0);
    truth.write(&agent, open_window_ms + 60, 20, 3000.0);
    agent.kill9();
    let mut agent = Agent::start(agent_dir.path(), &server.base, &["--config", &config]);
    truth.write(&agent, open_window_ms + 100, 10, 4000.0);
    // And a later window after the restart, plus one more late sample for the first one.
    truth.write(&agent, open_window_ms + WINDOW_MS + 10, 10, 5000.0);
    truth.write(&agent, first_window_ms + 700, 1, 6000.0);
    // kill -9 again around the open window's emission (end + delay): mid-emission, -send or -ack.
    let emission_at = open_window_ms + WINDOW_MS + 500;
    std::thread::sleep(Duration::from_millis((emission_at + 100 - now_ms()).max(0) as u64));
    agent.kill9();
    let agent = Agent::start(agent_dir.path(), &server.base, &["--config", &config]);

    let expected = totals(&truth.agg, None);
    wait_until("every window emitted, corrected and acknowledged", Duration::from_secs(60), || {
        metric(&agent, "strata_edge_queue_batches") == 0.0
            && metric(&agent, "strata_edge_aggregate_corrections_pending") == 0.0
            && server_aggregates(&server, "agg_e2e", None) == expected
    });
    for dev in 0..3 {
        assert_eq!(server_aggregates(&server, "agg_e2e", Some(dev)), totals(&truth.agg, Some(dev)), "device {dev}");
    }
    assert_eq!(server_aggregates(&server, "agg_pass", None), totals(&truth.pass, None));
    let at = now_ms();
    // Raw lines: not stored without passthrough, stored exactly once with it.
    assert_eq!(query_scalar(&server, "count(count_over_time(agg_e2e_v[1h]))", at), 0.0, "no raw agg_e2e series");
    let raw_pass = (
        query_scalar(&server, "sum(count_over_time(agg_pass_v[1h]))", at),
        query_scalar(&server, "sum(sum_over_time(agg_pass_v[1h]))", at),
    );
    let pass = totals(&truth.pass, None);
    assert_eq!(raw_pass, (pass.0, pass.1));
    // One point per series and window: the series carry the agent's origin id.
    let windows = query_scalar(&server, "sum(count_over_time(agg_e2e_v_count[1h]))", at);
    let points: std::collections::BTreeSet<(usize, i64)> =
        truth.agg.iter().map(|&(d, ts, _)| (d, ts - ts.rem_euclid(WINDOW_MS))).collect();
    assert_eq!(windows, points.len() as f64, "one point per (series, window)");
    let status: serde_json::Value = serde_json::from_str(&get(&agent.base, "/status").unwrap().2).unwrap();
    assert_eq!(status["aggregate"]["late_samples_dropped"], 0, "{status}");
    assert_eq!(status["aggregate"]["rules"], 2, "{status}");
    let merged = query_scalar(&server, "count(count by (edge_agent) (agg_e2e_v_count))", at);
    assert_eq!(merged, 1.0, "one agent, one origin across the restart");
}

/// Two agents covering the same devices (an HA pair), each sample sent to
/// one of them: merging over `edge_agent` on the server (the README's
/// PromQL) gives exactly the aggregates of all the samples.
#[test]
fn an_ha_pair_merges_exactly_over_edge_agent() {
    let server_dir = tempfile::tempdir().unwrap();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("agent.toml");
    std::fs::write(&config, "[[aggregate]]\nmeasurement = \"agg_ha\"\nwindow = \"2s\"\ndelay = \"300ms\"\n").unwrap();
    let config = config.to_str().unwrap().to_owned();
    let server = Server::start(server_dir.path(), free_port());
    let agents: Vec<Agent> =
        dirs.iter().map(|d| Agent::start(d.path(), &server.base, &["--config", &config])).collect();
    let base = now_ms() - 3 * WINDOW_MS;
    let mut samples: Vec<(usize, i64, f64)> = Vec::new();
    for r in 0..6 {
        let mut bodies = [String::new(), String::new()];
        for i in 0..40 {
            let k = r * 40 + i;
            let (dev, ts, v) = (k % 4, base + (k as i64) * 20, (k * 7 % 101) as f64);
            bodies[(k / 3) % 2].push_str(&format!("agg_ha,dev=d{dev} v={v} {ts}\n"));
            samples.push((dev, ts, v));
        }
        for (agent, body) in agents.iter().zip(&bodies) {
            let (status, _, text) = post(&agent.base, "/write?precision=ms", body.as_bytes(), &[]).unwrap();
            assert_eq!(status, 204, "{text}");
        }
    }
    let at = || now_ms();
    let expected = |dev: usize| totals(&samples, Some(dev));
    let answers = |dev: usize| {
        (
            query_scalar(
                &server,
                &format!("sum without (edge_agent) (sum_over_time(agg_ha_v_count{{dev=\"d{dev}\"}}[1h]))"),
                at(),
            ),
            query_scalar(
                &server,
                &format!("sum without (edge_agent) (sum_over_time(agg_ha_v_sum{{dev=\"d{dev}\"}}[1h]))"),
                at(),
            ),
            query_scalar(
                &server,
                &format!("min without (edge_agent) (min_over_time(agg_ha_v_min{{dev=\"d{dev}\"}}[1h]))"),
                at(),
            ),
            query_scalar(
                &server,
                &format!("max without (edge_agent) (max_over_time(agg_ha_v_max{{dev=\"d{dev}\"}}[1h]))"),
                at(),
            ),
        )
    };
    wait_until("both agents' windows on the server", Duration::from_secs(60), || {
        (0..4).all(|dev| answers(dev) == expected(dev))
    });
    for agent in &agents {
        assert_eq!(agent.metrics()["strata_edge_aggregate_late_samples_dropped_total"], 0.0);
    }
    let origins = query_scalar(&server, "count(count by (edge_agent) (agg_ha_v_count))", at());
    assert_eq!(origins, 2.0, "one contribution per agent");
}
