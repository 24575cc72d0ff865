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
    pub queue: Arc<Mutex<Queue>>,
    /// Requests to the queue writer thread (group commit).
    appends: std::sync::mpsc::Sender<AppendRequest>,
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
        let queue = Arc::new(Mutex::new(queue));
        let (appends, requests) = std::sync::mpsc::channel();
        let writer_queue = Arc::clone(&queue);
        std::thread::Builder::new()
            .name("queue-writer".to_owned())
            .spawn(move || write_groups(&writer_queue, &requests))
            .map_err(|e| crate::Error::OpenQueue { path: config.data_dir.clone(), source: e })?;
        Ok(Arc::new(Agent { config, queue, appends, metrics, wake: tokio::sync::Notify::new() }))
    }

    /// Appends one batch; returns its sequence number once it is durable.
    /// Concurrent appends share one fsync (group commit on the writer thread).
    pub async fn append(&self, payload: Vec<u8>) -> Result<u64> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let enqueued_ms = strata_schemas::time::now_millis();
        let stopped = || crate::Error::Write {
            path: self.config.data_dir.clone(),
            source: std::io::Error::other("the queue writer thread stopped"),
        };
        self.appends.send(AppendRequest { payload, enqueued_ms, reply }).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
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

/// One append waiting for the writer thread.
#[derive(Debug)]
struct AppendRequest {
    payload: Vec<u8>,
    enqueued_ms: i64,
    reply: tokio::sync::oneshot::Sender<Result<u64>>,
}

/// Most appends committed with one fsync.
const MAX_GROUP: usize = 256;

/// The writer thread: takes every append waiting, writes them, fsyncs
/// once, answers each. Ends when the agent is dropped.
fn write_groups(queue: &Mutex<Queue>, requests: &std::sync::mpsc::Receiver<AppendRequest>) {
    while let Ok(first) = requests.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP
            && let Ok(more) = requests.try_recv()
        {
            group.push(more);
        }
        let batches: Vec<(&[u8], i64)> = group.iter().map(|r| (r.payload.as_slice(), r.enqueued_ms)).collect();
        let results = queue.lock().expect("queue lock is never poisoned").append_group(&batches);
        drop(batches);
        for (request, result) in group.into_iter().zip(results) {
            // The client may have gone away; its batch is queued all the same.
            let _ = request.reply.send(result);
        }
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
