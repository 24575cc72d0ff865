//! A hot store + cold tier in a temp dir, a model of what was written, and
//! the exactly-once check through the federated read.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use strata_cold_tier::{ColdReadStore, ColdTier, ColdTierConfig};
use strata_compactor::{Compactor, CompactorConfig, FederatedReadStore};
use strata_hot_store::{HotStore, HotStoreConfig};
use strata_schemas::{
    BatchSeries, Labels, Matcher, ReadError, ReadStore, Sample, SeriesData, TenantId, TimeRange, WriteBatch,
};

/// Bucket length of the test stores.
pub(crate) const BUCKET_MS: i64 = 60_000;
/// A realistic epoch (2023-11-14T22:13:20Z).
pub(crate) const BASE: i64 = 1_700_000_000_000 / BUCKET_MS * BUCKET_MS;

pub(crate) type Model = BTreeMap<(String, Labels), BTreeMap<i64, u64>>;

pub(crate) fn tenant(s: &str) -> TenantId {
    TenantId::new(s).unwrap()
}

pub(crate) fn labels(metric: &str, device: &str) -> Labels {
    Labels::from_pairs([("__name__", metric), ("device", device), ("site", "north")])
}

pub(crate) struct Env {
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) hot: Arc<HotStore>,
    pub(crate) cold: Arc<ColdTier>,
    pub(crate) compactor: Compactor,
    pub(crate) model: Model,
    offset: u64,
    config: CompactorConfig,
    cold_config: ColdTierConfig,
    hot_config: HotStoreConfig,
}

pub(crate) fn hot_config() -> HotStoreConfig {
    HotStoreConfig {
        bucket: Duration::from_millis(BUCKET_MS as u64),
        default_hot_ttl: Duration::from_millis(1),
        ..HotStoreConfig::default()
    }
}

impl Env {
    pub(crate) fn open(dir: &Path) -> Env {
        Env::open_with(dir, CompactorConfig { grace: Some(Duration::ZERO), ..CompactorConfig::default() })
    }

    /// Like [`Env::open`] with a compactor configuration.
    pub(crate) fn open_with(dir: &Path, cc: CompactorConfig) -> Env {
        Env::open_with_cold(dir, cc, ColdTierConfig { enabled: true, ..ColdTierConfig::default() })
    }

    /// Like [`Env::open`] with compactor and cold-tier configurations.
    pub(crate) fn open_with_cold(dir: &Path, cc: CompactorConfig, cold_config: ColdTierConfig) -> Env {
        Env::open_with_hot(dir, cc, cold_config, hot_config())
    }

    /// Like [`Env::open_with_cold`] with a hot-store configuration.
    pub(crate) fn open_with_hot(
        dir: &Path,
        cc: CompactorConfig,
        cold_config: ColdTierConfig,
        hot_config: HotStoreConfig,
    ) -> Env {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let hot = Arc::new(HotStore::open(&dir.join("hot"), hot_config.clone()).unwrap());
        let cold = Arc::new(rt.block_on(ColdTier::open(&cold_config, dir)).unwrap());
        let compactor = Compactor::new(Arc::clone(&hot), Arc::clone(&cold), cc.clone());
        Env { rt, hot, cold, compactor, model: Model::new(), offset: 0, config: cc, cold_config, hot_config }
    }

    /// Simulates a process restart: everything reopened from disk.
    pub(crate) fn reopen(self, dir: &Path) -> Env {
        let (model, offset, config, cold_config, hot) =
            (self.model, self.offset, self.config, self.cold_config, self.hot_config);
        drop(self.compactor);
        drop(self.hot);
        drop(self.cold);
        drop(self.rt);
        let mut env = Env::open_with_hot(dir, config, cold_config, hot);
        env.model = model;
        env.offset = offset;
        env
    }

    pub(crate) fn write(&mut self, t: &str, metric: &str, device: &str, samples: &[(i64, f64)]) {
        self.write_series(t, labels(metric, device), device, samples);
    }

    /// Writes one series with any labels (`device` for its device hash).
    pub(crate) fn write_series(&mut self, t: &str, l: Labels, device: &str, samples: &[(i64, f64)]) {
        let tid = tenant(t);
        let batch = WriteBatch {
            tenant: tid.clone(),
            series: vec![BatchSeries {
                id: strata_schemas::series_id(&tid, &l),
                device_hash: strata_schemas::device_hash_of(&tid, device),
                labels: l.clone(),
                samples: samples.iter().map(|&(ts, v)| Sample::new(ts, v)).collect(),
            }],
            origin: None,
        };
        self.hot.apply(0, self.offset, &batch).unwrap();
        self.offset += 1;
        let m = self.model.entry((t.to_owned(), l)).or_default();
        for &(ts, v) in samples {
            m.insert(ts, v.to_bits());
        }
    }

    pub(crate) fn federated(&self) -> FederatedReadStore {
        let hot = Arc::clone(&self.hot);
        let cold = ColdReadStore::new(Arc::clone(&self.cold), self.rt.handle().clone());
        FederatedReadStore::new(
            Arc::clone(&self.hot) as Arc<dyn ReadStore>,
            Arc::new(cold),
            Arc::new(move |t: &TenantId| hot.cold_watermark(t)),
        )
    }

