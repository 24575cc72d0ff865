//! The series index: every live series of every tenant, with interned label
//! strings and croaring postings per (tenant, label name, label value).
//!
//! ```text
//!  symbols: Str ⇄ u32              every label name and value stored once
//!  tenant ──► TenantIndex ─┬─ by_id:    SeriesId ──► SeriesRef       (first label set seen with that id; an IdTable)
//!                          ├─ overflow: Labels   ──► SeriesRef       (later label sets whose id collided)
//!                          ├─ postings: name sym ──► value sym ──► Bitmap<SeriesRef>
//!                          └─ all:      Bitmap<SeriesRef>
//!  SeriesRef ──► SeriesEntry { tenant, id, device_hash, labels: [(name sym, value sym)], min_ts, max_ts }
//! ```
//!
//! A [`SeriesRef`] is a dense in-process handle, never persisted. Two label
//! sets never share a `SeriesRef`, even when their 64-bit ids collide: a
//! lookup by id compares labels and falls back to the overflow map.
//!
//! Matchers resolve through the postings ([`SeriesIndex::select`]): a matcher
//! that does not match the empty string is the union of the postings of the
//! values it matches; one that does match the empty string (`x=""`, `x!="v"`,
//! `x=~".*"`, `x!~"v"`) is "all series of the tenant" minus the union of the
//! postings of the values it rejects, which also selects series without the
//! label. Intersections run most selective first.
//!
//! Series are removed ([`SeriesIndex::remove`]) when TTL expiry drops the
//! last data that mentions them; their `SeriesRef` is not reused.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use croaring::Bitmap;
use id_table::IdTable;
use strata_schemas::{Label, Labels, MatchOp, Matcher, SeriesId, Str, TenantId};

/// Dense in-memory handle of one series.
pub(crate) type SeriesRef = u32;

/// A hasher for keys that are already well-mixed 64-bit hashes (series ids)
/// or small dense integers (symbols): one multiply instead of SipHash.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.0 = u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

mod id_table;

pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// Interned strings: each distinct label name or value is stored once.
#[derive(Debug, Default)]
pub(crate) struct Symbols {
    ids: HashMap<Str, u32>,
    strs: Vec<Str>,
}

impl Symbols {
    /// The id of `s`, interning the very string given (not a copy), so
    /// label sets built from the same shared strings compare by address.
    pub(crate) fn intern(&mut self, s: &Str) -> u32 {
        if let Some(&id) = self.ids.get(s.as_str()) {
            return id;
        }
        let id = self.strs.len() as u32;
        self.strs.push(s.clone());
        self.ids.insert(s.clone(), id);
        id
    }

