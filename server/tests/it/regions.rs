//! Sovereign regions end to end: five `strata` processes on loopback
//! (`us-east`, `us-west` in `us`; `eu-central`, `eu-west` in `eu`;
//! `br-south` in `br`), every inter-region connection through a recording
//! TCP proxy owned by the test. One tenant writes farms in all three
//! jurisdictions, with a canary (a device id and a value found nowhere else)
//! in `eu-central`; policy `us: raw`, `eu: aggregates`, `br: none`. The test
//! checks the answers of every query path and that neither the canary's
//! device id nor its value is in any byte the proxies carried out of `eu`;
//! then stops `us-east` (writes fail over to `us-west`, queries warn) and
//! restarts it (answers whole again, nothing counted twice).

use crate::harness::{Server, client, now_ms};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CANARY_DEVICE: &str = "d-canary-7731";
const CANARY_VALUE: &str = "417.90561";
pub(crate) const ADMIN: &str = "region-test-admin-token";

pub(crate) struct Region {
    pub(crate) name: &'static str,
    pub(crate) jurisdiction: &'static str,
    pub(crate) port: u16,
    pub(crate) proxy_port: u16,
}

pub(crate) fn credential(region: &str) -> String {
    format!("credential-of-{region}-0123456789")
}

pub(crate) use crate::harness::free_port;

/// One proxied connection: the bytes each way.
#[derive(Default)]
struct Conn {
    target: String,
    request: Vec<u8>,
    response: Vec<u8>,
}

