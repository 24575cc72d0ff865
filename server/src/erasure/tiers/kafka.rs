//! The Kafka ingest log in a purge: which records may go, deleting them, and
//! the verification's scan of the topic (see "Kafka records" in the parent
//! module for why the bound is what it is).
//!
//! ```text
//! log step, per partition p this node holds (assigned, an offset committed):
//!   flush the hot store (commits the flushed offsets to the group)
//!   scan p from its low watermark L to its high watermark H:
//!     first_not_cold = first record holding a sample at or after its tenant's cold
//!                      watermark (or undecodable, or a tenant without one); H if none
//!   X_p = min(committed offset of p, first_not_cold)
//!   X_p > L  →  DeleteRecords(p, X_p): every record below X_p goes, of every tenant
//!   covered samples in records at or above X_p wait: for their buckets to roll
//!   (X_p = first_not_cold) or for a flush (X_p = the committed offset)
//! verify: the same scan of every held partition, counting covered samples
//!   (`Verification::kafka_samples`): while any are left the request stays open
//!   and the log step runs again at the next check, until the request's bound passes
//! ```
//!
//! The cold watermark used is the tenant's (the hot store's, the lowest over
//! every partition), not a partition's roll state: below it every partition
//! is in the cold tier, so a query never needs the dropped records from the
//! hot store of a node that rebuilt a partition from the topic.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use strata_ingest::log::{KafkaLog, KafkaRecords};
use strata_schemas::{TenantId, WriteBatch};

use super::super::worker::Request;

/// Every broker call of the purge waits at most this long.
const TIMEOUT: Duration = Duration::from_secs(30);

/// One partition's records as a scan found them.
#[derive(Debug, Default, Clone, Serialize)]
pub(super) struct PartitionScan {
    /// The partition.
    pub(super) partition: u32,
    /// Its low watermark (first offset still in the topic) at the scan.
    pub(super) low: i64,
    /// Its high watermark (the next offset) at the scan.
    pub(super) high: i64,
    /// Records read.
    pub(super) records: u64,
    /// The first record whose samples are not all in the cold tier; `high` when every record's are.
    pub(super) first_not_cold: i64,
    /// Covered samples, per record holding any (offset → samples).
    #[serde(skip)]
    pub(super) covered: BTreeMap<i64, u64>,
}

impl PartitionScan {
    /// Covered samples in records at or above `offset`.
    pub(super) fn covered_from(&self, offset: i64) -> u64 {
        self.covered.range(offset..).map(|(_, n)| n).sum()
    }

    /// Covered samples in records below `offset`.
    pub(super) fn covered_below(&self, offset: i64) -> u64 {
        self.covered.range(..offset).map(|(_, n)| n).sum()
    }
}

/// The partitions this node holds, with the offset it committed for each
/// (`None`: nothing committed by this process yet).
pub(super) fn held(kafka: &KafkaLog) -> (Vec<(u32, Option<i64>)>, Vec<u32>) {
    let mut held = Vec::new();
    let mut other = Vec::new();
    for p in kafka.status().partitions {
        if p.assigned { held.push((p.partition, p.committed_offset)) } else { other.push(p.partition) }
    }
    (held, other)
}

/// Scans `partitions` of the topic (blocking: call from a blocking thread).
pub(super) fn scan(
    records: &KafkaRecords,
    partitions: &[u32],
    req: &Request,
    cold_watermark: &(dyn Fn(&TenantId) -> Option<i64> + Send + Sync),
) -> anyhow::Result<Vec<PartitionScan>> {
    let marks = records.watermarks(TIMEOUT)?;
    let mut out = Vec::with_capacity(partitions.len());
    for &p in partitions {
        let Some(&(low, high)) = marks.get(p as usize) else { continue };
        let mut s = PartitionScan { partition: p, low, high, first_not_cold: high, ..Default::default() };
        let mut first_not_cold: Option<i64> = None;
        let mut covered = BTreeMap::new();
        let mut n = 0u64;
        records.scan(p, low, high, TIMEOUT, &mut |offset, value| {
            n += 1;
            let (found, cold) = classify(value, req, cold_watermark);
            if !cold && first_not_cold.is_none() {
                first_not_cold = Some(offset);
            }
            if found > 0 {
                covered.insert(offset, found);
            }
            true
        })?;
        s.records = n;
        s.covered = covered;
        if let Some(f) = first_not_cold {
            s.first_not_cold = f;
        }
        out.push(s);
    }
    Ok(out)
}

/// One record's covered samples, and whether every sample in it is in the
/// cold tier (below its tenant's cold watermark). An undecodable record
/// cannot be checked: one covered sample, never cold.
fn classify(
    value: &[u8],
    req: &Request,
    cold_watermark: &(dyn Fn(&TenantId) -> Option<i64> + Send + Sync),
) -> (u64, bool) {
    let Ok(b) = WriteBatch::decode(value) else { return (1, false) };
    let found: usize =
        b.series.iter().map(|s| s.samples.iter().filter(|x| req.covers(&b.tenant, &s.labels, x.ts)).count()).sum();
    let cold = cold_watermark(&b.tenant).is_some_and(|w| b.series.iter().all(|s| s.samples.iter().all(|x| x.ts < w)));
    (found as u64, cold)
}

