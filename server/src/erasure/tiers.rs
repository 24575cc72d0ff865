//! This node's tiers as the purge worker drives them ([`NodeTiers`]):
//!
//! ```text
//! log   embedded: seal every partition's active segment → flush the hot store
//!                 → release every segment below the flushed offsets (all records
//!                 written before the step: they are in hot segments now)
//!       Kafka:    flush and commit; the topic's retention removes the records
//!                 (Strata deletes no records; see "Kafka records" below)
//! hot   HotStore::erase (segments rewritten without the samples, or dropped;
//!       the memtable), under the compactor's pass lock so no roll reads a
//!       bucket half-way and carries erased samples into the cold tier
//! cold  ColdTier::erase (overwrite snapshots of the samples files, rollups
//!       recomputed, series rows, old snapshots expired, unreferenced objects
//!       deleted), under the same lock
//! verify HotStore::verify_erased + ColdTier::verify_erased + a scan of every
//!       remaining embedded log segment's records for a covered sample
//! ```
//!
//! The order matters: the log goes first, so no replay after a crash brings
//! back what the hot erase removed; hot before cold, so no later roll brings
//! back what the cold erase removed.
//!
//! ## Kafka records
//!
//! Kafka cannot rewrite a record; `DeleteRecords` (API key 21, rdkafka's
//! `AdminClient::delete_records`) only moves a partition's start offset up
//! to X, dropping every record below X, of every device and tenant. The
//! records holding a request's samples lie anywhere below the high watermark
//! at the time of the request, so removing them means dropping the
//! partition's prefix, and that is safe only for records nothing needs
//! again. A node taking over a partition replays it from its own hot store's
//! floor (`KafkaLog` doc: the flushed offset, 0 for a node that never held
//! it, positioned at the partition's start when that is higher), so a
//! dropped record is lost unless the cold tier holds all its samples. The
//! exact bound per partition p is therefore X_p = min(the group's committed
//! offset of p, the first offset of p whose record (one tenant's batch)
//! holds a sample at or after that tenant's roll state `strata.roll.p<p>`
//! (cold-tier FORMAT.md: every sample of p before it is in the table; a
//! tenant without a table: no sample is)). Records below X_p are all in
//! segments and in the cold tier; a request's samples in records at or
//! above X_p (not rolled yet) stay until they roll and a later purge moves
//! X_p past them, or retention removes them. Finding X_p means reading p
//! from its start up to that record. Not implemented: the broker of the
//! tests (tansu 0.6.0, `memory://` engine, built with `dynostore` only)
//! advertises DeleteRecords v0-2 but its engine hits a `todo!()`
//! (tansu-storage `dynostore.rs:616`: the broker thread panics and the
//! connection drops), so no test could exercise it. On a real Kafka
//! broker, DeleteRecords makes the records unreadable at once, but their
//! bytes stay on disk until the segment holding them lies wholly below the
//! new start offset and the next retention check
//! (`log.retention.check.interval.ms`, 5 min by default) deletes it, so a
//! bound on physical removal also needs the topic's `segment.ms`. Until
//! then the status names the topic's `retention.ms` as the bound, and the
//! verification lists the topic as not scanned.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use serde_json::json;
use strata_schemas::WriteBatch;

use super::status::{Step, StepProgress, Verification};
use super::worker::{BoxFuture, Request, Tiers};
use crate::node::Node;

/// File in the data dir holding this node's id in request status.
pub const NODE_ID_FILE: &str = "node.id";

/// The tiers of a running node.
#[derive(Debug)]
pub struct NodeTiers {
    node: Arc<Node>,
    compactor: Option<Arc<strata_compactor::Compactor>>,
    node_id: String,
}

impl NodeTiers {
    /// The tiers of `node`, with the cold tier when `compactor` is given.
    pub fn new(node: Arc<Node>, compactor: Option<Arc<strata_compactor::Compactor>>) -> anyhow::Result<Self> {
        let node_id = node_id(&node.data_dir)?;
        Ok(Self { node, compactor, node_id })
    }

