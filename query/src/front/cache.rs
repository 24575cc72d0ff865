//! The byte-bounded result cache of range-query parts, with probabilistic
//! early expiry (XFetch) and invalidation by tenant, time span and metric.
//!
//! An entry holds the points of one UTC day of one query for a run of
//! consecutive grid steps (`first..=last`), keyed by tenant, normalized
//! query text, step, the grid's phase (`start mod step`), the day and the
//! request options that can change an answer. Least recently used entries
//! are evicted past the byte bound. An entry is dropped when a write or
//! delete of its tenant meets the span its steps read ([`super::split::reads`])
//! and, when the entry knows its metric names, names one of them.

use super::split::Span;
use crate::value::RangeSeries;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use strata_schemas::TenantId;

/// What identifies a cached part within a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    /// Normalized query text.
    pub query: String,
    /// Step (ms).
    pub step: i64,
    /// `start mod step`: grids of other phases never share points.
    pub phase: i64,
    /// UTC day number.
    pub day: i64,
    /// Request options that may change the answer (e.g. `partial_response`).
    pub options: String,
}

/// A cached run of steps.
#[derive(Debug, Clone)]
pub struct Entry {
    /// First step held.
    pub first: i64,
    /// Last step held.
    pub last: i64,
    /// The points of steps `first..=last`, series sorted by labels.
    pub series: Arc<Vec<RangeSeries>>,
    /// What the steps read.
    pub span: Span,
    /// Metric names read (`None`: any).
    pub names: Option<Arc<BTreeSet<String>>>,
    /// The tenant's delete-request epoch when computed.
    pub epoch: u64,
    /// When the oldest of its points was computed (front clock, ms).
    pub computed_at: i64,
    /// How long computing it took (ms, at least 1): XFetch's delta.
    pub delta_ms: f64,
    /// Estimated heap bytes.
    pub bytes: usize,
}

/// Estimated heap bytes of a list of series.
pub fn size_of(series: &[RangeSeries]) -> usize {
    series
        .iter()
        .map(|s| {
            64 + s.samples.len() * std::mem::size_of::<strata_schemas::Sample>()
                + s.labels.iter().map(|l| l.name.len() + l.value.len() + 32).sum::<usize>()
        })
        .sum::<usize>()
        + 128
}

#[derive(Debug, Default)]
struct TenantEntries {
    entries: HashMap<Key, (Entry, u64)>,
    /// Largest `span.hi` of the entries: a write after it touches none.
    max_hi: i64,
}

/// The cache. Not synchronised: the front holds it under a mutex.
#[derive(Debug)]
pub struct Cache {
    tenants: HashMap<TenantId, TenantEntries>,
    lru: BTreeMap<u64, (TenantId, Key)>,
    tick: u64,
    bytes: usize,
    max_bytes: usize,
    /// Entries evicted for room.
    pub evictions: u64,
    /// Entries dropped by writes, deletes or purges.
    pub invalidations: u64,
}

/// Outcome of [`Cache::get`].
#[derive(Debug)]
pub enum Lookup {
    /// The entry (it may cover less than asked).
    Found(Entry),
    /// Nothing usable: absent, of another delete epoch, or expiring early.
    Miss,
}

