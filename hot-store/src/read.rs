//! The read path: [`ReadStore`] for [`HotStore`].
//!
//! ```text
//!  select(tenant, matchers, range)
//!    ── read lock ──  index: tenant's series → min/max overlaps range? → matchers match?
//!                     snapshot layers, oldest first: segment blocks (Arc) … frozen copy … memtable copy
//!    ── unlocked ──   read + CRC-check blocks, merge layers (newer overwrites older per ts)
//! ```
//!
//! `series`/`label_names`/`label_values` answer from the index alone when the
//! range is [`TimeRange::ALL`]; otherwise a series qualifies when a memtable
//! holds a sample in range or a block's min or max lies in range, and only a
//! block that straddles the range without either end inside is decoded.

use std::collections::BTreeMap;
use std::sync::Arc;

use strata_schemas::{Labels, Matcher, ReadError, ReadStore, Sample, SeriesData, TenantId, TimeRange};

use crate::index::SeriesKey;
use crate::segment::BlockMeta;
use crate::store::{HotStore, Segment, State};

/// One source of a series' samples, in age order.
#[derive(Debug)]
enum Layer {
    Block(Arc<Segment>, BlockMeta),
    Mem(Vec<(i64, u64)>),
}

#[derive(Debug)]
struct Candidate {
    key: Arc<SeriesKey>,
    layers: Vec<Layer>,
}

impl HotStore {
    /// Snapshots the layers of every matching series with samples possibly in `range`.
    fn snapshot(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Vec<Candidate> {
        let st = self.state.read();
        let mut out = Vec::new();
        for &r in st.index.tenant_series(tenant) {
            let Some(e) = st.index.get(r) else { continue };
            if !range.overlaps(e.min_ts, e.max_ts) || !Matcher::matches_all(matchers, &e.key.labels) {
                continue;
            }
            let mut layers: Vec<Layer> = st
                .segments
                .iter()
                .filter_map(|s| s.blocks.get(&r).map(|b| (s, b)))
                .filter(|(_, b)| range.overlaps(b.min_ts, b.max_ts))
                .map(|(s, b)| Layer::Block(Arc::clone(s), *b))
                .collect();
            let mems = st.frozen.as_deref().into_iter().chain(Some(&st.memtable));
            layers.extend(
                mems.filter_map(|m| m.get(r)).map(|b| b.in_range(range)).filter(|v| !v.is_empty()).map(Layer::Mem),
            );
            out.push(Candidate { key: Arc::clone(&e.key), layers });
        }
        out
    }
}

fn merge(layers: Vec<Layer>, range: TimeRange) -> Result<Vec<Sample>, ReadError> {
    Ok(merge_all(layers, range)?.into_iter().map(|(ts, bits)| Sample::new(ts, f64::from_bits(bits))).collect())
}

/// Merges layers oldest first: a newer layer overwrites an older one per ts.
fn merge_all(mut layers: Vec<Layer>, range: TimeRange) -> Result<Vec<(i64, u64)>, ReadError> {
    if let [Layer::Mem(_)] = layers.as_slice()
        && let Some(Layer::Mem(only)) = layers.pop()
    {
        return Ok(only); // already sorted, unique and in range
    }
    let mut merged = BTreeMap::new();
    for layer in layers {
        match layer {
            Layer::Block(seg, meta) => {
                merged.extend(seg.file.read_block(&meta)?.into_iter().filter(|&(ts, _)| range.contains(ts)));
            }
            Layer::Mem(v) => merged.extend(v),
        }
    }
    Ok(merged.into_iter().collect())
}

/// True when the series has a sample in `range`, deciding from the index and
/// memtables where possible and decoding only straddling blocks.
fn has_sample_in(st: &State, r: crate::index::SeriesRef, range: TimeRange, straddling: &mut Vec<Layer>) -> bool {
    let mems = st.frozen.as_deref().into_iter().chain(Some(&st.memtable));
    if mems.filter_map(|m| m.get(r)).any(|b| b.has_sample_in(range)) {
        return true;
    }
    for s in &st.segments {
        let Some(b) = s.blocks.get(&r) else { continue };
        if range.contains(b.min_ts) || range.contains(b.max_ts) {
            return true;
        }
        if range.overlaps(b.min_ts, b.max_ts) {
            straddling.push(Layer::Block(Arc::clone(s), *b));
        }
    }
    false
}

impl ReadStore for HotStore {
    fn select(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Result<Vec<SeriesData>, ReadError> {
        let mut out = Vec::new();
        for c in self.snapshot(tenant, matchers, range) {
            let samples = merge(c.layers, range)?;
            if !samples.is_empty() {
                out.push(SeriesData { labels: c.key.labels.clone(), samples });
            }
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    fn series(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Result<Vec<Labels>, ReadError> {
        let mut out = Vec::new();
        let mut to_check = Vec::new();
        {
            let st = self.state.read();
            for &r in st.index.tenant_series(tenant) {
                let Some(e) = st.index.get(r) else { continue };
                if !range.overlaps(e.min_ts, e.max_ts) || !Matcher::matches_all(matchers, &e.key.labels) {
                    continue;
                }
                let mut straddling = Vec::new();
                if range == TimeRange::ALL || has_sample_in(&st, r, range, &mut straddling) {
                    out.push(e.key.labels.clone());
                } else if !straddling.is_empty() {
                    to_check.push((Arc::clone(&e.key), straddling));
                }
            }
        }
        for (key, layers) in to_check {
            if !merge_all(layers, range)?.is_empty() {
                out.push(key.labels.clone());
            }
        }
        out.sort();
        Ok(out)
    }
}
