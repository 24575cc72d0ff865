//! The InfluxDB-compatible write endpoints.
//!
//! * `POST /api/v2/write?org=&bucket=&precision=` (InfluxDB 2)
//! * `POST /write?db=&precision=` (InfluxDB 1)
//!
//! The tenant comes from the `Authorization: Token <t>` / `Bearer <t>`
//! header; `org`, `bucket` and `db` are accepted for client compatibility
//! and do not change where data goes. Bodies may be compressed
//! (`Content-Encoding: gzip` or `zstd`); both the body as sent and the
//! decompressed body are limited to `ingest.max_body_bytes`. Edge agents'
//! headers (batch identity, hybrid logical clock, jurisdiction) are in
//! `edge_origin`; every answer carries this node's clock (`X-Strata-Hlc`).
//!
//! Answers: `204` when every line was stored; `400` with a JSON body listing
//! each rejected line (number, column, reason) and skipped string field
//! while the valid lines are stored (a line whose value of the tenant's
//! residency label belongs to another jurisdiction is one of them, code
//! `residency`, its reason naming the regions that take it); `401`/`403` for
//! tokens and for tenants that do not store data in this region; `413` for
//! oversized bodies; `421` for an edge agent's batch meant for another
//! jurisdiction (`X-Strata-Jurisdiction`); `503` with `Retry-After` when the log cannot take the
//! write (nothing is acknowledged then; retrying is safe).
//!
//! A declared `Content-Length` over the limit is refused (`413`) before the
//! body is read; a body that does not arrive within `http.body_read_timeout`
//! is `408`. Decompression and parsing run on blocking threads, at most
//! [`decode_slots`] requests at once, never on the async workers. A gzip body
//! refused as too large once inflated is charged to the tenant's ingestion
//! rate (one sample per 64 bytes inflated), so a stream of bombs is soon
//! refused (`429`) before its bodies are read.

use crate::config::IngestConfig;
use crate::convert::{Conversion, Converter, LabelLimits, LineError, ResidencyCheck, SkippedField, WriteBounds};
use crate::error::Error;
use crate::limits::{RateLimiter, RateRefusal};
use crate::log::{IngestLog, LogRecord};
use crate::metrics::{IngestMetrics, TenantIngest};
use crate::series_cache::SeriesCache;
use crate::stages::Stage;
use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Serialize;
use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use strata_schemas::time::{Precision, now_millis};
use strata_schemas::{
    Access, AuthError, ErrorKind, Labels, SeriesId, TenantId, TenantLimits, TenantResolver, WriteBatch,
};

/// Shared state of the write endpoints.
#[derive(Debug, Clone)]
pub struct WriteState {
    /// Where accepted samples go.
    pub log: Arc<dyn IngestLog>,
    /// Token → tenant.
    pub resolver: Arc<dyn TenantResolver>,
    /// Limits and mapping settings.
    pub config: Arc<IngestConfig>,
    /// Counters.
    pub metrics: Arc<IngestMetrics>,
    /// Known series across requests.
    pub series_cache: Arc<SeriesCache>,
    /// The region directory, this node's region in it: writes of tenants
    /// that do not store data here are refused, naming where to send them.
    pub regions: Arc<strata_schemas::RegionDirectory>,
    /// Per-tenant ingestion rate buckets.
    pub rate_limiter: Arc<RateLimiter>,
    /// The store as the write path sees it: `max_active_series` and cold watermarks (None: neither enforced).
    pub store_view: Option<Arc<dyn StoreView>>,
}

