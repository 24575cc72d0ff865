//! Unit tests of the HTTP write endpoints (`super`).

use super::*;
use crate::convert::Conversion;

#[test]
fn partial_message_names_the_first_error() {
    let c = Conversion {
        accepted_lines: 2,
        rejected: vec![LineError { code: "invalid_line", line: 3, column: Some(4), reason: "bad".into() }],
        ..Conversion::default()
    };
    assert_eq!(
        partial_message(&c, 10),
        "partial write: 1 of 3 lines rejected, the other 2 stored; first error: line 3: bad"
    );
}

#[test]
fn gunzip_enforces_the_limit() {
    use flate2::write::GzEncoder;
    use std::io::Write;
    let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&vec![b'a'; 10_000]).unwrap();
    let gz = enc.finish().unwrap();
    assert_eq!(gunzip(&gz, 10_000).unwrap().len(), 10_000);
    assert_eq!(gunzip(&gz, 9_999).unwrap_err().status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(gunzip(b"not gzip", 100).unwrap_err().status(), StatusCode::BAD_REQUEST);
}

#[test]
fn unzstd_enforces_the_limit() {
    let body = vec![b'x'; 10_000];
    let packed = zstd::encode_all(&body[..], 3).unwrap();
    assert_eq!(unzstd(&packed, 10_000).unwrap().len(), 10_000);
    assert_eq!(unzstd(&packed, 9_999).unwrap_err().status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(unzstd(b"not zstd", 100).unwrap_err().status(), StatusCode::BAD_REQUEST);
}

/// Residency through the line-protocol endpoint: a node of region
/// `us-east` (jurisdiction `us`) in a directory that also knows
/// `eu-central` (`eu`) and `br-south` (`br`).
mod residency {
    use super::*;
    use crate::log::AppendFuture;
    use axum::http::Request;
    use strata_schemas::{RegionDirectory, RegionEntry, Residency, TenantPolicy};
    use tower::ServiceExt;

    #[derive(Debug, Default)]
    struct MemLog(parking_lot::Mutex<Vec<WriteBatch>>);

    impl IngestLog for MemLog {
        fn partitions(&self) -> u32 {
            4
        }

        fn append(&self, records: Vec<LogRecord>) -> AppendFuture<'_> {
            Box::pin(async move {
                let mut batches = self.0.lock();
                for r in records {
                    batches.push(WriteBatch::decode(&r.payload).expect("valid batch"));
                }
                Ok(Vec::new())
            })
        }
    }

    /// Token `<tenant>` writes as tenant `<tenant>`: `fleet` stores in
    /// us-east and eu-central with `country` us → us, de → eu, br → br;
    /// `plain` has no residency label.
    #[derive(Debug)]
    struct Tenants;

    impl TenantResolver for Tenants {
        fn resolve(&self, authorization: Option<&str>, _: Access) -> Result<TenantId, AuthError> {
            let token = strata_schemas::tenant::parse_authorization(authorization.ok_or(AuthError::MissingToken)?)?;
            TenantId::new(token).map_err(|_| AuthError::InvalidToken)
        }

        fn policy(&self, tenant: &TenantId) -> Option<Arc<TenantPolicy>> {
            let mut p = TenantPolicy::new(tenant.clone(), "us-east");
            if tenant.as_str() == "fleet" {
                p.data_regions = vec!["us-east".into(), "eu-central".into()];
                p.residency = Some(fleet_residency());
            }
            Some(Arc::new(p))
        }
    }

    fn fleet_residency() -> Residency {
        let map = [("us", "us"), ("de", "eu"), ("br", "br")];
        Residency {
            label: "country".into(),
            jurisdictions: map.iter().map(|(v, j)| (v.to_string(), j.to_string())).collect(),
        }
    }

    fn directory() -> RegionDirectory {
        let entry = |name: &str, j: &str| RegionEntry {
            name: name.into(),
            jurisdiction: j.into(),
            endpoint: format!("http://{name}.example"),
        };
        let entries = vec![entry("us-east", "us"), entry("eu-central", "eu"), entry("br-south", "br")];
        RegionDirectory::new("us-east", entries).unwrap()
    }

    fn state(log: Arc<MemLog>) -> WriteState {
        WriteState {
            log,
            resolver: Arc::new(Tenants),
            config: Arc::new(IngestConfig { past_grace_period: std::time::Duration::MAX, ..IngestConfig::default() }),
            metrics: Arc::new(IngestMetrics::default()),
            series_cache: Arc::new(SeriesCache::new(1024)),
            regions: Arc::new(directory()),
            rate_limiter: Arc::new(RateLimiter::default()),
            store_view: None,
        }
    }

    async fn write(state: &WriteState, token: &str, body: &str) -> (StatusCode, serde_json::Value) {
        let req = Request::post("/api/v2/write?precision=ms")
            .header("authorization", format!("Token {token}"))
            .body(Body::from(body.to_owned()))
            .unwrap();
        let resp = router(state.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        let json = if bytes.is_empty() { serde_json::Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
        (status, json)
    }

    fn stored(log: &MemLog) -> Vec<String> {
        let mut v: Vec<String> =
            log.0.lock().iter().flat_map(|b| b.series.iter()).map(|s| s.labels.to_string()).collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn a_line_of_another_jurisdiction_is_refused_naming_where_it_goes() {
        let log = Arc::new(MemLog::default());
        let state = state(Arc::clone(&log));
        let body = "m,country=us,device=a v=1 1000\nm,device=b v=2 1000\nm,country=de,device=c v=3,w=4 1000\n\
                    m,country=br,device=d v=5 1000\nm,country=fr,device=e v=6 1000\n";
        let (status, v) = write(&state, "fleet", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!((v["accepted_lines"].as_u64(), v["rejected_lines"].as_u64()), (Some(3), Some(2)), "{v}");
        assert_eq!(v["errors"][0]["line"], 3);
        assert_eq!(
            v["errors"][0]["reason"],
            "label country=\"de\" places this series in jurisdiction eu; this node is region us-east \
             (jurisdiction us): send it to eu-central (eu, http://eu-central.example)"
        );
        assert_eq!(v["errors"][1]["line"], 4);
        assert_eq!(
            v["errors"][1]["reason"],
            "label country=\"br\" places this series in jurisdiction br; this node is region us-east \
             (jurisdiction us): none of the tenant's data regions is in jurisdiction br (its data regions: \
             us-east (us, http://us-east.example), eu-central (eu, http://eu-central.example))"
        );
        assert!(
            v["message"].as_str().unwrap().starts_with(
                "partial write: 2 of 5 lines rejected, the other 3 stored; first error: line 3: label \
                 country=\"de\" places this series in jurisdiction eu"
            ),
            "{v}"
        );
        // Nothing of the refused lines (neither of line 3's fields); the others,
        // including the unpinned value fr and the line without the label.
        assert_eq!(
            stored(&log),
            ["m_v{country=\"fr\", device=\"e\"}", "m_v{country=\"us\", device=\"a\"}", "m_v{device=\"b\"}"]
        );
        let counters = state.metrics.tenant(&TenantId::new("fleet").unwrap());
        assert_eq!(counters.rejected.lock().get("residency"), Some(&2));
        assert_eq!(state.metrics.lines_rejected.load(std::sync::atomic::Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn without_a_residency_label_nothing_changes() {
        let log = Arc::new(MemLog::default());
        let state = state(Arc::clone(&log));
        let (status, v) = write(&state, "plain", "m,country=de v=1 1000\nm,country=br v=2 1000\n").await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{v}");
        assert_eq!(stored(&log).len(), 2);
    }

    /// A node sharing a Kafka log: the tenant's watermark (lowest over
    /// every partition) lags the roll state of the partition another
    /// node rolled. A sample below its own partition's state is refused
    /// (stored here it would never reach cold); the same timestamp in a
    /// partition not rolled that far is stored.
    #[derive(Debug)]
    struct PartitionWatermarks {
        rolled: u32,
    }

    impl StoreView for PartitionWatermarks {
        fn count(&self, _: &TenantId) -> u64 {
            0
        }
        fn contains(&self, _: &TenantId, _: strata_schemas::SeriesId, _: &strata_schemas::Labels) -> bool {
            false
        }
        fn cold_watermark(&self, _: &TenantId) -> Option<i64> {
            Some(1_000)
        }
        fn cold_watermark_in(&self, _: &TenantId, partition: u32) -> Option<i64> {
            Some(if partition == self.rolled { 5_000 } else { 1_000 })
        }
    }

    #[tokio::test]
    async fn a_sample_below_its_partitions_roll_state_is_refused_though_the_tenant_watermark_lags() {
        let tenant = TenantId::new("plain").unwrap();
        let partition = |d: &str| (strata_schemas::device_hash_of(&tenant, d) % 4) as u32;
        let rolled = partition("a");
        let other = (0..).map(|i| format!("o{i}")).find(|d| partition(d) != rolled).unwrap();
        let log = Arc::new(MemLog::default());
        let mut state = state(Arc::clone(&log));
        state.store_view = Some(Arc::new(PartitionWatermarks { rolled }));
        let body = format!("m,device=a v=1 3000\nm,device={other} v=2 3000\nm,device=a v=3 6000\n");
        let (status, v) = write(&state, "plain", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
        assert!(v["message"].as_str().unwrap().contains("older than 5000 ms"), "{v}");
        let stored: Vec<(String, Vec<i64>)> = log
            .0
            .lock()
            .iter()
            .flat_map(|b| b.series.iter())
            .map(|s| (s.labels.to_string(), s.samples.iter().map(|x| x.ts).collect()))
            .collect();
        let mut stored = stored;
        stored.sort();
        let mut want =
            vec![("m_v{device=\"a\"}".to_owned(), vec![6000]), (format!("m_v{{device=\"{other}\"}}"), vec![3000])];
        want.sort();
        assert_eq!(stored, want);
        let counters = state.metrics.tenant(&tenant);
        assert_eq!(counters.rejected.lock().get("older_than_cold_watermark"), Some(&1));
    }

    #[test]
    fn the_check_exists_only_when_a_value_leaves_this_jurisdiction() {
        let d = directory();
        let mut p = TenantPolicy::new(TenantId::new("t").unwrap(), "us-east");
        assert_eq!(ResidencyCheck::of(&p, &d), None, "no residency label");
        p.residency =
            Some(Residency { label: "country".into(), jurisdictions: [("us".to_owned(), "us".to_owned())].into() });
        assert_eq!(ResidencyCheck::of(&p, &d), None, "every value stays in us");
        p.residency = Some(fleet_residency());
        let check = ResidencyCheck::of(&p, &d).unwrap();
        assert_eq!(check.label(), "country");
        assert!(check.check("us").is_ok() && check.check("xx").is_ok());
        assert_eq!(check.check("de").unwrap_err().0, "residency");
        // Another node, in eu, refuses us and br instead.
        let eu = RegionDirectory::new("eu-central", d.entries().to_vec()).unwrap();
        let check = ResidencyCheck::of(&p, &eu).unwrap();
        assert!(check.check("de").is_ok());
        let (_, reason) = check.check("us").unwrap_err();
        assert!(
            reason.ends_with(
                "this node is region eu-central (jurisdiction eu): send it to us-east (us, http://us-east.example)"
            ),
            "{reason}"
        );
    }
}
