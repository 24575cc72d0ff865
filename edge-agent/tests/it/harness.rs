//! Starting the real binaries and talking plain HTTP/1.0 to them (no async
//! runtime in the tests).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A free port for a server or agent of a test, below the kernel's
/// ephemeral range, never handed to another test of this process (see
/// `strata_test_support::port`: a port from `bind(:0)` could be reused by
/// another test's listener or connection, as seen in CI).
pub(crate) use strata_test_support::port::free_port;
/// The same as [`free_port`] (the MQTT tests' name for it).
pub(crate) use strata_test_support::port::free_port as reserved_port;

/// `(status, headers, body)` of one request; `None` when the connection fails.
pub(crate) fn request(
    base: &str,
    method: &str,
    path: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> Option<(u16, String, String)> {
    let addr = base.strip_prefix("http://")?;
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let mut head = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, head.to_owned(), body.to_owned()))
}

pub(crate) fn post(base: &str, path: &str, body: &[u8], headers: &[(&str, &str)]) -> Option<(u16, String, String)> {
    request(base, "POST", path, body, headers)
}

pub(crate) fn get(base: &str, path: &str) -> Option<(u16, String, String)> {
    request(base, "GET", path, b"", &[])
}

pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Unlabelled samples of a Prometheus text exposition.
pub(crate) fn parse_metrics(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The single value of an instant query (0 when the result is empty).
pub(crate) fn query_scalar(server: &Server, q: &str, at_ms: i64) -> f64 {
    let path = format!("/api/v1/query?query={}&time={:.3}", encode(q), at_ms as f64 / 1000.0);
    let (status, _, body) = get(&server.base, &path).expect("server answers");
    assert_eq!(status, 200, "{q}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let result = v["data"]["result"].as_array().unwrap();
    match result.as_slice() {
        [] => 0.0,
        [one] => one["value"][1].as_str().unwrap().parse().unwrap(),
        _ => panic!("{q}: more than one series: {body}"),
    }
}

fn spawn_logged(mut cmd: Command, what: &str) -> (Child, Arc<Mutex<String>>) {
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("starting {what}: {e}"));
    let log = Arc::new(Mutex::new(String::new()));
    let pipe = child.stderr.take().unwrap();
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    (child, log)
}

fn wait_ready(base: &str, child: &mut Child, log: &Mutex<String>, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if get(base, "/-/ready").is_some_and(|r| r.0 == 200) {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited with {status}:\n{}", log.lock().unwrap());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} not ready:\n{}", log.lock().unwrap());
}

/// The `strata` server binary, next to `strata-edge` in the target directory.
fn strata_binary() -> PathBuf {
    let edge = Path::new(env!("CARGO_BIN_EXE_strata-edge"));
    let path = edge.with_file_name(format!("strata{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p strata` (`cargo test --workspace` does)",
        path.display()
    );
    path
}

/// A running `strata serve`.
pub(crate) struct Server {
    child: Child,
    pub(crate) base: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    pub(crate) fn start(data_dir: &Path, port: u16) -> Server {
        Server::start_env(data_dir, port, &[])
    }

    /// A server with `STRATA_*` settings (e.g. its region and jurisdiction).
    pub(crate) fn start_env(data_dir: &Path, port: u16, env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(strata_binary());
        cmd.args(["serve", "--http-addr", &format!("127.0.0.1:{port}"), "--data-dir"]).arg(data_dir);
        cmd.env("RUST_LOG", "warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let (mut child, log) = spawn_logged(cmd, "strata");
        let base = format!("http://127.0.0.1:{port}");
        wait_ready(&base, &mut child, &log, "strata");
        Server { child, base, log }
    }

    /// An unlabelled sample of the server's `/metrics`.
    pub(crate) fn metric(&self, name: &str) -> f64 {
        let text = get(&self.base, "/metrics").expect("server answers").2;
        *parse_metrics(&text).get(name).unwrap_or_else(|| panic!("no {name}; log:\n{}", self.log.lock().unwrap()))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `strata-edge`.
pub(crate) struct Agent {
    child: Child,
    pub(crate) base: String,
    log: Arc<Mutex<String>>,
}

impl Agent {
    pub(crate) fn start(data_dir: &Path, endpoint: &str, extra: &[&str]) -> Agent {
        Agent::start_env(data_dir, endpoint, extra, &[])
    }

    /// An agent with environment variables set (e.g. a test clock offset file).
    pub(crate) fn start_env(data_dir: &Path, endpoint: &str, extra: &[&str], env: &[(&str, &Path)]) -> Agent {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata-edge"));
        cmd.args(["--agent-id", "e2e-gw", "--listen", &format!("127.0.0.1:{port}"), "--endpoint", endpoint])
            .args(["--backoff-initial", "50ms", "--backoff-max", "300ms", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let (mut child, log) = spawn_logged(cmd, "strata-edge");
        let base = format!("http://127.0.0.1:{port}");
        wait_ready(&base, &mut child, &log, "strata-edge");
        Agent { child, base, log }
    }

    pub(crate) fn metrics(&self) -> HashMap<String, f64> {
        let (status, _, text) = get(&self.base, "/metrics").expect("agent answers");
        assert_eq!(status, 200, "{text}");
        parse_metrics(&text)
    }

    /// `kill -9`.
    pub(crate) fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    #[allow(dead_code)]
    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (up to 10 s) until the agent's log contains `needle`: the log
    /// is read from its stderr by a thread, so a line logged just before an
    /// answer may not be here yet. Panics with the log.
    #[allow(dead_code)]
    pub(crate) fn wait_for_log(&self, needle: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !self.log().contains(needle) {
            assert!(std::time::Instant::now() < deadline, "{needle:?} not in the agent's log:\n{}", self.log());
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request a [`FakeServer`] received.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) request_line: String,
    pub(crate) headers: HashMap<String, String>,
    pub(crate) body: Vec<u8>,
}

/// A stand-in for a Strata server that records requests and answers each
/// with the next status of its script (then 204).
pub(crate) struct FakeServer {
    pub(crate) base: String,
    pub(crate) received: Arc<Mutex<Vec<Received>>>,
}

impl FakeServer {
    pub(crate) fn start(script: Vec<u16>) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&received);
        std::thread::spawn(move || {
            let mut script = script.into_iter();
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let Some(request) = read_request(&stream) else { continue };
                sink.lock().unwrap().push(request);
                let status = script.next().unwrap_or(204);
                let body = if status == 204 { "" } else { "{\"code\":\"scripted\",\"message\":\"scripted answer\"}" };
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} Scripted\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        FakeServer { base, received }
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

pub(crate) fn read_request(stream: &TcpStream) -> Option<Received> {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Received { request_line: request_line.trim_end().to_owned(), headers, body })
}

/// A recorded request's body as text, decompressed per its `Content-Encoding`.
pub(crate) fn body_text(r: &Received) -> String {
    match r.headers.get("content-encoding").map(String::as_str) {
        Some("zstd") => String::from_utf8(zstd::decode_all(&r.body[..]).unwrap()).unwrap(),
        Some("gzip") => gunzip(&r.body),
        _ => String::from_utf8(r.body.clone()).unwrap(),
    }
}

pub(crate) fn gunzip(bytes: &[u8]) -> String {
    let mut out = String::new();
    flate2::read::GzDecoder::new(bytes).read_to_string(&mut out).unwrap();
    out
}