/// The log step on a Kafka node: deletes every held partition's prefix up
/// to its safe bound; the step's counters and report.
pub(super) async fn purge(
    kafka: &Arc<KafkaLog>,
    records: &KafkaRecords,
    req: &Request,
    hot: &Arc<strata_hot_store::HotStore>,
) -> anyhow::Result<(u64, serde_json::Value)> {
    let (held, other) = held(kafka);
    let ps: Vec<u32> = held.iter().filter(|(_, c)| c.is_some()).map(|(p, _)| *p).collect();
    let scans = {
        let (records, req, hot) = (records.clone(), req.clone(), Arc::clone(hot));
        tokio::task::spawn_blocking(move || scan(&records, &ps, &req, &move |t| hot.cold_watermark(t))).await??
    };
    let committed: BTreeMap<u32, i64> = held.iter().filter_map(|(p, c)| c.map(|c| (*p, c))).collect();
    let mut bounds = BTreeMap::new();
    for s in &scans {
        let bound = committed[&s.partition].min(s.first_not_cold);
        if bound > s.low {
            bounds.insert(s.partition, bound);
        }
    }
    let (lows, error) = match records.delete_before(&bounds, TIMEOUT).await {
        Ok(lows) => (lows, None),
        Err(e) => {
            tracing::warn!(id = %req.id, error = %e, "deleting kafka records failed; they stay in the topic for now");
            (BTreeMap::new(), Some(e.to_string()))
        }
    };
    let mut removed = 0;
    let mut parts = Vec::new();
    for s in &scans {
        let low_after = lows.get(&s.partition).copied().unwrap_or(s.low).max(s.low);
        let bound = bounds.get(&s.partition).copied().unwrap_or(s.low);
        let committed = committed[&s.partition];
        let deleted = s.covered_below(low_after);
        removed += deleted;
        let waiting = s.covered_from(low_after);
        let waits_for = (waiting > 0).then_some(if s.first_not_cold <= committed {
            "its bucket to roll to the cold tier"
        } else {
            "the hot store to flush past it"
        });
        parts.push(json!({
            "partition": s.partition,
            "low_before": s.low,
            "high": s.high,
            "committed": committed,
            "first_not_cold": s.first_not_cold,
            "bound": bound,
            "low_after": low_after,
            "records_deleted": low_after - s.low,
            "covered_samples_deleted": deleted,
            "covered_samples_waiting": waiting,
            "waiting_offsets": s.covered.range(low_after..).map(|(o, _)| *o).collect::<Vec<_>>(),
            "waits_for": waits_for,
        }));
    }
    let skipped: Vec<serde_json::Value> = held
        .iter()
        .filter(|(_, c)| c.is_none())
        .map(|(p, _)| json!({"partition": p, "skipped": "held, no offset committed by this node yet"}))
        .chain(other.iter().map(|p| json!({"partition": p, "skipped": "held by another node (it deletes there)"})))
        .collect();
    let detail = json!({
        "kind": "kafka",
        "topic": records.topic(),
        "partitions": parts,
        "skipped": skipped,
        "delete_error": error,
    });
    Ok((removed, detail))
}

#[cfg(test)]
mod tests {
    use strata_schemas::{BatchSeries, Labels, Sample, TenantId, WriteBatch};

    use super::*;
    use crate::erasure::{DeleteSpec, parse_selector};

    fn record(tenant: &str, device: &str, ts: &[i64]) -> Vec<u8> {
        let tenant = TenantId::new(tenant).unwrap();
        let labels = Labels::from_pairs([("__name__", "kt"), ("device", device)]);
        let id = strata_schemas::series_id(&tenant, &labels);
        let series = BatchSeries {
            id,
            device_hash: strata_schemas::device_hash(&tenant, &labels, "device", id),
            labels,
            samples: ts.iter().map(|&t| Sample::new(t, 1.0)).collect(),
        };
        let mut out = Vec::new();
        WriteBatch { tenant, series: vec![series], origin: None }.encode(&mut out);
        out
    }

    fn request() -> Request {
        let spec = DeleteSpec {
            selectors: vec!["{device=\"d7\"}".into()],
            start: 100,
            end: 200,
            requested_by: "admin".into(),
        };
        Request {
            id: "del_1".into(),
            tenant: TenantId::new("farm").unwrap(),
            selectors: vec![parse_selector(&spec.selectors[0]).unwrap()],
            spec,
            requested_at: 0,
        }
    }

    #[test]
    fn a_record_goes_only_when_every_sample_is_below_its_tenants_cold_watermark() {
        let req = request();
        let farm_at_150 = |t: &TenantId| (t.as_str() == "farm").then_some(150);
        assert_eq!(classify(&record("farm", "d7", &[100, 149]), &req, &farm_at_150), (2, true));
        assert_eq!(classify(&record("farm", "d7", &[149, 150]), &req, &farm_at_150), (2, false), "150 is not cold");
        assert_eq!(classify(&record("farm", "d8", &[10]), &req, &farm_at_150), (0, true), "not covered, cold");
        assert_eq!(classify(&record("farm", "d7", &[99, 201]), &req, &farm_at_150), (0, false), "outside the range");
        // Another tenant: same device id, not covered; no cold watermark: never cold.
        assert_eq!(classify(&record("other", "d7", &[120]), &req, &farm_at_150), (0, false));
        assert_eq!(classify(b"not a record", &req, &farm_at_150), (1, false), "undecodable: found, kept");
    }

    #[test]
    fn covered_samples_split_at_an_offset() {
        let s = PartitionScan { covered: BTreeMap::from([(3, 2), (7, 1), (9, 4)]), ..Default::default() };
        assert_eq!((s.covered_below(7), s.covered_from(7)), (2, 5));
        assert_eq!((s.covered_below(0), s.covered_from(10)), (0, 0));
    }
}
