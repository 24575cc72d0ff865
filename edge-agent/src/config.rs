//! The agent's configuration: one TOML file, overridden by command-line flags.
//! Every key is in `strata-edge.example.toml` (a test keeps it in step).
//!
//! ```toml
//! agent_id = "farm-7-gw-1"          # sent as X-Strata-Agent-Id
//! listen = "127.0.0.1:8429"         # intake, /metrics, /status, /-/ready
//! data_dir = "/var/lib/strata-edge" # the queue lives in <data_dir>/queue
//!
//! [intake]
//! max_body_bytes = 16777216         # largest request body, after gzip
//!
//! [queue]
//! max_bytes = 1073741824            # bound of the segment files on disk
//! segment_bytes = 8388608
//! fsync = "every_batch"             # or "never"
//! overflow = "refuse"               # or "drop_oldest"
//!
//! [forward]
//! endpoints = ["http://strata-eu-1:9090", "http://strata-eu-2:9090"]
//! jurisdiction = "eu"               # sent with every batch; a server elsewhere refuses it (421)
//! compression = "zstd"              # or "gzip"
//! token = "..."                     # Authorization: Token ...
//! backoff_initial = "100ms"
//! backoff_max = "5s"
//! request_timeout = "10s"
//! connect_timeout = "2s"
//! primary_retry = "30s"             # after a failover, try the first endpoint again this often
//! live_window = "30s"               # batches queued this recently are the live lane (sent first)
//! backlog_rate = 0                  # backlog batches per second (0: unlimited, still behind live)
//!
//! [clock]
//! max_skew = "10s"                  # a gateway clock further off the server's is reported
//! correct_timestamps = true         # samples without a timestamp get the server-aligned time
//!
//! [mqtt]                            # MQTT intake; off unless host is set
//! host = "127.0.0.1"
//! port = 1883
//! client_id = "farm-7-gw-1"         # the broker keeps the session under it (default: agent_id)
//!
//! [[mqtt.subscriptions]]
//! topic = "farms/+/+/soil"          # levels from 0: {1} = farm, {2} = device
//! format = "json"                   # or "line_protocol"
//! measurement = "soil"
//! tags = { farm = "{1}", device = "{2}" }
//! timestamp = "ts"                  # JSON member holding the time (default: the agent's time)
//! precision = "ms"
//!
//! [[aggregate]]                     # pre-aggregation (aggregate.rs), one table per measurement
//! measurement = "soil"
//! window = "5m"                     # soil_moisture_{min,max,sum,count,last}{edge_agent=...} per 5 m
//! passthrough = false               # true: the raw lines are forwarded too
//! delay = "10s"                     # first emitted this long after the window's end
//! max_late = "1h"                   # later samples correct it until then; after: dropped, counted
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::ClockConfig;
use crate::error::{Error, Result};
use crate::queue::QueueConfig;
use strata_schemas::ConfigError;

/// Everything the agent reads from its configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// This agent's identity, sent with every batch as `X-Strata-Agent-Id`;
    /// must stay the same across restarts (default: the host name).
    pub agent_id: String,
    /// Address of the HTTP listener.
    pub listen: String,
    /// Directory of the agent's state (the queue is `<data_dir>/queue`).
    pub data_dir: PathBuf,
    /// Intake settings.
    pub intake: IntakeConfig,
    /// Durable queue settings.
    pub queue: QueueConfig,
    /// Forwarder settings.
    pub forward: ForwardConfig,
    /// Clock settings (skew detection and correction).
    pub clock: ClockConfig,
    /// MQTT intake (off unless `mqtt.host` is set).
    pub mqtt: MqttConfig,
    /// Pre-aggregation rules, one per measurement (`[[aggregate]]`; none:
    /// off): windows of min, max, sum, count and last per series, forwarded
    /// as `<metric>_min`, … with the label `edge_agent` (`aggregate.rs`).
    pub aggregate: Vec<crate::aggregate::AggregateRule>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            agent_id: default_agent_id(),
            listen: "127.0.0.1:8429".to_owned(),
            data_dir: PathBuf::from("strata-edge-data"),
            intake: IntakeConfig::default(),
            queue: QueueConfig::default(),
            forward: ForwardConfig::default(),
            clock: ClockConfig::default(),
            mqtt: MqttConfig::default(),
            aggregate: Vec::new(),
        }
    }
}

