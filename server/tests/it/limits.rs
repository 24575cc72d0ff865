//! Bounded everything (issue 20, item 5), one table: for each per-request
//! limit, one request just past it against the real binary (small limits
//! set through `STRATA_*`), checking the status and that the error names the
//! limit; after each, `/-/ready` answers and another tenant still writes and
//! reads its own data.
//!
//! | limit | request |
//! |---|---|
//! | `http.max_header_bytes` | a head one header value too long |
//! | `http.max_headers` | one header field too many |
//! | `ingest.max_body_bytes` (as sent) | a body one byte over |
//! | `ingest.max_body_bytes` (gzip, zstd, snappy) | small bodies that inflate one byte over |
//! | `query.max_query_length` | PromQL one byte too long |
//! | expression depth (256) | 300 nested parentheses |
//! | `query.max_series` | a selector of 6 series, limit 5 |
//! | `query.max_samples` | a range query holding 2 × 901 points, limit 1000 |
//! | `query.max_points_per_series` | a range query of 1001 steps, limit 1000 |
//! | `query.max_metadata_results` | `/api/v1/series` of 6 series, limit 4: 200 with 4 and a warning naming it (also `/label/…/values`; a request's smaller `limit` still cuts with Prometheus's own warning) |
//! | `http.header_read_timeout` | a head that stops half-way |
//! | `http.body_read_timeout` | a body that stops half-way |
//! | `http.idle_timeout` | a connection that sends nothing (closed; nothing to answer) |

use crate::harness::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const TOKEN_A: &str = "limits-token-a";
const TOKEN_B: &str = "limits-token-b";
const MAX_BODY: usize = 65_536;

/// How a case's request is sent.
enum Send {
    /// Raw bytes on a fresh connection (heads the HTTP clients would not send).
    Raw(Vec<u8>),
    /// Raw bytes, then silence until the server answers or closes.
    Stalled(Vec<u8>),
    /// A write as tenant a: path, `Content-Encoding` (and remote write's headers for snappy), body.
    Write(&'static str, Option<&'static str>, Vec<u8>),
    /// A PromQL request as tenant a: path and parameters.
    Query(&'static str, Vec<(&'static str, String)>),
}

struct Case {
    limit: &'static str,
    send: Send,
    status: u16,
    /// Text the error must contain (the limit's name).
    names: &'static str,
}

