//! The ingest log's `/metrics` families (local segments or Kafka), rendered
//! through the shared Prometheus text renderer
//! ([`strata_schemas::metrics_text`]); the server concatenates them with
//! every other crate's (`server/src/metrics.rs`).
//!
//! | family | type | labels | from |
//! |---|---|---|---|
//! | `strata_log_disk_bytes` | gauge | | [`LocalLog::disk_bytes`] |
//! | `strata_log_next_offset` | gauge | `partition` | [`LocalLog::next_offset`] |
//! | `strata_kafka_{produced_records,produced_bytes,delivery_failures,apply_errors,rebalances,refetches,missing_offsets}_total` | counter | `topic` | [`KafkaStatus`] |
//! | `strata_kafka_{partition_assigned,consumer_lag,next_offset,high_watermark,committed_offset,apply_rate}` | gauge | `topic`, `partition` | [`PartitionStatus`] |
//! | `strata_kafka_applied_records_total` | counter | `topic`, `partition` | [`PartitionStatus`] |

use strata_schemas::metrics_text::{MetricKind, MetricsText};

use super::{IngestLog, KafkaStatus, LocalLog, PartitionStatus};

impl LocalLog {
    /// Appends the local log's size and per-partition next offsets to `out`.
    pub fn render_metrics(&self, out: &mut String) {
        let mut text = MetricsText::new(out);
        text.gauge("strata_log_disk_bytes", "Bytes of ingest log segment files.", self.disk_bytes());
        let name = "strata_log_next_offset";
        text.family(name, MetricKind::Gauge, "Offset the next record of a partition gets.");
        for p in 0..IngestLog::partitions(self) {
            text.sample(name, &[("partition", &p.to_string())], self.next_offset(p));
        }
    }
}

impl KafkaStatus {
    /// Appends the Kafka log's counters and per-partition gauges to `out`.
    pub fn render_metrics(&self, out: &mut String) {
        let mut text = MetricsText::new(out);
        let topic = self.topic.as_str();
        let counters: [(&str, &str, u64); 7] = [
            (
                "strata_kafka_produced_records_total",
                "Records delivered to the brokers by this node.",
                self.produced_records,
            ),
            ("strata_kafka_produced_bytes_total", "Bytes of records delivered by this node.", self.produced_bytes),
            (
                "strata_kafka_delivery_failures_total",
                "Records the brokers did not confirm (write failed).",
                self.delivery_failures,
            ),
            (
                "strata_kafka_apply_errors_total",
                "Failed attempts to apply a consumed record (retried).",
                self.apply_errors,
            ),
            ("strata_kafka_rebalances_total", "Partition assignments and revocations seen.", self.rebalances),
            (
                "strata_kafka_refetches_total",
                "Partitions fetched again from further back: the broker's answer started past the offset needed.",
                self.refetches,
            ),
            (
                "strata_kafka_missing_offsets_total",
                "Offsets consumed past because the broker has no record for them (each gap is logged).",
                self.missing_offsets,
            ),
        ];
        for (name, help, v) in counters {
            text.family(name, MetricKind::Counter, help).sample(name, &[("topic", topic)], v);
        }
        type Field = fn(&PartitionStatus) -> Option<f64>;
        let gauges: [(&str, MetricKind, &str, Field); 7] = [
            ("strata_kafka_partition_assigned", MetricKind::Gauge, "1 while this node consumes the partition.", |p| {
                Some(f64::from(u8::from(p.assigned)))
            }),
            ("strata_kafka_consumer_lag", MetricKind::Gauge, "Records of the partition not yet applied here.", |p| {
                p.lag.map(|v| v as f64)
            }),
            ("strata_kafka_next_offset", MetricKind::Gauge, "Next offset this node applies.", |p| {
                p.next_offset.map(|v| v as f64)
            }),
            ("strata_kafka_high_watermark", MetricKind::Gauge, "The partition's high watermark.", |p| {
                p.high_watermark.map(|v| v as f64)
            }),
            (
                "strata_kafka_committed_offset",
                MetricKind::Gauge,
                "Offset committed to the group (flushed data).",
                |p| p.committed_offset.map(|v| v as f64),
            ),
            ("strata_kafka_applied_records_total", MetricKind::Counter, "Records applied to the hot store.", |p| {
                Some(p.applied_records as f64)
            }),
            ("strata_kafka_apply_rate", MetricKind::Gauge, "Records applied per second (recent).", |p| {
                Some(p.apply_rate)
            }),
        ];
        for (name, kind, help, field) in gauges {
            text.family(name, kind, help);
            for p in &self.partitions {
                if let Some(v) = field(p) {
                    text.sample(name, &[("topic", topic), ("partition", &p.partition.to_string())], v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
