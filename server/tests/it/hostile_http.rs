//! Hostile HTTP clients against the real binary (issue 13): idle and
//! slowloris connections, trickled and oversized bodies, unauthenticated
//! operational endpoints, tenant ids in `/metrics`, gzip bombs on the async
//! workers and shutdown during a long parse.

use crate::harness::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const ADMIN: &str = "hostile-http-admin-token";

fn addr(s: &Server) -> String {
    s.base.strip_prefix("http://").unwrap().to_owned()
}

fn connect(s: &Server) -> TcpStream {
    let stream = TcpStream::connect(addr(s)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream
}

/// Reads until the server closes the connection or `within` passes; returns
/// what was read and whether it closed (EOF or reset) in time.
fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    stream.set_read_timeout(Some(within)).unwrap();
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (String::from_utf8_lossy(&out).into_owned(), true);
            }
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
        if Instant::now() >= deadline {
            return (String::from_utf8_lossy(&out).into_owned(), false);
        }
    }
}

fn status_of(response: &str) -> Option<u16> {
    response.split_whitespace().nth(1)?.parse().ok()
}

/// One request on a fresh connection (`Connection: close`); the status and body.
fn request(s: &Server, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> (u16, String) {
    let mut stream = connect(s);
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let json = if body.starts_with(b"{") { "Content-Type: application/json\r\n" } else { "" };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}{json}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let (response, _) = read_until_closed(&mut stream, Duration::from_secs(30));
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status_of(&response).unwrap_or(0), body)
}

