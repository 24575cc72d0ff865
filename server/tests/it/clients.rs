//! The clients people already run, unchanged, against the real binary:
//! InfluxData's Python client (`influxdb-client`: ping, health, ready and
//! its batching write API), the `/query` calls Telegraf's influxdb output
//! makes at startup, and vmalert (Debian's `victoria-metrics` package)
//! evaluating a recording rule and an alerting rule with Strata as its
//! data source and remote-write target. The programs come from
//! `scripts/install-test-deps.sh`; these tests fail, not skip, without them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

fn python_with_influxdb_client() -> &'static str {
    let ok = Command::new("python3")
        .args(["-c", "import influxdb_client"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "python3 with influxdb-client is missing: run `bash scripts/install-test-deps.sh`");
    "python3"
}

fn vmalert() -> PathBuf {
    let path = PathBuf::from(std::env::var_os("STRATA_VMALERT_BIN").unwrap_or_else(|| "/usr/bin/vmalert".into()));
    assert!(path.is_file(), "vmalert is missing at {}: run `bash scripts/install-test-deps.sh`", path.display());
    path
}

async fn scalar(c: &reqwest::Client, s: &Server, q: &str) -> Option<f64> {
    let data = query(c, s, q, now_ms()).await;
    data["result"][0]["value"][1].as_str().and_then(|x| x.parse().ok())
}

const INFLUX_SCRIPT: &str = r#"
import sys, time
from influxdb_client import InfluxDBClient, Point, WriteOptions
url = sys.argv[1]
with InfluxDBClient(url=url, token="any", org="farm") as client:
    assert client.ping() is True, "ping"
    health = client.health()
    assert health.status == "pass", health
    ready = client.ready()
    assert ready.status == "ready", ready
    now = time.time_ns() - 60 * 10**9
    errors = []
    options = WriteOptions(batch_size=100, flush_interval=200)
    with client.write_api(write_options=options, error_callback=lambda conf, data, e: errors.append(repr(e))) as w:
        for i in range(500):
            w.write(bucket="farm", record=Point("soil").tag("device", "d%d" % (i % 5)).field("moisture", float(i)).time(now + i * 10**6))
    if errors:
        sys.exit("write errors: %s" % errors)
print("ok")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn influxdb_python_client_pings_checks_health_and_writes_in_batches() {
    let python = python_with_influxdb_client();
    let dir = data_dir();
    let s = Server::start(dir.path(), &[]);
    let out = Command::new(python).args(["-c", INFLUX_SCRIPT, &s.base]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let c = client();
    assert_eq!(scalar(&c, &s, "sum(count_over_time(soil_moisture[5m]))").await, Some(500.0));
    assert_eq!(scalar(&c, &s, "sum(sum_over_time(soil_moisture[5m]))").await, Some(124_750.0));
    assert_eq!(scalar(&c, &s, "count(count_over_time(soil_moisture[5m]))").await, Some(5.0));
}

/// Telegraf's influxdb output sends `CREATE DATABASE` at startup (and some
/// InfluxDB 1.x clients `/ping` first): answered harmlessly; other InfluxQL
/// is refused with a message that says what to use instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegraf_startup_calls_are_answered_and_other_influxql_refused() {
    let dir = data_dir();
    let s = Server::start(dir.path(), &[]);
    let c = client();
    let r = c.get(s.url("/ping")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert!(r.headers().get("x-influxdb-version").is_some());
    let r = c.post(s.url("/query")).form(&[("q", "CREATE DATABASE \"telegraf\"")]).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap(), serde_json::json!({"results": [{"statement_id": 0}]}));
    let r = c.get(s.url("/query")).query(&[("q", "SHOW DATABASES")]).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("PromQL at /api/v1/query"), "{v}");
    for path in ["/api/v1/rules", "/api/v1/alerts"] {
        let v: serde_json::Value = c.get(s.url(path)).send().await.unwrap().json().await.unwrap();
        assert_eq!(v["status"], "success", "{path}: {v}");
    }
}

