//! Configuration of the ScyllaDB hot tier (`[hot.scylla]` in the server config).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use strata_schemas::ConfigError;

/// Consistency level of every read and write (`[hot.scylla] consistency`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsistencyLevel {
    /// One replica.
    One,
    /// A majority of replicas across data centres.
    Quorum,
    /// A majority of the replicas in the local data centre (the default).
    LocalQuorum,
    /// Every replica.
    All,
}

impl ConsistencyLevel {
    pub(crate) fn cql(self) -> scylla::statement::Consistency {
        use scylla::statement::Consistency as C;
        match self {
            ConsistencyLevel::One => C::One,
            ConsistencyLevel::Quorum => C::Quorum,
            ConsistencyLevel::LocalQuorum => C::LocalQuorum,
            ConsistencyLevel::All => C::All,
        }
    }
}

/// Where the cluster is and how the tier's keyspace is laid out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScyllaConfig {
    /// Contact points (`host:port`); the driver discovers the other nodes.
    pub nodes: Vec<String>,
    /// Keyspace holding the tier's tables (created if missing).
    pub keyspace: String,
    /// The keyspace's replication map, in CQL, used when the keyspace is
    /// created (an existing keyspace is left as it is).
    pub replication: String,
    /// Consistency level of every read and write. A write is acknowledged to
    /// the log (and its offset committed) only once this level answered.
    pub consistency: ConsistencyLevel,
    /// Width of a time bucket, the time part of the samples' partition key
    /// (humantime, default `"2h"`). Recorded in the keyspace: opening it with
    /// another width is refused.
    #[serde(with = "humantime_serde")]
    pub bucket: Duration,
    /// Time one request may take before it fails (humantime).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Names the log whose offsets this node records in `log_offsets`
    /// (empty: chosen by the server: the region's Kafka topic, or this node's
    /// embedded log). Nodes sharing a Kafka topic must share it.
    pub log_id: String,
}

impl Default for ScyllaConfig {
    fn default() -> Self {
        Self {
            nodes: vec!["127.0.0.1:9042".to_owned()],
            keyspace: "strata_hot".to_owned(),
            replication: "{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}".to_owned(),
            consistency: ConsistencyLevel::LocalQuorum,
            bucket: Duration::from_secs(2 * 3600),
            request_timeout: Duration::from_secs(10),
            log_id: String::new(),
        }
    }
}

impl ScyllaConfig {
    /// Rejects values the tier cannot run with (nothing is fixed in place).
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        const S: &str = "hot.scylla";
        if self.nodes.is_empty() {
            return Err(ConfigError::new(S, "nodes", "is empty: name at least one contact point (host:port)"));
        }
        let ident = |s: &str| {
            s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && s.len() <= 48
                && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        if !ident(&self.keyspace) {
            return Err(ConfigError::invalid(
                S,
                "keyspace",
                &self.keyspace,
                "is not a keyspace name: lower-case letters, digits and _, starting with a letter, at most 48 \
                 characters",
            ));
        }
        let r = self.replication.trim();
        if !(r.starts_with('{') && r.ends_with('}')) || r.contains(';') {
            return Err(ConfigError::invalid(
                S,
                "replication",
                &self.replication,
                "is not a CQL map such as {'class': 'NetworkTopologyStrategy', 'replication_factor': 3}",
            ));
        }
        if self.bucket < Duration::from_secs(1) || !self.bucket.as_millis().is_multiple_of(1000) {
            return Err(ConfigError::invalid(
                S,
                "bucket",
                self.bucket,
                "must be a whole number of seconds, at least 1s",
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(ConfigError::invalid(S, "request_timeout", self.request_timeout, "must be more than 0"));
        }
        Ok(())
    }

    /// The bucket width in milliseconds.
    pub fn bucket_ms(&self) -> i64 {
        i64::try_from(self.bucket.as_millis()).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_valid_and_bad_values_are_named() {
        assert_eq!(ScyllaConfig::default().validate(), Ok(()));
        let bad = |f: fn(&mut ScyllaConfig)| {
            let mut c = ScyllaConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert_eq!(bad(|c| c.nodes.clear()).path(), "hot.scylla.nodes");
        assert_eq!(bad(|c| c.keyspace = "Strata-Hot".into()).path(), "hot.scylla.keyspace");
        assert_eq!(bad(|c| c.replication = "{'class': 'x'}; DROP".into()).path(), "hot.scylla.replication");
        assert_eq!(bad(|c| c.bucket = Duration::from_millis(1500)).path(), "hot.scylla.bucket");
        assert_eq!(bad(|c| c.request_timeout = Duration::ZERO).path(), "hot.scylla.request_timeout");
        assert!(
            bad(|c| c.keyspace = "Strata-Hot".into())
                .to_string()
                .starts_with("[hot.scylla] keyspace = \"Strata-Hot\": "),
            "the message shows the value"
        );
    }

    #[test]
    fn consistency_is_spelled_in_snake_case() {
        let c: ScyllaConfig = serde_json::from_str(r#"{"consistency": "local_quorum", "bucket": "1h"}"#).unwrap();
        assert_eq!(c.consistency, ConsistencyLevel::LocalQuorum);
        assert_eq!(c.bucket_ms(), 3_600_000);
    }
}
