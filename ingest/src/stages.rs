//! Where a write's time goes: one latency histogram per stage of the write
//! path, rendered as `strata_write_stage_seconds{stage=…}` on `/metrics`.
//!
//! ```text
//!  request ┬ decode      waiting for a decode slot + decompress, parse, convert (blocking thread)
//!          └ append      records handed to the log … every partition acknowledged
//!               ├ log_queue   a record in its partition's queue until a writer group takes it
//!               ├ log_write   one group's frames written (one `write`)
//!               ├ log_round   the group's wait for its sync round (gathering the partitions of the
//!               │             requests in flight, see `log::local::syncer`)
//!               ├ log_sync    the group's `fdatasync`
//!               ├ log_roll    a new segment file started (size limit or release)
//!               └ apply       one record applied to the sink (hot store memtable, lock waits included)
//! ```
//!
//! `decode`, `append` and `request` count requests; `log_queue` and `apply`
//! count records (a request has one record per partition it touches);
//! `log_write`, `log_round`, `log_sync` and `log_roll` count groups. The stages of the
//! local log are only observed with `[log] kind = "local"`.
//!
//! The histograms are process-wide ([`global`]): one node per process, and
//! the log's writer threads and the HTTP handlers record into the same
//! place without being wired to each other. Buckets double from 250 µs to
//! 8.192 s; observing is a few relaxed atomic adds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use strata_schemas::metrics_text::{MetricKind, MetricsText};

/// A stage of the write path (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Waiting for a decode slot, then decompressing, parsing and converting the body.
    Decode,
    /// From handing the records to the log until every partition acknowledged them.
    Append,
    /// A record waiting in its partition's queue for the writer thread.
    LogQueue,
    /// Writing one group's frames.
    LogWrite,
    /// The group's `fdatasync`.
    LogSync,
    /// The group's wait for its sync round.
    LogRound,
    /// Starting a new segment file.
    LogRoll,
    /// Applying one record to the sink.
    Apply,
    /// The whole write request.
    Request,
}

impl Stage {
    /// Every stage, in rendering order.
    pub const ALL: [Stage; 9] = [
        Stage::Decode,
        Stage::Append,
        Stage::LogQueue,
        Stage::LogWrite,
        Stage::LogSync,
        Stage::LogRound,
        Stage::LogRoll,
        Stage::Apply,
        Stage::Request,
    ];

    /// The `stage` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Append => "append",
            Stage::LogQueue => "log_queue",
            Stage::LogWrite => "log_write",
            Stage::LogSync => "log_sync",
            Stage::LogRound => "log_round",
            Stage::LogRoll => "log_roll",
            Stage::Apply => "apply",
            Stage::Request => "request",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Finite buckets: upper bounds `FIRST_BOUND_NS · 2^i` for `i in 0..FINITE`.
const FINITE: usize = 16;
/// The first bucket's upper bound: 250 µs.
const FIRST_BOUND_NS: u64 = 250_000;

/// The bucket (`0..=FINITE`, `FINITE` = above the last bound) of a duration.
fn bucket_of(ns: u64) -> usize {
    if ns <= FIRST_BOUND_NS {
        return 0;
    }
    // ns in (B·2^(i-1), B·2^i]  ⇔  (ns-1)/B in [2^(i-1), 2^i - 1]  ⇔  bit length i.
    let q = (ns - 1) / FIRST_BOUND_NS;
    ((u64::BITS - q.leading_zeros()) as usize).min(FINITE)
}

/// The upper bound of finite bucket `i`, in seconds.
fn bound_seconds(i: usize) -> f64 {
    (FIRST_BOUND_NS << i) as f64 / 1e9
}

/// One latency histogram: per-bucket counts (not cumulative), sum and count.
#[derive(Debug)]
struct Histogram {
    buckets: [AtomicU64; FINITE + 1],
    sum_ns: AtomicU64,
}

impl Histogram {
    const fn new() -> Self {
        Histogram { buckets: [const { AtomicU64::new(0) }; FINITE + 1], sum_ns: AtomicU64::new(0) }
    }

    fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        if let Some(b) = self.buckets.get(bucket_of(ns)) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }
}

/// The stage histograms.
#[derive(Debug)]
pub struct WriteStages {
    stages: [Histogram; Stage::ALL.len()],
}

