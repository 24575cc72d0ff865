//! Background maintenance: per-bucket compaction, TTL expiry with the cold
//! watermark, and quarantine of segments found corrupt while reading.
//!
//! ```text
//!  compact():  for each (tenant, bucket) with ≥ 2 segments, or 1 with stream blocks (copied by a flush):
//!                merge inputs oldest→newest per series → <id>.seg (tmp, fsync, rename, fsync dir)
//!                manifest: inputs → output (seq = newest input's)      ← commit point
//!                delete inputs
//!  expire(now): per tenant, bound = bucket_start(now − ttl), and with a cold watermark
//!               also ≤ bucket_start(watermark); monotonic (manifest `expired_before`)
//!                manifest: drop segments of buckets < bound, record bound ← commit point
//!                delete their files (whole files, never a rewrite); drop memtable chunks;
//!                forget series that have no data left
//! ```
//!
//! Compaction holds `compact_lock` only, so flushes and applies continue
//! while it writes; the manifest edit is re-based on the current manifest
//! under `manifest_lock` and aborts (deleting its output) if an input was
//! quarantined meanwhile.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use croaring::Bitmap;
use strata_schemas::{ReadError, TenantId};

use crate::error::{Error, Result};
use crate::index::SeriesRef;
use crate::segment::{SegmentScope, SeriesRecord, sync_dir, write_segment};
use crate::store::{HotStore, PendingSeries, Segment, bucket_start, disk_full_before_manifest, move_to_quarantine};

/// What a [`HotStore::expire`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpireOutcome {
    /// Segment files deleted.
    pub segments: usize,
    /// Bytes freed on disk.
    pub bytes: u64,
    /// Series forgotten because no data of theirs is left.
    pub series: usize,
}

/// Merges layers given oldest first: on equal timestamps the newer layer wins.
/// Each layer is sorted by ts with unique ts.
pub(crate) fn merge_layers(mut layers: Vec<Vec<(i64, u64)>>) -> Vec<(i64, u64)> {
    layers.retain(|l| !l.is_empty());
    if layers.len() <= 1 {
        return layers.pop().unwrap_or_default();
    }
    let disjoint = layers.windows(2).all(|w| match w {
        [a, b] => a.last().map(|x| x.0) < b.first().map(|x| x.0),
        _ => true,
    });
    let mut all: Vec<(i64, u64)> = Vec::with_capacity(layers.iter().map(Vec::len).sum());
    for l in layers {
        all.extend(l);
    }
    if disjoint {
        return all;
    }
    all.sort_by_key(|&(ts, _)| ts); // stable: older layers first among equal ts
    let mut out: Vec<(i64, u64)> = Vec::with_capacity(all.len());
    for s in all {
        match out.last_mut() {
            Some(last) if last.0 == s.0 => *last = s,
            _ => out.push(s),
        }
    }
    out
}

impl HotStore {
    /// Merges the segments of every (tenant, bucket) holding two or more into
    /// one (latest write wins), with the same atomic manifest protocol as a
    /// flush, then deletes the inputs; a bucket's only segment is rewritten
    /// when it holds stream blocks (a flush copies memtable chunks; every
    /// block compaction writes is in the V4 layout). Applies, flushes and
    /// reads continue.
    pub fn compact(&self) -> Result<crate::CompactOutcome> {
        let _c = self.compact_lock.lock();
        let plans = {
            let st = self.state.read();
            if let Some(cause) = &st.poisoned {
                return Err(Error::Poisoned { operation: "compact", cause: cause.clone() });
            }
            let mut by_bucket: BTreeMap<(TenantId, i64), Vec<Arc<Segment>>> = BTreeMap::new();
            for s in &st.segments {
                by_bucket.entry((s.scope().tenant.clone(), s.scope().bucket)).or_default().push(Arc::clone(s));
            }
            // Two or more segments, or one holding stream blocks (a flush's
            // copies of memtable chunks, rewritten in the smaller V4 layout).
            by_bucket
                .into_values()
                .filter(|v| v.len() >= 2 || v.iter().any(|s| s.has_stream_blocks()))
                .collect::<Vec<_>>()
        };
        let mut out = crate::CompactOutcome { input_segments: 0, segment: None, buckets: 0, series: 0, samples: 0 };
        for inputs in plans {
            if let Some((path, series, samples)) = self.compact_bucket(&inputs)? {
                out.input_segments += inputs.len();
                out.buckets += 1;
                out.series += series;
                out.samples += samples;
                out.segment = Some(path);
            }
        }
        if out.buckets > 0 {
            tracing::info!(
                buckets = out.buckets,
                inputs = out.input_segments,
                samples = out.samples,
                "hot store compacted"
            );
        }
        Ok(out)
    }