    pub(crate) fn lookup(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    /// Every interned string, indexed by symbol id (a cheap snapshot: the
    /// strings are shared).
    pub(crate) fn snapshot(&self) -> Arc<[Str]> {
        self.strs.iter().cloned().collect()
    }

    pub(crate) fn get(&self, id: u32) -> &Str {
        static EMPTY: std::sync::LazyLock<Str> = std::sync::LazyLock::new(Str::default);
        self.strs.get(id as usize).unwrap_or(&EMPTY)
    }
}

/// One indexed series.
#[derive(Debug)]
pub(crate) struct SeriesEntry {
    /// Index into [`SeriesIndex::tenant_ids`].
    pub(crate) tenant: u32,
    pub(crate) id: SeriesId,
    pub(crate) device_hash: u64,
    /// `(name, value)` symbols, sorted by name (canonical label order). Empty once removed.
    pub(crate) labels: Box<[(u32, u32)]>,
    /// [`Labels::addr`] of the label set the series was last resolved with
    /// (0: none yet). The ingest path hands the same shared set for a series
    /// request after request, so a lookup that finds this address under the
    /// series' id skips comparing the label text. (A set freed and another
    /// allocated at its address would also need the same 64-bit id as this
    /// series — a hash collision — to be taken for it.)
    pub(crate) labels_addr: usize,
    /// Smallest timestamp of any sample of the series (memtable or segment).
    pub(crate) min_ts: i64,
    /// Largest timestamp of any sample of the series.
    pub(crate) max_ts: i64,
    pub(crate) live: bool,
}

/// Label name symbol → label value symbol → the series with that pair.
pub(crate) type Postings = IdMap<u32, IdMap<u32, Bitmap>>;

#[derive(Debug, Default)]
struct TenantIndex {
    by_id: IdTable,
    overflow: HashMap<Labels, SeriesRef>,
    postings: Postings,
    all: Bitmap,
}

/// All series of all tenants.
#[derive(Debug, Default)]
pub(crate) struct SeriesIndex {
    entries: Vec<SeriesEntry>,
    tenant_ids: Vec<TenantId>,
    /// Tenant → its slot in `tenant_ids` and `by_slot`.
    tenants: HashMap<TenantId, u32>,
    by_slot: Vec<TenantIndex>,
    pub(crate) symbols: Symbols,
    collisions: usize,
    live: usize,
    /// Series removed so far: a handle found by [`SeriesIndex::lookup_in`]
    /// is only valid while this has not changed.
    removals: u64,
}

/// A borrowed label pair, from a [`Labels`] or from a segment's series table.
pub(crate) trait LabelPairs {
    fn pairs(&self) -> impl Iterator<Item = (&Str, &Str)>;
    /// [`Labels::addr`] of a shared label set; 0 for anything else.
    fn addr(&self) -> usize {
        0
    }
    fn to_labels(&self) -> Labels {
        Labels::from_sorted(self.pairs().map(|(n, v)| Label::new(n, v)).collect())
    }
}

impl LabelPairs for Labels {
    fn pairs(&self) -> impl Iterator<Item = (&Str, &Str)> {
        self.iter().map(|l| (&l.name, &l.value))
    }
    fn addr(&self) -> usize {
        Labels::addr(self)
    }
    fn to_labels(&self) -> Labels {
        self.clone()
    }
}

impl LabelPairs for [(Str, Str)] {
    fn pairs(&self) -> impl Iterator<Item = (&Str, &Str)> {
        self.iter().map(|(n, v)| (n, v))
    }
}

impl SeriesIndex {
    /// The slot of `tenant` (created if new): resolve a batch's series with
    /// [`SeriesIndex::resolve_in`] after one tenant lookup, not one per series.
    pub(crate) fn tenant_slot(&mut self, tenant: &TenantId) -> u32 {
        if let Some(&t) = self.tenants.get(tenant) {
            return t;
        }
        let t = self.tenant_ids.len() as u32;
        self.tenant_ids.push(tenant.clone());
        self.by_slot.push(TenantIndex::default());
        self.tenants.insert(tenant.clone(), t);
        t
    }

    /// The slot of `tenant`, if it has one (no change).
    pub(crate) fn slot_of(&self, tenant: &TenantId) -> Option<u32> {
        self.tenants.get(tenant).copied()
    }

    /// The handle of an existing series with exactly this id and these
    /// labels in `slot`, without changing anything: `None` when
    /// [`SeriesIndex::resolve_in`] would create it (or its id collides).
    /// The handle stays valid while [`SeriesIndex::removals`] is unchanged.
    /// The flag is true when the labels were recognized by address (see
    /// [`SeriesEntry::labels_addr`]); otherwise the caller may remember the
    /// address with [`SeriesIndex::remember_labels_addr`].
    pub(crate) fn lookup_in<L: LabelPairs + ?Sized>(
        &self,
        slot: u32,
        id: SeriesId,
        labels: &L,
    ) -> Option<(SeriesRef, bool)> {
        let r = self.by_slot.get(slot as usize)?.by_id.get(id)?;
        let addr = labels.addr();
        if addr != 0 && self.entries.get(r as usize).is_some_and(|e| e.labels_addr == addr) {
            return Some((r, true));
        }
        same_labels(&self.entries, &self.symbols, r, labels).then_some((r, false))
    }

    /// Asks the CPU to load what [`SeriesIndex::lookup_in`] of `id` will
    /// read first (see [`IdTable::prefetch`]).
    #[inline]
    pub(crate) fn prefetch_id(&self, slot: u32, id: SeriesId) {
        if let Some(t) = self.by_slot.get(slot as usize) {
            t.by_id.prefetch(id);
        }
    }

    /// Records `addr` as the [`Labels::addr`] of series `r`'s label set
    /// (after the labels were compared equal).
    pub(crate) fn remember_labels_addr(&mut self, r: SeriesRef, addr: usize) {
        if let Some(e) = self.entries.get_mut(r as usize) {
            e.labels_addr = addr;
        }
    }

