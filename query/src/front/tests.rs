//! Tests of the query front: coalescing, and the differential test of
//! split and cached range queries against the engine's own answers.

use super::*;
use crate::test_util::MemStore;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;
use strata_schemas::labels::STALE_NAN_BITS;
use strata_schemas::{BatchSeries, Matcher, ReadError, ReadStore, SeriesData, TimeRange};

fn tenant(s: &str) -> TenantId {
    TenantId::new(s).unwrap()
}

fn settings(cache_bytes: usize) -> FrontSettings {
    FrontSettings { enabled: true, cache_bytes, settle_ms: 60_000, ttl_ms: 3_600_000, beta: 1.0 }
}

// ---------------------------------------------------------------- coalescing

/// `n` identical requests while the first one's work is held: one work
/// runs, every caller gets its answer.
#[tokio::test(flavor = "current_thread")]
async fn identical_in_flight_requests_share_one_evaluation() {
    let front = Arc::new(QueryFront::new(settings(0), true));
    let runs = Arc::new(AtomicUsize::new(0));
    let entered = Arc::new(AtomicUsize::new(0));
    let (release, held) = tokio::sync::watch::channel(false);
    let n = 8;
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (front, runs, entered, mut held) =
            (Arc::clone(&front), Arc::clone(&runs), Arc::clone(&entered), held.clone());
        tasks.push(tokio::spawn(async move {
            let work = async move {
                runs.fetch_add(1, Ordering::SeqCst);
                let _ = held.wait_for(|r| *r).await;
                (422u16, axum::body::Bytes::from_static(b"{\"status\":\"error\"}"))
            };
            entered.fetch_add(1, Ordering::SeqCst);
            front.coalesce("k".into(), &tenant("a"), FlightReads::all(), CancelToken::new(), work).await
        }));
    }
    while entered.load(Ordering::SeqCst) < n {
        tokio::task::yield_now().await;
    }
    tokio::task::yield_now().await;
    release.send(true).unwrap();
    for t in tasks {
        let (status, body) = t.await.unwrap().expect("answered");
        assert_eq!((status, &body[..]), (422, &b"{\"status\":\"error\"}"[..]), "errors are shared too");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(front.metrics.flights.load(Ordering::SeqCst), 1);
    assert_eq!(front.metrics.coalesced.load(Ordering::SeqCst), n as u64 - 1);
    assert_eq!(front.flights.len(), 0, "a finished flight leaves");
}

/// A request whose tenant wrote what the flight reads after the flight
/// began does not join it (it must see the write); a write elsewhere in
/// time or of another metric does not matter. Tenants never share.
#[tokio::test(flavor = "current_thread")]
async fn no_joining_a_flight_older_than_a_relevant_write_nor_across_tenants() {
    let front = Arc::new(QueryFront::new(settings(0), true));
    let runs = Arc::new(AtomicUsize::new(0));
    let (release, held) = tokio::sync::watch::channel(false);
    let reads = FlightReads { span: Span { lo: 1000, hi: 2000 }, names: Some(["m".to_owned()].into()) };
    let start = |t: &str, front: &Arc<QueryFront>| {
        let (front, runs, mut held, t, reads) =
            (Arc::clone(front), Arc::clone(&runs), held.clone(), tenant(t), reads.clone());
        tokio::spawn(async move {
            let work = async move {
                runs.fetch_add(1, Ordering::SeqCst);
                let _ = held.wait_for(|r| *r).await;
                (200u16, axum::body::Bytes::new())
            };
            front.coalesce("k".into(), &t, reads, CancelToken::new(), work).await
        })
    };
    let a1 = start("a", &front);
    settle().await;
    let b1 = start("b", &front);
    settle().await;
    // Not relevant: after the span, another metric.
    front.invalidate(&tenant("a"), 2001, 3000, None);
    front.invalidate(&tenant("a"), 0, 5000, Some(["other".to_owned()].into()));
    let a2 = start("a", &front);
    settle().await;
    assert_eq!(runs.load(Ordering::SeqCst), 2, "a2 joined a1; b1 ran its own");
    front.invalidate(&tenant("a"), 1500, 1500, Some(["m".to_owned()].into()));
    let a3 = start("a", &front);
    settle().await;
    assert_eq!(runs.load(Ordering::SeqCst), 3, "a3 must see the write: a new flight");
    release.send(true).unwrap();
    for h in [a1, b1, a2, a3] {
        assert!(h.await.unwrap().is_some());
    }
    assert_eq!(front.metrics.coalesced.load(Ordering::SeqCst), 1, "only a2 followed");
}

