//! [`KafkaLogConfig`] (`[log.kafka]`): the settings, their checks, the
//! topic and group names they give a region, and the librdkafka properties
//! of the producer and the consumer made from them.

use rdkafka::config::ClientConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use strata_schemas::ConfigError;

/// Settings of the Kafka ingest log (`[log.kafka]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaLogConfig {
    /// Bootstrap brokers, comma-separated `host:port`.
    pub brokers: String,
    /// The region's topic is `<topic_prefix>.<region>.ingest`.
    pub topic_prefix: String,
    /// Consumer group of the hot-store nodes of the region; empty means `strata-<region>`.
    pub group_id: String,
    /// Whether this node consumes (applies its assigned partitions to its hot
    /// store). `false` makes a write-only ingest node.
    pub consume: bool,
    /// Create the topic with `[log] partitions` partitions when it is missing.
    pub create_topic: bool,
    /// Replication factor of a topic this node creates.
    pub replication_factor: i32,
    /// Producer compression: `lz4` (default), `zstd` is not built in; `none`, `gzip`, `snappy` also work.
    pub compression: String,
    /// How long the producer waits to fill a batch (`linger.ms`).
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// Largest producer batch per partition in bytes (`batch.size`).
    pub batch_bytes: usize,
    /// A record not confirmed by the brokers within this time fails its write (`message.timeout.ms`).
    #[serde(with = "humantime_serde")]
    pub delivery_timeout: Duration,
    /// A consumer that misses heartbeats this long is dropped from the group
    /// and its partitions move (`session.timeout.ms`).
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
    /// Longest a consumer fetch waits at the broker for new records
    /// (`fetch.wait.max.ms`). Short, because it bounds how soon an
    /// acknowledged write becomes queryable on brokers that hold every fetch
    /// for the full wait (tansu 0.6.0 does; Kafka answers as soon as data is there).
    #[serde(with = "humantime_serde")]
    pub fetch_wait: Duration,
    /// Largest record (one write's batch for one partition) in bytes.
    pub max_record_bytes: usize,
    /// Further librdkafka properties for both clients, e.g. `{ "socket.timeout.ms" = "5000" }`.
    pub options: BTreeMap<String, String>,
}

impl Default for KafkaLogConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".to_owned(),
            topic_prefix: "strata".to_owned(),
            group_id: String::new(),
            consume: true,
            create_topic: true,
            replication_factor: 1,
            compression: "lz4".to_owned(),
            linger: Duration::from_millis(5),
            batch_bytes: 1 << 20,
            delivery_timeout: Duration::from_secs(10),
            session_timeout: Duration::from_secs(6),
            fetch_wait: Duration::from_millis(20),
            max_record_bytes: 8 << 20,
            options: BTreeMap::new(),
        }
    }
}

impl KafkaLogConfig {
    /// Rejects settings the Kafka log cannot run with, naming the key
    /// (`[log.kafka] replication_factor = 0: must be at least 1`). Nothing is
    /// fixed in place; `&mut self` is the signature every config shares.
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        let bad = |key: &str, value: &dyn std::fmt::Debug, rule: &str| {
            Err(ConfigError::invalid("log.kafka", key, value, rule))
        };
        if self.brokers.trim().is_empty() {
            return bad("brokers", &self.brokers, "must name at least one broker");
        }
        if self.topic_prefix.is_empty() || !self.topic_prefix.chars().all(topic_char) {
            return bad("topic_prefix", &self.topic_prefix, "must be non-empty and use only [a-zA-Z0-9._-]");
        }
        if self.replication_factor < 1 {
            return bad("replication_factor", &self.replication_factor, "must be at least 1");
        }
        if self.delivery_timeout < Duration::from_millis(100) {
            return bad("delivery_timeout", &self.delivery_timeout, "must be at least 100ms");
        }
        if self.max_record_bytes < 1024 {
            return bad("max_record_bytes", &self.max_record_bytes, "must be at least 1024");
        }
        Ok(())
    }

    /// The region's topic name.
    pub fn topic(&self, region: &str) -> String {
        let region: String = region.chars().map(|c| if topic_char(c) { c } else { '_' }).collect();
        format!("{}.{region}.ingest", self.topic_prefix)
    }

    /// The consumer group of the region's hot-store nodes.
    pub fn group(&self, region: &str) -> String {
        if self.group_id.is_empty() { format!("strata-{region}") } else { self.group_id.clone() }
    }

    /// Properties every client of the topic shares (brokers, `client_id`,
    /// largest message, then the user's `options`): the log's producer,
    /// consumer and admin clients, and [`KafkaRecords`](crate::log::KafkaRecords)'.
    pub(crate) fn base_client(&self, client_id: &str) -> ClientConfig {
        let mut base = ClientConfig::new();
        base.set("bootstrap.servers", &self.brokers)
            .set("client.id", client_id)
            .set("message.max.bytes", (self.max_record_bytes + (64 << 10)).to_string());
        for (k, v) in &self.options {
            base.set(k, v);
        }
        base
    }

    /// The idempotent producer's properties (`acks=all`, compression, batching, delivery timeout).
    pub(super) fn producer_client(&self, base: &ClientConfig) -> ClientConfig {
        let mut pconf = base.clone();
        pconf
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", &self.compression)
            .set("linger.ms", self.linger.as_millis().to_string())
            .set("batch.size", self.batch_bytes.to_string())
            .set("batch.num.messages", "100000")
            .set("message.timeout.ms", self.delivery_timeout.as_millis().to_string());
        pconf
    }

    /// The consumer-group member's properties: eager `range` assignment, no
    /// automatic commits or offset stores (the log commits flushed offsets
    /// itself), statistics every second (high watermarks), short fetch waits.
    pub(super) fn consumer_client(&self, base: &ClientConfig, group: &str) -> ClientConfig {
        let session_ms = self.session_timeout.as_millis().max(1000);
        let mut cconf = base.clone();
        cconf
            .set("group.id", group)
            // Eager rebalancing: the callback revokes and assigns whole sets.
            .set("partition.assignment.strategy", "range")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_uncommitted")
            .set("session.timeout.ms", session_ms.to_string())
            .set("heartbeat.interval.ms", (session_ms / 3).max(100).to_string())
            .set("statistics.interval.ms", "1000")
            .set("fetch.wait.max.ms", self.fetch_wait.as_millis().clamp(1, 60_000).to_string())
            .set("fetch.max.bytes", (self.max_record_bytes.max(1 << 20) * 4).to_string())
            .set("max.partition.fetch.bytes", (self.max_record_bytes + (64 << 10)).to_string());
        cconf
    }
}

fn topic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}