/// How long `GET /-/ready` takes on a fresh connection (None: no 200 within `limit`).
fn ready_latency(s: &Server, limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    let mut stream = TcpStream::connect_timeout(&addr(s).parse().unwrap(), limit).ok()?;
    stream.set_read_timeout(Some(limit)).ok()?;
    write!(stream, "GET /-/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).ok()?;
    (status_of(&String::from_utf8_lossy(&buf[..n])) == Some(200)).then(|| t0.elapsed())
}

fn log_of(s: &Server) -> String {
    s.stderr.lock().unwrap().clone()
}

/// Item 7: idle connections past `http.max_connections` do not lock out
/// `/-/ready`; the longest-idle ones are closed and the cap is logged.
#[test]
fn idle_connections_past_the_cap_do_not_block_ready() {
    let dir = data_dir();
    let s = Server::start(dir.path(), &[("STRATA_HTTP__MAX_CONNECTIONS", "8")]);
    let mut idle: Vec<TcpStream> = (0..20).map(|_| connect(&s)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let latency = ready_latency(&s, Duration::from_secs(5));
    assert!(latency.is_some(), "/-/ready did not answer with 20 idle connections open");
    let closed = idle
        .iter_mut()
        .take(8)
        .filter_map(|c| read_until_closed(c, Duration::from_millis(500)).1.then_some(()))
        .count();
    assert!(closed > 0, "no idle connection was closed to make room");
    assert!(log_of(&s).contains("HTTP connection limit reached"), "{}", log_of(&s));
}

/// Item 7: a connection that never sends a byte is closed after `http.idle_timeout`.
#[test]
fn silent_connection_is_closed_after_the_idle_timeout() {
    let dir = data_dir();
    let s = Server::start(dir.path(), &[("STRATA_HTTP__IDLE_TIMEOUT", "1s")]);
    let mut stream = connect(&s);
    let t0 = Instant::now();
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(6));
    assert!(closed, "an idle connection stayed open for {:?}", t0.elapsed());
}

/// Item 7: slowloris (headers never finished) is cut after `http.header_read_timeout`,
/// although bytes keep arriving.
#[test]
fn slowloris_headers_are_cut_after_the_header_read_timeout() {
    let dir = data_dir();
    let s = Server::start(dir.path(), &[("STRATA_HTTP__HEADER_READ_TIMEOUT", "1s")]);
    let mut stream = connect(&s);
    stream.write_all(b"GET /-/ready HTTP/1.1\r\nHost: x\r\n").unwrap();
    let t0 = Instant::now();
    let mut closed = false;
    for i in 0..12 {
        // One more header line every 500 ms: never idle, never complete.
        if write!(stream, "X-Slow-{i}: a\r\n").is_err() {
            closed = true;
            break;
        }
        let (_, eof) = read_until_closed(&mut stream, Duration::from_millis(500));
        if eof {
            closed = true;
            break;
        }
    }
    assert!(closed, "slowloris connection still open after {:?}", t0.elapsed());
    assert!(t0.elapsed() < Duration::from_secs(5), "closed only after {:?}", t0.elapsed());
}

/// Item 15: a body trickled at a few bytes a second is cut after `http.body_read_timeout`.
#[test]
fn trickled_body_is_cut_after_the_body_read_timeout() {
    let dir = data_dir();
    let s = Server::start(dir.path(), &[("STRATA_HTTP__BODY_READ_TIMEOUT", "1s")]);
    let mut stream = connect(&s);
    write!(stream, "POST /api/v2/write?precision=ms HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n").unwrap();
    let t0 = Instant::now();
    let mut response = String::new();
    for _ in 0..20 {
        if stream.write_all(b"m").is_err() {
            break;
        }
        let (got, eof) = read_until_closed(&mut stream, Duration::from_millis(300));
        response.push_str(&got);
        if eof || !response.is_empty() {
            break;
        }
    }
    assert!(t0.elapsed() < Duration::from_secs(4), "the trickle lasted {:?}", t0.elapsed());
    assert_eq!(status_of(&response), Some(408), "{response}");
}

/// Item 15: a declared `Content-Length` over the limit is refused before any body byte.
#[test]
fn oversized_content_length_is_refused_up_front() {
    let dir = data_dir();
    let s = Server::start(dir.path(), &[]);
    let remote_write = "Content-Encoding: snappy\r\nContent-Type: application/x-protobuf\r\n";
    for (path, headers) in [("/api/v2/write", ""), ("/write", ""), ("/api/v1/write", remote_write)] {
        let mut stream = connect(&s);
        write!(stream, "POST {path} HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: 10000000000\r\n\r\n").unwrap();
        let mut buf = [0u8; 512];
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = stream.read(&mut buf).unwrap_or(0);
        let response = String::from_utf8_lossy(&buf[..n]);
        assert_eq!(status_of(&response), Some(413), "{path}: {response}");
    }
}

/// Item 10: `/internal/*` and the ingest status need the admin token and POST;
/// the flush answer does not show the data dir; health stays open.
#[test]
fn internal_endpoints_need_the_admin_token_and_post() {
    let dir = data_dir();
    let s = Server::start(dir.path(), &[("STRATA_ADMIN__TOKEN", ADMIN)]);
    for path in ["/internal/flush", "/internal/compact", "/internal/roll"] {
        assert_eq!(request(&s, "POST", path, None, b"").0, 401, "{path} without a token");
        assert_eq!(request(&s, "POST", path, Some("not-the-admin-token"), b"").0, 401, "{path} wrong token");
        assert_eq!(request(&s, "GET", path, Some(ADMIN), b"").0, 405, "GET {path}");
    }
    let (status, body) = request(&s, "POST", "/internal/flush", Some(ADMIN), b"");
    assert_eq!(status, 200, "{body}");
    assert_eq!(request(&s, "POST", "/internal/compact", Some(ADMIN), b"").0, 200);
    assert_eq!(request(&s, "POST", "/internal/roll", Some(ADMIN), b"").0, 200, "the cold tier is on by default");
    {
        let off_dir = data_dir();
        let off = Server::start(off_dir.path(), &[("STRATA_ADMIN__TOKEN", ADMIN), ("STRATA_COLD__ENABLED", "false")]);
        assert_eq!(request(&off, "POST", "/internal/roll", Some(ADMIN), b"").0, 409, "cold tier off");
    }
    let lines = format!("m,device=d1 v=1 {}\n", now_ms());
    assert_eq!(request(&s, "POST", "/api/v2/write?precision=ms", None, lines.as_bytes()).0, 204);
    let (status, body) = request(&s, "POST", "/internal/flush", Some(ADMIN), b"");
    assert_eq!(status, 200, "{body}");
    let data_dir = std::fs::canonicalize(dir.path()).unwrap();
    assert!(!body.contains(&*data_dir.to_string_lossy()), "flush shows the data dir: {body}");
    for path in ["/api/v1/status/ingest", "/internal/status"] {
        assert_eq!(request(&s, "GET", path, None, b"").0, 401, "{path}");
        assert_eq!(request(&s, "GET", path, Some(ADMIN), b"").0, 200, "{path}");
    }
    // The peer endpoint keeps its own `[cluster] token` (none here: off).
    assert_eq!(request(&s, "POST", "/internal/v1/select", Some(ADMIN), b"{}").0, 401);
    assert_eq!(request(&s, "GET", "/-/ready", None, b"").0, 200);
    assert_eq!(request(&s, "GET", "/-/healthy", None, b"").0, 200);
}

/// Item 10: `/metrics` names no tenant unless `[metrics] per_tenant`, the metrics token or the admin token.
#[test]
fn metrics_name_tenants_only_when_asked() {
    let dir = data_dir();
    let scrape = "hostile-http-metrics-token";
    let s = Server::start(dir.path(), &[("STRATA_ADMIN__TOKEN", ADMIN), ("STRATA_METRICS__TOKEN", scrape)]);
    let lines = format!("m,device=d1 v=1 {}\n", now_ms());
    assert_eq!(request(&s, "POST", "/api/v2/write?precision=ms", None, lines.as_bytes()).0, 204);
    assert_eq!(request(&s, "POST", "/internal/flush", Some(ADMIN), b"").0, 200);
    let (status, open) = request(&s, "GET", "/metrics", None, b"");
    assert_eq!(status, 200);
    assert!(open.contains("strata_ingest_samples_total 1"), "node-level series stay open:\n{open}");
    assert!(!open.contains("tenant="), "tenant ids without the admin token:\n{open}");
    assert!(!open.contains("strata_tenant_"), "{open}");
    let (_, admin) = request(&s, "GET", "/metrics", Some(ADMIN), b"");
    assert!(admin.contains("strata_tenant_samples_accepted_total{tenant=\"default\"} 1"), "{admin}");
    let (_, scraped) = request(&s, "GET", "/metrics", Some(scrape), b"");
    assert!(scraped.contains("strata_tenant_samples_accepted_total{tenant=\"default\"} 1"), "{scraped}");
    // The metrics token grants nothing else.
    assert_eq!(request(&s, "POST", "/internal/flush", Some(scrape), b"").0, 401);
    drop(s);

    let dir = data_dir();
    let s = Server::start(dir.path(), &[("STRATA_METRICS__PER_TENANT", "true")]);
    assert_eq!(request(&s, "POST", "/api/v2/write?precision=ms", None, lines.as_bytes()).0, 204);
    let (_, open) = request(&s, "GET", "/metrics", None, b"");
    assert!(open.contains("strata_tenant_samples_accepted_total{tenant=\"default\"} 1"), "opted in:\n{open}");
}

/// Item 9: gzip bodies are inflated off the async workers: a stream of
/// decompression bombs (refused at the limit) does not stall `/-/ready`, and
/// the refused bombs are charged to the tenant's rate until it is refused unread.
#[test]
fn gzip_bombs_do_not_stall_ready() {
    let dir = data_dir();
    let s = Server::start(dir.path(), &[]);
    // 64 MiB + 1 of newlines: ~64 KiB as gzip, inflated up to the 64 MiB limit, then refused.
    let bomb = gzip(&vec![b'\n'; (64 << 20) + 1]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Answers seen: [413 refused, 429 rate-limited].
    let seen = std::sync::Arc::new([std::sync::atomic::AtomicUsize::new(0), std::sync::atomic::AtomicUsize::new(0)]);
    let senders: Vec<_> = (0..32)
        .map(|_| {
            let (stop, seen, bomb, addr) =
                (std::sync::Arc::clone(&stop), std::sync::Arc::clone(&seen), bomb.clone(), addr(&s));
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let Ok(mut c) = TcpStream::connect(&addr) else { continue };
                    let head = format!(
                        "POST /api/v2/write HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\
                         Connection: close\r\n\r\n",
                        bomb.len()
                    );
                    if c.write_all(head.as_bytes()).and_then(|()| c.write_all(&bomb)).is_err() {
                        continue;
                    }
                    let (response, _) = read_until_closed(&mut c, Duration::from_secs(60));
                    match status_of(&response) {
                        Some(413) => seen[0].fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                        Some(429) => seen[1].fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                        _ => 0,
                    };
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut latencies = Vec::new();
    for _ in 0..8 {
        latencies.push(ready_latency(&s, Duration::from_secs(3)));
        std::thread::sleep(Duration::from_millis(300));
    }
    // Each refused bomb is charged to the tenant's rate (64 MiB inflated: ~1M of
    // the 20M burst), so the bombs are soon refused unread with 429.
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen[1].load(std::sync::atomic::Ordering::Relaxed) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in senders {
        t.join().unwrap();
    }
    let [refused, limited] = [0, 1].map(|i| seen[i].load(std::sync::atomic::Ordering::Relaxed));
    assert!(refused > 0, "no bomb was refused with 413");
    assert!(limited > 0, "{refused} bombs refused and none rate-limited");
    // A liveness bound, not a benchmark: inline inflation held it for seconds.
    let slow = latencies.iter().any(|l| l.is_none_or(|l| l >= Duration::from_secs(2)));
    assert!(!slow, "/-/ready under the bombs (None: no answer within 3 s): {latencies:?}");
}

/// Item 14: shutdown finishes within `shutdown_timeout` while a long parse runs.
#[test]
fn shutdown_does_not_wait_for_a_long_parse() {
    let dir = data_dir();
    let s = Server::start(
        dir.path(),
        &[("STRATA_SHUTDOWN_TIMEOUT", "1s"), ("STRATA_INGEST__MAX_BODY_BYTES", &(256u64 << 20).to_string())],
    );
    // Large bodies of distinct series: seconds of parsing each on a debug build.
    let t = now_ms();
    let body: String = (0..1_000_000).map(|i| format!("m,device=d{i} v={i} {t}\n")).collect();
    let body = std::sync::Arc::new(body.into_bytes());
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let (body, addr) = (std::sync::Arc::clone(&body), addr(&s));
            std::thread::spawn(move || {
                let mut c = TcpStream::connect(&addr).unwrap();
                let head = format!(
                    "POST /api/v2/write?precision=ms HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                let _ = c.write_all(head.as_bytes()).and_then(|()| c.write_all(&body));
                let _ = read_until_closed(&mut c, Duration::from_secs(120));
            })
        })
        .collect();
    // Let the bodies arrive and the parses start.
    std::thread::sleep(Duration::from_secs(2));
    let t0 = Instant::now();
    let (status, log) = s.terminate();
    let took = t0.elapsed();
    assert!(status.success(), "{log}");
    assert!(took < Duration::from_secs(5), "shutdown took {took:?} with shutdown_timeout = 1s\n{log}");
    assert!(log.contains("strata stopped cleanly"), "{log}");
    for w in writers {
        w.join().unwrap();
    }
}