/// Lets every spawned task run until it waits.
async fn settle() {
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
}

/// The work is canceled once every waiting request has gone.
#[tokio::test(flavor = "current_thread")]
async fn work_is_canceled_when_every_caller_left() {
    let front = Arc::new(QueryFront::new(settings(0), true));
    let cancel = CancelToken::new();
    let (_release, held) = tokio::sync::watch::channel(false);
    let f = Arc::clone(&front);
    let c = cancel.clone();
    let h = tokio::spawn(async move {
        let mut held = held;
        let work = async move {
            let _ = held.wait_for(|r| *r).await;
            (200u16, axum::body::Bytes::new())
        };
        f.coalesce("k".into(), &tenant("a"), FlightReads::all(), c, work).await
    });
    tokio::task::yield_now().await;
    assert!(!cancel.is_canceled());
    h.abort();
    let _ = h.await;
    assert!(cancel.is_canceled());
}

/// The request that started a flight goes away while another waits: the
/// work goes on (not canceled, not run twice) and answers the other; only
/// when that one leaves too is the work canceled.
#[tokio::test(flavor = "current_thread")]
async fn a_flight_outlives_its_leader_while_others_wait() {
    let front = Arc::new(QueryFront::new(settings(0), true));
    let runs = Arc::new(AtomicUsize::new(0));
    let cancel = CancelToken::new();
    let (release, held) = tokio::sync::watch::channel(false);
    let start = |front: &Arc<QueryFront>| {
        let (front, runs, mut held, cancel) = (Arc::clone(front), Arc::clone(&runs), held.clone(), cancel.clone());
        tokio::spawn(async move {
            let work = async move {
                runs.fetch_add(1, Ordering::SeqCst);
                let _ = held.wait_for(|r| *r).await;
                (200u16, axum::body::Bytes::from_static(b"answer"))
            };
            front.coalesce("k".into(), &tenant("a"), FlightReads::all(), cancel, work).await
        })
    };
    let leader = start(&front);
    settle().await;
    let follower = start(&front);
    settle().await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    settle().await;
    assert!(!cancel.is_canceled(), "someone still waits");
    // A third request arriving now still joins the moved flight.
    let late = start(&front);
    settle().await;
    release.send(true).unwrap();
    for h in [follower, late] {
        let (status, body) = h.await.unwrap().expect("answered");
        assert_eq!((status, &body[..]), (200, &b"answer"[..]));
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1, "one evaluation for all three");
    assert_eq!(front.flights.len(), 0, "a finished flight leaves");

    // Leader and follower both gone: the work is canceled.
    let cancel2 = CancelToken::new();
    let (_hold, held2) = tokio::sync::watch::channel(false);
    let spawn2 = |front: &Arc<QueryFront>| {
        let (front, mut held, cancel) = (Arc::clone(front), held2.clone(), cancel2.clone());
        tokio::spawn(async move {
            let work = async move {
                let _ = held.wait_for(|r| *r).await;
                (200u16, axum::body::Bytes::new())
            };
            front.coalesce("k2".into(), &tenant("a"), FlightReads::all(), cancel, work).await
        })
    };
    let (l, f) = (spawn2(&front), spawn2(&front));
    settle().await;
    l.abort();
    let _ = l.await;
    settle().await;
    assert!(!cancel2.is_canceled());
    f.abort();
    let _ = f.await;
    settle().await;
    assert!(cancel2.is_canceled(), "the last waiter out cancels the moved work");
}

/// A work that panics answers `None` to its leader and to every follower,
/// and its flight leaves the map: the next request starts afresh.
#[tokio::test(flavor = "current_thread")]
async fn a_panicking_work_answers_none_to_everyone() {
    let front = Arc::new(QueryFront::new(settings(0), true));
    let (release, held) = tokio::sync::watch::channel(false);
    let start = |front: &Arc<QueryFront>| {
        let (front, mut held) = (Arc::clone(front), held.clone());
        tokio::spawn(async move {
            let work = async move {
                let _ = held.wait_for(|r| *r).await;
                if *held.borrow() {
                    panic!("work panicked (expected by the test)");
                }
                (200u16, axum::body::Bytes::new())
            };
            front.coalesce("k".into(), &tenant("a"), FlightReads::all(), CancelToken::new(), work).await
        })
    };
    let (a, b) = (start(&front), start(&front));
    settle().await;
    release.send(true).unwrap();
    assert!(a.await.unwrap().is_none(), "the leader");
    assert!(b.await.unwrap().is_none(), "the follower");
    assert_eq!(front.flights.len(), 0);
    let ok = front
        .coalesce("k".into(), &tenant("a"), FlightReads::all(), CancelToken::new(), async {
            (200u16, axum::body::Bytes::from_static(b"fresh"))
        })
        .await;
    assert_eq!(ok.map(|(s, b)| (s, b.to_vec())), Some((200, b"fresh".to_vec())));
}

