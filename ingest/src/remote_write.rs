//! Prometheus remote write 1.0: `POST /api/v1/write`.
//!
//! ```text
//!  POST /api/v1/write ──► auth → tenant, data region ──► headers ──► body ≤ max_body_bytes / max_request_bytes
//!    snappy block ──► decompress_len ≤ max_body_bytes ──► protobuf prometheus.WriteRequest   (proto)
//!      ──► per series: validate, residency label, label limits, sort labels, series id, device_hash % P  (series)
//!      ──► tenant rate ──► IngestLog::append, durable ──► 204 / 200 / 400
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
//! Tenant policy applies as for line protocol ([`crate::http`]): data
//! regions, the residency label (per series), `max_request_bytes`, the label
//! limits and the ingestion rate.
//!
//! Answers (Prometheus retries 5xx and 429, never other 4xx):
//!
//! | status | when | body |
//! |---|---|---|
//! | `204` | every series was stored | none |
//! | `200` | every series was stored, but exemplars or native histograms were not (unsupported) | JSON with the counts; also an `X-Strata-Warning` header |
//! | `400` | some series are invalid or belong, by the tenant's residency label, to another jurisdiction: the others are stored, retrying would not help | JSON listing each rejected series (`index`, `series`, `reason`) |
//! | `400` | the body is not snappy or not a `WriteRequest` | JSON `code`/`message` |
//! | `401`/`403` | missing/invalid token, a token without write access, or a tenant that does not store data in this region | JSON |
//! | `413` | body larger than `ingest.max_body_bytes` or the tenant's `max_request_bytes`, as sent or decompressed | JSON |
//! | `429` + `Retry-After` | over the tenant's ingestion rate; nothing stored (Prometheus 2.x retries it only with `retry_on_http_429`) | JSON |
//! | `415` | `Content-Encoding` other than `snappy`, or a `Content-Type` other than protobuf remote write 1.0 (remote write 2.0 is not supported) | JSON |
//! | `503` + `Retry-After` / `500` | the ingest log failed; nothing is acknowledged and retrying is safe | JSON |
//!
//! Metric metadata in a request is accepted and not stored.

pub mod metrics;
pub mod proto;
pub mod series;

use crate::convert::{LabelLimits, ResidencyCheck, WriteBounds};
use crate::http::{Admitted, Refusal, WriteErrorBody, WriteState};
use crate::http::{admit_late, admit_rate, admit_series, admit_tenant, append_batches, body_limit, refuse, too_large};
use crate::http::{decode_permit, read_body};
use crate::metrics::IngestMetrics;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use strata_schemas::TenantId;
use strata_schemas::time::now_millis;

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
    Router::new()
        .route("/api/v1/write", post(write))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(RemoteWriteState { write: state, metrics })
}

#[derive(Debug, Clone)]
struct RemoteWriteState {
    write: WriteState,
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
    IngestMetrics::add(&state.write.metrics.requests, 1);
    let (who, conversion) = match receive(&state, &headers, body).await {
        Ok(v) => v,
        Err(resp) => {
            RemoteWriteMetrics::add(&state.metrics.requests_refused, 1);
            IngestMetrics::add(&state.write.metrics.requests_refused, 1);
            return *resp;
        }
    };
    IngestMetrics::add(&who.counters.requests, 1);
    let mut conversion = conversion;
    let (late, watermark) = admit_late(&state.write, &who, &mut conversion.batches);
    if late > 0 {
        conversion.samples -= late;
        conversion.rejected.push(SeriesError {
            code: "older_than_cold_watermark",
            index: None,
            series: String::new(),
            reason: format!(
                "{late} sample(s) older than {watermark} ms were not stored: the tenant's data before that time has \
                 moved to the cold tier, which does not accept late writes"
            ),
        });
    }
    for over in admit_series(&state.write, &who, &mut conversion.batches) {
        conversion.samples -= over.samples;
        conversion.accepted_series -= 1;
        conversion.rejected.push(SeriesError {
            code: "max_active_series",
            index: None,
            series: over.series,
            reason: over.reason,
        });
    }
    // Like line protocol: over the tenant's rate, nothing is stored (429 + Retry-After).
    if let Err(resp) = admit_rate(&state.write, &who, conversion.samples) {
        return *resp;
    }
    commit(&state, &who, conversion).await
}