    pub(crate) fn cold_reader(&self) -> ColdReadStore {
        ColdReadStore::new(Arc::clone(&self.cold), self.rt.handle().clone())
    }

    /// Asserts that the federated read returns exactly the model, per tenant.
    pub(crate) fn assert_exactly_once(&self, context: &str) {
        let fed = self.federated();
        let tenants: std::collections::BTreeSet<&String> = self.model.keys().map(|(t, _)| t).collect();
        for t in tenants {
            let got = fed.select(&tenant(t), &[], TimeRange::ALL).unwrap();
            let got: BTreeMap<Labels, BTreeMap<i64, u64>> = got
                .into_iter()
                .map(|s| (s.labels, s.samples.iter().map(|x| (x.ts, x.value.to_bits())).collect()))
                .collect();
            let want: BTreeMap<Labels, BTreeMap<i64, u64>> =
                self.model.iter().filter(|((mt, _), _)| mt == t).map(|((_, l), v)| (l.clone(), v.clone())).collect();
            assert_eq!(got, want, "{context}: tenant {t}");
            self.assert_rollups_exactly_once(t, context);
        }
    }

    /// The rollup windows of every tier (5 m, 1 h, 1 d) the federated store
    /// answers (those ending below the watermark) equal the windows of the
    /// model's samples: a window missing or committed twice would show.
    /// (With 1-minute buckets the first window is complete only once 3 to 7
    /// buckets are rolled; before, the store answers nothing and there is
    /// nothing to check.)
    pub(crate) fn assert_rollups_exactly_once(&self, t: &str, context: &str) {
        for r in strata_cold_tier::Rollup::ALL {
            self.assert_tier_exactly_once(t, r.width_ms(), &format!("{context} ({})", r.name()));
        }
    }

    fn assert_tier_exactly_once(&self, t: &str, width: i64, context: &str) {
        let model: BTreeMap<&Labels, Vec<Sample>> = self
            .model
            .iter()
            .filter(|((mt, _), _)| mt == t)
            .map(|((_, l), v)| (l, v.iter().map(|(&ts, &bits)| Sample::new(ts, f64::from_bits(bits))).collect()))
            .collect();
        let Some(first) = model.values().filter_map(|s| s.first()).map(|s| s.ts).min() else { return };
        let ends = TimeRange::new(strata_cold_tier::window_end(first, width), i64::MAX / 2 / width * width);
        let Some(got) = self.federated().select_rollup(&tenant(t), &[], width, ends).unwrap() else { return };
        let want: BTreeMap<&Labels, Vec<strata_schemas::RollupPoint>> = model
            .iter()
            .map(|(l, s)| {
                let pts = strata_cold_tier::rollup_points(s, width);
                (*l, pts.into_iter().filter(|p| p.end <= got.covered_end).collect::<Vec<_>>())
            })
            .filter(|(_, p)| !p.is_empty())
            .collect();
        assert_eq!(got.series.len(), want.len(), "{context}: rollup series of {t}");
        for (g, (l, w)) in got.series.iter().zip(&want) {
            assert_eq!(&g.labels, *l, "{context}");
            assert_eq!(g.points.len(), w.len(), "{context}: windows of {l:?}");
            for (a, b) in g.points.iter().zip(w) {
                let same = |x: f64, y: f64| {
                    (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
                };
                assert!(
                    a.end == b.end
                        && a.count == b.count
                        && a.last_ts == b.last_ts
                        && same(a.min, b.min)
                        && same(a.max, b.max)
                        && same(a.sum, b.sum)
                        && same(a.last, b.last),
                    "{context}: {l:?}: {a:?} vs {b:?}"
                );
            }
        }
    }

    /// Rows in the tenant's cold table per the snapshot summaries, and
    /// whether every `strata.source` appears once.
    pub(crate) fn cold_rows(&self, t: &str) -> (u64, bool) {
        let Some(table) = self.rt.block_on(self.cold.load_table(&tenant(t))).unwrap() else { return (0, true) };
        let mut sources = std::collections::BTreeSet::new();
        let mut rows = 0;
        let mut unique = true;
        for s in table.metadata().snapshots() {
            let p = &s.summary().additional_properties;
            rows += p.get("strata.rows").map_or(0, |r| r.parse::<u64>().unwrap());
            if let Some(src) = p.get("strata.source") {
                unique &= sources.insert(src.clone());
            }
        }
        (rows, unique)
    }
}

/// The same store without rollups of any kind (the engine's "rollups off"):
/// only the raw reads are passed on, `select_rollup` answers nothing.
#[derive(Debug)]
pub(crate) struct RawOnly(pub(crate) Arc<dyn ReadStore>);

impl ReadStore for RawOnly {
    fn select(&self, t: &TenantId, m: &[Matcher], r: TimeRange) -> Result<Vec<SeriesData>, ReadError> {
        self.0.select(t, m, r)
    }
    fn series(&self, t: &TenantId, m: &[Matcher], r: TimeRange) -> Result<Vec<Labels>, ReadError> {
        self.0.series(t, m, r)
    }
}

/// A seeded linear congruential generator (Knuth's MMIX constants): the
/// tests' reproducible randomness.
pub(crate) struct Lcg(pub(crate) u64);

impl Lcg {
    /// The next 31-bit number.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}
