//! Right to erasure with the Kafka log (a child module of `kafka`, for its
//! broker and node helpers): the node flushes and commits, purges its hot
//! store and cold tier, and the status says the topic's retention removes
//! the records (Strata deletes none) and that the topic was not scanned.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delete_on_a_kafka_node_completes_and_says_the_topic_keeps_records_until_retention() {
    let broker = Broker::start();
    let pa = free_port();
    let da = data_dir();
    let prefix = "erase";
    let extra = [("STRATA_ERASURE__CHECK_INTERVAL", "1s")];
    let a = start_node(da.path(), &NodeSpec { broker: &broker, prefix, port: pa, peers: &[], extra: &extra });
    let c = client();
    let base = now_ms() - 20 * 60_000;
    let mut ledger = Ledger::default();
    for round in 0..4u64 {
        write_acked(&c, &[&a], base, round * 400, round * 400 + 400).await;
        add(&mut ledger, round * 400, round * 400 + 400);
    }
    wait_for_all(&c, &a, &ledger, "before the delete").await;
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
    let deadline = Instant::now() + Duration::from_secs(120);
    let st = loop {
        let st: serde_json::Value = c
            .get(a.url(&format!("/admin/v1/deletes/{id}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if st["status"]["state"] == "completed" {
            break st;
        }
        assert!(Instant::now() < deadline, "not completed: {st:#}\n{}", a.stderr.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let status = &st["status"];
    assert_eq!(status["nodes"].as_object().unwrap().len(), 1, "{st:#}");
    assert_eq!(status["nodes_expected"], 1);
    for (node, p) in status["nodes"].as_object().unwrap() {
        assert!(p["done_at"].is_i64(), "{node}: {p:#}");
        assert_eq!(p["steps"]["log"]["detail"]["kind"], "kafka", "{p:#}");
        assert_eq!(p["verification"]["hot_samples"], 0, "{node}: {p:#}");
        assert_eq!(p["verification"]["log_records_scanned"], 0, "{node}: {p:#}");
    }
    assert!(status["log_policy"].as_str().unwrap().contains("retention"), "{st:#}");
    assert!(!status["verification"]["not_scanned"].as_array().unwrap().is_empty(), "the topic is not scanned: {st:#}");
    assert!(status["tiers"]["hot"]["rows_removed"].as_u64().unwrap() >= d7.0, "{st:#}");
    // Answers without d7, the others unchanged.
    for s in [&a] {
        let at = now_ms();
        assert_eq!(scalar(&c, s, "sum(count_over_time(kt{device=\"d7\"}[1h]))", at).await, 0.0);
        assert_eq!(scalar(&c, s, "sum(count_over_time(kt[1h]))", at).await, (ledger.samples - d7.0) as f64);
        assert_eq!(scalar(&c, s, "sum(sum_over_time(kt[1h]))", at).await, ledger.sum - d7.1);
    }
}