/// Admits the tenant (token, data regions), reads, decodes and converts a request.
async fn receive(
    state: &RemoteWriteState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Admitted, RemoteWriteConversion), Refusal> {
    let who = admit_tenant(&state.write, headers)?;
    check_headers(headers)?;
    let limit = body_limit(&state.write, &who);
    let raw = read_body(&state.write, headers, body, limit).await?;
    let write = state.write.clone();
    let tenant = who.tenant.clone();
    let limits = LabelLimits::of(&who.limits);
    let bounds = WriteBounds::new(&state.write.config, &who.limits, now_millis());
    let residency = who.residency.clone();
    // Snappy and protobuf decoding on a blocking thread, bounded like line protocol.
    let permit = decode_permit().await;
    let conversion = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        decode_and_convert(&write, &tenant, limits, &bounds, residency.as_deref(), &raw, limit)
    })
    .await
    .map_err(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, WriteErrorBody::simple("internal", e.to_string())))??;
    Ok((who, conversion))
}

fn decode_and_convert(
    write: &WriteState,
    tenant: &TenantId,
    limits: LabelLimits,
    bounds: &WriteBounds,
    residency: Option<&ResidencyCheck>,
    raw: &[u8],
    limit: usize,
) -> Result<RemoteWriteConversion, Refusal> {
    let request = decode_request(raw, limit).map_err(|e| decode_refusal(e, limit))?;
    let converter = SeriesConverter {
        tenant,
        device_label: &write.config.device_label,
        partitions: write.log.partitions(),
        cache: Some(&write.series_cache),
        limits,
    };
    Ok(converter.convert_checked(&request, bounds, residency))
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
async fn commit(state: &RemoteWriteState, who: &Admitted, mut c: RemoteWriteConversion) -> Response {
    let token = match append_batches(&state.write, std::mem::take(&mut c.batches)).await {
        Ok(t) => t,
        Err(resp) => return resp,
    };
    let mut resp = commit_answer(state, who, c);
    crate::http::stamp_token(&mut resp, &token);
    resp
}

/// The answer of a write whose batches are in the log.
fn commit_answer(state: &RemoteWriteState, who: &Admitted, c: RemoteWriteConversion) -> Response {
    count(state, who, &c);
    let ignored = ignored_message(&c);
    if c.rejected.is_empty() && ignored.is_none() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let max = state.write.config.max_reported_errors;
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

/// Bumps the endpoint's, the write path's and the tenant's counters for a stored request.
fn count(state: &RemoteWriteState, who: &Admitted, c: &RemoteWriteConversion) {
    let m = &state.metrics;
    RemoteWriteMetrics::add(&m.series_accepted, c.accepted_series);
    RemoteWriteMetrics::add(&m.samples_accepted, c.samples);
    RemoteWriteMetrics::add(&m.series_rejected, c.rejected.len());
    RemoteWriteMetrics::add(&m.histograms_ignored, c.histograms_ignored);
    RemoteWriteMetrics::add(&m.exemplars_ignored, c.exemplars_ignored);
    IngestMetrics::add(&state.write.metrics.samples_accepted, c.samples as u64);
    who.counters.samples_accepted.fetch_add(c.samples as u64, Ordering::Relaxed);
    for e in &c.rejected {
        who.counters.reject(e.code, 1);
    }
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
        let at = first.index.map(|i| format!("{i} ")).unwrap_or_default();
        msg.push_str(&format!("; first error: series {at}{}: {}", first.series, first.reason));
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
