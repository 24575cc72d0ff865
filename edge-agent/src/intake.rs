//! HTTP intake: InfluxDB line protocol (`/api/v2/write`, `/write`, gzip).
//!
//! Lines are parsed with the server's parser
//! (`strata_schemas::line_protocol`), so a bad line gets the same per-line
//! error (line, column, reason) as from the server and the valid lines are
//! kept. Accepted lines are rewritten with an explicit nanosecond timestamp
//! (a line without one gets the agent's clock once per request) and queued
//! (requests arriving together share one batch, see `agent.rs`); the answer
//! (204, or 400 listing the rejected lines) is sent only after the batch is
//! durable. A full queue answers 503 with
//! `Retry-After` and queues nothing of the request.

use std::collections::HashMap;
use std::io::Read as _;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use strata_schemas::line_protocol::{FieldValue, parse_lines, write_line};
use strata_schemas::time::Precision;

use crate::agent::Agent;
use crate::error::Error;
use crate::metrics::Metrics;

/// One rejected line, as the server reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineError {
    /// 1-based line number in the request body.
    pub line: usize,
    /// 1-based byte column, when the problem has a position.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// What is wrong.
    pub reason: String,
}

/// A request body turned into a queue payload.
#[derive(Debug, Default, PartialEq)]
pub struct Canonical {
    /// The accepted lines, one per `\n`, each with a nanosecond timestamp.
    pub payload: String,
    /// How many lines were accepted.
    pub accepted_lines: usize,
    /// Numeric fields (samples) in the accepted lines.
    pub samples: usize,
    /// The rejected lines.
    pub rejected: Vec<LineError>,
}

/// Parses `body` and rewrites its valid lines with explicit nanosecond
/// timestamps: a line's own timestamp is converted from `precision`, a line
/// without one gets `now_ns`.
pub fn canonicalise(body: &[u8], precision: Precision, now_ns: i64) -> Canonical {
    let mut out = Canonical::default();
    let factor: i64 = match precision {
        Precision::Nanoseconds => 1,
        Precision::Microseconds => 1_000,
        Precision::Milliseconds => 1_000_000,
        Precision::Seconds => 1_000_000_000,
    };
    for parsed in parse_lines(body) {
        let mut line = match parsed {
            Ok(line) => line,
            Err(e) => {
                out.rejected.push(LineError { line: e.line, column: Some(e.column), reason: e.message });
                continue;
            }
        };
        let ts = match line.timestamp {
            None => now_ns,
            Some(ts) => match ts.checked_mul(factor) {
                Some(ns) => ns,
                None => {
                    let reason = format!("timestamp {ts} overflows in precision {precision:?}");
                    out.rejected.push(LineError { line: line.line_no, column: None, reason });
                    continue;
                }
            },
        };
        line.timestamp = Some(ts);
        out.accepted_lines += 1;
        out.samples += line.fields.iter().filter(|(_, v)| !matches!(v, FieldValue::String(_))).count();
        write_line(&mut out.payload, &line);
    }
    out
}

/// Numeric fields in a queued payload (for the sent-samples counter).
pub fn count_samples(payload: &[u8]) -> u64 {
    parse_lines(payload)
        .filter_map(Result::ok)
        .map(|l| l.fields.iter().filter(|(_, v)| !matches!(v, FieldValue::String(_))).count() as u64)
        .sum()
}

#[derive(Debug, Serialize)]
struct ErrorBody {
    code: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    accepted_lines: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rejected_lines: Option<usize>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<LineError>,
}

/// Most per-line errors listed in one answer.
const MAX_REPORTED_ERRORS: usize = 100;

fn simple(status: StatusCode, code: &'static str, message: impl Into<String>) -> Response {
    let body = ErrorBody { code, message: message.into(), accepted_lines: None, rejected_lines: None, errors: vec![] };
    (status, axum::Json(body)).into_response()
}

