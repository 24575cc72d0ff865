//! The forwarder: sends the queue to the configured Strata servers in two
//! lanes, live first, and acknowledges a batch durably only on an answer.
//!
//! **Lanes (live first after an outage).** A batch queued within
//! `forward.live_window` (default 30 s) of now is *live*; older ones are the
//! *backlog*. The age is the batch's enqueue time, so the split needs no
//! state: after a restart or when the uplink returns, whatever was queued in
//! the last window is live. The forwarder always sends the newest
//! unacknowledged live batch next: fresh data overtakes whatever queued
//! during an outage (within the live window the server receives batches
//! newest first; it stores samples in any order, and each batch once); a backlog
//! batch (oldest first) goes only when its turn under `forward.backlog_rate`
//! (batches per second, 0 = unlimited) has come, and either the live lane is
//! empty or the previous send was a live batch (never two backlog batches in
//! a row while live data waits, so a busy live lane cannot starve the
//! backlog). A live batch that ages past the window without being sent joins
//! the backlog. Batches are therefore acknowledged out of order; the queue
//! keeps the contiguous acknowledged prefix plus the acknowledged ranges
//! above it in its cursor file (`queue/FORMAT.md`).
//!
//! ```text
//! loop:
//!   live    = queue.last_unacked_below(live_start, ∞)               newest first
//!   backlog = queue.next_unacked_below(backlog_next, live_start)   if its turn has come
//!   batch   = live, unless a backlog batch may go (live empty, or the last send was live)
//!             (none: wait for an append, the backlog's next turn, or 1 s)
//!   POST <endpoint>/api/v2/write?precision=ns   zstd (or gzip) body
//!        Authorization: Token <forward.token>   X-Strata-Agent-Id   X-Strata-Agent-Seq
//!        X-Strata-Agent-Hlc (clock.rs)   X-Strata-Jurisdiction (forward.jurisdiction)
//!        the answer's X-Strata-Hlc is folded into the agent's clock
//!   2xx                 → ack_one(seq)         (cursor fsynced: never sent again after a restart);
//!                         the ack is stored while the next batch is sent, and
//!                         the next ack starts only once this one is stored
//!   400 / 413 / 422     → ack_one(seq), counted in strata_edge_server_rejected_batches_total, logged
//!   421                 → the endpoint is in another jurisdiction (nothing stored): logged, next endpoint
//!   anything else       → counted, next endpoint; after a whole round of failures,
//!                         wait backoff_initial · 2^k (≤ backoff_max), jittered to 50–100 %
//! ```
//!
//! The endpoint list is an order of preference: after moving off the first
//! endpoint, the forwarder tries it again once `forward.primary_retry` has
//! passed (and moves on again if it still fails). Connecting times out after
//! `forward.connect_timeout`, so a black-holed endpoint costs seconds, not the
//! whole request timeout.
//!
//! Why a 400 is an acknowledgement: the agent already parsed every line with
//! the server's parser, so what the server still rejects is policy (a
//! timestamp outside its window, a tenant limit, string-only lines); the
//! server stored the valid lines of the batch (a partial write) and resending
//! the batch can never succeed, it would only block the queue behind it for
//! ever. 413 and 422 are the same: the batch will not change. 401, 403, 404
//! and 429 are retried (a token or a route can be fixed, a rate limit passes).
//!
//! A batch whose answer was lost (timeout, agent killed between the answer
//! and the cursor write) is sent again with the same
//! `(X-Strata-Agent-Id, X-Strata-Agent-Seq)`; the server answers 204 and
//! applies it once (it skips a record whose origin it already applied in
//! that log partition; bounds in `hot-store/FORMAT.md`, "Edge batch origins").

use std::hash::{BuildHasher, Hasher};
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use strata_schemas::HlcTimestamp;

use crate::agent::Agent;
use crate::metrics::Metrics;
use crate::queue::Batch;

/// What became of one send.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stored: acknowledge.
    Sent,
    /// Refused for good: acknowledge, count, log.
    Rejected(String),
    /// Try again (another endpoint, later).
    Retry(String),
}

/// Classifies an HTTP status (see the module doc).
pub fn classify(status: u16, body: &str) -> Outcome {
    match status {
        200..=299 => Outcome::Sent,
        400 | 413 | 422 => Outcome::Rejected(format!("HTTP {status}: {}", cut(body))),
        _ => Outcome::Retry(format!("HTTP {status}: {}", cut(body))),
    }
}

