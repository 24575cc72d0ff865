//! The query front: dashboards share their work.
//!
//! ```text
//!  /api/v1/query(_range) ─► coalesce (tenant, normalized query, every parameter)
//!                              │  one flight per key; followers wait for its answer
//!                              ▼
//!                        range query? ─► split at UTC days (step grid kept) ─► per day:
//!                              │            [first .. c]  settled: cache (LRU, byte bound, XFetch)
//!                              │            (c .. last]   fresh: evaluated
//!                              ▼
//!                        Engine (the parts, or the whole query when it cannot be split)
//!
//!  write applied (hot store) ─► WriteHook ─► invalidate (tenant, min ts, max ts, metric names)
//!  delete request / purge    ─► epoch change / invalidate_tenant
//! ```
//!
//! **Coalescing** ([`coalesce`]): identical requests in flight at once are
//! evaluated once; every caller gets the same bytes, errors included. Keys
//! never span tenants. They hold the query text as sent (annotations name
//! positions in it); the cache's keys hold the normalized text (the parsed
//! expression printed back), as cached parts carry no annotations.
//!
//! **Splitting and caching**: a range query's steps are cut where the UTC
//! day changes ([`split::day_parts`]); their concatenation is exactly the
//! query's step grid, and since each step is evaluated on its own (with its
//! full lookback, ranges, offsets and subqueries) the parts' answers
//! concatenated equal the whole query's. Within each day the steps whose
//! reads ([`split::reads`]) all end before `now - front_settle` are
//! *settled*: they are served from (and stored into) the cache, extended
//! step by step as time passes; the others are evaluated fresh. Queries
//! with `@ start()` / `@ end()` are not split. A part with warnings or
//! infos, or that fails, makes the whole query run unsplit instead (its
//! annotations and errors are then exactly the engine's), and such a query
//! is not split again for a while.
//!
//! **Invalidation**: every write batch applied to the hot store reaches
//! [`QueryFront::applied`] (through [`WriteHook`]); it drops the cached
//! parts of the tenant whose reads meet the batch's `[min ts, max ts]` and,
//! when the part knows its metric names, name one of the batch's metrics.
//! A part computed while such a write landed is not stored. Delete requests
//! change the tenant's *epoch* (a fingerprint of its tombstones, given by
//! the server): parts of an older epoch are dropped at lookup. A tenant
//! purge drops all of its parts. Entries also expire after `front_ttl`
//! (earlier with XFetch's probability), which bounds how long data removed
//! by retention stays visible in a cached part.
//!
//! The cache is off (coalescing stays on) where writes can land that this
//! node does not apply: on a node with cluster peers, or with federation.
//!
//! What differs from an unsplit evaluation: the per-query limits
//! (`max_samples`, `max_series`) apply per part, so a split query can
//! succeed where the whole would exceed them.

pub mod cache;
pub mod coalesce;
mod metrics;
pub mod split;
#[cfg(test)]
mod tests;

use crate::config::QueryConfig;
use crate::engine::{CancelToken, Engine, QueryOptions};
use crate::error::Result;
use crate::value::{QueryResult, RangeSeries, Value};
use cache::{Cache, Entry, Key, Lookup};
use coalesce::{FlightReads, Flights, Joined};
use promql_parser::parser::{Expr, value::ValueType};
use split::Span;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use strata_schemas::{Labels, Sample, TenantId, WriteBatch};

/// Invalidations remembered per tenant for in-flight evaluations.
const LOG_LEN: usize = 512;
/// Queries remembered as not worth splitting (annotated, failing parts).
const MAX_UNSPLIT: usize = 4096;

/// A clock in ms since the epoch.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;
/// A tenant's delete-request epoch (changes whenever its tombstones do).
pub type EpochFn = Arc<dyn Fn(&TenantId) -> u64 + Send + Sync>;

