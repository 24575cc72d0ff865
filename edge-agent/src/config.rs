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
//! token = "..."                     # Authorization: Token ...
//! backoff_initial = "100ms"
//! backoff_max = "5s"
//! request_timeout = "10s"
//! connect_timeout = "2s"
//! primary_retry = "30s"             # after a failover, try the first endpoint again this often
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::queue::QueueConfig;

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
    pub endpoints: Vec<String>,
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
}

impl Default for ForwardConfig {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            token: None,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            primary_retry: Duration::from_secs(30),
        }
    }
}

impl AgentConfig {
    /// Reads a TOML configuration file.
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::Config(format!("reading {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// Rejects settings the agent cannot run with.
    pub fn validate(&self) -> Result<()> {
        self.queue.validate()?;
        if self.agent_id.is_empty() || !self.agent_id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::Config(format!("agent_id {:?} must be non-empty printable ASCII", self.agent_id)));
        }
        if self.forward.endpoints.is_empty() {
            return Err(Error::Config("forward.endpoints is empty: name at least one Strata server".to_owned()));
        }
        for e in &self.forward.endpoints {
            // This build's HTTP client has no TLS.
            if !e.starts_with("http://") {
                return Err(Error::Config(format!("endpoint {e:?} must start with http:// (no TLS in this build)")));
            }
        }
        if self.forward.backoff_initial.is_zero() || self.forward.backoff_max < self.forward.backoff_initial {
            return Err(Error::Config("forward.backoff_initial must be > 0 and <= forward.backoff_max".to_owned()));
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
mod tests {
    use super::*;
    use crate::queue::{FsyncPolicy, OverflowPolicy};

    #[test]
    fn parses_a_full_file_and_rejects_unknown_keys() {
        let c: AgentConfig = toml::from_str(
            r#"
            agent_id = "gw-1"
            listen = "0.0.0.0:1"
            data_dir = "/tmp/x"
            [queue]
            max_bytes = 100000000
            fsync = "never"
            overflow = "drop_oldest"
            [forward]
            endpoints = ["http://a:1", "http://b:2"]
            token = "t"
            backoff_max = "2s"
            "#,
        )
        .unwrap();
        assert_eq!(c.agent_id, "gw-1");
        assert_eq!(c.queue.fsync, FsyncPolicy::Never);
        assert_eq!(c.queue.overflow, OverflowPolicy::DropOldest);
        assert_eq!(c.forward.backoff_max, Duration::from_secs(2));
        assert_eq!(c.forward.backoff_initial, Duration::from_millis(100));
        c.validate().unwrap();
        assert!(toml::from_str::<AgentConfig>("[queue]\nmax_byte = 1").is_err());
    }

    #[test]
    fn the_example_file_parses_and_shows_the_defaults() {
        let c: AgentConfig = toml::from_str(include_str!("../strata-edge.example.toml")).unwrap();
        c.validate().unwrap();
        let d = AgentConfig::default();
        assert_eq!((c.intake, c.queue), (d.intake, d.queue));
        assert_eq!(c.forward, ForwardConfig { endpoints: c.forward.endpoints.clone(), ..d.forward });
        assert_eq!(c.listen, d.listen);
    }

    #[test]
    fn defaults_are_safe() {
        let c = AgentConfig::default();
        assert_eq!(c.queue.fsync, FsyncPolicy::EveryBatch);
        assert_eq!(c.queue.overflow, OverflowPolicy::Refuse);
        assert!(c.forward.backoff_max <= Duration::from_secs(5));
        assert!(c.validate().is_err(), "no endpoint");
        let https = AgentConfig {
            forward: ForwardConfig { endpoints: vec!["https://a:1".into()], ..ForwardConfig::default() },
            ..AgentConfig::default()
        };
        assert!(https.validate().unwrap_err().to_string().contains("no TLS"));
    }
}
