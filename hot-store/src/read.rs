//! The read path: [`ReadStore`] for [`HotStore`].
//!
//! ```text
//!  select(tenant, matchers, range)
//!    ── read lock ──  postings: matchers → bitmap of series (croaring) → min/max overlaps range?
//!                     segments of the tenant whose bucket overlaps the range (ordered by seq)
//!                     snapshot layers, oldest first: segment blocks (Arc) … frozen chunk … memtable chunk
//!    ── unlocked ──   read + CRC-check blocks, merge layers (newer overwrites older per ts)
//! ```
//!
//! `select_newest` (an instant selector's read: each series' newest sample in
//! the range) snapshots the same layers, but a memtable chunk whose last
//! sample lies in the range answers with it without decoding (the chunk
//! keeps it; a later out-of-order rewrite of that timestamp wins), and the
//! layers are visited from the latest possible timestamp down, stopping at
//! the first that cannot hold anything newer: a series costs one block
//! decode at most, none when the memtable has a sample in the range.
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

mod order;

/// One source of a series' samples, in age order.
#[derive(Debug)]
pub(crate) enum Layer {
    Block(Arc<Segment>, BlockMeta),
    Mem(Vec<(i64, u64)>),
}

#[derive(Debug)]
pub(crate) struct Candidate {
    pub(crate) r: SeriesRef,
    pub(crate) labels: Labels,
    pub(crate) id: strata_schemas::SeriesId,
    pub(crate) device_hash: u64,
    pub(crate) layers: Vec<Layer>,
}

/// What a read hands over of each series' samples in the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// Every sample ([`ReadStore::select_each`]).
    All,
    /// The newest sample only ([`ReadStore::select_newest`]): memtable
    /// chunks answer from their last sample, and of the blocks only those
    /// that may hold something newer than what was found are decoded.
    Newest,
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

/// [`Segment::block`] for series handles asked in ascending order: `pos` is
/// where the previous lookup ended (start at 0). Gallops forward from there,
/// so a walk over many series touches the block table in order instead of
/// binary-searching all of it (a cache miss per level) for each one.
fn block_from<'a>(seg: &'a Segment, pos: &mut usize, r: SeriesRef) -> Option<&'a BlockMeta> {
    seek_from(&seg.refs, pos, r).and_then(|i| seg.blocks.get(i)).map(|(_, b)| b)
}

/// The index of `r` in `sorted` (ascending), searching from `*pos` and
/// leaving `*pos` at the first entry `>= r`: a galloping search, so a
/// query's ascending lookups cost the log of the distance between them.
fn seek_from(sorted: &[SeriesRef], pos: &mut usize, r: SeriesRef) -> Option<usize> {
    let rest = sorted.get(*pos..).unwrap_or_default();
    let mut hi = 1usize;
    while rest.get(hi).is_some_and(|&k| k < r) {
        hi = hi.saturating_mul(2);
    }
    let window = rest.get(..hi.saturating_add(1).min(rest.len())).unwrap_or_default();
    let found = window.binary_search(&r);
    let (Ok(i) | Err(i)) = found;
    *pos = pos.saturating_add(i);
    found.ok().map(|_| *pos)
}

