use super::proto::{Exemplar, Histogram, Label, Sample as PbSample, TimeSeries};
use super::*;
use crate::IngestConfig;
use crate::error::Error;
use crate::log::{AppendFuture, IngestLog, LogRecord};
use crate::series_cache::SeriesCache;
use axum::http::Request;
use parking_lot::Mutex;
use proptest::prelude::*;
use prost::Message;
use strata_schemas::labels::STALE_NAN_BITS;
use strata_schemas::tenant::parse_authorization;
use strata_schemas::{Access, AuthError, TenantLimits, TenantPolicy, TenantResolver, WriteBatch};
use tower::ServiceExt;

// ---------------------------------------------------------------- helpers

fn tenant() -> TenantId {
    TenantId::new("acme").unwrap()
}

fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels: labels.iter().map(|(n, v)| Label::new(n, v)).collect(),
        samples: samples.iter().map(|&(timestamp, value)| PbSample { value, timestamp }).collect(),
        exemplars: Vec::new(),
        histograms: Vec::new(),
    }
}

fn request(timeseries: Vec<TimeSeries>) -> WriteRequest {
    WriteRequest { timeseries, metadata: Vec::new() }
}

#[test]
fn samples_outside_the_window_are_dropped_and_their_series_listed() {
    let t = tenant();
    let bounds = WriteBounds { oldest_ms: 100, newest_ms: 200, ..WriteBounds::NONE };
    let req = request(vec![
        series(&[("__name__", "a")], &[(99, 1.0), (100, 2.0), (200, 3.0), (201, 4.0)]),
        series(&[("__name__", "b")], &[(150, 5.0)]),
        series(&[("__name__", "c")], &[(i64::MIN, 6.0), (i64::MAX, 7.0)]),
    ]);
    let c = SeriesConverter {
        tenant: &t,
        device_label: "device",
        partitions: 4,
        cache: None,
        limits: LabelLimits::default(),
    }
    .convert_within(&req, &bounds);
    assert_eq!((c.accepted_series, c.samples), (2, 3));
    let got: Vec<(Option<usize>, &str)> = c.rejected.iter().map(|e| (e.index, e.code)).collect();
    assert_eq!(got, [(Some(0), "sample_too_old"), (Some(2), "sample_too_old")]);
    assert!(
        c.rejected[0].reason.starts_with("2 of its 4 sample(s) not stored; the first: timestamp 99 ms"),
        "{:?}",
        c.rejected
    );
    assert_eq!(c.rejected[1].series, "c{}");
    let stored: usize = c.batches.iter().flat_map(|(_, b)| &b.series).map(|s| s.samples.len()).sum();
    assert_eq!(stored, 3);
}

fn convert(req: &WriteRequest) -> RemoteWriteConversion {
    let t = tenant();
    SeriesConverter { tenant: &t, device_label: "device", partitions: 4, cache: None, limits: LabelLimits::default() }
        .convert(req)
}

/// `(rendered labels, samples as (ts, value bits))`, sorted by labels.
fn stored(batches: &[(u32, WriteBatch)]) -> Vec<(String, Vec<(i64, u64)>)> {
    let mut v: Vec<_> = batches
        .iter()
        .flat_map(|(_, b)| b.series.iter())
        .map(|s| (s.labels.to_string(), s.samples.iter().map(|x| (x.ts, x.value.to_bits())).collect()))
        .collect();
    v.sort();
    v
}

fn reasons(c: &RemoteWriteConversion) -> Vec<(usize, &str, &str)> {
    c.rejected.iter().map(|e| (e.index.unwrap_or(usize::MAX), e.series.as_str(), e.reason.as_str())).collect()
}

// ---------------------------------------------------------------- decoding

#[test]
fn decodes_what_it_encodes() {
    let mut req = request(vec![
        series(&[("__name__", "up"), ("job", "node")], &[(1_700_000_000_000, 1.0), (1_700_000_015_000, 0.0)]),
        series(&[("__name__", "temp"), ("device", "d1")], &[(-5, -273.15)]),
    ]);
    req.metadata.push(proto::MetricMetadata {
        r#type: 2,
        metric_family_name: "temp".into(),
        help: "Temperature.".into(),
        unit: "celsius".into(),
    });
    let body = encode_request(&req).unwrap();
    assert_eq!(decode_request(&body, 1 << 20).unwrap(), req);
}

#[test]
fn label_bytes_are_wire_compatible_with_protobuf_strings() {
    // Hand-encoded `Label { name: "a", value: "é" }` as protoc would for `string` fields.
    let wire = [0x0a, 0x01, b'a', 0x12, 0x02, 0xc3, 0xa9];
    let label = Label::decode(&wire[..]).unwrap();
    assert_eq!(label, Label::new("a", "é"));
    assert_eq!(label.encode_to_vec(), wire);
}

