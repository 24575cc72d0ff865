//! Right to erasure with the Kafka log (a child module of `kafka`, for its
//! broker and node helpers): the node flushes and commits, deletes the
//! topic's records whose samples are all in the cold tier (DeleteRecords up
//! to each partition's safe bound), purges its hot store and cold tier, and
//! its verification scans the topic from the low watermarks.
//!
//! The broker is tansu with its SlateDB engine (`slatedb://memory`), the one
//! engine of tansu 0.6.0 whose DeleteRecords works (scripts/tansu/Cargo.toml).

use super::*;
use strata_ingest::log::{KafkaLogConfig, KafkaRecords};
use strata_schemas::WriteBatch;

/// A tansu broker on the SlateDB engine over an in-memory object store.
fn slatedb_broker() -> Broker {
    Broker::start_with("strata-erasure", "slatedb://memory")
}

/// The node's topic, read by a consumer of the test's own.
fn topic(broker: &Broker, prefix: &str) -> KafkaRecords {
    let config =
        KafkaLogConfig { brokers: broker.addr(), topic_prefix: prefix.to_owned(), ..KafkaLogConfig::default() };
    KafkaRecords::new(&config, PARTITIONS, "local")
}

/// Every record of every partition from offset 0: (partition, offset, batch).
fn read_all(t: &KafkaRecords) -> Vec<(u32, i64, WriteBatch)> {
    let mut out = Vec::new();
    for p in 0..PARTITIONS {
        t.scan(p, 0, i64::MAX, Duration::from_secs(30), &mut |offset, value| {
            out.push((p, offset, WriteBatch::decode(value).expect("a strata record")));
            true
        })
        .unwrap();
    }
    out
}

