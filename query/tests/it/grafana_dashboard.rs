//! Grafana out of the box: seeds IoT telemetry shaped like
//! `../shared/peer-bench/gen_iot.py` (`sensors_<field>{device, farm, kind, region, tenant}`),
//! serves the real [`strata_query::router`] on a real socket, and replays what
//! Grafana's Prometheus datasource does for `grafana/dashboards/iot-telemetry.json`:
//! the buildinfo probe and health check, the template-variable queries, then every
//! panel target with `$__interval`, `$__rate_interval`, `$__range` and the
//! variables substituted the way Grafana substitutes them. Each must succeed and return data.

use serde_json::Value;
use std::sync::Arc;
use strata_query::test_util::MemStore;
use strata_query::{Engine, QueryConfig, QueryState};
use strata_schemas::{Access, AuthError, Labels, Sample, TenantId, TenantResolver};

const TOKEN: &str = "grafana-token";
/// The devices' reporting interval (gen_iot.py's default) and the datasource's `timeInterval`.
const SCRAPE_S: i64 = 30;
/// The dashboard's default time range (`now-6h` to `now`).
const RANGE_S: i64 = 6 * 3600;
/// Grafana's `maxDataPoints` for a full-width panel.
const MAX_DATA_POINTS: i64 = 1000;
const END_S: i64 = 1_700_000_000;
const FIELDS: &[(&str, f64, f64)] = &[
    ("ph", 6.5, 0.8),
    ("moisture", 32.0, 10.0),
    ("temp", 18.0, 8.0),
    ("humidity", 65.0, 20.0),
    ("nitrogen", 40.0, 15.0),
    ("ec", 1.2, 0.4),
    ("battery", 3.7, 0.35),
    ("rssi", -80.0, 15.0),
    ("light", 20000.0, 15000.0),
    ("wind", 6.0, 5.0),
];

#[derive(Debug)]
struct Resolver;

impl TenantResolver for Resolver {
    fn resolve(&self, authorization: Option<&str>, _access: Access) -> Result<TenantId, AuthError> {
        let token = strata_schemas::tenant::parse_authorization(authorization.ok_or(AuthError::MissingToken)?)?;
        if token == TOKEN { Ok(TenantId::new("acme").expect("valid tenant")) } else { Err(AuthError::InvalidToken) }
    }
}

fn seed() -> MemStore {
    let store = MemStore::new();
    let tenant = TenantId::new("acme").expect("valid tenant");
    let points = RANGE_S / SCRAPE_S + 60;
    for d in 0..12usize {
        let (farm, kind, region) = (d / 4, ["soil", "soil", "weather", "drone"][d % 4], ["eu", "us", "br"][d / 4]);
        for (fi, &(field, mean, amp)) in FIELDS.iter().enumerate() {
            let labels = Labels::from_pairs([
                ("__name__".to_owned(), format!("sensors_{field}")),
                ("device".to_owned(), format!("dev-{d:07}")),
                ("farm".to_owned(), format!("farm-{farm:04}")),
                ("kind".to_owned(), kind.to_owned()),
                ("region".to_owned(), region.to_owned()),
                ("tenant".to_owned(), "acme".to_owned()),
            ]);
            let samples: Vec<Sample> = (0..points)
                .map(|i| {
                    let t = END_S - (points - 1 - i) * SCRAPE_S;
                    let phase = (i as f64) / 40.0 + d as f64 * 0.7 + fi as f64;
                    Sample::new(t * 1000, mean + amp * phase.sin())
                })
                .collect();
            store.add(&tenant, labels, &samples);
        }
    }
    store
}

