//! Hot + cold behind one [`ReadStore`], split at the tenant's cold watermark.
//!
//! ```text
//!          W = watermark(tenant)   (the cold tier holds every sample with ts < W)
//!  cold:   [range.start, min(range.end, W − 1)]
//!  hot:    [max(range.start, W), range.end]
//!  merge:  per label set, samples concatenated in ts order, one per ts
//! ```
//!
//! No gap: every sample below `W` was committed to cold before `W` was set,
//! and hot keeps a bucket until it ends at or below `W` **and** its hot TTL
//! passed. No double count: the two ranges are disjoint, and cold rows at or
//! above `W` (a commit whose watermark step has not run yet) are never asked
//! for. A tenant without a watermark is answered by hot alone.
//!
//! On a shared Kafka log (several nodes, rolls owned per log partition) `W`
//! is the lowest roll state over every partition, not a per-partition split,
//! and the split stays exact: below `W` every partition's samples are in
//! cold (each partition's state is at or above `W`); at or above `W` this
//! node answers from hot, and the partition's owner answers completely
//! (cold below its own `W`, hot above: its hot store applied the whole
//! partition and expires nothing at or above its `W`); the cluster read
//! merges the nodes' answers one sample per (series, ts), the owner's first. A partition rolled further than `W` is read from hot between `W`
//! and its own state, which costs speed and hot retention, not exactness;
//! a split per partition would need the partition of every series on the
//! cold side, and would save only that.

use std::sync::Arc;

use strata_schemas::read::keep_newest;
use strata_schemas::{
    Labels, Matcher, ReadError, ReadStore, RollupAnswer, RollupData, RollupFields, SeriesData, TenantId, TimeRange,
};

/// Returns the tenant's cold watermark (ms, exclusive), if any.
pub type WatermarkFn = Arc<dyn Fn(&TenantId) -> Option<i64> + Send + Sync>;

/// A [`ReadStore`] over a hot and a cold store.
#[derive(Clone)]
pub struct FederatedReadStore {
    hot: Arc<dyn ReadStore>,
    cold: Arc<dyn ReadStore>,
    watermark: WatermarkFn,
    /// Group rollup reads ([`FederatedReadStore::with_group_rollups`]).
    groups: Option<GroupReads>,
}

/// What the federated read needs to answer from group rollup tables.
#[derive(Clone)]
struct GroupReads {
    tier: Arc<strata_cold_tier::ColdTier>,
    handle: tokio::runtime::Handle,
    declared: crate::group::GroupRollups,
}

impl std::fmt::Debug for FederatedReadStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FederatedReadStore").field("hot", &self.hot).field("cold", &self.cold).finish()
    }
}

impl FederatedReadStore {
    /// Combines `hot` and `cold`; `watermark` is usually
    /// `move |t| hot_store.cold_watermark(t)`.
    pub fn new(hot: Arc<dyn ReadStore>, cold: Arc<dyn ReadStore>, watermark: WatermarkFn) -> Self {
        Self { hot, cold, watermark, groups: None }
    }

    /// Answers [`ReadStore::select_rollup`] with a `__group__` matcher from
    /// the group rollup tables of `tier` (reads on `handle`), for the
    /// declarations `declared` publishes (the compactor's
    /// [`crate::Compactor::group_rollups`]); without this, or for an id not
    /// published, such a request gets `None`.
    pub fn with_group_rollups(
        mut self,
        tier: Arc<strata_cold_tier::ColdTier>,
        handle: tokio::runtime::Handle,
        declared: crate::group::GroupRollups,
    ) -> Self {
        self.groups = Some(GroupReads { tier, handle, declared });
        self
    }