#[test]
fn rejects_framed_snappy_garbage_and_truncated_blocks() {
    use std::io::Write;
    let raw = request(vec![series(&[("__name__", "up")], &[(1, 1.0)])]).encode_to_vec();
    let mut framed = snap::write::FrameEncoder::new(Vec::new());
    framed.write_all(&raw).unwrap();
    let framed = framed.into_inner().unwrap();
    let block = encode_request(&request(vec![series(&[("__name__", "up")], &[(1, 1.0)])])).unwrap();
    for (what, body) in [
        ("framed", framed.as_slice()),
        ("garbage", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff".as_slice()),
        ("truncated", &block[..block.len() - 3]),
        ("empty", b"".as_slice()),
    ] {
        let err = decode_request(body, 1 << 20).unwrap_err();
        assert!(matches!(err, DecodeError::Snappy { .. }), "{what}: {err:?}");
        assert!(err.to_string().starts_with("invalid snappy block"), "{what}: {err}");
    }
}

#[test]
fn rejects_snappy_that_is_not_a_write_request() {
    let body = snap::raw::Encoder::new().compress_vec(b"\x0a\x05ab").unwrap();
    let err = decode_request(&body, 1 << 20).unwrap_err();
    assert!(matches!(err, DecodeError::Protobuf { .. }), "{err:?}");
    assert!(err.to_string().starts_with("invalid protobuf WriteRequest: "), "{err}");
}

#[test]
fn refuses_oversized_decompressed_bodies_before_decompressing() {
    let body = snap::raw::Encoder::new().compress_vec(&vec![0u8; 10_000]).unwrap();
    assert!(body.len() < 1_000);
    let err = proto::decompress(&body, 9_999).unwrap_err();
    assert!(matches!(err, DecodeError::TooLarge { size: 10_000, limit: 9_999 }), "{err:?}");
    assert_eq!(err.to_string(), "decompressed request body of 10000 bytes exceeds max_body_bytes (9999 bytes)");
    assert_eq!(proto::decompress(&body, 10_000).unwrap().len(), 10_000);
    // A header announcing 4 GiB is refused without allocating it.
    let lying = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
    assert!(matches!(proto::decompress(&lying, 1 << 20), Err(DecodeError::TooLarge { .. })));
}

// ---------------------------------------------------------------- validation

#[test]
fn rejects_invalid_series_with_exact_reasons_and_keeps_the_others() {
    let req = request(vec![
        series(&[("__name__", "ok"), ("a", "1")], &[(1, 1.0)]),
        series(&[], &[(1, 1.0)]),
        series(&[("job", "x")], &[(1, 1.0)]),
        series(&[("__name__", ""), ("job", "x")], &[(1, 1.0)]),
        series(&[("__name__", "m"), ("a", "1"), ("a", "2")], &[(1, 1.0)]),
        series(&[("__name__", "m"), ("1a", "1")], &[(1, 1.0)]),
        series(&[("__name__", "m"), ("a-b", "1")], &[(1, 1.0)]),
        series(&[("__name__", "m"), ("", "1")], &[(1, 1.0)]),
    ]);
    let c = convert(&req);
    assert_eq!(
        reasons(&c),
        vec![
            (1, "{}", "series has no labels"),
            (2, r#"{job="x"}"#, "missing metric name (label __name__)"),
            (3, r#"{job="x"}"#, r#"empty metric name (label __name__ is "")"#),
            (4, r#"m{a="1", a="2"}"#, r#"duplicate label name "a""#),
            (5, r#"m{1a="1"}"#, r#"invalid label name "1a" (must match [a-zA-Z_][a-zA-Z0-9_]*)"#),
            (6, r#"m{a-b="1"}"#, r#"invalid label name "a-b" (must match [a-zA-Z_][a-zA-Z0-9_]*)"#),
            (7, r#"m{="1"}"#, r#"invalid label name "" (must match [a-zA-Z_][a-zA-Z0-9_]*)"#),
        ]
    );
    assert_eq!(c.accepted_series, 1);
    assert_eq!(stored(&c.batches), vec![(r#"ok{a="1"}"#.to_owned(), vec![(1, 1.0f64.to_bits())])]);
}

#[test]
fn enforces_the_tenants_label_limits_with_line_protocol_messages() {
    let t = tenant();
    let limits = LabelLimits { max_labels_per_series: 3, max_label_name_length: 4, max_label_value_length: 5 };
    let req = request(vec![
        series(&[("__name__", "m"), ("a", "1"), ("b", "2"), ("c", "")], &[(1, 1.0)]),
        series(&[("__name__", "m"), ("a", "1"), ("b", "2"), ("c", "3")], &[(1, 1.0)]),
        series(&[("__name__", "metric")], &[(1, 1.0)]),
        series(&[("__name__", "m"), ("abcde", "1")], &[(1, 1.0)]),
        series(&[("__name__", "m"), ("a", "123456")], &[(1, 1.0)]),
    ]);
    let c = SeriesConverter { tenant: &t, device_label: "device", partitions: 4, cache: None, limits }.convert(&req);
    assert_eq!(
        reasons(&c),
        vec![
            (
                1,
                r#"m{a="1", b="2", c="3"}"#,
                "limit max_labels_per_series exceeded: series m has 4 labels, the limit is 3"
            ),
            (2, "metric{}", "limit max_label_value_length exceeded: metric name is 6 bytes, the limit is 5"),
            (
                3,
                r#"m{abcde="1"}"#,
                r#"limit max_label_name_length exceeded: label name "abcde"… is 5 bytes, the limit is 4"#
            ),
            (
                4,
                r#"m{a="123456"}"#,
                r#"limit max_label_value_length exceeded: value of label "a" is 6 bytes, the limit is 5"#
            ),
        ]
    );
    let codes: Vec<&str> = c.rejected.iter().map(|e| e.code).collect();
    assert_eq!(
        codes,
        ["max_labels_per_series", "max_label_value_length", "max_label_name_length", "max_label_value_length"]
    );
    assert_eq!(c.accepted_series, 1, "an empty value does not count against max_labels_per_series");
}

#[test]
fn rejects_control_characters_and_cuts_echoed_names() {
    let long = format!("x{}", "y".repeat(70_000));
    let req = request(vec![
        series(&[("__name__", "m\0"), ("a", "1")], &[(1, 1.0)]),
        series(&[("__name__", "m"), ("a", "x\u{1b}[2J")], &[(1, 1.0)]),
        series(&[("__name__", "m"), ("a", "tab\tok")], &[(1, 1.0)]),
        series(&[("__name__", "m"), (&long, "1"), (&long, "2")], &[(1, 1.0)]),
    ]);
    let c = convert(&req);
    let r = reasons(&c);
    assert_eq!(
        r[0].2,
        "control character U+0000 in the value of label \"__name__\": control characters are not allowed (tab excepted in values other than __name__)"
    );
    assert!(r[1].2.starts_with("control character U+001B in the value of label \"a\""), "{:?}", r[1]);
    assert_eq!(r[2].0, 3, "a tab in a value is kept: {r:?}");
    assert!(r[2].2.len() < 200 && r[2].2.contains("(70001 bytes)"), "{}", r[2].2);
    assert!(c.rejected.iter().all(|e| e.series.len() <= 600), "rendered series stay bounded");
    assert_eq!(c.accepted_series, 1);
}

#[test]
fn rejects_labels_that_are_not_utf8() {
    let mut bad_name = series(&[("__name__", "m")], &[(1, 1.0)]);
    bad_name.labels.push(Label { name: bytes::Bytes::from_static(b"a\xff"), value: "v".into() });
    let mut bad_value = series(&[("__name__", "m")], &[(1, 1.0)]);
    bad_value.labels.push(Label { name: "a".into(), value: bytes::Bytes::from_static(b"\xc3") });
    let c = convert(&request(vec![bad_name, bad_value]));
    assert_eq!(
        reasons(&c),
        vec![
            (0, "m{a\u{FFFD}=\"v\"}", "label name \"a\u{FFFD}\" is not valid UTF-8"),
            (1, "m{a=\"\u{FFFD}\"}", r#"value of label "a" is not valid UTF-8"#),
        ]
    );
}

#[test]
fn sorts_unsorted_labels_and_drops_empty_values() {
    let unsorted = series(&[("zone", "z"), ("__name__", "m"), ("empty", ""), ("a", "1")], &[(1, 1.0)]);
    let sorted = series(&[("__name__", "m"), ("a", "1"), ("zone", "z")], &[(2, 2.0)]);
    let c = convert(&request(vec![unsorted, sorted]));
    assert!(c.rejected.is_empty(), "{:?}", c.rejected);
    assert_eq!(
        stored(&c.batches),
        vec![(r#"m{a="1", zone="z"}"#.to_owned(), vec![(1, 1.0f64.to_bits()), (2, 2.0f64.to_bits())])],
        "both entries are the same series"
    );
}

#[test]
fn renders_rejected_series_within_a_bound() {
    let long = "x".repeat(2_000);
    let c = convert(&request(vec![series(&[("__name__", "m"), ("a", &long), ("a", "1")], &[(1, 1.0)])]));
    let rendered = &c.rejected[0].series;
    assert!(rendered.starts_with("m{a=\"xxx"), "{rendered}");
    assert!(rendered.len() <= 512 + '…'.len_utf8() && rendered.ends_with('…'), "{}", rendered.len());
}

#[test]
fn ids_device_hashes_and_partitions_match_the_schemas_definitions() {
    let t = tenant();
    let req = request(vec![
        series(&[("__name__", "temp"), ("device", "d1"), ("farm", "f")], &[(1, 1.0)]),
        series(&[("__name__", "up"), ("job", "j")], &[(1, 1.0)]),
    ]);
    let c = convert(&req);
    for (p, batch) in &c.batches {
        assert_eq!(batch.tenant, t);
        for s in &batch.series {
            assert_eq!(s.id, strata_schemas::series_id(&t, &s.labels));
            assert_eq!(s.device_hash, strata_schemas::device_hash(&t, &s.labels, "device", s.id));
            assert_eq!(u64::from(*p), s.device_hash % 4);
        }
    }
    assert_eq!(stored(&c.batches).len(), 2);
}

#[test]
fn cached_conversion_equals_uncached_and_shares_labels() {
    let t = tenant();
    let cache = SeriesCache::new(1024);
    let req = request(vec![series(&[("__name__", "m"), ("a", "1"), ("b", "")], &[(1, 1.0)])]);
    let cached = |req: &WriteRequest| {
        let limits = LabelLimits::default();
        SeriesConverter { tenant: &t, device_label: "device", partitions: 4, cache: Some(&cache), limits }.convert(req)
    };
    let first = cached(&req);
    let second = cached(&req);
    assert_eq!(stored(&first.batches), stored(&convert(&req).batches));
    assert!(first.batches[0].1.series[0].labels.ptr_eq(&second.batches[0].1.series[0].labels));
}

#[test]
fn keeps_staleness_markers_and_other_nans_bit_exact() {
    let odd_nan = f64::from_bits(0x7ff8_dead_beef_0001);
    let stale = f64::from_bits(STALE_NAN_BITS);
    let req = request(vec![series(&[("__name__", "up")], &[(1, stale), (2, odd_nan), (3, f64::NAN)])]);
    let decoded = decode_request(&encode_request(&req).unwrap(), 1 << 20).unwrap();
    let c = convert(&decoded);
    let (_, batch) = &c.batches[0];
    let through_log = WriteBatch::decode(&batch.to_bytes()).unwrap();
    let bits: Vec<u64> = through_log.series[0].samples.iter().map(|s| s.value.to_bits()).collect();
    assert_eq!(bits, vec![STALE_NAN_BITS, 0x7ff8_dead_beef_0001, f64::NAN.to_bits()]);
    assert!(through_log.series[0].samples[0].is_stale_marker());
}

#[test]
fn counts_histograms_and_exemplars_of_accepted_series_only() {
    let mut with_extras = series(&[("__name__", "h")], &[]);
    with_extras.histograms = vec![Histogram {}, Histogram {}];
    with_extras.exemplars = vec![Exemplar { labels: vec![Label::new("trace_id", "t")], value: 1.0, timestamp: 1 }];
    let mut rejected = series(&[("job", "x")], &[]);
    rejected.histograms = vec![Histogram {}];
    let c = convert(&request(vec![with_extras, rejected]));
    assert_eq!((c.accepted_series, c.samples, c.histograms_ignored, c.exemplars_ignored), (1, 0, 2, 1));
    assert!(c.batches.is_empty());
}

// ---------------------------------------------------------------- property

fn label_name() -> impl Strategy<Value = String> {
    "[a-zA-Z_][a-zA-Z0-9_]{0,8}".prop_filter("not __name__", |n| n != "__name__")
}

fn valid_series() -> impl Strategy<Value = TimeSeries> {
    let labels = prop::collection::btree_map(label_name(), "\\PC{0,6}", 0..5);
    let samples = prop::collection::vec((any::<i64>(), any::<u64>()), 0..6);
    ("[a-zA-Z_:][a-zA-Z0-9_:]{0,10}", labels, samples, any::<bool>()).prop_map(|(name, labels, samples, shuffle)| {
        let mut labels: Vec<Label> = labels.iter().map(|(n, v)| Label::new(n, v)).collect();
        labels.push(Label::new("__name__", &name));
        if shuffle {
            labels.reverse();
        }
        let samples = samples.into_iter().map(|(ts, bits)| PbSample { timestamp: ts, value: f64::from_bits(bits) });
        TimeSeries { labels, samples: samples.collect(), exemplars: Vec::new(), histograms: Vec::new() }
    })
}

/// The model: every series' canonical labels and its samples, merged by label set.
fn model(req: &WriteRequest) -> Vec<(String, Vec<(i64, u64)>)> {
    let mut out: std::collections::BTreeMap<String, Vec<(i64, u64)>> = std::collections::BTreeMap::new();
    for s in &req.timeseries {
        let labels = strata_schemas::Labels::from_pairs(
            s.labels.iter().map(|l| (String::from_utf8_lossy(&l.name), String::from_utf8_lossy(&l.value))),
        );
        out.entry(labels.to_string()).or_default().extend(s.samples.iter().map(|x| (x.timestamp, x.value.to_bits())));
    }
    out.into_iter().filter(|(_, v)| !v.is_empty()).collect()
}

proptest! {
    #[test]
    fn any_valid_request_round_trips_into_the_same_series_and_samples(
        timeseries in prop::collection::vec(valid_series(), 0..8)
    ) {
        let req = request(timeseries);
        let decoded = decode_request(&encode_request(&req).unwrap(), 1 << 24).unwrap();
        // Compare the encodings: NaN values make `==` on the messages false.
        prop_assert_eq!(decoded.encode_to_vec(), req.encode_to_vec());
        let c = convert(&decoded);
        prop_assert!(c.rejected.is_empty(), "{:?}", c.rejected);
        prop_assert_eq!(c.accepted_series, req.timeseries.len());
        prop_assert_eq!(c.samples, req.timeseries.iter().map(|s| s.samples.len()).sum::<usize>());
        prop_assert_eq!(stored(&c.batches), model(&req));
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(body in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(req) = decode_request(&body, 1 << 16) {
            let _ = convert(&req);
        }
    }
}

// ---------------------------------------------------------------- HTTP

/// An in-memory log that keeps every batch (decoded from its bytes) or fails.
#[derive(Debug, Default)]
struct MemLog {
    batches: Mutex<Vec<(u32, WriteBatch)>>,
    fail: bool,
}

impl IngestLog for MemLog {
    fn partitions(&self) -> u32 {
        4
    }

    fn append(&self, records: Vec<LogRecord>) -> AppendFuture<'_> {
        Box::pin(async move {
            if self.fail {
                return Err(Error::Closed);
            }
            let mut batches = self.batches.lock();
            for r in records {
                batches.push((r.partition, WriteBatch::decode(&r.payload).expect("valid batch")));
            }
            Ok(Vec::new())
        })
    }
}

/// `Bearer writer-token` writes as `acme` (no policy: default limits);
/// `Bearer reader-token` may only read; `Bearer tiny-token` writes as `tiny`
/// (small limits); `Bearer far-token` writes as `far`, homed in region `br`;
/// `Bearer fleet-token` writes as `fleet`, stored here and in `us-east` (a
/// region this node's directory does not know), with the residency label
/// `country` (de → eu, us → us).
#[derive(Debug)]
struct Tokens;

/// The region of the test node.
const REGION: &str = "eu";

impl TenantResolver for Tokens {
    fn resolve(&self, authorization: Option<&str>, access: Access) -> Result<TenantId, AuthError> {
        match parse_authorization(authorization.ok_or(AuthError::MissingToken)?)? {
            "writer-token" => Ok(tenant()),
            "reader-token" if access == Access::Write => Err(AuthError::Forbidden { tenant: tenant(), access }),
            "tiny-token" => Ok(TenantId::new("tiny").unwrap()),
            "far-token" => Ok(TenantId::new("far").unwrap()),
            "fleet-token" => Ok(TenantId::new("fleet").unwrap()),
            _ => Err(AuthError::InvalidToken),
        }
    }

    fn policy(&self, tenant: &TenantId) -> Option<Arc<TenantPolicy>> {
        match tenant.as_str() {
            "tiny" => {
                let mut p = TenantPolicy::new(tenant.clone(), REGION);
                p.limits = TenantLimits {
                    max_labels_per_series: 2,
                    ingestion_rate: 1.0,
                    ingestion_burst: 3,
                    max_request_bytes: 2_048,
                    ..TenantLimits::default()
                };
                Some(Arc::new(p))
            }
            "far" => Some(Arc::new(TenantPolicy::new(tenant.clone(), "br"))),
            "fleet" => {
                let mut p = TenantPolicy::new(tenant.clone(), REGION);
                p.data_regions = vec![REGION.into(), "us-east".into()];
                p.residency = Some(country_residency());
                Some(Arc::new(p))
            }
            _ => None,
        }
    }
}

struct Harness {
    log: Arc<MemLog>,
    metrics: Arc<RemoteWriteMetrics>,
    ingest_metrics: Arc<IngestMetrics>,
    app: Router,
}

fn harness(fail: bool, max_body_bytes: usize) -> Harness {
    let log = Arc::new(MemLog { fail, ..MemLog::default() });
    let metrics = Arc::new(RemoteWriteMetrics::default());
    let ingest_metrics = Arc::new(IngestMetrics::default());
    let state = WriteState {
        log: Arc::clone(&log) as Arc<dyn IngestLog>,
        resolver: Arc::new(Tokens),
        // The requests here carry fixed timestamps from 1970: no past bound (the window has its own test).
        config: Arc::new(IngestConfig {
            max_body_bytes,
            max_reported_errors: 2,
            past_grace_period: std::time::Duration::MAX,
            ..IngestConfig::default()
        }),
        metrics: Arc::clone(&ingest_metrics),
        series_cache: Arc::new(SeriesCache::new(1024)),
        regions: Arc::new(strata_schemas::RegionDirectory::single(REGION, REGION, "http://127.0.0.1:9470")),
        rate_limiter: Arc::new(crate::limits::RateLimiter::default()),
        store_view: None,
    };
    Harness { log, app: router_with_metrics(state, Arc::clone(&metrics)), metrics, ingest_metrics }
}

const PROTOBUF: &str = "application/x-protobuf";

async fn post(h: &Harness, headers: &[(&str, &str)], body: Vec<u8>) -> (StatusCode, HeaderMap, serde_json::Value) {
    let mut req = Request::post("/api/v1/write");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = h.app.clone().oneshot(req.body(Body::from(body)).unwrap()).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let json = if bytes.is_empty() { serde_json::Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
    (parts.status, parts.headers, json)
}

fn rw_headers() -> Vec<(&'static str, &'static str)> {
    vec![
        ("authorization", "Bearer writer-token"),
        ("content-encoding", "snappy"),
        ("content-type", PROTOBUF),
        ("x-prometheus-remote-write-version", "0.1.0"),
    ]
}

fn body_of(series: Vec<TimeSeries>) -> Vec<u8> {
    encode_request(&request(series)).unwrap()
}

#[tokio::test]
async fn stores_a_valid_request_and_answers_204() {
    let h = harness(false, 1 << 20);
    let body = body_of(vec![series(&[("__name__", "up"), ("job", "p")], &[(1_000, 1.0), (2_000, 0.0)])]);
    let (status, _, json) = post(&h, &rw_headers(), body).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{json}");
    assert_eq!(
        stored(&h.log.batches.lock()),
        vec![(r#"up{job="p"}"#.to_owned(), vec![(1_000, 1.0f64.to_bits()), (2_000, 0.0f64.to_bits())])]
    );
    let mut text = String::new();
    h.metrics.render(&mut text);
    assert!(text.contains("strata_remote_write_samples_total 2\n"), "{text}");
    assert!(text.contains("# TYPE strata_remote_write_series_rejected_total counter\n"), "{text}");
}

#[tokio::test]
async fn reports_rejected_series_with_400_and_stores_the_rest() {
    let h = harness(false, 1 << 20);
    let body = body_of(vec![
        series(&[("__name__", "good")], &[(1, 1.0)]),
        series(&[("job", "a")], &[(1, 1.0)]),
        series(&[("__name__", "m"), ("x", "1"), ("x", "2")], &[(1, 1.0)]),
        series(&[("__name__", "")], &[(1, 1.0)]),
    ]);
    let (status, _, json) = post(&h, &rw_headers(), body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        json,
        serde_json::json!({
            "code": "invalid",
            "message": "partial write: 3 of 4 series rejected, the other 1 stored; first error: series 1 {job=\"a\"}: \
                        missing metric name (label __name__) (only the first 2 errors are listed)",
            "accepted_series": 1,
            "rejected_series": 3,
            "histograms_ignored": 0,
            "exemplars_ignored": 0,
            "errors": [
                {"index": 1, "series": "{job=\"a\"}", "reason": "missing metric name (label __name__)"},
                {"index": 2, "series": "m{x=\"1\", x=\"2\"}", "reason": "duplicate label name \"x\""},
            ],
        })
    );
    assert_eq!(stored(&h.log.batches.lock()).len(), 1);
    assert_eq!(h.metrics.series_rejected.load(std::sync::atomic::Ordering::Relaxed), 3);
}

#[tokio::test]
async fn answers_200_with_a_warning_when_histograms_or_exemplars_were_ignored() {
    let h = harness(false, 1 << 20);
    let mut s = series(&[("__name__", "m")], &[(1, 1.0)]);
    s.histograms = vec![Histogram {}];
    s.exemplars = vec![Exemplar::default(), Exemplar::default()];
    let (status, headers, json) = post(&h, &rw_headers(), body_of(vec![s])).await;
    let expected = "1 native histogram sample(s) and 2 exemplar(s) not stored: Strata stores float samples only; \
                    the float samples were stored";
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[WARNING_HEADER], expected);
    assert_eq!(json["code"], "ignored");
    assert_eq!(json["message"], expected);
    assert_eq!((json["histograms_ignored"].as_u64(), json["exemplars_ignored"].as_u64()), (Some(1), Some(2)));
    assert_eq!(stored(&h.log.batches.lock()).len(), 1);
}

#[tokio::test]
async fn refuses_bad_tokens() {
    let h = harness(false, 1 << 20);
    let body = body_of(vec![series(&[("__name__", "up")], &[(1, 1.0)])]);
    for (auth, expected) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some("Bearer nope"), StatusCode::UNAUTHORIZED),
        (Some("Basic abc"), StatusCode::UNAUTHORIZED),
        (Some("Bearer reader-token"), StatusCode::FORBIDDEN),
    ] {
        let mut headers: Vec<_> = rw_headers().into_iter().filter(|(k, _)| *k != "authorization").collect();
        headers.extend(auth.map(|a| ("authorization", a)));
        let (status, _, json) = post(&h, &headers, body.clone()).await;
        assert_eq!(status, expected, "{auth:?}: {json}");
        assert_eq!(json["code"], "unauthorized");
    }
    assert!(h.log.batches.lock().is_empty());
    assert_eq!(h.metrics.requests_refused.load(std::sync::atomic::Ordering::Relaxed), 4);
}

#[tokio::test]
async fn refuses_other_encodings_and_content_types_clearly() {
    let h = harness(false, 1 << 20);
    let body = body_of(vec![series(&[("__name__", "up")], &[(1, 1.0)])]);
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[], "missing Content-Encoding: remote write bodies must be snappy-compressed (Content-Encoding: snappy)"),
        (
            &[("content-encoding", "gzip")],
            "unsupported Content-Encoding \"gzip\": remote write bodies must be snappy-compressed (Content-Encoding: snappy)",
        ),
        (
            &[("content-encoding", "snappy"), ("content-type", "application/json")],
            "unsupported Content-Type \"application/json\": remote write 1.0 sends application/x-protobuf",
        ),
        (
            &[
                ("content-encoding", "snappy"),
                ("content-type", "application/x-protobuf;proto=io.prometheus.write.v2.Request"),
            ],
            "unsupported protobuf message \"io.prometheus.write.v2.Request\": Strata accepts remote write 1.0 \
             (prometheus.WriteRequest) only; set protobuf_message: prometheus.WriteRequest in the remote_write config",
        ),
    ];
    for (extra, message) in cases {
        let mut headers = vec![("authorization", "Bearer writer-token")];
        headers.extend_from_slice(extra);
        let (status, _, json) = post(&h, &headers, body.clone()).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{extra:?}");
        assert_eq!(json["message"], message);
    }
    // Without Content-Type, and with the explicit 1.0 message name, the body is accepted.
    let mut headers = vec![("authorization", "Bearer writer-token"), ("content-encoding", "Snappy")];
    assert_eq!(post(&h, &headers, body.clone()).await.0, StatusCode::NO_CONTENT);
    headers.push(("content-type", "application/x-protobuf; proto=prometheus.WriteRequest"));
    assert_eq!(post(&h, &headers, body).await.0, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn refuses_undecodable_bodies_with_400() {
    let h = harness(false, 1 << 20);
    let (status, _, json) = post(&h, &rw_headers(), b"\x05not snappy at all".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(json["message"].as_str().unwrap().starts_with("invalid snappy block"), "{json}");
    let not_proto = snap::raw::Encoder::new().compress_vec(b"\xff\xff\xff").unwrap();
    let (status, _, json) = post(&h, &rw_headers(), not_proto).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(json["message"].as_str().unwrap().starts_with("invalid protobuf WriteRequest"), "{json}");
}

#[tokio::test]
async fn enforces_the_body_limit_on_compressed_and_decompressed_size() {
    let h = harness(false, 2_048);
    let noise: Vec<u8> = (0..4_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let (status, _, json) = post(&h, &rw_headers(), noise).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let message = json["message"].as_str().unwrap();
    assert!(message.contains("request body") && !message.contains("decompressed"), "{message}");
    assert!(message.contains("2048 bytes"), "{message}");
    let big_label = "x".repeat(5_000);
    let compressible = body_of(vec![series(&[("__name__", "m"), ("a", &big_label)], &[(1, 1.0)])]);
    assert!(compressible.len() < 2_048);
    let (status, _, json) = post(&h, &rw_headers(), compressible).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let message = json["message"].as_str().unwrap();
    assert!(message.contains("decompressed request body") && message.contains("2048 bytes"), "{message}");
    assert!(h.log.batches.lock().is_empty());
}

#[tokio::test]
async fn log_failures_answer_503_with_retry_after() {
    let h = harness(true, 1 << 20);
    let body = body_of(vec![series(&[("__name__", "up")], &[(1, 1.0)])]);
    let (status, headers, json) = post(&h, &rw_headers(), body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{json}");
    assert_eq!(headers[header::RETRY_AFTER], "1");
    assert_eq!(h.metrics.samples_accepted.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[test]
fn the_shared_metrics_are_one_instance() {
    assert!(Arc::ptr_eq(&RemoteWriteMetrics::shared(), &RemoteWriteMetrics::shared()));
}

fn with_token(token: &'static str) -> Vec<(&'static str, &'static str)> {
    let mut headers: Vec<_> = rw_headers().into_iter().filter(|(k, _)| *k != "authorization").collect();
    headers.push(("authorization", token));
    headers
}

#[tokio::test]
async fn applies_the_tenants_residency_size_label_and_rate_limits() {
    let h = harness(false, 1 << 20);
    let one = body_of(vec![series(&[("__name__", "up")], &[(1, 1.0)])]);

    let (status, _, json) = post(&h, &with_token("Bearer far-token"), one.clone()).await;
    assert_eq!((status, &json["code"]), (StatusCode::FORBIDDEN, &serde_json::json!("wrong region")), "{json}");
    assert_eq!(
        json["message"],
        "tenant \"far\" does not store data in region \"eu\" (jurisdiction eu): send its writes to one of its data \
         regions: br (nothing was stored)"
    );

    let big = body_of(vec![series(&[("__name__", "m"), ("a", &"x".repeat(3_000))], &[(1, 1.0)])]);
    let (status, _, json) = post(&h, &with_token("Bearer tiny-token"), big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "the tenant's max_request_bytes applies: {json}");

    let labels = body_of(vec![
        series(&[("__name__", "m"), ("a", "1"), ("b", "2")], &[(1, 1.0)]),
        series(&[("__name__", "m"), ("a", "1")], &[(1, 1.0)]),
    ]);
    let (status, _, json) = post(&h, &with_token("Bearer tiny-token"), labels).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(
        json["errors"][0]["reason"],
        "limit max_labels_per_series exceeded: series m has 3 labels, the limit is 2"
    );
    let tiny = h.ingest_metrics.tenant(&TenantId::new("tiny").unwrap());
    assert_eq!(tiny.rejected.lock().get("max_labels_per_series"), Some(&1));
    assert_eq!(tiny.samples_accepted.load(std::sync::atomic::Ordering::Relaxed), 1);

    let four = body_of(vec![series(&[("__name__", "up")], &[(1, 1.0), (2, 1.0), (3, 1.0), (4, 1.0)])]);
    let (status, _, json) = post(&h, &with_token("Bearer tiny-token"), four).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "4 samples exceed a burst of 3: {json}");
    assert_eq!(stored(&h.log.batches.lock()).len(), 1, "only the one valid series of the label test was stored");
}

// ---------------------------------------------------------------- residency

fn country_residency() -> strata_schemas::Residency {
    strata_schemas::Residency {
        label: "country".into(),
        jurisdictions: [("de", "eu"), ("us", "us")].iter().map(|(v, j)| (v.to_string(), j.to_string())).collect(),
    }
}

#[test]
fn a_series_of_another_jurisdiction_is_refused_naming_the_regions_that_take_it() {
    use crate::convert::ResidencyCheck;
    use strata_schemas::{RegionDirectory, RegionEntry};
    let entry = |name: &str, j: &str| RegionEntry {
        name: name.into(),
        jurisdiction: j.into(),
        endpoint: format!("http://{name}.example"),
    };
    let regions = RegionDirectory::new("us-east", vec![entry("us-east", "us"), entry("eu-central", "eu")]).unwrap();
    let mut policy = TenantPolicy::new(tenant(), "us-east");
    policy.data_regions = vec!["us-east".into(), "eu-central".into()];
    policy.residency = Some(country_residency());
    let check = ResidencyCheck::of(&policy, &regions).unwrap();
    let req = request(vec![
        series(&[("__name__", "up"), ("country", "us")], &[(1, 1.0)]),
        series(&[("__name__", "up"), ("country", "de")], &[(1, 1.0), (2, 1.0)]),
        series(&[("__name__", "up")], &[(1, 1.0)]),
    ]);
    let t = tenant();
    let converter = SeriesConverter {
        tenant: &t,
        device_label: "device",
        partitions: 4,
        cache: None,
        limits: LabelLimits::default(),
    };
    let c = converter.convert_checked(&req, &WriteBounds::NONE, Some(&check));
    assert_eq!((c.accepted_series, c.samples), (2, 2));
    assert_eq!(
        c.rejected,
        [SeriesError {
            code: "residency",
            index: Some(1),
            series: "up{country=\"de\"}".into(),
            reason: "label country=\"de\" places this series in jurisdiction eu; this node is region us-east \
                     (jurisdiction us): send it to eu-central (eu, http://eu-central.example)"
                .into(),
        }]
    );
    assert_eq!(stored(&c.batches).iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(), ["up{country=\"us\"}", "up{}"]);
    // No check: every series is stored, as before.
    assert_eq!(converter.convert_checked(&req, &WriteBounds::NONE, None).accepted_series, 3);
}

#[tokio::test]
async fn residency_refusals_use_the_per_series_answer_and_are_counted() {
    let h = harness(false, 1 << 20);
    let body = body_of(vec![
        series(&[("__name__", "up"), ("country", "de")], &[(1, 1.0)]),
        series(&[("__name__", "up"), ("country", "us")], &[(1, 1.0)]),
    ]);
    let (status, _, json) = post(&h, &with_token("Bearer fleet-token"), body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!((json["accepted_series"].as_u64(), json["rejected_series"].as_u64()), (Some(1), Some(1)), "{json}");
    assert_eq!(json["errors"][0]["index"], 1);
    assert_eq!(json["errors"][0]["series"], "up{country=\"us\"}");
    assert_eq!(
        json["errors"][0]["reason"],
        "label country=\"us\" places this series in jurisdiction us; this node is region eu (jurisdiction eu): none \
         of the tenant's data regions is in jurisdiction us (its data regions: eu (eu, http://127.0.0.1:9470), us-east)"
    );
    assert_eq!(stored(&h.log.batches.lock()), [("up{country=\"de\"}".to_owned(), vec![(1, 1f64.to_bits())])]);
    let fleet = h.ingest_metrics.tenant(&TenantId::new("fleet").unwrap());
    assert_eq!(fleet.rejected.lock().get("residency"), Some(&1));
}