/// What the write path needs to know of the store: the series a tenant
/// already holds (so `max_active_series` is exact) and how far its data has
/// moved to the cold tier (so late samples are refused, not lost).
pub trait StoreView: Send + Sync + std::fmt::Debug {
    /// Live series of `tenant`.
    fn count(&self, tenant: &TenantId) -> u64;
    /// True when `tenant` already has this series.
    fn contains(&self, tenant: &TenantId, id: SeriesId, labels: &Labels) -> bool;
    /// Samples of `tenant` older than this (ms) live in the cold tier, which
    /// does not take late writes. `None`: no cold tier for the tenant.
    fn cold_watermark(&self, tenant: &TenantId) -> Option<i64> {
        let _ = tenant;
        None
    }
    /// Samples of `tenant` in ingest-log `partition` older than this (ms)
    /// are in the cold tier (or claimed by a node rolling them). With
    /// several nodes on one Kafka log a partition's roll state runs ahead of
    /// this node's tenant watermark (the lowest over every partition), and a
    /// sample below it stored here would never reach cold. Default: the
    /// tenant's watermark.
    fn cold_watermark_in(&self, tenant: &TenantId, partition: u32) -> Option<i64> {
        let _ = partition;
        self.cold_watermark(tenant)
    }
}

/// Removes samples older than the cold watermark of their tenant and log
/// partition from `batches` (their buckets were already rolled into the
/// cold tier; stored hot they would never be served). Returns how many were
/// removed and the highest watermark that removed any (else the lowest seen).
pub(crate) fn admit_late(state: &WriteState, who: &Admitted, batches: &mut Vec<(u32, WriteBatch)>) -> (usize, i64) {
    let Some(view) = state.store_view.as_ref() else { return (0, 0) };
    let mut late = 0;
    let mut shown: Option<i64> = None;
    let mut refusing: Option<i64> = None;
    for (partition, batch) in batches.iter_mut() {
        let Some(wm) = view.cold_watermark_in(&who.tenant, *partition) else { continue };
        shown = Some(shown.map_or(wm, |s| s.min(wm)));
        let before_batch = late;
        for series in &mut batch.series {
            let before = series.samples.len();
            series.samples.retain(|s| s.ts >= wm);
            late += before - series.samples.len();
        }
        if late > before_batch {
            refusing = Some(refusing.map_or(wm, |r| r.max(wm)));
        }
        batch.series.retain(|s| !s.samples.is_empty());
    }
    batches.retain(|(_, b)| !b.series.is_empty());
    who.counters.reject("older_than_cold_watermark", late as u64);
    (late, refusing.or(shown).unwrap_or(0))
}

/// A series refused because its tenant is at `max_active_series`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeriesOverLimit {
    /// The series, rendered like PromQL.
    pub series: String,
    /// Why.
    pub reason: String,
    /// Samples of it that were not stored.
    #[serde(skip)]
    pub samples: usize,
}

/// Removes from `batches` the new series that would take the tenant over
/// `max_active_series`, and returns them. Series the tenant already has
/// always pass. Only when the request could cross the limit is each series
/// looked up, so the common case costs one count.
pub(crate) fn admit_series(
    state: &WriteState,
    who: &Admitted,
    batches: &mut Vec<(u32, WriteBatch)>,
) -> Vec<SeriesOverLimit> {
    let Some(active) = &state.store_view else { return Vec::new() };
    let limit = who.limits.max_active_series;
    let current = active.count(&who.tenant);
    let distinct: u64 = batches.iter().map(|(_, b)| b.series.len() as u64).sum();
    if current.saturating_add(distinct) <= limit {
        return Vec::new();
    }
    let mut added = 0u64;
    let mut refused = Vec::new();
    for (_, batch) in batches.iter_mut() {
        batch.series.retain(|s| {
            if active.contains(&who.tenant, s.id, &s.labels) {
                return true;
            }
            if current + added < limit {
                added += 1;
                return true;
            }
            refused.push(SeriesOverLimit {
                series: crate::convert::cut(&s.labels.to_string(), 512),
                reason: format!(
                    "limit max_active_series exceeded: tenant {} has {} active series, the limit is {limit}",
                    who.tenant,
                    current + added
                ),
                samples: s.samples.len(),
            });
            false
        });
    }
    batches.retain(|(_, b)| !b.series.is_empty());
    let samples: usize = refused.iter().map(|r| r.samples).sum();
    who.counters.reject("max_active_series", samples as u64);
    refused
}

