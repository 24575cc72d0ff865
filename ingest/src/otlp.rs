//! OpenTelemetry metrics over OTLP/HTTP: `POST /otlp/v1/metrics`.
//!
//! ```text
//!  POST /otlp/v1/metrics ──► auth → tenant, data region ──► body ≤ max_body_bytes / max_request_bytes
//!    Content-Encoding: gzip (or none) ──► Content-Type: application/x-protobuf (proto) | application/json (json)
//!      ──► ExportMetricsServiceRequest ──► Prometheus series (translate: names, units, labels, target_info)
//!      ──► the remote-write path's checks (label rules and limits, residency, time window, max_active_series,
//!          rate) ──► IngestLog::append, durable ──► 200 ExportMetricsServiceResponse
//! ```
//!
//! The answer is OTLP's: `200` with an `ExportMetricsServiceResponse` in the
//! request's encoding, whose `partial_success` counts the data points not
//! stored and says why (delta temporality, exponential histograms, invalid
//! labels, another jurisdiction, outside the time window, …); `400` for a
//! body that does not decode; `401`/`403`, `413`, `415`, `429` and `503`
//! as for the other write paths (OTLP exporters retry 429 and 503).
//! Same tenancy, limits and per-tenant counters as line protocol and remote
//! write; the tenant's `otlp_promoted_attributes` choose the resource
//! attributes copied onto every series.

pub mod json;
pub mod proto;
pub mod translate;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use prost::Message;
use strata_schemas::time::now_millis;

use crate::convert::{LabelLimits, WriteBounds};
use crate::http::{
    Refusal, WriteErrorBody, WriteState, admit_late, admit_rate, admit_series, admit_tenant, append_batches,
    body_limit, decode_permit, gunzip, read_body, refuse, stamp_token,
};
use crate::metrics::IngestMetrics;
use crate::remote_write::SeriesConverter;

/// The OTLP metrics route.
pub fn router(state: WriteState) -> Router {
    Router::new()
        .route("/otlp/v1/metrics", post(write))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

/// The request's (and so the answer's) encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

fn encoding(headers: &HeaderMap) -> Result<Encoding, Refusal> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/x-protobuf");
    let media = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match media.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
        "application/json" => Ok(Encoding::Json),
        _ => Err(refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            WriteErrorBody::simple(
                "invalid",
                format!("unsupported Content-Type {ct:?}: OTLP/HTTP sends application/x-protobuf or application/json"),
            ),
        )),
    }
}

async fn write(State(state): State<WriteState>, headers: HeaderMap, body: Body) -> Response {
    IngestMetrics::add(&state.metrics.requests, 1);
    match receive(&state, &headers, body).await {
        Ok(resp) => resp,
        Err(resp) => {
            IngestMetrics::add(&state.metrics.requests_refused, 1);
            *resp
        }
    }
}

async fn receive(state: &WriteState, headers: &HeaderMap, body: Body) -> Result<Response, Refusal> {
    let who = admit_tenant(state, headers)?;
    let enc = encoding(headers)?;
    let gzip = match headers.get(header::CONTENT_ENCODING).map(|v| v.to_str().map(str::trim)) {
        None => false,
        Some(Ok(e)) if e.is_empty() || e.eq_ignore_ascii_case("identity") => false,
        Some(Ok(e)) if e.eq_ignore_ascii_case("gzip") => true,
        Some(other) => {
            return Err(refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                WriteErrorBody::simple(
                    "invalid",
                    format!("unsupported Content-Encoding {:?} (use gzip or none)", other.unwrap_or("<not ASCII>")),
                ),
            ));
        }
    };
    let limit = body_limit(state, &who);
    let raw = read_body(state, headers, body, limit).await?;
    let (write, tenant) = (state.clone(), who.tenant.clone());
    let limits = LabelLimits::of(&who.limits);
    let bounds = WriteBounds::new(&state.config, &who.limits, now_millis());
    let (residency, promoted) = (who.residency.clone(), who.otlp_promoted.clone());
    let permit = decode_permit().await;
    let converted = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let body = if gzip { gunzip(&raw, limit)? } else { raw };
        let request = match enc {
            Encoding::Protobuf => proto::ExportMetricsServiceRequest::decode(&body[..])
                .map_err(|e| format!("invalid OTLP protobuf body (ExportMetricsServiceRequest): {e}")),
            Encoding::Json => json::decode(&body),
        }
        .map_err(|msg| refuse(StatusCode::BAD_REQUEST, WriteErrorBody::simple("invalid", msg)))?;
        let translated = translate::translate(&request, &promoted);
        let converter = SeriesConverter {
            tenant: &tenant,
            device_label: &write.config.device_label,
            partitions: write.log.partitions(),
            cache: Some(&write.series_cache),
            limits,
        };
        let conversion = converter.convert_checked(&translated.request, &bounds, residency.as_deref());
        Ok::<_, Refusal>((translated, conversion))
    })
    .await
    .map_err(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, WriteErrorBody::simple("internal", e.to_string())))??;
    let (translated, mut conversion) = converted;
    IngestMetrics::add(&who.counters.requests, 1);
    let mut reasons = translated.reasons.clone();
    let mut rejected = translated.rejected_points;
    for e in &conversion.rejected {
        rejected += 1;
        if reasons.len() < 8 {
            reasons.push(format!("series {}: {}", e.series, e.reason));
        }
    }
    let (late, watermark) = admit_late(state, &who, &mut conversion.batches);
    if late > 0 {
        conversion.samples -= late;
        rejected += late;
        reasons.push(format!("{late} sample(s) older than {watermark} ms (the cold tier's watermark) were not stored"));
    }
    for over in admit_series(state, &who, &mut conversion.batches) {
        conversion.samples -= over.samples;
        rejected += over.samples;
        if reasons.len() < 8 {
            reasons.push(over.reason);
        }
    }
    admit_rate(state, &who, conversion.samples)?;
    let token = append_batches(state, std::mem::take(&mut conversion.batches)).await.map_err(Box::new)?;
    who.counters.samples_accepted.fetch_add(conversion.samples as u64, std::sync::atomic::Ordering::Relaxed);
    IngestMetrics::add(&state.metrics.samples_accepted, conversion.samples as u64);
    if rejected > 0 {
        who.counters.reject("otlp", rejected as u64);
    }
    let answer = proto::ExportMetricsServiceResponse {
        partial_success: (rejected > 0).then(|| proto::ExportMetricsPartialSuccess {
            rejected_data_points: i64::try_from(rejected).unwrap_or(i64::MAX),
            error_message: reasons.join("; "),
        }),
    };
    let mut resp = match enc {
        Encoding::Protobuf => {
            let mut r = (StatusCode::OK, answer.encode_to_vec()).into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-protobuf"));
            r
        }
        Encoding::Json => {
            let body = match &answer.partial_success {
                Some(p) => serde_json::json!({"partialSuccess": {
                    "rejectedDataPoints": p.rejected_data_points.to_string(),
                    "errorMessage": p.error_message,
                }}),
                None => serde_json::json!({}),
            };
            (StatusCode::OK, axum::Json(body)).into_response()
        }
    };
    stamp_token(&mut resp, &token);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any bytes, as protobuf or JSON: an error or a translation, never a panic.
        #[test]
        fn any_body_decodes_or_errors_and_translates_without_panicking(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(req) = proto::ExportMetricsServiceRequest::decode(&body[..]) {
                let _ = translate::translate(&req, &["host.name".to_owned()]);
            }
            if let Ok(req) = json::decode(&body) {
                let _ = translate::translate(&req, &[]);
            }
        }
    }
}
