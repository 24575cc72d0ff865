use super::consume::report_progress;
use super::group_repair::{GroupRepair, assigned_partitions};
use super::rebalance::{GENUINE_FOR, RejoinState};
use super::status::PartitionState;
use super::*;
use std::collections::BTreeMap;
use std::time::Instant;

#[test]
fn topic_and_group_names_follow_the_region() {
    let c = KafkaLogConfig::default();
    assert_eq!(c.topic("eu-west"), "strata.eu-west.ingest");
    assert_eq!(c.topic("bad region/x"), "strata.bad_region_x.ingest");
    assert_eq!(c.group("eu"), "strata-eu");
    let c = KafkaLogConfig { group_id: "hot".into(), topic_prefix: "acme".into(), ..c };
    assert_eq!(c.group("eu"), "hot");
    assert_eq!(c.topic("eu"), "acme.eu.ingest");
}

#[test]
fn validate_rejects_unusable_settings_naming_the_key() {
    assert!(KafkaLogConfig::default().validate().is_ok());
    let d = KafkaLogConfig::default;
    for (key, mut bad) in [
        ("brokers", KafkaLogConfig { brokers: " ".into(), ..d() }),
        ("topic_prefix", KafkaLogConfig { topic_prefix: "a/b".into(), ..d() }),
        ("replication_factor", KafkaLogConfig { replication_factor: 0, ..d() }),
        ("delivery_timeout", KafkaLogConfig { delivery_timeout: Duration::from_millis(1), ..d() }),
        ("max_record_bytes", KafkaLogConfig { max_record_bytes: 10, ..d() }),
    ] {
        let e = bad.validate().unwrap_err();
        assert_eq!(e.path(), format!("log.kafka.{key}"), "{bad:?}");
        assert_eq!(e.kind(), strata_schemas::ErrorKind::InvalidInput);
    }
    let e = KafkaLogConfig { topic_prefix: "a/b".into(), ..d() }.validate().unwrap_err();
    assert_eq!(e.to_string(), r#"[log.kafka] topic_prefix = "a/b": must be non-empty and use only [a-zA-Z0-9._-]"#);
}

/// `KafkaLog::open` checks the settings too: a bad one fails before any
/// broker is asked, as a configuration error naming the key.
#[test]
fn open_refuses_a_bad_config_before_connecting() {
    let config = KafkaLogConfig { replication_factor: 0, ..KafkaLogConfig::default() };
    let err = KafkaLog::open(&config, 2, "test", Arc::new(|_| 0), Arc::new(strata_schemas::DiscardSink)).unwrap_err();
    assert!(matches!(err, Error::KafkaConfig { .. }), "{err}");
    assert!(err.to_string().contains("[log.kafka] replication_factor = 0: must be at least 1"), "{err}");
}

#[test]
fn kafka_config_parses_from_toml() {
    let mut c: crate::LogConfig = toml_like(
        r#"{"kind":"kafka","partitions":4,"kafka":{"brokers":"b:1","linger":"20ms","options":{"socket.timeout.ms":"5000"}}}"#,
    );
    assert_eq!(c.kind, crate::LogKind::Kafka);
    assert_eq!(c.kafka.brokers, "b:1");
    assert_eq!(c.kafka.linger, Duration::from_millis(20));
    assert_eq!(c.kafka.options.get("socket.timeout.ms").map(String::as_str), Some("5000"));
    assert!(c.validate().is_ok());
}

fn toml_like(json: &str) -> crate::LogConfig {
    serde_json::from_str(json).unwrap()
}

#[test]
fn status_reports_lag_only_for_assigned_partitions_with_known_offsets() {
    let shared = Shared { partitions: (0..3).map(|_| PartitionState::default()).collect(), ..Shared::default() };
    shared.partitions[0].assigned.store(true, Ordering::Relaxed);
    shared.partitions[0].next.store(5, Ordering::Relaxed);
    shared.partitions[0].high.store(9, Ordering::Relaxed);
    shared.partitions[1].high.store(9, Ordering::Relaxed);
    let mut caught_up = vec![false; 3];
    report_progress(&shared, &mut caught_up);
    assert_eq!(caught_up, [false, false, false]);
    shared.partitions[0].replay_target.store(5, Ordering::Relaxed);
    report_progress(&shared, &mut caught_up);
    assert_eq!(caught_up, [true, false, false]);
}

/// A log with an unreachable broker fails to open with a retryable error
/// instead of hanging.
#[test]
fn open_without_a_broker_fails_as_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = KafkaLogConfig {
        brokers: format!("127.0.0.1:{port}"),
        options: BTreeMap::from([("socket.connection.setup.timeout.ms".into(), "1000".into())]),
        ..KafkaLogConfig::default()
    };
    let t0 = Instant::now();
    let err = KafkaLog::open(&config, 2, "test", Arc::new(|_| 0), Arc::new(strata_schemas::DiscardSink)).unwrap_err();
    assert_eq!(err.kind(), strata_schemas::ErrorKind::Unavailable, "{err}");
    assert!(t0.elapsed() < Duration::from_secs(30));
}

