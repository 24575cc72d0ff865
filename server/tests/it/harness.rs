//! Shared harness of the end-to-end tests: start the real `strata` binary on
//! a free loopback port, talk to it over HTTP, kill it.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Ports below the ephemeral range and the piped-stderr collector: see `strata-test-support`.
pub(crate) use strata_test_support::port::free_port;
pub(crate) use strata_test_support::process::capture_stderr;

/// A running `strata serve` child process.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) base: String,
    pub(crate) stderr: Arc<Mutex<String>>,
}

impl Server {
    pub(crate) fn start(data_dir: &Path, extra_env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
        cmd.args(["serve", "--http-addr", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(data_dir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        Server::spawn(cmd, format!("http://127.0.0.1:{port}"))
    }

    /// Spawns `cmd` (a `strata serve` with stderr piped) serving `base`, and waits until it is ready.
    pub(crate) fn spawn(mut cmd: Command, base: String) -> Server {
        let mut child = cmd.spawn().expect("start strata");
        let stderr = capture_stderr(&mut child);
        let server = Server { child, base, stderr };
        server.wait_ready();
        server
    }

    pub(crate) fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if http_status(&self.base, "/-/ready") == Some(200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("strata not ready; stderr:\n{}", self.stderr.lock().unwrap());
    }

    /// The server's log once `what` holds of it (up to 60 s: its stderr is
    /// read by a thread, so a line logged just now may not be here yet);
    /// panics with `why` and the log after that.
    pub(crate) fn wait_for_log(&self, what: impl Fn(&str) -> bool, why: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = self.stderr.lock().unwrap().clone();
            if what(&log) {
                return log;
            }
            assert!(Instant::now() < deadline, "{why}; server log:\n{log}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub(crate) fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let log = self.stderr.lock().unwrap().clone();
        (status, log)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Status of a plain HTTP/1.0 GET, synchronously (usable from any context).
pub(crate) fn http_status(base: &str, path: &str) -> Option<u16> {
    use std::io::Read;
    let addr = base.strip_prefix("http://")?;
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

pub(crate) async fn write(c: &reqwest::Client, s: &Server, path: &str, body: Vec<u8>, gzip: bool) -> (u16, String) {
    let mut req = c.post(s.url(path)).body(body);
    if gzip {
        req = req.header("Content-Encoding", "gzip");
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

/// POSTs line protocol `body` (millisecond timestamps) to `/api/v2/write` as
/// the tenant of `token` (`Authorization: Token …`, the InfluxDB clients'
/// scheme): its status, `Retry-After` header (when sent) and body text, for
/// the caller to assert on.
pub(crate) async fn write_as(
    c: &reqwest::Client,
    s: &Server,
    token: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, Option<String>, String) {
    let r = c
        .post(s.url("/api/v2/write?precision=ms"))
        .header("Authorization", format!("Token {token}"))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    (status, retry, r.text().await.unwrap())
}

pub(crate) async fn query(c: &reqwest::Client, s: &Server, q: &str, t_ms: i64) -> serde_json::Value {
    let t = format!("{:.3}", t_ms as f64 / 1000.0);
    let r = c.get(s.url("/api/v1/query")).query(&[("query", q), ("time", &t)]).send().await.unwrap();
    let status = r.status();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(status, 200, "query {q}: {v}");
    assert_eq!(v["status"], "success", "{v}");
    v["data"].clone()
}

/// An instant query at `t_ms` with tenant token `token`: its status and JSON
/// answer (the caller asserts on them).
pub(crate) async fn query_as(
    c: &reqwest::Client,
    s: &Server,
    token: &str,
    q: &str,
    t_ms: i64,
) -> (u16, serde_json::Value) {
    let r = c
        .get(s.url("/api/v1/query"))
        .header("Authorization", format!("Bearer {token}"))
        .query(&[("query", q), ("time", &format!("{}", t_ms / 1000))])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// The value of `name` in the node's `/metrics`: its one unlabelled sample,
/// or the sum over a labelled family's label sets (as read without a token:
/// no per-tenant series). Panics, with the exposition, when `name` has no
/// sample.
pub(crate) async fn metric(c: &reqwest::Client, s: &Server, name: &str) -> f64 {
    let text = c.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let values: Vec<f64> = text
        .lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{')))
        .map(|l| l.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("not a sample: {l}")))
        .collect();
    assert!(!values.is_empty(), "no {name} in /metrics:\n{text}");
    values.iter().sum()
}

/// Runs `strata admin --url <s> --data-dir <dir> <args>` (the admin token
/// read from the data dir); returns (success, stdout, stderr).
pub(crate) fn admin_cli(s: &Server, dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["admin", "--url", &s.base, "--data-dir"])
        .arg(dir)
        .args(args)
        .env_remove("STRATA_ADMIN_TOKEN")
        .output()
        .expect("run strata admin");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `strata admin --json <args>` asserted successful: its JSON output.
pub(crate) fn admin_cli_json(s: &Server, dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (ok, out, err) = admin_cli(s, dir, &all);
    assert!(ok, "strata admin {args:?} failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Sends `method path` (with the JSON `body`) to the admin API with admin
/// token `token`; its status and JSON answer (`null` when none).
pub(crate) async fn admin_api(
    c: &reqwest::Client,
    s: &Server,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut r = c.request(method, s.url(path)).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

/// `strata serve`'s generated admin token (`<data dir>/admin.token`).
pub(crate) fn admin_token(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("admin.token")).unwrap().trim().to_owned()
}

/// Sends `req` and returns its JSON body, whatever the status (the caller asserts on it).
pub(crate) async fn json(req: reqwest::RequestBuilder) -> serde_json::Value {
    req.send().await.unwrap().json().await.unwrap()
}

/// POSTs to one of the node's `/internal/*` endpoints (`/internal/roll`,
/// `/internal/flush`, `/internal/compact`) with the admin token `token`;
/// asserts a 200 with `"status": "success"` and returns the JSON answer.
pub(crate) async fn internal(c: &reqwest::Client, s: &Server, token: &str, path: &str) -> serde_json::Value {
    let r = c.post(s.url(path)).bearer_auth(token).send().await.unwrap();
    let status = r.status();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!((status.as_u16(), &v["status"]), (200, &serde_json::json!("success")), "{path}: {v}");
    v
}

/// The single value of an instant vector result with one series.
pub(crate) fn single_value(data: &serde_json::Value) -> f64 {
    let result = data["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "expected one series: {data}");
    result[0]["value"][1].as_str().unwrap().parse().unwrap()
}

pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

pub(crate) fn data_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("strata-e2e").tempdir().unwrap()
}