/// A TCP proxy in front of one region; records every connection.
fn proxy(listen: u16, target: u16, name: &'static str, log: Arc<Mutex<Vec<Arc<Mutex<Conn>>>>>) {
    let listener = TcpListener::bind(("127.0.0.1", listen)).unwrap();
    std::thread::spawn(move || {
        for inbound in listener.incoming() {
            let Ok(inbound) = inbound else { continue };
            let Ok(outbound) = TcpStream::connect(("127.0.0.1", target)) else {
                drop(inbound);
                continue;
            };
            let conn = Arc::new(Mutex::new(Conn { target: name.to_owned(), ..Conn::default() }));
            log.lock().unwrap().push(Arc::clone(&conn));
            let pipe = |mut from: TcpStream, mut to: TcpStream, conn: Arc<Mutex<Conn>>, up: bool| {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    loop {
                        let n = match from.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        {
                            let mut c = conn.lock().unwrap();
                            if up {
                                c.request.extend_from_slice(&buf[..n])
                            } else {
                                c.response.extend_from_slice(&buf[..n])
                            }
                        }
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            };
            pipe(inbound.try_clone().unwrap(), outbound.try_clone().unwrap(), Arc::clone(&conn), true);
            pipe(outbound, inbound, conn, false);
        }
    });
}

pub(crate) fn config(me: &Region, all: &[Region]) -> String {
    let mut out = format!(
        "region = \"{}\"\n[federation]\njurisdiction = \"{}\"\ncredential = \"{}\"\ntimeout = \"3s\"\n",
        me.name,
        me.jurisdiction,
        credential(me.name)
    );
    for r in all {
        // Every other region is reached through its proxy.
        let port = if r.name == me.name { r.port } else { r.proxy_port };
        let sha = strata::regions::credential_sha256(&credential(r.name));
        out.push_str(&format!(
            "[[federation.regions]]\nname = \"{}\"\njurisdiction = \"{}\"\nendpoint = \"http://127.0.0.1:{port}\"\ncredential_sha256 = \"{sha}\"\n",
            r.name, r.jurisdiction
        ));
    }
    out
}

pub(crate) fn start(r: &Region, all: &[Region], dir: &Path) -> Server {
    let file = dir.join(format!("{}.toml", r.name));
    std::fs::write(&file, config(r, all)).unwrap();
    let data = dir.join(r.name);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.args(["serve", "--config"])
        .arg(&file)
        .args(["--http-addr", &format!("127.0.0.1:{}", r.port), "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "info")
        .env("STRATA_ADMIN__TOKEN", ADMIN)
        .env_remove("STRATA_REGION")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    Server::spawn(cmd, format!("http://127.0.0.1:{}", r.port))
}

pub(crate) async fn admin_post(
    c: &reqwest::Client,
    s: &Server,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let r = c.post(s.url(path)).bearer_auth(ADMIN).json(&body).send().await.unwrap();
    let status = r.status();
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {v}");
    v
}

pub(crate) async fn get_json(
    c: &reqwest::Client,
    s: &Server,
    path: &str,
    token: &str,
    params: &[(&str, String)],
) -> (u16, serde_json::Value) {
    let r = c.get(s.url(path)).bearer_auth(token).query(params).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

pub(crate) fn value_of(v: &serde_json::Value) -> f64 {
    let result = v["data"]["result"].as_array().unwrap_or_else(|| panic!("no result: {v}"));
    assert_eq!(result.len(), 1, "{v}");
    result[0]["value"][1].as_str().unwrap().parse().unwrap()
}

pub(crate) fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Lines of the fleet in one region: `farms` farms of `devices` devices.
fn fleet(prefix: &str, farms: usize, devices: usize, t_ms: i64, base: f64) -> (String, f64, usize) {
    let mut body = String::new();
    let (mut sum, mut n) = (0.0, 0);
    for f in 0..farms {
        for d in 0..devices {
            let v = base + (f * 10 + d) as f64 * 0.5;
            body.push_str(&format!(
                "soil,farm=f-{prefix}-{f},device=d-{prefix}-{f}-{d} moisture={v} {}\n",
                t_ms * 1_000_000
            ));
            sum += v;
            n += 1;
        }
    }
    (body, sum, n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_regions_answer_as_one_and_no_canary_leaves_eu() {
    let all = [("us-east", "us"), ("us-west", "us"), ("eu-central", "eu"), ("eu-west", "eu"), ("br-south", "br")]
        .map(|(name, jurisdiction)| Region { name, jurisdiction, port: free_port(), proxy_port: free_port() });
    let conns: Arc<Mutex<Vec<Arc<Mutex<Conn>>>>> = Arc::default();
    for r in &all {
        proxy(r.proxy_port, r.port, r.name, Arc::clone(&conns));
    }
    let dir = crate::harness::data_dir();
    let mut servers: Vec<Option<Server>> = all.iter().map(|r| Some(start(r, &all, dir.path()))).collect();
    let c = client();
    let srv = |servers: &Vec<Option<Server>>, i: usize| -> String { servers[i].as_ref().unwrap().base.clone() };

    // The same tenant policy in every region's registry; a token per region.
    let policy = serde_json::json!({
        "id": "agro",
        "home_region": "us-east",
        "data_regions": ["us-east", "us-west", "eu-central", "eu-west", "br-south"],
        "allowed_query_regions": ["us-east", "us-west", "eu-central", "eu-west", "br-south"],
        "export_policy": "none",
        "exports": {"us": "raw", "eu": "aggregates", "br": "none"},
    });
    let mut tokens = Vec::new();
    for s in servers.iter().flatten() {
        admin_post(&c, s, "/admin/v1/tenants", policy.clone()).await;
        let t = admin_post(&c, s, "/admin/v1/tenants/agro/tokens", serde_json::json!({"access": "read_write"})).await;
        tokens.push(t["token"].as_str().unwrap().to_owned());
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // Data: us farms in both us regions, eu farms in both eu regions (the
    // canary in eu-central), br farms in br-south.
    let t = now_ms() - 30_000;
    let parts = [
        fleet("use", 3, 4, t, 1.0),
        fleet("usw", 2, 3, t, 2.0),
        fleet("euc", 3, 4, t, 3.0),
        fleet("euw", 2, 2, t, 4.0),
        fleet("br", 2, 3, t, 5.0),
    ];
    for (i, (body, _, _)) in parts.iter().enumerate() {
        let mut body = body.clone();
        if all[i].name == "eu-central" {
            body.push_str(&format!(
                "soil,farm=f-euc-0,device={CANARY_DEVICE} moisture={CANARY_VALUE} {}\n",
                t * 1_000_000
            ));
        }
        let r = c
            .post(format!("{}/api/v2/write", srv(&servers, i)))
            .bearer_auth(&tokens[i])
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "write to {}: {}", all[i].name, r.text().await.unwrap());
    }
    let canary: f64 = CANARY_VALUE.parse().unwrap();
    let us_sum = parts[0].1 + parts[1].1;
    let eu_sum = parts[2].1 + parts[3].1 + canary;
    let (us_n, eu_n) = (parts[0].2 + parts[1].2, parts[2].2 + parts[3].2 + 1);
    let at = format!("{:.3}", (t + 1000) as f64 / 1000.0);
    let q = |query: &str| vec![("query", query.to_owned()), ("time", at.clone())];
    let us_east = servers[0].as_ref().unwrap().base.clone();
    let from_us = |path: &'static str, params: Vec<(&'static str, String)>| {
        let (c, base, token) = (c.clone(), us_east.clone(), tokens[0].clone());
        async move {
            let r = c.get(format!("{base}{path}")).bearer_auth(token).query(&params).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap_or_default())
        }
    };

    // Aggregations: us raw + eu pushed down; br left out with an info.
    let (st, v) = from_us("/api/v1/query", q("sum(soil_moisture)")).await;
    assert_eq!(st, 200, "{v}");
    assert!(close(value_of(&v), us_sum + eu_sum), "{v} vs {}", us_sum + eu_sum);
    assert!(v["infos"].to_string().contains("br"), "the left-out jurisdiction is named: {v}");
    let (_, v) = from_us("/api/v1/query", q("count(soil_moisture)")).await;
    assert_eq!(value_of(&v) as usize, us_n + eu_n, "{v}");
    let (_, v) = from_us("/api/v1/query", q("avg(soil_moisture)")).await;
    assert!(close(value_of(&v), (us_sum + eu_sum) / (us_n + eu_n) as f64), "{v}");
    let (_, v) = from_us("/api/v1/query", q("sum by (farm) (soil_moisture{farm=\"f-euc-0\"})")).await;
    let farm0: f64 = (0..4).map(|d| 3.0 + d as f64 * 0.5).sum::<f64>() + canary;
    assert!(close(value_of(&v), farm0), "{v} vs {farm0}");
    let range = vec![
        ("query", "sum by (farm) (soil_moisture)".to_owned()),
        ("start", format!("{:.3}", (t - 60_000) as f64 / 1000.0)),
        ("end", format!("{:.3}", (t + 60_000) as f64 / 1000.0)),
        ("step", "15".to_owned()),
    ];
    let (st, v) = from_us("/api/v1/query_range", range).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["result"].as_array().unwrap().len(), 3 + 2 + 3 + 2, "us and eu farms, not br: {v}");

    // Raw series of eu may not leave it: a geo-fence error, not a partial answer.
    let (st, v) = from_us("/api/v1/query", q("soil_moisture")).await;
    assert_eq!(st, 422, "{v}");
    assert!(v["error"].as_str().unwrap().contains("eu"), "{v}");
    let (st, v) = from_us("/api/v1/query", q(&format!("soil_moisture{{device=\"{CANARY_DEVICE}\"}}"))).await;
    assert_eq!(st, 422, "{v}");
    let (st, v) = from_us("/api/v1/query", q("quantile(0.5, soil_moisture)")).await;
    assert_eq!(st, 422, "not decomposable: {v}");
    // A selector that only us data matches is answered raw.
    let (st, v) = from_us("/api/v1/query", q("soil_moisture{farm=\"f-usw-1\"}")).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["result"].as_array().unwrap().len(), 3, "{v}");

    // Metadata: us series only; eu and br named in infos.
    let matchers = vec![
        ("match[]", "soil_moisture".to_owned()),
        ("start", format!("{}", t / 1000 - 60)),
        ("end", format!("{}", t / 1000 + 60)),
    ];
    let (st, v) = from_us("/api/v1/series", matchers.clone()).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"].as_array().unwrap().len(), us_n, "{v}");
    assert!(!v.to_string().contains(CANARY_DEVICE));
    let (_, v) = from_us("/api/v1/label/device/values", matchers.clone()).await;
    assert!(!v.to_string().contains(CANARY_DEVICE), "{v}");
    let (_, v) = from_us("/api/v1/labels", matchers.clone()).await;
    assert_eq!(v["status"], "success", "{v}");

    // Within eu, raw is raw: eu-west sees the canary of eu-central.
    let (st, v) = get_json(
        &c,
        servers[3].as_ref().unwrap(),
        "/api/v1/query",
        &tokens[3],
        &q(&format!("soil_moisture{{device=\"{CANARY_DEVICE}\"}}")),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert!(close(value_of(&v), canary), "{v}");

    // The inter-region endpoints themselves: the data region decides.
    let select = serde_json::json!({"tenant": "agro", "matchers": [{"name": "__name__", "op": "=", "value": "soil_moisture"}], "start": t - 60_000, "end": t + 60_000});
    let eu_central = servers[2].as_ref().unwrap().base.clone();
    let post = |base: String, path: &'static str, region: &'static str, cred: String, body: serde_json::Value| {
        let c = c.clone();
        async move {
            let r = c
                .post(format!("{base}{path}"))
                .bearer_auth(cred)
                .header("x-strata-region", region)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (st, body) =
        post(eu_central.clone(), "/internal/v1/region/select", "us-east", credential("us-east"), select.clone()).await;
    assert_eq!(st, 403, "a raw read from us is refused by eu: {body}");
    assert!(body.contains("aggregates") && !body.contains(CANARY_DEVICE), "{body}");
    let (st, body) =
        post(eu_central.clone(), "/internal/v1/region/select", "mars-1", credential("mars-1"), select.clone()).await;
    assert_eq!(st, 401, "a region not in the directory: {body}");
    let (st, body) =
        post(eu_central.clone(), "/internal/v1/region/select", "us-east", tokens[2].clone(), select.clone()).await;
    assert_eq!(st, 401, "a tenant token is not a region credential: {body}");
    let (st, body) =
        post(eu_central.clone(), "/internal/v1/region/select", "us-east", credential("us-west"), select.clone()).await;
    assert_eq!(st, 401, "another region's credential: {body}");
    let raw_partial = serde_json::json!({"tenant": "agro", "exprs": ["soil_moisture"], "grid": {"start": t, "end": t, "step": 1, "query_start": t, "query_end": t}});
    let (st, body) =
        post(eu_central.clone(), "/internal/v1/region/partials", "us-east", credential("us-east"), raw_partial).await;
    assert_eq!(st, 403, "a raw selector dressed as a partial: {body}");
    assert!(!body.contains(CANARY_DEVICE) && !body.contains(CANARY_VALUE), "{body}");
    let br_partial = serde_json::json!({"tenant": "agro", "exprs": ["sum(soil_moisture)"], "grid": {"start": t, "end": t, "step": 1, "query_start": t, "query_end": t}});
    let (st, body) =
        post(srv(&servers, 4), "/internal/v1/region/partials", "us-east", credential("us-east"), br_partial).await;
    assert_eq!(st, 403, "br exports nothing: {body}");
    let (st, _) =
        post(srv(&servers, 1), "/internal/v1/region/select", "us-east", credential("us-east"), select.clone()).await;
    assert_eq!(st, 200, "within us raw is allowed");

    // The audit log on both sides; the admin API needs the admin token.
    let (st, _) = get_json(&c, servers[2].as_ref().unwrap(), "/admin/v1/audit", &tokens[2], &[]).await;
    assert_eq!(st, 401);
    let (st, v) =
        get_json(&c, servers[2].as_ref().unwrap(), "/admin/v1/audit", ADMIN, &[("decision", "refused".into())]).await;
    assert_eq!(st, 200, "{v}");
    let refused = v["data"].as_array().unwrap();
    assert!(refused.iter().any(|r| r["asking_region"] == "us-east" && r["crossed"] == "raw_series"), "{v}");
    assert!(refused.iter().any(|r| r["asking_region"] == "mars-1"), "{v}");
    let (_, v) = get_json(
        &c,
        servers[2].as_ref().unwrap(),
        "/admin/v1/audit",
        ADMIN,
        &[("tenant", "agro".into()), ("decision", "allowed".into())],
    )
    .await;
    assert!(
        v["data"].as_array().unwrap().iter().any(|r| r["crossed"] == "aggregate_series"
            && r["asking_region"] == "us-east"
            && r["bytes"].as_u64() > Some(0)),
        "{v}"
    );
    // The query's text stays in us: eu records its hash and the partials it evaluated.
    for r in v["data"].as_array().unwrap() {
        let q = r["query"].as_str().unwrap();
        if r["asking_region"] == "us-east" {
            assert!(q.starts_with("sha256:"), "text of a us query reached eu: {r}");
        }
    }
    let (_, v) = get_json(&c, servers[0].as_ref().unwrap(), "/admin/v1/audit", ADMIN, &[("side", "sent".into())]).await;
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["data_region"] == "eu-central" && r["query"] == "sum(soil_moisture)"),
        "{v}"
    );

    // A flood of unauthenticated requests cannot fill eu's disk with audit records.
    for _ in 0..200 {
        let (st, _) =
            post(eu_central.clone(), "/internal/v1/region/count", "mars-2", credential("mars-2"), select.clone()).await;
        assert_eq!(st, 401);
    }
    let (_, v) = get_json(
        &c,
        servers[2].as_ref().unwrap(),
        "/admin/v1/audit",
        ADMIN,
        &[("region", "mars-2".into()), ("limit", "1000".into())],
    )
    .await;
    let recorded = v["data"].as_array().unwrap().len();
    assert!((1..150).contains(&recorded), "{recorded} of 200 unauthenticated refusals recorded");

    // The same through `strata admin audit`.
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "admin",
            "--url",
            &eu_central,
            "--admin-token",
            ADMIN,
            "audit",
            "--decision",
            "refused",
            "--side",
            "received",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text} {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with("TIME MS") && text.contains("mars-1") && text.contains("refused"), "{text}");

    // No byte that left eu carries the canary.
    check_no_canary_left_eu(&conns, &all);

    // us-east goes down: writes fail over to us-west, queries answer with a warning.
    servers[0].take().unwrap().kill9();
    let t2 = t + 5_000;
    let failover = format!("soil,farm=f-use-0,device=d-use-0-0 moisture=100 {}\n", t2 * 1_000_000);
    let endpoints = [srv(&servers, 1)];
    let first = c.post(format!("{us_east}/api/v2/write")).bearer_auth(&tokens[0]).body(failover.clone()).send().await;
    assert!(first.is_err(), "us-east is down");
    let r =
        c.post(format!("{}/api/v2/write", endpoints[0])).bearer_auth(&tokens[1]).body(failover).send().await.unwrap();
    assert_eq!(r.status(), 204, "us-west takes the us writes");
    let at2 = format!("{:.3}", (t2 + 1000) as f64 / 1000.0);
    let q2 = |query: &str| vec![("query", query.to_owned()), ("time", at2.clone())];
    let (st, v) = get_json(
        &c,
        servers[1].as_ref().unwrap(),
        "/api/v1/query",
        &tokens[1],
        &q2("count(soil_moisture{farm=~\"f-us.*\"})"),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert!(v["warnings"].to_string().contains("us-east"), "the missing region is named: {v}");
    assert_eq!(value_of(&v) as usize, parts[1].2 + 1, "us-west's series plus the failed-over one: {v}");
    let mut strict = q2("count(soil_moisture{farm=~\"f-us.*\"})");
    strict.push(("partial_response", "false".into()));
    let (st, v) = get_json(&c, servers[1].as_ref().unwrap(), "/api/v1/query", &tokens[1], &strict).await;
    assert_eq!(st, 503, "partial_response=false turns the missing region into an error: {v}");

    // us-east is back: whole again; the failed-over sample counts once.
    servers[0] = Some(start(&all[0], &all, dir.path()));
    let (st, v) = get_json(
        &c,
        servers[0].as_ref().unwrap(),
        "/api/v1/query",
        &tokens[0],
        &q2("count(soil_moisture{farm=~\"f-us.*\"})"),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert!(v["warnings"].as_array().is_none_or(|w| w.is_empty()), "{v}");
    assert_eq!(value_of(&v) as usize, us_n, "every us series, d-use-0-0 once: {v}");
    let (_, v) = get_json(
        &c,
        servers[0].as_ref().unwrap(),
        "/api/v1/query",
        &tokens[0],
        &q2("max(soil_moisture{device=\"d-use-0-0\"})"),
    )
    .await;
    assert_eq!(value_of(&v), 100.0, "the sample written to us-west during the outage: {v}");
    check_no_canary_left_eu(&conns, &all);

    // Bytes per policy, for the closing note of the federation work.
    let mut by_kind: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    for conn in conns.lock().unwrap().iter() {
        let c = conn.lock().unwrap();
        let from = asking_region(&c.request).unwrap_or_default();
        let e = by_kind.entry(format!("{from} -> {}", c.target)).or_default();
        e.0 += c.request.len();
        e.1 += c.response.len();
    }
    for (k, (req, resp)) in by_kind {
        eprintln!("proxy bytes {k}: request {req}, response {resp}");
    }
}

/// The region named in a connection's first request.
fn asking_region(request: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(request);
    let line = text.lines().find(|l| l.to_ascii_lowercase().starts_with("x-strata-region:"))?;
    Some(line.split_once(':')?.1.trim().to_owned())
}

fn check_no_canary_left_eu(conns: &Arc<Mutex<Vec<Arc<Mutex<Conn>>>>>, all: &[Region]) {
    let jurisdiction = |name: &str| all.iter().find(|r| r.name == name).map(|r| r.jurisdiction).unwrap_or("?");
    let mut checked = 0;
    for conn in conns.lock().unwrap().iter() {
        let c = conn.lock().unwrap();
        let from = asking_region(&c.request).unwrap_or_default();
        let (from_j, to_j) = (jurisdiction(&from), jurisdiction(&c.target));
        // Out of eu: answers of eu regions to others, requests of eu regions to others.
        let out: &[u8] = match (from_j, to_j) {
            (f, "eu") if f != "eu" => &c.response,
            ("eu", t) if t != "eu" => &c.request,
            _ => continue,
        };
        checked += 1;
        // The value as text and as the f64 bits the inter-region answers carry.
        // (and as the 8 little-endian bytes of the binary raw-series encoding).
        let bits = CANARY_VALUE.parse::<f64>().unwrap().to_bits();
        let (text, le) = (bits.to_string(), bits.to_le_bytes());
        for needle in [CANARY_DEVICE.as_bytes(), CANARY_VALUE.as_bytes(), text.as_bytes(), le.as_slice()] {
            assert!(
                !out.windows(needle.len()).any(|w| w == needle),
                "{} left eu on a connection {from} -> {}",
                String::from_utf8_lossy(needle),
                c.target
            );
        }
    }
    assert!(checked > 0, "some traffic left eu (the aggregates)");
}
