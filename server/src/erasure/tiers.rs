//! This node's tiers as the purge worker drives them ([`NodeTiers`]):
//!
//! ```text
//! log   embedded: seal every partition's active segment → flush the hot store
//!                 → release every segment below the flushed offsets (all records
//!                 written before the step: they are in hot segments now)
//!       Kafka:    flush and commit → per partition this node holds, delete the
//!                 records below the safe bound (`kafka.rs`; "Kafka records" below)
//! hot   HotStore::erase (segments rewritten without the samples, or dropped;
//!       the memtable), under the compactor's pass lock so no roll reads a
//!       bucket half-way and carries erased samples into the cold tier
//! cold  ColdTier::erase (overwrite snapshots of the samples files, rollups
//!       recomputed, series rows, old snapshots expired, unreferenced objects
//!       deleted), under the same lock
//! verify HotStore::verify_erased + ColdTier::verify_erased + a scan of every
//!       remaining embedded log segment's records, or of the held Kafka
//!       partitions from their low watermarks, for a covered sample
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
//! bound per partition p is therefore X_p = min(the group's committed offset
//! of p, the first offset of p whose record (one tenant's batch) holds a
//! sample at or after that tenant's cold watermark (every sample below it,
//! of every partition, is in the cold tier; a tenant without one: no sample
//! is; an undecodable record: never dropped)). The tenant's watermark rather
//! than p's own roll state (cold-tier FORMAT.md, `strata.roll.p<p>`, which
//! may run ahead of it) keeps every dropped sample below the query's
//! hot/cold split too. Finding X_p means reading p from its start; the
//! verification reads it again and counts the covered samples still there
//! (`Verification::kafka_samples`).
//!
//! So a request's samples in records at or above X_p (their bucket not
//! rolled yet, or not flushed) stay until they roll: while any are left the
//! request stays open and the log step runs again at each check (the hot and
//! cold steps are not repeated), until the request's bound passes; then it
//! completes with `bound_met` false, the verification counting them and
//! `not_scanned` saying they wait for the topic's retention. The log step's
//! report lists per partition the offsets deleted and those waiting.
//! Each node deletes in the partitions it holds (assigned to it, an offset
//! committed by it); the others are listed as skipped.
//!
//! On Apache Kafka, DeleteRecords makes the records unreadable at once, but
//! their bytes stay on disk until the segment holding them lies wholly below
//! the new start offset and the next retention check
//! (`log.retention.check.interval.ms`, 5 min by default) deletes it, so a
//! bound on physical removal also needs the topic's `segment.ms`. Brokers of
//! the tests: tansu 0.6.0 implements DeleteRecords only in its SlateDB engine
//! (`slatedb://memory`; the in-memory `memory://` engine hits a `todo!()` and
//! the connection drops, postgres deletes at and above the offset), which
//! deletes whole producer batches with a base offset below X: a batch
//! straddling X would lose its records at and above X (Kafka keeps them).
//! A broker that refuses the delete leaves the records (the step reports
//! `delete_error`; the request waits as above).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use serde_json::json;
use strata_schemas::WriteBatch;

use super::status::{Step, StepProgress, Verification};
use super::worker::{BoxFuture, Request, Tiers};
use crate::node::Node;

mod kafka;

/// File in the data dir holding this node's id in request status.
pub const NODE_ID_FILE: &str = "node.id";

/// The tiers of a running node.
#[derive(Debug)]
pub struct NodeTiers {
    node: Arc<Node>,
    compactor: Option<Arc<strata_compactor::Compactor>>,
    node_id: String,
    /// The Kafka log's topic, read and trimmed outside the group.
    kafka_records: Option<strata_ingest::log::KafkaRecords>,
}

impl NodeTiers {
    /// The tiers of `node`, with the cold tier when `compactor` is given.
    pub fn new(node: Arc<Node>, compactor: Option<Arc<strata_compactor::Compactor>>) -> anyhow::Result<Self> {
        let node_id = node_id(&node.data_dir)?;
        let c = &node.config;
        let kafka_records = node
            .kafka
            .as_ref()
            .map(|_| strata_ingest::log::KafkaRecords::new(&c.log.kafka, c.log.partitions, &c.region));
        Ok(Self { node, compactor, node_id, kafka_records })
    }