impl Cache {
    /// An empty cache of at most `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            tenants: HashMap::new(),
            lru: BTreeMap::new(),
            tick: 0,
            bytes: 0,
            max_bytes,
            evictions: 0,
            invalidations: 0,
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.lru.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.lru.is_empty()
    }

    /// True when `tenant` has an entry.
    pub fn has_tenant(&self, tenant: &TenantId) -> bool {
        self.tenants.contains_key(tenant)
    }

    /// The entry of `key`, unless its delete epoch is not `epoch` (dropped)
    /// or XFetch decides to recompute it early: with `u` uniform in (0, 1],
    /// an entry expires once `now - delta·beta·ln(u) ≥ computed_at + ttl`.
    #[allow(clippy::too_many_arguments)]
    pub fn get(&mut self, tenant: &TenantId, key: &Key, epoch: u64, now: i64, ttl: i64, beta: f64, u: f64) -> Lookup {
        let Some(t) = self.tenants.get_mut(tenant) else { return Lookup::Miss };
        let Some((e, tick)) = t.entries.get_mut(key) else { return Lookup::Miss };
        let early = -(e.delta_ms * beta * u.max(f64::MIN_POSITIVE).ln());
        if e.epoch != epoch || now as f64 + early >= (e.computed_at.saturating_add(ttl)) as f64 {
            self.remove(tenant, key);
            return Lookup::Miss;
        }
        self.tick += 1;
        self.lru.remove(tick);
        *tick = self.tick;
        self.lru.insert(self.tick, (tenant.clone(), key.clone()));
        Lookup::Found(e.clone())
    }

    /// Stores `entry` (replacing the key's), evicting least recently used
    /// entries past the byte bound; an entry larger than the bound is not kept.
    pub fn put(&mut self, tenant: &TenantId, key: Key, entry: Entry) {
        self.remove(tenant, &key);
        if entry.bytes > self.max_bytes {
            return;
        }
        while self.bytes + entry.bytes > self.max_bytes {
            let Some((_, (t, k))) = self.lru.pop_first() else { break };
            self.remove_unindexed(&t, &k);
            self.evictions += 1;
        }
        self.tick += 1;
        self.bytes += entry.bytes;
        self.lru.insert(self.tick, (tenant.clone(), key.clone()));
        let t = self.tenants.entry(tenant.clone()).or_default();
        if t.entries.is_empty() {
            t.max_hi = i64::MIN;
        }
        t.max_hi = t.max_hi.max(entry.span.hi);
        t.entries.insert(key, (entry, self.tick));
    }

    /// Drops the entries of `tenant` whose span meets `[lo, hi]` and which
    /// read one of `names` (`None`: any metric). Returns how many.
    pub fn invalidate(&mut self, tenant: &TenantId, lo: i64, hi: i64, names: Option<&BTreeSet<String>>) -> usize {
        let Some(t) = self.tenants.get(tenant) else { return 0 };
        if lo > t.max_hi {
            return 0;
        }
        let doomed: Vec<Key> = t
            .entries
            .iter()
            .filter(|(_, (e, _))| e.span.overlaps(lo, hi) && touches(e.names.as_deref(), names))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &doomed {
            self.remove(tenant, k);
        }
        self.invalidations += doomed.len() as u64;
        doomed.len()
    }

    fn remove(&mut self, tenant: &TenantId, key: &Key) {
        let Some(t) = self.tenants.get(tenant) else { return };
        let Some((_, tick)) = t.entries.get(key) else { return };
        self.lru.remove(&tick.clone());
        self.remove_unindexed(tenant, key);
    }

    fn remove_unindexed(&mut self, tenant: &TenantId, key: &Key) {
        let Some(t) = self.tenants.get_mut(tenant) else { return };
        if let Some((e, _)) = t.entries.remove(key) {
            self.bytes -= e.bytes;
        }
        if t.entries.is_empty() {
            self.tenants.remove(tenant);
        }
    }
}