fn raw(s: &Server, bytes: &[u8], wait: Duration) -> (u16, String) {
    let mut stream = TcpStream::connect(s.base.strip_prefix("http://").unwrap()).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    // The server may close before reading everything (it refuses at the bound).
    let _ = stream.write_all(bytes);
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

fn lines(bytes: usize) -> Vec<u8> {
    let t = now_ms() * 1_000_000;
    let mut out = Vec::new();
    let mut i = 0;
    while out.len() <= bytes {
        writeln!(out, "pad,device=d{i} value=1 {t}").unwrap();
        i += 1;
    }
    out
}

fn snappy(bytes: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(bytes).unwrap()
}

async fn send(c: &reqwest::Client, s: &Server, how: &Send) -> (u16, String) {
    match how {
        Send::Raw(bytes) => raw(s, bytes, Duration::from_secs(5)),
        Send::Stalled(bytes) => raw(s, bytes, Duration::from_secs(5)),
        Send::Write(path, encoding, body) => {
            let mut req = c.post(s.url(path)).bearer_auth(TOKEN_A).body(body.clone());
            if let Some(e) = encoding {
                req = req.header("Content-Encoding", *e);
            }
            if *encoding == Some("snappy") {
                req = req
                    .header("Content-Type", "application/x-protobuf")
                    .header("X-Prometheus-Remote-Write-Version", "0.1.0");
            }
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
        Send::Query(path, params) => {
            let r = c.post(s.url(path)).bearer_auth(TOKEN_A).form(params).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    }
}

/// The node answers and tenant b writes and reads back a fresh sample.
async fn others_unaffected(c: &reqwest::Client, s: &Server, round: usize) {
    assert_eq!(http_status(&s.base, "/-/ready"), Some(200), "not ready after a refusal");
    let t = now_ms();
    let line = format!("other,device=b value={round} {}", t * 1_000_000);
    let r = c.post(s.url("/api/v2/write?precision=ns")).bearer_auth(TOKEN_B).body(line).send().await.unwrap();
    assert_eq!(r.status(), 204, "tenant b's write: {}", r.text().await.unwrap());
    let time = format!("{:.3}", t as f64 / 1000.0);
    let r = c.get(s.url("/api/v1/query")).bearer_auth(TOKEN_B).query(&[("query", "other"), ("time", &time)]);
    let v: serde_json::Value = r.send().await.unwrap().json().await.unwrap();
    assert_eq!(v["data"]["result"][0]["value"][1], round.to_string(), "tenant b reads its write: {v}");
}

fn cases() -> Vec<Case> {
    let now = now_ms() / 1000;
    let head =
        |extra: &str| format!("GET /-/ready HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n").into_bytes();
    let range = |q: &str, steps: i64| {
        vec![
            ("query", q.to_owned()),
            ("start", (now - steps).to_string()),
            ("end", now.to_string()),
            ("step", "1".to_owned()),
        ]
    };
    vec![
        Case {
            limit: "http.max_header_bytes",
            send: Send::Raw(head(&format!("X-Pad: {}\r\n", "a".repeat(8192)))),
            status: 431,
            names: "http.max_header_bytes",
        },
        Case {
            limit: "http.max_headers",
            send: Send::Raw(head(&(0..20).map(|i| format!("X-H{i}: v\r\n")).collect::<String>())),
            status: 431,
            names: "http.max_headers",
        },
        Case {
            limit: "ingest.max_body_bytes (as sent)",
            send: Send::Write("/api/v2/write", None, vec![b'#'; MAX_BODY + 1]),
            status: 413,
            names: "ingest.max_body_bytes",
        },
        Case {
            limit: "ingest.max_body_bytes (gzip, decompressed)",
            send: Send::Write("/api/v2/write", Some("gzip"), gzip(&lines(MAX_BODY))),
            status: 413,
            names: "ingest.max_body_bytes",
        },
        Case {
            limit: "ingest.max_body_bytes (zstd, decompressed)",
            send: Send::Write("/api/v2/write", Some("zstd"), zstd::encode_all(&lines(MAX_BODY)[..], 3).unwrap()),
            status: 413,
            names: "ingest.max_body_bytes",
        },
        Case {
            limit: "ingest.max_body_bytes (snappy remote write, decompressed)",
            send: Send::Write("/api/v1/write", Some("snappy"), snappy(&vec![0u8; MAX_BODY + 1])),
            status: 413,
            names: "ingest.max_body_bytes",
        },
        Case {
            limit: "query.max_query_length",
            send: Send::Query("/api/v1/query", vec![("query", format!("m{}", " ".repeat(2048)))]),
            status: 400,
            names: "query.max_query_length",
        },
        Case {
            limit: "expression depth",
            send: Send::Query("/api/v1/query", vec![("query", format!("{}1{}", "(".repeat(300), ")".repeat(300)))]),
            status: 400,
            names: "max expression depth",
        },
        Case {
            limit: "query.max_series",
            send: Send::Query("/api/v1/query", vec![("query", "m".to_owned())]),
            status: 422,
            names: "query.max_series",
        },
        Case {
            limit: "query.max_samples",
            send: Send::Query("/api/v1/query_range", range(r#"m{i=~"0|1"}"#, 900)),
            status: 422,
            names: "query.max_samples",
        },
        Case {
            limit: "query.max_points_per_series",
            send: Send::Query("/api/v1/query_range", range(r#"m{i="0"}"#, 1001)),
            status: 400,
            names: "query.max_points_per_series",
        },
        Case {
            limit: "query.max_metadata_results",
            send: Send::Query("/api/v1/series", vec![("match[]", "m".to_owned())]),
            status: 200,
            names: "results truncated due to limit: query.max_metadata_results (4)",
        },
        Case {
            limit: "http.header_read_timeout",
            send: Send::Stalled(b"GET /-/ready HTTP/1.1\r\nHost: x\r\n".to_vec()),
            status: 408,
            names: "http.header_read_timeout",
        },
        Case {
            limit: "http.body_read_timeout",
            send: Send::Stalled(
                format!("POST /api/v2/write HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN_A}\r\nContent-Length: 100\r\n\r\nm value=1")
                    .into_bytes(),
            ),
            status: 408,
            names: "http.body_read_timeout",
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_limit_is_refused_by_name_and_the_node_and_other_tenants_carry_on() {
    let dir = data_dir();
    let tokens = format!("{{ \"{TOKEN_A}\" = \"tenant-a\", \"{TOKEN_B}\" = \"tenant-b\" }}");
    let max_body = MAX_BODY.to_string();
    let s = Server::start(
        dir.path(),
        &[
            ("STRATA_AUTH__TOKENS", &tokens),
            ("STRATA_HTTP__MAX_HEADER_BYTES", "8192"),
            ("STRATA_HTTP__MAX_HEADERS", "20"),
            ("STRATA_HTTP__IDLE_TIMEOUT", "1s"),
            ("STRATA_HTTP__HEADER_READ_TIMEOUT", "1s"),
            ("STRATA_HTTP__BODY_READ_TIMEOUT", "1s"),
            ("STRATA_INGEST__MAX_BODY_BYTES", &max_body),
            ("STRATA_QUERY__MAX_QUERY_LENGTH", "2048"),
            ("STRATA_QUERY__MAX_SERIES", "5"),
            ("STRATA_QUERY__MAX_SAMPLES", "1000"),
            ("STRATA_QUERY__MAX_POINTS_PER_SERIES", "1000"),
            ("STRATA_QUERY__MAX_METADATA_RESULTS", "4"),
        ],
    );
    // The node closes a connection idle for 1 s (`http.idle_timeout` above), and the timeout cases below take
    // about that long: a pooled connection could be closed just as it is reused (the POST is not retried and
    // fails with "IncompleteMessage", as it did once in CI). Each request here takes a connection of its own.
    let c = reqwest::Client::builder().timeout(Duration::from_secs(30)).pool_max_idle_per_host(0).build().unwrap();
    // Tenant a: six series `m` with samples over the last 15 minutes.
    let t = now_ms();
    let r = c
        .post(s.url("/api/v2/write?precision=ns"))
        .bearer_auth(TOKEN_A)
        .body(
            (0..6)
                .flat_map(|i| (0..16).map(move |k| format!("m,i={i} value={k} {}\n", (t - k * 60_000) * 1_000_000)))
                .collect::<String>(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    others_unaffected(&c, &s, 0).await;

    for (round, case) in cases().into_iter().enumerate() {
        let started = Instant::now();
        let (status, body) = send(&c, &s, &case.send).await;
        assert_eq!(status, case.status, "{}: {body}", case.limit);
        assert!(body.contains(case.names), "{}: the error does not name {:?}: {body}", case.limit, case.names);
        others_unaffected(&c, &s, round + 1).await;
        eprintln!("{}: {status} in {:?}", case.limit, started.elapsed());
    }

    // query.max_metadata_results: the answers are cut to the bound, the request's smaller limit still applies.
    let get = |path: &str| c.get(s.url(path)).bearer_auth(TOKEN_A).send();
    let v: serde_json::Value = get("/api/v1/series?match[]=m").await.unwrap().json().await.unwrap();
    assert_eq!(v["data"].as_array().map(Vec::len), Some(4), "{v}");
    let v: serde_json::Value = get("/api/v1/label/i/values").await.unwrap().json().await.unwrap();
    assert_eq!(v["data"], serde_json::json!(["0", "1", "2", "3"]), "{v}");
    assert!(v["warnings"][0].as_str().is_some_and(|w| w.contains("query.max_metadata_results (4)")), "{v}");
    let v: serde_json::Value = get("/api/v1/label/i/values?limit=2").await.unwrap().json().await.unwrap();
    assert_eq!(v["data"], serde_json::json!(["0", "1"]), "{v}");
    assert_eq!(v["warnings"], serde_json::json!(["results truncated due to limit"]), "{v}");
    let v: serde_json::Value = get("/api/v1/labels").await.unwrap().json().await.unwrap();
    assert_eq!(v["data"], serde_json::json!(["__name__", "i"]), "under the bound: whole, no warning: {v}");
    assert!(v.get("warnings").is_none(), "{v}");

    // http.idle_timeout: a connection that sends nothing is closed (there is no request to answer).
    let mut idle = TcpStream::connect(s.base.strip_prefix("http://").unwrap()).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t0 = Instant::now();
    let mut buf = [0u8; 16];
    let closed = matches!(idle.read(&mut buf), Ok(0)) || t0.elapsed() < Duration::from_secs(5);
    assert!(closed && t0.elapsed() < Duration::from_secs(4), "idle connection open for {:?}", t0.elapsed());
    others_unaffected(&c, &s, 100).await;
}

/// Reads one HTTP/1.1 answer (head and `content-length` body) off `stream`:
/// status, head, body.
fn read_answer(stream: &mut TcpStream) -> (u16, String, String) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_ascii_lowercase();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let length: usize =
        head.lines().find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())).unwrap_or(0);
    while got.len() < head_end + length {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed in the body");
        got.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&got[head_end..head_end + length]).into_owned();
    assert_eq!(got.len(), head_end + length, "bytes after the answer: {:?}", String::from_utf8_lossy(&got));
    (status, head, body)
}

/// A write refused at `ingest.max_body_bytes` is answered before its body is
/// read. The answer says `connection: close`, so a client does not send its
/// next request on a connection whose unread body the server is still
/// discarding; and the discarded bytes are not counted as a request head (a
/// CI run of the table above failed on 2026-12-04 with tenant b's next write
/// on reqwest's pooled connection answered `431` at `http.max_header_bytes`:
/// the drained 64 KiB body had been counted as that write's head).
#[test]
fn a_write_refused_before_its_body_closes_its_connection_and_its_body_is_not_a_head() {
    let dir = data_dir();
    let tokens = format!("{{ \"{TOKEN_A}\" = \"tenant-a\" }}");
    let max_body = MAX_BODY.to_string();
    let s = Server::start(
        dir.path(),
        &[
            ("STRATA_AUTH__TOKENS", &tokens),
            ("STRATA_HTTP__MAX_HEADER_BYTES", "8192"),
            ("STRATA_INGEST__MAX_BODY_BYTES", &max_body),
        ],
    );
    let mut stream = TcpStream::connect(s.base.strip_prefix("http://").unwrap()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = vec![b'#'; MAX_BODY + 1];
    let mut request = format!(
        "POST /api/v2/write HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN_A}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    // Head and body at once, as reqwest sends them (not waiting for `100 Continue`).
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        std::thread::spawn(move || stream.write_all(&request).is_ok())
    };
    let (status, head, text) = read_answer(&mut stream);
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("ingest.max_body_bytes"), "{text}");
    assert!(head.contains("\r\nconnection: close\r\n"), "the refusal keeps the connection open: {head}");
    // Nothing more comes (no `431` for the discarded body), then the connection ends.
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert!(rest.is_empty(), "after the refusal: {:?}", String::from_utf8_lossy(&rest));
    let _ = writer.join();
    assert_eq!(http_status(&s.base, "/-/ready"), Some(200));
}