fn write_rules(dir: &Path) -> PathBuf {
    let path = dir.join("rules.yml");
    std::fs::write(
        &path,
        "groups:\n  - name: farm\n    interval: 1s\n    rules:\n      - record: farm:soil_temp:avg\n        expr: avg by (farm) (soil_temp)\n      - alert: HotSoil\n        expr: max by (farm) (soil_temp) > 30\n        labels:\n          severity: page\n",
    )
    .unwrap();
    path
}

/// vmalert evaluates a recording rule and an alerting rule against Strata
/// (`/api/v1/query`) and writes the results back (`/api/v1/write`): the
/// recorded series is queryable, the alert fires (in vmalert's API, and as
/// `ALERTS` in Strata).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vmalert_records_and_alerts_through_strata() {
    let bin = vmalert();
    let dir = data_dir();
    let s = Server::start(dir.path(), &[]);
    let c = client();
    let now = now_ms();
    let mut lines = String::new();
    for (farm, temps) in [("north", [18.0, 20.0]), ("south", [31.0, 35.0])] {
        for (i, t) in temps.iter().enumerate() {
            lines.push_str(&format!("soil,farm={farm},device=d{i} temp={t} {now}\n"));
        }
    }
    let (status, body) = write(&c, &s, "/api/v2/write?precision=ms", lines.into_bytes(), false).await;
    assert_eq!(status, 204, "{body}");
    let rules = write_rules(dir.path());
    let port = free_port();
    let notified = alertmanager_stand_in();
    let mut child = Command::new(bin)
        .arg(format!("-rule={}", rules.display()))
        .arg(format!("-datasource.url={}", s.base))
        .arg(format!("-remoteWrite.url={}", s.base))
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg(format!("-notifier.url={}", notified.0))
        .args(["-evaluationInterval=1s", "-remoteWrite.flushInterval=200ms"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut recorded = None;
    let mut firing = None;
    while Instant::now() < deadline && (recorded.is_none() || firing.is_none()) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if recorded.is_none() {
            recorded = scalar(&c, &s, "farm:soil_temp:avg{farm=\"south\"}").await;
        }
        if firing.is_none() {
            firing = scalar(&c, &s, "count(ALERTS{alertname=\"HotSoil\",alertstate=\"firing\"})").await;
        }
    }
    let alerts: serde_json::Value = match c.get(format!("http://127.0.0.1:{port}/api/v1/alerts")).send().await {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(e) => serde_json::json!({ "error": e.to_string() }),
    };
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(recorded, Some(33.0), "the recording rule's series in Strata; vmalert log:\n{log}");
    assert_eq!(firing, Some(1.0), "ALERTS for the south farm only; vmalert log:\n{log}");
    let listed = alerts["data"]["alerts"].as_array().cloned().unwrap_or_default();
    assert!(
        listed.iter().any(|a| a["name"] == "HotSoil" && a["state"] == "firing" && a["labels"]["farm"] == "south"),
        "vmalert's own API: {alerts}"
    );
    let sent = notified.1.lock().unwrap().clone();
    assert!(sent.iter().any(|b| b.contains("HotSoil") && b.contains("south")), "alerts sent to the notifier: {sent:?}");
}

/// An Alertmanager stand-in: answers every request 200 and keeps the bodies
/// (vmalert POSTs firing alerts to `<url>/api/v2/alerts`).
fn alertmanager_stand_in() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = std::sync::Arc::clone(&bodies);
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let mut reader = BufReader::new(&stream);
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            sink.lock().unwrap().push(String::from_utf8_lossy(&body).into_owned());
            let mut stream = &stream;
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (url, bodies)
}

const OTEL_SCRIPT: &str = r#"
import sys
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.metrics import Observation

exporter = OTLPMetricExporter(endpoint=sys.argv[1] + "/otlp/v1/metrics")
reader = PeriodicExportingMetricReader(exporter, export_interval_millis=60000)
resource = Resource.create({"service.name": "farm-gw", "service.instance.id": "gw-1", "host.name": "farm7"})
provider = MeterProvider(resource=resource, metric_readers=[reader])
meter = provider.get_meter("strata-test")
readings = meter.create_counter("soil.readings", unit="{reading}")
readings.add(5, {"farm": "f1"})
readings.add(5, {"farm": "f1"})
meter.create_observable_gauge("soil.temperature", callbacks=[lambda options: [Observation(21.5, {"farm": "f1"})]], unit="Cel")
latency = meter.create_histogram("probe.latency", unit="ms")
for v in (5, 50, 500):
    latency.record(v, {"farm": "f1"})
