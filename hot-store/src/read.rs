//! The read path: [`ReadStore`] for [`HotStore`].
//!
//! ```text
//!  select(tenant, matchers, range)
//!    ── read lock ──  postings: matchers → bitmap of series (croaring) → min/max overlaps range?
//!                     segments of the tenant whose bucket overlaps the range (ordered by seq)
//!                     snapshot layers, oldest first: segment blocks (Arc) … frozen chunk … memtable chunk
//!    ── unlocked ──   per batch of series (label order): read their blocks with few
//!                     large preads (sorted by offset, small gaps read through), then
//!                     CRC-check, decode and merge layers (newer overwrites older per ts)
//!                     one series at a time, handing each over as it is done
//! ```
//!
//! The snapshot walks the matching series refs in ascending order with one
//! forward cursor per segment (blocks are sorted by ref), not a binary search
//! per (series, segment).
//!
//! `series`/`label_names`/`label_values` answer from the index alone when the
//! range is [`TimeRange::ALL`]; otherwise a series qualifies when a memtable
//! holds a sample in range or a block's min or max lies in range, and only a
//! block that straddles the range without either end inside is decoded.
//!
//! A block that fails its checksum fails the query with an error naming the
//! file, tenant, bucket and block, and its segment is quarantined so later
//! queries serve the rest.

use std::sync::Arc;

use strata_schemas::{Labels, Matcher, ReadError, ReadStore, Sample, SeriesData, TenantId, TimeRange};

use crate::index::SeriesRef;
use crate::maintenance::merge_layers;
use crate::memtable::Memtable;
use crate::segment::BlockMeta;
use crate::store::{HotStore, Segment, State};

/// One source of a series' samples, in age order.
#[derive(Debug)]
pub(crate) enum Layer {
    Block(Arc<Segment>, BlockMeta),
    /// A block whose bytes a coalesced read (see [`prefetch`]) put at this
    /// offset of the batch's buffer; checked and decoded like `Block`.
    Fetched(Arc<Segment>, BlockMeta, usize),
    Mem(Vec<(i64, u64)>),
}

#[derive(Debug)]
pub(crate) struct Candidate {
    pub(crate) labels: Labels,
    pub(crate) id: strata_schemas::SeriesId,
    pub(crate) device_hash: u64,
    pub(crate) layers: Vec<Layer>,
}

fn mem_error(detail: &str) -> ReadError {
    ReadError::Corrupted { location: "hot-store memtable".into(), detail: detail.to_owned() }
}

/// The live segments of `tenant` whose bucket overlaps `range`, oldest first.
fn tenant_segments<'a>(st: &'a State, tenant: &TenantId, range: TimeRange) -> Vec<&'a Arc<Segment>> {
    st.segments.iter().filter(|s| s.scope().tenant == *tenant && s.overlaps(range.start, range.end)).collect()
}

fn memtables(st: &State) -> impl Iterator<Item = &Memtable> {
    st.frozen.as_deref().into_iter().chain(Some(&st.memtable))
}

