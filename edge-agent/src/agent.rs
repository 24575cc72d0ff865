//! The running agent: its queue, counters and HTTP routes.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::config::AgentConfig;
use crate::error::Result;
use crate::metrics::{Metrics, Status};
use crate::queue::Queue;

/// State shared by the intake, the forwarder and the status endpoints.
#[derive(Debug)]
pub struct Agent {
    /// The configuration it runs with.
    pub config: AgentConfig,
    /// The durable queue (synchronous: lock it on a blocking thread).
    pub queue: Mutex<Queue>,
    /// Counters.
    pub metrics: Metrics,
    /// Wakes the forwarder after an append.
    pub wake: tokio::sync::Notify,
}

impl Agent {
    /// Opens the queue in `<data_dir>/queue` (repairing a torn tail).
    pub fn open(config: AgentConfig) -> Result<Arc<Agent>> {
        config.validate()?;
        let (queue, report) = Queue::open(&config.data_dir.join("queue"), config.queue.clone())?;
        let stats = queue.stats();
        tracing::info!(
            dir = %queue.dir().display(),
            unacked_batches = stats.unacked_batches,
            acked_seq = stats.acked_seq,
            next_seq = stats.next_seq,
            torn_bytes = report.torn_bytes,
            "queue opened"
        );
        let metrics = Metrics::default();
        *metrics.current_endpoint.lock().expect("fresh lock") = config.forward.endpoints[0].clone();
        Ok(Arc::new(Agent { config, queue: Mutex::new(queue), metrics, wake: tokio::sync::Notify::new() }))
    }

    /// Appends one batch (blocking: fsync); returns its sequence number.
    pub fn append(&self, payload: &[u8]) -> Result<u64> {
        let now = strata_schemas::time::now_millis();
        self.queue.lock().expect("queue lock is never poisoned").append(payload, now)
    }

    /// Counters and queue gauges (blocking: takes the queue lock).
    pub fn status(&self) -> Status {
        let stats = self.queue.lock().expect("queue lock is never poisoned").stats();
        let now = strata_schemas::time::now_millis();
        self.metrics.status(&self.config.agent_id, stats, self.config.queue.max_bytes, now)
    }

    /// The HTTP routes: intake, `/metrics`, `/status`, `/-/ready`.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/api/v2/write", post(crate::intake::write))
            .route("/write", post(crate::intake::write))
            .route("/metrics", get(metrics))
            .route("/status", get(status))
            .route("/-/ready", get(|| async { "ready\n" }))
            .layer(axum::extract::DefaultBodyLimit::max(self.config.intake.max_body_bytes))
            .with_state(Arc::clone(self))
    }
}

async fn snapshot(agent: Arc<Agent>) -> std::result::Result<Status, Response> {
    tokio::task::spawn_blocking(move || agent.status())
        .await
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response())
}

async fn metrics(State(agent): State<Arc<Agent>>) -> Response {
    match snapshot(agent).await {
        Ok(s) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.prometheus()).into_response(),
        Err(r) => r,
    }
}

async fn status(State(agent): State<Arc<Agent>>) -> Response {
    match snapshot(agent).await {
        Ok(s) => axum::Json(s).into_response(),
        Err(r) => r,
    }
}
