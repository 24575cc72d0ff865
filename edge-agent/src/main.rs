//! `strata-edge`: the gateway agent binary. See `strata-edge --help`.
#![expect(
    clippy::disallowed_methods,
    reason = "the agent's main builds its runtime and spawns its long-lived tasks: the runtime owner"
)]

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use strata_edge::agent::Agent;
use strata_edge::config::AgentConfig;
use strata_edge::queue::{FsyncPolicy, OverflowPolicy};

/// Strata edge agent: accepts InfluxDB line protocol on a gateway, keeps it in
/// a durable on-disk queue (fsynced before it answers 204) and forwards it to
/// Strata servers, losing nothing acknowledged across outages and restarts.
///
/// Endpoints: POST /api/v2/write and /write (line protocol, gzip,
/// ?precision=ns|us|ms|s), GET /metrics (Prometheus), GET /status (JSON),
/// GET /-/ready.
///
/// MQTT: with --mqtt-host (or [mqtt] host) the agent subscribes to a broker at
/// QoS 1 with a persistent session and acknowledges a message only once it is
/// queued. Subscriptions (topic filter, format json|line_protocol, measurement
/// and tags from topic levels "{N}", timestamp member, precision) are set in the
/// file only: [[mqtt.subscriptions]], see strata-edge.example.toml.
///
/// Live first: batches queued within --live-window of now are sent ahead of the
/// older backlog (newest live batch first); the backlog drains oldest first at
/// most --backlog-rate batches per second, when no live batch waits or one
/// between two live ones. Batches acknowledged out of order are recorded in
/// the queue's cursor, so a restart re-sends neither lane's acknowledged batches.
///
/// Exactly once: each batch carries (agent id, sequence number); the server
/// applies a re-sent batch once. Clocks: every batch carries the agent's
/// hybrid logical clock (never backwards, persisted in <data-dir>/clock); the
/// server's clock in each answer is folded in and the gateway clock's skew
/// measured: beyond --max-skew it is logged and shown, and samples without a
/// timestamp get the server-aligned time. Jurisdiction: with --jurisdiction
/// every batch names it and a server of another jurisdiction refuses it (421)
/// before storing anything; the agent moves on to its next endpoint.
///
/// Pre-aggregation: [[aggregate]] tables in the file (measurement, window, passthrough, delay,
/// max_late; see strata-edge.example.toml) fold a measurement's samples into windows and forward
/// <metric>_min/_max/_sum/_count/_last per series with the label edge_agent; late samples replace
/// an emitted window (never add to it); merge agents with sum/min/max without (edge_agent).
///
/// Settings come from the TOML file given with --config (see the keys in
/// brackets below); a flag overrides the file.
#[derive(Debug, Parser)]
#[command(name = "strata-edge", version)]
struct Args {
    /// TOML configuration file (keys: agent_id, listen, data_dir, [intake], [queue], [forward], [clock], [mqtt], [[aggregate]]).
    #[arg(long, short = 'c', env = "STRATA_EDGE_CONFIG")]
    config: Option<PathBuf>,
    /// Identity sent as X-Strata-Agent-Id; keep it stable across restarts [agent_id; default: host name].
    #[arg(long)]
    agent_id: Option<String>,
    /// Listen address of the HTTP intake and status endpoints [listen; default 127.0.0.1:8429].
    #[arg(long)]
    listen: Option<String>,
    /// State directory; the queue is <data-dir>/queue [data_dir; default ./strata-edge-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Largest request body in bytes after gzip; larger ones get 413 [intake.max_body_bytes; default 16 MiB].
    #[arg(long)]
    max_body_bytes: Option<usize>,
    /// Bound of the queue's segment files on disk, in bytes [queue.max_bytes; default 1 GiB].
    #[arg(long)]
    queue_max_bytes: Option<u64>,
    /// Size at which a queue segment is closed, in bytes (>= 4096) [queue.segment_bytes; default 8 MiB].
    #[arg(long)]
    queue_segment_bytes: Option<u64>,
    /// When queued batches are fsynced [queue.fsync; default every_batch]: every_batch = before the
    /// intake answers (survives power loss); never = nothing fsynced, segments nor cursor (survives kill -9; on power loss loses or re-sends batches).
    #[arg(long, value_enum)]
    fsync: Option<FsyncPolicy>,
    /// What happens at the queue bound [queue.overflow; default refuse]: refuse = answer 503 with
    /// Retry-After and keep everything; drop_oldest = delete the oldest segment unsent (counted, logged).
    #[arg(long, value_enum)]
    overflow: Option<OverflowPolicy>,
    /// Strata server base URL (http://host:port); repeat for failover, in order of preference
    /// [forward.endpoints].
    #[arg(long = "endpoint")]
    endpoints: Vec<String>,
    /// The jurisdiction this gateway's data must stay in, e.g. eu; list only endpoints of it
    /// [forward.jurisdiction; default none: not checked].
    #[arg(long)]
    jurisdiction: Option<String>,
    /// Body compression of the batches sent: zstd, or gzip for older servers
    /// [forward.compression; default zstd].
    #[arg(long, value_enum)]
    compression: Option<strata_edge::config::Compression>,
    /// A gateway clock further than this off the server's is logged and shown, and samples
    /// without a timestamp get the server-aligned time [clock.max_skew; default 10s].
    #[arg(long, value_parser = humantime_serde::re::humantime::parse_duration)]
    max_skew: Option<Duration>,
    /// Token sent as "Authorization: Token <token>" [forward.token; default none].
    #[arg(long, env = "STRATA_EDGE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// First retry delay after a failed send, e.g. 100ms [forward.backoff_initial; default 100ms].
    #[arg(long, value_parser = humantime_serde::re::humantime::parse_duration)]
    backoff_initial: Option<Duration>,
    /// Longest retry delay (doubling with jitter up to it) [forward.backoff_max; default 5s].
    #[arg(long, value_parser = humantime_serde::re::humantime::parse_duration)]
    backoff_max: Option<Duration>,
    /// Timeout of one send [forward.request_timeout; default 10s].
    #[arg(long, value_parser = humantime_serde::re::humantime::parse_duration)]
    request_timeout: Option<Duration>,
    /// Timeout of connecting to an endpoint [forward.connect_timeout; default 2s].
    #[arg(long, value_parser = humantime_serde::re::humantime::parse_duration)]
    connect_timeout: Option<Duration>,
    /// After failing over from the first endpoint, try it again after this long
    /// [forward.primary_retry; default 30s].
    #[arg(long, value_parser = humantime_serde::re::humantime::parse_duration)]
    primary_retry: Option<Duration>,
    /// Live first: batches queued within this window before now are the live lane, sent ahead of
    /// the older backlog, newest live batch first; 0s = no live lane [forward.live_window; default 30s].
    #[arg(long, value_parser = humantime_serde::re::humantime::parse_duration)]
    live_window: Option<Duration>,
    /// Most backlog batches (queued before the live window) sent per second, 0 = unlimited; the
    /// backlog goes when the live lane is empty, or one batch between two live ones
    /// [forward.backlog_rate; default 0].
    #[arg(long)]
    backlog_rate: Option<u32>,
    /// MQTT broker host; turns the MQTT intake on (plain TCP, no TLS) [mqtt.host; default none].
    #[arg(long)]
    mqtt_host: Option<String>,
    /// MQTT broker port [mqtt.port; default 1883].
    #[arg(long)]
    mqtt_port: Option<u16>,
    /// MQTT client id: the broker keeps the session (unacknowledged messages) under it, so keep
    /// it stable and unique [mqtt.client_id; default: the agent id].
    #[arg(long)]
    mqtt_client_id: Option<String>,
    /// MQTT user name [mqtt.username; default none: anonymous].
    #[arg(long)]
    mqtt_username: Option<String>,
    /// MQTT password [mqtt.password; default none].
    #[arg(long, env = "STRATA_EDGE_MQTT_PASSWORD", hide_env_values = true)]
    mqtt_password: Option<String>,
    /// MQTT keep-alive interval [mqtt.keep_alive; default 30s].
    #[arg(long, value_parser = humantime_serde::re::humantime::parse_duration)]
    mqtt_keep_alive: Option<Duration>,
    /// Wait between MQTT connection attempts, and between retries of a batch the full queue
    /// refused (held unacknowledged) [mqtt.reconnect_delay; default 1s].
    #[arg(long, value_parser = humantime_serde::re::humantime::parse_duration)]
    mqtt_reconnect_delay: Option<Duration>,
    /// Largest MQTT message payload; larger ones are rejected (counted, acknowledged)
    /// [mqtt.max_message_bytes; default 1 MiB].
    #[arg(long)]
    mqtt_max_message_bytes: Option<usize>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

impl Args {
    fn config(self) -> Result<(AgentConfig, bool), String> {
        let mut c = match &self.config {
            Some(path) => AgentConfig::from_file(path).map_err(|e| e.to_string())?,
            None => AgentConfig::default(),
        };
        macro_rules! set {
            ($flag:expr => $field:expr) => {
                if let Some(v) = $flag {
                    $field = v;
                }
            };
        }
        set!(self.agent_id => c.agent_id);
        set!(self.listen => c.listen);
        set!(self.data_dir => c.data_dir);
        set!(self.max_body_bytes => c.intake.max_body_bytes);
        set!(self.queue_max_bytes => c.queue.max_bytes);
        set!(self.queue_segment_bytes => c.queue.segment_bytes);
        set!(self.fsync => c.queue.fsync);
        set!(self.overflow => c.queue.overflow);
        set!(self.backoff_initial => c.forward.backoff_initial);
        set!(self.backoff_max => c.forward.backoff_max);
        set!(self.request_timeout => c.forward.request_timeout);
        set!(self.connect_timeout => c.forward.connect_timeout);
        set!(self.primary_retry => c.forward.primary_retry);
        set!(self.live_window => c.forward.live_window);
        set!(self.backlog_rate => c.forward.backlog_rate);
        set!(self.compression => c.forward.compression);
        set!(self.max_skew => c.clock.max_skew);
        if self.jurisdiction.is_some() {
            c.forward.jurisdiction = self.jurisdiction;
        }
        if self.mqtt_host.is_some() {
            c.mqtt.host = self.mqtt_host;
        }
        set!(self.mqtt_port => c.mqtt.port);
        if self.mqtt_client_id.is_some() {
            c.mqtt.client_id = self.mqtt_client_id;
        }
        if self.mqtt_username.is_some() {
            c.mqtt.username = self.mqtt_username;
        }
        if self.mqtt_password.is_some() {
            c.mqtt.password = self.mqtt_password;
        }
        set!(self.mqtt_keep_alive => c.mqtt.keep_alive);
        set!(self.mqtt_reconnect_delay => c.mqtt.reconnect_delay);
        set!(self.mqtt_max_message_bytes => c.mqtt.max_message_bytes);
        if !self.endpoints.is_empty() {
            c.forward.endpoints = self.endpoints;
        }
        if self.token.is_some() {
            c.forward.token = self.token;
        }
        Ok((c, self.print_config))
    }
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let (config, print) = match Args::parse().config() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    if print {
        let mut shown = config.clone();
        if shown.forward.token.is_some() {
            shown.forward.token = Some("<redacted>".to_owned());
        }
        if shown.mqtt.password.is_some() {
            shown.mqtt.password = Some("<redacted>".to_owned());
        }
        match toml::to_string(&shown) {
            Ok(t) => {
                use std::io::Write as _;
                let _ = std::io::stdout().write_all(t.as_bytes());
                return std::process::ExitCode::SUCCESS;
            }
            Err(e) => {
                tracing::error!("{e}");
                return std::process::ExitCode::from(2);
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(config: AgentConfig) -> Result<(), String> {
    let agent = Agent::open(config).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(&agent.config.listen)
        .await
        .map_err(|e| format!("listening on {}: {e}", agent.config.listen))?;
    tracing::info!(
        listen = %agent.config.listen,
        agent_id = %agent.config.agent_id,
        endpoints = ?agent.config.forward.endpoints,
        "strata-edge ready"
    );
    let forwarder = tokio::spawn(strata_edge::forward::run(std::sync::Arc::clone(&agent)));
    let mqtt = tokio::spawn(strata_edge::mqtt::run(std::sync::Arc::clone(&agent)));
    let app = agent.router();
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown()).await;
    forwarder.abort();
    mqtt.abort();
    served.map_err(|e| format!("serving: {e}"))
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(_) => return ctrl_c.await.unwrap_or(()),
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}