/// True when a write of `written` metrics may change an entry reading `read`.
pub fn touches(read: Option<&BTreeSet<String>>, written: Option<&BTreeSet<String>>) -> bool {
    match (read, written) {
        (Some(r), Some(w)) => r.iter().any(|n| w.contains(n)),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_schemas::{Labels, Sample};

    fn tenant(s: &str) -> TenantId {
        TenantId::new(s).unwrap()
    }

    fn key(q: &str, day: i64) -> Key {
        Key { query: q.into(), step: 1000, phase: 0, day, options: String::new() }
    }

    fn entry(lo: i64, hi: i64, names: Option<&[&str]>, points: usize) -> Entry {
        let series = vec![RangeSeries {
            labels: Labels::from_pairs([("__name__", "m")]),
            samples: (0..points).map(|i| Sample::new(i as i64, 1.0)).collect(),
        }];
        let bytes = size_of(&series);
        Entry {
            first: 0,
            last: 0,
            series: Arc::new(series),
            span: Span { lo, hi },
            names: names.map(|n| Arc::new(n.iter().map(|s| s.to_string()).collect())),
            epoch: 0,
            computed_at: 0,
            delta_ms: 1.0,
            bytes,
        }
    }

    fn found(c: &mut Cache, t: &TenantId, k: &Key) -> bool {
        matches!(c.get(t, k, 0, 0, 1_000_000, 1.0, 0.5), Lookup::Found(_))
    }

    #[test]
    fn invalidation_is_per_tenant_span_and_metric() {
        let (a, b) = (tenant("a"), tenant("b"));
        let mut c = Cache::new(1 << 20);
        c.put(&a, key("q1", 1), entry(100, 200, Some(&["m"]), 1));
        c.put(&a, key("q2", 1), entry(300, 400, None, 1));
        c.put(&b, key("q1", 1), entry(100, 200, Some(&["m"]), 1));
        let other: BTreeSet<String> = ["n".to_owned()].into();
        assert_eq!(c.invalidate(&a, 150, 150, Some(&other)), 0, "another metric");
        assert_eq!(c.invalidate(&a, 201, 299, None), 0, "between the spans");
        assert_eq!(c.invalidate(&a, 500, 600, None), 0, "after every span");
        assert_eq!(c.invalidate(&a, 200, 300, None), 2, "both ends are inclusive");
        assert!(found(&mut c, &b, &key("q1", 1)), "never across tenants");
        assert!(!found(&mut c, &a, &key("q1", 1)));
        assert_eq!(c.invalidations, 2);
        c.put(&a, key("q2", 1), entry(300, 400, None, 1));
        let m: BTreeSet<String> = ["m".to_owned()].into();
        assert_eq!(c.invalidate(&a, 0, 1000, Some(&m)), 1, "an entry reading any metric is touched by all");
    }

    #[test]
    fn lru_keeps_the_byte_bound() {
        let t = tenant("a");
        let one = entry(0, 1, None, 100).bytes;
        let mut c = Cache::new(one * 3);
        for d in 0..3 {
            c.put(&t, key("q", d), entry(0, 1, None, 100));
        }
        assert!(found(&mut c, &t, &key("q", 0)), "touch day 0: day 1 is now the oldest");
        c.put(&t, key("q", 3), entry(0, 1, None, 100));
        assert!(c.bytes() <= one * 3);
        assert_eq!(c.evictions, 1);
        assert!(!found(&mut c, &t, &key("q", 1)));
        assert!(found(&mut c, &t, &key("q", 0)) && found(&mut c, &t, &key("q", 3)));
        c.put(&t, key("big", 0), entry(0, 1, None, 10_000));
        assert!(!found(&mut c, &t, &key("big", 0)), "larger than the bound: not kept");
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn xfetch_expires_early_with_small_draws_and_epochs_drop() {
        let t = tenant("a");
        let mut c = Cache::new(1 << 20);
        let mut e = entry(0, 1, None, 1);
        e.delta_ms = 1000.0;
        c.put(&t, key("q", 0), e.clone());
        // ttl 10 s, now 8 s: u = 0.9 adds ~105 ms (kept), u = 1e-3 adds ~6.9 s (recomputed).
        assert!(matches!(c.get(&t, &key("q", 0), 0, 8_000, 10_000, 1.0, 0.9), Lookup::Found(_)));
        assert!(matches!(c.get(&t, &key("q", 0), 0, 8_000, 10_000, 1.0, 1e-3), Lookup::Miss));
        c.put(&t, key("q", 0), e.clone());
        assert!(matches!(c.get(&t, &key("q", 0), 0, 10_000, 10_000, 1.0, 1.0), Lookup::Miss), "past the ttl");
        c.put(&t, key("q", 0), e);
        assert!(matches!(c.get(&t, &key("q", 0), 7, 0, 10_000, 1.0, 1.0), Lookup::Miss), "another delete epoch");
        assert_eq!(c.bytes(), 0);
    }
}