/// A request's tenant and what it runs under.
#[derive(Debug)]
pub(crate) struct Admitted {
    /// The tenant.
    pub(crate) tenant: TenantId,
    /// Its limits (defaults for tenants the registry does not know).
    pub(crate) limits: TenantLimits,
    /// Its residency label as this node applies it (None: nothing refused by it).
    pub(crate) residency: Option<Arc<ResidencyCheck>>,
    /// Its OTLP promoted resource attributes.
    pub(crate) otlp_promoted: Vec<String>,
    /// Its counters.
    pub(crate) counters: Arc<TenantIngest>,
}

/// Authenticates the request and checks that the tenant is homed here.
pub(crate) fn admit_tenant(state: &WriteState, headers: &HeaderMap) -> Result<Admitted, Refusal> {
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let tenant = state.resolver.resolve(auth, Access::Write).map_err(auth_error)?;
    let policy = state.resolver.policy(&tenant);
    let counters = state.metrics.tenant(&tenant);
    if let Some(p) = &policy
        && !p.stores_in(state.regions.local())
    {
        counters.reject("wrong_region", 1);
        let msg = format!(
            "tenant {:?} does not store data in region {:?} (jurisdiction {}): send its writes to one of its \
             data regions: {} (nothing was stored)",
            tenant.as_str(),
            state.regions.local(),
            state.regions.local_jurisdiction(),
            state.regions.describe(p.data_regions()),
        );
        return Err(refuse(StatusCode::FORBIDDEN, WriteErrorBody::simple("wrong region", msg)));
    }
    let limits = policy.as_ref().map_or_else(|| state.resolver.default_limits(), |p| p.limits.clone());
    if let Err(r) = state.rate_limiter.precheck(&tenant, &limits) {
        // Refused before the body is read: a flood costs the node next to nothing.
        counters.reject("ingestion_rate_unread_requests", 1);
        return Err(rate_refusal(r));
    }
    let otlp_promoted = policy.as_ref().map(|p| p.otlp_promoted_attributes.clone()).unwrap_or_default();
    let residency = policy.and_then(|p| ResidencyCheck::of(&p, &state.regions)).map(Arc::new);
    Ok(Admitted { tenant, limits, residency, otlp_promoted, counters })
}

/// Takes the request's samples from the tenant's rate bucket.
pub(crate) fn admit_rate(state: &WriteState, who: &Admitted, samples: usize) -> Result<(), Refusal> {
    state.rate_limiter.admit(&who.tenant, &who.limits, samples as u64).map_err(|r| {
        who.counters.reject("ingestion_rate", samples as u64);
        rate_refusal(r)
    })
}

/// 429 with the refusal's explanation and, when waiting helps, `Retry-After`.
fn rate_refusal(r: RateRefusal) -> Refusal {
    let mut resp = answer(StatusCode::TOO_MANY_REQUESTS, WriteErrorBody::simple("too many requests", r.to_string()));
    if let RateRefusal::Exceeded { retry_after_secs, .. } | RateRefusal::Exhausted { retry_after_secs, .. } = r
        && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    Box::new(resp)
}

/// The write routes.
pub fn router(state: WriteState) -> Router {
    Router::new()
        .route("/api/v2/write", post(write))
        .route("/write", post(write))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
        .merge(crate::influx_compat::router())
}

/// JSON body of every non-204 answer (InfluxDB's `code`/`message`, plus details).
#[derive(Debug, Serialize)]
pub(crate) struct WriteErrorBody {
    code: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    accepted_lines: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rejected_lines: Option<usize>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<LineError>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    skipped_fields: Vec<SkippedField>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    rejected_series: Vec<SeriesOverLimit>,
}

impl WriteErrorBody {
    pub(crate) fn simple(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            accepted_lines: None,
            rejected_lines: None,
            errors: Vec::new(),
            skipped_fields: Vec::new(),
            rejected_series: Vec::new(),
        }
    }
}

pub(crate) fn answer(status: StatusCode, body: WriteErrorBody) -> Response {
    (status, axum::Json(body)).into_response()
}