    /// [`ReadStore::select_rollup`] of a group rollup: its windows ending
    /// in `ends` (already clipped to the watermark), from the declaration's
    /// table, or `None` when it is not published or its table does not
    /// hold every window from `ends.start` on.
    #[expect(
        clippy::disallowed_methods,
        reason = "ReadStore is synchronous (the engine runs on blocking threads): the cold tier's async reads run on the server's runtime handle, never from a runtime worker"
    )]
    fn select_group_rollup(
        &self,
        tenant: &TenantId,
        id: u64,
        matchers: &[Matcher],
        width_ms: i64,
        ends: TimeRange,
    ) -> Result<Option<RollupData>, ReadError> {
        let Some(g) = &self.groups else { return Ok(None) };
        let Some(rollup) = strata_cold_tier::Rollup::of_width(width_ms) else { return Ok(None) };
        let published = g.declared.read().get(tenant).is_some_and(|l| l.iter().any(|d| d.id() == id));
        if !published {
            return Ok(None);
        }
        let view = g.tier.group_view(rollup, id);
        let series = g.handle.block_on(view.select_rollup(tenant, matchers, ends))?;
        Ok(series.map(|series| RollupData { covered_end: ends.end, series }))
    }

    /// The last window end of `width_ms` in `ends` below the tenant's
    /// watermark (every sample of it in cold), if any.
    fn rollup_covered_end(&self, tenant: &TenantId, width_ms: i64, ends: TimeRange) -> Option<i64> {
        let w = (self.watermark)(tenant)?;
        if width_ms <= 0 {
            return None;
        }
        let covered_end = w.saturating_sub(1).div_euclid(width_ms).saturating_mul(width_ms).min(ends.end);
        (covered_end >= ends.start).then_some(covered_end)
    }

    /// The (cold, hot) sub-ranges of `range` for `tenant`.
    fn split(&self, tenant: &TenantId, range: TimeRange) -> (Option<TimeRange>, TimeRange) {
        match (self.watermark)(tenant) {
            // No watermark, or `i64::MIN` (a node on a shared log before every
            // partition has a roll state): the cold tier is not asked.
            None | Some(i64::MIN) => (None, range),
            Some(w) => {
                let cold = TimeRange::new(range.start, range.end.min(w.saturating_sub(1)));
                let hot = TimeRange::new(range.start.max(w), range.end);
                ((cold.start <= cold.end).then_some(cold), hot)
            }
        }
    }
}

/// Merges two label-sorted series lists (cold first: older samples).
fn merge_series(cold: Vec<SeriesData>, hot: Vec<SeriesData>) -> Vec<SeriesData> {
    let mut out: Vec<SeriesData> = Vec::with_capacity(cold.len() + hot.len());
    let mut all: Vec<SeriesData> = cold.into_iter().chain(hot).collect();
    all.sort_by(|a, b| a.labels.cmp(&b.labels)); // stable: cold before hot
    for s in all {
        match out.last_mut() {
            Some(last) if last.labels == s.labels => {
                last.samples.extend(s.samples);
                last.samples.sort_by_key(|x| x.ts); // stable: the later (hot) copy follows
                dedup_keep_last(&mut last.samples);
            }
            _ => out.push(s),
        }
    }
    out
}

/// One sample per timestamp, keeping the last of equal timestamps (hot wins at the seam).
fn dedup_keep_last(v: &mut Vec<strata_schemas::Sample>) {
    let mut out: Vec<strata_schemas::Sample> = Vec::with_capacity(v.len());
    for s in v.drain(..) {
        match out.last_mut() {
            Some(l) if l.ts == s.ts => *l = s,
            _ => out.push(s),
        }
    }
    *v = out;
}

impl ReadStore for FederatedReadStore {
    /// Local when the range lies entirely above the cold watermark.
    fn reads_locally(&self, tenant: &TenantId, range: TimeRange) -> bool {
        self.split(tenant, range).0.is_none() && self.hot.reads_locally(tenant, range)
    }