fn cut(s: &str) -> &str {
    let mut end = s.len().min(512);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The delay before retry round `round` (1-based): `initial · 2^(round-1)`
/// capped at `max`, scaled by `jitter` in [0.5, 1].
pub fn backoff(initial: Duration, max: Duration, round: u32, jitter: f64) -> Duration {
    let exp = initial.saturating_mul(1u32 << round.saturating_sub(1).min(20));
    exp.min(max).mul_f64(jitter.clamp(0.5, 1.0))
}

/// Waits for a cursor write; `false` (logged, in `/status`) when it failed:
/// the batches after the stored cursor are then sent again (at-least-once).
async fn finish_ack(agent: &Agent, pending: Option<tokio::task::JoinHandle<crate::Result<()>>>) -> bool {
    let Some(pending) = pending else { return true };
    let failed = match pending.await {
        Ok(Ok(())) => return true,
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    tracing::error!(error = %failed, "forwarder: storing the cursor failed");
    agent.metrics.set_error(format!("cursor: {failed}"));
    false
}

/// An error with its sources (`error sending request: connection refused`).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn random_unit() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_i64(strata_schemas::time::now_nanos());
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

fn gzip(payload: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(payload).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// The lane a batch was sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Queued within `forward.live_window`.
    Live,
    /// Older.
    Backlog,
}

/// Where the backlog lane looks for its next batch (0: from the first
/// unacknowledged one), and the batch neither lane may pick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Next {
    /// The backlog lane's next sequence number.
    pub backlog: u64,
    /// The batch whose acknowledgement is being stored (0: none): neither
    /// lane picks it again.
    pub storing: u64,
}

/// What the forwarder sends next.
#[derive(Debug, PartialEq, Eq)]
pub enum Selected {
    /// This batch, in this lane.
    Batch(Batch, Lane),
    /// Nothing now: only backlog batches wait, before their turn.
    BacklogWaits,
    /// Nothing to send.
    Nothing,
}

/// The enqueue time from which a batch is live (ms since the epoch), at
/// `now_ms` on the agent's wall clock (the clock batches are queued by).
pub fn live_cutoff(now_ms: i64, window: Duration) -> i64 {
    now_ms.saturating_sub(i64::try_from(window.as_millis()).unwrap_or(i64::MAX))
}

/// Picks the next batch (see the module doc): the newest unacknowledged live
/// batch, unless the backlog's turn has come (`backlog_due`) and the live
/// lane is empty or the previous send (`last`) was live.
pub fn select(
    queue: &crate::queue::Queue,
    next: Next,
    cutoff_ms: i64,
    backlog_due: bool,
    last: Lane,
) -> crate::Result<Selected> {
    if queue.is_poisoned() {
        return Err(crate::Error::Poisoned);
    }
    let live_start = queue.live_start(cutoff_ms);
    // Sequence numbers first, so only the batch sent is read from disk.
    let find = |from: u64, below: u64| match queue.next_unacked_seq_below(from, below) {
        Some(seq) if seq == next.storing => queue.next_unacked_seq_below(seq + 1, below),
        other => other,
    };
    // The live lane goes newest first: fresh data is never behind an outage's worth of batches.
    let live = match queue.last_unacked_seq_below(live_start, u64::MAX) {
        Some(seq) if seq == next.storing => queue.last_unacked_seq_below(live_start, seq),
        other => other,
    };
    let backlog = find(next.backlog, live_start);
    let read = |seq: u64, lane: Lane| -> crate::Result<Selected> {
        Ok(queue.read(seq)?.map_or(Selected::Nothing, |b| Selected::Batch(b, lane)))
    };
    match (live, backlog) {
        (live, Some(b)) if backlog_due && (live.is_none() || last == Lane::Live) => read(b, Lane::Backlog),
        (Some(l), _) => read(l, Lane::Live),
        (None, Some(_)) => Ok(Selected::BacklogWaits),
        (None, None) => Ok(Selected::Nothing),
    }
}

/// Sends one batch (`None`: an empty write, to measure the clock) to
/// `base`: the status and body of the answer, whose `X-Strata-Hlc` has been
/// folded into the agent's clock; `Err` when no answer came.
async fn send(
    agent: &Agent,
    client: &reqwest::Client,
    base: &str,
    batch: Option<&Batch>,
) -> Result<(u16, String), String> {
    let cfg = &agent.config.forward;
    let hlc = agent.clock.tick().map_err(|e| format!("clock: {e}"))?;
    let payload = batch.map_or(&[][..], |b| &b.payload[..]);
    let (encoding, body) = match cfg.compression {
        // Compressing into memory fails only when allocation does: gzip then.
        crate::config::Compression::Zstd => match zstd::bulk::compress(payload, 3) {
            Ok(packed) => ("zstd", packed),
            Err(_) => ("gzip", gzip(payload)),
        },
        crate::config::Compression::Gzip => ("gzip", gzip(payload)),
    };
    let mut req = client
        .post(format!("{base}/api/v2/write?precision=ns"))
        .header("Content-Encoding", encoding)
        .header("Content-Type", "text/plain; charset=utf-8")
        .header("X-Strata-Agent-Hlc", hlc.to_string())
        .body(body);
    if let Some(batch) = batch {
        req = req.header("X-Strata-Agent-Id", &agent.origin_id).header("X-Strata-Agent-Seq", batch.seq.to_string());
    }
    if let Some(j) = &cfg.jurisdiction {
        req = req.header("X-Strata-Jurisdiction", j);
    }
    if let Some(token) = &cfg.token {
        req = req.header("Authorization", format!("Token {token}"));
    }
    let sent_ms = agent.clock.wall_ms();
    let resp = req.send().await.map_err(|e| format!("{base}: {}", chain(&e)))?;
    let received_ms = agent.clock.wall_ms();
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok());
    let server = header("X-Strata-Hlc").map(HlcTimestamp::parse);
    let server_ms = header("X-Strata-Time").and_then(|t| t.parse::<i64>().ok());
    if let Some(Ok(server)) = server
        && let Err(e) = agent.clock.observe_server(server, server_ms, sent_ms, received_ms)
    {
        tracing::error!(error = %e, "storing the clock failed");
        agent.metrics.set_error(format!("clock: {e}"));
    }
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    if status == 421 {
        tracing::error!(
            endpoint = base,
            jurisdiction = cfg.jurisdiction.as_deref().unwrap_or(""),
            answer = cut(&body),
            "the endpoint is in another jurisdiction: nothing was stored there; trying the next endpoint \
             (remove it from forward.endpoints)"
        );
    }
    Ok((status, body))
}