/// A request refused before parsing (boxed: responses are large).
pub(crate) type Refusal = Box<Response>;

pub(crate) fn refuse(status: StatusCode, body: WriteErrorBody) -> Refusal {
    Box::new(answer(status, body))
}

async fn write(
    State(state): State<WriteState>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // An edge agent's clock and jurisdiction (see `edge_origin`): a batch
    // meant for another jurisdiction is refused before anything is read; the
    // answer carries this node's HLC whatever it is.
    let t0 = std::time::Instant::now();
    let mut resp = match crate::edge_origin::admit_agent(&state, &headers) {
        Ok(()) => write_admitted(state, params, headers, body).await,
        Err(resp) => {
            IngestMetrics::add(&state.metrics.requests_refused, 1);
            *resp
        }
    };
    crate::edge_origin::stamp_clock(resp.headers_mut());
    crate::stages::global().observe(Stage::Request, t0.elapsed());
    resp
}

async fn write_admitted(
    state: WriteState,
    params: HashMap<String, String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let m = &state.metrics;
    IngestMetrics::add(&m.requests, 1);
    let (who, precision, body) = match prepare(&state, &params, &headers, body).await {
        Ok(v) => v,
        Err(resp) => {
            IngestMetrics::add(&m.requests_refused, 1);
            return *resp;
        }
    };
    // An edge agent's batch: its (agent id, seq) goes into every record, so a re-send is applied once.
    let origin = match crate::edge_origin::from_headers(&headers) {
        Ok(o) => o,
        Err(resp) => {
            IngestMetrics::add(&m.requests_refused, 1);
            return *resp;
        }
    };
    let converter_state = state.clone();
    let tenant = who.tenant.clone();
    let label_limits = LabelLimits::of(&who.limits);
    let residency = who.residency.clone();
    let now_ms = now_millis();
    let bounds = WriteBounds::new(&state.config, &who.limits, now_ms);
    let limit = body_limit(&state, &who);
    // Decompression and parsing are CPU work: on a blocking thread, never on
    // the async workers (which must keep answering `/-/ready` and queries),
    // and at most `decode_slots()` at once.
    let decode_started = std::time::Instant::now();
    let permit = decode_permit().await;
    let conversion = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let body = match body {
            Encoded::Identity(raw) => raw,
            Encoded::Gzip(raw) => gunzip(&raw, limit)?,
            Encoded::Zstd(raw) => unzstd(&raw, limit)?,
        };
        let config = &converter_state.config;
        Ok::<_, Refusal>(
            Converter {
                tenant: &tenant,
                precision,
                now_ms,
                device_label: &config.device_label,
                partitions: converter_state.log.partitions(),
                cache: Some(&converter_state.series_cache),
                limits: label_limits,
            }
            .convert_checked(&body, &bounds, residency.as_deref()),
        )
    })
    .await;
    crate::stages::global().observe(Stage::Decode, decode_started.elapsed());
    let conversion = match conversion {
        Ok(Ok(c)) => c,
        Ok(Err(resp)) => {
            IngestMetrics::add(&m.requests_refused, 1);
            if resp.status() == StatusCode::PAYLOAD_TOO_LARGE {
                charge_refused_body(&state, &who, limit);
            }
            return *resp;
        }
        Err(e) => return answer(StatusCode::INTERNAL_SERVER_ERROR, WriteErrorBody::simple("internal", e.to_string())),
    };
    IngestMetrics::add(&who.counters.requests, 1);
    let mut conversion = conversion;
    let (late, watermark) = admit_late(&state, &who, &mut conversion.batches);
    conversion.samples -= late;
    let over = admit_series(&state, &who, &mut conversion.batches);
    conversion.samples -= over.iter().map(|o| o.samples).sum::<usize>();
    if let Err(resp) = admit_rate(&state, &who, conversion.samples) {
        return *resp;
    }
    let late = (late > 0).then(|| {
        format!(
            "{late} sample(s) older than {watermark} ms were not stored: the tenant's data before that time has \
             moved to the cold tier, which does not accept late writes"
        )
    });
    crate::edge_origin::stamp(&mut conversion.batches, origin);
    commit(&state, &who, conversion, over, late).await
}