impl HotStore {
    /// Snapshots the layers of every matching series with samples possibly in `range`.
    pub(crate) fn snapshot(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<Candidate>, ReadError> {
        let st = self.state.read();
        let selected = st.index.select(tenant, matchers);
        let segs = tenant_segments(&st, tenant, range);
        // The bitmap yields refs in ascending order and each segment's blocks
        // are sorted by ref: one forward cursor per segment finds every block
        // in amortised O(1), where a binary search per (series, segment)
        // missed the cache at every step.
        let mut cursors: Vec<BlockCursor<'_>> =
            segs.iter().map(|s| BlockCursor { blocks: &s.blocks, pos: 0 }).collect();
        let mut out = Vec::new();
        for r in selected.iter() {
            let Some(e) = st.index.get(r) else { continue };
            if !range.overlaps(e.min_ts, e.max_ts) {
                continue;
            }
            let mut layers: Vec<Layer> = Vec::new();
            for (s, cur) in segs.iter().zip(cursors.iter_mut()) {
                if let Some(b) = cur.seek(r)
                    && range.overlaps(b.min_ts, b.max_ts)
                {
                    layers.push(Layer::Block(Arc::clone(s), *b));
                }
            }
            for m in memtables(&st) {
                for (_, chunk) in m.get(r) {
                    let v = chunk.in_range(range).map_err(mem_error)?;
                    if !v.is_empty() {
                        layers.push(Layer::Mem(v));
                    }
                }
            }
            if !layers.is_empty() {
                out.push(Candidate { labels: st.index.labels(e), id: e.id, device_hash: e.device_hash, layers });
            }
        }
        Ok(out)
    }

    /// Reads and merges layers; a corrupt block quarantines its segment.
    pub(crate) fn merge(&self, layers: Vec<Layer>, range: TimeRange) -> Result<Vec<(i64, u64)>, ReadError> {
        self.merge_fetched(layers, range, &[])
    }

    /// [`HotStore::merge`] where `Fetched` layers point into `fetched`.
    fn merge_fetched(
        &self,
        layers: Vec<Layer>,
        range: TimeRange,
        fetched: &[u8],
    ) -> Result<Vec<(i64, u64)>, ReadError> {
        let mut parts = Vec::with_capacity(layers.len());
        for layer in layers {
            let (seg, read) = match layer {
                Layer::Block(seg, meta) => {
                    let read = seg.file.read_block(&meta);
                    (seg, read)
                }
                Layer::Fetched(seg, meta, at) => {
                    let bytes = usize::try_from(meta.len)
                        .ok()
                        .and_then(|len| fetched.get(at..at.checked_add(len)?))
                        .ok_or_else(|| ReadError::Corrupted {
                            location: seg.file.path.display().to_string(),
                            detail: "prefetched block out of bounds".into(),
                        });
                    let read = bytes.and_then(|b| seg.file.decode_block_bytes(&meta, b));
                    (seg, read)
                }
                Layer::Mem(v) => {
                    parts.push(v);
                    continue;
                }
            };
            match read {
                Ok(mut v) => {
                    v.retain(|&(ts, _)| range.contains(ts));
                    parts.push(v);
                }
                Err(e) => {
                    if matches!(e, ReadError::Corrupted { .. }) {
                        self.quarantine_segment(&seg, e.to_string());
                    }
                    return Err(e);
                }
            }
        }
        Ok(merge_layers(parts))
    }
}

/// A forward cursor over a segment's blocks (sorted by series ref) for refs
/// asked in ascending order.
struct BlockCursor<'a> {
    blocks: &'a [(SeriesRef, BlockMeta)],
    pos: usize,
}

impl BlockCursor<'_> {
    /// The block of `r` (at or after the previous `r` asked): gallops ahead, then bisects.
    fn seek(&mut self, r: SeriesRef) -> Option<&BlockMeta> {
        let rest = self.blocks.get(self.pos..)?;
        let mut bound = 1usize;
        while rest.get(bound).is_some_and(|b| b.0 < r) {
            bound = bound.saturating_mul(2);
        }
        let window = rest.get(..bound.saturating_add(1).min(rest.len()))?;
        match window.binary_search_by_key(&r, |b| b.0) {
            Ok(i) => {
                self.pos += i;
                rest.get(i).map(|b| &b.1)
            }
            Err(i) => {
                self.pos += i;
                None
            }
        }
    }
}

/// Most bytes one coalesced read covers.
const SPAN_MAX: u64 = 1 << 20;
/// Largest gap between two wanted blocks that a coalesced read reads
/// through (copying a few KiB costs less than another `pread`).
const GAP_MAX: u64 = 8 << 10;
/// Most series decoded ahead of the consumer (one batch).
const BATCH_SERIES: usize = 8192;
/// Most samples (by the block index) decoded ahead of the consumer.
const BATCH_SAMPLES: u64 = 1 << 21;
/// Length of the first batch of `candidates`: at most [`BATCH_SERIES`]
/// series and about [`BATCH_SAMPLES`] samples, at least one series.
fn batch_len(candidates: &[Candidate]) -> usize {
    let mut samples = 0u64;
    for (i, c) in candidates.iter().enumerate().take(BATCH_SERIES) {
        for l in &c.layers {
            samples += match l {
                Layer::Block(_, m) | Layer::Fetched(_, m, _) => u64::from(m.count),
                Layer::Mem(v) => v.len() as u64,
            };
        }
        if samples > BATCH_SAMPLES {
            return i.max(1);
        }
    }
    candidates.len().min(BATCH_SERIES)
}