/// Grafana's `roundInterval` (public/app/core/utils/kbn / backend intervalv2).
fn round_interval_ms(ms: i64) -> i64 {
    let table: &[(i64, i64)] = &[
        (15, 10),
        (35, 20),
        (75, 50),
        (150, 100),
        (350, 200),
        (750, 500),
        (1_500, 1_000),
        (3_500, 2_000),
        (7_500, 5_000),
        (12_500, 10_000),
        (17_500, 15_000),
        (25_000, 20_000),
        (45_000, 30_000),
        (90_000, 60_000),
        (210_000, 120_000),
        (450_000, 300_000),
        (750_000, 600_000),
        (1_050_000, 900_000),
        (1_500_000, 1_200_000),
        (2_700_000, 1_800_000),
        (5_400_000, 3_600_000),
        (9_000_000, 7_200_000),
        (16_200_000, 10_800_000),
        (32_400_000, 21_600_000),
        (86_400_000, 43_200_000),
    ];
    table.iter().find(|(limit, _)| ms <= *limit).map_or(86_400_000, |(_, v)| *v)
}

/// What Grafana substitutes for one dashboard state.
struct Vars {
    farm: String,
    device: String,
    interval_s: i64,
    rate_interval_s: i64,
    range_s: i64,
}

impl Vars {
    fn new(farm: String, device: String) -> Self {
        let interval_s = (round_interval_ms(RANGE_S * 1000 / MAX_DATA_POINTS) / 1000).max(SCRAPE_S);
        // $__rate_interval = max($__interval + scrape interval, 4 * scrape interval).
        let rate_interval_s = (interval_s + SCRAPE_S).max(4 * SCRAPE_S);
        Self { farm, device, interval_s, rate_interval_s, range_s: RANGE_S }
    }

    fn apply(&self, expr: &str) -> String {
        expr.replace("$__rate_interval", &format!("{}s", self.rate_interval_s))
            .replace("$__interval", &format!("{}s", self.interval_s))
            .replace("$__range", &format!("{}s", self.range_s))
            .replace("$farm", &self.farm)
            .replace("$device", &self.device)
    }
}

/// Grafana's `prometheusSpecialRegexEscape`: regex metacharacters get a `\\` (an escaped
/// backslash inside the PromQL string), backslashes are doubled twice.
fn special_regex_escape(v: &str) -> String {
    let mut out = String::new();
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\\\\\"),
            '$' | '^' | '*' | '{' | '}' | '[' | ']' | '\'' | '+' | '?' | '.' | '(' | ')' | '|' => {
                out.push_str("\\\\");
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Grafana's `interpolateQueryExpr` for a multi-value variable: `(a|b)`, or one escaped value.
fn multi(values: &[&str]) -> String {
    let escaped: Vec<String> = values.iter().map(|v| special_regex_escape(v)).collect();
    if escaped.len() == 1 { escaped[0].clone() } else { format!("({})", escaped.join("|")) }
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn post(&self, path: &str, form: &[(&str, String)]) -> Value {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .form(form)
            .send()
            .await
            .expect("request");
        let status = resp.status();
        let body: Value = resp.json().await.expect("JSON body");
        assert!(status.is_success(), "{path} {form:?}: HTTP {status}: {body}");
        assert_eq!(body["status"], "success", "{path} {form:?}: {body}");
        body
    }

    async fn get(&self, path_and_query: &str) -> Value {
        let resp = self
            .http
            .get(format!("{}{path_and_query}", self.base))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .send()
            .await
            .expect("request");
        let status = resp.status();
        let body: Value = resp.json().await.expect("JSON body");
        assert!(status.is_success(), "{path_and_query}: HTTP {status}: {body}");
        assert_eq!(body["status"], "success", "{path_and_query}: {body}");
        body
    }
}

fn dashboard() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../grafana/dashboards/iot-telemetry.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("read dashboard")).expect("dashboard JSON")
}

