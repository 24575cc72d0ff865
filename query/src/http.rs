//! The Prometheus HTTP API (`/api/v1/...`), the Grafana datasource surface.
//!
//! ```text
//!  request ─► Params (form body + URL query) ─► TenantResolver ─► spawn_blocking(Engine / ReadStore)
//!                                                                   │
//!  response ◄─ json::query_result / json::error (Prometheus envelope) ◄┘
//! ```
//!
//! A dropped request (client gone) cancels its query through a [`CancelToken`].
//! A small query (a device's series) is first tried on the connection's own
//! thread within a budget ([`crate::Engine::try_query_instant_inline`]).

pub(crate) mod ast;
mod concurrency;
pub mod json;
pub mod params;
#[cfg(test)]
mod tests;

use crate::engine::{CancelToken, Engine, QueryOptions};
use crate::error::QueryError;
use crate::front::QueryFront;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use params::{MAX_TIME_MS, MIN_TIME_MS, Params, parse_duration, parse_time};
use std::sync::Arc;
use strata_schemas::{Access, AuthError, Labels, Matcher, TenantId, TenantResolver, TimeRange};

/// The Prometheus version reported by `/api/v1/status/buildinfo` (Grafana enables features by it).
pub const PROMETHEUS_COMPAT_VERSION: &str = "3.5.0";

/// Shared state of the API handlers.
#[derive(Debug, Clone)]
pub struct QueryState {
    /// The engine (and through it the store).
    pub engine: Arc<Engine>,
    /// Turns the `Authorization` header into a tenant.
    pub resolver: Arc<dyn TenantResolver>,
    /// Per-tenant `max_concurrent_queries`.
    concurrency: Arc<concurrency::TenantConcurrency>,
    /// The query front (coalescing, split range queries and their cache), when on.
    front: Option<Arc<QueryFront>>,
}

impl QueryState {
    /// Bundles an engine and a resolver.
    pub fn new(engine: Arc<Engine>, resolver: Arc<dyn TenantResolver>) -> Self {
        Self { engine, resolver, concurrency: Arc::default(), front: None }
    }

    /// Answers `query` and `query_range` through `front` (when it is enabled).
    pub fn with_front(mut self, front: Arc<QueryFront>) -> Self {
        self.front = front.enabled().then_some(front);
        self
    }

    /// Waits for a query slot of `tenant` (its `max_concurrent_queries`).
    async fn slot(&self, tenant: &TenantId) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        let limit = self.resolver.limits(tenant).max_concurrent_queries;
        let wait = self.engine.config().timeout;
        self.concurrency.acquire(tenant, limit, wait).await.ok_or_else(|| ApiError {
            status: 503,
            error_type: "timeout",
            msg: format!(
                "limit max_concurrent_queries: tenant {tenant} already runs {limit} queries and none finished \
                 within the query timeout ({wait:?})"
            ),
        })
    }
}

/// The `/api/v1` routes. GET and POST (form-encoded) are accepted everywhere Prometheus accepts them.
pub fn router(state: QueryState) -> Router {
    Router::new()
        .route("/api/v1/query", get(query).post(query))
        .route("/api/v1/query_range", get(query_range).post(query_range))
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/labels", get(labels).post(labels))
        .route("/api/v1/label/{name}/values", get(label_values))
        .route("/api/v1/status/buildinfo", get(buildinfo))
        .route("/api/v1/metadata", get(metadata))
        .route("/api/v1/query_exemplars", get(exemplars).post(exemplars))
        .route("/api/v1/format_query", get(format_query).post(format_query))
        .route("/api/v1/parse_query", get(parse_query).post(parse_query))
        .with_state(state)
}

/// A failed request: HTTP status, Prometheus `errorType` and message.
#[derive(Debug, Clone)]
struct ApiError {
    status: u16,
    error_type: &'static str,
    msg: String,
}

