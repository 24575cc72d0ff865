//! What a node answers while it starts: the listeners open as soon as the
//! data directory is locked and the tenant registry is open, long before a
//! large embedded log is replayed, so the replay can be watched; nothing
//! that reads the hot store is served until it ended.
//!
//! ```text
//!  node::serve ─ bind ─ lock data dir ─ registry ─ listeners serve Startup::router ──────────────┐
//!      │                                                                                          │
//!      ├─ open hot store + log        phase OpeningStorage                                        │
//!      ├─ replay each partition       phase Replaying   (a progress task per partition)          │
//!      ├─ cold tier, the full app     phase Wiring                                                │
//!      └─ Startup::ready(app) ───────► every request from now on goes to the full app ◄──────────┘
//!
//!  while starting:  /-/healthy                  200 (the process is alive)
//!                   /-/ready                    503 "Strata is not ready: replaying the ingest log: partition 2 (3 of 4), 41.0 % (…)"
//!                   /metrics                    strata_ready 0, uptime, build info, strata_progress_*
//!                   /api/v1/status/tasks, /, /console/*   as when ready (the same handlers)
//!                   everything else             503 + Retry-After, an error that says the node is starting
//! ```
//!
//! Everything else includes queries and writes (never a partial answer from
//! a half-replayed store), the peer endpoints of `[cluster]` (a peer's
//! fan-out counts this node as unreachable, as it would a stopped node),
//! the inter-region endpoints (the asking region answers with a warning),
//! the erasure reload (the node reloads the registry itself before it turns
//! ready) and the admin API. The refusal is [`Error::Starting`], whose
//! status and `Retry-After` come from [`crate::error`]; write errors have
//! the write APIs' shape (`code`, `message`), other errors Prometheus's
//! (`status`, `errorType`, `error`).

use crate::error::{Error, with_retry_after};
use crate::progress::TasksState;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use parking_lot::Mutex;
use serde_json::json;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use strata_schemas::metrics_text::{MetricKind, MetricsText};
use strata_schemas::progress::{self, TaskKind, TaskSnapshot};

/// Seconds a client is told to wait (`Retry-After`) while the node starts.
pub const RETRY_AFTER_SECS: u32 = 2;

/// Where startup is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Opening the hot store and the ingest log.
    OpeningStorage,
    /// Replaying the embedded log's unflushed records into the hot store.
    Replaying,
    /// Opening the cold tier and wiring the query and write APIs.
    Wiring,
}

/// The startup state the listeners consult on every request.
#[derive(Debug)]
pub struct Startup {
    phase: Mutex<Phase>,
    app: OnceLock<Router>,
    started: Instant,
    partitions: u32,
}

impl Startup {
    /// A node starting with `partitions` log partitions, opening its storage.
    pub fn new(partitions: u32) -> Arc<Self> {
        Arc::new(Self {
            phase: Mutex::new(Phase::OpeningStorage),
            app: OnceLock::new(),
            started: Instant::now(),
            partitions,
        })
    }

    /// Moves to `phase`.
    pub fn set_phase(&self, phase: Phase) {
        *self.phase.lock() = phase;
    }

    /// The node is ready: `app` answers every request from now on.
    pub fn ready(&self, app: Router) {
        if self.app.set(app).is_err() {
            tracing::warn!("startup: the node was already ready");
        }
    }

    /// Whether [`Startup::ready`] was called.
    pub fn is_ready(&self) -> bool {
        self.app.get().is_some()
    }