/// A request body as received.
enum Encoded {
    Identity(Bytes),
    Gzip(Bytes),
    Zstd(Bytes),
}

/// Authenticates and reads the request: tenant, precision and the body as sent.
async fn prepare(
    state: &WriteState,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Admitted, Precision, Encoded), Refusal> {
    let who = admit_tenant(state, headers)?;
    let precision = match params.get("precision").map(String::as_str) {
        None | Some("") => Precision::Nanoseconds,
        Some(p) => p.parse().map_err(|e: strata_schemas::time::UnknownPrecision| {
            refuse(StatusCode::BAD_REQUEST, WriteErrorBody::simple("invalid", e.to_string()))
        })?,
    };
    let limit = body_limit(state, &who);
    let encoding = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("identity");
    let wrap: fn(Bytes) -> Encoded = match encoding.trim().to_ascii_lowercase().as_str() {
        "" | "identity" => Encoded::Identity,
        "gzip" | "x-gzip" => Encoded::Gzip,
        "zstd" => Encoded::Zstd,
        other => {
            return Err(refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                WriteErrorBody::simple(
                    "invalid",
                    format!("unsupported Content-Encoding {other:?} (use gzip, zstd or none)"),
                ),
            ));
        }
    };
    let raw = read_body(state, headers, body, limit).await?;
    Ok((who, precision, wrap(raw)))
}

/// Reads a request body of at most `limit` bytes. A declared
/// `Content-Length` over the limit is refused (`413`) before any of the body
/// is read; a body that does not arrive within the server's body-read
/// timeout is `408`, a broken one `400`.
pub(crate) async fn read_body(
    state: &WriteState,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, Refusal> {
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large(limit, "request body (its Content-Length)"));
    }
    let mut body = body;
    let mut out = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    loop {
        let frame = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await;
        match frame {
            None => break,
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if out.len() + data.len() > limit {
                        return Err(too_large(limit, "request body"));
                    }
                    out.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => {
                let e = e.into_inner();
                let timed_out = std::iter::successors(Some(&*e as &(dyn std::error::Error + 'static)), |e| e.source())
                    .any(|e| {
                        e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut)
                    });
                let (status, code) = if timed_out {
                    (StatusCode::REQUEST_TIMEOUT, "request timeout")
                } else {
                    (StatusCode::BAD_REQUEST, "invalid")
                };
                let mut resp = answer(status, WriteErrorBody::simple(code, format!("reading the request body: {e}")));
                resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
                return Err(Box::new(resp));
            }
        }
    }
    IngestMetrics::add(&state.metrics.bytes_received, out.len() as u64);
    Ok(Bytes::from(out))
}

/// How many request bodies are decompressed and parsed at once: one per
/// core, so a burst of large or hostile bodies queues instead of taking
/// every core (and the blocking-thread pool) at once.
pub fn decode_slots() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
}

/// A slot for decompressing and parsing one request body, held on the blocking thread that does it.
pub(crate) async fn decode_permit() -> tokio::sync::SemaphorePermit<'static> {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    let slots = SLOTS.get_or_init(|| tokio::sync::Semaphore::new(decode_slots()));
    slots.acquire().await.expect("the decode semaphore is never closed")
}

/// The smaller of the node's body limit and the tenant's `max_request_bytes`.
pub(crate) fn body_limit(state: &WriteState, who: &Admitted) -> usize {
    let tenant = usize::try_from(who.limits.max_request_bytes).unwrap_or(usize::MAX);
    state.config.max_body_bytes.min(tenant)
}

