//! Hostile writes against the real binary (issue 13, write validation): each
//! answer comes quickly, names the line and the bound it broke, echoes
//! little of the input, and the other lines of the request are stored.

use crate::harness::*;
use std::time::{Duration, Instant};

/// The JSON body of a 400 write answer.
fn answer(status: u16, body: &str) -> serde_json::Value {
    assert_eq!(status, 400, "{}", &body[..body.len().min(2000)]);
    serde_json::from_str(body).unwrap()
}

/// `(line, column, reason)` of each listed error.
fn errors(v: &serde_json::Value) -> Vec<(u64, Option<u64>, String)> {
    v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["line"].as_u64().unwrap(), e["column"].as_u64(), e["reason"].as_str().unwrap().to_owned()))
        .collect()
}

/// Issue 13 item 6: a line of 200,000 fields (or tags) is refused at the
/// bound while parsing. The old duplicate-key check was quadratic: minutes
/// of CPU for such a line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_of_200k_fields_or_tags_are_refused_at_the_bound_within_seconds() {
    let dir = data_dir();
    let s = Server::start(dir.path(), &[]);
    let c = client();
    let fields: Vec<String> = (0..200_000).map(|i| format!("f{i}=1")).collect();
    let tags: Vec<String> = (0..200_000).map(|i| format!("t{i}=v")).collect();
    let now = now_ms();
    let (wide_fields, wide_tags) = (format!("wide {}", fields.join(",")), format!("wide,{} f=1", tags.join(",")));
    // The first field over ingest.max_fields_per_line (1000), the first tag over max_labels_per_series (30, __name__ included).
    let field_column = (wide_fields.find(",f1000=").unwrap() + 2) as u64;
    let tag_column = (wide_tags.find(",t29=").unwrap() + 2) as u64;
    let body = format!("{wide_fields}\n{wide_tags}\nok,device=d1 v=5 {now}\n");
    let started = Instant::now();
    let (status, text) = tokio::time::timeout(
        Duration::from_secs(10),
        write(&c, &s, "/api/v2/write?precision=ms", body.into_bytes(), false),
    )
    .await
    .expect("answered within 10 s");
    let v = answer(status, &text);
    let errs = errors(&v);
    assert_eq!(errs.len(), 2, "{v}");
    let (line, column, reason) = &errs[0];
    assert_eq!((*line, *column), (1, Some(field_column)));
    assert!(reason.starts_with("limit max_fields_per_line exceeded: more than 1000 distinct fields"), "{reason}");
    let (line, column, reason) = &errs[1];
    assert_eq!((*line, *column), (2, Some(tag_column)));
    assert!(reason.starts_with("limit max_labels_per_series exceeded"), "{reason}");
    assert_eq!(v["accepted_lines"], 1, "{v}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(single_value(&query(&c, &s, "ok_v", now).await), 5.0);
}

/// Issue 13 item 16: a small gzip body of lines with huge names made an
/// answer of the body's size (78 KB of gzip answered with 60 MB). Each
/// echoed name is now cut, so the answer stays small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_answers_echo_only_a_short_prefix_of_each_name() {
    let dir = data_dir();
    let s = Server::start(dir.path(), &[]);
    let c = client();
    let key = "k".repeat(20_000);
    let now = now_ms();
    let mut body = String::new();
    for i in 0..100 {
        body.push_str(&format!("m {key}{i}=\"only a string\"\n")); // rejected: no numeric field
        body.push_str(&format!("m v=1,{key}{i}=\"s\" {now}\n")); // stored, the string field skipped
        body.push_str(&format!("m,__{key}{i}=1 v=1\n")); // rejected: reserved prefix
        body.push_str(&format!("m f=1 {key}{i}\n")); // rejected: invalid timestamp
    }
    assert!(body.len() > 8_000_000);
    let gz = gzip(body.as_bytes());
    assert!(gz.len() < 200_000, "{}", gz.len());
    let (status, text) = write(&c, &s, "/api/v2/write?precision=ms", gz, true).await;
    assert!(text.len() < 200_000, "answer of {} bytes to {} bytes of input", text.len(), body.len());
    let v = answer(status, &text);
    assert_eq!((v["accepted_lines"].as_u64(), v["rejected_lines"].as_u64()), (Some(100), Some(300)), "{v}");
    for (line, _, reason) in errors(&v) {
        assert!(reason.len() < 400, "line {line}: {reason}");
        assert!(reason.contains("bytes)"), "line {line}: {reason}");
    }
    for f in v["skipped_fields"].as_array().unwrap() {
        assert!(f["field"].as_str().unwrap().len() < 100, "{f}");
    }
}

