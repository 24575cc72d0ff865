//! Prometheus remote write 1.0: `POST /api/v1/write`.
//!
//! ```text
//!  POST /api/v1/write ──► auth → tenant ──► headers ──► body ≤ max_body_bytes
//!    snappy block ──► decompress_len ≤ max_body_bytes ──► protobuf prometheus.WriteRequest   (proto)
//!      ──► per series: validate, sort labels, series id, device_hash % P                     (series)
//!      ──► IngestLog::append, durable ──► 204 / 200 / 400
//! ```
//!
//! The protocol (<https://prometheus.io/docs/specs/prw/remote_write_spec/>):
//! the body is a protobuf `prometheus.WriteRequest` compressed with snappy's
//! *block* format (not the framed/stream format), sent with
//! `Content-Encoding: snappy` and `Content-Type: application/x-protobuf`.
//! Each `TimeSeries` carries a label set (with `__name__`) and float samples
//! at millisecond timestamps. NaN values, including Prometheus's staleness
//! marker `0x7ff0000000000002`, are stored bit for bit.
//!
//! The tenant comes from the `Authorization` header (`Bearer <t>`, as
//! Prometheus's `authorization: { credentials: … }` sends it, or `Token <t>`).
//!
//! Answers (Prometheus retries 5xx and 429, never other 4xx):
//!
//! | status | when | body |
//! |---|---|---|
//! | `204` | every series was stored | none |
//! | `200` | every series was stored, but exemplars or native histograms were not (unsupported) | JSON with the counts; also an `X-Strata-Warning` header |
//! | `400` | some series are invalid: the valid ones are stored, retrying would not help | JSON listing each rejected series (`index`, `series`, `reason`) |
//! | `400` | the body is not snappy or not a `WriteRequest` | JSON `code`/`message` |
//! | `401`/`403` | missing/invalid token, or a token without write access | JSON |
//! | `413` | body larger than `ingest.max_body_bytes`, as sent or decompressed | JSON |
//! | `415` | `Content-Encoding` other than `snappy`, or a `Content-Type` other than protobuf remote write 1.0 (remote write 2.0 is not supported) | JSON |
//! | `503` + `Retry-After` / `500` | the ingest log failed; nothing is acknowledged and retrying is safe | JSON |
//!
//! Metric metadata in a request is accepted and not stored.

pub mod metrics;
pub mod proto;
pub mod series;

use crate::config::IngestConfig;
use crate::http::{Refusal, WriteErrorBody, WriteState, auth_error, log_error, refuse, too_large};
use crate::log::{IngestLog, LogRecord};
use crate::metrics::IngestMetrics;
use crate::series_cache::SeriesCache;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Serialize;
use std::sync::Arc;
use strata_schemas::{Access, TenantId, TenantResolver, WriteBatch};

pub use metrics::RemoteWriteMetrics;
pub use proto::{DecodeError, WriteRequest, decode_request, encode_request};
pub use series::{RemoteWriteConversion, SeriesConverter, SeriesError, SeriesRejection};

/// Header carrying a human-readable warning on a 2xx answer.
pub const WARNING_HEADER: &str = "x-strata-warning";

/// The remote-write route, counting into [`RemoteWriteMetrics::shared`].
pub fn router(state: WriteState) -> Router {
    router_with_metrics(state, RemoteWriteMetrics::shared())
}

/// The remote-write route, counting into `metrics`.
pub fn router_with_metrics(state: WriteState, metrics: Arc<RemoteWriteMetrics>) -> Router {
    routes(RemoteWriteState {
        log: state.log,
        resolver: state.resolver,
        config: state.config,
        ingest_metrics: state.metrics,
        series_cache: state.series_cache,
        metrics,
    })
}

