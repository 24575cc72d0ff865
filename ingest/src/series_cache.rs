//! A cache from series id to label set, shared by all write requests.
//!
//! IoT devices send the same series again and again. Building a series'
//! [`Labels`] costs a dozen allocations; computing its id costs one hash over
//! borrowed strings. The write path computes the id from the parsed line,
//! looks the labels up here, checks they are the line's (so an id collision
//! can never attach a sample to the wrong label set), and only builds labels
//! for series it has not seen. Label sets and their strings are shared
//! ([`Str`]): the fields of one line share its tag strings, and label and
//! metric names come from one small table of names.
//!
//! In front of it sits a cache of *line shapes*: the exact bytes of a line's
//! measurement and tags map to the series of each of its fields, so a known
//! device's line costs one hash and one lookup for all its fields.
//!
//! The cache is sharded by id to keep lock hold times short under
//! concurrent writes, and bounded: a shard that reaches its share of the
//! capacity is cleared (cheap, rare, and only costs re-building labels).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use strata_schemas::{Labels, SeriesId, Str};

const SHARDS: usize = 64;

/// Series ids are already well-mixed 64-bit hashes: use them as is.
#[derive(Debug, Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Shard = HashMap<u64, Labels, BuildHasherDefault<IdHasher>>;

/// `(field key, series id, labels, metric name length)` of a line shape's
/// field (the length is kept so the limit check does not touch the labels).
pub(crate) type ShapeField = (Box<str>, SeriesId, Labels, usize);

/// The series of one line shape: a measurement with a tag set (in the
/// order the client sends them), and the series each of its fields maps to.
#[derive(Debug)]
pub(crate) struct LineShape {
    /// The exact key the shape was stored under (checked on every hit).
    pub(crate) key: Box<[u8]>,
    /// Device hash of the line's device label, if it has one.
    pub(crate) device_hash: Option<u64>,
    /// Every numeric field seen so far, in the line's field order.
    pub(crate) fields: Box<[ShapeField]>,
}

type LineShard = HashMap<u64, Arc<LineShape>, BuildHasherDefault<IdHasher>>;

/// Bounded, sharded series id → labels cache, plus line shape → series.
#[derive(Debug)]
pub struct SeriesCache {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    lines: Box<[Mutex<LineShard>]>,
    lines_per_shard: usize,
    /// Label names and metric names (few distinct ones), shared by every
    /// label set that uses them.
    names: Mutex<HashMap<Str, ()>>,
    /// Tag values, shared the same way: a farm, region or kind value is one
    /// string across all its devices' label sets, and so the same string the
    /// hot store's index holds (its label comparisons then stop at the
    /// address instead of comparing text).
    values: Mutex<HashMap<Str, ()>>,
}

/// Most distinct names kept shared; past it the table starts over.
const MAX_NAMES: usize = 4096;
/// Most distinct tag values kept shared (device ids among them); past it the
/// table starts over.
const MAX_VALUES: usize = 1 << 20;

impl SeriesCache {
    /// A cache holding up to about `capacity` series (0 disables it).
    pub fn new(capacity: usize) -> Self {
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect();
        let lines = (0..SHARDS).map(|_| Mutex::new(LineShard::default())).collect();
        // A line shape serves several series (one per field).
        let lines_per_shard = (capacity / 4).div_ceil(SHARDS);
        let (names, values) = (Mutex::default(), Mutex::default());
        Self { shards, per_shard: capacity.div_ceil(SHARDS), lines, lines_per_shard, names, values }
    }

    /// `name` as a string shared with every other label set using it.
    pub fn name(&self, name: &str) -> Str {
        shared(&self.names, MAX_NAMES, name)
    }

    /// Tag value `value` as a string shared with every other label set using it.
    pub fn value(&self, value: &str) -> Str {
        shared(&self.values, MAX_VALUES, value)
    }

    /// The shape stored under `hash`, if its key is exactly `key`.
    pub(crate) fn line(&self, hash: u64, key: &[u8]) -> Option<Arc<LineShape>> {
        if self.lines_per_shard == 0 {
            return None;
        }
        let shard = self.lines[(hash >> 58) as usize % SHARDS].lock();
        shard.get(&hash).filter(|s| *s.key == *key).cloned()
    }

    /// Stores (or replaces) the shape under `hash`.
    pub(crate) fn insert_line(&self, hash: u64, shape: LineShape) {
        if self.lines_per_shard == 0 {
            return;
        }
        let mut shard = self.lines[(hash >> 58) as usize % SHARDS].lock();
        if shard.len() >= self.lines_per_shard {
            shard.clear();
        }
        shard.insert(hash, Arc::new(shape));
    }

    fn shard(&self, id: SeriesId) -> &Mutex<Shard> {
        // The low bits pick the bucket inside a shard; use high bits here.
        &self.shards[(id.0 >> 58) as usize % SHARDS]
    }

    /// The cached labels of `id`, if they satisfy `is_same`.
    pub fn get(&self, id: SeriesId, is_same: impl FnOnce(&Labels) -> bool) -> Option<Labels> {
        if self.per_shard == 0 {
            return None;
        }
        let shard = self.shard(id).lock();
        shard.get(&id.0).filter(|l| is_same(l)).cloned()
    }

    /// Remembers the labels of `id` (replacing a colliding entry).
    pub fn insert(&self, id: SeriesId, labels: Labels) {
        if self.per_shard == 0 {
            return;
        }
        let mut shard = self.shard(id).lock();
        if shard.len() >= self.per_shard {
            shard.clear();
        }
        shard.insert(id.0, labels);
    }

    /// Series currently cached.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `s` from `table` (added when missing; the table starts over at `max`).
fn shared(table: &Mutex<HashMap<Str, ()>>, max: usize, s: &str) -> Str {
    let mut table = table.lock();
    if let Some((k, _)) = table.get_key_value(s) {
        return k.clone();
    }
    if table.len() >= max {
        table.clear();
    }
    let k = Str::from(s);
    table.insert(k.clone(), ());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_only_matching_labels_and_stays_bounded() {
        let cache = SeriesCache::new(128);
        let l = Labels::from_pairs([("__name__", "m")]);
        cache.insert(SeriesId(1), l.clone());
        assert_eq!(cache.get(SeriesId(1), |c| *c == l), Some(l.clone()));
        assert_eq!(cache.get(SeriesId(1), |_| false), None, "a collision never returns foreign labels");
        assert_eq!(cache.get(SeriesId(2), |_| true), None);
        for i in 0..10_000u64 {
            cache.insert(SeriesId(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)), l.clone());
        }
        assert!(cache.len() <= 128 + SHARDS, "{}", cache.len());
    }

    #[test]
    fn zero_capacity_disables_the_cache() {
        let cache = SeriesCache::new(0);
        cache.insert(SeriesId(1), Labels::default());
        assert!(cache.get(SeriesId(1), |_| true).is_none());
    }

    #[test]
    fn names_are_shared_and_the_table_stays_bounded() {
        let cache = SeriesCache::new(16);
        let (a, b) = (cache.name("device"), cache.name("device"));
        assert!(a.ptr_eq(&b));
        let (a, b) = (cache.value("eu"), cache.value("eu"));
        assert!(a.ptr_eq(&b), "tag values are shared too");
        for i in 0..2 * MAX_NAMES {
            assert_eq!(cache.name(&format!("n{i}")).as_str(), format!("n{i}"));
        }
        assert!(cache.names.lock().len() <= MAX_NAMES);
    }
}