/// Decompresses a gzip body (`Content-Encoding: gzip`), refusing more than
/// `limit` decompressed bytes without producing them. Public for the fuzz
/// targets (`fuzz-targets/`); not a stable API.
#[doc(hidden)]
pub fn gunzip(raw: &[u8], limit: usize) -> Result<Bytes, Refusal> {
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(limit));
    let mut decoder = flate2::read::MultiGzDecoder::new(raw).take(limit as u64 + 1);
    decoder.read_to_end(&mut out).map_err(|e| {
        refuse(StatusCode::BAD_REQUEST, WriteErrorBody::simple("invalid", format!("invalid gzip body: {e}")))
    })?;
    if out.len() > limit {
        return Err(too_large(limit, "decompressed request body"));
    }
    Ok(Bytes::from(out))
}

/// Decompresses a zstd body (`Content-Encoding: zstd`, what `strata-edge`
/// sends), refusing more than `limit` decompressed bytes without producing them.
/// Public for the fuzz targets (`fuzz-targets/`); not a stable API.
#[doc(hidden)]
pub fn unzstd(raw: &[u8], limit: usize) -> Result<Bytes, Refusal> {
    let invalid = |e: std::io::Error| {
        refuse(StatusCode::BAD_REQUEST, WriteErrorBody::simple("invalid", format!("invalid zstd body: {e}")))
    };
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(limit));
    let decoder = zstd::stream::read::Decoder::new(raw).map_err(invalid)?;
    decoder.take(limit as u64 + 1).read_to_end(&mut out).map_err(invalid)?;
    if out.len() > limit {
        return Err(too_large(limit, "decompressed request body"));
    }
    Ok(Bytes::from(out))
}

/// Decompressed bytes charged as one sample when a body is refused after inflating.
const REFUSED_BYTES_PER_SAMPLE: usize = 64;

/// Charges a body refused as too large once inflated (a decompression bomb)
/// to the tenant's rate bucket, as `inflated / 64` samples (at most the
/// burst): the node did that work, so a stream of bombs runs the bucket dry
/// and is then refused before its bodies are read, like any flood.
fn charge_refused_body(state: &WriteState, who: &Admitted, inflated: usize) {
    let samples = ((inflated / REFUSED_BYTES_PER_SAMPLE) as u64).min(who.limits.ingestion_burst);
    // A refusal here is the point: it marks the bucket, and the tenant's next
    // requests are refused unread until it refills.
    let _ = state.rate_limiter.admit(&who.tenant, &who.limits, samples);
}

pub(crate) fn too_large(limit: usize, what: &str) -> Refusal {
    refuse(
        StatusCode::PAYLOAD_TOO_LARGE,
        WriteErrorBody::simple(
            "request too large",
            format!(
                "limit max_request_bytes exceeded: {what} is larger than {limit} bytes (the tenant's \
                 max_request_bytes or the node's ingest.max_body_bytes, whichever is smaller); split the write \
                 into smaller batches"
            ),
        ),
    )
}

pub(crate) fn auth_error(e: AuthError) -> Refusal {
    let status = match e {
        AuthError::Forbidden { .. } => StatusCode::FORBIDDEN,
        _ => StatusCode::UNAUTHORIZED,
    };
    refuse(status, WriteErrorBody::simple("unauthorized", e.to_string()))
}

/// Appends the converted batches and builds the answer.
async fn commit(
    state: &WriteState,
    who: &Admitted,
    mut c: Conversion,
    over: Vec<SeriesOverLimit>,
    late: Option<String>,
) -> Response {
    let token = match append_batches(state, std::mem::take(&mut c.batches)).await {
        Ok(t) => t,
        Err(resp) => return resp,
    };
    let mut resp = commit_answer(state, who, c, over, late);
    stamp_token(&mut resp, &token);
    resp
}

/// Sets `X-Strata-Write-Token` on a write's answer (when it appended anything).
pub(crate) fn stamp_token(resp: &mut Response, token: &crate::write_token::WriteToken) {
    if !token.is_empty()
        && let Ok(v) = HeaderValue::from_str(&token.to_string())
    {
        resp.headers_mut().insert(crate::write_token::WRITE_TOKEN_HEADER, v);
    }
}

