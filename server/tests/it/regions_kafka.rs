//! Federated nodes that are also a Kafka group: two `us-east` nodes share
//! one topic (a real tansu broker, as in `kafka.rs`) and are each other's
//! cluster peers; `eu-central` is another region whose directory reaches
//! `us-east` at node B. A federated query from eu over the us data (`us:
//! aggregates`, so node B evaluates the partials over both nodes'
//! partitions; then `us: raw`, so B answers raw series of both) equals the
//! known values; with node A killed, B takes over A's partitions from the
//! topic and eu's answer is whole again — never short without a warning in
//! between (B's warning that its peer A does not answer crosses to eu).

use crate::harness::{Server, client, data_dir, now_ms};
use crate::kafka::{ADMIN_TOKEN, Broker, NodeSpec, start_node};
use crate::regions::{Region, admin_post, credential, free_port, get_json};
use crate::regions_edge::start_with_token;
use std::time::{Duration, Instant};

const TOKEN: &str = "kafka-region-token-agro-01";

/// The `STRATA_*` settings that make a Kafka node region `us-east`.
fn us_east_env(own_port: u16, eu_port: u16) -> Vec<(String, String)> {
    let entry = |name: &str, j: &str, port: u16| {
        format!(
            "{{ name = \"{name}\", jurisdiction = \"{j}\", endpoint = \"http://127.0.0.1:{port}\", credential_sha256 = \"{}\" }}",
            strata::regions::credential_sha256(&credential(name))
        )
    };
    vec![
        ("STRATA_REGION".into(), "us-east".into()),
        ("STRATA_FEDERATION__JURISDICTION".into(), "us".into()),
        ("STRATA_FEDERATION__CREDENTIAL".into(), credential("us-east")),
        ("STRATA_FEDERATION__TIMEOUT".into(), "3s".into()),
        (
            "STRATA_FEDERATION__REGIONS".into(),
            format!("[{}, {}]", entry("us-east", "us", own_port), entry("eu-central", "eu", eu_port)),
        ),
        ("STRATA_AUTH__TOKENS".into(), format!("{{ \"{TOKEN}\" = \"agro\" }}")),
    ]
}

fn kafka_node(dir: &std::path::Path, broker: &Broker, port: u16, peer: u16, eu_port: u16) -> Server {
    let env = us_east_env(port, eu_port);
    let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    start_node(dir, &NodeSpec { broker, prefix: "fed", port, peers: &[peer], extra: &extra })
}

/// `(count, sum, warnings)` of the fleet's samples as `s` answers.
async fn totals(c: &reqwest::Client, s: &Server, at: i64) -> (f64, f64, String) {
    let t = format!("{:.3}", at as f64 / 1000.0);
    let mut out = (-1.0, -1.0, String::new());
    for (i, q) in ["sum(count_over_time(kfed[1h]))", "sum(sum_over_time(kfed[1h]))"].iter().enumerate() {
        let (st, v) = get_json(c, s, "/api/v1/query", TOKEN, &[("query", q.to_string()), ("time", t.clone())]).await;
        if st != 200 {
            return (-1.0, -1.0, v.to_string());
        }
        let x = v["data"]["result"][0]["value"][1].as_str().and_then(|x| x.parse().ok()).unwrap_or(0.0);
        if i == 0 {
            out.0 = x
        } else {
            out.1 = x
        }
        if let Some(w) = v["warnings"].as_array().filter(|w| !w.is_empty()) {
            out.2.push_str(&serde_json::to_string(w).unwrap());
        }
    }
    out
}

