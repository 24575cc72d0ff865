//! The seed corpus, made by the real encoders (and, for the disk formats,
//! by the real stores: a hot store flushed, a local log appended to, an
//! edge queue appended to and acknowledged). The committed files under
//! `corpus/` are its output; regenerate them after a format change with
//!
//! ```sh
//! cargo test -p strata-fuzz-targets --test it write_seed_corpus -- --ignored
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use prost::Message;
use strata_edge::queue::{FsyncPolicy, OverflowPolicy, Queue, QueueConfig};
use strata_hot_store::{HotStore, HotStoreConfig};
use strata_ingest::convert::{Converter, LabelLimits};
use strata_ingest::remote_write::proto::{Label, Sample, TimeSeries};
use strata_ingest::remote_write::{WriteRequest, encode_request};
use strata_ingest::{IngestLog, LocalLog, LogConfig, LogRecord};
use strata_schemas::time::Precision;
use strata_schemas::{DiscardSink, TenantId, WriteBatch};

const LINE_PROTOCOL: [&str; 6] = [
    "weather,location=us\\ midwest,station=KX-12 temp=82.5,ok=true,count=12i,note=\"calm, \\\"dry\\\"\" 1465839830100400200\n",
    "soil,device=s-001,farm=north moisture=0.31,temp=18.25 1700000000000000000\nsoil,device=s-002,farm=north moisture=0.29 1700000000000000000\n",
    "# comment\n\nmeter,device=m1 value=1.5e3,kwh=12u,on=T\r\nmeter,device=m2 value=-0.25\n",
    "cpu,host=a,region=eu usage_user=12.5,usage_system=3 1700000000000000000\ncpu,host=a usage_user=bad\nmem used=1i,free=-2i\n",
    "a\\,b\\ c=d,e\\=f=g\\ h f\\,=1,\"q\"=\"s\\\\\" -1\nx y=.5 0\nz w=1e-300,v=-0 9223372036854775807\n",
    "drone,device=d7,kind=quad battery=87.5,alt=120.25,armed=false 1700000000123456789\ndrone,device=d7 battery=87 1700000001123456789\n",
];

const OTLP_JSON: [&str; 4] = [
    r#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"tank"}},{"key":"host.name","value":{"stringValue":"gw-1"}}]},"scopeMetrics":[{"metrics":[{"name":"tank.level","unit":"1","gauge":{"dataPoints":[{"timeUnixNano":"1700000000000000000","asDouble":0.75,"attributes":[{"key":"tank","value":{"stringValue":"t1"}}]}]}},{"name":"pumped","unit":"l","sum":{"aggregationTemporality":2,"isMonotonic":true,"dataPoints":[{"timeUnixNano":"1700000000000000000","asInt":"12"}]}}]}]}]}"#,
    r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"http.server.duration","unit":"ms","histogram":{"aggregationTemporality":2,"dataPoints":[{"timeUnixNano":"1700000000000000000","count":"6","sum":21.5,"bucketCounts":["1","2","3"],"explicitBounds":[1,5],"attributes":[{"key":"http.route","value":{"stringValue":"/api"}},{"key":"ok","value":{"boolValue":true}}]}]}}]}]}]}"#,
    r#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"meter"}},{"key":"rack","value":{"intValue":"7"}}]},"scopeMetrics":[{"metrics":[{"name":"rpc.latency","unit":"s","summary":{"dataPoints":[{"timeUnixNano":"1700000000000000000","count":"4","sum":2.5,"quantileValues":[{"quantile":0.5,"value":0.4},{"quantile":0.99,"value":1.2}]}]}},{"name":"delta.count","sum":{"aggregationTemporality":1,"dataPoints":[{"timeUnixNano":"1700000000000000000","asInt":"3"}]}}]}]}]}"#,
    r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"temp","unit":"Cel","gauge":{"dataPoints":[{"timeUnixNano":1700000000000000000,"asDouble":"NaN","attributes":[{"key":"arr","value":{"arrayValue":{"values":[{"doubleValue":1.5},{"stringValue":"x"}]}}},{"key":"kv","value":{"kvlistValue":{"values":[{"key":"a","value":{"bytesValue":"AQI="}}]}}}]}]}},{"name":"exp","exponentialHistogram":{"dataPoints":[{}]}}]}]}]}"#,
];

