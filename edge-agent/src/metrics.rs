//! Counters of the agent, rendered as Prometheus text (`/metrics`) and
//! JSON (`/status`).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use strata_schemas::metrics_text::{MetricKind, MetricsText};

use crate::queue::QueueStats;

/// The agent's counters; the queue's gauges come from [`QueueStats`].
#[derive(Debug, Default)]
pub struct Metrics {
    /// Write requests received.
    pub intake_requests: AtomicU64,
    /// Lines accepted into the queue.
    pub intake_lines_accepted: AtomicU64,
    /// Lines rejected at intake (per-line errors).
    pub intake_lines_rejected: AtomicU64,
    /// Requests refused because the queue is full (503).
    pub intake_refused: AtomicU64,
    /// Batches the server acknowledged (2xx).
    pub sent_batches: AtomicU64,
    /// Samples (numeric fields) in those batches.
    pub sent_samples: AtomicU64,
    /// Failed sends (network errors, 5xx, 401/403/404/429): retried.
    pub send_errors: AtomicU64,
    /// Batches the server refused in a way retrying cannot fix (400, 413,
    /// 422): acknowledged and counted here, never retried.
    pub server_rejected_batches: AtomicU64,
    /// The last send or queue error, if any.
    pub last_error: Mutex<Option<String>>,
    /// The endpoint the forwarder sends to.
    pub current_endpoint: Mutex<String>,
    /// Batches sent in the live lane and acknowledged (2xx or refused for good).
    pub sent_live_batches: AtomicU64,
    /// Batches sent in the backlog lane and acknowledged (2xx or refused for good).
    pub sent_backlog_batches: AtomicU64,
    /// When the backlog batches of the last [`DRAIN_WINDOW`] were acknowledged.
    backlog_sends: Mutex<VecDeque<Instant>>,
    /// The MQTT intake's counters.
    pub mqtt: crate::mqtt::MqttMetrics,
}

/// The window over which the backlog drain rate is measured.
pub const DRAIN_WINDOW: Duration = Duration::from_secs(5);

/// The forwarder's two lanes in `/status` (see `forward.rs`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct LanesStatus {
    /// `forward.live_window`, in seconds.
    pub live_window_seconds: f64,
    /// `forward.backlog_rate` (batches per second, 0: unlimited).
    pub backlog_rate: u32,
    /// Unacknowledged batches queued within the live window.
    pub live_batches: u64,
    /// Unacknowledged batches queued before it.
    pub backlog_batches: u64,
    /// Age of the oldest unacknowledged live batch, in seconds (0: none).
    pub live_oldest_unsent_age_seconds: f64,
    /// Age of the oldest unacknowledged backlog batch, in seconds (0: none).
    pub backlog_oldest_unsent_age_seconds: f64,
    /// See [`Metrics::sent_live_batches`].
    pub sent_live_batches: u64,
    /// See [`Metrics::sent_backlog_batches`].
    pub sent_backlog_batches: u64,
    /// Backlog batches acknowledged per second over the last 5 s.
    pub backlog_drain_rate: f64,
}