/// Polls until `s` answers `want` (count, sum); with no warning, unless
/// `node_lost` (node A is down: B's cluster fan-out then names it in a
/// warning on every answer, whole or not, for as long as it is a listed
/// peer). When `node_lost`, every answer short of `want` must carry a
/// warning: never silently partial.
async fn wait_whole(c: &reqwest::Client, s: &Server, at: i64, want: (f64, f64), node_lost: bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (count, sum, warnings) = totals(c, s, at).await;
        if count == want.0 && sum == want.1 && (warnings.is_empty() || node_lost) {
            if node_lost && !warnings.is_empty() {
                assert!(warnings.contains("cluster peer") && warnings.contains("did not answer"), "{what}: {warnings}");
            }
            return;
        }
        assert!(count <= want.0, "{what}: more samples than written: {count} > {}", want.0);
        if node_lost && count >= 0.0 && count < want.0 {
            assert!(!warnings.is_empty(), "{what}: {count} of {} samples and no warning", want.0);
        }
        assert!(
            Instant::now() < deadline,
            "{what}: want {want:?}, last ({count}, {sum}, {warnings}); node log:\n{}",
            s.stderr.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// With `partial_response=false`, node B's silent peer is an error at B and
/// so at eu: 503, not a warning (the flag travels with the request).
async fn strict_is_503(c: &reqwest::Client, eu: &Server, at: i64, what: &str) {
    let params = [
        ("query", "sum(count_over_time(kfed[1h]))".to_owned()),
        ("time", format!("{:.3}", at as f64 / 1000.0)),
        ("partial_response", "false".to_owned()),
    ];
    let (st, v) = get_json(c, eu, "/api/v1/query", TOKEN, &params).await;
    assert_eq!(st, 503, "{what}: partial_response=false with us-east's peer down: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_group_region_federates_and_survives_losing_a_node() {
    let broker = Broker::start(crate::kafka::TANSU_CLUSTER);
    let (pa, pb, pe) = (free_port(), free_port(), free_port());
    let (da, db, de) = (data_dir(), data_dir(), data_dir());
    let a = kafka_node(da.path(), &broker, pa, pb, pe);
    let b = kafka_node(db.path(), &broker, pb, pa, pe);
    // eu's directory reaches us-east at node B.
    let dir = [
        Region { name: "us-east", jurisdiction: "us", port: pb, proxy_port: pb },
        Region { name: "eu-central", jurisdiction: "eu", port: pe, proxy_port: pe },
    ];
    let eu = start_with_token(&dir[1], &dir, de.path(), TOKEN);
    let c = client();
    let policy = |us: &str| {
        serde_json::json!({
            "id": "agro",
            "home_region": "us-east",
            "data_regions": ["us-east", "eu-central"],
            "allowed_query_regions": ["us-east", "eu-central"],
            "exports": {"us": us, "eu": "raw"},
        })
    };
    for s in [&a, &b] {
        let r = c.post(s.url("/admin/v1/tenants")).bearer_auth(ADMIN_TOKEN).json(&policy("aggregates")).send().await;
        let r = r.unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
    admin_post(&c, &eu, "/admin/v1/tenants", policy("aggregates")).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // us: 40 devices written through both nodes (the topic's partitions
    // spread them over the group); eu: 5 devices.
    let base = now_ms() - 20 * 60_000;
    let (mut count, mut sum) = (0.0, 0.0);
    for round in 0..4u64 {
        let target = if round % 2 == 0 { &a } else { &b };
        let body: String = (round * 100..round * 100 + 100)
            .map(|i| {
                count += 1.0;
                sum += (i % 97) as f64;
                format!("kfed,device=d{} value={} {}\n", i % 40, i % 97, base + i as i64)
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = c.post(target.url("/api/v2/write?precision=ms")).bearer_auth(TOKEN).body(body.clone()).send().await;
            match r {
                Ok(r) if r.status() == 204 => break,
                other => assert!(Instant::now() < deadline, "write never acknowledged: {other:?}"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let eu_body: String = (0..5)
        .map(|i| {
            count += 1.0;
            sum += 1000.0 + i as f64;
            format!("kfed,device=e{i} value={} {}\n", 1000 + i, base + i)
        })
        .collect();
    let r = c.post(eu.url("/api/v2/write?precision=ms")).bearer_auth(TOKEN).body(eu_body).send().await.unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    let at = now_ms();

    // Both nodes consumed; the group's answer at B, then eu's over both.
    wait_whole(&c, &b, at, (count, sum), false, "us-east node B").await;
    wait_whole(&c, &eu, at, (count, sum), false, "eu-central, us aggregates").await;
    let (_, v) = get_json(
        &c,
        &eu,
        "/api/v1/query",
        TOKEN,
        &[("query", "count(count_over_time(kfed[1h]))".into()), ("time", format!("{:.3}", at as f64 / 1000.0))],
    )
    .await;
    assert_eq!(v["data"]["result"][0]["value"][1], "45", "{v}");

    // Node A dies: B takes its partitions over; eu's answer is whole again.
    a.kill9();
    wait_whole(&c, &eu, at, (count, sum), true, "eu-central after node A died, us aggregates").await;
    strict_is_503(&c, &eu, at, "us aggregates").await;
    for (s, admin) in [(&b, ADMIN_TOKEN), (&eu, crate::regions::ADMIN)] {
        let r = c
            .patch(s.url("/admin/v1/tenants/agro"))
            .bearer_auth(admin)
            .json(&serde_json::json!({"exports": {"us": "raw", "eu": "raw"}}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    wait_whole(&c, &eu, at, (count, sum), true, "eu-central after node A died, us raw").await;
    strict_is_503(&c, &eu, at, "us raw").await;
    wait_whole(&c, &b, at, (count, sum), true, "us-east node B alone").await;
}