fn routes(state: RemoteWriteState) -> Router {
    Router::new()
        .route("/api/v1/write", post(write))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

/// What the endpoint uses of [`WriteState`], plus its own counters.
#[derive(Debug, Clone)]
struct RemoteWriteState {
    log: Arc<dyn IngestLog>,
    resolver: Arc<dyn TenantResolver>,
    config: Arc<IngestConfig>,
    ingest_metrics: Arc<IngestMetrics>,
    series_cache: Arc<SeriesCache>,
    metrics: Arc<RemoteWriteMetrics>,
}

/// JSON body of the 200 and per-series 400 answers.
#[derive(Debug, Serialize)]
struct RemoteWriteAnswer {
    code: &'static str,
    message: String,
    accepted_series: usize,
    rejected_series: usize,
    histograms_ignored: usize,
    exemplars_ignored: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<SeriesError>,
}

async fn write(State(state): State<RemoteWriteState>, headers: HeaderMap, body: Body) -> Response {
    RemoteWriteMetrics::add(&state.metrics.requests, 1);
    IngestMetrics::add(&state.ingest_metrics.requests, 1);
    match receive(&state, &headers, body).await {
        Ok(conversion) => commit(&state, conversion).await,
        Err(resp) => {
            RemoteWriteMetrics::add(&state.metrics.requests_refused, 1);
            IngestMetrics::add(&state.ingest_metrics.requests_refused, 1);
            *resp
        }
    }
}

/// Authenticates, reads, decodes and converts a request.
async fn receive(state: &RemoteWriteState, headers: &HeaderMap, body: Body) -> Result<RemoteWriteConversion, Refusal> {
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let tenant = state.resolver.resolve(auth, Access::Write).map_err(auth_error)?;
    check_headers(headers)?;
    let limit = state.config.max_body_bytes;
    let raw = axum::body::to_bytes(body, limit).await.map_err(|_| too_large(limit, "request body"))?;
    IngestMetrics::add(&state.ingest_metrics.bytes_received, raw.len() as u64);
    let state = state.clone();
    tokio::task::spawn_blocking(move || decode_and_convert(&state, &tenant, &raw))
        .await
        .map_err(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, WriteErrorBody::simple("internal", e.to_string())))?
}

fn decode_and_convert(
    state: &RemoteWriteState,
    tenant: &TenantId,
    raw: &Bytes,
) -> Result<RemoteWriteConversion, Refusal> {
    let limit = state.config.max_body_bytes;
    let request = decode_request(raw, limit).map_err(|e| decode_refusal(e, limit))?;
    let converter = SeriesConverter {
        tenant,
        device_label: &state.config.device_label,
        partitions: state.log.partitions(),
        cache: Some(&state.series_cache),
    };
    Ok(converter.convert(&request))
}

fn decode_refusal(e: DecodeError, limit: usize) -> Refusal {
    match e {
        DecodeError::TooLarge { .. } => too_large(limit, "decompressed request body"),
        DecodeError::Snappy { .. } | DecodeError::Protobuf { .. } => {
            refuse(StatusCode::BAD_REQUEST, WriteErrorBody::simple("invalid", e.to_string()))
        }
    }
}

/// Checks `Content-Encoding: snappy` and a remote write 1.0 `Content-Type`.
fn check_headers(headers: &HeaderMap) -> Result<(), Refusal> {
    let unsupported =
        |message: String| refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, WriteErrorBody::simple("invalid", message));
    match headers.get(header::CONTENT_ENCODING).map(|v| v.to_str().map(str::trim)) {
        Some(Ok(e)) if e.eq_ignore_ascii_case("snappy") => {}
        None => {
            return Err(unsupported(
                "missing Content-Encoding: remote write bodies must be snappy-compressed (Content-Encoding: snappy)"
                    .to_owned(),
            ));
        }
        Some(other) => {
            let other = other.unwrap_or("<not ASCII>");
            return Err(unsupported(format!(
                "unsupported Content-Encoding {other:?}: remote write bodies must be snappy-compressed (Content-Encoding: snappy)"
            )));
        }
    }
    match headers.get(header::CONTENT_TYPE).map(|v| v.to_str()) {
        None => Ok(()),
        Some(Ok(ct)) => check_content_type(ct).map_err(unsupported),
        Some(Err(_)) => Err(unsupported("Content-Type is not ASCII".to_owned())),
    }
}