assert provider.force_flush(10000), "flush"
provider.shutdown()
print("ok")
"#;

fn python_with_otel() -> &'static str {
    let ok = Command::new("python3")
        .args(["-c", "import opentelemetry.exporter.otlp.proto.http.metric_exporter"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python3 with opentelemetry-sdk and its OTLP/HTTP exporter is missing: run `bash scripts/install-test-deps.sh`"
    );
    "python3"
}

/// The OpenTelemetry Python SDK's OTLP/HTTP exporter, unchanged: a counter,
/// an observable gauge and a histogram read back with PromQL under
/// Prometheus 3's names, `job`/`instance` from the resource and
/// `target_info` with the rest of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opentelemetry_sdk_metrics_are_queryable_under_prometheus_names() {
    let python = python_with_otel();
    let dir = data_dir();
    let s = Server::start(dir.path(), &[]);
    let out = Command::new(python).args(["-c", OTEL_SCRIPT, &s.base]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let c = client();
    let sel = "{job=\"farm-gw\",instance=\"gw-1\",farm=\"f1\"}";
    assert_eq!(scalar(&c, &s, &format!("soil_readings_total{sel}")).await, Some(10.0));
    assert_eq!(scalar(&c, &s, &format!("soil_temperature_celsius{sel}")).await, Some(21.5));
    let le = |b: &str| format!("probe_latency_milliseconds_bucket{{job=\"farm-gw\",farm=\"f1\",le=\"{b}\"}}");
    assert_eq!(scalar(&c, &s, &le("+Inf")).await, Some(3.0));
    assert_eq!(scalar(&c, &s, &le("10")).await, Some(1.0));
    assert_eq!(scalar(&c, &s, "probe_latency_milliseconds_sum{job=\"farm-gw\"}").await, Some(555.0));
    assert_eq!(scalar(&c, &s, "probe_latency_milliseconds_count{job=\"farm-gw\"}").await, Some(3.0));
    assert_eq!(scalar(&c, &s, "target_info{job=\"farm-gw\",instance=\"gw-1\",host_name=\"farm7\"}").await, Some(1.0));
}

/// OTLP/JSON, and what is refused: a delta sum is reported in the partial
/// success (the cumulative gauge beside it is stored), an unknown content
/// type is 415, a body that does not decode is 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_json_partial_success_and_refusals() {
    let dir = data_dir();
    let s = Server::start(dir.path(), &[]);
    let c = client();
    let ns = (now_ms() * 1_000_000).to_string();
    let body = serde_json::json!({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "tank"}}]},
        "scopeMetrics": [{"metrics": [
            {"name": "tank.level", "unit": "1", "gauge": {"dataPoints": [
                {"timeUnixNano": ns, "asDouble": 0.75, "attributes": [{"key": "tank", "value": {"stringValue": "t1"}}]}]}},
            {"name": "pumped", "unit": "l", "sum": {"aggregationTemporality": 1, "isMonotonic": true,
                "dataPoints": [{"timeUnixNano": ns, "asInt": "12"}]}}
        ]}]
    }]});
    let r = c.post(s.url("/otlp/v1/metrics")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["partialSuccess"]["rejectedDataPoints"], "1", "{v}");
    assert!(v["partialSuccess"]["errorMessage"].as_str().unwrap().contains("delta temporality"), "{v}");
    assert_eq!(scalar(&c, &s, "tank_level_ratio{job=\"tank\",tank=\"t1\"}").await, Some(0.75));
    let r = c.post(s.url("/otlp/v1/metrics")).header("Content-Type", "text/plain").body("x").send().await.unwrap();
    assert_eq!(r.status(), 415);
    let r = c
        .post(s.url("/otlp/v1/metrics"))
        .header("Content-Type", "application/x-protobuf")
        .body(vec![0xff, 0xff, 0xff])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}