impl HotStore {
    /// Snapshots the layers of every matching series with samples possibly in `range`.
    pub(crate) fn snapshot(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<Candidate>, ReadError> {
        self.snapshot_for(tenant, matchers, range, Want::All)
    }

    /// [`Self::snapshot`]; for [`Want::Newest`] a memtable chunk's layer
    /// holds only its newest sample in `range`.
    pub(crate) fn snapshot_for(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
        want: Want,
    ) -> Result<Vec<Candidate>, ReadError> {
        let st = self.state.read();
        let selected = st.index.select(tenant, matchers);
        let segs = tenant_segments(&st, tenant, range);
        // One forward cursor per segment: `selected` iterates in ascending order.
        let mut cursors = vec![0usize; segs.len()];
        let mut out = Vec::new();
        for r in selected.iter() {
            let Some(e) = st.index.get(r) else { continue };
            if !range.overlaps(e.min_ts, e.max_ts) {
                continue;
            }
            let mut layers: Vec<Layer> = segs
                .iter()
                .zip(cursors.iter_mut())
                .filter_map(|(s, pos)| block_from(s, pos, r).map(|b| (s, b)))
                .filter(|(_, b)| range.overlaps(b.min_ts, b.max_ts))
                .map(|(s, b)| Layer::Block(Arc::clone(s), *b))
                .collect();
            for m in memtables(&st) {
                for (_, chunk) in m.get(r) {
                    let v = match want {
                        Want::All => chunk.in_range(range),
                        Want::Newest => chunk.newest_in(range).map(|s| s.into_iter().collect()),
                    }
                    .map_err(mem_error)?;
                    if !v.is_empty() {
                        layers.push(Layer::Mem(v));
                    }
                }
            }
            if !layers.is_empty() {
                out.push(Candidate { r, labels: st.index.labels(e), id: e.id, device_hash: e.device_hash, layers });
            }
        }
        Ok(out)
    }

    /// Reads and merges layers; a corrupt block quarantines its segment.
    pub(crate) fn merge(&self, layers: Vec<Layer>, range: TimeRange) -> Result<Vec<(i64, u64)>, ReadError> {
        self.merge_with(layers, range, Want::All, &mut Vec::new())
    }

    /// [`Self::merge`] (or the newest sample only) reading blocks through
    /// the reusable buffer `scratch`.
    pub(crate) fn merge_with(
        &self,
        layers: Vec<Layer>,
        range: TimeRange,
        want: Want,
        scratch: &mut Vec<u8>,
    ) -> Result<Vec<(i64, u64)>, ReadError> {
        read_wanted(layers, range, want, scratch).map_err(|(e, seg)| {
            if let Some(seg) = seg {
                self.quarantine_segment(&seg, e.to_string());
            }
            e
        })
    }
}

impl HotStore {
    /// Reads, merges and hands over the (sorted) candidates one series at a
    /// time; with `split`, chunks are decoded on the read pool's workers too
    /// ([`crate::read_pool`]), delivered in the same order.
    pub(crate) fn read_candidates(
        &self,
        candidates: Vec<Candidate>,
        range: TimeRange,
        want: Want,
        each: &mut dyn FnMut(SeriesData) -> Result<(), ReadError>,
        split: bool,
    ) -> Result<(), ReadError> {
        if split {
            let quarantine = |seg: &Arc<Segment>, e: &ReadError| self.quarantine_segment(seg, e.to_string());
            return crate::read_pool::read_in_order(candidates, range, want, each, &quarantine);
        }
        let mut scratch = Vec::new();
        for c in candidates {
            let samples = self.merge_with(c.layers, range, want, &mut scratch)?;
            if !samples.is_empty() {
                let samples = samples.into_iter().map(|(ts, bits)| Sample::new(ts, f64::from_bits(bits))).collect();
                each(SeriesData { labels: c.labels, samples })?;
            }
        }
        Ok(())
    }
}

/// A failed layer read, with the segment to quarantine when a block was corrupt.
pub(crate) type LayerError = (ReadError, Option<Arc<Segment>>);

/// [`read_layers`] or [`newest_of_layers`], as `want` asks.
pub(crate) fn read_wanted(
    layers: Vec<Layer>,
    range: TimeRange,
    want: Want,
    scratch: &mut Vec<u8>,
) -> Result<Vec<(i64, u64)>, LayerError> {
    match want {
        Want::All => read_layers(layers, range, scratch),
        Want::Newest => Ok(newest_of_layers(layers, range, scratch)?.into_iter().collect()),
    }
}

impl Layer {
    /// The latest timestamp the layer may hold within `range`, and whether
    /// it may hold one at all.
    fn newest_bound(&self, range: TimeRange) -> Option<i64> {
        let (min, max) = match self {
            Layer::Block(_, b) => (b.min_ts, b.max_ts),
            Layer::Mem(v) => (v.first()?.0, v.last()?.0),
        };
        range.overlaps(min, max).then_some(max.min(range.end))
    }
}

/// The newest sample within `range` of the merged layers (oldest first;
/// a newer layer wins a shared timestamp), decoding as few as it can:
/// layers are visited from the latest possible timestamp down, and one
/// that cannot beat what was found (its bound is older, or equal but it is
/// an older layer) ends the walk. Usually that is one chunk or one block.
pub(crate) fn newest_of_layers(
    layers: Vec<Layer>,
    range: TimeRange,
    scratch: &mut Vec<u8>,
) -> Result<Option<(i64, u64)>, LayerError> {
    if layers.len() == 1 {
        // One block or chunk (a fleet query's usual case): nothing to order.
        return match layers.into_iter().next() {
            Some(l) if l.newest_bound(range).is_some() => newest_in_layer(l, range, scratch),
            _ => Ok(None),
        };
    }
    let mut order: Vec<(i64, usize, Layer)> = layers
        .into_iter()
        .enumerate()
        .filter_map(|(age, l)| l.newest_bound(range).map(|bound| (bound, age, l)))
        .collect();
    // Latest bound first; among equal bounds, the newer layer first.
    order.sort_unstable_by_key(|&(bound, age, _)| std::cmp::Reverse((bound, age)));
    let mut best: Option<((i64, u64), usize)> = None;
    for (bound, age, layer) in order {
        if let Some(((ts, _), best_age)) = best
            && (bound < ts || (bound == ts && age < best_age))
        {
            break;
        }
        let Some(s) = newest_in_layer(layer, range, scratch)? else { continue };
        if best.is_none_or(|((ts, _), best_age)| s.0 > ts || (s.0 == ts && age > best_age)) {
            best = Some((s, age));
        }
    }
    Ok(best.map(|(s, _)| s))
}

/// Reads and merges layers through the reusable buffer `scratch`; on a
/// corrupt block, the error comes with the segment to quarantine.
pub(crate) fn read_layers(
    layers: Vec<Layer>,
    range: TimeRange,
    scratch: &mut Vec<u8>,
) -> Result<Vec<(i64, u64)>, LayerError> {
    if layers.len() == 1 {
        // One block or chunk (a fleet query's usual case): no merge to do.
        return match layers.into_iter().next() {
            Some(layer) => read_layer(layer, range, scratch),
            None => Ok(Vec::new()),
        };
    }
    let mut parts = Vec::with_capacity(layers.len());
    for layer in layers {
        parts.push(read_layer(layer, range, scratch)?);
    }
    Ok(merge_layers(parts))
}

/// The samples of one layer in `range` (a block read and checked through `scratch`).
fn read_layer(layer: Layer, range: TimeRange, scratch: &mut Vec<u8>) -> Result<Vec<(i64, u64)>, LayerError> {
    Ok(match layer {
        Layer::Block(seg, meta) => {
            let mut v = read_block(seg, &meta, scratch)?;
            // The block's first and last samples are its index entry's min
            // and max; its samples are sorted: the range is one slice of them.
            if !(range.contains(meta.min_ts) && range.contains(meta.max_ts)) {
                let hi = v.partition_point(|&(ts, _)| ts <= range.end);
                v.truncate(hi);
                let lo = v.partition_point(|&(ts, _)| ts < range.start);
                v.drain(..lo);
            }
            v
        }
        Layer::Mem(v) => v,
    })
}

/// The newest sample of one layer in `range`: [`read_layer`]'s last, found
/// from the end of the block without filtering the rest.
fn newest_in_layer(layer: Layer, range: TimeRange, scratch: &mut Vec<u8>) -> Result<Option<(i64, u64)>, LayerError> {
    Ok(match layer {
        Layer::Block(seg, meta) => read_block(seg, &meta, scratch)?
            .iter()
            .rev()
            .find(|s| s.0 <= range.end)
            .filter(|s| s.0 >= range.start)
            .copied(),
        // A memtable layer holds only samples in the range.
        Layer::Mem(v) => v.last().copied(),
    })
}

/// Every sample of a block, read and checked through `scratch`; a corrupt
/// block's error comes with its segment.
fn read_block(seg: Arc<Segment>, meta: &BlockMeta, scratch: &mut Vec<u8>) -> Result<Vec<(i64, u64)>, LayerError> {
    seg.file.read_block_with(meta, scratch).map_err(|e| {
        let corrupt = matches!(e, ReadError::Corrupted { .. });
        (e, corrupt.then_some(seg))
    })
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

impl HotStore {
    /// Snapshots the candidates (labels and block references, no samples),
    /// sorts them by labels, then reads, merges and hands over one series at
    /// a time.
    fn read_sorted(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
        want: Want,
        each: &mut dyn FnMut(SeriesData) -> Result<(), ReadError>,
    ) -> Result<(), ReadError> {
        let mut candidates = self.snapshot_for(tenant, matchers, range, want)?;
        // Unstable (a stable sort allocates a scratch copy of every candidate);
        // equal label sets, if any, keep the order of their series handles.
        order::sort_by_labels(&mut candidates, |c| &c.labels, |a, b| a.r.cmp(&b.r));
        let split = candidates.len() >= crate::read_pool::PARALLEL_MIN_SERIES && crate::read_pool::workers() > 0;
        self.read_candidates(candidates, range, want, each, split)
    }
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
        self.read_sorted(tenant, matchers, range, Want::All, each)
    }

    /// Like [`ReadStore::select_each`], but a memtable chunk answers from
    /// its last sample without decoding, and a series' blocks are decoded
    /// only while they may hold something newer than what was found: an
    /// instant query over a window of thousands of samples per series
    /// decodes at most one block per series, usually none.
    fn select_newest(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
        each: &mut dyn FnMut(SeriesData) -> Result<(), ReadError>,
    ) -> Result<(), ReadError> {
        self.read_sorted(tenant, matchers, range, Want::Newest, each)
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