    /// Compacts one bucket's segments (oldest first); `None` when skipped
    /// because an input turned out corrupt (it is quarantined instead).
    fn compact_bucket(&self, inputs: &[Arc<Segment>]) -> Result<Option<(PathBuf, usize, u64)>> {
        let Some(first) = inputs.first() else { return Ok(None) };
        let scope: SegmentScope = first.scope().clone();
        let (series, symbols) = {
            // The inputs' block lists are immutable: gathered without the lock.
            let mut refs: Vec<SeriesRef> = inputs.iter().flat_map(|s| s.blocks.iter().map(|b| b.0)).collect();
            refs.sort_unstable();
            refs.dedup();
            let (mut v, symbols) = self.pending_series(&refs);
            PendingSeries::sort(&mut v, &symbols);
            (v, symbols)
        };
        let id = self.alloc_id();
        let seq = inputs.iter().map(|s| s.seq).max().unwrap_or(0);
        let refs: Vec<SeriesRef> = series.iter().map(|p| p.r).collect();
        let mut bad: Option<(Arc<Segment>, ReadError)> = None;
        let records = series.into_iter().map(|p| {
            let mut layers = Vec::with_capacity(inputs.len());
            for seg in inputs {
                if let Some(meta) = seg.block(p.r) {
                    match seg.file.read_block(meta) {
                        Ok(samples) => layers.push(samples),
                        Err(source) => {
                            let path = seg.file.path.clone();
                            bad = Some((
                                Arc::clone(seg),
                                ReadError::Corrupted {
                                    location: path.display().to_string(),
                                    detail: source.to_string(),
                                },
                            ));
                            return Err(Error::CompactRead { path, source });
                        }
                    }
                }
            }
            Ok(SeriesRecord {
                id: p.id,
                device_hash: p.device_hash,
                labels: p.label_arcs(&symbols),
                samples: merge_layers(layers),
            })
        });
        let written = match write_segment(&self.dir, id, &scope, records) {
            Ok(w) => w,
            Err(e) => {
                if let Some((seg, _)) = bad.take() {
                    tracing::warn!(error = %e, "compaction input is corrupt; quarantining it and skipping the bucket");
                    self.quarantine_segment(&seg, e.to_string());
                    return Ok(None);
                }
                return Err(e);
            }
        };
        crate::failpoint::hit("compact.after_write")
            .map_err(|source| Error::WriteSegment { path: written.path.clone(), source })?;
        debug_assert_eq!(written.blocks.len(), refs.len());
        let blocks = refs.into_iter().zip(written.blocks).collect();
        let output = Arc::new(Segment::new(id, seq, written.file, blocks));
        let entry = output_entry(&output);
        let input_ids: Vec<u64> = inputs.iter().map(|s| s.id).collect();
        let committed = self
            .commit(
                |m| {
                    if !input_ids.iter().all(|id| m.segments.iter().any(|s| s.id == *id)) {
                        return false; // an input was quarantined meanwhile
                    }
                    m.segments.retain(|s| !input_ids.contains(&s.id));
                    m.segments.push(entry);
                    m.segments.sort_by_key(|s| (s.seq, s.id));
                    true
                },
                |st| {
                    st.segments.retain(|s| !input_ids.contains(&s.id));
                    st.insert_segment(Arc::clone(&output));
                },
            )
            .inspect_err(|e| {
                if disk_full_before_manifest(e) {
                    // The manifest is unchanged: drop the output and try again later.
                    tracing::warn!(error = %e, "compaction failed: disk full; its inputs stay");
                    let _ = std::fs::remove_file(&written.path);
                } else {
                    tracing::error!(error = %e, "compaction manifest write failed; hot store poisoned until restart");
                    self.state.write().poisoned = Some(e.to_string());
                }
            })?;
        if !committed {
            let _ = std::fs::remove_file(&written.path);
            return Ok(None);
        }
        crate::failpoint::hit("compact.before_delete_inputs")
            .map_err(|source| Error::WriteSegment { path: written.path.clone(), source })?;
        self.remove_files(inputs.iter().map(|s| &s.file.path));
        Ok(Some((output.file.path.clone(), written.series, written.samples)))
    }