const PROMQL: [&str; 12] = [
    "http_requests_total",
    "sum by (job) (rate(http_requests_total[5m]))",
    "histogram_quantile(0.9, sum by (le) (rate(req_duration_bucket[10m])))",
    "temperature{room=~\"k.*\"} > 21 and on (device) up",
    "topk(2, max_over_time(temperature[10m] offset 1m))",
    "avg_over_time((temperature - 20)[10m:1m]) * -1",
    "label_replace(up, \"x\", \"$1\", \"job\", \"(.*)\") or vector(1)",
    "count_values(\"v\", temperature) / ignoring(v) group_left count(up)",
    "predict_linear(http_requests_total[10m] @ 600, 3600)",
    "absent(nonexistent{a=\"b\"}) + scalar(sum(up))",
    "quantile_over_time(0.5, http_requests_total{job!=\"db\"}[15m]) unless http_requests_total{instance=\"b\"}",
    "clamp(sort_desc(deriv(temperature[5m])), -1, 1) ^ 2 % 3",
];

fn tenant() -> TenantId {
    TenantId::new("fuzz").unwrap()
}

fn batches(body: &str) -> Vec<WriteBatch> {
    let tenant = tenant();
    let converter = Converter {
        tenant: &tenant,
        precision: Precision::Nanoseconds,
        now_ms: 1_700_000_000_000,
        device_label: "device",
        partitions: 1,
        cache: None,
        limits: LabelLimits::default(),
    };
    converter.convert(body.as_bytes()).batches.into_iter().map(|(_, b)| b).collect()
}

fn remote_write_request(n: usize) -> WriteRequest {
    let timeseries = (0..n)
        .map(|i| TimeSeries {
            labels: vec![
                Label::new("__name__", "soil_moisture"),
                Label::new("device", &format!("s-{i:03}")),
                Label::new("farm", if i % 2 == 0 { "north" } else { "south" }),
            ],
            samples: (0..3)
                .map(|k| Sample { value: 0.25 + k as f64, timestamp: 1_700_000_000_000 + k * 15_000 })
                .collect(),
            ..TimeSeries::default()
        })
        .collect();
    WriteRequest { timeseries, metadata: Vec::new() }
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// A hot store with two flushes: its manifest and its segment files.
fn hot_store_files() -> (Vec<u8>, Vec<Vec<u8>>) {
    let dir = tempfile::tempdir().unwrap();
    let store = HotStore::open(dir.path(), HotStoreConfig::default()).unwrap();
    for (offset, body) in LINE_PROTOCOL.iter().enumerate() {
        for b in batches(body) {
            store.apply(0, offset as u64, &b).unwrap();
        }
        if offset % 3 == 2 {
            store.flush().unwrap();
        }
    }
    drop(store);
    let mut segments = Vec::new();
    let mut manifest = Vec::new();
    for e in walk(dir.path()) {
        let name = e.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".seg") {
            segments.push(std::fs::read(&e).unwrap());
        } else if name == "MANIFEST" {
            manifest = std::fs::read(&e).unwrap();
        }
    }
    assert!(!segments.is_empty() && !manifest.is_empty(), "the hot store wrote no segment or manifest");
    (manifest, segments)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out.sort();
    out
}

/// A local log's partition-0 segment after three appends.
fn log_segment() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { partitions: 1, ..LogConfig::default() };
    let log = LocalLog::open(dir.path(), &config, |_| 0, std::sync::Arc::new(DiscardSink)).unwrap();
    let records = LINE_PROTOCOL[..3].iter().flat_map(|b| batches(b)).map(|b| LogRecord::new(0, b.to_bytes())).collect();
    let fut = log.append(records);
    futures_lite_block_on(fut).unwrap();
    drop(log);
    let segs: Vec<PathBuf> =
        walk(dir.path()).into_iter().filter(|p| p.extension().is_some_and(|e| e == "seg")).collect();
    std::fs::read(&segs[0]).unwrap()
}

fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
    struct W(std::thread::Thread);
    impl std::task::Wake for W {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(W(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// An edge queue after four appends and acknowledgements of 1 and (out of order) 3:
/// its cursor and its segment.
fn queue_files() -> (Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let config = QueueConfig {
        max_bytes: 1 << 24,
        segment_bytes: 4096,
        fsync: FsyncPolicy::Never,
        overflow: OverflowPolicy::Refuse,
    };
    let (mut q, _) = Queue::open(dir.path(), config).unwrap();
    for body in &LINE_PROTOCOL[..4] {
        q.append(body.as_bytes(), 1_700_000_000_000).unwrap();
    }
    q.ack(1).unwrap();
    q.ack_one(3).unwrap();
    drop(q);
    let files = walk(dir.path());
    let seg = files.iter().find(|p| p.extension().is_some_and(|e| e == "seg")).unwrap();
    let cursor = files.iter().find(|p| p.file_name().is_some_and(|n| n == "cursor")).unwrap();
    (std::fs::read(cursor).unwrap(), std::fs::read(seg).unwrap())
}

/// An edge-queue target input: flags, then the cursor (with flag 2), then the segment.
fn queue_input(flags: u8, cursor: &[u8], segment: &[u8]) -> Vec<u8> {
    let mut out = vec![flags];
    if flags & 2 != 0 {
        out.extend_from_slice(&(cursor.len() as u16).to_le_bytes());
        out.extend_from_slice(cursor);
    }
    out.extend_from_slice(segment);
    out
}

fn all_seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut s: Vec<(&'static str, String, Vec<u8>)> = Vec::new();
    for (i, body) in LINE_PROTOCOL.iter().enumerate() {
        s.push(("line_protocol", format!("body-{i}.lp"), body.as_bytes().to_vec()));
    }
    for n in [1, 3] {
        let req = remote_write_request(n);
        s.push(("remote_write", format!("request-{n}-series.snappy"), encode_request(&req).unwrap()));
        s.push(("remote_write", format!("request-{n}-series.pb"), req.encode_to_vec()));
    }
    for (i, doc) in OTLP_JSON.iter().enumerate() {
        s.push(("otlp_json", format!("request-{i}.json"), doc.as_bytes().to_vec()));
        let req = strata_ingest::otlp::json::decode(doc.as_bytes()).unwrap();
        s.push(("otlp_protobuf", format!("request-{i}.pb"), req.encode_to_vec()));
    }
    let body = LINE_PROTOCOL[1].as_bytes();
    s.push(("body_decoding", "line-protocol.gz".into(), gzip(body)));
    s.push(("body_decoding", "line-protocol.zst".into(), zstd::bulk::compress(body, 3).unwrap()));
    s.push(("body_decoding", "line-protocol.snappy".into(), snap::raw::Encoder::new().compress_vec(body).unwrap()));
    s.push(("body_decoding", "zeros-2MiB.gz".into(), gzip(&vec![0; 2 << 20])));
    s.push(("body_decoding", "two-members.gz".into(), [gzip(b"a v=1\n"), gzip(b"b v=2\n")].concat()));
    for (i, body) in LINE_PROTOCOL.iter().enumerate().take(4) {
        for b in batches(body) {
            s.push(("write_batch", format!("batch-{i}.v3"), b.to_bytes()));
        }
    }
    let (manifest, segments) = hot_store_files();
    s.push(("hot_manifest", "MANIFEST".into(), manifest));
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hot-store/tests/fixtures");
    for v in ["MANIFEST-v4", "MANIFEST-v5"] {
        s.push(("hot_manifest", v.into(), std::fs::read(fixtures.join(v)).unwrap()));
    }
    for (i, seg) in segments.into_iter().enumerate() {
        s.push(("hot_segment", format!("segment-{i}.seg"), seg));
    }
    let log = log_segment();
    s.push(("ingest_log", "segment.raw".into(), [&[0u8][..], &log].concat()));
    s.push(("ingest_log", "segment.repair".into(), [&[1u8][..], &log].concat()));
    let half = (log.len() / 2) as u16;
    s.push(("ingest_log", "two-files.repair".into(), [&[3u8][..], &half.to_le_bytes(), &log, &log].concat()));
    let (cursor, segment) = queue_files();
    s.push(("edge_queue", "segment.raw".into(), queue_input(0, &cursor, &segment)));
    s.push(("edge_queue", "cursor-and-segment.raw".into(), queue_input(2, &cursor, &segment)));
    s.push(("edge_queue", "cursor-and-segment.repair".into(), queue_input(3, &cursor, &segment)));
    for (i, q) in PROMQL.iter().enumerate() {
        s.push(("promql", format!("query-{i:02}.promql"), q.as_bytes().to_vec()));
    }
    s
}

/// Rewrites `corpus/` from the encoders (run by hand, see the module doc).
#[test]
#[ignore = "regenerates the committed seed corpus"]
fn write_seed_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let seeds = all_seeds();
    for (target, _) in strata_fuzz_targets::TARGETS {
        let dir = root.join(target);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
    }
    for (target, name, bytes) in seeds {
        std::fs::write(root.join(target).join(name), bytes).unwrap();
    }
}
