//! HTTPS end to end (issue 20, item 4): a throwaway CA and server
//! certificate made with the `openssl` CLI, the real binary serving TLS, and
//! real clients trusting that CA: curl, Python `requests` (`verify=` the CA),
//! Prometheus `remote_write` with `tls_config`, and `strata admin
//! --ca-cert` on the separate admin listener. Plain HTTP and an untrusted
//! client are refused; a certificate file that does not parse stops startup
//! with its path in the error. Two regions federate over HTTPS, the node's
//! own client trusting the CA through `http.client_ca_cert` (and refusing
//! the other region's certificate without it), and a node fans a query out
//! to a cluster peer over HTTPS the same way.
//!
//! Needs `openssl`, `curl`, `python3` with `requests` and `prometheus` on
//! `PATH` (`scripts/install-test-deps.sh`); without them the tests fail, they
//! never skip.

use crate::harness::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use strata_test_support::process::capture_output;
use strata_test_support::prometheus::Prometheus;

const TOKEN: &str = "tls-e2e-token-1";
const TENANT: &str = "tlstenant";
const ADMIN: &str = "tls-e2e-admin-token";

/// The CA, and a server certificate for `localhost` and 127.0.0.1 it signed.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e} (scripts/install-test-deps.sh)"));
    assert!(out.status.success(), "{cmd:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    out
}