/// Counters of the front, rendered by [`QueryFront::render`] (`front/metrics.rs`).
#[derive(Debug, Default)]
struct Metrics {
    flights: AtomicU64,
    coalesced: AtomicU64,
    evaluations: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    extends: AtomicU64,
    bypassed: AtomicU64,
    not_stored: AtomicU64,
}

#[derive(Debug)]
struct Inv {
    seq: u64,
    lo: i64,
    hi: i64,
    names: Option<BTreeSet<String>>,
}

#[derive(Debug, Default)]
struct Track {
    seq: u64,
    interest: usize,
    log: VecDeque<Inv>,
}

#[derive(Debug)]
struct State {
    cache: Cache,
    tracks: HashMap<TenantId, Track>,
    unsplit: HashSet<(TenantId, String)>,
}

impl State {
    fn begin(&mut self, tenant: &TenantId) -> u64 {
        let t = self.tracks.entry(tenant.clone()).or_default();
        t.interest += 1;
        t.seq
    }

    fn end(&mut self, tenant: &TenantId) {
        if let Some(t) = self.tracks.get_mut(tenant) {
            t.interest = t.interest.saturating_sub(1);
            if t.interest == 0 {
                t.log.clear();
            }
        }
    }

    fn interested(&self, tenant: &TenantId) -> bool {
        self.cache.has_tenant(tenant) || self.tracks.get(tenant).is_some_and(|t| t.interest > 0)
    }

    /// True when a write or delete that may change what `reads` covers was
    /// recorded for `tenant` after `seq` (or may have been: the log is short).
    fn changed_since(&self, tenant: &TenantId, seq: u64, reads: &FlightReads) -> bool {
        let Some(t) = self.tracks.get(tenant) else { return false };
        if t.seq == seq {
            return false;
        }
        if t.log.front().is_none_or(|i| i.seq > seq + 1) {
            return true;
        }
        t.log.iter().any(|i| {
            i.seq > seq && reads.span.overlaps(i.lo, i.hi) && cache::touches(reads.names.as_ref(), i.names.as_ref())
        })
    }

    fn record(&mut self, tenant: &TenantId, lo: i64, hi: i64, names: Option<BTreeSet<String>>) -> usize {
        if self.tracks.get(tenant).is_some_and(|t| t.interest > 0) {
            let t = self.tracks.get_mut(tenant).expect("checked");
            t.seq += 1;
            let seq = t.seq;
            let names_copy = names.clone();
            t.log.push_back(Inv { seq, lo, hi, names: names_copy });
            while t.log.len() > LOG_LEN {
                t.log.pop_front();
            }
        } else if let Some(t) = self.tracks.get_mut(tenant) {
            t.seq += 1;
        }
        self.cache.invalidate(tenant, lo, hi, names.as_ref())
    }
}

/// The front's settings, from [`QueryConfig`].
#[derive(Debug, Clone)]
pub struct FrontSettings {
    /// Coalesce and cache at all (`query.front`).
    pub enabled: bool,
    /// Cache byte bound (`query.front_cache_bytes`; 0: no cache).
    pub cache_bytes: usize,
    /// Steps whose reads end before `now - settle` are cached (`query.front_settle`).
    pub settle_ms: i64,
    /// Longest life of a cached part (`query.front_ttl`).
    pub ttl_ms: i64,
    /// XFetch's beta (1.0).
    pub beta: f64,
}

impl FrontSettings {
    /// The settings of `c`.
    pub fn of(c: &QueryConfig) -> Self {
        Self {
            enabled: c.front,
            cache_bytes: c.front_cache_bytes,
            settle_ms: c.front_settle.as_millis() as i64,
            ttl_ms: c.front_ttl.as_millis().max(1) as i64,
            beta: 1.0,
        }
    }
}

/// The query front (see the module doc). Shared behind an `Arc`.
pub struct QueryFront {
    settings: FrontSettings,
    cache_on: bool,
    state: parking_lot::Mutex<State>,
    flights: Flights<CoalescedAnswer>,
    metrics: Metrics,
    epoch: Option<EpochFn>,
    clock: Clock,
    rng: AtomicU64,
}