    async fn log(&self, req: &Request) -> anyhow::Result<StepProgress> {
        let Some(log) = self.node.local_log.clone() else {
            self.node.flush_released("erasure", false).await?;
            let (Some(topic_log), Some(records)) = (&self.node.kafka, &self.kafka_records) else {
                return Ok(StepProgress::default());
            };
            let (removed, detail) = kafka::purge(topic_log, records, req, &self.node.hot).await?;
            return Ok(StepProgress { rows_removed: removed, detail, ..Default::default() });
        };
        let dir = log.dir().to_owned();
        let before = segment_files(&dir)?;
        let partitions = self.node.config.log.partitions;
        let sealer = Arc::clone(&log);
        tokio::task::spawn_blocking(move || (0..partitions).try_for_each(|p| sealer.seal(p))).await??;
        super::crash::point("log.sealed");
        // Flushing releases every segment below the flushed offsets (`Node::flush`).
        self.node.flush_released("erasure", false).await?;
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
            super::crash::arm_hot();
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
        super::crash::arm_cold(c.cold());
        // Group rollups are not rewritten by the erase: their tables go, and
        // start afresh at the next roll (only later windows answered from them).
        c.purge_group_rollups(&req.tenant).await?;
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
            None => self.verify_kafka(req, &mut v).await?,
        }
        Ok(v)
    }

    /// The verification's scan of the held Kafka partitions.
    async fn verify_kafka(&self, req: &Request, v: &mut Verification) -> anyhow::Result<()> {
        let (Some(topic_log), Some(records)) = (&self.node.kafka, &self.kafka_records) else { return Ok(()) };
        let (held, other) = kafka::held(topic_log);
        let ps: Vec<u32> = held.iter().map(|(p, _)| *p).collect();
        let scans = {
            let (records, req, hot) = (records.clone(), req.clone(), Arc::clone(&self.node.hot));
            tokio::task::spawn_blocking(move || kafka::scan(&records, &ps, &req, &move |t| hot.cold_watermark(t)))
                .await??
        };
        v.kafka_partitions_scanned = scans.len() as u64;
        v.log_records_scanned += scans.iter().map(|s| s.records).sum::<u64>();
        v.kafka_samples = scans.iter().map(|s| s.covered_from(s.low)).sum();
        if !other.is_empty() {
            v.not_scanned.push(format!(
                "kafka topic {}: partitions {other:?} are held by other nodes (their verifications scan them)",
                records.topic()
            ));
        }
        if v.kafka_samples > 0 {
            let at: Vec<String> = scans
                .iter()
                .filter(|s| !s.covered.is_empty())
                .map(|s| {
                    let (a, b) = (s.covered.keys().next().unwrap_or(&0), s.covered.keys().last().unwrap_or(&0));
                    format!("partition {} offsets {a}..={b}", s.partition)
                })
                .collect();
            v.not_scanned.push(format!(
                "kafka topic {}: {} covered samples are still in records ({}) that cannot be deleted yet \
                 (their buckets are not rolled to the cold tier, or not flushed): deleted at a later check \
                 until the request's bound; past it, the topic's retention (retention.ms) removes them",
                records.topic(),
                v.kafka_samples,
                at.join(", ")
            ));
        }
        Ok(())
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
            None => "kafka: per partition, the records below the first one whose samples are not all in the \
                     cold tier (and below the group's committed offset) are deleted (DeleteRecords drops a \
                     partition's prefix, every device's records); records holding covered samples above that \
                     wait for their buckets to roll and are deleted at a later check, until the request's \
                     bound; past it, the topic's retention (retention.ms) removes them"
                .to_owned(),
        }
    }

    fn has(&self, step: Step) -> bool {
        step != Step::Cold || self.compactor.is_some()
    }

    fn run<'a>(&'a self, step: Step, req: &'a Request) -> BoxFuture<'a, anyhow::Result<StepProgress>> {
        Box::pin(async move {
            match step {
                Step::Log => self.log(req).await.context("purging the ingest log"),
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