    /// Deletes files no manifest references any more. Failures only warn:
    /// the next open deletes leftovers anyway.
    pub(crate) fn remove_files<'a>(&self, paths: impl Iterator<Item = &'a PathBuf>) {
        for p in paths {
            if let Err(e) = std::fs::remove_file(p) {
                tracing::warn!(path = %p.display(), error = %e, "could not delete replaced segment");
            }
        }
        if let Err(e) = sync_dir(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not sync directory");
        }
    }

    /// Records that the cold tier durably holds every sample of `tenant` below
    /// `ts` (ms). From then on the tenant's buckets are deleted only when
    /// older than its hot TTL **and** ending at or below the watermark. A
    /// tenant that never gets a watermark keeps the TTL rule alone. The
    /// watermark only moves forward; it is persisted in the manifest.
    pub fn set_cold_watermark(&self, tenant: &TenantId, ts: i64) -> Result<()> {
        let key = tenant.as_str().to_owned();
        self.commit(
            |m| {
                let cur = m.cold_watermarks.get(&key).copied().unwrap_or(i64::MIN);
                if ts <= cur {
                    return false;
                }
                m.cold_watermarks.insert(key, ts);
                true
            },
            |_| {},
        )?;
        Ok(())
    }

    /// The cold watermark of `tenant`, if one was set.
    pub fn cold_watermark(&self, tenant: &TenantId) -> Option<i64> {
        self.state.read().manifest.cold_watermarks.get(tenant.as_str()).copied()
    }

    /// Replaces the runtime hot TTLs (tenant id → TTL), e.g. from the tenant
    /// registry; they take precedence over `config.tenant_hot_ttl`, and
    /// tenants without one keep the configured TTL.
    pub fn set_hot_ttls(&self, ttls: BTreeMap<String, std::time::Duration>) {
        *self.runtime_ttls.write() = ttls;
    }

    /// The hot TTL of `tenant`: runtime, else configured, else the default.
    pub fn hot_ttl(&self, tenant: &str) -> std::time::Duration {
        self.runtime_ttls.read().get(tenant).copied().unwrap_or_else(|| self.config.hot_ttl(tenant))
    }

    /// Deletes everything the hot tier holds for `tenant`: its buffered
    /// samples are flushed first (so the log never replays them), then every
    /// segment of the tenant is dropped from the manifest and deleted, its
    /// series are forgotten, and its expiry bound and cold watermark are
    /// cleared so a tenant later created under the same id starts empty.
    ///
    /// Writes of the tenant racing with the purge may survive it; callers
    /// refuse the tenant's writes (delete it from the registry) first.
    pub fn purge_tenant(&self, tenant: &TenantId) -> Result<ExpireOutcome> {
        self.flush()?;
        // Lock order: `compact_lock`, then `flush_lock` (see `expire`).
        let _c = self.compact_lock.lock();
        let _f = self.flush_lock.lock();
        let doomed: Vec<Arc<Segment>> = {
            let st = self.state.read();
            if let Some(cause) = &st.poisoned {
                return Err(Error::Poisoned { operation: "purge", cause: cause.clone() });
            }
            st.segments.iter().filter(|s| &s.scope().tenant == tenant).cloned().collect()
        };
        let ids: Vec<u64> = doomed.iter().map(|s| s.id).collect();
        let key = tenant.as_str().to_owned();
        let bounds: BTreeMap<TenantId, i64> = [(tenant.clone(), i64::MAX)].into();
        let bucket_ms = self.bucket_ms;
        let mut forgotten = 0;
        self.commit(
            |m| {
                m.segments.retain(|s| !ids.contains(&s.id));
                m.expired_before.remove(&key);
                m.cold_watermarks.remove(&key);
                true
            },
            |st| {
                st.segments.retain(|s| !ids.contains(&s.id));
                st.expired_before.remove(tenant);
                drop_expired_memtable(st, &bounds, bucket_ms);
                forgotten = forget_dataless_series(st);
            },
        )?;
        self.remove_files(doomed.iter().map(|s| &s.file.path));
        let out = ExpireOutcome {
            segments: doomed.len(),
            bytes: doomed.iter().map(|s| s.file.size).sum(),
            series: forgotten,
        };
        tracing::info!(
            tenant = %tenant,
            segments = out.segments,
            bytes = out.bytes,
            series = out.series,
            "hot store purged tenant"
        );
        Ok(out)
    }

    /// Deletes every bucket that ended more than its tenant's hot TTL before
    /// `now_ms` (and, for a tenant with a cold watermark, at or below the
    /// watermark): whole segment files, plus the matching memtable chunks.
    /// Samples later applied to a deleted bucket are dropped. The server
    /// calls this periodically with the wall clock.
    ///
    /// Waits for a running compaction (`compact_lock`) *before* it takes
    /// `flush_lock` (no frozen memtable can then hold data of an expiring
    /// bucket): the other way round, an expiry waiting seconds for a
    /// compaction held `flush_lock` all that time, so neither the background
    /// flush nor a writer's back-pressure flush could run, the memtable
    /// filled to its hard limit and every write waited for the compaction
    /// (the soak's run 8: each flush that followed a compaction came 15–17 s
    /// after the one before, holding the hard limit's 12.8 M samples). The
    /// same order everywhere (`purge_tenant`; an erase takes them one at a
    /// time) keeps the two from deadlocking.
    pub fn expire(&self, now_ms: i64) -> Result<ExpireOutcome> {
        let _c = self.compact_lock.lock();
        let _f = self.flush_lock.lock();
        let bounds = self.expiry_bounds(now_ms);
        if bounds.is_empty() {
            return Ok(ExpireOutcome::default());
        }
        let (doomed, candidates) = {
            let st = self.state.read();
            if let Some(cause) = &st.poisoned {
                return Err(Error::Poisoned { operation: "expire", cause: cause.clone() });
            }
            let doomed: Vec<Arc<Segment>> = st
                .segments
                .iter()
                .filter(|s| bounds.get(&s.scope().tenant).is_some_and(|&b| s.scope().bucket < b))
                .cloned()
                .collect();
            let ids: Vec<u64> = doomed.iter().map(|s| s.id).collect();
            let candidates = dataless_candidates(&st, &ids);
            (doomed, candidates)
        };
        let ids: Vec<u64> = doomed.iter().map(|s| s.id).collect();
        let bucket_ms = self.bucket_ms;
        let mut forgotten = 0;
        self.commit(
            |m| {
                m.segments.retain(|s| !ids.contains(&s.id));
                for (t, &b) in &bounds {
                    m.expired_before.insert(t.as_str().to_owned(), b);
                }
                true
            },
            |st| {
                st.segments.retain(|s| !ids.contains(&s.id));
                for (t, &b) in &bounds {
                    st.expired_before.insert(t.clone(), b);
                }
                drop_expired_memtable(st, &bounds, bucket_ms);
                forgotten = forget_candidates_without_data(st, &candidates);
            },
        )?;
        crate::failpoint::hit("expire.before_delete")
            .map_err(|source| Error::WriteSegment { path: self.dir.clone(), source })?;
        self.remove_files(doomed.iter().map(|s| &s.file.path));
        let out = ExpireOutcome {
            segments: doomed.len(),
            bytes: doomed.iter().map(|s| s.file.size).sum(),
            series: forgotten,
        };
        if out.segments > 0 || out.series > 0 {
            tracing::info!(
                segments = out.segments,
                bytes = out.bytes,
                series = out.series,
                "hot store expired old buckets"
            );
        }
        Ok(out)
    }

    /// Per tenant whose expiry bound moves forward: the new bound.
    fn expiry_bounds(&self, now_ms: i64) -> BTreeMap<TenantId, i64> {
        let st = self.state.read();
        let mut tenants: Vec<TenantId> = st.segments.iter().map(|s| s.scope().tenant.clone()).collect();
        tenants.extend(st.index.tenants().cloned());
        tenants.extend(st.expired_before.keys().cloned());
        tenants.sort_unstable();
        tenants.dedup();
        let mut out = BTreeMap::new();
        for t in tenants {
            let ttl = i64::try_from(self.hot_ttl(t.as_str()).as_millis()).unwrap_or(i64::MAX);
            let mut bound = bucket_start(now_ms.saturating_sub(ttl), self.bucket_ms);
            if let Some(&wm) = st.manifest.cold_watermarks.get(t.as_str()) {
                bound = bound.min(bucket_start(wm, self.bucket_ms));
            }
            let prev = st.expired_before.get(&t).copied().unwrap_or(i64::MIN);
            if bound > prev {
                out.insert(t, bound);
            }
        }
        out
    }

    /// Quarantines a live segment found corrupt while reading or compacting:
    /// drops it from the manifest and the live set, moves the file aside.
    pub(crate) fn quarantine_segment(&self, seg: &Segment, detail: String) {
        let live = self.state.read().segments.iter().any(|s| s.id == seg.id);
        if !live {
            return;
        }
        let entry = output_entry(seg);
        if let Err(e) = self.quarantine_entry(&entry, detail) {
            tracing::error!(error = %e, path = %seg.file.path.display(), "could not quarantine corrupt segment");
            let id = seg.id;
            self.state.write().segments.retain(|s| s.id != id);
            move_to_quarantine(&self.dir, &seg.file.path);
        }
    }
}