/// Intake settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntakeConfig {
    /// Largest request body in bytes, after gzip decompression; larger
    /// requests get 413.
    pub max_body_bytes: usize,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self { max_body_bytes: 16 << 20 }
    }
}

/// Forwarder settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardConfig {
    /// Base URLs of Strata servers (`http://host:port`; no TLS yet), in order of
    /// preference: the agent sends to one and moves to the next when it fails.
    /// With `jurisdiction` set they are the regions of that jurisdiction.
    pub endpoints: Vec<String>,
    /// The jurisdiction this gateway's raw data must stay in (e.g. `eu`;
    /// none: not checked). Sent with every batch as `X-Strata-Jurisdiction`:
    /// a server of another jurisdiction refuses the batch (421) before
    /// storing anything, and the agent moves on to its next endpoint, so a
    /// wrong endpoint in the list can never carry data across the border.
    pub jurisdiction: Option<String>,
    /// Body compression of the batches sent: `zstd` (default) or `gzip`
    /// (for servers older than zstd support).
    pub compression: Compression,
    /// Token sent as `Authorization: Token <token>` (none: no header).
    pub token: Option<String>,
    /// First retry delay after a failed send.
    #[serde(with = "humantime_serde")]
    pub backoff_initial: Duration,
    /// Longest retry delay (the delay doubles per failed round up to this,
    /// with jitter); small so fresh data moves soon after the uplink returns.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Timeout of one send.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Timeout of connecting to an endpoint (at most `request_timeout`).
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// After moving off the first endpoint, how long until it is tried again.
    #[serde(with = "humantime_serde")]
    pub primary_retry: Duration,
    /// Batches queued within this long before now are the live lane: the
    /// forwarder sends the newest unacknowledged live batch first, always
    /// ahead of older (backlog) batches. `0s`: no live lane (oldest first).
    #[serde(with = "humantime_serde")]
    pub live_window: Duration,
    /// Most backlog batches (queued before the live window) sent per second
    /// (0: unlimited). Backlog batches go when the live lane is empty, or
    /// one between two live batches.
    pub backlog_rate: u32,
}

impl Default for ForwardConfig {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            jurisdiction: None,
            compression: Compression::Zstd,
            token: None,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            primary_retry: Duration::from_secs(30),
            live_window: Duration::from_secs(30),
            backlog_rate: 0,
        }
    }
}

/// Body compression of the batches sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// `Content-Encoding: zstd` (level 3).
    Zstd,
    /// `Content-Encoding: gzip` (fast).
    Gzip,
}

/// MQTT intake settings: the agent subscribes to a broker with a persistent
/// session (clean session off) at QoS 1 and acknowledges a message only once
/// it is in the queue (see `mqtt.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker host name or address (none: MQTT intake off). Plain TCP, no TLS.
    pub host: Option<String>,
    /// Broker port.
    pub port: u16,
    /// MQTT client id; the broker keeps the session (subscriptions and
    /// unacknowledged messages) under it, so it must be stable across
    /// restarts and unique on the broker (default: `agent_id`).
    pub client_id: Option<String>,
    /// User name (none: anonymous).
    pub username: Option<String>,
    /// Password (with `username`).
    pub password: Option<String>,
    /// Keep-alive interval (at least 1 s).
    #[serde(with = "humantime_serde")]
    pub keep_alive: Duration,
    /// Wait between connection attempts after the broker was lost.
    #[serde(with = "humantime_serde")]
    pub reconnect_delay: Duration,
    /// Largest message payload accepted; larger ones are rejected (counted, acknowledged).
    pub max_message_bytes: usize,
    /// Topic filters and how their messages become samples.
    pub subscriptions: Vec<Subscription>,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            host: None,
            port: 1883,
            client_id: None,
            username: None,
            password: None,
            keep_alive: Duration::from_secs(30),
            reconnect_delay: Duration::from_secs(1),
            max_message_bytes: 1 << 20,
            subscriptions: Vec::new(),
        }
    }
}