// ---------------------------------------------------------------- differential

/// A store with delete requests (tombstones: a metric over a time span),
/// like the server's `ErasingStore`.
#[derive(Debug, Default)]
struct Store {
    mem: MemStore,
    stones: Mutex<Vec<(String, i64, i64)>>,
}

impl ReadStore for Store {
    fn reads_locally(&self, _: &TenantId, _: TimeRange) -> bool {
        true
    }

    fn select(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> std::result::Result<Vec<SeriesData>, ReadError> {
        let stones = self.stones.lock().unwrap().clone();
        Ok(self
            .mem
            .select(tenant, matchers, range)?
            .into_iter()
            .filter_map(|mut s| {
                let name = s.labels.metric_name().to_owned();
                s.samples.retain(|p| !stones.iter().any(|(n, a, b)| *n == name && p.ts >= *a && p.ts <= *b));
                (!s.samples.is_empty()).then_some(s)
            })
            .collect())
    }

    fn series(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> std::result::Result<Vec<Labels>, ReadError> {
        Ok(self.select(tenant, matchers, range)?.into_iter().map(|s| s.labels).collect())
    }
}

/// Seeded xorshift.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

const DAY0: i64 = 20_000 * split::DAY_MS;

/// Every answer as exact bits: values by `to_bits`, labels, annotations, errors.
fn bits(r: &Result<QueryResult>) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    match r {
        Err(e) => {
            let _ = write!(s, "error {e}");
        }
        Ok(q) => {
            match &q.value {
                Value::Matrix(m) => {
                    for rs in m {
                        let _ = write!(s, "{:?}:", rs.labels);
                        for p in &rs.samples {
                            let _ = write!(s, " {}={:x}", p.ts, p.value.to_bits());
                        }
                        s.push('\n');
                    }
                }
                other => {
                    let _ = write!(s, "{other:?}");
                }
            }
            let _ = write!(s, "warnings {:?} infos {:?}", q.warnings, q.infos);
        }
    }
    s
}

struct World {
    store: Arc<Store>,
    front: QueryFront,
    plain: Engine,
    cached: Engine,
    now: Arc<AtomicU64>,
    epoch: Arc<AtomicU64>,
    t: TenantId,
}

impl World {
    fn new(cache_bytes: usize) -> Self {
        let store = Arc::new(Store::default());
        let now = Arc::new(AtomicU64::new(0));
        let epoch = Arc::new(AtomicU64::new(0));
        let (n, e) = (Arc::clone(&now), Arc::clone(&epoch));
        let front = QueryFront::new(settings(cache_bytes), true)
            .with_clock(Arc::new(move || n.load(Ordering::SeqCst) as i64))
            .with_epoch(Arc::new(move |_| e.load(Ordering::SeqCst)));
        let plain = Engine::new(Arc::clone(&store) as Arc<dyn ReadStore>, QueryConfig::default());
        let cached = Engine::new(Arc::clone(&store) as Arc<dyn ReadStore>, QueryConfig::default());
        Self { store, front, plain, cached, now, epoch, t: tenant("acme") }
    }

    /// Writes like the node does: applied to the store, then reported.
    fn write(&self, labels: &Labels, samples: &[Sample]) {
        self.store.mem.add(&self.t, labels.clone(), samples);
        let batch = WriteBatch {
            tenant: self.t.clone(),
            series: vec![BatchSeries {
                id: strata_schemas::series_id(&self.t, labels),
                device_hash: 0,
                labels: labels.clone(),
                samples: samples.iter().copied().collect(),
            }],
            origin: None,
        };
        self.front.applied(&batch);
    }