#[test]
fn rejoin_only_when_a_rebalance_hands_back_the_revoked_subset() {
    let t0 = Instant::now();
    let mut st = RejoinState::default();
    // First assignment: nothing was revoked.
    assert!(!st.on_assign(&[0, 1, 2], 6, t0));
    // A member died: revoked and handed back the same three (tansu 0.6.0): rejoin.
    st.last_revoked = Some(vec![0, 1, 2]);
    assert!(st.on_assign(&[0, 1, 2], 6, t0));
    // Our own leave revokes them; the rejoin brings all six: fixed.
    st.last_revoked = Some(vec![0, 1, 2]);
    assert!(!st.on_assign(&[0, 1, 2, 3, 4, 5], 6, t0));
    // Owning everything is never suspicious.
    st.last_revoked = Some(vec![0, 1, 2, 3, 4, 5]);
    assert!(!st.on_assign(&[0, 1, 2, 3, 4, 5], 6, t0));
}

#[test]
fn a_genuinely_unchanged_assignment_ends_the_rejoin_chain() {
    let t0 = Instant::now();
    let mut st = RejoinState { last_revoked: Some(vec![3, 4, 5]), ..RejoinState::default() };
    assert!(st.on_assign(&[3, 4, 5], 6, t0));
    // The rejoin gives the same set back: the broker meant it.
    st.last_revoked = Some(vec![3, 4, 5]);
    assert!(!st.on_assign(&[3, 4, 5], 6, t0));
    // The other member's own rejoin revokes and returns it again shortly after: no new rejoin.
    st.last_revoked = Some(vec![3, 4, 5]);
    assert!(!st.on_assign(&[3, 4, 5], 6, t0 + Duration::from_secs(5)));
    // Much later the same signature is questioned again.
    st.last_revoked = Some(vec![3, 4, 5]);
    assert!(st.on_assign(&[3, 4, 5], 6, t0 + GENUINE_FOR + Duration::from_secs(1)));
}

fn status(group: Option<&str>, parts: &[(bool, Option<i64>)]) -> KafkaStatus {
    KafkaStatus {
        topic: "t".into(),
        group: group.map(str::to_owned),
        produced_records: 0,
        produced_bytes: 0,
        delivery_failures: 0,
        apply_errors: 0,
        rebalances: 0,
        forced_rejoins: 0,
        group_resets: 0,
        refetches: 0,
        missing_offsets: 0,
        partitions: parts
            .iter()
            .enumerate()
            .map(|(i, &(assigned, lag))| PartitionStatus {
                partition: i as u32,
                assigned,
                next_offset: None,
                high_watermark: None,
                lag,
                committed_offset: None,
                applied_records: 0,
                applied_bytes: 0,
                apply_rate: 0.0,
            })
            .collect(),
    }
}

#[test]
fn a_consumer_holding_no_partition_is_not_caught_up() {
    let none = status(Some("g"), &[(false, None), (false, None)]);
    assert_eq!(none.assigned(), 0);
    assert!(!none.caught_up(), "nothing assigned: nothing is being applied");
    assert!(status(Some("g"), &[(true, Some(0)), (false, None)]).caught_up());
    assert!(!status(Some("g"), &[(true, Some(0)), (true, Some(3))]).caught_up());
    assert!(!status(Some("g"), &[(true, None)]).caught_up(), "lag unknown yet");
    assert!(status(None, &[(false, None)]).caught_up(), "a node that does not consume has nothing to catch up");
}

#[test]
fn assigned_partitions_reads_consumer_protocol_assignments() {
    // version 0; one topic "t" with partitions 0, 2, 3; user data absent (-1).
    let mut a = vec![0, 0, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 3];
    for p in [0i32, 2, 3] {
        a.extend_from_slice(&p.to_be_bytes());
    }
    a.extend_from_slice(&(-1i32).to_be_bytes());
    assert_eq!(assigned_partitions(&a), 3);
    // No topics (what a member without partitions carries), empty, and cut short.
    assert_eq!(assigned_partitions(&[0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]), 0);
    assert_eq!(assigned_partitions(&[]), 0);
    assert_eq!(assigned_partitions(&a[..10]), 0);
}

#[test]
fn group_repair_is_due_only_after_a_long_spell_without_an_assignment() {
    let shared = Shared { partitions: (0..2).map(|_| PartitionState::default()).collect(), ..Shared::default() };
    let mut r = GroupRepair::new("g".into(), ClientConfig::new(), Duration::from_secs(6));
    assert_eq!(r.after, Duration::from_secs(20), "three session timeouts, at least 20 s");
    let t0 = Instant::now();
    assert!(!r.due(&shared, t0));
    assert!(!r.due(&shared, t0 + Duration::from_secs(19)));
    assert!(r.due(&shared, t0 + Duration::from_secs(20)));
    // An attempt waits another `after` before the next one.
    r.last_attempt = Some(t0 + Duration::from_secs(20));
    assert!(!r.due(&shared, t0 + Duration::from_secs(30)));
    assert!(r.due(&shared, t0 + Duration::from_secs(40)));
    // An assignment (even of no partition) starts the spell again.
    shared.synced.store(true, Ordering::Release);
    assert!(!r.due(&shared, t0 + Duration::from_secs(60)));
    shared.synced.store(false, Ordering::Release);
    assert!(!r.due(&shared, t0 + Duration::from_secs(61)));
    assert!(r.due(&shared, t0 + Duration::from_secs(101)));
}