/// Accepts `application/x-protobuf`, optionally with `proto=prometheus.WriteRequest`.
fn check_content_type(ct: &str) -> Result<(), String> {
    let mut parts = ct.split(';').map(str::trim);
    let media = parts.next().unwrap_or_default();
    if !media.eq_ignore_ascii_case("application/x-protobuf") {
        return Err(format!("unsupported Content-Type {ct:?}: remote write 1.0 sends application/x-protobuf"));
    }
    for param in parts {
        if let Some((k, v)) = param.split_once('=')
            && k.trim().eq_ignore_ascii_case("proto")
            && v.trim() != "prometheus.WriteRequest"
        {
            return Err(format!(
                "unsupported protobuf message {:?}: Strata accepts remote write 1.0 (prometheus.WriteRequest) only; \
                 set protobuf_message: prometheus.WriteRequest in the remote_write config",
                v.trim()
            ));
        }
    }
    Ok(())
}

/// Appends the batches and builds the answer.
async fn commit(state: &RemoteWriteState, mut c: RemoteWriteConversion) -> Response {
    if let Err(resp) = append(state, std::mem::take(&mut c.batches)).await {
        return resp;
    }
    let m = &state.metrics;
    RemoteWriteMetrics::add(&m.series_accepted, c.accepted_series);
    RemoteWriteMetrics::add(&m.samples_accepted, c.samples);
    RemoteWriteMetrics::add(&m.series_rejected, c.rejected.len());
    RemoteWriteMetrics::add(&m.histograms_ignored, c.histograms_ignored);
    RemoteWriteMetrics::add(&m.exemplars_ignored, c.exemplars_ignored);
    IngestMetrics::add(&state.ingest_metrics.samples_accepted, c.samples as u64);
    let ignored = ignored_message(&c);
    if c.rejected.is_empty() && ignored.is_none() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let max = state.config.max_reported_errors;
    let (status, code, message) = if c.rejected.is_empty() {
        (StatusCode::OK, "ignored", ignored.clone().unwrap_or_default())
    } else {
        (StatusCode::BAD_REQUEST, "invalid", partial_message(&c, max, ignored.as_deref()))
    };
    let body = RemoteWriteAnswer {
        code,
        message,
        accepted_series: c.accepted_series,
        rejected_series: c.rejected.len(),
        histograms_ignored: c.histograms_ignored,
        exemplars_ignored: c.exemplars_ignored,
        errors: c.rejected.into_iter().take(max).collect(),
    };
    let mut resp = (status, axum::Json(body)).into_response();
    if let Some(value) = ignored.and_then(|w| HeaderValue::from_str(&w).ok()) {
        resp.headers_mut().insert(HeaderName::from_static(WARNING_HEADER), value);
    }
    resp
}

/// Appends one record per partition and waits until all are durable and
/// applied; the error is the answer to send (503 + `Retry-After` or 500).
async fn append(state: &RemoteWriteState, batches: Vec<(u32, WriteBatch)>) -> Result<(), Response> {
    if batches.is_empty() {
        return Ok(());
    }
    let records = batches
        .into_iter()
        .map(|(partition, batch)| LogRecord { partition, payload: batch.to_bytes(), decoded: Some(Box::new(batch)) })
        .collect();
    state.log.append(records).await.map(|_| ()).map_err(|e| {
        IngestMetrics::add(&state.ingest_metrics.append_failures, 1);
        log_error(e)
    })
}

/// What was received and not stored although its series was valid.
fn ignored_message(c: &RemoteWriteConversion) -> Option<String> {
    let what = match (c.histograms_ignored, c.exemplars_ignored) {
        (0, 0) => return None,
        (h, 0) => format!("{h} native histogram sample(s)"),
        (0, e) => format!("{e} exemplar(s)"),
        (h, e) => format!("{h} native histogram sample(s) and {e} exemplar(s)"),
    };
    Some(format!("{what} not stored: Strata stores float samples only; the float samples were stored"))
}

fn partial_message(c: &RemoteWriteConversion, max: usize, ignored: Option<&str>) -> String {
    let total = c.accepted_series + c.rejected.len();
    let mut msg = format!(
        "partial write: {} of {total} series rejected, the other {} stored",
        c.rejected.len(),
        c.accepted_series
    );
    if let Some(first) = c.rejected.first() {
        msg.push_str(&format!("; first error: series {} {}: {}", first.index, first.series, first.reason));
    }
    if c.rejected.len() > max {
        msg.push_str(&format!(" (only the first {max} errors are listed)"));
    }
    if let Some(ignored) = ignored {
        msg.push_str("; ");
        msg.push_str(ignored);
    }
    msg
}

#[cfg(test)]
mod tests;