impl ApiError {
    fn bad(msg: impl Into<String>) -> Self {
        Self { status: 400, error_type: "bad_data", msg: msg.into() }
    }

    fn param(name: &str, e: impl std::fmt::Display) -> Self {
        Self::bad(format!("invalid parameter \"{name}\": {e}"))
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        Self { status: e.http_status(), error_type: e.error_type(), msg: e.to_string() }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Forbidden { .. } => Self { status: 403, error_type: "forbidden", msg: e.to_string() },
            _ => Self { status: 401, error_type: "unauthorized", msg: e.to_string() },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_response(status, json::error(self.error_type, &self.msg))
    }
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

type ApiResult = Result<Response, ApiError>;

/// Parameters and tenant of a request.
struct Req {
    tenant: TenantId,
    params: Params,
}

fn request(
    state: &QueryState,
    method: &Method,
    headers: &HeaderMap,
    query: Option<String>,
    body: &Bytes,
) -> Result<Req, ApiError> {
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let tenant = state.resolver.resolve(auth, Access::Read)?;
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let body = (method == Method::POST && is_form).then_some(body.as_ref());
    Ok(Req { tenant, params: Params::from_parts(body, query.as_deref()) })
}

/// Cancels the query when the request future is dropped (client disconnected).
struct CancelOnDrop(CancelToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, ApiError> + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError {
        status: 500,
        error_type: "internal",
        msg: e.to_string(),
    })?
}