/// Issue 13 item 17: samples at 1677, 1969, 2262, past the tenant's hot_ttl
/// (7 d) or more than `ingest.creation_grace_period` (10 m) ahead were
/// acknowledged with 204; they are refused per line (line protocol) or per
/// series (remote write), and the rest is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_outside_the_time_window_are_refused_with_their_line() {
    let dir = data_dir();
    let s = Server::start(dir.path(), &[]);
    let c = client();
    let now = now_ms();
    let ns = |ms: i64| ms * 1_000_000;
    let body = format!(
        "old,device=d v=1 -9223372036854775808\n\
         old,device=d v=2 -1000000000\n\
         old,device=d v=3 9223372036854775807\n\
         old,device=d v=4 {}\n\
         old,device=d v=5 {}\n\
         fine,device=d v=6 {}\n\
         fine,device=d v=7 {}\n",
        ns(now - 8 * 86_400_000),
        ns(now + 3_600_000),
        ns(now - 86_400_000),
        ns(now + 60_000),
    );
    let (status, text) = write(&c, &s, "/api/v2/write", body.into_bytes(), false).await;
    let v = answer(status, &text);
    let errs = errors(&v);
    let lines: Vec<u64> = errs.iter().map(|e| e.0).collect();
    assert_eq!(lines, [1, 2, 3, 4, 5], "{v}");
    for (line, _, reason) in &errs {
        let want = if [3, 5].contains(line) { "ingest.creation_grace_period" } else { "the tenant's hot_ttl" };
        assert!(reason.contains(want), "line {line}: {reason}");
    }
    assert_eq!(v["accepted_lines"], 2, "{v}");
    let count = query(&c, &s, "count_over_time(fine_v[2d])", now + 60_000).await;
    assert_eq!(single_value(&count), 2.0);

    // Remote write applies the same window: the series is listed, its good sample stored.
    use strata_ingest::remote_write::proto::{Label, Sample, TimeSeries};
    use strata_ingest::remote_write::{WriteRequest, encode_request};
    let labels = vec![
        Label { name: "__name__".into(), value: "rw_metric".into() },
        Label { name: "device".into(), value: "d".into() },
    ];
    let samples = vec![
        Sample { value: 1.0, timestamp: i64::MIN },
        Sample { value: 2.0, timestamp: now - 60_000 },
        Sample { value: 3.0, timestamp: i64::MAX },
    ];
    let request =
        WriteRequest { timeseries: vec![TimeSeries { labels, samples, ..Default::default() }], ..Default::default() };
    let r = c
        .post(s.url("/api/v1/write"))
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .body(encode_request(&request).unwrap())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let v = answer(status, &r.text().await.unwrap());
    let reason = v["errors"][0]["reason"].as_str().unwrap();
    assert!(reason.starts_with("2 of its 3 sample(s) not stored"), "{v}");
    assert_eq!(v["errors"][0]["index"], 0, "{v}");
    let count = query(&c, &s, "count_over_time(rw_metric[1h])", now).await;
    assert_eq!(single_value(&count), 1.0);
}

/// Issue 13 item 18: NUL and other control characters were stored in metric
/// names, label names and values; they are refused with line and column.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_in_names_and_values_are_refused_with_line_and_column() {
    let dir = data_dir();
    let s = Server::start(dir.path(), &[]);
    let c = client();
    let now = now_ms();
    let body = format!(
        "nu\0ll,device=d v=1 {now}\n\
         m,dev\0ice=d v=1 {now}\n\
         m,device=d\0 v=1 {now}\n\
         m,device=\x1b[2Jd v=1 {now}\n\
         m,device=d v\x7f=1 {now}\n\
         m,device=d\tx v=8 {now}\n"
    );
    let (status, text) = write(&c, &s, "/api/v2/write?precision=ms", body.into_bytes(), false).await;
    let v = answer(status, &text);
    let got: Vec<(u64, Option<u64>)> = errors(&v).into_iter().map(|(l, c, _)| (l, c)).collect();
    assert_eq!(got, [(1, Some(3)), (2, Some(6)), (3, Some(11)), (4, Some(10)), (5, Some(13))], "{v}");
    for (line, _, reason) in errors(&v) {
        assert!(reason.starts_with("control character U+00"), "line {line}: {reason}");
    }
    // A tab in a tag value is allowed.
    assert_eq!(v["accepted_lines"], 1, "{v}");
    let data = query(&c, &s, "m_v", now).await;
    assert_eq!(data["result"][0]["metric"]["device"], "d\tx", "{data}");
}
