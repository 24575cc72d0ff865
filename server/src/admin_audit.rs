//! The admin audit log: one durable JSON line per admin action, a sibling
//! of the cross-region log ([`crate::audit`]) and the erasure log
//! ([`crate::erasure::audit`]) in the same directory (`[federation]
//! audit_dir`, default `<data_dir>/audit`).
//!
//! Every request under `/admin/` (tenants, limits, tokens, deletes, the audit
//! readers themselves; everything `strata admin` does), the Prometheus
//! delete API (`/api/v1/admin/…`) and the operational `POST
//! /internal/{flush,compact,roll}` is recorded by [`layer`] once its answer
//! is known and before the answer leaves, refused ones (`401`) included.
//! `GET /admin/v1/actions` ([`router`]) and `strata admin actions` read it.
//!
//! ## Format (version 1)
//!
//! File `<audit_dir>/admin.jsonl`, append-only, fsynced per record, never
//! rewritten. A line that does not parse (a torn last write after a crash)
//! is skipped by readers; the writer starts a new line after it. A record
//! whose `v` is not 1 is skipped too, with a warning naming the file, the
//! line and the version ([`crate::jsonl::known_version`]). Each line:
//!
//! | field | meaning |
//! |---|---|
//! | `v` | format version (1) |
//! | `time_ms` | when the request arrived (Unix ms) |
//! | `duration_ms` | how long it took to answer |
//! | `who` | `admin` (the admin token), `token:<id>` (a registry token's public id; a `401` makes it `invalid-token`), `static-token` (an `[auth] tokens` entry), `invalid-token` (a token that is none of these) or `none` (no `Authorization`) |
//! | `client` | the client's address (`ip:port`) |
//! | `user_agent` | its `User-Agent` (cut to 256 bytes; `strata admin` sends `strata-admin/<version>`) |
//! | `actor` | the `X-Strata-Actor` header as the client declared it (cut to 128 bytes; `strata admin` sends `$USER@host`), unverified: the admin token is what authenticates |
//! | `method`, `path`, `query` | what was asked (the query string as sent, cut to 1 KiB) |
//! | `route` | the route it matched, e.g. `/admin/v1/tenants/{id}/limits` (`null`: none) |
//! | `tenant` | the tenant the path names (`{id}` of a tenant route), when it does |
//! | `request` | the request's JSON body (limits, policy fields, selectors; cut to 4 KiB, else `{"bytes": n}`); `null` for an empty body |
//! | `status` | the HTTP status answered |
//! | `result` | `ok` (2xx), `refused` (4xx) or `failed` (5xx) |
//! | `error` | the answer's error text (non-2xx; cut to 1 KiB) |
//! | `token_id` | the id of a token issued by this request |
//! | `dropped_before` | records of requests without a valid token not written since the last one (more than 10 a second) |
//!
//! Secrets never enter the log: tokens are named by their public id, and
//! the answer of a token issue (which carries the new token) is read only
//! for its `id`. A crash after an action and before its record is written
//! loses the record (the action's own effect, e.g. the registry row, stays).
//! When the record cannot be written the answer is still sent (the action
//! happened), with the failure logged as an error naming the file.

use crate::error::Error;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Format version of a record.
pub const VERSION: u32 = 1;
/// File name in the audit directory.
pub const FILE: &str = "admin.jsonl";
/// Header in which a client names the person or system acting
/// (`strata admin` sends `$USER@host`); recorded as `actor`, as declared.
pub const ACTOR_HEADER: &str = "x-strata-actor";
/// Largest request body the layer reads for an audited route (admin bodies are small JSON).
pub const MAX_BODY: usize = 1 << 20;
const MAX_RECORDED_BODY: usize = 4096;
const MAX_TEXT: usize = 1024;
/// Records of requests without a valid token written per second at most: a
/// flood of bad tokens cannot fill the disk or its fsyncs; the next record
/// written says how many were dropped (`dropped_before`).
pub const MAX_ANONYMOUS_PER_SECOND: u32 = 10;

/// The admin audit log of a node.
#[derive(Debug)]
pub struct AdminAudit {
    path: PathBuf,
    lock: parking_lot::Mutex<()>,
    failures: AtomicU64,
    /// Records of unauthenticated requests this second: (second, written, dropped since the last written).
    anonymous: parking_lot::Mutex<(i64, u32, u64)>,
}