/// One subscription: a topic filter and the mapping of its messages.
///
/// Templates (`measurement`, tag values) may name topic levels as `{N}`,
/// counted from 0: for `farms/f1/d7/soil`, `{1}` is `f1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    /// Topic filter, with `+` (one level) and `#` (the rest) wildcards.
    pub topic: String,
    /// How payloads are read.
    pub format: PayloadFormat,
    /// JSON: the measurement (template; required). Line protocol: not allowed
    /// (the lines name theirs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurement: Option<String>,
    /// Tags added to every sample: key → template. For line protocol they
    /// replace a tag of the same key in the line.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// JSON: the top-level member holding the timestamp (a number in
    /// `precision`, or an RFC 3339 string); none, or a message without it:
    /// the agent's time. Line protocol: not allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Unit of numeric timestamps (JSON member or line-protocol timestamps).
    #[serde(default)]
    pub precision: TimeUnit,
}

/// Payload format of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadFormat {
    /// InfluxDB line protocol, one or more lines.
    LineProtocol,
    /// A JSON object (or an array of objects), one sample line per object.
    Json,
}

/// Unit of a numeric timestamp.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimeUnit {
    /// Nanoseconds.
    #[default]
    #[serde(rename = "ns")]
    Nanoseconds,
    /// Microseconds.
    #[serde(rename = "us")]
    Microseconds,
    /// Milliseconds.
    #[serde(rename = "ms")]
    Milliseconds,
    /// Seconds.
    #[serde(rename = "s")]
    Seconds,
}

impl TimeUnit {
    /// Nanoseconds per unit.
    pub fn nanos(self) -> i64 {
        match self {
            TimeUnit::Nanoseconds => 1,
            TimeUnit::Microseconds => 1_000,
            TimeUnit::Milliseconds => 1_000_000,
            TimeUnit::Seconds => 1_000_000_000,
        }
    }

    /// The line-protocol precision of the same unit.
    pub fn precision(self) -> strata_schemas::time::Precision {
        use strata_schemas::time::Precision;
        match self {
            TimeUnit::Nanoseconds => Precision::Nanoseconds,
            TimeUnit::Microseconds => Precision::Microseconds,
            TimeUnit::Milliseconds => Precision::Milliseconds,
            TimeUnit::Seconds => Precision::Seconds,
        }
    }
}

impl MqttConfig {
    /// The client id in use (`client_id`, else the agent id).
    pub fn client_id_or<'a>(&'a self, agent_id: &'a str) -> &'a str {
        self.client_id.as_deref().unwrap_or(agent_id)
    }

    /// Rejects MQTT settings the agent cannot run with.
    pub fn validate(&mut self, agent_id: &str) -> std::result::Result<(), ConfigError> {
        const S: &str = "mqtt";
        let Some(host) = &self.host else {
            if !self.subscriptions.is_empty() {
                return Err(ConfigError::new(S, "host", "is not set but [[mqtt.subscriptions]] are"));
            }
            return Ok(());
        };
        if host.is_empty() {
            return Err(ConfigError::invalid(S, "host", host, "must be non-empty"));
        }
        if self.port == 0 {
            return Err(ConfigError::invalid(S, "port", self.port, "must be non-zero"));
        }
        let id = self.client_id_or(agent_id);
        if id.is_empty() || id.len() > 65535 {
            let rule = "must be non-empty, at most 65535 bytes (the broker keeps the session under it)";
            return Err(ConfigError::invalid(S, "client_id", id, rule));
        }
        if self.password.is_some() && self.username.is_none() {
            return Err(ConfigError::new(S, "password", "is set without username"));
        }
        if self.keep_alive < Duration::from_secs(1) {
            return Err(ConfigError::invalid(S, "keep_alive", self.keep_alive, "must be at least 1s"));
        }
        if self.max_message_bytes == 0 {
            return Err(ConfigError::invalid(S, "max_message_bytes", 0, "must be > 0"));
        }
        if self.subscriptions.is_empty() {
            return Err(ConfigError::new(
                S,
                "subscriptions",
                "is empty but mqtt.host is set: add [[mqtt.subscriptions]]",
            ));
        }
        for s in &self.subscriptions {
            s.validate().map_err(|rule| ConfigError::invalid("mqtt.subscriptions", "topic", &s.topic, rule))?;
        }
        Ok(())
    }
}

