//! Write-path counters, rendered in the Prometheus text exposition format.

use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use strata_schemas::TenantId;
use strata_schemas::metrics_text::{MetricKind, MetricsText};

/// One tenant's write-path counters.
#[derive(Debug, Default)]
pub struct TenantIngest {
    /// Samples made durable.
    pub samples_accepted: AtomicU64,
    /// Write requests that carried data for the tenant.
    pub requests: AtomicU64,
    /// Samples (or, for whole-line rejections, lines) rejected, by reason.
    pub rejected: Mutex<BTreeMap<&'static str, u64>>,
}

impl TenantIngest {
    /// Counts `n` rejections for `reason` (a limit name, `parse`, `rate_limited`, ...).
    pub fn reject(&self, reason: &'static str, n: u64) {
        if n > 0 {
            *self.rejected.lock().entry(reason).or_default() += n;
        }
    }
}

/// Health of the local ingest log: damage quarantined on open, writes
/// refused for a full disk. Owned by the log, rendered with [`IngestMetrics`].
#[derive(Debug, Default)]
pub struct LogHealth {
    /// Segments in which damage (not a torn tail) was found and quarantined.
    pub quarantined_segments: AtomicU64,
    /// Damaged bytes moved aside (a copy of each damaged segment is in `quarantine/`).
    pub quarantined_bytes: AtomicU64,
    /// Records lost to damage: offsets of damaged records the hot store had
    /// not flushed yet (for damage running to the end of the newest segment
    /// that is not exactly one frame, an upper bound: one per 16 bytes).
    pub lost_offsets: AtomicU64,
    /// Records refused (rolled back, not acknowledged) because the disk was full.
    pub disk_full_refusals: AtomicU64,
}

impl LogHealth {
    /// Appends the counters in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let rows: [(&str, &str, &AtomicU64); 4] = [
            (
                "strata_ingest_log_quarantined_segments_total",
                "Ingest log segments found damaged (not a torn tail) on open; a copy is in log/quarantine/.",
                &self.quarantined_segments,
            ),
            (
                "strata_ingest_log_quarantined_bytes_total",
                "Damaged ingest log bytes quarantined on open.",
                &self.quarantined_bytes,
            ),
            (
                "strata_ingest_log_lost_offsets_total",
                "Ingest log records lost to damage, not yet in hot-store segments (an upper bound when damage ends a segment).",
                &self.lost_offsets,
            ),
            (
                "strata_ingest_log_disk_full_refusals_total",
                "Ingest log records refused and rolled back because the disk was full.",
                &self.disk_full_refusals,
            ),
        ];
        let mut m = MetricsText::new(out);
        for (name, help, v) in rows {
            m.counter(name, help, v.load(Ordering::Relaxed));
        }
    }
}

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
    /// Edge agent clocks left out of the node's HLC: more than
    /// [`crate::edge_origin::MAX_AGENT_AHEAD_MS`] ahead of this node's clock.
    pub edge_clock_ahead: AtomicU64,
    /// Per-tenant counters.
    pub tenants: RwLock<HashMap<TenantId, Arc<TenantIngest>>>,
    /// The local ingest log's health counters, once the server plugged them in.
    pub log_health: OnceLock<Arc<LogHealth>>,
}

impl IngestMetrics {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The counters of `tenant` (created on first use).
    pub fn tenant(&self, tenant: &TenantId) -> Arc<TenantIngest> {
        if let Some(t) = self.tenants.read().get(tenant) {
            return Arc::clone(t);
        }
        Arc::clone(self.tenants.write().entry(tenant.clone()).or_default())
    }

    /// Appends the counters in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        self.render_totals(out);
        if let Some(h) = self.log_health.get() {
            h.render(out);
        }
        crate::stages::global().render(out);
        self.render_tenants(out);
    }

    fn render_tenants(&self, out: &mut String) {
        let tenants: Vec<(TenantId, Arc<TenantIngest>)> =
            self.tenants.read().iter().map(|(k, v)| (k.clone(), Arc::clone(v))).collect();
        let mut m = MetricsText::new(out);
        let name = "strata_tenant_samples_accepted_total";
        m.family(name, MetricKind::Counter, "Samples stored, per tenant.");
        for (t, c) in &tenants {
            m.sample(name, &[("tenant", t.as_str())], c.samples_accepted.load(Ordering::Relaxed));
        }
        let name = "strata_tenant_rejected_total";
        m.family(name, MetricKind::Counter, "Samples or lines rejected, per tenant and reason.");
        for (t, c) in &tenants {
            for (reason, n) in c.rejected.lock().iter() {
                m.sample(name, &[("tenant", t.as_str()), ("reason", reason)], *n);
            }
        }
    }

    fn render_totals(&self, out: &mut String) {
        let rows: [(&str, &str, &AtomicU64); 9] = [
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
            (
                "strata_ingest_edge_clock_ahead_total",
                "Edge agent writes whose clock (X-Strata-Agent-Hlc) was too far ahead of this node's to fold in.",
                &self.edge_clock_ahead,
            ),
        ];
        let mut m = MetricsText::new(out);
        for (name, help, v) in rows {
            m.counter(name, help, v.load(Ordering::Relaxed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_keeps_its_text() {
        let m = IngestMetrics::default();
        IngestMetrics::add(&m.requests, 3);
        let acme = TenantId::new("acme").expect("valid tenant id");
        let t = m.tenant(&acme);
        IngestMetrics::add(&t.samples_accepted, 5);
        t.reject("parse", 2);
        let mut out = String::new();
        m.render(&mut out);
        assert!(
            out.starts_with(
                "# HELP strata_ingest_requests_total Write requests received.\n\
                 # TYPE strata_ingest_requests_total counter\nstrata_ingest_requests_total 3\n"
            ),
            "{out}"
        );
        assert!(
            out.ends_with(
                "# HELP strata_tenant_samples_accepted_total Samples stored, per tenant.\n\
                 # TYPE strata_tenant_samples_accepted_total counter\n\
                 strata_tenant_samples_accepted_total{tenant=\"acme\"} 5\n\
                 # HELP strata_tenant_rejected_total Samples or lines rejected, per tenant and reason.\n\
                 # TYPE strata_tenant_rejected_total counter\n\
                 strata_tenant_rejected_total{tenant=\"acme\",reason=\"parse\"} 2\n"
            ),
            "{out}"
        );
    }
}