    /// Time since the listeners opened.
    pub fn elapsed(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// What the node is doing, for people: the phase, and during the
    /// replay the partition being replayed with its progress.
    pub fn describe(&self) -> String {
        let phase = *self.phase.lock();
        match phase {
            Phase::OpeningStorage => "opening the hot store and the ingest log".to_owned(),
            Phase::Wiring => "log replayed; opening the cold tier and the query and write APIs".to_owned(),
            Phase::Replaying => {
                let running = progress::global().running();
                let task = running.iter().find(|t| t.kind == TaskKind::Replay && t.partition.is_some());
                match task {
                    Some(t) => describe_replay(t, self.partitions),
                    None => "replaying the ingest log".to_owned(),
                }
            }
        }
    }

    /// The router the listeners serve: the startup routes until
    /// [`Startup::ready`], then the full app.
    pub fn router(self: &Arc<Self>, tasks: TasksState) -> Router {
        let starting = Router::new()
            .route("/-/ready", get(not_ready))
            .route("/-/healthy", get(healthy))
            .route("/metrics", get(metrics))
            .fallback(unavailable)
            .with_state(Arc::clone(self))
            .merge(crate::console::router())
            .merge(crate::progress::router(tasks));
        Router::new().fallback(dispatch).with_state(Gate { startup: Arc::clone(self), starting })
    }
}

/// `replaying the ingest log: partition 2 (3 of 4), 41.0 % (1234 of 3000 records, 5600 records/s, about 1 s left)`.
fn describe_replay(t: &TaskSnapshot, partitions: u32) -> String {
    let p = t.partition.unwrap_or(0);
    let mut out = format!("replaying the ingest log: partition {p} ({} of {partitions})", p + 1);
    if let Some(f) = t.fraction() {
        let _ = write!(out, ", {:.1} %", f * 100.0);
    }
    let total = t.total.map_or_else(|| "?".to_owned(), |v| v.to_string());
    let _ = write!(out, " ({} of {total} {}, {:.0} {}/s", t.done, t.unit, t.rate_per_sec, t.unit);
    if let Some(eta) = t.eta_secs {
        let _ = write!(out, ", about {:.0} s left", eta.ceil());
    }
    out.push(')');
    out
}

#[derive(Clone)]
struct Gate {
    startup: Arc<Startup>,
    starting: Router,
}

/// Every request: to the full app once ready, else to the startup routes.
async fn dispatch(State(gate): State<Gate>, req: Request) -> Response {
    let router = gate.startup.app.get().unwrap_or(&gate.starting).clone();
    match tower::ServiceExt::oneshot(router, req).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    }
}

/// `/-/ready` while starting: Prometheus's plain-text readiness answer (503).
async fn not_ready(State(s): State<Arc<Startup>>) -> Response {
    let resp = (StatusCode::SERVICE_UNAVAILABLE, format!("Strata is not ready: {}.\n", s.describe())).into_response();
    with_retry_after(resp, Some(RETRY_AFTER_SECS))
}

async fn healthy() -> &'static str {
    "Strata is Healthy.\n"
}

/// Whether `path` is a write API (its errors have the `code`/`message` shape).
fn is_write_path(path: &str) -> bool {
    matches!(path, "/api/v2/write" | "/write" | "/api/v1/write" | "/otlp/v1/metrics")
}

/// Any other request while starting: [`Error::Starting`] (503,
/// `Retry-After`, and why), in the write APIs' body shape on a write route.
async fn unavailable(State(s): State<Arc<Startup>>, req: Request) -> Response {
    let e = Error::Starting(format!(
        "the node is starting ({}): it answers queries and writes once /-/ready answers 200; retry in {RETRY_AFTER_SECS} s",
        s.describe()
    ));
    if !is_write_path(req.uri().path()) {
        return e.into_response();
    }
    let body = json!({"code": e.error_type(), "message": e.to_string()});
    with_retry_after((e.status(), axum::Json(body)).into_response(), e.retry_after())
}

/// `/metrics` while starting: readiness, uptime, build and progress (no tenant data: nothing is open yet).
async fn metrics(State(s): State<Arc<Startup>>) -> Response {
    let mut out = String::with_capacity(2048);
    let mut text = MetricsText::new(&mut out);
    render_ready(&mut text, false);
    text.gauge("strata_uptime_seconds", "Seconds since the node started.", s.elapsed().as_secs_f64());
    text.family("strata_build_info", MetricKind::Gauge, "Build information.").sample(
        "strata_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1u64,
    );
    crate::progress::render_metrics(&mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out).into_response()
}

/// The `strata_ready` gauge (1 once the node serves queries and writes).
pub fn render_ready(text: &mut MetricsText<'_>, ready: bool) {
    text.gauge(
        "strata_ready",
        "1 once the node has replayed its log and serves queries and writes; 0 while it starts.",
        ready,
    );
}

#[cfg(test)]
mod tests;