    fn select(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Result<Vec<SeriesData>, ReadError> {
        let (cold_range, hot_range) = self.split(tenant, range);
        let cold = match cold_range {
            Some(r) => self.cold.select(tenant, matchers, r)?,
            None => Vec::new(),
        };
        let hot =
            if hot_range.start <= hot_range.end { self.hot.select(tenant, matchers, hot_range)? } else { Vec::new() };
        Ok(merge_series(cold, hot))
    }

    /// Streamed: with no cold part the hot store's own `select_each` runs
    /// (a fleet query over recent data holds one series' samples at a time,
    /// not every series at once); with a cold part, the cold series
    /// (collected and label-sorted: what `select` would merge) are merged in
    /// label order as the hot ones pass, a series in both getting cold's
    /// older samples first and hot winning a shared timestamp — the same
    /// answer as [`ReadStore::select`], series by series.
    fn select_each(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
        each: &mut dyn FnMut(SeriesData) -> Result<(), ReadError>,
    ) -> Result<(), ReadError> {
        let (cold_range, hot_range) = self.split(tenant, range);
        let hot_empty = hot_range.start > hot_range.end;
        let cold_range = match cold_range {
            None if hot_empty => return Ok(()),
            None => return self.hot.select_each(tenant, matchers, hot_range, each),
            Some(r) if hot_empty => return self.cold.select_each(tenant, matchers, r, each),
            Some(r) => r,
        };
        let mut cold = merge_series(self.cold.select(tenant, matchers, cold_range)?, Vec::new()).into_iter().peekable();
        self.hot.select_each(tenant, matchers, hot_range, &mut |h: SeriesData| {
            while let Some(c) = cold.next_if(|c| c.labels < h.labels) {
                each(c)?;
            }
            match cold.next_if(|c| c.labels == h.labels) {
                Some(mut c) => {
                    c.samples.extend(h.samples);
                    c.samples.sort_by_key(|x| x.ts); // stable: the hot copy follows
                    dedup_keep_last(&mut c.samples);
                    each(c)
                }
                None => each(h),
            }
        })?;
        cold.try_for_each(each)
    }

    /// The hot store's newest samples when the range lies above the
    /// watermark (an instant query's usual window), the cold tier's when it
    /// lies below. Across it, a series' newest sample is its hot one when it
    /// has one (hot's range follows cold's), else its cold one.
    fn select_newest(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
        each: &mut dyn FnMut(SeriesData) -> Result<(), ReadError>,
    ) -> Result<(), ReadError> {
        let (cold_range, hot_range) = self.split(tenant, range);
        let hot_empty = hot_range.start > hot_range.end;
        let cold_range = match cold_range {
            None if hot_empty => return Ok(()),
            None => return self.hot.select_newest(tenant, matchers, hot_range, each),
            Some(r) if hot_empty => return self.cold.select_newest(tenant, matchers, r, each),
            Some(r) => r,
        };
        let mut cold = Vec::new();
        self.cold.select_newest(tenant, matchers, cold_range, &mut |s| {
            cold.push(s);
            Ok(())
        })?;
        let mut cold = merge_series(cold, Vec::new()).into_iter().map(keep_newest).peekable();
        self.hot.select_newest(tenant, matchers, hot_range, &mut |h: SeriesData| {
            while let Some(c) = cold.next_if(|c| c.labels < h.labels) {
                each(c)?;
            }
            cold.next_if(|c| c.labels == h.labels);
            each(h)
        })?;
        cold.try_for_each(each)
    }

    /// Rollups come from cold for the windows that end below the watermark
    /// (every sample of such a window is in cold, and every bucket under the
    /// watermark committed its rollup rows before the watermark moved); the
    /// windows after `covered_end` are the caller's to aggregate from raw
    /// samples. No watermark, or no complete window: `None`.
    fn select_rollup(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        width_ms: i64,
        ends: TimeRange,
    ) -> Result<Option<RollupData>, ReadError> {
        let Some(covered_end) = self.rollup_covered_end(tenant, width_ms, ends) else { return Ok(None) };
        if let Some(id) = strata_cold_tier::group_of(matchers) {
            // Group rows come only from the group table: no raw or per-series fallback here.
            return self.select_group_rollup(tenant, id, matchers, width_ms, TimeRange::new(ends.start, covered_end));
        }
        let cold = self.cold.select_rollup(tenant, matchers, width_ms, TimeRange::new(ends.start, covered_end))?;
        Ok(cold.map(|mut d| {
            d.covered_end = d.covered_end.min(covered_end);
            d
        }))
    }

    /// [`FederatedReadStore::select_rollup`]'s windows, from the cold
    /// store's grid read where it has one (group rollups: per series).
    fn select_rollup_grid(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        width_ms: i64,
        ends: TimeRange,
        fields: RollupFields,
    ) -> Result<Option<RollupAnswer>, ReadError> {
        if strata_cold_tier::group_of(matchers).is_some() {
            return Ok(self.select_rollup(tenant, matchers, width_ms, ends)?.map(RollupAnswer::Series));
        }
        let Some(covered_end) = self.rollup_covered_end(tenant, width_ms, ends) else { return Ok(None) };
        let cold = self.cold.select_rollup_grid(
            tenant,
            matchers,
            width_ms,
            TimeRange::new(ends.start, covered_end),
            fields,
        )?;
        Ok(cold.map(|answer| match answer {
            RollupAnswer::Series(mut d) => {
                d.covered_end = d.covered_end.min(covered_end);
                RollupAnswer::Series(d)
            }
            RollupAnswer::Grid(mut g) => {
                g.covered_end = g.covered_end.min(covered_end);
                RollupAnswer::Grid(g)
            }
        }))
    }

    fn series(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Result<Vec<Labels>, ReadError> {
        let (cold_range, hot_range) = self.split(tenant, range);
        let mut out = match cold_range {
            Some(r) => self.cold.series(tenant, matchers, r)?,
            None => Vec::new(),
        };
        if hot_range.start <= hot_range.end {
            out.extend(self.hot.series(tenant, matchers, hot_range)?);
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