/// Measures the clock against the first endpoint that answers (an empty
/// write), so samples without a timestamp are corrected from the start.
async fn probe_clock(agent: &Agent, client: &reqwest::Client) {
    for base in &agent.config.forward.endpoints {
        if let Ok((status, body)) = send(agent, client, base.trim_end_matches('/'), None).await {
            if (200..300).contains(&status) {
                return;
            }
            tracing::debug!(endpoint = %base, status, body = cut(&body), "clock probe answered");
        }
    }
}

/// Runs the forwarder until the task is dropped.
pub async fn run(agent: Arc<Agent>) {
    let cfg = agent.config.forward.clone();
    let client = match reqwest::Client::builder()
        .timeout(cfg.request_timeout)
        .connect_timeout(cfg.connect_timeout.min(cfg.request_timeout))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "forwarder: cannot build the HTTP client");
            agent.metrics.set_error(format!("http client: {e}"));
            return;
        }
    };
    probe_clock(&agent, &client).await;
    let m = &agent.metrics;
    let mut endpoint = 0usize;
    let mut failures = 0u32;
    // When the forwarder last moved off the first endpoint.
    let mut left_primary: Option<tokio::time::Instant> = None;
    // The next batch of each lane to consider (0: the first unacknowledged
    // one); they skip the batch whose acknowledgement is still being stored.
    let mut next = Next::default();
    // The cursor write of the last acknowledged batch, still running.
    let mut pending: Option<tokio::task::JoinHandle<crate::Result<()>>> = None;
    // When the backlog may send its next batch (backlog_rate).
    let mut backlog_turn = tokio::time::Instant::now();
    let backlog_interval = (cfg.backlog_rate > 0).then(|| Duration::from_secs(1) / cfg.backlog_rate);
    let mut last_lane = Lane::Backlog;
    loop {
        if endpoint != 0 && left_primary.is_some_and(|t| t.elapsed() >= cfg.primary_retry) {
            tracing::info!(endpoint = %cfg.endpoints[0], "trying the first endpoint again");
            endpoint = 0;
            left_primary = None;
            *m.current_endpoint.lock().expect("metrics lock is never poisoned") = cfg.endpoints[0].clone();
        }
        let backlog_due = tokio::time::Instant::now() >= backlog_turn;
        let read = {
            let agent = Arc::clone(&agent);
            let cutoff = live_cutoff(agent.clock.wall_ms(), cfg.live_window);
            tokio::task::spawn_blocking(move || {
                let queue = agent.queue.lock().expect("queue lock is never poisoned");
                select(&queue, next, cutoff, backlog_due, last_lane)
            })
            .await
        };
        let (batch, lane): (Batch, Lane) = match read {
            Ok(Ok(Selected::Batch(b, lane))) => (b, lane),
            Ok(Ok(Selected::BacklogWaits)) => {
                // Only backlog batches wait, and it is not their turn yet.
                let _ = tokio::time::timeout_at(backlog_turn, agent.wake.notified()).await;
                continue;
            }
            Ok(Ok(Selected::Nothing)) => {
                if !finish_ack(&agent, pending.take()).await {
                    next = Next::default();
                    tokio::time::sleep(cfg.backoff_max).await;
                    continue;
                }
                if next != Next::default() {
                    // Look once more from the start (the acknowledgement is
                    // stored now; a clock step may have moved the lanes).
                    next = Next::default();
                    continue;
                }
                let _ = tokio::time::timeout(Duration::from_secs(1), agent.wake.notified()).await;
                continue;
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "forwarder: reading the queue failed");
                m.set_error(format!("queue: {e}"));
                tokio::time::sleep(cfg.backoff_max).await;
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "forwarder: queue task failed");
                tokio::time::sleep(cfg.backoff_max).await;
                continue;
            }
        };
        if lane == Lane::Backlog
            && let Some(interval) = backlog_interval
        {
            backlog_turn = tokio::time::Instant::now() + interval;
        }
        last_lane = lane;
        let base = cfg.endpoints[endpoint].trim_end_matches('/');
        // Raw lines of aggregated measurements stay here (aggregate.rs); nothing left: nothing to send.
        let batch = crate::aggregate::strip_batch(&agent.config.aggregate, batch);
        let outcome = if batch.payload.is_empty() {
            Outcome::Sent
        } else {
            match send(&agent, &client, base, Some(&batch)).await {
                Ok((status, body)) => classify(status, &body),
                Err(why) => Outcome::Retry(why),
            }
        };
        match outcome {
            Outcome::Sent | Outcome::Rejected(_) => {
                if let Outcome::Rejected(why) = &outcome {
                    Metrics::add(&m.server_rejected_batches, 1);
                    tracing::error!(seq = batch.seq, endpoint = base, error = %why, "server refused a batch for good; not retried");
                    m.set_error(format!("batch {} refused by {base}: {why}", batch.seq));
                } else {
                    Metrics::add(&m.sent_batches, 1);
                    Metrics::add(&m.sent_samples, crate::intake::count_samples(&batch.payload));
                }
                match lane {
                    Lane::Live => Metrics::add(&m.sent_live_batches, 1),
                    Lane::Backlog => m.backlog_sent(std::time::Instant::now()),
                }
                failures = 0;
                // Cursor writes stay in order: the previous one first.
                if !finish_ack(&agent, pending.take()).await {
                    next = Next::default();
                    tokio::time::sleep(cfg.backoff_max).await;
                    continue;
                }
                let seq = batch.seq;
                let writer = Arc::clone(&agent);
                pending = Some(tokio::task::spawn_blocking(move || {
                    // Only once the aggregator's state file covers it (aggregate.rs).
                    crate::aggregate::wait_durable(&writer, seq)?;
                    writer.queue.lock().expect("queue lock is never poisoned").ack_one(seq)
                }));
                if lane == Lane::Backlog {
                    next.backlog = seq + 1;
                }
                next.storing = seq;
            }
            Outcome::Retry(why) => {
                Metrics::add(&m.send_errors, 1);
                failures += 1;
                tracing::warn!(seq = batch.seq, endpoint = base, error = %why, "send failed; will retry");
                m.set_error(why);
                endpoint = (endpoint + 1) % cfg.endpoints.len();
                // Back on the first endpoint by rotation: nothing to return to.
                left_primary =
                    if endpoint == 0 { None } else { left_primary.or_else(|| Some(tokio::time::Instant::now())) };
                *m.current_endpoint.lock().expect("metrics lock is never poisoned") = cfg.endpoints[endpoint].clone();
                let n = cfg.endpoints.len() as u32;
                if failures.is_multiple_of(n) {
                    tokio::time::sleep(backoff(cfg.backoff_initial, cfg.backoff_max, failures / n, random_unit()))
                        .await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_answers() {
        assert_eq!(classify(204, ""), Outcome::Sent);
        assert!(matches!(classify(400, "partial write"), Outcome::Rejected(_)));
        assert!(matches!(classify(413, ""), Outcome::Rejected(_)));
        for s in [401, 403, 404, 429, 500, 503, 507] {
            assert!(matches!(classify(s, ""), Outcome::Retry(_)), "{s}");
        }
    }

    fn seq(s: crate::Result<Selected>) -> (u64, Lane) {
        match s.unwrap() {
            Selected::Batch(b, lane) => (b.seq, lane),
            other => panic!("{other:?}"),
        }
    }

    /// Backlog 1..=4 (old), live 5..=7: live goes first, newest first, one
    /// backlog batch between live ones when its turn has come, the backlog
    /// oldest first; a batch whose ack is being stored is not picked again.
    #[test]
    fn live_first_newest_first_then_backlog_between_live_sends() {
        use crate::queue::{FsyncPolicy, Queue, QueueConfig};
        let dir = tempfile::tempdir().unwrap();
        let config = QueueConfig { fsync: FsyncPolicy::Never, ..QueueConfig::default() };
        let (mut q, _) = Queue::open(dir.path(), config).unwrap();
        let (old, now) = (1_000, 100_000);
        for i in 0..4 {
            q.append(b"old v=1 1\n", old + i).unwrap();
        }
        for i in 0..3 {
            q.append(b"new v=1 1\n", now + i).unwrap();
        }
        let cutoff = now - 30_000;
        assert_eq!(q.live_start(cutoff), 5);
        let mut next = Next::default();
        // Not the backlog's turn: live, the freshest batch first.
        assert_eq!(seq(select(&q, next, cutoff, false, Lane::Backlog)), (7, Lane::Live));
        next.storing = 7;
        // The backlog's turn, but the last send was backlog: live still first.
        assert_eq!(seq(select(&q, next, cutoff, true, Lane::Backlog)), (6, Lane::Live));
        // After a live send the backlog gets one batch, oldest first.
        assert_eq!(seq(select(&q, next, cutoff, true, Lane::Live)), (1, Lane::Backlog));
        q.ack_one(7).unwrap();
        q.ack_one(1).unwrap();
        next.backlog = 2;
        next.storing = 1;
        assert_eq!(seq(select(&q, next, cutoff, true, Lane::Backlog)), (6, Lane::Live));
        // A batch queued now overtakes the older live ones.
        q.append(b"fresh v=1 1\n", now + 10).unwrap();
        assert_eq!(seq(select(&q, next, cutoff, false, Lane::Backlog)), (8, Lane::Live));
        for s in [8, 6, 5] {
            q.ack_one(s).unwrap();
        }
        // Live lane empty: the backlog waits for its turn, then goes.
        assert_eq!(select(&q, next, cutoff, false, Lane::Live).unwrap(), Selected::BacklogWaits);
        assert_eq!(seq(select(&q, next, cutoff, true, Lane::Live)), (2, Lane::Backlog));
        // The batch being stored is skipped, whichever lane finds it.
        assert_eq!(
            seq(select(&q, Next { storing: 2, ..Next::default() }, cutoff, true, Lane::Live)),
            (3, Lane::Backlog)
        );
        for s in [2, 3, 4] {
            q.ack_one(s).unwrap();
        }
        assert_eq!(select(&q, Next::default(), cutoff, true, Lane::Live).unwrap(), Selected::Nothing);
        assert_eq!(select(&q, Next::default(), cutoff, false, Lane::Live).unwrap(), Selected::Nothing);
        assert_eq!(q.stats().acked_seq, 8);
        // No live window (cutoff in the future): everything is backlog, oldest first.
        q.append(b"x v=1 1\n", now).unwrap();
        assert_eq!(q.live_start(i64::MAX), 10);
        assert_eq!(seq(select(&q, Next::default(), i64::MAX, true, Lane::Live)), (9, Lane::Backlog));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let (i, m) = (Duration::from_millis(100), Duration::from_secs(5));
        assert_eq!(backoff(i, m, 1, 1.0), Duration::from_millis(100));
        assert_eq!(backoff(i, m, 3, 1.0), Duration::from_millis(400));
        assert_eq!(backoff(i, m, 30, 1.0), m);
        assert_eq!(backoff(i, m, 30, 0.5), m / 2);
        assert_eq!(backoff(i, m, 30, 0.0), m / 2, "jitter never goes below half");
        let u = random_unit();
        assert!((0.0..1.0).contains(&u));
    }
}