    async fn log(&self) -> anyhow::Result<StepProgress> {
        let Some(log) = self.node.local_log.clone() else {
            self.node.flush("erasure").await?;
            return Ok(StepProgress {
                detail: json!({"kind": "kafka", "policy": self.log_policy()}),
                ..Default::default()
            });
        };
        let dir = log.dir().to_owned();
        let before = segment_files(&dir)?;
        let partitions = self.node.config.log.partitions;
        let sealer = Arc::clone(&log);
        tokio::task::spawn_blocking(move || (0..partitions).try_for_each(|p| sealer.seal(p))).await??;
        super::crash::point("log.sealed");
        // Flushing releases every segment below the flushed offsets (`Node::flush`).
        self.node.flush("erasure").await?;
        let after = segment_files(&dir)?;
        let released: Vec<&String> = before.keys().filter(|f| !after.contains_key(*f)).collect();
        let bytes: u64 = released.iter().map(|f| before[*f]).sum();
        Ok(StepProgress {
            files_deleted: released.len() as u64,
            detail: json!({"kind": "local", "bytes_released": bytes, "files": released}),
            ..Default::default()
        })
    }

    async fn hot(&self, req: &Request) -> anyhow::Result<StepProgress> {
        let _pass = match &self.compactor {
            Some(c) => Some(c.exclusive().await),
            None => None,
        };
        let hot = Arc::clone(&self.node.hot);
        let erase = strata_hot_store::EraseRequest {
            tenant: req.tenant.clone(),
            selectors: req.selectors.clone(),
            start: req.spec.start,
            end: req.spec.end,
        };
        let r = tokio::task::spawn_blocking(move || {
            // Test hook (`super::crash`): the hot-store failpoints are per thread.
            if let Some((point, nth)) = super::crash::hot_failpoint() {
                strata_hot_store::failpoint::arm_nth(point, nth);
            }
            let r = hot.erase(&erase);
            super::crash::after_hot_erase();
            r
        })
        .await??;
        Ok(StepProgress {
            files_rewritten: r.segments_rewritten,
            files_deleted: r.segments_dropped,
            rows_removed: r.samples_removed + r.memtable_samples_removed,
            bytes_rewritten: r.bytes_rewritten,
            detail: serde_json::to_value(&r).unwrap_or_default(),
            ..Default::default()
        })
    }

    async fn cold(&self, req: &Request) -> anyhow::Result<StepProgress> {
        let Some(c) = &self.compactor else { return Ok(StepProgress::default()) };
        let _pass = c.exclusive().await;
        let erase = strata_cold_tier::EraseRequest {
            selectors: req.selectors.clone(),
            start: req.spec.start,
            end: req.spec.end,
        };
        if let Some(point) = super::crash::cold_failpoint() {
            c.cold().arm_failpoint(point);
        }
        let r = c.cold().erase(&req.tenant, &erase).await.inspect_err(super::crash::after_cold_erase)?;
        Ok(StepProgress {
            files_rewritten: r.files_rewritten + r.rollup_files_rewritten,
            files_deleted: r.objects_deleted,
            rows_removed: r.rows_removed + r.series_rows_removed,
            bytes_rewritten: r.bytes_rewritten,
            detail: serde_json::to_value(&r).unwrap_or_default(),
            ..Default::default()
        })
    }

    async fn verify_all(&self, req: &Request) -> anyhow::Result<Verification> {
        let mut v = Verification { at: crate::registry::now_ms(), ..Default::default() };
        let hot = Arc::clone(&self.node.hot);
        let erase = strata_hot_store::EraseRequest {
            tenant: req.tenant.clone(),
            selectors: req.selectors.clone(),
            start: req.spec.start,
            end: req.spec.end,
        };
        let h = tokio::task::spawn_blocking(move || hot.verify_erased(&erase)).await??;
        v.hot_samples = h.samples_found + h.memtable_samples_found;
        v.hot_series = h.series_found;
        for q in self.node.hot.quarantined() {
            if (q.tenant.is_empty() || q.tenant == req.tenant.as_str()) && q.bucket <= req.spec.end {
                v.hot_quarantined_segments += 1;
                v.not_scanned.push(format!(
                    "quarantined hot segment {} (tenant {:?}, bucket {}): corrupt, unreadable, served by no query; \
                     not erased (it may hold other series' data): delete or restore it by hand",
                    q.path.display(),
                    q.tenant,
                    q.bucket
                ));
            }
        }
        if let Some(c) = &self.compactor {
            let erase = strata_cold_tier::EraseRequest {
                selectors: req.selectors.clone(),
                start: req.spec.start,
                end: req.spec.end,
            };
            let r = c.cold().verify_erased(&req.tenant, &erase).await?;
            v.cold_rows = r.rows_found + r.rollup_rows_found + r.series_rows_found;
            v.cold_unreferenced_objects = r.unreferenced_objects;
        }
        match self.node.local_log.clone() {
            Some(log) => {
                let (req, dir, partitions) = (req.clone(), log.dir().to_owned(), self.node.config.log.partitions);
                let scan = tokio::task::spawn_blocking(move || scan_log(&log, partitions, &req)).await??;
                v.log_samples = scan.samples;
                v.log_records_scanned = scan.records;
                v.log_segments_scanned = segment_files(&dir)?.len() as u64;
            }
            None => v.not_scanned.push(format!("kafka topic: {}", self.log_policy())),
        }
        Ok(v)
    }
}