    /// How many series have been removed so far (see [`SeriesIndex::lookup_in`]).
    pub(crate) fn removals(&self) -> u64 {
        self.removals
    }

    /// The handle of `(tenant, id, labels)`, creating the series if new.
    pub(crate) fn resolve<L: LabelPairs + ?Sized>(
        &mut self,
        tenant: &TenantId,
        id: SeriesId,
        device_hash: u64,
        labels: &L,
    ) -> SeriesRef {
        let slot = self.tenant_slot(tenant);
        self.resolve_in(slot, id, device_hash, labels)
    }

    /// [`SeriesIndex::resolve`] for the tenant in `slot` (from [`SeriesIndex::tenant_slot`]).
    pub(crate) fn resolve_in<L: LabelPairs + ?Sized>(
        &mut self,
        slot: u32,
        id: SeriesId,
        device_hash: u64,
        labels: &L,
    ) -> SeriesRef {
        let next = self.entries.len() as SeriesRef;
        let Some(ts) = self.by_slot.get_mut(slot as usize) else { return next };
        match ts.by_id.get(id) {
            Some(r) if same_labels(&self.entries, &self.symbols, r, labels) => return r,
            Some(_) => {
                let owned = labels.to_labels();
                if let Some(&r) = ts.overflow.get(&owned) {
                    return r;
                }
                let tenant = self.tenant_ids.get(slot as usize);
                tracing::warn!(?tenant, series_id = id.0, labels = %owned, "series id collision; keeping label sets apart");
                ts.overflow.insert(owned, next);
                self.collisions += 1;
            }
            None => {
                ts.by_id.insert(id, next);
            }
        }
        let mut syms = Vec::new();
        for (n, v) in labels.pairs() {
            let (n, v) = (self.symbols.intern(n), self.symbols.intern(v));
            syms.push((n, v));
            ts.postings.entry(n).or_default().entry(v).or_default().add(next);
        }
        ts.all.add(next);
        self.entries.push(SeriesEntry {
            tenant: slot,
            id,
            device_hash,
            labels: syms.into_boxed_slice(),
            labels_addr: labels.addr(),
            min_ts: i64::MAX,
            max_ts: i64::MIN,
            live: true,
        });
        self.live += 1;
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
        self.entries.get(r as usize).filter(|e| e.live)
    }

    /// The tenant of an entry.
    pub(crate) fn tenant_of(&self, e: &SeriesEntry) -> Option<&TenantId> {
        self.tenant_ids.get(e.tenant as usize)
    }

    /// The labels of an entry as owned [`Labels`].
    pub(crate) fn labels(&self, e: &SeriesEntry) -> Labels {
        let pairs = e.labels.iter().map(|&(n, v)| Label::new(self.symbols.get(n).clone(), self.symbols.get(v).clone()));
        Labels::from_sorted_iter(pairs)
    }

    /// Live series of `tenant`.
    pub(crate) fn tenant_series(&self, tenant: &TenantId) -> u64 {
        self.tenant(tenant).map_or(0, |t| t.all.cardinality())
    }

    /// True when `tenant` has a live series with exactly these id and labels.
    pub(crate) fn contains(&self, tenant: &TenantId, id: SeriesId, labels: &Labels) -> bool {
        let Some(t) = self.tenant(tenant) else { return false };
        match t.by_id.get(id) {
            Some(r) if same_labels(&self.entries, &self.symbols, r, labels) => true,
            Some(_) => t.overflow.contains_key(labels),
            None => false,
        }
    }

    /// Removes a series (no data of it is left anywhere).
    pub(crate) fn remove(&mut self, r: SeriesRef) {
        let Some(e) = self.entries.get_mut(r as usize).filter(|e| e.live) else { return };
        e.live = false;
        self.removals += 1;
        let labels = std::mem::take(&mut e.labels);
        let (id, tenant) = (e.id, e.tenant);
        self.live -= 1;
        let Some(ts) = self.by_slot.get_mut(tenant as usize) else { return };
        ts.all.remove(r);
        for &(n, v) in labels.iter() {
            if let Some(values) = ts.postings.get_mut(&n) {
                if let Some(b) = values.get_mut(&v) {
                    b.remove(r);
                    if b.is_empty() {
                        values.remove(&v);
                    }
                }
                if values.is_empty() {
                    ts.postings.remove(&n);
                }
            }
        }
        if ts.by_id.get(id) == Some(r) {
            ts.by_id.remove(id);
            // A colliding series kept in the overflow takes over the id, so
            // lookups by id keep finding it.
            let entries = &self.entries;
            let heir = ts.overflow.iter().find(|&(_, &x)| entries.get(x as usize).is_some_and(|e| e.id == id));
            if let Some((labels, &x)) = heir.map(|(l, x)| (l.clone(), x)) {
                ts.overflow.remove(&labels);
                ts.by_id.insert(id, x);
            }
        } else {
            ts.overflow.retain(|_, x| *x != r);
        }
    }