impl Subscription {
    fn validate(&self) -> std::result::Result<(), String> {
        let levels = crate::mqtt::filter_levels(&self.topic)?;
        let check = |t: &str| crate::mqtt::Template::parse(t, levels).map(|_| ());
        match self.format {
            PayloadFormat::Json => match &self.measurement {
                None => return Err("format = \"json\" needs a measurement".to_owned()),
                Some(m) => check(m)?,
            },
            PayloadFormat::LineProtocol => {
                if self.measurement.is_some() || self.timestamp.is_some() {
                    return Err("measurement and timestamp are for format = \"json\" (lines name their own)".to_owned());
                }
            }
        }
        for (k, v) in &self.tags {
            if k.is_empty() {
                return Err("empty tag key".to_owned());
            }
            check(v)?;
        }
        if self.timestamp.as_deref() == Some("") {
            return Err("empty timestamp member".to_owned());
        }
        Ok(())
    }
}

impl AgentConfig {
    /// Reads a TOML configuration file.
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::Config(format!("reading {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// Rejects settings the agent cannot run with (nothing is fixed in
    /// place): `[queue]`, `[mqtt]`, `[[aggregate]]`, then the agent's own.
    pub fn validate(&mut self) -> std::result::Result<(), ConfigError> {
        self.queue.validate()?;
        self.mqtt.validate(&self.agent_id)?;
        crate::aggregate::validate_rules(&self.aggregate)?;
        if self.agent_id.is_empty() || !self.agent_id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError::invalid("", "agent_id", &self.agent_id, "must be non-empty printable ASCII"));
        }
        // Sent as `<agent_id>.<16 hex queue id>`, which the server takes up to 128 bytes.
        if self.agent_id.len() > 111 {
            let rule = format!(
                "is {} bytes, at most 111 (the server takes origin ids of up to 128 bytes)",
                self.agent_id.len()
            );
            return Err(ConfigError::invalid("", "agent_id", &self.agent_id, rule));
        }
        self.validate_forward()
    }

    fn validate_forward(&self) -> std::result::Result<(), ConfigError> {
        const S: &str = "forward";
        let f = &self.forward;
        if f.endpoints.is_empty() {
            return Err(ConfigError::new(S, "endpoints", "is empty: name at least one Strata server"));
        }
        for e in &f.endpoints {
            // This build's HTTP client has no TLS.
            if !e.starts_with("http://") {
                return Err(ConfigError::invalid(S, "endpoints", e, "must start with http:// (no TLS in this build)"));
            }
        }
        if let Some(j) = &f.jurisdiction
            && (j.is_empty() || !j.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(ConfigError::invalid(S, "jurisdiction", j, "must be non-empty printable ASCII"));
        }
        if f.backoff_initial.is_zero() || f.backoff_max < f.backoff_initial {
            let rule = format!("must be > 0 and <= forward.backoff_max ({:?})", f.backoff_max);
            return Err(ConfigError::invalid(S, "backoff_initial", f.backoff_initial, rule));
        }
        Ok(())
    }
}

fn default_agent_id() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "strata-edge".to_owned())
}

#[cfg(test)]
mod tests;