impl Tiers for NodeTiers {
    fn node_id(&self) -> &str {
        &self.node_id
    }

    /// This node plus its `[cluster] peers` when they share the registry
    /// (`[registry] url`); with a registry of its own (SQLite in the data
    /// dir) no other node sees the request, so this node's part is all of it.
    fn nodes_expected(&self) -> u32 {
        if self.node.config.registry.url.is_empty() { 1 } else { 1 + self.node.config.cluster.peers.len() as u32 }
    }

    fn log_policy(&self) -> String {
        match &self.node.local_log {
            Some(_) => "embedded log: segments holding records written before the purge are released once the \
                        hot store has flushed past them (forced by the purge), within the purge bound"
                .to_owned(),
            None => "kafka: records stay in the topic until its retention (retention.ms) removes them; Strata \
                     does not delete records (DeleteRecords drops a partition's whole prefix, every device's \
                     records, and a node taking over a partition replays it from the topic)"
                .to_owned(),
        }
    }

    fn has(&self, step: Step) -> bool {
        step != Step::Cold || self.compactor.is_some()
    }

    fn run<'a>(&'a self, step: Step, req: &'a Request) -> BoxFuture<'a, anyhow::Result<StepProgress>> {
        Box::pin(async move {
            match step {
                Step::Log => self.log().await.context("purging the ingest log"),
                Step::Hot => self.hot(req).await.context("erasing from the hot store"),
                Step::Cold => self.cold(req).await.context("erasing from the cold tier"),
                Step::Verify => anyhow::bail!("verify is not a purge step"),
            }
        })
    }

    fn verify<'a>(&'a self, req: &'a Request) -> BoxFuture<'a, anyhow::Result<Verification>> {
        Box::pin(async move { self.verify_all(req).await.context("verifying the erasure") })
    }
}

/// What a scan of the embedded log found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LogScan {
    /// Records read.
    pub records: u64,
    /// Covered samples in them.
    pub samples: u64,
}

/// Reads every stored record of every partition and counts covered samples.
pub fn scan_log(log: &strata_ingest::LocalLog, partitions: u32, req: &Request) -> anyhow::Result<LogScan> {
    let mut scan = LogScan::default();
    for p in 0..partitions {
        log.replay(p, log.first_offset(p), &mut |_, payload| {
            scan.records += 1;
            // An undecodable record cannot be checked: count it as found.
            let Ok(batch) = WriteBatch::decode(payload) else {
                scan.samples += 1;
                return Ok(());
            };
            for s in &batch.series {
                scan.samples += s.samples.iter().filter(|x| req.covers(&batch.tenant, &s.labels, x.ts)).count() as u64;
            }
            Ok(())
        })?;
    }
    Ok(scan)
}

/// Segment files of the embedded log (`p*/…seg`, relative name → bytes).
fn segment_files(dir: &Path) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for part in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let part = part?;
        let name = part.file_name().to_string_lossy().into_owned();
        if !name.starts_with('p') || !part.file_type()?.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(part.path())? {
            let f = f?;
            let file = f.file_name().to_string_lossy().into_owned();
            if file.ends_with(".seg") {
                out.insert(format!("{name}/{file}"), f.metadata().map_or(0, |m| m.len()));
            }
        }
    }
    Ok(out)
}

/// This node's id: generated once into `<data_dir>/node.id`.
fn node_id(data_dir: &Path) -> anyhow::Result<String> {
    let path: PathBuf = data_dir.join(NODE_ID_FILE);
    if let Ok(id) = std::fs::read_to_string(&path)
        && !id.trim().is_empty()
    {
        return Ok(id.trim().to_owned());
    }
    let mut raw = [0u8; 6];
    getrandom::fill(&mut raw).map_err(|e| anyhow::anyhow!("no randomness for a node id: {e}"))?;
    let id = format!("node_{}", raw.iter().map(|b| format!("{b:02x}")).collect::<String>());
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(id.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    Ok(id)
}