fn make_pki(dir: &Path) -> Pki {
    let p = |name: &str| dir.join(name);
    run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
        .args([
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=Strata test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
            "-keyout",
        ])
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.pem")));
    run(Command::new("openssl")
        .args(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=localhost"])
        .arg("-keyout")
        .arg(p("server.key"))
        .arg("-out")
        .arg(p("server.csr")));
    std::fs::write(
        p("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n\
         extendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-CAcreateserial", "-in"])
        .arg(p("server.csr"))
        .arg("-CA")
        .arg(p("ca.pem"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("server.pem"))
        .arg("-extfile")
        .arg(p("ext.cnf")));
    Pki { ca: p("ca.pem"), cert: p("server.pem"), key: p("server.key") }
}

/// `curl` with the test CA: (exit code, HTTP status, body).
fn curl(ca: Option<&Path>, args: &[&str]) -> (i32, u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"]);
    if let Some(ca) = ca {
        cmd.arg("--cacert").arg(ca);
    }
    let out = cmd.args(args).output().expect("curl on PATH (scripts/install-test-deps.sh)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (out.status.code().unwrap_or(-1), status.trim().parse().unwrap_or(0), body.to_owned())
}

/// Starts `strata serve` with TLS (and an admin listener on `admin_port`) and waits until curl sees it ready.
fn start_tls(dir: &Path, pki: &Pki, port: u16, admin_port: u16, extra_env: &[(&str, &str)]) -> Server {
    start_tls_with(dir, None, pki, port, admin_port, extra_env)
}

/// [`start_tls`] with a configuration file.
fn start_tls_with(
    dir: &Path,
    config: Option<&Path>,
    pki: &Pki,
    port: u16,
    admin_port: u16,
    extra_env: &[(&str, &str)],
) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.arg("serve");
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    cmd.args(["--http-addr", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "info")
        .env("STRATA_HTTP__TLS_CERT", &pki.cert)
        .env("STRATA_HTTP__TLS_KEY", &pki.key)
        .env("STRATA_HTTP__ADMIN_ADDR", format!("127.0.0.1:{admin_port}"))
        .env("STRATA_ADMIN__TOKEN", ADMIN)
        .env("STRATA_AUTH__TOKENS", format!("{{ \"{TOKEN}\" = \"{TENANT}\" }}"))
        .envs(extra_env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start strata");
    let stderr = capture_output(&mut child);
    let server = Server { child, base: format!("https://localhost:{port}"), stderr };
    let deadline = Instant::now() + Duration::from_secs(60);
    while curl(Some(&pki.ca), &[&server.url("/-/ready")]).1 != 200 {
        assert!(Instant::now() < deadline, "strata (TLS) not ready:\n{}", server.stderr.lock().unwrap());
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

fn prometheus_config(port: u16, write_url: &str, ca: &Path) -> String {
    format!(
        r#"global:
  scrape_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:{port}"]
remote_write:
  - url: "{write_url}"
    authorization:
      credentials: "{TOKEN}"
    tls_config:
      ca_file: "{}"
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
"#,
        ca.display()
    )
}

#[test]
fn https_serves_curl_python_requests_prometheus_and_strata_admin() {
    let dir = data_dir();
    let pki = make_pki(dir.path());
    let (port, admin_port) = (free_port(), free_port());
    let s = start_tls(&dir.path().join("strata"), &pki, port, admin_port, &[]);
    let ca = Some(pki.ca.as_path());
    let log = s.stderr.lock().unwrap().clone();
    assert!(log.contains(&format!("listening on https://127.0.0.1:{port}")), "{log}");
    assert!(log.contains(&format!("admin listener (/admin, /internal) on https://127.0.0.1:{admin_port}")), "{log}");

    // curl: a write and a query over HTTPS, trusting the test CA.
    let t = now_ms();
    let auth = format!("Authorization: Bearer {TOKEN}");
    let line = format!("tls_probe,device=d1 value=42 {}", t * 1_000_000);
    let (code, status, body) =
        curl(ca, &["-X", "POST", "-H", &auth, "--data-binary", &line, &s.url("/api/v2/write?precision=ns")]);
    assert_eq!((code, status), (0, 204), "{body}");
    let query = format!("{}?query=tls_probe&time={:.3}", s.url("/api/v1/query"), t as f64 / 1000.0);
    let (code, status, body) = curl(ca, &["-H", &auth, &query]);
    assert_eq!((code, status), (0, 200), "{body}");
    assert!(body.contains("\"42\""), "{body}");

    // An untrusting client, and plain HTTP on the TLS port, get nothing.
    let (code, _, body) = curl(None, &[&s.url("/-/ready")]);
    assert_eq!(code, 60, "curl without the CA must fail verification (exit 60): {body}");
    let (_, status, body) = curl(None, &[&format!("http://127.0.0.1:{port}/-/ready")]);
    assert_eq!(status, 400, "plain HTTP on the TLS listener: {body}");
    assert!(body.contains("HTTPS only"), "{body}");

    // Python requests with verify= the CA (and refused with the system's roots only).
    let script = r#"
import sys, requests
url, ca, token = sys.argv[1], sys.argv[2], sys.argv[3]
r = requests.get(url + "/api/v1/query", params={"query": "tls_probe"}, headers={"Authorization": "Bearer " + token}, verify=ca, timeout=10)
print(r.status_code, r.json()["data"]["result"][0]["value"][1])
try:
    requests.get(url + "/-/ready", timeout=10)
    print("unverified-ok")
except requests.exceptions.SSLError:
    print("unverified-refused")
"#;
    let out = run(Command::new("python3").arg("-c").arg(script).arg(&s.base).arg(&pki.ca).arg(TOKEN));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().collect::<Vec<_>>(), ["200 42", "unverified-refused"], "{text}");

    // strata admin over HTTPS on the admin listener, trusting the CA; the main listener hides /admin.
    let admin_url = format!("https://localhost:{admin_port}");
    let out = run(Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["admin", "--url", &admin_url, "--admin-token", ADMIN, "--ca-cert"])
        .arg(&pki.ca)
        .args(["tenants", "create", "tls-admin-made"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("tls-admin-made"), "{out:?}");
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["admin", "--url", &admin_url, "--admin-token", ADMIN, "tenants", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "strata admin without --ca-cert trusted the test CA");
    let admin_auth = format!("Authorization: Bearer {ADMIN}");
    let (_, status, body) = curl(ca, &["-H", &admin_auth, &s.url("/admin/v1/tenants")]);
    assert_eq!(status, 404, "{body}");

    // Prometheus remote_write over HTTPS with tls_config.ca_file.
    let prom_dir = dir.path().join("prometheus");
    std::fs::create_dir_all(&prom_dir).unwrap();
    let write_url = s.url("/api/v1/write");
    let prom = Prometheus::start(&prom_dir, |port| prometheus_config(port, &write_url, &pki.ca));
    let prom_port = prom.port();
    let deadline = Instant::now() + Duration::from_secs(60);
    let up = loop {
        let q = format!("{}?query=up", s.url("/api/v1/query"));
        let (_, status, body) = curl(ca, &["-H", &auth, &q]);
        if status == 200 && body.contains(&format!("127.0.0.1:{prom_port}")) {
            break body;
        }
        if Instant::now() > deadline {
            panic!("no remote-written `up` in Strata after 60 s: {body}\n{}", s.stderr.lock().unwrap());
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    drop(prom);
    assert!(up.contains("\"job\":\"prometheus\""), "{up}");
}

#[test]
fn admin_tls_false_keeps_the_admin_listener_on_plain_http() {
    let dir = data_dir();
    let pki = make_pki(dir.path());
    let (port, admin_port) = (free_port(), free_port());
    let s = start_tls(&dir.path().join("strata"), &pki, port, admin_port, &[("STRATA_HTTP__ADMIN_TLS", "false")]);
    let admin_auth = format!("Authorization: Bearer {ADMIN}");
    let (code, status, body) =
        curl(None, &["-H", &admin_auth, &format!("http://127.0.0.1:{admin_port}/admin/v1/tenants")]);
    assert_eq!((code, status), (0, 200), "{body}");
    assert_eq!(curl(Some(&pki.ca), &[&s.url("/-/ready")]).1, 200, "the main listener stays HTTPS");
    let (_, status, _) = curl(None, &[&format!("http://127.0.0.1:{port}/-/ready")]);
    assert_eq!(status, 400, "plain HTTP on the main listener");
}

#[test]
fn an_unreadable_certificate_stops_startup_naming_the_file() {
    let dir = data_dir();
    let bad = dir.path().join("not-a-cert.pem");
    std::fs::write(&bad, "this is not PEM\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["serve", "--http-addr", &format!("127.0.0.1:{}", free_port()), "--data-dir"])
        .arg(dir.path().join("data"))
        .env("STRATA_HTTP__TLS_CERT", &bad)
        .env("STRATA_HTTP__TLS_KEY", &bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with a bad certificate: {err}");
    assert!(err.contains("http.tls_cert") && err.contains(&bad.display().to_string()), "{err}");
    let missing = dir.path().join("missing-key.pem");
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["serve", "--http-addr", &format!("127.0.0.1:{}", free_port()), "--data-dir"])
        .arg(dir.path().join("data"))
        .env("STRATA_HTTP__TLS_CERT", make_pki(dir.path()).cert)
        .env("STRATA_HTTP__TLS_KEY", &missing)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("http.tls_key") && err.contains("missing-key.pem"), "{err}");
}

/// `curl` with the CA; the JSON body of a success.
fn curl_json(ca: &Path, args: &[&str]) -> serde_json::Value {
    let (code, status, body) = curl(Some(ca), args);
    assert!(code == 0 && (200..300).contains(&status), "curl {args:?}: exit {code}, {status}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// `us-east` and `us-west` (one jurisdiction) with HTTPS on every listener
/// and each other's admin listener as `https://` endpoint. us-east trusts the
/// test CA through `http.client_ca_cert` and answers with us-west's data;
/// us-west has the platform's roots only and reports us-east unreachable,
/// naming the certificate.
#[test]
fn regions_federate_over_https_trusting_client_ca_cert() {
    let dir = data_dir();
    let pki = make_pki(dir.path());
    let names = ["us-east", "us-west"];
    let ports: Vec<(u16, u16)> = names.iter().map(|_| (free_port(), free_port())).collect();
    let credential = |name: &str| format!("tls-credential-of-{name}-0123456789");
    let mut servers = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mut config = format!(
            "region = \"{name}\"\n[federation]\njurisdiction = \"us\"\ncredential = \"{}\"\ntimeout = \"3s\"\n",
            credential(name)
        );
        for (other, (_, admin_port)) in names.iter().zip(&ports) {
            let sha = strata::regions::credential_sha256(&credential(other));
            config.push_str(&format!(
                "[[federation.regions]]\nname = \"{other}\"\njurisdiction = \"us\"\n\
                 endpoint = \"https://localhost:{admin_port}\"\ncredential_sha256 = \"{sha}\"\n"
            ));
        }
        let file = dir.path().join(format!("{name}.toml"));
        std::fs::write(&file, config).unwrap();
        let ca = pki.ca.display().to_string();
        let env: Vec<(&str, &str)> = if i == 0 { vec![("STRATA_HTTP__CLIENT_CA_CERT", &ca)] } else { vec![] };
        let (port, admin_port) = ports[i];
        servers.push(start_tls_with(&dir.path().join(name), Some(&file), &pki, port, admin_port, &env));
    }

    // One tenant with data in both regions; a token and a sample in each.
    let t = now_ms() - 10_000;
    let policy = r#"{"id": "fed", "home_region": "us-east", "data_regions": ["us-east", "us-west"],
        "allowed_query_regions": ["us-east", "us-west"], "exports": {"us": "raw"}}"#;
    let admin_auth = format!("Authorization: Bearer {ADMIN}");
    let json = "Content-Type: application/json";
    let mut tokens = Vec::new();
    for (_, admin_port) in &ports {
        let admin = format!("https://localhost:{admin_port}/admin/v1/tenants");
        curl_json(&pki.ca, &["-X", "POST", "-H", &admin_auth, "-H", json, "--data-binary", policy, &admin]);
        let body = r#"{"access": "read_write"}"#;
        let token = curl_json(
            &pki.ca,
            &["-X", "POST", "-H", &admin_auth, "-H", json, "--data-binary", body, &format!("{admin}/fed/tokens")],
        );
        tokens.push(format!("Authorization: Bearer {}", token["token"].as_str().unwrap()));
    }
    // As in regions.rs: new tenants and tokens reach the request path within a second.
    std::thread::sleep(Duration::from_millis(1200));
    for (i, auth) in tokens.iter().enumerate() {
        let line = format!("tls_fed,device=d-{i} value={} {}", 5 + 2 * i, t * 1_000_000);
        let write = servers[i].url("/api/v2/write?precision=ns");
        let (code, status, body) = curl(Some(&pki.ca), &["-X", "POST", "-H", auth, "--data-binary", &line, &write]);
        assert_eq!((code, status), (0, 204), "write to {}: {body}", names[i]);
    }
    let query = |i: usize| {
        let q = format!("{}?query=sum(tls_fed)&time={:.3}", servers[i].url("/api/v1/query"), t as f64 / 1000.0);
        curl_json(&pki.ca, &["-H", &tokens[i], &q])
    };

    // us-east trusts the CA: its answer holds us-west's 7 with its own 5.
    let deadline = Instant::now() + Duration::from_secs(10);
    let v = loop {
        let v = query(0);
        if v["data"]["result"][0]["value"][1] == "12" || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(v["data"]["result"][0]["value"][1], "12", "{v}\n{}", servers[0].stderr.lock().unwrap());
    assert!(v.get("warnings").is_none_or(|w| w.as_array().is_some_and(Vec::is_empty)), "{v}");

    // us-west does not: us-east's certificate is refused, its data missing and named.
    let v = query(1);
    assert_eq!(v["data"]["result"][0]["value"][1], "7", "{v}");
    let warnings = v["warnings"].to_string();
    assert!(warnings.contains("us-east") && warnings.contains("certificate"), "{v}");
}

#[test]
fn an_unreadable_client_ca_cert_stops_startup_naming_the_file() {
    let dir = data_dir();
    let bad = dir.path().join("not-a-ca.pem");
    std::fs::write(&bad, "this is not PEM\n").unwrap();
    for (path, what) in [(bad.clone(), "no PEM CERTIFICATE"), (dir.path().join("missing-ca.pem"), "missing-ca.pem")] {
        let out = Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(["serve", "--http-addr", &format!("127.0.0.1:{}", free_port()), "--data-dir"])
            .arg(dir.path().join("data"))
            .env("STRATA_HTTP__CLIENT_CA_CERT", &path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started with a bad client_ca_cert: {err}");
        assert!(
            err.contains("http.client_ca_cert") && err.contains(&path.display().to_string()) && err.contains(what),
            "{err}"
        );
    }
}

/// Query fan-out to a cluster peer over HTTPS, on the embedded log (no
/// broker: each node holds its own writes, the peer's series come only
/// through `/internal/v1/select`). Node `a` trusts the CA through
/// `http.client_ca_cert` and answers with the peer's series; node `c`, with
/// the same peer but no CA, answers without them and counts the peer error.
#[test]
fn cluster_peers_answer_over_https_trusting_client_ca_cert() {
    let dir = data_dir();
    let pki = make_pki(dir.path());
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let peers = format!("[\"https://localhost:{}\"]", ports[1].1);
    let ca = pki.ca.display().to_string();
    let cluster = [("STRATA_CLUSTER__TOKEN", "tls-cluster-token-0123456789")];
    let env = [
        [&cluster[..], &[("STRATA_CLUSTER__PEERS", peers.as_str()), ("STRATA_HTTP__CLIENT_CA_CERT", &ca)]].concat(),
        cluster.to_vec(),
        [&cluster[..], &[("STRATA_CLUSTER__PEERS", peers.as_str())]].concat(),
    ];
    let nodes: Vec<Server> = ["a", "b", "c"]
        .iter()
        .zip(&ports)
        .zip(&env)
        .map(|((name, &(port, admin_port)), env)| start_tls(&dir.path().join(name), &pki, port, admin_port, env))
        .collect();

    let t = now_ms() - 10_000;
    let auth = format!("Authorization: Bearer {TOKEN}");
    for (i, node) in nodes.iter().enumerate() {
        let line = format!("tls_peer,device=d-{i} value={} {}", 1 + i, t * 1_000_000);
        let write = node.url("/api/v2/write?precision=ns");
        let (code, status, body) = curl(Some(&pki.ca), &["-X", "POST", "-H", &auth, "--data-binary", &line, &write]);
        assert_eq!((code, status), (0, 204), "{body}");
    }
    let sum = |node: &Server| {
        let q = format!("{}?query=sum(tls_peer)&time={:.3}", node.url("/api/v1/query"), t as f64 / 1000.0);
        let v = curl_json(&pki.ca, &["-H", &auth, &q]);
        v["data"]["result"][0]["value"][1].as_str().unwrap_or_else(|| panic!("{v}")).to_owned()
    };
    // a: its own 1 and peer b's 2.
    assert_eq!(sum(&nodes[0]), "3", "{}", nodes[0].stderr.lock().unwrap());
    // c: its own 3 only; b's certificate is refused and logged.
    assert_eq!(sum(&nodes[2]), "3");
    nodes[2].wait_for_log(
        |log| log.contains("peer did not answer") && log.contains("certificate"),
        "node c does not log b's refused certificate",
    );
    assert!(!nodes[0].stderr.lock().unwrap().contains("peer did not answer"));
}