pub(crate) fn output_entry(seg: &Segment) -> crate::manifest::SegmentEntry {
    crate::manifest::SegmentEntry {
        id: seg.id,
        file: crate::format::segment_file_name(seg.id),
        size: seg.file.size,
        tenant: seg.scope().tenant.as_str().to_owned(),
        bucket: seg.scope().bucket,
        seq: seg.seq,
    }
}

fn drop_expired_memtable(st: &mut crate::store::State, bounds: &BTreeMap<TenantId, i64>, _bucket_ms: i64) {
    for (t, &b) in bounds {
        let Some(tenant_idx) = st.index.tenant_index(t) else { continue };
        let index = &st.index;
        let in_scope = |r: SeriesRef| index.get(r).is_some_and(|e| e.tenant == tenant_idx);
        st.memtable.drop_before(b, in_scope);
    }
}

/// The series an expiry may forget, found under the state's read lock (the
/// walk over every live segment's block list costs tens of milliseconds at
/// 100,000 series; under the write lock every apply and query waited for
/// it): live series that no segment but the `doomed` ones and no frozen
/// memtable mentions. The caller holds `flush_lock` and `compact_lock`, so
/// no segment or frozen memtable appears before the write lock is taken;
/// only the active memtable can gain series meanwhile, and
/// [`forget_candidates_without_data`] checks it.
pub(crate) fn dataless_candidates(st: &crate::store::State, doomed: &[u64]) -> Vec<SeriesRef> {
    let mut present = Bitmap::new();
    for s in st.segments.iter().filter(|s| !doomed.contains(&s.id)) {
        present.add_many(&s.blocks.iter().map(|(r, _)| *r).collect::<Vec<_>>());
    }
    if let Some(f) = &st.frozen {
        for (r, _, _) in f.iter() {
            present.add(r);
        }
    }
    st.index.live_refs().filter(|r| !present.contains(*r)).collect()
}

