//! Write-path counters, rendered in the Prometheus text exposition format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of the write path. Cheap to bump from any thread.
#[derive(Debug, Default)]
pub struct IngestMetrics {
    /// Write requests received.
    pub requests: AtomicU64,
    /// Request body bytes received (as sent, before decompression).
    pub bytes_received: AtomicU64,
    /// Lines stored completely.
    pub lines_accepted: AtomicU64,
    /// Lines rejected (parse or validation errors).
    pub lines_rejected: AtomicU64,
    /// Samples made durable.
    pub samples_accepted: AtomicU64,
    /// String fields skipped (Strata stores numbers only).
    pub string_fields_skipped: AtomicU64,
    /// Requests refused before parsing (auth, size, encoding, precision).
    pub requests_refused: AtomicU64,
    /// Requests that failed to reach the log (503/500).
    pub append_failures: AtomicU64,
}

impl IngestMetrics {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Appends the counters in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let rows: [(&str, &str, &AtomicU64); 8] = [
            ("strata_ingest_requests_total", "Write requests received.", &self.requests),
            ("strata_ingest_received_bytes_total", "Write request body bytes received.", &self.bytes_received),
            ("strata_ingest_lines_accepted_total", "Line-protocol lines stored.", &self.lines_accepted),
            ("strata_ingest_lines_rejected_total", "Line-protocol lines rejected.", &self.lines_rejected),
            ("strata_ingest_samples_total", "Samples made durable in the ingest log.", &self.samples_accepted),
            (
                "strata_ingest_string_fields_skipped_total",
                "String fields skipped (only numbers are stored).",
                &self.string_fields_skipped,
            ),
            ("strata_ingest_requests_refused_total", "Write requests refused before parsing.", &self.requests_refused),
            ("strata_ingest_append_failures_total", "Write requests the ingest log failed.", &self.append_failures),
        ];
        for (name, help, v) in rows {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Ordering::Relaxed));
        }
    }
}