    fn check(&self, q: &str, start: i64, end: i64, step: i64) {
        let opts = QueryOptions::default();
        let want = self.plain.query_range_with(&self.t, q, start, end, step, &opts);
        let got = self.front.query_range(&self.cached, &self.t, q, (start, end, step), &opts);
        let (got, want) = (bits(&got), bits(&want));
        if got != want {
            let first = got.lines().zip(want.lines()).find(|(g, w)| g != w);
            let clip = |s: &str| s.chars().take(600).collect::<String>();
            panic!(
                "query {q} start {start} end {end} step {step}: front and engine differ; first differing series:\n front:  {}\n engine: {}",
                first.map_or_else(|| clip(&got), |(g, _)| clip(g)),
                first.map_or_else(|| clip(&want), |(_, w)| clip(w)),
            );
        }
    }
}

fn series(rng: &mut Rng) -> Vec<Labels> {
    let mut out = Vec::new();
    for site in ["north", "south"] {
        for dev in 0..3 {
            let dev = format!("d{dev}");
            out.push(Labels::from_pairs([("__name__", "temp"), ("site", site), ("device", dev.as_str())]));
            out.push(Labels::from_pairs([("__name__", "energy_total"), ("site", site), ("device", dev.as_str())]));
        }
    }
    let _ = rng;
    out
}

const QUERIES: &[&str] = &[
    "temp",
    "rate(energy_total[5m])",
    "sum by (site) (rate(energy_total[10m]))",
    "avg_over_time(temp[1h])",
    "temp offset 1h",
    "temp offset -30m",
    "max_over_time(temp[30m:5m])",
    "max_over_time(rate(energy_total[5m])[1h:])",
    "temp @ 1728043200",
    "time()",
    "scalar(sum(temp))",
    "temp - temp offset 1d",
    "increase(energy_total[1h])",
    "count({__name__=~\"temp|energy_total\"})",
    "absent(nothing_here)",
    "topk(2, temp)",
    "changes(temp[15m])",
    "rate(temp[5m])",
    "temp @ start()",
    "avg_over_time(temp[10m] @ end())",
    "deriv(temp[20m])",
    "last_over_time(temp[2h])",
    "sum(temp) / count(temp)",
    "resets(energy_total[1h])",
    "timestamp(temp)",
    "{site=\"north\"}",
];

/// Front on vs front off, bit for bit: random range queries over three
/// days of counters (with resets), gauges, gaps and staleness markers,
/// interleaved with late and out-of-order writes into cached days, new
/// data at the head as the clock moves, delete requests, and a byte bound
/// small enough to evict.
#[test]
fn split_and_cached_answers_equal_unsplit_ones_bit_for_bit() {
    for seed in [1u64, 7, 42] {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed);
        let w = World::new(if seed == 7 { 16 << 10 } else { 4 << 20 });
        let labels = series(&mut rng);
        let interval = 60_000;
        let head = DAY0 + 2 * split::DAY_MS + 6 * 3_600_000;
        for (i, l) in labels.iter().enumerate() {
            let counter = l.metric_name().ends_with("_total");
            let mut v = 0.0f64;
            let mut samples = Vec::new();
            let mut t = DAY0 - split::DAY_MS;
            while t <= head {
                let gap = rng.below(50) == 0;
                if !gap {
                    v = if counter {
                        if rng.below(400) == 0 { 0.0 } else { v + rng.below(100) as f64 / 7.0 }
                    } else {
                        20.0 + (rng.below(1000) as f64) / 37.0 - i as f64
                    };
                    let value = if rng.below(300) == 0 { f64::from_bits(STALE_NAN_BITS) } else { v };
                    samples.push(Sample::new(t + rng.below(5000) as i64, value));
                }
                t += interval;
            }
            w.write(l, &samples);
        }
        w.now.store((head + 20 * 60_000) as u64, Ordering::SeqCst);
        let steps = [60_000i64, 300_000, 433_000, 3_600_000, 15_000];
        for round in 0..160 {
            let q = *rng.pick(QUERIES);
            let step = *rng.pick(&steps);
            let mut start = DAY0 - split::DAY_MS / 2 + (rng.below(36) as i64) * 3_600_000 + rng.below(60_000) as i64;
            if rng.below(4) != 0 {
                // Mostly aligned to the step, as Grafana sends them: parts recur across rounds.
                start -= start.rem_euclid(step);
            }
            let now = w.now.load(Ordering::SeqCst) as i64;
            let end = (start + (1 + rng.below(60) as i64) * 3_600_000).min(now + 3_600_000);
            let end = end.max(start);
            if (end - start) / step > 10_000 {
                continue;
            }
            w.check(q, start, end, step);
            // The same query again: served (partly) from the cache.
            w.check(q, start, end, step);
            let again = (q, start, end, step);
            match rng.below(6) {
                // A late, out-of-order write into a past (cached) day.
                0 | 1 => {
                    let l = rng.pick(&labels);
                    let ts = DAY0 - split::DAY_MS + rng.below(3 * split::DAY_MS as u64) as i64;
                    let ts = ts.min(now);
                    let v = if rng.below(10) == 0 { f64::from_bits(STALE_NAN_BITS) } else { rng.below(500) as f64 };
                    w.write(l, &[Sample::new(ts, v), Sample::new(ts - 17_000, v / 2.0)]);
                }
                // Time passes; new data at the head.
                2 => {
                    let adv = (1 + rng.below(10) as i64) * 60_000;
                    let new_now = now + adv;
                    for l in &labels {
                        w.write(l, &[Sample::new(new_now - 30_000, rng.below(100) as f64 + 1000.0)]);
                    }
                    w.now.store(new_now as u64, Ordering::SeqCst);
                }
                // A delete request (epoch changes with the tombstones).
                3 if round % 4 == 0 => {
                    let a = DAY0 + rng.below(2 * split::DAY_MS as u64) as i64;
                    w.store.stones.lock().unwrap().push(("temp".into(), a, a + 3_600_000));
                    w.epoch.fetch_add(1, Ordering::SeqCst);
                }
                // A new series in the past.
                4 => {
                    let dev = format!("late{round}");
                    let l = Labels::from_pairs([("__name__", "temp"), ("site", "east"), ("device", dev.as_str())]);
                    w.write(&l, &[Sample::new(DAY0 + rng.below(split::DAY_MS as u64) as i64, 1.5)]);
                }
                _ => {}
            }
            // And once more after the change.
            w.check(again.0, again.1, again.2, again.3);
        }
        let m = &w.front.metrics;
        let hits = m.hits.load(Ordering::SeqCst) + m.extends.load(Ordering::SeqCst);
        assert!(hits > 50, "seed {seed}: the cache answered {hits} parts");
        assert!(m.bypassed.load(Ordering::SeqCst) > 0, "seed {seed}: @ start()/end() and annotated queries bypass");
        let st = w.front.state.lock();
        assert!(st.cache.invalidations > 0, "seed {seed}: late writes invalidated parts");
        if seed == 7 {
            assert!(st.cache.evictions > 0, "seed 7 runs with a 16 KiB bound");
        }
    }
}