impl Default for WriteStages {
    fn default() -> Self {
        Self::new()
    }
}

static GLOBAL: WriteStages = WriteStages::new();

/// The process's stage histograms.
pub fn global() -> &'static WriteStages {
    &GLOBAL
}

impl WriteStages {
    /// Empty histograms.
    pub const fn new() -> Self {
        WriteStages { stages: [const { Histogram::new() }; Stage::ALL.len()] }
    }

    /// Records that `stage` took `d`.
    pub fn observe(&self, stage: Stage, d: Duration) {
        if let Some(h) = self.stages.get(stage.index()) {
            h.observe(d);
        }
    }

    /// Observations of `stage` so far.
    pub fn count(&self, stage: Stage) -> u64 {
        self.stages.get(stage.index()).map_or(0, |h| h.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum())
    }

    /// Appends `strata_write_stage_seconds` in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        const NAME: &str = "strata_write_stage_seconds";
        let mut m = MetricsText::new(out);
        m.family(
            NAME,
            MetricKind::Histogram,
            "Time spent per stage of the write path: decode, append (log_queue, log_write, log_sync, log_round, \
             log_roll, apply on the embedded log) and the whole request.",
        );
        for stage in Stage::ALL {
            let Some(h) = self.stages.get(stage.index()) else { continue };
            let counts: Vec<u64> = h.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
            let bucket = format!("{NAME}_bucket");
            let mut cumulative = 0u64;
            for (i, n) in counts.iter().enumerate() {
                cumulative += n;
                let le = if i < FINITE { bound_seconds(i).to_string() } else { "+Inf".to_owned() };
                m.sample(&bucket, &[("stage", stage.as_str()), ("le", &le)], cumulative);
            }
            let sum = h.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
            m.sample(&format!("{NAME}_sum"), &[("stage", stage.as_str())], sum);
            m.sample(&format!("{NAME}_count"), &[("stage", stage.as_str())], cumulative);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_double_from_a_quarter_millisecond() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(250_000), 0);
        assert_eq!(bucket_of(250_001), 1);
        assert_eq!(bucket_of(500_000), 1);
        assert_eq!(bucket_of(500_001), 2);
        assert_eq!(bucket_of(1_000_000), 2);
        assert_eq!(bucket_of(31_000_000), 7); // ≤ 32 ms
        assert_eq!(bucket_of(8_192_000_000), 15);
        assert_eq!(bucket_of(8_192_000_001), FINITE);
        assert_eq!(bucket_of(u64::MAX), FINITE);
        assert_eq!(bound_seconds(0), 0.00025);
        assert_eq!(bound_seconds(7), 0.032);
        assert_eq!(bound_seconds(15), 8.192);
    }

    #[test]
    fn renders_cumulative_buckets_sum_and_count_per_stage() {
        let s = WriteStages::new();
        s.observe(Stage::LogSync, Duration::from_micros(100));
        s.observe(Stage::LogSync, Duration::from_millis(3));
        s.observe(Stage::LogSync, Duration::from_secs(20));
        assert_eq!(s.count(Stage::LogSync), 3);
        assert_eq!(s.count(Stage::Apply), 0);
        let mut out = String::new();
        s.render(&mut out);
        assert!(out.starts_with("# HELP strata_write_stage_seconds "), "{out}");
        assert!(out.contains("# TYPE strata_write_stage_seconds histogram\n"), "{out}");
        for line in [
            "strata_write_stage_seconds_bucket{stage=\"log_sync\",le=\"0.00025\"} 1\n",
            "strata_write_stage_seconds_bucket{stage=\"log_sync\",le=\"0.002\"} 1\n",
            "strata_write_stage_seconds_bucket{stage=\"log_sync\",le=\"0.004\"} 2\n",
            "strata_write_stage_seconds_bucket{stage=\"log_sync\",le=\"8.192\"} 2\n",
            "strata_write_stage_seconds_bucket{stage=\"log_sync\",le=\"+Inf\"} 3\n",
            "strata_write_stage_seconds_sum{stage=\"log_sync\"} 20.0031\n",
            "strata_write_stage_seconds_count{stage=\"log_sync\"} 3\n",
            "strata_write_stage_seconds_count{stage=\"apply\"} 0\n",
        ] {
            assert!(out.contains(line), "missing {line:?} in\n{out}");
        }
    }
}