impl AdminAudit {
    /// The log in `dir`; creates the directory and checks the file can be
    /// appended to, so a misconfigured directory stops startup.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        std::fs::create_dir_all(dir).with_context(|| format!("creating the audit directory {}", dir.display()))?;
        let path = dir.join(FILE);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening the admin audit log {}", path.display()))?;
        Ok(Self {
            path,
            lock: parking_lot::Mutex::new(()),
            failures: AtomicU64::new(0),
            anonymous: parking_lot::Mutex::new((0, 0, 0)),
        })
    }

    /// Where the records go.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether an unauthenticated request's record may be written now (at
    /// most [`MAX_ANONYMOUS_PER_SECOND`]); `Some(n)`: yes, and `n` were
    /// dropped since the last one written.
    fn admit_anonymous(&self, now_ms: i64) -> Option<u64> {
        let mut a = self.anonymous.lock();
        let second = now_ms / 1000;
        if a.0 != second {
            *a = (second, 0, a.2);
        }
        if a.1 >= MAX_ANONYMOUS_PER_SECOND {
            a.2 += 1;
            return None;
        }
        a.1 += 1;
        Some(std::mem::take(&mut a.2))
    }

    /// Records that could not be written since start.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Appends `record` and fsyncs it.
    pub fn append(&self, record: &Value) -> anyhow::Result<()> {
        let _guard = self.lock.lock();
        crate::jsonl::append(&self.path, record)
    }

    /// The newest `limit` records, oldest first, optionally of one tenant
    /// (records of another version than [`VERSION`] skipped, with a warning).
    pub fn list(&self, tenant: Option<&str>, limit: usize) -> anyhow::Result<Vec<Value>> {
        let _guard = self.lock.lock();
        let mut out = std::collections::VecDeque::new();
        crate::jsonl::read(&self.path, VERSION..=VERSION, |v| {
            if tenant.is_none_or(|t| v["tenant"] == t) {
                if out.len() == limit.max(1) {
                    out.pop_front();
                }
                out.push_back(v);
            }
        })?;
        Ok(out.into())
    }
}

/// What the audit layer needs.
#[derive(Debug, Clone)]
pub struct AuditState {
    /// The log.
    pub log: Arc<AdminAudit>,
    /// The admin token (to tell `admin` from other tokens; never recorded).
    pub admin_token: Arc<str>,
    /// Static tokens of `[auth] tokens` (never recorded).
    pub static_tokens: crate::auth::StaticTokens,
}

/// `GET /admin/v1/actions?tenant=&limit=`: the newest records (default 100,
/// at most 10000), oldest first, as `{"status":"success","data":[…]}`.
pub fn router(state: AuditState) -> axum::Router {
    axum::Router::new().route("/admin/v1/actions", axum::routing::get(list_actions)).with_state(state)
}

#[derive(Debug, serde::Deserialize)]
struct ActionsQuery {
    tenant: Option<String>,
    limit: Option<usize>,
}

async fn list_actions(
    State(state): State<AuditState>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<ActionsQuery>,
) -> Result<Response, Error> {
    if who(&state, &headers) != "admin" {
        return Err(Error::Unauthenticated("the admin API needs the admin token".into()));
    }
    let log = Arc::clone(&state.log);
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    let records = tokio::task::spawn_blocking(move || log.list(q.tenant.as_deref(), limit))
        .await
        .map_err(Error::task("audit"))?
        .map_err(|source| Error::ReadAudit { log: "admin", source })?;
    Ok(axum::Json(json!({"status": "success", "data": records})).into_response())
}

/// Whether a request is an admin action the log records.
pub fn audited(method: &axum::http::Method, path: &str) -> bool {
    path.starts_with("/admin/")
        || path.starts_with("/api/v1/admin/")
        || (method == axum::http::Method::POST
            && matches!(path, "/internal/flush" | "/internal/compact" | "/internal/roll"))
}

/// Who a request's `Authorization` names, without its secret.
fn who(state: &AuditState, headers: &HeaderMap) -> String {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return "none".into() };
    let Some(token) = value.to_str().ok().and_then(|h| strata_schemas::tenant::parse_authorization(h).ok()) else {
        return "invalid-token".into();
    };
    if crate::auth::token_eq(token.as_bytes(), state.admin_token.as_bytes()) {
        return "admin".into();
    }
    if let Some(id) = token.strip_prefix("st_").and_then(|rest| rest.split_once('_')).map(|(id, _)| id)
        && !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return format!("token:{id}");
    }
    if state.static_tokens.contains(token) { "static-token".into() } else { "invalid-token".into() }
}

