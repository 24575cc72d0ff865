//! The forwarder: sends the queue, oldest batch first, to the configured
//! Strata servers, and moves the durable cursor only on an acknowledgement.
//!
//! ```text
//! loop:
//!   batch = queue.next_unacked(next)       (none: wait for an append, or 1 s)
//!   POST <endpoint>/api/v2/write?precision=ns   gzip body
//!        Authorization: Token <forward.token>   X-Strata-Agent-Id   X-Strata-Agent-Seq
//!   2xx                 → ack(seq)             (cursor fsynced: never sent again after a restart);
//!                         the ack is stored while the next batch is sent, and
//!                         ack(seq + 1) starts only once ack(seq) is stored
//!   400 / 413 / 422     → ack(seq), counted in strata_edge_server_rejected_batches_total, logged
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
//! Delivery is at-least-once: the server does not deduplicate on
//! `(X-Strata-Agent-Id, X-Strata-Agent-Seq)` yet, so a batch whose answer
//! was lost (timeout, agent killed between the answer and the cursor write)
//! is stored twice.

use std::hash::{BuildHasher, Hasher};
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

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
    let m = &agent.metrics;
    let mut endpoint = 0usize;
    let mut failures = 0u32;
    // When the forwarder last moved off the first endpoint.
    let mut left_primary: Option<tokio::time::Instant> = None;
    // The next batch to send (0: the first unacknowledged one).
    let mut next = 0u64;
    // The cursor write of the last acknowledged batch, still running.
    let mut pending: Option<tokio::task::JoinHandle<crate::Result<()>>> = None;
    loop {
        if endpoint != 0 && left_primary.is_some_and(|t| t.elapsed() >= cfg.primary_retry) {
            tracing::info!(endpoint = %cfg.endpoints[0], "trying the first endpoint again");
            endpoint = 0;
            left_primary = None;
            *m.current_endpoint.lock().expect("metrics lock is never poisoned") = cfg.endpoints[0].clone();
        }
        let read = {
            let agent = Arc::clone(&agent);
            tokio::task::spawn_blocking(move || {
                agent.queue.lock().expect("queue lock is never poisoned").next_unacked(next)
            })
            .await
        };
        let batch: Batch = match read {
            Ok(Ok(Some(b))) => b,
            Ok(Ok(None)) => {
                if !finish_ack(&agent, pending.take()).await {
                    next = 0;
                    tokio::time::sleep(cfg.backoff_max).await;
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
        let base = cfg.endpoints[endpoint].trim_end_matches('/');
        let mut req = client
            .post(format!("{base}/api/v2/write?precision=ns"))
            .header("Content-Encoding", "gzip")
            .header("Content-Type", "text/plain; charset=utf-8")
            .header("X-Strata-Agent-Id", &agent.config.agent_id)
            .header("X-Strata-Agent-Seq", batch.seq.to_string())
            .body(gzip(&batch.payload));
        if let Some(token) = &cfg.token {
            req = req.header("Authorization", format!("Token {token}"));
        }
        let outcome = match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let body = resp.text().await.unwrap_or_default();
                classify(status, &body)
            }
            Err(e) => Outcome::Retry(format!("{base}: {}", chain(&e))),
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
                failures = 0;
                // Cursor writes stay in order: the previous one first.
                if !finish_ack(&agent, pending.take()).await {
                    next = 0;
                    tokio::time::sleep(cfg.backoff_max).await;
                    continue;
                }
                let seq = batch.seq;
                let writer = Arc::clone(&agent);
                pending = Some(tokio::task::spawn_blocking(move || {
                    writer.queue.lock().expect("queue lock is never poisoned").ack(seq)
                }));
                next = seq + 1;
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