/// A cached part is answered from the cache, a late write into it drops
/// exactly it (not the other days' parts, nor those of other metrics), and
/// the next answer has the write.
#[test]
fn a_late_write_invalidates_exactly_the_parts_it_touches() {
    let w = World::new(4 << 20);
    let temp = Labels::from_pairs([("__name__", "temp"), ("device", "a")]);
    let hum = Labels::from_pairs([("__name__", "hum"), ("device", "a")]);
    for l in [&temp, &hum] {
        let s: Vec<Sample> = (0..3 * 1440).map(|i| Sample::new(DAY0 + i * 60_000, i as f64)).collect();
        w.write(l, &s);
    }
    w.now.store((DAY0 + 3 * split::DAY_MS) as u64, Ordering::SeqCst);
    let (start, end, step) = (DAY0, DAY0 + 3 * split::DAY_MS - 60_000, 300_000);
    for q in ["temp", "hum"] {
        w.check(q, start, end, step);
    }
    let st = || w.front.state.lock().cache.len();
    assert_eq!(st(), 6, "three days of two queries");
    let hits = || w.front.metrics.hits.load(Ordering::SeqCst);
    w.check("temp", start, end, step);
    assert_eq!(hits(), 3);
    // Mid-day 1, far from its edges (lookback is 5 minutes): touches only day 1 of temp.
    w.write(&temp, &[Sample::new(DAY0 + split::DAY_MS + 12 * 3_600_000, -1.0)]);
    assert_eq!(st(), 5);
    assert_eq!(w.front.state.lock().cache.invalidations, 1);
    w.check("temp", start, end, step);
    assert_eq!(hits(), 5, "days 0 and 2 still cached");
    w.check("hum", start, end, step);
    assert_eq!(hits(), 8, "hum untouched");
    // A write at the head touches nothing cached.
    w.write(&temp, &[Sample::new(DAY0 + 3 * split::DAY_MS, 0.0)]);
    assert_eq!(st(), 6);
    // A purge drops every part of the tenant.
    w.front.invalidate_tenant(&w.t);
    assert_eq!(st(), 0);
}