/// The `/api/v2/write` and `/write` handler.
pub(crate) async fn write(
    State(agent): State<Arc<Agent>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let m = &agent.metrics;
    Metrics::add(&m.intake_requests, 1);
    let precision = match params.get("precision").map(String::as_str) {
        None | Some("") => Precision::Nanoseconds,
        Some(p) => match p.parse::<Precision>() {
            Ok(p) => p,
            Err(e) => return simple(StatusCode::BAD_REQUEST, "invalid", e.to_string()),
        },
    };
    let encoding = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("identity");
    let gzip = match encoding.trim().to_ascii_lowercase().as_str() {
        "" | "identity" => false,
        "gzip" | "x-gzip" => true,
        other => {
            let msg = format!("unsupported Content-Encoding {other:?} (use gzip or none)");
            return simple(StatusCode::UNSUPPORTED_MEDIA_TYPE, "invalid", msg);
        }
    };
    let limit = agent.config.intake.max_body_bytes;
    let now_ns = agent.clock.sample_time_ns();
    let work = tokio::task::spawn_blocking(move || {
        let body = if gzip {
            let mut out = Vec::new();
            let mut decoder = flate2::read::MultiGzDecoder::new(&body[..]).take(limit as u64 + 1);
            if let Err(e) = decoder.read_to_end(&mut out) {
                return Err(Box::new(simple(StatusCode::BAD_REQUEST, "invalid", format!("invalid gzip body: {e}"))));
            }
            if out.len() > limit {
                let msg = format!("decompressed request body is larger than {limit} bytes (intake.max_body_bytes)");
                return Err(Box::new(simple(StatusCode::PAYLOAD_TOO_LARGE, "request too large", msg)));
            }
            Bytes::from(out)
        } else {
            body
        };
        Ok(canonicalise(&body, precision, now_ns))
    });
    let c = match work.await {
        Ok(Ok(c)) => c,
        Ok(Err(resp)) => return *resp,
        Err(e) => return simple(StatusCode::INTERNAL_SERVER_ERROR, "internal error", e.to_string()),
    };
    if c.accepted_lines > 0 {
        if let Err(e) = agent.append(c.payload.into_bytes()).await {
            return queue_refusal(&agent, e);
        }
        agent.wake.notify_one();
    }
    Metrics::add(&m.intake_lines_accepted, c.accepted_lines as u64);
    Metrics::add(&m.intake_lines_rejected, c.rejected.len() as u64);
    if c.rejected.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let total = c.accepted_lines + c.rejected.len();
    let first = &c.rejected[0];
    let mut message = format!(
        "partial write: {} of {total} lines rejected, the other {} queued; first error: line {}: {}",
        c.rejected.len(),
        c.accepted_lines,
        first.line,
        first.reason
    );
    if c.rejected.len() > MAX_REPORTED_ERRORS {
        message.push_str(&format!(" (only the first {MAX_REPORTED_ERRORS} errors are listed)"));
    }
    let body = ErrorBody {
        code: "invalid",
        message,
        accepted_lines: Some(c.accepted_lines),
        rejected_lines: Some(c.rejected.len()),
        errors: c.rejected.into_iter().take(MAX_REPORTED_ERRORS).collect(),
    };
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

fn queue_refusal(agent: &Agent, e: Error) -> Response {
    match e {
        Error::Full { .. } => {
            Metrics::add(&agent.metrics.intake_refused, 1);
            let mut resp = simple(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("not queued, retry later (everything already queued is kept): {e}"),
            );
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            resp
        }
        Error::TooLarge { .. } => simple(StatusCode::PAYLOAD_TOO_LARGE, "request too large", e.to_string()),
        e => {
            tracing::error!(error = %e, "queue append failed");
            agent.metrics.set_error(format!("queue: {e}"));
            simple(StatusCode::INTERNAL_SERVER_ERROR, "internal error", format!("not queued: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_lines_are_kept_and_get_nanosecond_timestamps() {
        let body = b"m,dev=a v=1 1700000000\nbad line\nm,dev=b v=2i,s=\"x\"\n\n# comment\nm v=3 99999999999999999\n";
        let c = canonicalise(body, Precision::Seconds, 42);
        assert_eq!(c.payload, "m,dev=a v=1 1700000000000000000\nm,dev=b v=2i,s=\"x\" 42\n");
        assert_eq!((c.accepted_lines, c.samples), (2, 2));
        assert_eq!(c.rejected.len(), 2);
        assert_eq!((c.rejected[0].line, c.rejected[0].column.is_some()), (2, true));
        assert_eq!((c.rejected[1].line, c.rejected[1].column), (6, None));
        assert!(c.rejected[1].reason.contains("overflows"), "{}", c.rejected[1].reason);
        assert_eq!(count_samples(c.payload.as_bytes()), 2);
    }

    #[test]
    fn errors_match_the_parser() {
        let c = canonicalise(b"m,t=1 v=", Precision::Nanoseconds, 0);
        let e = parse_lines(b"m,t=1 v=").next().unwrap().unwrap_err();
        assert_eq!(c.rejected, vec![LineError { line: 1, column: Some(e.column), reason: e.message }]);
        assert!(c.payload.is_empty());
    }
}