fn opt_time(p: &Params, name: &str, default: i64) -> Result<i64, ApiError> {
    match p.get(name).filter(|s| !s.is_empty()) {
        Some(s) => parse_time(s).map_err(|e| ApiError::param(name, e)),
        None => Ok(default),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn query_options(p: &Params, cancel: &CancelToken) -> Result<QueryOptions, ApiError> {
    let timeout = match p.get("timeout").filter(|s| !s.is_empty()) {
        Some(s) => {
            let ms = parse_duration(s).map_err(|e| ApiError::param("timeout", e))?;
            Some(std::time::Duration::from_millis(ms.max(0) as u64))
        }
        None => None,
    };
    Ok(QueryOptions { timeout, cancel: Some(cancel.clone()), partial_response: partial_response(p)? })
}

/// Thanos's `partial_response` parameter (`true`/`false`, default true).
fn partial_response(p: &Params) -> Result<bool, ApiError> {
    match p.get("partial_response").filter(|s| !s.is_empty()) {
        None => Ok(true),
        Some(s) if s.eq_ignore_ascii_case("true") || s == "1" => Ok(true),
        Some(s) if s.eq_ignore_ascii_case("false") || s == "0" => Ok(false),
        Some(s) => Err(ApiError::param("partial_response", format!("cannot parse {s:?}: must be true or false"))),
    }
}

/// What a metadata request (series, labels, label values) reads: the
/// engine's store, or for a federated tenant the raw-reachable store of its
/// federated part, with infos naming the jurisdictions whose metadata is
/// not shown, the federated part's warnings and those the store raised
/// while it was read (`strata_schemas::read_warnings`).
struct Metadata {
    fq: Option<Box<dyn crate::federation::FederatedQuery>>,
    engine: Arc<Engine>,
    raised: std::cell::RefCell<Vec<String>>,
    /// The request's `partial_response`: false makes a store that misses data fail the read.
    partial: bool,
}

impl Metadata {
    fn begin(engine: Arc<Engine>, tenant: &TenantId, what: &str, partial: bool) -> Result<Self, ApiError> {
        let fq = match engine.federation() {
            Some(f) => f.begin(tenant, what, partial).map_err(QueryError::GeoFence)?,
            None => None,
        };
        Ok(Self { fq, engine, raised: Default::default(), partial })
    }

    /// Runs one read of the store, keeping the warnings it raises.
    fn read<T>(&self, f: impl FnOnce(&dyn strata_schemas::ReadStore) -> T) -> T {
        let store = match &self.fq {
            Some(fq) => fq.store(),
            None => self.engine.store().as_ref(),
        };
        let (out, raised) = strata_schemas::read_warnings::collect_with(self.partial, || f(store));
        let mut all = self.raised.borrow_mut();
        for w in raised {
            if !all.contains(&w) {
                all.push(w);
            }
        }
        out
    }

    /// `(warnings, infos)` once the reads are done; `shown` names what is
    /// listed ("series", "label names and values").
    fn annotations(&self, shown: &str) -> (Vec<String>, Vec<String>) {
        let raised = self.raised.take();
        let Some(fq) = &self.fq else { return (raised, Vec::new()) };
        let mut infos = Vec::new();
        for j in fq.aggregate_jurisdictions() {
            infos.push(format!(
                "{shown} of jurisdiction {j} are not shown here: the tenant's policy lets only aggregates leave it"
            ));
        }
        for j in fq.excluded_jurisdictions() {
            infos.push(format!(
                "{shown} of jurisdiction {j} are not shown here: the tenant's policy keeps its data there"
            ));
        }
        let mut warnings = fq.warnings();
        for w in raised {
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
        (warnings, infos)
    }
}

async fn query(State(st): State<QueryState>, m: Method, h: HeaderMap, RawQuery(q): RawQuery, body: Bytes) -> ApiResult {
    let req = request(&st, &m, &h, q, &body)?;
    let expr = req.params.get("query").unwrap_or("").to_owned();
    let t = opt_time(&req.params, "time", now_ms())?;
    let cancel = CancelToken::new();
    let opts = query_options(&req.params, &cancel)?;
    if let Some(front) = st.front.clone() {
        let reads = front.analyze(&st.engine, &expr, t, t);
        let key = front_key("query", &req, &h, &expr, &[t]);
        let tenant = req.tenant.clone();
        let work = async move { rendered(eval_instant(st, req.tenant, expr, t, opts).await) };
        return coalesced(front.coalesce(key, &tenant, reads, cancel, work).await);
    }
    let _guard = CancelOnDrop(cancel);
    let res = eval_instant(st, req.tenant, expr, t, opts).await?;
    Ok(json_response(StatusCode::OK, json::query_result(&res)))
}

async fn eval_instant(
    st: QueryState,
    tenant: TenantId,
    expr: String,
    t: i64,
    opts: QueryOptions,
) -> Result<crate::QueryResult, ApiError> {
    let _slot = st.slot(&tenant).await?;
    if let Some(f) = &st.front {
        f.count_evaluation();
    }
    // A small query (a device's series) is answered on this thread: a
    // hand-off to a blocking thread and back would cost more than it.
    if let Some(res) = st.engine.try_query_instant_inline(&tenant, &expr, t, &opts) {
        return Ok(res?);
    }
    let engine = Arc::clone(&st.engine);
    blocking(move || Ok(engine.query_instant_with(&tenant, &expr, t, &opts)?)).await
}

async fn query_range(
    State(st): State<QueryState>,
    m: Method,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult {
    let req = request(&st, &m, &h, q, &body)?;
    let p = &req.params;
    let start = parse_time(p.get("start").unwrap_or("")).map_err(|e| ApiError::param("start", e))?;
    let end = parse_time(p.get("end").unwrap_or("")).map_err(|e| ApiError::param("end", e))?;
    let step = parse_duration(p.get("step").unwrap_or("")).map_err(|e| ApiError::param("step", e))?;
    let expr = p.get("query").unwrap_or("").to_owned();
    let cancel = CancelToken::new();
    let opts = query_options(p, &cancel)?;
    if let Some(front) = st.front.clone() {
        let reads = front.analyze(&st.engine, &expr, start, end);
        let key = front_key("query_range", &req, &h, &expr, &[start, end, step]);
        let tenant = req.tenant.clone();
        let work = async move { rendered(eval_range(st, req.tenant, expr, (start, end, step), opts).await) };
        return coalesced(front.coalesce(key, &tenant, reads, cancel, work).await);
    }
    let _guard = CancelOnDrop(cancel);
    let res = eval_range(st, req.tenant, expr, (start, end, step), opts).await?;
    Ok(json_response(StatusCode::OK, json::query_result(&res)))
}

async fn eval_range(
    st: QueryState,
    tenant: TenantId,
    expr: String,
    (start, end, step): (i64, i64, i64),
    opts: QueryOptions,
) -> Result<crate::QueryResult, ApiError> {
    let _slot = st.slot(&tenant).await?;
    if let Some(front) = st.front.clone().filter(|f| f.caching()) {
        let engine = Arc::clone(&st.engine);
        return blocking(move || Ok(front.query_range(&engine, &tenant, &expr, (start, end, step), &opts)?)).await;
    }
    if let Some(f) = &st.front {
        f.count_evaluation();
    }
    if let Some(res) = st.engine.try_query_range_inline(&tenant, &expr, (start, end, step), &opts) {
        return Ok(res?);
    }
    let engine = Arc::clone(&st.engine);
    blocking(move || Ok(engine.query_range_with(&tenant, &expr, start, end, step, &opts)?)).await
}

/// The coalescing key of a request: endpoint, tenant, query text (as sent:
/// annotations name positions in it), its resolved times and every other parameter (and read-after header) as sent.
fn front_key(endpoint: &str, req: &Req, h: &HeaderMap, query: &str, times: &[i64]) -> String {
    use std::fmt::Write;
    let mut key = format!("{endpoint}\0{}\0{query}\0", req.tenant);
    for t in times {
        let _ = write!(key, "{t},");
    }
    let mut rest: Vec<(&str, &str)> =
        req.params.pairs().filter(|(k, _)| !matches!(*k, "query" | "time" | "start" | "end" | "step")).collect();
    rest.sort_unstable();
    for (k, v) in rest {
        let _ = write!(key, "\0{k}={v}");
    }
    if let Some(v) = h.get("x-strata-read-after") {
        key.push_str("\0read-after=");
        key.push_str(&String::from_utf8_lossy(v.as_bytes()));
    }
    key
}

/// A query's answer as the front shares it among coalesced requests.
fn rendered(res: Result<crate::QueryResult, ApiError>) -> crate::front::CoalescedAnswer {
    match res {
        Ok(r) => (200, Bytes::from(json::query_result(&r))),
        Err(e) => (e.status, Bytes::from(json::error(e.error_type, &e.msg))),
    }
}

fn coalesced(answer: Option<crate::front::CoalescedAnswer>) -> ApiResult {
    let Some((status, body)) = answer else {
        return Err(ApiError { status: 500, error_type: "internal", msg: "the query's evaluation panicked".into() });
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Ok((status, [(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Parses each `match[]` selector into storage matchers (length and depth
/// checked first, as for queries: see [`crate::engine::prescan`]).
fn parse_match(st: &QueryState, p: &Params, required: bool) -> Result<Vec<Vec<Matcher>>, ApiError> {
    let raw = p.all("match[]");
    if raw.is_empty() && required {
        return Err(ApiError::bad("no match[] parameter provided"));
    }
    let max_len = st.engine.config().max_query_length;
    raw.into_iter()
        .map(|s| match crate::engine::prescan::check(s, max_len).and_then(|()| promql_parser::parser::parse(s)) {
            Ok(promql_parser::parser::Expr::VectorSelector(vs)) => {
                crate::engine::selector_matchers(&vs).map_err(|e| ApiError::param("match[]", e))
            }
            Ok(_) => Err(ApiError::param("match[]", "match[] must be a series selector")),
            Err(e) => Err(ApiError::param("match[]", e)),
        })
        .collect()
}

fn range_and_limit(p: &Params) -> Result<(TimeRange, usize), ApiError> {
    let start = opt_time(p, "start", MIN_TIME_MS)?;
    let end = opt_time(p, "end", MAX_TIME_MS)?;
    if end < start {
        return Err(ApiError::param("end", "end timestamp must not be before start time"));
    }
    let limit = match p.get("limit").filter(|s| !s.is_empty()) {
        Some(s) => s
            .parse::<usize>()
            .map_err(|_| ApiError::param("limit", format!("cannot parse {s:?}: must be a non-negative number")))?,
        None => 0,
    };
    Ok((TimeRange::new(start, end), limit))
}

/// Cuts a metadata answer to the request's `limit` and to the server's
/// `query.max_metadata_results` (0: none), whichever is smaller, with
/// Prometheus's warning; cut by the server's bound, the warning names the
/// setting (it starts with Prometheus's text, so clients that look for it
/// still see a truncated answer).
fn truncate<T>(mut v: Vec<T>, limit: usize, server_max: usize) -> (Vec<T>, Vec<String>) {
    let by_server = server_max > 0 && (limit == 0 || server_max < limit);
    let cut = if by_server { server_max } else { limit };
    if cut > 0 && v.len() > cut {
        v.truncate(cut);
        let warning = if by_server {
            format!(
                "results truncated due to limit: query.max_metadata_results ({server_max}) caps every series, \
                 label names and label values answer; narrow match[] or the time range"
            )
        } else {
            "results truncated due to limit".to_owned()
        };
        return (v, vec![warning]);
    }
    (v, Vec::new())
}

fn list_response(items: impl Iterator<Item = String>, warnings: &[String], infos: &[String]) -> Response {
    let mut out = String::from("{\"status\":\"success\",\"data\":[");
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&item);
    }
    out.push(']');
    json::push_warnings(&mut out, warnings);
    json::push_annotations(&mut out, "infos", infos);
    out.push('}');
    json_response(StatusCode::OK, out)
}

async fn series(
    State(st): State<QueryState>,
    m: Method,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult {
    let req = request(&st, &m, &h, q, &body)?;
    let sets = parse_match(&st, &req.params, true)?;
    let (range, limit) = range_and_limit(&req.params)?;
    let partial = partial_response(&req.params)?;
    let what = format!("series {}", req.params.all("match[]").join(" "));
    let what = what.trim_end().to_owned();
    let engine = Arc::clone(&st.engine);
    let (all, fed_warnings, infos): (Vec<Labels>, _, _) = blocking(move || {
        let md = Metadata::begin(engine, &req.tenant, &what, partial)?;
        let mut all = Vec::new();
        for ms in &sets {
            all.extend(md.read(|s| s.series(&req.tenant, ms, range)).map_err(|e| QueryError::from(e).federated())?);
        }
        all.sort();
        all.dedup();
        let (w, i) = md.annotations("series");
        Ok((all, w, i))
    })
    .await?;
    let (all, mut warnings) = truncate(all, limit, st.engine.config().max_metadata_results);
    warnings.extend(fed_warnings);
    Ok(list_response(
        all.iter().map(|l| {
            let mut s = String::new();
            json::push_labels(&mut s, l);
            s
        }),
        &warnings,
        &infos,
    ))
}

async fn labels(
    State(st): State<QueryState>,
    m: Method,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult {
    let req = request(&st, &m, &h, q, &body)?;
    let sets = parse_match(&st, &req.params, false)?;
    let (range, limit) = range_and_limit(&req.params)?;
    let partial = partial_response(&req.params)?;
    let what = format!("labels {}", req.params.all("match[]").join(" "));
    let engine = Arc::clone(&st.engine);
    let (names, fed_warnings, infos) = blocking(move || {
        let md = Metadata::begin(engine, &req.tenant, what.trim_end(), partial)?;
        let sets = if sets.is_empty() { vec![Vec::new()] } else { sets };
        let mut all = Vec::new();
        for ms in &sets {
            all.extend(
                md.read(|s| s.label_names(&req.tenant, ms, range)).map_err(|e| QueryError::from(e).federated())?,
            );
        }
        all.sort();
        all.dedup();
        let (w, i) = md.annotations("label names and values");
        Ok((all, w, i))
    })
    .await?;
    let (names, mut warnings) = truncate(names, limit, st.engine.config().max_metadata_results);
    warnings.extend(fed_warnings);
    Ok(list_response(names.iter().map(|n| serde_json::to_string(n).unwrap_or_default()), &warnings, &infos))
}

async fn label_values(
    State(st): State<QueryState>,
    Path(name): Path<String>,
    m: Method,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let req = request(&st, &m, &h, q, &Bytes::new())?;
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(ApiError::bad(format!("invalid label name: {name:?}")));
    }
    let sets = parse_match(&st, &req.params, false)?;
    let (range, limit) = range_and_limit(&req.params)?;
    let partial = partial_response(&req.params)?;
    let what = format!("label values {name} {}", req.params.all("match[]").join(" "));
    let engine = Arc::clone(&st.engine);
    let (values, fed_warnings, infos) = blocking(move || {
        let md = Metadata::begin(engine, &req.tenant, what.trim_end(), partial)?;
        let sets = if sets.is_empty() { vec![Vec::new()] } else { sets };
        let mut all = Vec::new();
        for ms in &sets {
            all.extend(
                md.read(|s| s.label_values(&req.tenant, &name, ms, range))
                    .map_err(|e| QueryError::from(e).federated())?,
            );
        }
        all.sort();
        all.dedup();
        let (w, i) = md.annotations("label names and values");
        Ok((all, w, i))
    })
    .await?;
    let (values, mut warnings) = truncate(values, limit, st.engine.config().max_metadata_results);
    warnings.extend(fed_warnings);
    Ok(list_response(values.iter().map(|n| serde_json::to_string(n).unwrap_or_default()), &warnings, &infos))
}

/// `{"status":"success","data":<data>}`.
fn success(data: &serde_json::Value) -> Response {
    json_response(StatusCode::OK, format!("{{\"status\":\"success\",\"data\":{data}}}"))
}

/// `/api/v1/format_query`: the expression pretty-printed like Prometheus's `Pretty(0)`.
async fn format_query(
    State(st): State<QueryState>,
    m: Method,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult {
    use promql_parser::parser::Prettier;
    let req = request(&st, &m, &h, q, &body)?;
    let expr = st.engine.parse(req.params.get("query").unwrap_or(""))?;
    Ok(success(&serde_json::Value::String(expr.pretty(0, 100))))
}

/// `/api/v1/parse_query`: the expression's syntax tree as JSON (Prometheus's `translateAST`).
async fn parse_query(
    State(st): State<QueryState>,
    m: Method,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult {
    let req = request(&st, &m, &h, q, &body)?;
    let expr = st.engine.parse(req.params.get("query").unwrap_or(""))?;
    Ok(success(&ast::translate(&expr)))
}

async fn buildinfo() -> Response {
    let body = serde_json::json!({
        "status": "success",
        "data": {
            "version": PROMETHEUS_COMPAT_VERSION,
            "revision": concat!("strata-", env!("CARGO_PKG_VERSION")),
            "branch": "HEAD",
            "buildUser": "strata",
            "buildDate": "",
            "goVersion": "strata (rust)",
        }
    });
    json_response(StatusCode::OK, body.to_string())
}

async fn metadata(State(st): State<QueryState>, h: HeaderMap) -> ApiResult {
    let auth = h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    st.resolver.resolve(auth, Access::Read)?;
    Ok(json_response(StatusCode::OK, "{\"status\":\"success\",\"data\":{}}".into()))
}

async fn exemplars(State(st): State<QueryState>, h: HeaderMap) -> ApiResult {
    let auth = h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    st.resolver.resolve(auth, Access::Read)?;
    Ok(json_response(StatusCode::OK, "{\"status\":\"success\",\"data\":[]}".into()))
}