/// Reads the blocks of `batch` with few large reads instead of one `pread`
/// per block: the wanted blocks, sorted by segment and offset, are read in
/// runs of at most [`SPAN_MAX`] bytes that skip gaps over [`GAP_MAX`], and
/// each block's bytes are copied into `fetched` (its layer becomes
/// `Fetched`). The checksums are checked when the blocks are decoded.
fn prefetch(batch: &mut [Candidate], fetched: &mut Vec<u8>) -> Result<(), ReadError> {
    fetched.clear();
    // (segment, offset, len, candidate, layer)
    let mut wanted: Vec<(usize, u64, u64, usize, usize)> = Vec::new();
    for (ci, c) in batch.iter().enumerate() {
        for (li, l) in c.layers.iter().enumerate() {
            if let Layer::Block(seg, meta) = l {
                wanted.push((Arc::as_ptr(seg) as usize, meta.offset, meta.len, ci, li));
            }
        }
    }
    if wanted.len() < 2 {
        return Ok(());
    }
    wanted.sort_unstable();
    fetched.reserve(wanted.iter().map(|w| usize::try_from(w.2).unwrap_or(0)).sum());
    let mut buf: Vec<u8> = Vec::new();
    let mut i = 0;
    while let Some(&(key, start, len, ..)) = wanted.get(i) {
        let mut end = start.saturating_add(len);
        let mut j = i + 1;
        while let Some(&(k, off, l, ..)) = wanted.get(j) {
            let next_end = off.saturating_add(l);
            if k != key || off > end.saturating_add(GAP_MAX) || next_end.saturating_sub(start) > SPAN_MAX {
                break;
            }
            end = end.max(next_end);
            j += 1;
        }
        let run = wanted.get(i..j).unwrap_or_default();
        let Some(seg) = run.first().and_then(|w| match batch.get(w.3).and_then(|c| c.layers.get(w.4)) {
            Some(Layer::Block(seg, _)) => Some(Arc::clone(seg)),
            _ => None,
        }) else {
            break;
        };
        let too_long = || ReadError::Corrupted {
            location: seg.file.path.display().to_string(),
            detail: "block run exceeds address space".into(),
        };
        buf.resize(usize::try_from(end - start).map_err(|_| too_long())?, 0);
        seg.file.read_span(&mut buf, start)?;
        for &(_, off, l, ci, li) in run {
            let from = usize::try_from(off - start).map_err(|_| too_long())?;
            let to = from.saturating_add(usize::try_from(l).map_err(|_| too_long())?);
            let Some(layer) = batch.get_mut(ci).and_then(|c| c.layers.get_mut(li)) else { continue };
            if let (Layer::Block(seg, meta), Some(bytes)) = (&*layer, buf.get(from..to)) {
                *layer = Layer::Fetched(Arc::clone(seg), *meta, fetched.len());
                fetched.extend_from_slice(bytes);
            }
        }
        i = j;
    }
    Ok(())
}

/// True when the series has a sample in `range`, deciding from the index and
/// memtables where possible and collecting straddling blocks to decode.
fn has_sample_in(
    st: &State,
    segs: &[&Arc<Segment>],
    r: SeriesRef,
    range: TimeRange,
    straddling: &mut Vec<Layer>,
) -> Result<bool, ReadError> {
    for m in memtables(st) {
        for (_, chunk) in m.get(r) {
            if !chunk.in_range(range).map_err(mem_error)?.is_empty() {
                return Ok(true);
            }
        }
    }
    for s in segs {
        let Some(b) = s.block(r) else { continue };
        if range.contains(b.min_ts) || range.contains(b.max_ts) {
            return Ok(true);
        }
        if range.overlaps(b.min_ts, b.max_ts) {
            straddling.push(Layer::Block(Arc::clone(s), *b));
        }
    }
    Ok(false)
}

