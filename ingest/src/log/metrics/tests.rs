use super::*;

fn partition(partition: u32, assigned: bool, lag: Option<i64>) -> PartitionStatus {
    PartitionStatus {
        partition,
        assigned,
        next_offset: lag.map(|_| 40),
        high_watermark: Some(42),
        lag,
        committed_offset: None,
        applied_records: 40,
        applied_bytes: 4_000,
        apply_rate: 2.5,
    }
}

#[test]
fn kafka_counters_per_topic_and_gauges_per_partition_skip_unknown_values() {
    let status = KafkaStatus {
        topic: "strata-eu".into(),
        group: Some("strata".into()),
        produced_records: 7,
        produced_bytes: 700,
        delivery_failures: 1,
        apply_errors: 0,
        rebalances: 2,
        forced_rejoins: 0,
        group_resets: 0,
        refetches: 0,
        missing_offsets: 0,
        partitions: vec![partition(0, true, Some(2)), partition(1, false, None)],
    };
    let mut out = String::new();
    status.render_metrics(&mut out);
    assert!(out.contains("# TYPE strata_kafka_produced_records_total counter\n"), "{out}");
    assert!(out.contains("strata_kafka_produced_records_total{topic=\"strata-eu\"} 7\n"), "{out}");
    assert!(out.contains("strata_kafka_partition_assigned{topic=\"strata-eu\",partition=\"1\"} 0\n"), "{out}");
    assert!(out.contains("strata_kafka_consumer_lag{topic=\"strata-eu\",partition=\"0\"} 2\n"), "{out}");
    // Partition 1's lag is unknown: no sample, only partition 0's.
    assert_eq!(out.matches("strata_kafka_consumer_lag{").count(), 1, "{out}");
    assert!(out.contains("# TYPE strata_kafka_applied_records_total counter\n"), "{out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("# TYPE ")).count(), 14, "{out}");
}