fn cut(s: &str, max: usize) -> String {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// The tenant a route's path names (`/admin/v1/tenants/{id}/…`).
fn tenant_of(route: Option<&str>, path: &str) -> Option<String> {
    let route = route?;
    let idx = route.split('/').position(|seg| seg == "{id}")?;
    if !route.starts_with("/admin/v1/tenants/") {
        return None;
    }
    path.split('/').nth(idx).map(str::to_owned)
}

fn recorded_body(body: &[u8]) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if body.len() <= MAX_RECORDED_BODY => v,
        _ => json!({ "bytes": body.len() }),
    }
}

/// The middleware: records each audited request (see the module doc).
pub async fn layer(State(state): State<AuditState>, req: Request, next: Next) -> Response {
    if !audited(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let started = std::time::Instant::now();
    let time_ms = crate::registry::now_ms();
    let (parts, body) = req.into_parts();
    let route = parts.extensions.get::<MatchedPath>().map(|m| m.as_str().to_owned());
    let mut record = json!({
        "v": VERSION,
        "time_ms": time_ms,
        "who": who(&state, &parts.headers),
        "client": parts.extensions.get::<crate::listener::PeerAddr>().map(|p| p.0.to_string()),
        "user_agent": parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|s| cut(s, 256)),
        "actor": parts.headers.get(ACTOR_HEADER).and_then(|v| v.to_str().ok()).map(|s| cut(s, 128)),
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query().map(|q| cut(q, MAX_TEXT)),
        "route": route,
        "tenant": tenant_of(route.as_deref(), parts.uri.path()),
    });
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            let msg = format!("admin request body not read (at most {MAX_BODY} bytes for an admin route): {e}");
            let resp = Error::BodyTooLarge(msg).into_response();
            return finish(&state, record, resp, started).await;
        }
    };
    record["request"] = recorded_body(&bytes);
    let is_token_issue =
        parts.method == axum::http::Method::POST && route.as_deref() == Some("/admin/v1/tenants/{id}/tokens");
    let resp = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    if is_token_issue && resp.status().is_success() {
        // The answer carries the new token: keep only its id.
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, MAX_BODY).await.unwrap_or_default();
        record["token_id"] = serde_json::from_slice::<Value>(&bytes).ok().and_then(|v| v.get("id").cloned()).into();
        return finish(&state, record, Response::from_parts(parts, Body::from(bytes)), started).await;
    }
    finish(&state, record, resp, started).await
}

