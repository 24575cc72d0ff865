//! Admin requests of the Kafka log: the region's topic made sure of at open
//! ([`ensure_topic`]: created when missing, its partition count checked),
//! partition high watermarks asked of the broker
//! ([`KafkaLog::fetch_high_watermarks`]), and a stuck consumer group deleted
//! ([`delete_group`], for [`GroupRepair`](super::group_repair::GroupRepair)).
//!
//! rdkafka's admin API is async; the callers are blocking threads with no
//! runtime of their own (startup, the consumer thread), so the two async
//! requests wait on a throwaway current-thread runtime, each under a
//! reasoned `#[expect(clippy::disallowed_methods)]`.

use super::KafkaLog;
use crate::error::{Error, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::Producer;
use std::time::{Duration, Instant};

/// Creates the topic if needed and checks its partition count.
pub(super) fn ensure_topic(
    base: &ClientConfig,
    topic: &str,
    partitions: u32,
    replication: i32,
    create: bool,
) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        base.create().map_err(|source| Error::KafkaClient { what: "admin client", source })?;
    let timeout = Duration::from_secs(10);
    let found = topic_partitions(&admin, topic, timeout)?;
    if found.is_none() {
        if !create {
            return Err(Error::KafkaTopic {
                topic: topic.to_owned(),
                detail: "topic does not exist and log.kafka.create_topic is off".to_owned(),
            });
        }
        create_topic(&admin, topic, partitions, replication, timeout)?;
    }
    wait_for_partitions(&admin, topic, partitions, timeout)
}

/// Asks the brokers to create the topic (one that exists meanwhile is fine).
#[expect(
    clippy::disallowed_methods,
    reason = "called once at startup, before the consumer and producer threads exist: a throwaway current-thread runtime waits for rdkafka's async topic creation"
)]
fn create_topic(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    partitions: u32,
    replication: i32,
    timeout: Duration,
) -> Result<()> {
    let new = NewTopic::new(topic, partitions as i32, TopicReplication::Fixed(replication));
    let opts = AdminOptions::new().operation_timeout(Some(timeout));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|source| Error::KafkaThread { source })?;
    let results = rt
        .block_on(admin.create_topics([&new], &opts))
        .map_err(|source| Error::KafkaClient { what: "create topic", source })?;
    for r in results {
        match r {
            Ok(_) => tracing::info!(topic, partitions, replication, "created the region's ingest topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => {
                return Err(Error::KafkaTopic { topic: topic.to_owned(), detail: format!("creating: {code}") });
            }
        }
    }
    Ok(())
}

/// Waits (up to `timeout`) for the topic to show in the metadata and
/// checks it has `partitions` partitions: metadata can lag a fresh topic by
/// a moment, and an existing topic's count cannot change.
fn wait_for_partitions(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    partitions: u32,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match topic_partitions(admin, topic, timeout)? {
            Some(n) if n == partitions => return Ok(()),
            Some(n) if n > 0 => {
                return Err(Error::KafkaTopic {
                    topic: topic.to_owned(),
                    detail: format!(
                        "the topic has {n} partitions but log.partitions is {partitions}; the partition count of an \
                         existing log cannot change"
                    ),
                });
            }
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            _ => {
                return Err(Error::KafkaTopic {
                    topic: topic.to_owned(),
                    detail: "topic not visible in the brokers' metadata".to_owned(),
                });
            }
        }
    }
}

/// The topic's partition count, `None` when the brokers do not know it.
fn topic_partitions(admin: &AdminClient<DefaultClientContext>, topic: &str, timeout: Duration) -> Result<Option<u32>> {
    let md = admin
        .inner()
        .fetch_metadata(Some(topic), timeout)
        .map_err(|source| Error::KafkaClient { what: "fetch metadata", source })?;
    Ok(md.topics().iter().find(|t| t.name() == topic).and_then(|t| {
        if t.error().is_some() || t.partitions().is_empty() { None } else { Some(t.partitions().len() as u32) }
    }))
}

/// Deletes consumer group `group` (DeleteGroups); true when the broker
/// deleted it. Failures are logged: the caller tries again later.
#[expect(
    clippy::disallowed_methods,
    reason = "rdkafka's admin API is async; the consumer's own thread (no runtime there) waits for the group deletion on a throwaway current-thread runtime"
)]
pub(super) fn delete_group(admin_config: &ClientConfig, group: &str, timeout: Duration) -> bool {
    let admin: AdminClient<DefaultClientContext> = match admin_config.create() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "cannot create a kafka admin client to reset the consumer group");
            return false;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_time().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start a runtime to reset the consumer group");
            return false;
        }
    };
    let opts = AdminOptions::new().operation_timeout(Some(timeout)).request_timeout(Some(timeout));
    match rt.block_on(admin.delete_groups(&[group], &opts)) {
        Ok(results) => match results.into_iter().next() {
            Some(Ok(_)) | None => {
                tracing::info!(group = %group, "deleted the stuck kafka consumer group; rejoining");
                true
            }
            Some(Err((_, code))) => {
                tracing::warn!(group = %group, error = %code, "deleting the kafka consumer group failed");
                false
            }
        },
        Err(e) => {
            tracing::warn!(group = %group, error = %e, "deleting the kafka consumer group failed");
            false
        }
    }
}

impl KafkaLog {
    /// The broker's high watermark (the offset the next record gets) of
    /// every partition, asked now rather than taken from the last
    /// statistics report (which, after a reassignment, may predate it).
    /// Blocking: one request per partition, each up to `timeout`. The cold
    /// tier's compactor rolls a partition only when this node has applied it
    /// up to this offset.
    pub fn fetch_high_watermarks(&self, timeout: Duration) -> Result<Vec<i64>> {
        let producer = self.producer.lock().clone();
        (0..self.partitions)
            .map(|p| {
                let (_, high) = producer
                    .client()
                    .fetch_watermarks(&self.topic, p as i32, timeout)
                    .map_err(|source| Error::KafkaClient { what: "fetch watermarks", source })?;
                Ok(high)
            })
            .collect()
    }
}