impl ReadStore for HotStore {
    /// Memtables and local segment files only.
    fn reads_locally(&self, _tenant: &TenantId, _range: TimeRange) -> bool {
        true
    }

    fn select(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Result<Vec<SeriesData>, ReadError> {
        let mut out = Vec::new();
        self.select_each(tenant, matchers, range, &mut |s| {
            out.push(s);
            Ok(())
        })?;
        Ok(out)
    }

    /// Snapshots the candidates (labels and block references, no samples),
    /// sorts them by labels, then reads, merges and hands over one series at
    /// a time.
    fn select_each(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
        each: &mut dyn FnMut(SeriesData) -> Result<(), ReadError>,
    ) -> Result<(), ReadError> {
        let mut candidates = self.snapshot(tenant, matchers, range)?;
        // Label sets are unique per series, so an unstable sort gives the same order.
        candidates.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
        let mut fetched = Vec::new();
        let mut rest = candidates.into_iter();
        loop {
            let n = batch_len(rest.as_slice());
            if n == 0 {
                break;
            }
            let mut batch: Vec<Candidate> = rest.by_ref().take(n).collect();
            prefetch(&mut batch, &mut fetched)?;
            for c in batch {
                let samples = self.merge_fetched(c.layers, range, &fetched)?;
                if !samples.is_empty() {
                    // Same size and alignment: collected in place, no new allocation.
                    let samples = samples.into_iter().map(|(ts, bits)| Sample::new(ts, f64::from_bits(bits))).collect();
                    each(SeriesData { labels: c.labels, samples })?;
                }
            }
        }
        Ok(())
    }

    fn series(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Result<Vec<Labels>, ReadError> {
        let mut out = Vec::new();
        let mut to_check = Vec::new();
        {
            let st = self.state.read();
            let selected = st.index.select(tenant, matchers);
            let segs = tenant_segments(&st, tenant, range);
            for r in selected.iter() {
                let Some(e) = st.index.get(r) else { continue };
                if !range.overlaps(e.min_ts, e.max_ts) {
                    continue;
                }
                let mut straddling = Vec::new();
                if range == TimeRange::ALL || has_sample_in(&st, &segs, r, range, &mut straddling)? {
                    out.push(st.index.labels(e));
                } else if !straddling.is_empty() {
                    to_check.push((st.index.labels(e), straddling));
                }
            }
        }
        for (labels, layers) in to_check {
            if !self.merge(layers, range)?.is_empty() {
                out.push(labels);
            }
        }
        out.sort();
        Ok(out)
    }

    fn label_names(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Result<Vec<String>, ReadError> {
        if matchers.is_empty() && range == TimeRange::ALL {
            let mut names = self.state.read().index.label_names(tenant);
            names.sort_unstable();
            return Ok(names);
        }
        Ok(strata_schemas::read::label_names_of(&self.series(tenant, matchers, range)?))
    }

    fn label_values(
        &self,
        tenant: &TenantId,
        name: &str,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<String>, ReadError> {
        if range == TimeRange::ALL {
            let st = self.state.read();
            let selected = (!matchers.is_empty()).then(|| st.index.select(tenant, matchers));
            let mut values: Vec<String> = st
                .index
                .label_values(tenant, name)
                .into_iter()
                .filter(|(_, b)| selected.as_ref().is_none_or(|s| b.intersect(s)))
                .map(|(v, _)| v.to_owned())
                .collect();
            values.sort_unstable();
            return Ok(values);
        }
        Ok(strata_schemas::read::label_values_of(&self.series(tenant, matchers, range)?, name))
    }
}

#[cfg(test)]
mod tests;