/// The JSON of `/status`.
#[derive(Debug, Serialize)]
pub struct Status {
    /// The agent's id.
    pub agent_id: String,
    /// Queue gauges.
    pub queue: QueueStats,
    /// The queue bound in bytes.
    pub queue_max_bytes: u64,
    /// Age of the oldest unsent batch, in seconds (0 when none).
    pub oldest_unsent_age_seconds: f64,
    /// See [`Metrics::sent_batches`].
    pub sent_batches: u64,
    /// See [`Metrics::sent_samples`].
    pub sent_samples: u64,
    /// See [`Metrics::send_errors`].
    pub send_errors: u64,
    /// See [`Metrics::server_rejected_batches`].
    pub server_rejected_batches: u64,
    /// See [`Metrics::intake_refused`].
    pub intake_refused: u64,
    /// See [`Metrics::intake_lines_accepted`].
    pub intake_lines_accepted: u64,
    /// See [`Metrics::intake_lines_rejected`].
    pub intake_lines_rejected: u64,
    /// See [`Metrics::last_error`].
    pub last_error: Option<String>,
    /// See [`Metrics::current_endpoint`].
    pub current_endpoint: String,
    /// The live and backlog lanes.
    pub lanes: LanesStatus,
    /// Pre-aggregation (absent without `[[aggregate]]` rules; `aggregate.rs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<crate::aggregate::AggregateStatus>,
    /// The MQTT intake (absent when `mqtt.host` is not set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<crate::mqtt::MqttStatus>,
    /// The agent's clocks: HLC, skew against the server, steps back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock: Option<crate::clock::ClockStatus>,
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl Metrics {
    /// Adds `n` to a counter.
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Records the last error.
    pub fn set_error(&self, e: impl Into<String>) {
        *self.last_error.lock().expect("metrics lock is never poisoned") = Some(e.into());
    }

    /// A snapshot for `/status`.
    pub fn status(&self, agent_id: &str, queue: QueueStats, max_bytes: u64, now_ms: i64) -> Status {
        let age = queue.oldest_unacked_ms.map_or(0.0, |t| (now_ms - t).max(0) as f64 / 1000.0);
        Status {
            agent_id: agent_id.to_owned(),
            queue,
            queue_max_bytes: max_bytes,
            oldest_unsent_age_seconds: age,
            sent_batches: get(&self.sent_batches),
            sent_samples: get(&self.sent_samples),
            send_errors: get(&self.send_errors),
            server_rejected_batches: get(&self.server_rejected_batches),
            intake_refused: get(&self.intake_refused),
            intake_lines_accepted: get(&self.intake_lines_accepted),
            intake_lines_rejected: get(&self.intake_lines_rejected),
            last_error: self.last_error.lock().expect("metrics lock is never poisoned").clone(),
            current_endpoint: self.current_endpoint.lock().expect("metrics lock is never poisoned").clone(),
            lanes: LanesStatus::default(),
            aggregate: None,
            mqtt: None,
            clock: None,
        }
    }

    /// Counts a backlog batch acknowledged at `now`.
    pub fn backlog_sent(&self, now: Instant) {
        Self::add(&self.sent_backlog_batches, 1);
        let mut sends = self.backlog_sends.lock().expect("metrics lock is never poisoned");
        sends.push_back(now);
        while sends.front().is_some_and(|&t| now.duration_since(t) > DRAIN_WINDOW) {
            sends.pop_front();
        }
    }

    /// The lanes' part of `/status`: counters, and the queue's lane gauges
    /// at `now_ms`.
    pub fn lanes(&self, q: crate::queue::LaneStats, window: Duration, rate: u32, now_ms: i64) -> LanesStatus {
        let age = |t: Option<i64>| t.map_or(0.0, |t| (now_ms - t).max(0) as f64 / 1000.0);
        let now = Instant::now();
        let recent = {
            let sends = self.backlog_sends.lock().expect("metrics lock is never poisoned");
            sends.iter().filter(|&&t| now.duration_since(t) <= DRAIN_WINDOW).count()
        };
        LanesStatus {
            live_window_seconds: window.as_secs_f64(),
            backlog_rate: rate,
            live_batches: q.live_batches,
            backlog_batches: q.backlog_batches,
            live_oldest_unsent_age_seconds: age(q.live_oldest_ms),
            backlog_oldest_unsent_age_seconds: age(q.backlog_oldest_ms),
            sent_live_batches: get(&self.sent_live_batches),
            sent_backlog_batches: get(&self.sent_backlog_batches),
            backlog_drain_rate: recent as f64 / DRAIN_WINDOW.as_secs_f64(),
        }
    }
}

impl Status {
    /// Prometheus text exposition.
    pub fn prometheus(&self) -> String {
        use MetricKind::{Counter, Gauge};
        let mut out = String::new();
        let mut m = MetricsText::new(&mut out);
        let mut metric = |name: &str, kind: MetricKind, help: &str, value: f64| {
            m.family(name, kind, help).sample(name, &[], value);
        };
        let q = &self.queue;
        metric(
            "strata_edge_queue_batches",
            Gauge,
            "Batches queued and not yet acknowledged by the server.",
            q.unacked_batches as f64,
        );
        metric("strata_edge_queue_bytes", Gauge, "Bytes of the batches not yet acknowledged.", q.unacked_bytes as f64);
        metric("strata_edge_queue_disk_bytes", Gauge, "Bytes of queue segment files on disk.", q.disk_bytes as f64);
        metric("strata_edge_queue_max_bytes", Gauge, "The queue bound (queue.max_bytes).", self.queue_max_bytes as f64);
        metric(
            "strata_edge_queue_acked_seq",
            Gauge,
            "Sequence number of the last acknowledged batch.",
            q.acked_seq as f64,
        );
        metric(
            "strata_edge_oldest_unsent_age_seconds",
            Gauge,
            "Age of the oldest batch not yet acknowledged (0: none).",
            self.oldest_unsent_age_seconds,
        );
        metric("strata_edge_sent_batches_total", Counter, "Batches the server acknowledged.", self.sent_batches as f64);
        metric(
            "strata_edge_sent_samples_total",
            Counter,
            "Samples (numeric fields) in acknowledged batches.",
            self.sent_samples as f64,
        );
        metric("strata_edge_send_errors_total", Counter, "Failed sends, retried.", self.send_errors as f64);
        if let Some(c) = &self.clock {
            if let Some(skew) = c.skew_ms {
                metric(
                    "strata_edge_clock_skew_seconds",
                    Gauge,
                    "The server's clock minus the gateway's, measured on the last answer.",
                    skew as f64 / 1000.0,
                );
            }
            metric(
                "strata_edge_clock_skewed",
                Gauge,
                "1 when the gateway's clock is further than clock.max_skew off the server's.",
                f64::from(u8::from(c.skewed)),
            );
            metric(
                "strata_edge_clock_steps_back_total",
                Counter,
                "Times the gateway's wall clock stepped back by more than a second.",
                c.steps_back as f64,
            );
        }
        let l = &self.lanes;
        metric(
            "strata_edge_live_batches",
            Gauge,
            "Unacknowledged batches queued within forward.live_window (the live lane, sent first).",
            l.live_batches as f64,
        );
        metric(
            "strata_edge_backlog_batches",
            Gauge,
            "Unacknowledged batches queued before forward.live_window (the backlog lane).",
            l.backlog_batches as f64,
        );
        metric(
            "strata_edge_live_oldest_unsent_age_seconds",
            Gauge,
            "Age of the oldest unacknowledged live batch (0: none).",
            l.live_oldest_unsent_age_seconds,
        );
        metric(
            "strata_edge_backlog_oldest_unsent_age_seconds",
            Gauge,
            "Age of the oldest unacknowledged backlog batch (0: none).",
            l.backlog_oldest_unsent_age_seconds,
        );
        metric(
            "strata_edge_sent_live_batches_total",
            Counter,
            "Batches acknowledged that were sent in the live lane.",
            l.sent_live_batches as f64,
        );
        metric(
            "strata_edge_sent_backlog_batches_total",
            Counter,
            "Batches acknowledged that were sent in the backlog lane.",
            l.sent_backlog_batches as f64,
        );
        metric(
            "strata_edge_backlog_drain_rate",
            Gauge,
            "Backlog batches acknowledged per second over the last 5 s.",
            l.backlog_drain_rate,
        );
        metric(
            "strata_edge_server_rejected_batches_total",
            Counter,
            "Batches the server refused for good (400/413/422): not retried.",
            self.server_rejected_batches as f64,
        );
        metric(
            "strata_edge_dropped_batches_total",
            Counter,
            "Batches deleted unsent by overflow = drop_oldest.",
            q.dropped_batches as f64,
        );
        metric(
            "strata_edge_intake_refused_total",
            Counter,
            "Write requests refused with 503 because the queue was full.",
            self.intake_refused as f64,
        );
        metric(
            "strata_edge_intake_lines_accepted_total",
            Counter,
            "Lines accepted into the queue.",
            self.intake_lines_accepted as f64,
        );
        metric(
            "strata_edge_intake_lines_rejected_total",
            Counter,
            "Lines rejected at intake.",
            self.intake_lines_rejected as f64,
        );
        if let Some(mq) = &self.mqtt {
            metric(
                "strata_edge_mqtt_connected",
                Gauge,
                "1 while connected to the MQTT broker.",
                f64::from(u8::from(mq.connected)),
            );
            metric(
                "strata_edge_mqtt_reconnects_total",
                Counter,
                "MQTT connections made after the first one.",
                mq.reconnects as f64,
            );
            metric(
                "strata_edge_mqtt_connection_errors_total",
                Counter,
                "Failed MQTT connection attempts and lost connections.",
                mq.connection_errors as f64,
            );
            metric(
                "strata_edge_mqtt_messages_received_total",
                Counter,
                "MQTT messages received (a message delivered again counts again).",
                mq.messages_received as f64,
            );
            metric(
                "strata_edge_mqtt_messages_queued_total",
                Counter,
                "MQTT messages queued (then acknowledged).",
                mq.messages_queued as f64,
            );
            metric(
                "strata_edge_mqtt_lines_queued_total",
                Counter,
                "Lines queued from MQTT messages.",
                mq.lines_queued as f64,
            );
            metric(
                "strata_edge_mqtt_rejected_lines_total",
                Counter,
                "Bad lines in MQTT line-protocol messages whose other lines were queued.",
                mq.rejected_lines as f64,
            );
            metric(
                "strata_edge_mqtt_queue_full_total",
                Counter,
                "Appends of MQTT messages refused by a full queue (held unacknowledged, retried).",
                mq.queue_full as f64,
            );
            let name = "strata_edge_mqtt_rejected_messages_total";
            m.family(name, Counter, "MQTT messages rejected (acknowledged, never queued), by reason.");
            for (reason, n) in &mq.messages_rejected {
                m.sample(name, &[("reason", reason)], *n);
            }
        }
        if let Some(a) = &self.aggregate {
            a.prometheus(&mut out);
        }
        out
    }
}