fn holds_device(b: &WriteBatch, device: &str) -> bool {
    b.series.iter().any(|s| s.labels.get("device") == Some(device))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delete_on_a_kafka_node_deletes_the_rolled_records_and_keeps_later_writes() {
    let broker = slatedb_broker();
    let da = data_dir();
    let prefix = "erase";
    let extra = [
        ("STRATA_ERASURE__CHECK_INTERVAL", "1s"),
        ("STRATA_COLD__ENABLED", "true"),
        ("STRATA_COMPACTOR__GRACE", "1m"),
        ("STRATA_COMPACTOR__INTERVAL", "1h"),
        ("STRATA_HOT_STORE__DEFAULT_HOT_TTL", "1d"),
    ];
    let a = start_node(da.path(), &NodeSpec { broker: &broker, prefix, port: free_port(), peers: &[], extra: &extra });
    let c = client();
    // Five hours old: in sealed buckets, rolled to the cold tier below.
    let base = now_ms() - 5 * 3_600_000;
    let mut ledger = Ledger::default();
    for round in 0..4u64 {
        write_acked(&c, &[&a], base, round * 400, round * 400 + 400).await;
        add(&mut ledger, round * 400, round * 400 + 400);
    }
    let at = base + 1_700;
    let deadline = Instant::now() + Duration::from_secs(60);
    while scalar(&c, &a, "sum(count_over_time(kt[1h]))", at).await != ledger.samples as f64 {
        assert!(Instant::now() < deadline, "not applied:\n{}", a.stderr.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    internal(&c, &a, ADMIN_TOKEN, "/internal/flush").await;
    let rolled = internal(&c, &a, ADMIN_TOKEN, "/internal/roll").await;
    assert_eq!(rolled["samples"], 1600, "{rolled}");
    let t = topic(&broker, prefix);
    let before = tokio::task::spawn_blocking({
        let t = t.clone();
        move || t.watermarks(Duration::from_secs(10)).unwrap()
    })
    .await
    .unwrap();
    let records_before: i64 = before.iter().map(|(l, h)| h - l).sum();
    assert!(records_before >= 4, "{before:?}");
    let d7: (u64, f64) = (0..1600u64).filter(|i| i % 40 == 7).fold((0, 0.0), |(n, s), i| (n + 1, s + (i % 97) as f64));

    let r = c
        .post(a.url("/admin/v1/tenants/default/delete"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"match": ["kt{device=\"d7\"}"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    let st = loop {
        let st = json(c.get(a.url(&format!("/admin/v1/deletes/{id}"))).bearer_auth(ADMIN_TOKEN)).await;
        if st["status"]["state"] == "completed" {
            break st;
        }
        assert!(Instant::now() < deadline, "not completed: {st:#}\n{}", a.stderr.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let status = &st["status"];
    assert_eq!(status["bound_met"], true, "{st:#}");
    let (_, node) = status["nodes"].as_object().unwrap().iter().next().unwrap();
    let log = &node["steps"]["log"]["detail"];
    assert_eq!(log["kind"], "kafka", "{st:#}");
    assert_eq!(log["delete_error"], serde_json::Value::Null, "{st:#}");
    let parts = log["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), PARTITIONS as usize, "every partition held and scanned: {st:#}");
    for p in parts {
        assert_eq!(p["low_after"], p["high"], "every record rolled: the whole prefix goes: {p}");
        assert_eq!(p["covered_samples_waiting"], 0, "{p}");
    }
    assert_eq!(status["tiers"]["log"]["rows_removed"].as_u64(), Some(d7.0), "{st:#}");
    let v = &status["verification"];
    for k in ["hot_samples", "cold_rows", "log_samples", "kafka_samples"] {
        assert_eq!(v[k], 0, "verification {k}: {st:#}");
    }
    assert_eq!(v["kafka_partitions_scanned"], PARTITIONS, "{st:#}");
    assert!(status["log_policy"].as_str().unwrap().contains("DeleteRecords"), "{st:#}");

    // Neighbours unchanged (from the cold tier: below its watermark), d7 gone.
    assert_eq!(scalar(&c, &a, "sum(count_over_time(kt{device=\"d7\"}[1h]))", at).await, 0.0);
    assert_eq!(scalar(&c, &a, "sum(count_over_time(kt[1h]))", at).await, (ledger.samples - d7.0) as f64);
    assert_eq!(scalar(&c, &a, "sum(sum_over_time(kt[1h]))", at).await, ledger.sum - d7.1);

    // Writes for the same series after the delete (timestamps after it: the
    // request covers samples up to the time it was made) are kept, in the
    // hot store and the topic.
    let now = now_ms();
    write_acked(&c, &[&a], now, 0, 400).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while scalar(&c, &a, "sum(count_over_time(kt[5m]))", now + 1_000).await != 400.0 {
        assert!(Instant::now() < deadline, "later writes not applied:\n{}", a.stderr.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(scalar(&c, &a, "sum(count_over_time(kt{device=\"d7\"}[5m]))", now + 1_000).await, 10.0);

    // The partitions start past every record written before the delete
    // (asked after the later writes: tansu's SlateDB engine answers 0 as the
    // earliest offset of a partition DeleteRecords emptied), and a consumer
    // reading from the beginning gets only the later records.
    let t2 = t.clone();
    let (after, records) =
        tokio::task::spawn_blocking(move || (t2.watermarks(Duration::from_secs(10)).unwrap(), read_all(&t2)))
            .await
            .unwrap();
    for (p, ((_, high), (low, _))) in before.iter().zip(&after).enumerate() {
        assert!(low >= high, "partition {p}: low watermark {low}, high before the delete {high}");
    }
    assert!(records.iter().any(|(_, _, b)| holds_device(b, "d7")), "the later d7 samples are in the topic");
    for (p, o, b) in &records {
        assert!(*o >= before[*p as usize].1, "partition {p} offset {o}: written before the delete, still readable");
        assert!(b.series.iter().all(|s| s.samples.iter().all(|x| x.ts >= now)), "{b:?}");
    }
}