/// `label_values(<selector>, <label>)` → (selector, label).
fn label_values_query(q: &str) -> (String, String) {
    let inner = q.strip_prefix("label_values(").and_then(|r| r.strip_suffix(')')).expect("label_values query");
    let (sel, label) = inner.rsplit_once(',').expect("selector and label");
    (sel.trim().to_owned(), label.trim().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_target_returns_data() {
    let engine = Arc::new(Engine::new(Arc::new(seed()), QueryConfig::default()));
    let app = strata_query::router(QueryState::new(engine, Arc::new(Resolver)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    let c = Client { http: reqwest::Client::new(), base: format!("http://{addr}") };
    let (start, end) = (END_S - RANGE_S, END_S);

    // Datasource setup: version probe (features are enabled from >= 2.x) and the health check.
    let info = c.get("/api/v1/status/buildinfo").await;
    let major: u32 = info["data"]["version"].as_str().unwrap().split('.').next().unwrap().parse().unwrap();
    assert!(major >= 3, "{info}");
    let health = c.post("/api/v1/query", &[("query", "1+1".into()), ("time", end.to_string())]).await;
    assert_eq!(health["data"]["result"][1], "2");
    // Metric browser.
    let names = c.get(&format!("/api/v1/label/__name__/values?start={start}&end={end}")).await;
    assert!(names["data"].as_array().unwrap().iter().any(|n| n == "sensors_temp"), "{names}");
    c.post("/api/v1/labels", &[("match[]", "sensors_temp".into()), ("start", start.to_string())]).await;
    c.get("/api/v1/metadata").await;
    let series = c.post("/api/v1/series", &[("match[]", "sensors_ph{farm=\"farm-0001\"}".into())]).await;
    assert_eq!(series["data"].as_array().unwrap().len(), 4, "{series}");

    let dash = dashboard();
    // Template variables, resolved in order like Grafana (device depends on farm).
    let vars = dash["templating"]["list"].as_array().unwrap();
    let mut farm_all = String::new();
    let mut farms: Vec<String> = Vec::new();
    let mut devices: Vec<String> = Vec::new();
    for v in vars {
        let q = v["query"]["query"].as_str().unwrap();
        let (selector, label) = label_values_query(q);
        let selector = selector.replace("$farm", &farm_all);
        let body = c
            .get(&format!("/api/v1/label/{label}/values?match[]={}&start={start}&end={end}", urlencode(&selector)))
            .await;
        let values: Vec<String> = body["data"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().into()).collect();
        assert!(!values.is_empty(), "variable {} ({q}) has no values", v["name"]);
        match v["name"].as_str().unwrap() {
            "farm" => {
                farm_all = v["allValue"].as_str().unwrap().to_owned();
                farms = values;
            }
            "device" => devices = values,
            other => panic!("unexpected variable {other}"),
        }
    }
    assert_eq!(farms.len(), 3);
    assert_eq!(devices.len(), 12);

    // Two dashboard states: everything selected (allValue) and a narrowed selection.
    let states =
        [Vars::new(".*".into(), ".*".into()), Vars::new(multi(&[&farms[0], &farms[2]]), multi(&[&devices[0]]))];
    let mut checked = 0;
    for vars in &states {
        for panel in dash["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = vars.apply(target["expr"].as_str().unwrap());
                assert!(!expr.contains('$'), "unsubstituted variable in {expr}");
                let body = if target["instant"].as_bool() == Some(true) {
                    c.post("/api/v1/query", &[("query", expr.clone()), ("time", end.to_string())]).await
                } else {
                    // Grafana aligns the range to the step.
                    let step = vars.interval_s;
                    let (s, e) = (start / step * step, end / step * step);
                    c.post(
                        "/api/v1/query_range",
                        &[
                            ("query", expr.clone()),
                            ("start", s.to_string()),
                            ("end", e.to_string()),
                            ("step", step.to_string()),
                        ],
                    )
                    .await
                };
                let result = &body["data"]["result"];
                let non_empty = match body["data"]["resultType"].as_str() {
                    Some("scalar") => true,
                    _ => result.as_array().is_some_and(|r| !r.is_empty()),
                };
                assert!(non_empty, "panel {:?} target {expr}: no data: {body}", panel["title"]);
                checked += 1;
            }
        }
    }
    assert!(checked >= 40, "only {checked} targets");
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