    /// Series of `tenant` whose labels satisfy every matcher, via the postings.
    ///
    /// Matchers that do not match "" select from the postings directly and
    /// run first, smallest result first; equality matchers intersect their
    /// postings in place without copying them (a one-device query at a
    /// million series would otherwise copy the metric name's postings, ~100k
    /// series, on every call). Matchers that match "" then subtract what
    /// they reject.
    pub(crate) fn select(&self, tenant: &TenantId, matchers: &[Matcher]) -> Bitmap {
        let Some(t) = self.tenant(tenant) else { return Bitmap::new() };
        let mut borrowed: Vec<&Bitmap> = Vec::new();
        let mut owned: Vec<Bitmap> = Vec::new();
        for m in matchers.iter().filter(|m| !m.matches_empty()) {
            if matches!(m.op, MatchOp::Equal) {
                match self.equal_postings(t, m) {
                    Some(b) => borrowed.push(b),
                    None => return Bitmap::new(),
                }
            } else {
                let b = self.accepted(t, m);
                if b.is_empty() {
                    return b;
                }
                owned.push(b);
            }
        }
        borrowed.sort_by_key(|b| b.cardinality());
        owned.sort_by_key(Bitmap::cardinality);
        let mut acc = match (borrowed.first(), owned.first()) {
            (Some(b), Some(o)) if b.cardinality() < o.cardinality() => Some(borrowed.remove(0).clone()),
            (_, Some(_)) => Some(owned.remove(0)),
            (Some(_), None) => Some(borrowed.remove(0).clone()),
            (None, None) => None,
        };
        if let Some(a) = acc.as_mut() {
            for b in borrowed.iter().copied().chain(owned.iter()) {
                a.and_inplace(b);
                if a.is_empty() {
                    return Bitmap::new();
                }
            }
        }
        for m in matchers.iter().filter(|m| m.matches_empty()) {
            let rejected = self.rejected(t, m);
            let base = acc.get_or_insert_with(|| t.all.clone());
            base.andnot_inplace(&rejected);
            if base.is_empty() {
                return Bitmap::new();
            }
        }
        acc.unwrap_or_else(|| t.all.clone())
    }

    /// The postings of an equality matcher's value (`None`: no series has it).
    fn equal_postings<'a>(&'a self, t: &'a TenantIndex, m: &Matcher) -> Option<&'a Bitmap> {
        let values = t.postings.get(&self.symbols.lookup(&m.name)?)?;
        values.get(&self.symbols.lookup(&m.value)?)
    }

    /// Union of the postings of the values `m` accepts (for matchers that reject "").
    fn accepted(&self, t: &TenantIndex, m: &Matcher) -> Bitmap {
        let Some(values) = self.symbols.lookup(&m.name).and_then(|n| t.postings.get(&n)) else { return Bitmap::new() };
        let lookup = |v: &str| self.symbols.lookup(v).and_then(|v| values.get(&v));
        match &m.op {
            MatchOp::Equal => lookup(&m.value).cloned().unwrap_or_default(),
            MatchOp::Regex(_) if literal_alternatives(&m.value).is_some() => {
                let alts = literal_alternatives(&m.value).unwrap_or_default();
                let bs: Vec<&Bitmap> = alts.iter().filter_map(|a| lookup(a)).collect();
                Bitmap::fast_or(&bs)
            }
            _ => {
                let bs: Vec<&Bitmap> =
                    values.iter().filter(|(v, _)| m.matches(self.symbols.get(**v))).map(|(_, b)| b).collect();
                Bitmap::fast_or(&bs)
            }
        }
    }

