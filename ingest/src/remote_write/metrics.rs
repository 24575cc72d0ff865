//! Counters of the remote-write endpoint, rendered in the Prometheus text
//! exposition format (the shared write-path counters of
//! [`crate::metrics::IngestMetrics`] count requests, bytes and samples of
//! every protocol; these add what only remote write has).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use strata_schemas::metrics_text::MetricsText;

/// Remote-write counters. Cheap to bump from any thread.
#[derive(Debug, Default)]
pub struct RemoteWriteMetrics {
    /// Requests received.
    pub requests: AtomicU64,
    /// Requests refused before conversion (auth, size, encoding, undecodable body).
    pub requests_refused: AtomicU64,
    /// Series stored (a series repeated in one request counts each time).
    pub series_accepted: AtomicU64,
    /// Float samples made durable.
    pub samples_accepted: AtomicU64,
    /// Series rejected by validation.
    pub series_rejected: AtomicU64,
    /// Native histogram samples received and not stored.
    pub histograms_ignored: AtomicU64,
    /// Exemplars received and not stored.
    pub exemplars_ignored: AtomicU64,
}

impl RemoteWriteMetrics {
    /// The process-wide instance used by [`super::router`].
    pub fn shared() -> Arc<RemoteWriteMetrics> {
        static SHARED: OnceLock<Arc<RemoteWriteMetrics>> = OnceLock::new();
        Arc::clone(SHARED.get_or_init(Arc::default))
    }

    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Appends the counters in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let rows: [(&str, &str, &AtomicU64); 7] = [
            ("strata_remote_write_requests_total", "Remote-write requests received.", &self.requests),
            (
                "strata_remote_write_requests_refused_total",
                "Remote-write requests refused before conversion (auth, size, encoding, undecodable body).",
                &self.requests_refused,
            ),
            ("strata_remote_write_series_accepted_total", "Remote-write series stored.", &self.series_accepted),
            ("strata_remote_write_samples_total", "Remote-write float samples made durable.", &self.samples_accepted),
            (
                "strata_remote_write_series_rejected_total",
                "Remote-write series rejected by validation.",
                &self.series_rejected,
            ),
            (
                "strata_remote_write_histograms_ignored_total",
                "Native histogram samples received by remote write and not stored (unsupported).",
                &self.histograms_ignored,
            ),
            (
                "strata_remote_write_exemplars_ignored_total",
                "Exemplars received by remote write and not stored (unsupported).",
                &self.exemplars_ignored,
            ),
        ];
        let mut m = MetricsText::new(out);
        for (name, help, v) in rows {
            m.counter(name, help, v.load(Ordering::Relaxed));
        }
    }
}