impl std::fmt::Debug for QueryFront {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryFront").field("settings", &self.settings).field("cache_on", &self.cache_on).finish()
    }
}

/// An answer as the HTTP layer sends it: status and body.
pub type CoalescedAnswer = (u16, axum::body::Bytes);

fn wall_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl QueryFront {
    /// A front with `settings`; `cache_allowed` is false where writes may
    /// land that this node does not see (cluster peers, federation).
    pub fn new(settings: FrontSettings, cache_allowed: bool) -> Self {
        let cache_on = settings.enabled && cache_allowed && settings.cache_bytes > 0;
        let seed = (wall_ms() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        Self {
            state: parking_lot::Mutex::new(State {
                cache: Cache::new(settings.cache_bytes),
                tracks: HashMap::new(),
                unsplit: HashSet::new(),
            }),
            settings,
            cache_on,
            flights: Flights::default(),
            metrics: Metrics::default(),
            epoch: None,
            clock: Arc::new(wall_ms),
            rng: AtomicU64::new(seed),
        }
    }

    /// Uses `epoch` for each tenant's delete-request epoch.
    pub fn with_epoch(mut self, epoch: EpochFn) -> Self {
        self.epoch = Some(epoch);
        self
    }

    /// Uses `clock` instead of the wall clock (tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Coalescing (and the cache, where allowed) is on.
    pub fn enabled(&self) -> bool {
        self.settings.enabled
    }

    /// The cache is on.
    pub fn caching(&self) -> bool {
        self.cache_on
    }

    fn epoch_of(&self, tenant: &TenantId) -> u64 {
        self.epoch.as_ref().map_or(0, |f| f(tenant))
    }

    /// Uniform in (0, 1] (xorshift64*).
    fn uniform(&self) -> f64 {
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.store(x, Ordering::Relaxed);
        let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        (r as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Counts one evaluation run by the engine for the front's callers.
    pub fn count_evaluation(&self) {
        self.metrics.evaluations.fetch_add(1, Ordering::Relaxed);
    }

    // ---- writes, deletes, purges ----

    /// A write batch was applied (visible to reads): drops what it touches.
    pub fn applied(&self, batch: &WriteBatch) {
        if !self.state.lock().interested(&batch.tenant) {
            return;
        }
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        let mut names: BTreeSet<&str> = BTreeSet::new();
        for s in &batch.series {
            for p in &s.samples {
                lo = lo.min(p.ts);
                hi = hi.max(p.ts);
            }
            if !s.samples.is_empty() {
                names.insert(s.labels.metric_name());
            }
        }
        if lo > hi {
            return;
        }
        let names = names.into_iter().map(str::to_owned).collect();
        self.invalidate(&batch.tenant, lo, hi, Some(names));
    }

    /// Drops the cached parts of `tenant` that read `[lo, hi]` and one of
    /// `names` (`None`: any metric).
    pub fn invalidate(&self, tenant: &TenantId, lo: i64, hi: i64, names: Option<BTreeSet<String>>) {
        self.state.lock().record(tenant, lo, hi, names);
    }

    /// Drops every cached part of `tenant` (a purge, a delete request).
    pub fn invalidate_tenant(&self, tenant: &TenantId) {
        self.invalidate(tenant, i64::MIN, i64::MAX, None);
    }

    // ---- coalescing ----

    /// Answers a request through its flight: `work` runs once for every
    /// identical request (same `key`, which must name the tenant) in flight;
    /// `cancel` is the token `work` obeys, canceled once nobody waits.
    pub async fn coalesce<F>(
        self: &Arc<Self>,
        key: String,
        tenant: &TenantId,
        reads: FlightReads,
        cancel: CancelToken,
        work: F,
    ) -> Option<CoalescedAnswer>
    where
        F: Future<Output = CoalescedAnswer> + Send + 'static,
    {
        let (me, me2, t, t2) = (Arc::clone(self), Arc::clone(self), tenant.clone(), tenant.clone());
        // Never across tenants, whatever the caller's key says.
        let key = format!("{tenant}\0{key}");
        let (out, joined) = self
            .flights
            .run(
                key,
                tenant,
                reads,
                cancel,
                |f| !me.state.lock().changed_since(&f.tenant, f.seq, &f.reads),
                || me2.state.lock().begin(&t),
                {
                    let me = Arc::clone(self);
                    move || me.state.lock().end(&t2)
                },
                work,
            )
            .await;
        match joined {
            Joined::Led => self.metrics.flights.fetch_add(1, Ordering::Relaxed),
            Joined::Followed => self.metrics.coalesced.fetch_add(1, Ordering::Relaxed),
        };
        out
    }

    /// What `query` reads over steps `[first, last]`, for the coalescing
    /// join check. (Coalescing keys use the query's text as sent, not a
    /// normalized one: annotations name positions in the text.)
    pub fn analyze(&self, engine: &Engine, query: &str, first: i64, last: i64) -> FlightReads {
        let Ok(expr) = engine.parse(query) else { return FlightReads::all() };
        let c = engine.config();
        let span =
            split::reads(&expr, first, last, c.lookback_delta.as_millis() as i64, sub_step(c)).unwrap_or(Span::ALL);
        FlightReads { span, names: split::metric_names(&expr) }
    }

    // ---- range queries: split and cache ----

    /// [`Engine::query_range_with`] through the cache: equal, bit for bit,
    /// to the engine's answer (see the module doc for the one difference:
    /// limits per part).
    pub fn query_range(
        &self,
        engine: &Engine,
        tenant: &TenantId,
        query: &str,
        (start, end, step): (i64, i64, i64),
        opts: &QueryOptions,
    ) -> Result<QueryResult> {
        let whole = || {
            self.count_evaluation();
            engine.query_range_with(tenant, query, start, end, step, opts)
        };
        if !self.cache_on
            || step <= 0
            || end < start
            || (end - start) / step > engine.config().max_points_per_series as i64
        {
            return whole();
        }
        let Ok(expr) = engine.parse(query) else { return whole() };
        if !matches!(expr.value_type(), ValueType::Vector | ValueType::Scalar) {
            return whole();
        }
        let c = engine.config();
        let (lookback, sq) = (c.lookback_delta.as_millis() as i64, sub_step(c));
        let reads = |f: i64, l: i64| split::reads(&expr, f, l, lookback, sq);
        if reads(start, end).is_err() {
            self.metrics.bypassed.fetch_add(1, Ordering::Relaxed);
            return whole();
        }
        let norm = normalize(&expr, query);
        if self.state.lock().unsplit.contains(&(tenant.clone(), norm.clone())) {
            self.metrics.bypassed.fetch_add(1, Ordering::Relaxed);
            return whole();
        }
        let horizon = (self.clock)().saturating_sub(self.settings.settle_ms);
        let mut segs: Vec<Seg> = Vec::new();
        for (day, f, l) in split::day_parts(start, end, step) {
            match settled_end(&reads, f, l, step, horizon) {
                Some(c) => {
                    segs.push(Seg::Cached { day, first: f, last: c });
                    if c < l {
                        push_fresh(&mut segs, c + step, l);
                    }
                }
                None => push_fresh(&mut segs, f, l),
            }
        }
        if !segs.iter().any(|s| matches!(s, Seg::Cached { .. })) {
            return whole();
        }
        let names = split::metric_names(&expr).map(Arc::new);
        let base = Key {
            query: norm.clone(),
            step,
            phase: start.rem_euclid(step),
            day: 0,
            options: format!("partial_response={}", opts.partial_response),
        };
        let mut parts: Vec<Arc<Vec<RangeSeries>>> = Vec::with_capacity(segs.len());
        for seg in segs {
            let got = match seg {
                Seg::Fresh { first, last } => self.eval_part(engine, tenant, query, (first, last, step), opts),
                Seg::Cached { day, first, last } => {
                    let key = Key { day, ..base.clone() };
                    self.cached_part(engine, tenant, query, key, (first, last, step), opts, &reads, names.as_ref())
                }
            };
            match got {
                Some(p) => parts.push(p),
                None => {
                    let mut st = self.state.lock();
                    if st.unsplit.len() >= MAX_UNSPLIT {
                        st.unsplit.clear();
                    }
                    st.unsplit.insert((tenant.clone(), norm));
                    drop(st);
                    self.metrics.bypassed.fetch_add(1, Ordering::Relaxed);
                    return whole();
                }
            }
        }
        Ok(QueryResult { value: Value::Matrix(concat(&parts)), warnings: Vec::new(), infos: Vec::new() })
    }

    /// Evaluates steps `first..=last`: `None` when it fails or has annotations.
    fn eval_part(
        &self,
        engine: &Engine,
        tenant: &TenantId,
        query: &str,
        (first, last, step): (i64, i64, i64),
        opts: &QueryOptions,
    ) -> Option<Arc<Vec<RangeSeries>>> {
        self.count_evaluation();
        match engine.query_range_with(tenant, query, first, last, step, opts) {
            Ok(QueryResult { value: Value::Matrix(m), warnings, infos }) if warnings.is_empty() && infos.is_empty() => {
                Some(Arc::new(m))
            }
            _ => None,
        }
    }

    /// Steps `first..=last` of a settled part: from the cache, extended or
    /// computed (and stored) as needed.
    #[allow(clippy::too_many_arguments)]
    fn cached_part(
        &self,
        engine: &Engine,
        tenant: &TenantId,
        query: &str,
        key: Key,
        (first, last, step): (i64, i64, i64),
        opts: &QueryOptions,
        reads: &dyn Fn(i64, i64) -> std::result::Result<Span, split::Unsplittable>,
        names: Option<&Arc<BTreeSet<String>>>,
    ) -> Option<Arc<Vec<RangeSeries>>> {
        let epoch = self.epoch_of(tenant);
        let now = (self.clock)();
        let u = self.uniform();
        let (seq, found) = {
            let mut st = self.state.lock();
            let seq = st.begin(tenant);
            let s = &self.settings;
            (seq, st.cache.get(tenant, &key, epoch, now, s.ttl_ms, s.beta, u))
        };
        let out = (|| {
            let (entry, result) = match found {
                Lookup::Found(e) if e.first <= first && e.last >= last => {
                    self.metrics.hits.fetch_add(1, Ordering::Relaxed);
                    return Some(Arc::new(slice(&e.series, first, last)));
                }
                Lookup::Found(e) if e.first <= first && e.last >= first - step && e.last < last => {
                    self.metrics.extends.fetch_add(1, Ordering::Relaxed);
                    let t0 = std::time::Instant::now();
                    let more = self.eval_part(engine, tenant, query, (e.last + step, last, step), opts)?;
                    let all = concat(&[Arc::clone(&e.series), more]);
                    let delta = e.delta_ms.max(t0.elapsed().as_secs_f64() * 1000.0);
                    let entry = Entry {
                        first: e.first,
                        last,
                        bytes: cache::size_of(&all),
                        series: Arc::new(all),
                        span: reads(e.first, last).ok()?,
                        names: names.cloned(),
                        epoch,
                        computed_at: e.computed_at.min(now),
                        delta_ms: delta.max(1.0),
                    };
                    let result = Arc::new(slice(&entry.series, first, last));
                    (entry, result)
                }
                _ => {
                    self.metrics.misses.fetch_add(1, Ordering::Relaxed);
                    let t0 = std::time::Instant::now();
                    let part = self.eval_part(engine, tenant, query, (first, last, step), opts)?;
                    let entry = Entry {
                        first,
                        last,
                        bytes: cache::size_of(&part),
                        series: Arc::clone(&part),
                        span: reads(first, last).ok()?,
                        names: names.cloned(),
                        epoch,
                        computed_at: now,
                        delta_ms: (t0.elapsed().as_secs_f64() * 1000.0).max(1.0),
                    };
                    (entry, part)
                }
            };
            let mut st = self.state.lock();
            let fr = FlightReads { span: entry.span, names: names.map(|n| (**n).clone()) };
            if st.changed_since(tenant, seq, &fr) {
                self.metrics.not_stored.fetch_add(1, Ordering::Relaxed);
            } else {
                st.cache.put(tenant, key, entry);
            }
            Some(result)
        })();
        self.state.lock().end(tenant);
        out
    }
}

fn sub_step(c: &QueryConfig) -> i64 {
    c.default_subquery_step.as_millis() as i64
}

/// The parsed expression printed back when it parses to the same tree
/// (so equal text means equal evaluation), else the text itself.
fn normalize(expr: &Expr, query: &str) -> String {
    let printed = expr.to_string();
    match promql_parser::parser::parse(&printed) {
        Ok(back) if back == *expr => printed,
        _ => query.to_owned(),
    }
}

#[derive(Debug)]
enum Seg {
    Cached { day: i64, first: i64, last: i64 },
    Fresh { first: i64, last: i64 },
}

fn push_fresh(segs: &mut Vec<Seg>, first: i64, last: i64) {
    if let Some(Seg::Fresh { last: l, .. }) = segs.last_mut() {
        *l = last;
        return;
    }
    segs.push(Seg::Fresh { first, last });
}

/// The last step `c` of `first..=last` (grid `step`) such that what steps
/// `first..=c` read ends before `horizon`.
fn settled_end(
    reads: &dyn Fn(i64, i64) -> std::result::Result<Span, split::Unsplittable>,
    first: i64,
    last: i64,
    step: i64,
    horizon: i64,
) -> Option<i64> {
    let ok = |c: i64| reads(first, c).is_ok_and(|s| s.lo > s.hi || s.hi < horizon);
    if !ok(first) {
        return None;
    }
    let (mut lo, mut hi) = (0i64, (last - first) / step);
    while lo < hi {
        let mid = lo + (hi - lo + 1) / 2;
        if ok(first + mid * step) { lo = mid } else { hi = mid - 1 }
    }
    Some(first + lo * step)
}

/// The points of steps `first..=last`, series without any left out.
fn slice(series: &[RangeSeries], first: i64, last: i64) -> Vec<RangeSeries> {
    series
        .iter()
        .filter_map(|s| {
            let samples: Vec<Sample> = s.samples.iter().filter(|p| p.ts >= first && p.ts <= last).copied().collect();
            (!samples.is_empty()).then(|| RangeSeries { labels: s.labels.clone(), samples })
        })
        .collect()
}

/// Concatenates parts in time order, series sorted by labels (the engine's order).
fn concat(parts: &[Arc<Vec<RangeSeries>>]) -> Vec<RangeSeries> {
    if let [one] = parts {
        return one.as_ref().clone();
    }
    let mut by: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
    for p in parts {
        for s in p.iter() {
            by.entry(s.labels.clone()).or_default().extend_from_slice(&s.samples);
        }
    }
    by.into_iter().map(|(labels, samples)| RangeSeries { labels, samples }).collect()
}

/// Where the write path reports applied batches; the front attaches to it
/// once it exists (the store opens and replays before the front is built).
#[derive(Debug, Default)]
pub struct WriteHook(parking_lot::RwLock<Option<Weak<QueryFront>>>);

impl WriteHook {
    /// Sends every applied batch to `front` from now on.
    pub fn attach(&self, front: &Arc<QueryFront>) {
        *self.0.write() = Some(Arc::downgrade(front));
    }

    /// A batch was applied (is visible to reads).
    pub fn applied(&self, batch: &WriteBatch) {
        let front = self.0.read().as_ref().and_then(Weak::upgrade);
        if let Some(f) = front {
            f.applied(batch);
        }
    }
}
