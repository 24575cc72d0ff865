//! MQTT intake end to end: a real Mosquitto broker (Debian's `mosquitto`,
//! started by each test on a free loopback port with persistence in a temp
//! directory), `mosquitto_pub -q 1` publishing (a real MQTT client), the real
//! `strata-edge` subscribed to it and the real `strata` behind it. Every
//! message carries its own timestamp and a unique value, so a message
//! delivered twice overwrites itself in the server and counts and sums are
//! exact.
//!
//! Mosquitto missing is a failure (run `scripts/install-test-deps.sh`), not
//! a skip.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use strata_test_support::process::wait_child_listening;

use super::harness::{Agent, Server, free_port, get, query_scalar, reserved_port};
use super::{now_ms, wait_until};

const INSTALL_HINT: &str = "run scripts/install-test-deps.sh (installs Debian's mosquitto and mosquitto-clients)";

fn find_program(name: &str, extra_dirs: &[&str]) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra_dirs.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{name}` not found on PATH nor in {extra_dirs:?}: {INSTALL_HINT}"))
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// A running Mosquitto on loopback.
struct Mosquitto {
    child: Child,
    port: u16,
    conf_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    fn start() -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let persistence = dir.path().join("persistence");
        std::fs::create_dir(&persistence).unwrap();
        let mut conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\n\
             max_queued_messages 100000\nlog_dest stderr\n",
            persistence.display()
        );
        if running_as_root() {
            // Otherwise it switches to the `mosquitto` user, who cannot write the temp dir.
            conf.push_str("user root\n");
        }
        let conf_path = dir.path().join("mosquitto.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Self::spawn(&conf_path, port);
        Mosquitto { child, port, conf_path, _dir: dir }
    }

    fn spawn(conf_path: &Path, port: u16) -> Child {
        let binary = find_program("mosquitto", &["/usr/sbin", "/usr/local/sbin"]);
        let mut child = Command::new(&binary)
            .arg("-c")
            .arg(conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}; {INSTALL_HINT}", binary.display()));
        wait_child_listening(&mut child, port, "mosquitto", Duration::from_secs(20));
        child
    }

    /// Stops the broker with SIGTERM (it saves its sessions) and starts it
    /// again on the same port with the same persistence directory.
    fn restart(&mut self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        self.child.wait().unwrap();
        self.child = Self::spawn(&self.conf_path, self.port);
    }

    fn publish_lines(&self, topic: &str, messages: &[String]) {
        publish_lines(self.port, topic, messages);
    }
    /// Publishes one message (it may hold newlines) with `mosquitto_pub -m`.
    fn publish(&self, topic: &str, message: &str) {
        let out = Command::new(find_program("mosquitto_pub", &[]))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q", "1", "-t", topic, "-m", message])
            .output()
            .unwrap_or_else(|e| panic!("starting mosquitto_pub: {e}; {INSTALL_HINT}"));
        assert!(out.status.success(), "mosquitto_pub: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Publishes each of `messages` (one line each) on `topic` at QoS 1 with
/// one `mosquitto_pub -l`; returns once the client exited successfully.
fn publish_lines(port: u16, topic: &str, messages: &[String]) {
    let mut child = Command::new(find_program("mosquitto_pub", &[]))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-t", topic, "-l"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting mosquitto_pub: {e}; {INSTALL_HINT}"));
    let mut stdin = child.stdin.take().unwrap();
    for m in messages {
        assert!(!m.contains('\n'));
        writeln!(stdin, "{m}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "mosquitto_pub: {}", String::from_utf8_lossy(&out.stderr));
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The agent's MQTT configuration: JSON soil readings and line protocol.
fn write_config(dir: &Path, broker_port: u16) -> PathBuf {
    let path = dir.join("strata-edge.toml");
    std::fs::write(
        &path,
        format!(
            r#"[mqtt]
host = "127.0.0.1"
port = {broker_port}
client_id = "e2e-gw-mqtt"
reconnect_delay = "200ms"

[[mqtt.subscriptions]]
topic = "farms/+/+/soil"
format = "json"
measurement = "mqtt_soil"
tags = {{ farm = "{{1}}", device = "{{2}}" }}
timestamp = "ts"
precision = "ms"

[[mqtt.subscriptions]]
topic = "lp/+"
format = "line_protocol"
tags = {{ gateway = "{{1}}" }}
precision = "ms"
"#
        ),
    )
    .unwrap();
    path
}

fn start_agent(agent_dir: &Path, endpoint: &str, config: &Path, extra: &[&str]) -> Agent {
    let mut args = vec!["--config", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    let agent = Agent::start(agent_dir, endpoint, &args);
    wait_until("the agent to connect to the broker", Duration::from_secs(30), || {
        agent.metrics().get("strata_edge_mqtt_connected") == Some(&1.0)
    });
    agent
}

/// JSON message `i`: moisture `i + 1` (unique), a nested probe temperature,
/// a string that is ignored, its own timestamp.
fn soil_json(i: usize, base_ms: i64) -> String {
    format!(r#"{{"ts": {}, "moisture": {}, "probe": {{"temp": 0.5}}, "note": "ok"}}"#, base_ms + i as i64, i + 1)
}

/// Publishes `n` JSON messages starting at `first`, spread over two farms
/// and five devices; returns the sum of their moisture values.
fn publish_soil(broker: &Mosquitto, first: usize, n: usize, base_ms: i64) -> f64 {
    let mut sum = 0.0;
    for farm in 0..2 {
        for device in 0..5 {
            let messages: Vec<String> = (first..first + n)
                .filter(|i| i % 10 == farm * 5 + device)
                .map(|i| {
                    sum += (i + 1) as f64;
                    soil_json(i, base_ms)
                })
                .collect();
            if !messages.is_empty() {
                broker.publish_lines(&format!("farms/f{farm}/d{device}/soil"), &messages);
            }
        }
    }
    sum
}

fn soil_totals(server: &Server, at_ms: i64) -> (f64, f64) {
    (
        query_scalar(server, "sum(count_over_time(mqtt_soil_moisture[1h]))", at_ms),
        query_scalar(server, "sum(sum_over_time(mqtt_soil_moisture[1h]))", at_ms),
    )
}

fn metric(agent: &Agent, name: &str) -> f64 {
    agent.metrics().get(name).copied().unwrap_or(0.0)
}

fn wait_queued(agent: &Agent, n: f64) {
    wait_until(&format!("{n} MQTT messages queued"), Duration::from_secs(60), || {
        metric(agent, "strata_edge_mqtt_messages_queued_total") >= n
    });
}

fn wait_drained(agent: &Agent) {
    wait_until("the queue to drain", Duration::from_secs(60), || metric(agent, "strata_edge_queue_batches") == 0.0);
}

/// JSON on `farms/<farm>/<device>/soil` and line protocol on `lp/<gateway>`
/// (one line per message, and one message of three lines) arrive exactly,
/// with the measurement and tags the topic gives; a bad message is
/// counted, acknowledged and blocks nothing.
#[test]
fn mqtt_json_and_line_protocol_messages_arrive_exactly() {
    let broker = Mosquitto::start();
    let server_dir = tempfile::tempdir().unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let server_port = free_port();
    let server = Server::start(server_dir.path(), server_port);
    let config = write_config(agent_dir.path(), broker.port);
    let agent = start_agent(agent_dir.path(), &server.base, &config, &[]);
    let base_ms = now_ms() - 60_000;

    let soil_sum = publish_soil(&broker, 0, 100, base_ms);
    broker.publish("farms/f0/d0/soil", "not json");
    broker.publish("farms/f0/d0/soil", r#"{"ts": 1, "note": "no numbers"}"#);
    let lp: Vec<String> = (0..20).map(|i| format!("mqtt_lp,dev=a value={} {}", 1000 + i, base_ms + i)).collect();
    broker.publish_lines("lp/gw1", &lp);
    let multi = (20..23).map(|i| format!("mqtt_lp,dev=b value={} {}", 1000 + i, base_ms + i)).collect::<Vec<_>>();
    broker.publish("lp/gw2", &multi.join("\n"));
    let lp_sum: f64 = (0..23).map(|i| (1000 + i) as f64).sum();

    wait_queued(&agent, 100.0 + 20.0 + 1.0);
    wait_drained(&agent);
    let m = agent.metrics();
    assert_eq!(m["strata_edge_mqtt_lines_queued_total"], 123.0, "{m:?}");
    assert_eq!(m["strata_edge_mqtt_rejected_messages_total{reason=\"invalid_json\"}"], 1.0, "{m:?}");
    assert_eq!(m["strata_edge_mqtt_rejected_messages_total{reason=\"no_fields\"}"], 1.0, "{m:?}");
    assert_eq!(m["strata_edge_mqtt_messages_received_total"], 123.0, "{m:?}");

    let at = now_ms();
    assert_eq!(soil_totals(&server, at), (100.0, soil_sum));
    // Ten series (two farms × five devices) from the topic levels.
    assert_eq!(query_scalar(&server, "count(count_over_time(mqtt_soil_moisture[1h]))", at), 10.0);
    assert_eq!(
        query_scalar(&server, r#"sum(count_over_time(mqtt_soil_moisture{farm="f1",device="d3"}[1h]))"#, at),
        10.0
    );
    // Nested members are flattened with `_`.
    assert_eq!(query_scalar(&server, "sum(count_over_time(mqtt_soil_probe_temp[1h]))", at), 100.0);
    assert_eq!(query_scalar(&server, "sum(count_over_time(mqtt_lp[1h]))", at), 23.0);
    assert_eq!(query_scalar(&server, "sum(sum_over_time(mqtt_lp[1h]))", at), lp_sum);
    assert_eq!(query_scalar(&server, r#"sum(count_over_time(mqtt_lp{gateway="gw2",dev="b"}[1h]))"#, at), 3.0);

    let status: serde_json::Value = serde_json::from_str(&get(&agent.base, "/status").unwrap().2).unwrap();
    assert_eq!(status["mqtt"]["connected"], true, "{status}");
    assert_eq!(status["mqtt"]["client_id"], "e2e-gw-mqtt", "{status}");
    assert_eq!(status["mqtt"]["messages_queued"], 121, "{status}");
}

/// With the server down, published messages are queued and acknowledged:
/// after a `kill -9` and restart of the agent the broker delivers none of
/// them again; they and those published later arrive once the server is up.
#[test]
fn mqtt_messages_are_acknowledged_into_the_queue_while_the_server_is_down() {
    let broker = Mosquitto::start();
    let server_dir = tempfile::tempdir().unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let server_port = reserved_port();
    let endpoint = format!("http://127.0.0.1:{server_port}");
    let config = write_config(agent_dir.path(), broker.port);
    let mut agent = start_agent(agent_dir.path(), &endpoint, &config, &[]);
    let base_ms = now_ms() - 60_000;

    let mut sum = publish_soil(&broker, 0, 100, base_ms);
    wait_queued(&agent, 100.0);
    assert_eq!(metric(&agent, "strata_edge_sent_batches_total"), 0.0, "the server is down");
    assert!(metric(&agent, "strata_edge_queue_batches") >= 1.0);

    agent.kill9();
    let agent = start_agent(agent_dir.path(), &endpoint, &config, &[]);
    // Everything was acknowledged: the resumed session holds nothing to deliver again.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(metric(&agent, "strata_edge_mqtt_messages_received_total"), 0.0, "{}", agent.log());

    sum += publish_soil(&broker, 100, 50, base_ms);
    wait_queued(&agent, 50.0);
    let server = Server::start(server_dir.path(), server_port);
    wait_drained(&agent);
    assert_eq!(soil_totals(&server, now_ms()), (150.0, sum));
}

/// `kill -9` of the agent while messages stream in, more messages published
/// while it is down, then a restart: every message the broker accepted
/// arrives (those the agent had not acknowledged are delivered again from
/// the persistent session).
#[test]
fn mqtt_kill9_of_the_agent_loses_nothing_acknowledged() {
    let broker = Mosquitto::start();
    let server_dir = tempfile::tempdir().unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let server = Server::start(server_dir.path(), free_port());
    let config = write_config(agent_dir.path(), broker.port);
    let mut agent = start_agent(agent_dir.path(), &server.base, &config, &[]);
    let base_ms = now_ms() - 60_000;

    let publisher = {
        let port = broker.port;
        std::thread::spawn(move || {
            let messages: Vec<String> = (0..300).map(|i| soil_json(i, base_ms)).collect();
            publish_lines(port, "farms/f0/d0/soil", &messages);
        })
    };
    wait_until("the first messages to be queued", Duration::from_secs(30), || {
        metric(&agent, "strata_edge_mqtt_messages_queued_total") >= 1.0
    });
    agent.kill9();
    publisher.join().unwrap();
    let mut sum: f64 = (0..300).map(|i| (i + 1) as f64).sum();
    // While the agent is down the broker keeps these for its session.
    sum += publish_soil(&broker, 300, 100, base_ms);

    let agent = start_agent(agent_dir.path(), &server.base, &config, &[]);
    wait_until("every message to arrive", Duration::from_secs(60), || soil_totals(&server, now_ms()).0 >= 400.0);
    wait_drained(&agent);
    assert_eq!(soil_totals(&server, now_ms()), (400.0, sum));
    assert!(metric(&agent, "strata_edge_mqtt_messages_received_total") >= 100.0);
}

/// A queue too small for what is published with the server down: the
/// agent holds the batch it cannot queue unacknowledged and retries
/// (counted). A `kill -9` then loses none of the held messages (the broker
/// delivers them again to the restarted agent), and once the server drains
/// the queue everything arrives.
#[test]
fn mqtt_full_queue_holds_messages_unacknowledged_until_there_is_room() {
    let broker = Mosquitto::start();
    let server_dir = tempfile::tempdir().unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let server_port = free_port();
    let endpoint = format!("http://127.0.0.1:{server_port}");
    let config = write_config(agent_dir.path(), broker.port);
    let small = ["--queue-max-bytes", "16384", "--queue-segment-bytes", "4096"];
    let mut agent = start_agent(agent_dir.path(), &endpoint, &config, &small);
    let base_ms = now_ms() - 60_000;
    // ~90 bytes per line: 300 messages are ~27 KB, more than the bound.
    let sum = publish_soil(&broker, 0, 300, base_ms);
    wait_until("the queue to refuse a batch", Duration::from_secs(30), || {
        metric(&agent, "strata_edge_mqtt_queue_full_total") >= 2.0
    });
    let queued = metric(&agent, "strata_edge_mqtt_messages_queued_total");
    assert!(queued < 300.0, "{queued}");
    assert!(metric(&agent, "strata_edge_queue_disk_bytes") <= 16384.0);
    // The held messages were never acknowledged: killing the agent loses none.
    agent.kill9();
    let server = Server::start(server_dir.path(), server_port);
    let agent = start_agent(agent_dir.path(), &endpoint, &config, &small);
    wait_until("every message to arrive", Duration::from_secs(60), || soil_totals(&server, now_ms()).0 >= 300.0);
    wait_drained(&agent);
    assert_eq!(soil_totals(&server, now_ms()), (300.0, sum));
    let redelivered = metric(&agent, "strata_edge_mqtt_messages_received_total");
    assert!(redelivered >= 300.0 - queued, "received {redelivered} after the restart, {queued} queued before");
}

/// The broker restarts (sessions saved and restored): the agent reconnects
/// (counted), resumes its session without subscribing again, and messages
/// published before and after the restart all arrive.
#[test]
fn mqtt_broker_restart_resumes_the_session() {
    let mut broker = Mosquitto::start();
    let server_dir = tempfile::tempdir().unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let server = Server::start(server_dir.path(), free_port());
    let config = write_config(agent_dir.path(), broker.port);
    let agent = start_agent(agent_dir.path(), &server.base, &config, &[]);
    let base_ms = now_ms() - 60_000;
    let mut sum = publish_soil(&broker, 0, 50, base_ms);
    wait_queued(&agent, 50.0);

    broker.restart();
    wait_until("the agent to reconnect", Duration::from_secs(30), || {
        metric(&agent, "strata_edge_mqtt_reconnects_total") >= 1.0
            && metric(&agent, "strata_edge_mqtt_connected") == 1.0
    });
    assert!(metric(&agent, "strata_edge_mqtt_connection_errors_total") >= 1.0);
    // The broker restored the session, subscriptions included: not subscribed again.
    agent.wait_for_log("session_present=true");
    sum += publish_soil(&broker, 50, 50, base_ms);
    wait_queued(&agent, 100.0);
    wait_drained(&agent);
    assert_eq!(soil_totals(&server, now_ms()), (100.0, sum));
    let status: serde_json::Value = serde_json::from_str(&get(&agent.base, "/status").unwrap().2).unwrap();
    assert!(status["mqtt"]["reconnects"].as_u64().unwrap() >= 1, "{status}");
    assert!(status["mqtt"]["last_error"].is_string(), "{status}");
}
