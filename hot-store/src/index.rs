//! The series index: every series the store holds (memtable or segments),
//! keyed per tenant, with the min/max timestamp of its samples.
//!
//! ```text
//!  tenant ──► TenantSeries ─┬─ by_id:    SeriesId ──► SeriesRef   (the first label set seen with that id)
//!                           └─ overflow: Labels   ──► SeriesRef   (later label sets whose id collided)
//!  SeriesRef ──► SeriesEntry { key: (tenant, id, labels), min_ts, max_ts }
//! ```
//!
//! A [`SeriesRef`] is a dense in-process handle, never persisted. Two label
//! sets never share a `SeriesRef`, even when their 64-bit ids collide: a
//! lookup by id compares labels and falls back to the overflow map.
//! Series are never removed (no retention in this version).

use std::collections::HashMap;
use std::sync::Arc;

use strata_schemas::{Labels, SeriesId, TenantId};

/// Dense in-memory handle of one series.
pub(crate) type SeriesRef = u32;

/// The identity of a series: tenant, id and labels. Ordered like segment blocks.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SeriesKey {
    pub(crate) tenant: TenantId,
    pub(crate) id: SeriesId,
    pub(crate) labels: Labels,
}

/// One indexed series.
#[derive(Debug)]
pub(crate) struct SeriesEntry {
    pub(crate) key: Arc<SeriesKey>,
    /// Smallest timestamp of any sample of the series (memtable or segment).
    pub(crate) min_ts: i64,
    /// Largest timestamp of any sample of the series.
    pub(crate) max_ts: i64,
}

#[derive(Debug, Default)]
struct TenantSeries {
    by_id: HashMap<SeriesId, SeriesRef>,
    overflow: HashMap<Labels, SeriesRef>,
    all: Vec<SeriesRef>,
}

/// All series of all tenants.
#[derive(Debug, Default)]
pub(crate) struct SeriesIndex {
    entries: Vec<SeriesEntry>,
    tenants: HashMap<TenantId, TenantSeries>,
    collisions: usize,
}

impl SeriesIndex {
    /// The handle of `(tenant, id, labels)`, creating the series if new.
    pub(crate) fn resolve(&mut self, tenant: &TenantId, id: SeriesId, labels: &Labels) -> SeriesRef {
        let next = self.entries.len() as SeriesRef;
        let ts = match self.tenants.get_mut(tenant) {
            Some(ts) => ts,
            None => self.tenants.entry(tenant.clone()).or_default(),
        };
        let existing = match ts.by_id.get(&id) {
            None => {
                ts.by_id.insert(id, next);
                None
            }
            Some(&r) if self.entries.get(r as usize).is_some_and(|e| &e.key.labels == labels) => Some(r),
            Some(_) => match ts.overflow.get(labels) {
                Some(&r) => Some(r),
                None => {
                    tracing::warn!(%tenant, series_id = id.0, %labels, "series id collision; keeping label sets apart");
                    ts.overflow.insert(labels.clone(), next);
                    self.collisions += 1;
                    None
                }
            },
        };
        if let Some(r) = existing {
            return r;
        }
        ts.all.push(next);
        let key = Arc::new(SeriesKey { tenant: tenant.clone(), id, labels: labels.clone() });
        self.entries.push(SeriesEntry { key, min_ts: i64::MAX, max_ts: i64::MIN });
        next
    }

    /// Widens the series' time range to include `[min, max]`.
    pub(crate) fn extend_range(&mut self, r: SeriesRef, min: i64, max: i64) {
        if let Some(e) = self.entries.get_mut(r as usize) {
            e.min_ts = e.min_ts.min(min);
            e.max_ts = e.max_ts.max(max);
        }
    }

    /// The entry of a handle returned by [`SeriesIndex::resolve`].
    pub(crate) fn get(&self, r: SeriesRef) -> Option<&SeriesEntry> {
        self.entries.get(r as usize)
    }

    /// Handles of every series of `tenant`.
    pub(crate) fn tenant_series(&self, tenant: &TenantId) -> &[SeriesRef] {
        self.tenants.get(tenant).map_or(&[], |t| t.all.as_slice())
    }

    /// Number of series across tenants.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Number of label sets kept apart because their id collided.
    pub(crate) fn collisions(&self) -> usize {
        self.collisions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TenantId {
        TenantId::new(s).unwrap()
    }

    #[test]
    fn same_labels_resolve_to_the_same_series() {
        let mut idx = SeriesIndex::default();
        let l = Labels::from_pairs([("__name__", "m")]);
        let a = idx.resolve(&t("a"), SeriesId(1), &l);
        assert_eq!(idx.resolve(&t("a"), SeriesId(1), &l), a);
        assert_eq!(idx.len(), 1);
    }

    #[test]
    fn colliding_ids_never_merge_label_sets() {
        let mut idx = SeriesIndex::default();
        let l1 = Labels::from_pairs([("__name__", "m"), ("x", "1")]);
        let l2 = Labels::from_pairs([("__name__", "m"), ("x", "2")]);
        let a = idx.resolve(&t("a"), SeriesId(7), &l1);
        let b = idx.resolve(&t("a"), SeriesId(7), &l2);
        assert_ne!(a, b);
        assert_eq!(idx.resolve(&t("a"), SeriesId(7), &l2), b);
        assert_eq!(idx.resolve(&t("a"), SeriesId(7), &l1), a);
        assert_eq!(idx.collisions(), 1);
        assert_eq!(idx.get(b).unwrap().key.labels, l2);
    }

    #[test]
    fn tenants_are_kept_apart() {
        let mut idx = SeriesIndex::default();
        let l = Labels::from_pairs([("__name__", "m")]);
        let a = idx.resolve(&t("a"), SeriesId(1), &l);
        let b = idx.resolve(&t("b"), SeriesId(1), &l);
        assert_ne!(a, b);
        assert_eq!(idx.tenant_series(&t("a")), &[a]);
        assert_eq!(idx.tenant_series(&t("b")), &[b]);
        assert!(idx.tenant_series(&t("c")).is_empty());
    }

    #[test]
    fn extend_range_tracks_min_and_max() {
        let mut idx = SeriesIndex::default();
        let r = idx.resolve(&t("a"), SeriesId(1), &Labels::default());
        idx.extend_range(r, 10, 20);
        idx.extend_range(r, 5, 7);
        let e = idx.get(r).unwrap();
        assert_eq!((e.min_ts, e.max_ts), (5, 20));
    }
}
