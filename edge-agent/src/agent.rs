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
    /// The hybrid logical clock and the gateway clock's skew (`clock.rs`).
    pub clock: crate::clock::Clock,
    /// Wakes the forwarder after an append.
    pub wake: tokio::sync::Notify,
    /// What the server de-duplicates batches by (`X-Strata-Agent-Id`):
    /// `<agent_id>.<queue id>`, the queue id made when the queue was created.
    /// A re-installed gateway (new queue, sequence numbers from 1 again)
    /// under the same `agent_id` is a new origin, so the server cannot mistake
    /// its new batches for re-sends of the old queue's.
    pub origin_id: String,
    /// The aggregator (`aggregate.rs`), with `[[aggregate]]` rules: the
    /// forwarder acknowledges a batch only once its state file covers it.
    pub aggregate: Option<Arc<crate::aggregate::Handle>>,
}

impl Agent {
    /// Opens the queue in `<data_dir>/queue` (repairing a torn tail).
    pub fn open(mut config: AgentConfig) -> Result<Arc<Agent>> {
        config.validate()?;
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| crate::Error::OpenQueue { path: config.data_dir.clone(), source: e })?;
        let clock = crate::clock::Clock::open(&config.data_dir, config.clock.clone())?;
        let (queue, report) = Queue::open(&config.data_dir.join("queue"), config.queue.clone())?;
        let origin_id = format!("{}.{}", config.agent_id, queue_id(queue.dir())?);
        let stats = queue.stats();
        tracing::info!(
            dir = %queue.dir().display(),
            unacked_batches = stats.unacked_batches,
            acked_seq = stats.acked_seq,
            next_seq = stats.next_seq,
            torn_bytes = report.torn_bytes,
            origin = %origin_id,
            "queue opened"
        );
        let aggregate = crate::aggregate::open(&config, &origin_id, &queue)?;
        let metrics = Metrics::default();
        *metrics.current_endpoint.lock().expect("fresh lock") = config.forward.endpoints[0].clone();
        let queue = Arc::new(Mutex::new(queue));
        let (appends, requests) = std::sync::mpsc::channel();
        let writer_queue = Arc::clone(&queue);
        std::thread::Builder::new()
            .name("queue-writer".to_owned())
            .spawn(move || write_groups(&writer_queue, &requests))
            .map_err(|e| crate::Error::OpenQueue { path: config.data_dir.clone(), source: e })?;
        let handle = aggregate.as_ref().map(|(h, _)| Arc::clone(h));
        let agent = Arc::new(Agent {
            config,
            queue,
            appends,
            metrics,
            clock,
            wake: tokio::sync::Notify::new(),
            origin_id,
            aggregate: handle,
        });
        if let Some((handle, aggregator)) = aggregate {
            crate::aggregate::spawn(&agent, aggregator, handle)?;
        }
        Ok(agent)
    }

    /// Appends one batch; returns its sequence number once it is durable.
    /// Concurrent appends share one fsync (group commit on the writer thread).
    pub async fn append(&self, payload: Vec<u8>) -> Result<u64> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let enqueued_ms = self.clock.wall_ms();
        let stopped = || crate::Error::Write {
            path: self.config.data_dir.clone(),
            source: std::io::Error::other("the queue writer thread stopped"),
        };
        self.appends.send(AppendRequest { payload, enqueued_ms, reply }).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// [`Agent::append`] from a thread outside the runtime (the aggregator's
    /// emissions): the same writer thread, group commit and answer.
    pub fn append_blocking(&self, payload: Vec<u8>) -> Result<u64> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let enqueued_ms = self.clock.wall_ms();
        let stopped = || crate::Error::Write {
            path: self.config.data_dir.clone(),
            source: std::io::Error::other("the queue writer thread stopped"),
        };
        self.appends.send(AppendRequest { payload, enqueued_ms, reply }).map_err(|_| stopped())?;
        answer.blocking_recv().map_err(|_| stopped())?
    }

    /// Counters and queue gauges (blocking: takes the queue lock).
    pub fn status(&self) -> Status {
        let fwd = &self.config.forward;
        let (stats, lanes) = {
            let queue = self.queue.lock().expect("queue lock is never poisoned");
            let live_start = queue.live_start(crate::forward::live_cutoff(self.clock.wall_ms(), fwd.live_window));
            (queue.stats(), queue.lanes(live_start))
        };
        let now = self.clock.wall_ms();
        let mut status = self.metrics.status(&self.config.agent_id, stats, self.config.queue.max_bytes, now);
        status.lanes = self.metrics.lanes(lanes, fwd.live_window, fwd.backlog_rate, now);
        status.clock = Some(self.clock.status());
        let mqtt = &self.config.mqtt;
        if let Some(host) = &mqtt.host {
            let client_id = mqtt.client_id_or(&self.config.agent_id).to_owned();
            status.mqtt = Some(self.metrics.mqtt.status(format!("{host}:{}", mqtt.port), client_id));
        }
        status.aggregate = self.aggregate.as_ref().map(|a| a.status());
        status
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

/// Most appends merged into one batch.
const MAX_GROUP: usize = 256;

/// Most payload bytes merged into one batch (and at most a quarter of the
/// queue bound, so a merged batch never exceeds it where its parts would not).
const MAX_GROUP_BYTES: usize = 1 << 20;

/// The writer thread (group commit): takes the appends waiting, up to
/// [`MAX_GROUP`] and [`MAX_GROUP_BYTES`], and queues them as **one** batch
/// (their line protocol concatenated) with one write and one fsync; every
/// request of the group gets the same answer. Concurrent writers thus share
/// an fsync and a forwarder round trip. Ends when the agent is dropped.
fn write_groups(queue: &Mutex<Queue>, requests: &std::sync::mpsc::Receiver<AppendRequest>) {
    let cap = {
        let max = queue.lock().expect("queue lock is never poisoned").config().max_bytes / 4;
        MAX_GROUP_BYTES.min(usize::try_from(max).unwrap_or(usize::MAX))
    };
    let mut carried: Option<AppendRequest> = None;
    loop {
        let first = match carried.take() {
            Some(r) => r,
            None => match requests.recv() {
                Ok(r) => r,
                Err(_) => return,
            },
        };
        let mut bytes = first.payload.len();
        let mut group = vec![first];
        while group.len() < MAX_GROUP
            && let Ok(more) = requests.try_recv()
        {
            if bytes + more.payload.len() > cap {
                carried = Some(more);
                break;
            }
            bytes += more.payload.len();
            group.push(more);
        }
        // The group's enqueue time is its oldest request's.
        let enqueued_ms = group.iter().map(|r| r.enqueued_ms).min().unwrap_or_default();
        let result = {
            let mut queue = queue.lock().expect("queue lock is never poisoned");
            match group.as_slice() {
                [one] => queue.append(&one.payload, enqueued_ms),
                many => {
                    let mut merged = Vec::with_capacity(bytes);
                    for r in many {
                        merged.extend_from_slice(&r.payload);
                    }
                    queue.append(&merged, enqueued_ms)
                }
            }
        };
        for request in group {
            // The client may have gone away; its lines are queued all the same.
            let _ = request.reply.send(copy_result(&result));
        }
    }
}

/// The same answer for every request of a group (`Error` is not `Clone`).
fn copy_result(result: &Result<u64>) -> Result<u64> {
    use crate::Error;
    match result {
        Ok(seq) => Ok(*seq),
        Err(Error::Full { used, max, needed }) => Err(Error::Full { used: *used, max: *max, needed: *needed }),
        Err(Error::TooLarge { size, max }) => Err(Error::TooLarge { size: *size, max: *max }),
        Err(Error::Poisoned) => Err(Error::Poisoned),
        Err(e) => {
            Err(Error::Write { path: std::path::PathBuf::from("queue"), source: std::io::Error::other(e.to_string()) })
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

/// The queue's id: 16 hex digits in `<queue dir>/QUEUE_ID`, made (and
/// fsynced) the first time the queue is opened.
fn queue_id(dir: &std::path::Path) -> Result<String> {
    use std::hash::{BuildHasher, Hasher};
    let path = dir.join("QUEUE_ID");
    let io = |source: std::io::Error| crate::Error::OpenQueue { path: path.clone(), source };
    if let Ok(text) = std::fs::read_to_string(&path) {
        let id = text.trim();
        if id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(id.to_owned());
        }
        tracing::warn!(path = %path.display(), "QUEUE_ID is damaged; the queue gets a new id (its unsent batches may be applied twice)");
    }
    // Randomly keyed by the OS (RandomState), mixed with the time and pid: unique enough to tell queues apart.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.write_u32(std::process::id());
    let id = format!("{:016x}", h.finish());
    let tmp = dir.join("QUEUE_ID.tmp");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(id.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, &path).map_err(io)?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{FsyncPolicy, QueueConfig};

    fn run(config: QueueConfig, payloads: &[&[u8]]) -> (Vec<Result<u64>>, Queue, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let (queue, _) = Queue::open(dir.path(), config.clone()).unwrap();
        let queue = Mutex::new(queue);
        let (tx, rx) = std::sync::mpsc::channel();
        let mut answers = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            let (reply, answer) = tokio::sync::oneshot::channel();
            tx.send(AppendRequest { payload: p.to_vec(), enqueued_ms: 10 - i as i64, reply }).unwrap();
            answers.push(answer);
        }
        drop(tx);
        write_groups(&queue, &rx);
        let results = answers.into_iter().map(|a| a.blocking_recv().unwrap()).collect();
        drop(queue);
        // Reopen to read what is on disk.
        let (queue, _) = Queue::open(dir.path(), config).unwrap();
        (results, queue, dir)
    }

    #[test]
    fn waiting_requests_are_queued_as_one_batch() {
        let config = QueueConfig { fsync: FsyncPolicy::Never, ..QueueConfig::default() };
        let (results, queue, _dir) = run(config, &[b"a v=1 1\n", b"b v=2 2\n", b"c v=3 3\n"]);
        assert!(results.iter().all(|r| matches!(r, Ok(1))), "{results:?}");
        let batch = queue.read(1).unwrap().unwrap();
        assert_eq!(batch.payload, b"a v=1 1\nb v=2 2\nc v=3 3\n");
        assert_eq!(batch.enqueued_ms, 8, "the oldest request's time");
        assert_eq!(queue.stats().unacked_batches, 1);
    }

    #[test]
    fn a_group_stays_within_a_quarter_of_the_bound() {
        let config =
            QueueConfig { max_bytes: 16384, segment_bytes: 4096, fsync: FsyncPolicy::Never, ..QueueConfig::default() };
        let big = [b'x'; 3000];
        let (results, queue, _dir) = run(config, &[&big, &big, &big]);
        let seqs: Vec<u64> = results.into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(seqs, [1, 2, 3]);
        assert_eq!(queue.read(2).unwrap().unwrap().payload.len(), 3000);
    }

    #[test]
    fn a_queue_keeps_its_id_and_a_new_queue_gets_another() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let id = super::queue_id(a.path()).unwrap();
        assert_eq!(id.len(), 16);
        assert_eq!(super::queue_id(a.path()).unwrap(), id, "read back, not made again");
        assert_ne!(super::queue_id(b.path()).unwrap(), id);
        std::fs::write(a.path().join("QUEUE_ID"), "garbage").unwrap();
        assert_ne!(super::queue_id(a.path()).unwrap(), id, "a damaged id is replaced");
    }
}