/// Completes the record with the answer, appends it, and returns the answer.
async fn finish(state: &AuditState, mut record: Value, resp: Response, started: std::time::Instant) -> Response {
    let status = resp.status();
    if status == axum::http::StatusCode::UNAUTHORIZED && record["who"].as_str().is_some_and(|w| w.starts_with("token:"))
    {
        // `st_<id>_…` with a wrong secret: the id was only claimed.
        record["who"] = "invalid-token".into();
    }
    if matches!(record["who"].as_str(), Some("none" | "invalid-token")) {
        match state.log.admit_anonymous(crate::registry::now_ms()) {
            None => return resp,
            Some(0) => {}
            Some(dropped) => record["dropped_before"] = dropped.into(),
        }
    }
    record["status"] = status.as_u16().into();
    record["result"] = if status.is_success() || status.is_redirection() {
        "ok"
    } else if status.is_client_error() {
        "refused"
    } else {
        "failed"
    }
    .into();
    let resp = if status.is_success() {
        resp
    } else {
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, MAX_BODY).await.unwrap_or_default();
        let error = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        record["error"] = cut(&error, MAX_TEXT).into();
        Response::from_parts(parts, Body::from(bytes))
    };
    record["duration_ms"] = (started.elapsed().as_millis() as u64).into();
    let log = Arc::clone(&state.log);
    let appended = tokio::task::spawn_blocking(move || log.append(&record)).await;
    if let Err(e) = appended.map_err(anyhow::Error::from).and_then(|r| r) {
        state.log.failures.fetch_add(1, Ordering::Relaxed);
        tracing::error!(error = %format!("{e:#}"), path = %state.log.path().display(), "admin audit record not written");
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn records_survive_a_torn_line_and_filter_by_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let log = AdminAudit::open(dir.path()).unwrap();
        log.append(&json!({"v": 1, "tenant": "acme", "path": "/a"})).unwrap();
        let mut f = std::fs::OpenOptions::new().append(true).open(dir.path().join(FILE)).unwrap();
        f.write_all(b"{\"v\":1,\"ten").unwrap();
        drop(f);
        log.append(&json!({"v": 1, "tenant": "other", "path": "/b"})).unwrap();
        log.append(&json!({"v": 1, "tenant": "acme", "path": "/c"})).unwrap();
        assert_eq!(log.list(None, 100).unwrap().len(), 3, "the torn line is skipped");
        let acme = log.list(Some("acme"), 1).unwrap();
        assert_eq!(acme.len(), 1);
        assert_eq!(acme[0]["path"], "/c", "the newest is kept");
    }

    #[test]
    fn records_of_another_version_are_skipped_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let log = AdminAudit::open(dir.path()).unwrap();
        log.append(&json!({"v": 2, "tenant": "acme", "path": "/new"})).unwrap();
        log.append(&json!({"v": 1, "tenant": "acme", "path": "/a"})).unwrap();
        let mut all = Vec::new();
        let warned = crate::jsonl::warnings_of(|| all = log.list(None, 100).unwrap());
        assert_eq!(all.iter().map(|r| r["path"].clone()).collect::<Vec<_>>(), [json!("/a")]);
        let at = format!("{}:1: a record of format version 2", log.path().display());
        assert!(warned.contains(&at), "{warned}");
    }

    #[test]
    fn records_of_unauthenticated_requests_are_bounded_per_second() {
        let log = AdminAudit::open(tempfile::tempdir().unwrap().path()).unwrap();
        for _ in 0..MAX_ANONYMOUS_PER_SECOND {
            assert_eq!(log.admit_anonymous(5_000), Some(0));
        }
        assert_eq!(log.admit_anonymous(5_999), None);
        assert_eq!(log.admit_anonymous(5_999), None);
        assert_eq!(log.admit_anonymous(6_000), Some(2), "the next second's first record counts the dropped");
        assert_eq!(log.admit_anonymous(6_001), Some(0));
    }

    #[test]
    fn tenants_are_read_from_tenant_routes_only() {
        assert_eq!(
            tenant_of(Some("/admin/v1/tenants/{id}/limits"), "/admin/v1/tenants/acme/limits").as_deref(),
            Some("acme")
        );
        assert_eq!(tenant_of(Some("/admin/v1/deletes/{id}"), "/admin/v1/deletes/del_1"), None);
        assert_eq!(tenant_of(None, "/admin/v1/tenants/x"), None);
    }

    #[test]
    fn audited_routes() {
        use axum::http::Method;
        assert!(audited(&Method::GET, "/admin/v1/tenants"));
        assert!(audited(&Method::POST, "/api/v1/admin/tsdb/delete_series"));
        assert!(audited(&Method::POST, "/internal/flush"));
        assert!(!audited(&Method::GET, "/internal/status"));
        assert!(!audited(&Method::POST, "/internal/v1/select"));
        assert!(!audited(&Method::POST, "/api/v1/write"));
    }

    #[test]
    fn who_names_tokens_by_their_public_id_only() {
        let state = AuditState {
            log: Arc::new(AdminAudit::open(tempfile::tempdir().unwrap().path()).unwrap()),
            admin_token: Arc::from("the-admin-token-123"),
            static_tokens: crate::auth::StaticTokens::new(&std::collections::BTreeMap::from([(
                "static-secret-1".to_owned(),
                "acme".to_owned(),
            )]))
            .unwrap(),
        };
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::AUTHORIZATION, v.parse().unwrap());
            m
        };
        assert_eq!(who(&state, &HeaderMap::new()), "none");
        assert_eq!(who(&state, &h("Bearer the-admin-token-123")), "admin");
        assert_eq!(who(&state, &h("Token st_ab12_secretsecret")), "token:ab12");
        assert_eq!(who(&state, &h("Bearer static-secret-1")), "static-token");
        assert_eq!(who(&state, &h("Bearer guess")), "invalid-token");
    }
}