/// Removes the `candidates` ([`dataless_candidates`]) that are still live
/// and have no sample in the active memtable; returns how many.
pub(crate) fn forget_candidates_without_data(st: &mut crate::store::State, candidates: &[SeriesRef]) -> usize {
    let mut n = 0;
    for &r in candidates {
        if st.memtable.get(r).is_empty() && st.index.get(r).is_some() {
            st.index.remove(r);
            n += 1;
        }
    }
    n
}

/// Removes series that no segment or memtable mentions any more.
pub(crate) fn forget_dataless_series(st: &mut crate::store::State) -> usize {
    let mut present = Bitmap::new();
    for s in &st.segments {
        for (r, _) in &s.blocks {
            present.add(*r);
        }
    }
    for (r, _, _) in st.memtable.iter() {
        present.add(r);
    }
    if let Some(f) = &st.frozen {
        for (r, _, _) in f.iter() {
            present.add(r);
        }
    }
    let dead: Vec<SeriesRef> = st.index.live_refs().filter(|r| !present.contains(*r)).collect();
    for &r in &dead {
        st.index.remove(r);
    }
    dead.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_layers_newer_wins_and_keeps_order() {
        assert_eq!(merge_layers(vec![vec![(1, 1), (3, 1)], vec![(2, 2), (3, 2)]]), vec![(1, 1), (2, 2), (3, 2)]);
        assert_eq!(merge_layers(vec![vec![(1, 1)], vec![], vec![(5, 2)]]), vec![(1, 1), (5, 2)]);
        assert_eq!(merge_layers(vec![vec![(5, 1)], vec![(1, 2)]]), vec![(1, 2), (5, 1)]);
        assert!(merge_layers(vec![]).is_empty());
    }
}