/// The answer of a write whose batches are in the log.
fn commit_answer(
    state: &WriteState,
    who: &Admitted,
    c: Conversion,
    over: Vec<SeriesOverLimit>,
    late: Option<String>,
) -> Response {
    let m = &state.metrics;
    who.counters.samples_accepted.fetch_add(c.samples as u64, std::sync::atomic::Ordering::Relaxed);
    for e in &c.rejected {
        who.counters.reject(e.code, 1);
    }
    IngestMetrics::add(&m.lines_accepted, c.accepted_lines as u64);
    IngestMetrics::add(&m.lines_rejected, c.rejected.len() as u64);
    IngestMetrics::add(&m.samples_accepted, c.samples as u64);
    IngestMetrics::add(&m.string_fields_skipped, c.skipped.len() as u64);
    if c.rejected.is_empty() && c.skipped.is_empty() && over.is_empty() && late.is_none() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let max = state.config.max_reported_errors;
    let mut parts: Vec<String> = late.into_iter().collect();
    if let Some(first) = over.first() {
        parts.push(format!("{} series not stored: {}", over.len(), first.reason));
    }
    if !c.rejected.is_empty() || !c.skipped.is_empty() {
        parts.push(partial_message(&c, max));
    }
    let message = parts.join("; ");
    let body = WriteErrorBody {
        code: "invalid",
        message,
        accepted_lines: Some(c.accepted_lines),
        rejected_lines: Some(c.rejected.len()),
        errors: c.rejected.into_iter().take(max).collect(),
        skipped_fields: c.skipped.into_iter().take(max).collect(),
        rejected_series: over.into_iter().take(max).collect(),
    };
    answer(StatusCode::BAD_REQUEST, body)
}

/// Appends one batch per partition to the log and waits until all are
/// durable (and, on the embedded log, applied): the positions reached (the
/// read-your-writes token), or the response to send.
pub(crate) async fn append_batches(
    state: &WriteState,
    batches: Vec<(u32, WriteBatch)>,
) -> Result<crate::write_token::WriteToken, Response> {
    if batches.is_empty() {
        return Ok(crate::write_token::WriteToken::default());
    }
    let partitions: Vec<u32> = batches.iter().map(|(p, _)| *p).collect();
    let records: Vec<LogRecord> = batches
        .into_iter()
        .map(|(partition, batch)| LogRecord { partition, payload: batch.to_bytes(), decoded: Some(Box::new(batch)) })
        .collect();
    let t0 = std::time::Instant::now();
    let appended = state.log.append(records).await;
    crate::stages::global().observe(Stage::Append, t0.elapsed());
    let offsets = appended.map_err(|e| {
        IngestMetrics::add(&state.metrics.append_failures, 1);
        log_error(e)
    })?;
    Ok(crate::write_token::WriteToken::from_positions(partitions.into_iter().zip(offsets)))
}

fn partial_message(c: &Conversion, max: usize) -> String {
    let total = c.accepted_lines + c.rejected.len();
    let mut msg = if c.rejected.is_empty() {
        format!("all {total} lines stored, but {} string field(s) were skipped", c.skipped.len())
    } else {
        format!("partial write: {} of {total} lines rejected, the other {} stored", c.rejected.len(), c.accepted_lines)
    };
    if let Some(first) = c.rejected.first() {
        msg.push_str(&format!("; first error: line {}: {}", first.line, first.reason));
    }
    if c.rejected.len() > max {
        msg.push_str(&format!(" (only the first {max} errors are listed)"));
    }
    msg
}

pub(crate) fn log_error(e: Error) -> Response {
    tracing::warn!(error = %e, "write failed in the ingest log");
    let (status, code) = match e.kind() {
        // A full disk is not retried away in a second: 507 names the path.
        _ if matches!(e, Error::DiskFull { .. }) => (StatusCode::INSUFFICIENT_STORAGE, "insufficient storage"),
        ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        ErrorKind::InvalidInput => (StatusCode::PAYLOAD_TOO_LARGE, "request too large"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    };
    let mut resp = answer(status, WriteErrorBody::simple(code, format!("write not acknowledged: {e}")));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

#[cfg(test)]
mod tests;