    /// Union of the postings of the values `m` rejects (for matchers that accept "").
    fn rejected(&self, t: &TenantIndex, m: &Matcher) -> Bitmap {
        let Some(values) = self.symbols.lookup(&m.name).and_then(|n| t.postings.get(&n)) else { return Bitmap::new() };
        let lookup = |v: &str| self.symbols.lookup(v).and_then(|v| values.get(&v));
        match &m.op {
            MatchOp::NotEqual => lookup(&m.value).cloned().unwrap_or_default(),
            MatchOp::NotRegex(_) if literal_alternatives(&m.value).is_some() => {
                let alts = literal_alternatives(&m.value).unwrap_or_default();
                let bs: Vec<&Bitmap> = alts.iter().filter_map(|a| lookup(a)).collect();
                Bitmap::fast_or(&bs)
            }
            _ => {
                let bs: Vec<&Bitmap> =
                    values.iter().filter(|(v, _)| !m.matches(self.symbols.get(**v))).map(|(_, b)| b).collect();
                Bitmap::fast_or(&bs)
            }
        }
    }

    /// Label names of `tenant` (from the postings).
    pub(crate) fn label_names(&self, tenant: &TenantId) -> Vec<String> {
        let Some(t) = self.tenant(tenant) else { return Vec::new() };
        t.postings.keys().map(|&n| self.symbols.get(n).to_string()).collect()
    }

    /// Values of label `name` of `tenant`, each with its postings.
    pub(crate) fn label_values(&self, tenant: &TenantId, name: &str) -> Vec<(&str, &Bitmap)> {
        let Some(t) = self.tenant(tenant) else { return Vec::new() };
        let Some(values) = self.symbols.lookup(name).and_then(|n| t.postings.get(&n)) else { return Vec::new() };
        values.iter().map(|(&v, b)| (&**self.symbols.get(v), b)).collect()
    }

    /// Every tenant with series.
    pub(crate) fn tenants(&self) -> impl Iterator<Item = &TenantId> {
        self.tenant_ids.iter()
    }

    /// The dense index of `tenant` stored in [`SeriesEntry::tenant`].
    pub(crate) fn tenant_index(&self, tenant: &TenantId) -> Option<u32> {
        self.tenants.get(tenant).copied()
    }

    /// The postings of `tenant` (name sym → value sym → series) and all its
    /// series, for statistics (`cardinality.rs`).
    pub(crate) fn postings_of(&self, tenant: &TenantId) -> Option<(&Postings, &Bitmap)> {
        self.tenant(tenant).map(|t| (&t.postings, &t.all))
    }

    /// Every entry, by [`SeriesRef`] (removed ones included, with `live` false).
    pub(crate) fn entries(&self) -> &[SeriesEntry] {
        &self.entries
    }

    fn tenant(&self, tenant: &TenantId) -> Option<&TenantIndex> {
        self.tenants.get(tenant).and_then(|&i| self.by_slot.get(i as usize))
    }

    /// Every live series handle.
    pub(crate) fn live_refs(&self) -> impl Iterator<Item = SeriesRef> + '_ {
        self.entries.iter().enumerate().filter(|(_, e)| e.live).map(|(r, _)| r as SeriesRef)
    }

    /// Number of live series across tenants.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Number of label sets kept apart because their id collided.
    pub(crate) fn collisions(&self) -> usize {
        self.collisions
    }
}

fn same_labels<L: LabelPairs + ?Sized>(entries: &[SeriesEntry], symbols: &Symbols, r: SeriesRef, labels: &L) -> bool {
    let Some(e) = entries.get(r as usize) else { return false };
    let mut it = labels.pairs();
    for &(n, v) in e.labels.iter() {
        match it.next() {
            // Str compares by address first: usually the very same strings.
            Some((ln, lv)) if symbols.get(n) == ln && symbols.get(v) == lv => {}
            _ => return false,
        }
    }
    it.next().is_none()
}

/// `a|b|c` where every alternative is a plain literal (no regex syntax):
/// resolved by direct postings lookups instead of scanning every value.
fn literal_alternatives(re: &str) -> Option<Vec<&str>> {
    let special = |c: char| "\\.+*?()[]{}^$".contains(c);
    if re.is_empty() || re.chars().any(special) {
        return None;
    }
    Some(re.split('|').collect())
}

#[cfg(test)]
mod tests;
