//! Hot → cold roll-up of sealed buckets, exactly once.
//!
//! ```text
//!  for each sealed (tenant, bucket) from HotStore::sealed_buckets(now, grace), oldest first:
//!    source = "hot:<tenant>:<bucket_start_ms>"
//!    cold has a snapshot with strata.source = source?  ── yes ──┐   (crash after commit, before watermark)
//!      │ no                                                    │
//!      ▼  failpoint before_write                               │
//!    read_bucket (blocking thread) → write_files (Parquet)     │
//!      ▼  failpoint after_write      (orphans if we stop here) │
//!    commit_files (fast append, CAS in the catalog)            │
//!      ▼  failpoint after_commit                               │
//!    (order since roll state: series, rollups, then samples; each commit
//!     claims the bucket's partitions, see "Several nodes" below)
//!    series not yet in series_<tenant> → write, commit          │  (only while a rollup is missing)
//!      ▼  failpoints series_after_write, series_after_commit    │
//!    per rollup table not committed for the claim:             │
//!      write, commit  ▼ failpoints rollup_after_write / _commit │
//!    set_cold_watermark(tenant, lowest partition roll state) ◄─┘
//!      ▼  failpoint after_watermark
//! ```
//!
//! **Several nodes on one Kafka log.** Rolls are owned per log partition
//! (`device_hash % partitions`): at the start of a pass the compactor asks
//! which partitions it may roll ([`Compactor::set_partitioning`]: the node
//! holds the partition and has applied it up to the broker's high
//! watermark), and rolls each sealed bucket for those of them whose roll
//! state in the catalog (`strata.roll.p<n>`, cold-tier FORMAT.md) is behind
//! the bucket, committing only their series, with the claim, in one
//! compare-and-swap ([`strata_cold_tier::ColdTier::commit_claim`]). Per table
//! (rollups first, samples last) the claim is what that table lacks. A stale
//! owner (the node that held a partition before a rebalance, or a restarted
//! node with old copies) either does not roll it (not held now) or loses the
//! swap; a new owner continues from the roll state. The hot store's cold
//! watermark becomes the lowest samples roll state over every partition
//! (never lowered); on a shared log a tenant joins at `i64::MIN` and
//! partitions without data in a bucket are advanced by empty claims, up to
//! the newest sealed bucket but never past a bucket this pass did not roll
//! or a bucket with unflushed samples when the pass planned (sealed and
//! unflushed buckets are read from one hot-store state, so a bucket flushed
//! while the pass runs is not mistaken for an empty one). The write path
//! refuses a sample below its partition's roll state
//! ([`Compactor::partition_roll_state`], read each pass), not only below
//! the tenant's watermark; that state lags another node's commit by up to
//! one pass, so the grace must cover it as it covers the write path's
//! retries: a write acknowledged later than that lands in the hot store
//! below the roll state and never reaches cold.
//!
//! Every crash point leaves each sample in exactly one place as seen by the
//! federated read (hot answers `ts ≥ watermark`, cold `ts < watermark`): before
//! the watermark moves, the bucket is still served by hot and the cold copy
//! (if committed) lies above the watermark, where cold is not asked. A
//! tenant's buckets roll in order and the first failure stops that tenant's
//! pass, so the watermark never skips a bucket. The series table is appended
//! before the rollup rows that need its rows, so every committed rollup row's
//! series is recorded whatever the crash point (a retry may record a series
//! twice; readers keep one).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use strata_cold_tier::{
    ClaimOutcome, ColdTier, CommitSource, RollClaim, Rollup, SeriesEntry, SeriesRollup, SeriesSamples, WrittenFiles,
    file_prefix, series_key,
};
use strata_hot_store::{HotStore, SealedBucket};
use strata_schemas::TenantId;

use crate::config::CompactorConfig;
use crate::error::{Error, Result};
use crate::source::RollSource;

/// Crash points of a roll a test can arm with `Compactor::arm_failpoint`
/// (cargo feature `failpoints`; maintenance has its own:
/// [`crate::MAINTENANCE_FAILPOINTS`]).
pub const FAILPOINTS: [&str; 8] = [
    "before_write",
    "after_write",
    "after_commit",
    "series_after_write",
    "series_after_commit",
    "rollup_after_write",
    "rollup_after_commit",
    "after_watermark",
];

/// What rolling one bucket did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketOutcome {
    /// Written and committed now.
    Committed {
        /// Samples written.
        samples: u64,
        /// Series written.
        series: usize,
        /// Parquet bytes written.
        bytes: u64,
        /// Data files written.
        files: usize,
    },
    /// Found already committed (an earlier run crashed before the watermark).
    AlreadyCommitted,
    /// The bucket held no samples; only the watermark moved.
    Empty,
}

/// What one [`Compactor::roll_once`] pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollOutcome {
    /// Buckets whose watermark advanced.
    pub buckets: usize,
    /// Samples committed.
    pub samples: u64,
    /// Parquet bytes committed.
    pub bytes: u64,
    /// Buckets found already committed.
    pub already_committed: usize,
    /// Tenants whose pass stopped on an error (logged).
    pub failed_tenants: usize,
}

/// Counters for `/metrics` (monotonic since start).
#[derive(Debug, Default)]
pub struct CompactorMetrics {
    /// Buckets rolled (watermark advanced).
    pub buckets_rolled: AtomicU64,
    /// Samples committed to the cold tier.
    pub samples_rolled: AtomicU64,
    /// Parquet bytes committed.
    pub bytes_written: AtomicU64,
    /// Data files committed.
    pub files_written: AtomicU64,
    /// Buckets found already committed after a crash.
    pub duplicate_commits_avoided: AtomicU64,
    /// Failed bucket rolls.
    pub errors: AtomicU64,
    /// Rollup rows (per series and window, 5 m, 1 h and 1 d) committed.
    pub rollup_windows_written: AtomicU64,
    /// Group rollup rows (per declared group and window) committed.
    pub group_rollup_rows_written: AtomicU64,
    /// Maintenance passes finished.
    pub maintenance_passes: AtomicU64,
    /// Snapshots expired.
    pub snapshots_expired: AtomicU64,
    /// Unreferenced files deleted (orphans and files of expired snapshots).
    pub orphan_files_deleted: AtomicU64,
    /// Bytes of unreferenced files deleted.
    pub orphan_bytes_deleted: AtomicU64,
    /// Data files removed from tables by cold retention.
    pub retention_files_removed: AtomicU64,
    /// Samples removed from tables by cold retention.
    pub retention_samples_removed: AtomicU64,
    /// Partition merges committed.
    pub merges: AtomicU64,
    /// Small files replaced by merges.
    pub merge_files_in: AtomicU64,
    /// Files written by merges.
    pub merge_files_out: AtomicU64,
    /// Samples rewritten by merges.
    pub merge_samples: AtomicU64,
    /// Merges given up because their files were replaced under them (an
    /// erase committed first); the next pass plans again.
    pub merges_lost: AtomicU64,
    /// Tenants purged (hot and cold data deleted).
    pub tenants_purged: AtomicU64,
    /// Failed maintenance steps (per tenant; retried next pass).
    pub maintenance_errors: AtomicU64,
    /// Per tenant: bytes of the data files its cold table holds, as of the
    /// compactor's last commit or maintenance pass for it.
    pub cold_bytes: Mutex<std::collections::BTreeMap<String, u64>>,
}

impl CompactorMetrics {
    /// Bytes of the tenant's cold table as last seen (None before the
    /// compactor committed to it or maintained it since start).
    pub fn cold_bytes(&self, tenant: &TenantId) -> Option<u64> {
        self.cold_bytes.lock().get(tenant.as_str()).copied()
    }

    pub(crate) fn set_cold_bytes(&self, tenant: &TenantId, bytes: Option<u64>) {
        let mut m = self.cold_bytes.lock();
        match bytes {
            Some(b) => m.insert(tenant.as_str().to_owned(), b),
            None => m.remove(tenant.as_str()),
        };
    }
}

/// Moves sealed hot buckets into the cold tier. Share as `Arc<Compactor>`.
pub struct Compactor {
    /// The node's embedded hot store: keeps the cold watermark (its
    /// manifest), and is the roll source unless another is given.
    pub(crate) hot: Arc<HotStore>,
    /// Where sealed buckets are read from ([`Compactor::with_source`]).
    source: Arc<dyn RollSource>,
    pub(crate) cold: Arc<ColdTier>,
    pub(crate) config: CompactorConfig,
    pub(crate) metrics: Arc<CompactorMetrics>,
    /// Armed failpoints ([`Compactor::arm_failpoint`]).
    #[cfg(feature = "failpoints")]
    armed: Mutex<HashSet<&'static str>>,
    /// Serialises passes (rolls, maintenance, purges): a purge never races a
    /// roll that would re-create the table, and table commits never race
    /// each other within one process.
    pub(crate) pass: tokio::sync::Mutex<()>,
    /// Per-tenant cold retention (absent or zero: keep forever).
    pub(crate) retentions: Mutex<std::collections::BTreeMap<TenantId, Duration>>,
    /// Where [`Compactor::maintain_once`] reads retentions from, if set.
    pub(crate) retention_source: Mutex<Option<crate::maintain::RetentionSource>>,
    /// Per tenant, the [`strata_cold_tier::series_key`]s its series table
    /// holds (loaded from the table on first use, extended after each
    /// series commit, dropped on purge).
    pub(crate) known_series: Mutex<HashMap<TenantId, HashSet<(i64, u64)>>>,
    /// The ingest-log partitions and which this node may roll.
    partitioning: Mutex<Partitioning>,
    /// Test hook called at named points of a pass ([`Compactor::set_pass_hook`]).
    #[cfg(feature = "failpoints")]
    hook: Mutex<Option<PassHook>>,
    /// Per tenant, its samples table's roll state as last read from the
    /// catalog (every pass reads it for each tenant): what the write path
    /// refuses below, per partition ([`Compactor::partition_roll_state`]).
    roll_states: Mutex<HashMap<TenantId, BTreeMap<u32, i64>>>,
    /// The published group rollup declarations (`group.rs`).
    pub(crate) group_rollups: crate::group::GroupRollups,
    /// Where each roll pass reads the declarations from, if set.
    pub(crate) group_source: Mutex<Option<crate::group::GroupRollupSource>>,
}

/// A test's code run at a named point of a pass (`"planned"`: the sealed
/// buckets and the unflushed ones were read, nothing rolled yet; cargo
/// feature `failpoints`).
#[cfg(feature = "failpoints")]
pub type PassHook = Arc<dyn Fn(&'static str) + Send + Sync>;

impl std::fmt::Debug for Compactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compactor").field("config", &self.config).field("cold", &self.cold).finish_non_exhaustive()
    }
}

impl Compactor {
    /// A compactor over one hot store and one region's cold tier.
    pub fn new(hot: Arc<HotStore>, cold: Arc<ColdTier>, config: CompactorConfig) -> Self {
        let source = Arc::clone(&hot) as Arc<dyn RollSource>;
        Self::with_source(hot, source, cold, config)
    }

    /// A compactor rolling the sealed buckets of `source` (e.g. the
    /// ScyllaDB tier) into `cold`, the cold watermark kept in `hot`'s
    /// manifest (the node's embedded store, empty when another tier holds
    /// the data): the write path's late-write refusal and the federated
    /// read ask it there, whatever the source.
    pub fn with_source(
        hot: Arc<HotStore>,
        source: Arc<dyn RollSource>,
        cold: Arc<ColdTier>,
        config: CompactorConfig,
    ) -> Self {
        let mut config = config;
        config.fix_harmless();
        Self {
            hot,
            source,
            cold,
            config,
            metrics: Arc::default(),
            #[cfg(feature = "failpoints")]
            armed: Mutex::default(),
            pass: tokio::sync::Mutex::new(()),
            retentions: Mutex::default(),
            retention_source: Mutex::default(),
            known_series: Mutex::default(),
            partitioning: Mutex::default(),
            #[cfg(feature = "failpoints")]
            hook: Mutex::default(),
            roll_states: Mutex::default(),
            group_rollups: Arc::default(),
            group_source: Mutex::default(),
        }
    }

    /// Holds off rolls, maintenance passes and purges while the guard
    /// lives: the server's erasure erases hot and cold under it, so no roll
    /// that read a bucket before the hot erase commits it after the cold one.
    pub async fn exclusive(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.pass.lock().await
    }

    /// The cold tier it rolls into.
    pub fn cold(&self) -> &Arc<ColdTier> {
        &self.cold
    }

    /// The counters (shared; read them for `/metrics`).
    pub fn metrics(&self) -> Arc<CompactorMetrics> {
        Arc::clone(&self.metrics)
    }

    /// Test hook (cargo feature `failpoints`): the next time the compactor
    /// reaches `point` (one of [`FAILPOINTS`]) it stops with
    /// [`Error::Injected`], as if the process died there.
    #[cfg(feature = "failpoints")]
    #[doc(hidden)]
    pub fn arm_failpoint(&self, point: &'static str) {
        self.armed.lock().insert(point);
    }

    /// Disarms every failpoint that has not fired (tests).
    #[cfg(feature = "failpoints")]
    #[doc(hidden)]
    pub fn disarm_failpoints(&self) {
        self.armed.lock().clear();
    }

    /// Test hook (cargo feature `failpoints`): `hook` runs at each named
    /// point of every later pass (`planned`, then each of [`FAILPOINTS`] the
    /// pass reaches; on the pass's task; keep it short). Lets a test change
    /// the hot store between a pass's plan and its commits (a flush, a late
    /// write).
    #[cfg(feature = "failpoints")]
    #[doc(hidden)]
    pub fn set_pass_hook(&self, hook: PassHook) {
        *self.hook.lock() = Some(hook);
    }

    /// Runs the pass hook, if one is set, at `point`.
    #[cfg(feature = "failpoints")]
    fn pass_hook(&self, point: &'static str) {
        let hook = self.hook.lock().clone();
        if let Some(h) = hook {
            h(point);
        }
    }

    /// Without the `failpoints` feature there is no pass hook.
    #[cfg(not(feature = "failpoints"))]
    #[inline(always)]
    fn pass_hook(&self, _point: &'static str) {}

    /// Runs `f` on the roll source on a blocking thread (a source may wait
    /// on the network).
    async fn on_source<T: Send + 'static>(&self, f: impl FnOnce(&dyn RollSource) -> T + Send + 'static) -> Result<T> {
        let source = Arc::clone(&self.source);
        tokio::task::spawn_blocking(move || f(&*source)).await.map_err(|e| Error::Task { detail: e.to_string() })
    }

    /// The tenants holding data in the roll source with their oldest bucket.
    async fn source_tenants(&self) -> Result<BTreeMap<TenantId, i64>> {
        self.on_source(|s| s.oldest_buckets()).await?.map_err(|source| Error::ListHot { source })
    }

    /// Fails with [`Error::Injected`] if `point` is armed (disarming it).
    #[cfg(feature = "failpoints")]
    pub(crate) fn failpoint(&self, point: &'static str) -> Result<()> {
        // The pass hook sees every failpoint too (a server test hook aborts
        // the process at one, as a `kill -9` there would).
        self.pass_hook(point);
        if self.armed.lock().remove(point) { Err(Error::Injected { point }) } else { Ok(()) }
    }

    /// Without the `failpoints` feature no failpoint is ever armed.
    #[cfg(not(feature = "failpoints"))]
    #[inline(always)]
    pub(crate) fn failpoint(&self, _point: &'static str) -> Result<()> {
        Ok(())
    }

    /// The grace period after a bucket's end before it is rolled.
    pub fn grace(&self) -> Duration {
        let bucket = Duration::from_millis(u64::try_from(self.source.bucket_ms()).unwrap_or(0));
        self.config.grace.unwrap_or_else(|| bucket + self.hot.config().flush_interval)
    }

    /// Declares how the node's hot store maps to the ingest log: `count`
    /// partitions (a series' partition is `device_hash % count`), of which
    /// `rollable(count)` lists those this node may roll now (it holds them
    /// and has applied them up to the log's end), and
    /// whether other nodes share the log (`shared`: a Kafka consumer group),
    /// in which case a tenant joins the cold tier at watermark `i64::MIN`
    /// (other nodes may hold older data) and the roll state of partitions
    /// without data on this node is advanced too (module doc). Default: one
    /// partition, always rollable, not shared.
    pub fn set_partitioning(&self, count: u32, rollable: RollableFn, shared: bool) {
        *self.partitioning.lock() = Partitioning { count: count.max(1), rollable, shared };
    }

    /// The roll state of `partition` in `tenant`'s samples table as this
    /// compactor last read it (each pass, and after each of its commits):
    /// every sample of the partition below it is in the cold tier, or is
    /// being committed by the node that claimed it. On a shared log it runs
    /// ahead of the tenant's watermark (the lowest over every partition);
    /// the write path refuses samples below it, which stored here would
    /// never reach cold. It lags another node's commit by up to one pass
    /// (`[compactor] interval`), which the grace must cover, as it covers
    /// writes that are slow to be acknowledged.
    pub fn partition_roll_state(&self, tenant: &TenantId, partition: u32) -> Option<i64> {
        self.roll_states.lock().get(tenant)?.get(&partition).copied()
    }

    fn partitioning(&self) -> Partitioning {
        self.partitioning.lock().clone()
    }

    /// Rolls every sealed bucket at `now_ms`. Per tenant, stops at the first
    /// failure (logged, counted) so the watermark never skips a bucket; other
    /// tenants continue. Returns an error only for an injected failure.
    pub async fn roll_once(&self, now_ms: i64) -> Result<RollOutcome> {
        let _pass = self.pass.lock().await;
        let part = self.partitioning();
        // Which partitions this pass may roll, decided once at its start
        // (may ask the broker: a blocking thread).
        let (ask, count) = (Arc::clone(&part.rollable), part.count);
        let rollable: BTreeSet<u32> = tokio::task::spawn_blocking(move || ask(count))
            .await
            .map_err(|e| Error::Task { detail: e.to_string() })?
            .into_iter()
            .filter(|&p| p < count)
            .collect();
        self.adopt_new_tenants(now_ms, part.shared).await?;
        self.refresh_group_rollups().await?;
        // The sealed buckets and, from the same instant, each tenant's first
        // bucket still in the memtable: every bucket holding data now is one
        // or the other (advance_empty_partitions relies on it).
        let grace = self.grace();
        let (sealed, unflushed) = self
            .on_source(move |s| s.handoff_plan(now_ms, grace))
            .await?
            .map_err(|source| Error::ListHot { source })?;
        // Buckets at or below the watermark are in the cold tier already
        // (the embedded store leaves them out itself; another source cannot
        // know the watermark, kept in the embedded store's manifest).
        let sealed: Vec<SealedBucket> =
            sealed.into_iter().filter(|b| self.hot.cold_watermark(&b.tenant).is_none_or(|w| b.end > w)).collect();
        self.pass_hook("planned");
        let mut out = RollOutcome::default();
        let mut failed: BTreeSet<TenantId> = BTreeSet::new();
        // Per tenant, the start of its first sealed bucket this pass did not roll.
        let mut stopped: BTreeMap<TenantId, i64> = BTreeMap::new();
        let started = Instant::now();
        let taken = sealed.len().min(self.config.max_buckets_per_pass);
        for b in sealed.iter().skip(taken) {
            stopped.entry(b.tenant.clone()).or_insert(b.start);
        }
        let mut progress = crate::progress::RollProgress::new(sealed.iter().take(taken).map(|b| &b.tenant));
        for (i, bucket) in sealed.iter().take(taken).enumerate() {
            if failed.contains(&bucket.tenant) {
                continue;
            }
            let rolled = match self.roll_bucket_claimed(bucket, &part, &rollable).await {
                Ok(o) => self.raise_watermark(&bucket.tenant, &part).await.map(|()| o),
                Err(e) => Err(e),
            };
            let rolled = match rolled {
                Ok(o) => self.failpoint("after_watermark").map(|()| o),
                Err(e) => Err(e),
            };
            match rolled {
                Ok(o) => {
                    out.buckets += 1;
                    match o {
                        BucketOutcome::Committed { samples, bytes, .. } => {
                            out.samples += samples;
                            out.bytes += bytes;
                        }
                        BucketOutcome::AlreadyCommitted => out.already_committed += 1,
                        BucketOutcome::Empty => {}
                    }
                }
                #[cfg(feature = "failpoints")]
                Err(e @ Error::Injected { .. }) => return Err(e),
                Err(e) => {
                    self.metrics.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(tenant = %bucket.tenant, bucket = bucket.start, error = %e, "rolling hot bucket to cold failed; will retry");
                    failed.insert(bucket.tenant.clone());
                    stopped.entry(bucket.tenant.clone()).or_insert(bucket.start);
                }
            }
            if !failed.contains(&bucket.tenant) {
                progress.bucket_done(&bucket.tenant);
            }
            log_progress(i + 1, sealed.len(), &out, started);
        }
        if part.shared {
            self.advance_empty_partitions(now_ms, &part, &rollable, &stopped, &unflushed, &mut failed).await?;
        }
        self.refresh_watermarks(&part).await;
        out.failed_tenants = failed.len();
        Ok(out)
    }

    /// Gives every tenant without a cold watermark one: with a log of its
    /// own (`shared` false), at the start of its oldest hot bucket (nothing
    /// below it exists anywhere), or lower, at the oldest bucket still open
    /// for late data (`now − grace`); on a shared Kafka log at `i64::MIN`
    /// (another node may own older data of the tenant: the watermark rises to
    /// the lowest partition's roll state as the cold tier fills). Either way
    /// the hot store keeps the tenant's buckets until the cold tier holds
    /// them instead of expiring them by TTL alone.
    async fn adopt_new_tenants(&self, now_ms: i64, shared: bool) -> Result<()> {
        let hot = Arc::clone(&self.hot);
        let grace_ms = i64::try_from(self.grace().as_millis()).unwrap_or(i64::MAX);
        let bucket = self.source.bucket_ms();
        let open_from = now_ms.saturating_sub(grace_ms).div_euclid(bucket).saturating_mul(bucket);
        let oldest_buckets = self.source_tenants().await?;
        tokio::task::spawn_blocking(move || {
            for (tenant, oldest) in oldest_buckets {
                let oldest = if shared { i64::MIN } else { oldest.min(open_from) };
                if hot.cold_watermark(&tenant).is_none() {
                    hot.set_cold_watermark(&tenant, oldest).map_err(|source| Error::SetWatermark {
                        tenant: tenant.clone(),
                        watermark: oldest,
                        source: Box::new(source),
                    })?;
                    tracing::info!(tenant = %tenant, watermark = oldest, "tenant joined the cold tier");
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::Task { detail: e.to_string() })?
    }

    /// Raises each tenant's hot cold watermark to the lowest roll state of
    /// its samples table over every partition (once every partition has
    /// one): every sample below it, of every partition, is in the cold tier.
    /// Never lowers it. Errors are logged (the next pass retries).
    async fn refresh_watermarks(&self, part: &Partitioning) {
        let mut tenants: BTreeSet<TenantId> = match self.source_tenants().await {
            Ok(t) => t.into_keys().collect(),
            Err(e) => {
                tracing::warn!(error = %e, "listing the hot tier's tenants failed; the next pass retries");
                BTreeSet::new()
            }
        };
        if part.shared {
            tenants.extend(self.cold.tenants().await.unwrap_or_default());
            // A purged tenant's state goes with its tables.
            self.roll_states.lock().retain(|t, _| tenants.contains(t));
        }
        for tenant in tenants {
            if let Err(e) = self.raise_watermark(&tenant, part).await {
                tracing::warn!(tenant = %tenant, error = %e, "raising the cold watermark failed; the next pass retries");
            }
        }
    }

    /// Raises the tenant's hot cold watermark to the lowest roll state of
    /// its samples table over every partition, if every partition has one
    /// and it is higher.
    async fn raise_watermark(&self, tenant: &TenantId, part: &Partitioning) -> Result<()> {
        let state = self
            .cold
            .roll_state(tenant)
            .await
            .map_err(|source| Error::Cold { tenant: tenant.clone(), source: Box::new(source) })?;
        if part.shared {
            self.roll_states.lock().insert(tenant.clone(), state.clone());
        }
        let Some(low) = (0..part.count).map(|p| state.get(&p).copied()).min().flatten() else { return Ok(()) };
        if self.hot.cold_watermark(tenant).is_some_and(|w| w >= low) {
            return Ok(());
        }
        let (hot, t) = (Arc::clone(&self.hot), tenant.clone());
        tokio::task::spawn_blocking(move || hot.set_cold_watermark(&t, low))
            .await
            .map_err(|e| Error::Task { detail: e.to_string() })?
            .map_err(|source| Error::SetWatermark {
                tenant: tenant.clone(),
                watermark: low,
                source: Box::new(source),
            })?;
        tracing::debug!(tenant = %tenant, watermark = low, "cold watermark raised");
        Ok(())
    }

    /// On a shared log: advances the roll state of every partition this
    /// node may roll, for every tenant, over buckets where this node holds no
    /// data of the partition, up to the newest sealed bucket end, but never
    /// past the first bucket this pass did not roll (failed, over the pass
    /// limit) nor the first bucket with unflushed samples — as the pass's
    /// plan saw it (`planned_unflushed`, read with the sealed buckets) and as
    /// it is now. The node has applied the partition up to the log's end, so
    /// nothing of it exists below that point except what is already
    /// committed. Without this a partition where a tenant writes nothing
    /// would hold the tenant's watermark back forever.
    ///
    /// The plan's limit is the one that matters: a bucket held back from the
    /// plan by its memtable samples and flushed while the pass ran is
    /// neither rolled nor unflushed any more; limited by the current
    /// memtable alone, it was advanced over as if it held no data, and its
    /// samples of every claimed partition never reached the table (the loss
    /// of whole (device, bucket) cells kafka_cold found, issue 17).
    async fn advance_empty_partitions(
        &self,
        now_ms: i64,
        part: &Partitioning,
        rollable: &BTreeSet<u32>,
        stopped: &BTreeMap<TenantId, i64>,
        planned_unflushed: &BTreeMap<TenantId, i64>,
        failed: &mut BTreeSet<TenantId>,
    ) -> Result<()> {
        if rollable.is_empty() {
            return Ok(());
        }
        let grace_ms = i64::try_from(self.grace().as_millis()).unwrap_or(i64::MAX);
        let bucket = self.source.bucket_ms();
        let sealed_end = now_ms.saturating_sub(grace_ms).div_euclid(bucket).saturating_mul(bucket);
        let unflushed = self.on_source(|s| s.unflushed_buckets()).await?;
        let mut tenants: BTreeSet<TenantId> = self.source_tenants().await?.into_keys().collect();
        tenants.extend(self.cold.tenants().await.map_err(|source| Error::ListTables { source: Box::new(source) })?);
        for tenant in tenants {
            if failed.contains(&tenant) {
                continue;
            }
            let mut target = sealed_end;
            for limit in
                [stopped.get(&tenant), unflushed.get(&tenant), planned_unflushed.get(&tenant)].into_iter().flatten()
            {
                target = target.min(*limit);
            }
            if let Some(&planned) = planned_unflushed.get(&tenant)
                && planned < sealed_end
                && unflushed.get(&tenant).is_none_or(|&now| now > planned)
            {
                tracing::info!(
                    tenant = %tenant, bucket = planned, target,
                    "bucket flushed during the pass after the plan held it back; empty partitions advance only below it"
                );
            }
            let res = self.advance_tenant(&tenant, part, rollable, target).await;
            match res {
                Ok(()) => {}
                #[cfg(feature = "failpoints")]
                Err(e @ Error::Injected { .. }) => return Err(e),
                Err(e) => {
                    self.metrics.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(tenant = %tenant, target, error = %e, "advancing the roll state of empty partitions failed; will retry");
                    failed.insert(tenant);
                }
            }
        }
        Ok(())
    }

    /// Empty claims up to `target` for the tenant's rollable partitions
    /// behind it, rollup tables first, the samples table last.
    async fn advance_tenant(
        &self,
        tenant: &TenantId,
        part: &Partitioning,
        rollable: &BTreeSet<u32>,
        target: i64,
    ) -> Result<()> {
        let cold_err = |source| Error::Cold { tenant: tenant.clone(), source: Box::new(source) };
        let samples_state = self.cold.roll_state(tenant).await.map_err(cold_err)?;
        let behind = |state: &BTreeMap<u32, i64>| -> BTreeSet<u32> {
            rollable.iter().copied().filter(|p| state.get(p).is_none_or(|&e| e < target)).collect()
        };
        if behind(&samples_state).is_empty() {
            return Ok(());
        }
        let views: Vec<(String, ColdTier)> = Rollup::ALL
            .iter()
            .map(|&r| (format!("rollup{}", r.name()), self.cold.rollup_view(r)))
            .chain(self.group_views(tenant))
            .chain([("samples".to_owned(), (*self.cold).clone())])
            .collect();
        for (table, view) in views {
            let state = view.roll_state(tenant).await.map_err(cold_err)?;
            let partitions = behind(&state);
            if partitions.is_empty() {
                continue;
            }
            let from = partitions.iter().filter_map(|p| state.get(p)).min().copied().unwrap_or(i64::MIN);
            let claim = RollClaim { partitions, start: from, end: target };
            let source = CommitSource {
                source: format!("empty:{tenant}:{target}:p{}", list(&claim.partitions, part.count)),
                segments: String::new(),
            };
            match view.commit_claim(tenant, WrittenFiles::default(), &source, &claim).await.map_err(cold_err)? {
                ClaimOutcome::Lost { partitions } => return Err(lost(tenant, &partitions, target)),
                ClaimOutcome::Committed { .. } => tracing::info!(
                    tenant = %tenant, table, partitions = %list(&claim.partitions, u32::MAX),
                    from, target, "advanced the roll state of partitions without data here"
                ),
                ClaimOutcome::AlreadyCommitted => {}
            }
        }
        tracing::debug!(tenant = %tenant, target, partitions = ?rollable, "advanced the roll state of partitions without data");
        Ok(())
    }

    /// Rolls one sealed bucket for the partitions this node may roll now:
    /// per table (rollups first, the samples table last, so a partition's
    /// samples state never passes its rollups), the partitions whose roll
    /// state is behind the bucket are claimed and their series' data
    /// committed with the claim (idempotent; see the module doc).
    async fn roll_bucket_claimed(
        &self,
        bucket: &SealedBucket,
        part: &Partitioning,
        rollable: &BTreeSet<u32>,
    ) -> Result<BucketOutcome> {
        let tenant = &bucket.tenant;
        let cold_err = |source| Error::Cold { tenant: tenant.clone(), source: Box::new(source) };
        let behind = |state: &BTreeMap<u32, i64>| -> BTreeSet<u32> {
            rollable.iter().copied().filter(|p| state.get(p).is_none_or(|&e| e < bucket.end)).collect()
        };
        let samples_claim = behind(&self.cold.roll_state(tenant).await.map_err(cold_err)?);
        let mut rollup_claims = Vec::new();
        for r in Rollup::ALL {
            let claim = behind(&self.cold.rollup_view(r).roll_state(tenant).await.map_err(cold_err)?);
            if !claim.is_empty() {
                rollup_claims.push((r, claim));
            }
        }
        if samples_claim.is_empty() && rollup_claims.is_empty() {
            // Nothing this node may roll is behind: committed already (here
            // or by another owner), or no partition is rollable now.
            if rollable.is_empty() {
                return Ok(BucketOutcome::Empty);
            }
            tracing::info!(tenant = %tenant, bucket = bucket.start, "bucket already committed to cold");
            self.metrics.duplicate_commits_avoided.fetch_add(1, Ordering::Relaxed);
            return Ok(BucketOutcome::AlreadyCommitted);
        }
        let (t, start) = (tenant.clone(), bucket.start);
        let all = self.on_source(move |s| s.read_bucket(&t, start)).await?.map_err(|source| Error::ReadHotBucket {
            tenant: tenant.clone(),
            bucket_start: start,
            source,
        })?;
        let count = u64::from(part.count);
        let of = |claim: &BTreeSet<u32>| -> Vec<SeriesSamples> {
            all.iter()
                .filter(|s| claim.contains(&((s.device_hash % count) as u32)))
                .map(|s| SeriesSamples {
                    labels: s.labels.clone(),
                    series_id: s.series_id,
                    device_hash: s.device_hash,
                    samples: s.samples.clone(),
                })
                .collect()
        };
        let segments = bucket.segments.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        let source_of = |claim: &BTreeSet<u32>| CommitSource {
            source: if claim.len() == part.count as usize {
                format!("hot:{}:{}", tenant, bucket.start)
            } else {
                format!("hot:{}:{}:p{}", tenant, bucket.start, list(claim, part.count))
            },
            segments: segments.clone(),
        };
        for (r, claim) in &rollup_claims {
            let series = of(claim);
            let source = source_of(claim);
            self.record_series(bucket, &source, &series).await?;
            self.commit_rollup(bucket, &source, &series, *r, claim).await?;
        }
        self.commit_group_rollups(bucket, rollable, &of, &source_of).await?;
        if samples_claim.is_empty() {
            self.metrics.duplicate_commits_avoided.fetch_add(1, Ordering::Relaxed);
            return Ok(BucketOutcome::AlreadyCommitted);
        }
        let series = of(&samples_claim);
        if part.shared {
            // Per claimed partition: series/samples of this node's copy (the
            // trail to follow when a (partition, bucket) looks short in cold).
            let mut per: BTreeMap<u32, (usize, usize)> = samples_claim.iter().map(|&p| (p, (0, 0))).collect();
            for s in &series {
                let e = per.entry((s.device_hash % count) as u32).or_default();
                e.0 += 1;
                e.1 += s.samples.len();
            }
            let per: Vec<String> = per.iter().map(|(p, (n, k))| format!("p{p}:{n}/{k}")).collect();
            tracing::info!(
                tenant = %tenant, bucket = bucket.start, read = all.len(), claimed = series.len(),
                partitions = %per.join(","), "rolling bucket for partitions (series/samples each)"
            );
        }
        self.commit_samples(bucket, &source_of(&samples_claim), &series, &samples_claim).await
    }

    /// Writes and commits one rollup table's rows of `series` with `claim`
    /// (an empty claim commit when the series hold no window).
    async fn commit_rollup(
        &self,
        bucket: &SealedBucket,
        source: &CommitSource,
        series: &[SeriesSamples],
        r: Rollup,
        claim: &BTreeSet<u32>,
    ) -> Result<()> {
        let tenant = &bucket.tenant;
        let cold_err = |source| Error::Cold { tenant: tenant.clone(), source: Box::new(source) };
        let rolled: Vec<SeriesRollup> =
            series.iter().map(|s| SeriesRollup::of(s, r.width_ms())).filter(|s| !s.points.is_empty()).collect();
        let view = self.cold.rollup_view(r);
        let written = if rolled.is_empty() {
            WrittenFiles::default()
        } else {
            let since = self.rollup_since(bucket).await?;
            let prefix = file_prefix(&format!("rollup{}:{}:{}", r.name(), tenant, bucket.start));
            view.write_rollup_files(tenant, &rolled, since, &prefix).await.map_err(cold_err)?
        };
        self.failpoint("rollup_after_write")?;
        let rows = written.rows;
        let claim = RollClaim { partitions: claim.clone(), start: bucket.start, end: bucket.end };
        let outcome = view.commit_claim(tenant, written, source, &claim).await.map_err(cold_err)?;
        self.failpoint("rollup_after_commit")?;
        match outcome {
            ClaimOutcome::Committed { .. } => {
                self.metrics.rollup_windows_written.fetch_add(rows, Ordering::Relaxed);
                Ok(())
            }
            ClaimOutcome::AlreadyCommitted => Ok(()),
            ClaimOutcome::Lost { partitions } => Err(lost(tenant, &partitions, bucket.end)),
        }
    }

    /// Appends the bucket's series that the tenant's series table does not
    /// hold yet, before any rollup row that needs them is committed (so a
    /// crash at any point leaves every committed rollup row's series
    /// recorded; a series recorded twice is harmless, readers keep one).
    async fn record_series(
        &self,
        bucket: &SealedBucket,
        source: &CommitSource,
        series: &[SeriesSamples],
    ) -> Result<()> {
        let tenant = &bucket.tenant;
        let cold_err = |source| Error::Cold { tenant: tenant.clone(), source: Box::new(source) };
        let view = self.cold.series_view();
        let loaded = self.known_series.lock().contains_key(tenant);
        if !loaded {
            let known = view.recorded_series(tenant).await.map_err(cold_err)?;
            self.known_series.lock().entry(tenant.clone()).or_insert(known);
        }
        let new: Vec<SeriesEntry> = {
            let known = self.known_series.lock();
            let known = known.get(tenant);
            series
                .iter()
                .filter(|s| !known.is_some_and(|k| k.contains(&series_key(s.series_id, &s.labels))))
                .map(SeriesEntry::from)
                .collect()
        };
        if new.is_empty() {
            return Ok(());
        }
        let prefix = file_prefix(&format!("series:{}:{}", tenant, bucket.start));
        let written = view.write_series_files(tenant, &new, &prefix).await.map_err(cold_err)?;
        self.failpoint("series_after_write")?;
        view.commit_series_files(tenant, written, &source.source).await.map_err(cold_err)?;
        self.failpoint("series_after_commit")?;
        if let Some(known) = self.known_series.lock().get_mut(tenant) {
            known.extend(new.iter().map(|s| series_key(s.series_id, &s.labels)));
        }
        tracing::debug!(tenant = %tenant, bucket = bucket.start, series = new.len(), "recorded new series in the series table");
        Ok(())
    }

    /// What a rollup table created by this bucket's roll records as the
    /// start of its complete data: `i64::MIN` when the samples table holds
    /// no rows yet (nothing older is in cold, so every window is complete),
    /// else the bucket start (older buckets were rolled before rollups existed).
    pub(crate) async fn rollup_since(&self, bucket: &SealedBucket) -> Result<i64> {
        let tenant = &bucket.tenant;
        let table = self
            .cold
            .load_table(tenant)
            .await
            .map_err(|source| Error::Cold { tenant: tenant.clone(), source: Box::new(source) })?;
        let rows = table
            .and_then(|t| {
                t.metadata()
                    .current_snapshot()?
                    .summary()
                    .additional_properties
                    .get("total-records")?
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0);
        Ok(if rows == 0 { i64::MIN } else { bucket.start })
    }

    async fn commit_samples(
        &self,
        bucket: &SealedBucket,
        source: &CommitSource,
        series: &[SeriesSamples],
        claim: &BTreeSet<u32>,
    ) -> Result<BucketOutcome> {
        let tenant = &bucket.tenant;
        let cold_err = |source| Error::Cold { tenant: tenant.clone(), source: Box::new(source) };
        self.failpoint("before_write")?;
        let t0 = Instant::now();
        let written = if series.is_empty() {
            WrittenFiles::default()
        } else {
            self.cold.write_files(tenant, series, &file_prefix(&source.source)).await.map_err(cold_err)?
        };
        self.failpoint("after_write")?;
        let (samples, bytes, files, n_series) = (written.rows, written.bytes, written.files.len(), written.series);
        let claim = RollClaim { partitions: claim.clone(), start: bucket.start, end: bucket.end };
        let outcome = self.cold.commit_claim(tenant, written, source, &claim).await.map_err(cold_err)?;
        self.failpoint("after_commit")?;
        match outcome {
            ClaimOutcome::Committed { .. } => {}
            ClaimOutcome::AlreadyCommitted => {
                self.metrics.duplicate_commits_avoided.fetch_add(1, Ordering::Relaxed);
                return Ok(BucketOutcome::AlreadyCommitted);
            }
            ClaimOutcome::Lost { partitions } => return Err(lost(tenant, &partitions, bucket.end)),
        }
        self.metrics.buckets_rolled.fetch_add(1, Ordering::Relaxed);
        if samples == 0 {
            return Ok(BucketOutcome::Empty);
        }
        self.metrics.samples_rolled.fetch_add(samples, Ordering::Relaxed);
        self.metrics.bytes_written.fetch_add(bytes, Ordering::Relaxed);
        self.metrics.files_written.fetch_add(files as u64, Ordering::Relaxed);
        if let Ok(total) = self.cold.stored_bytes(tenant).await {
            self.metrics.set_cold_bytes(tenant, Some(total));
        }
        let secs = t0.elapsed().as_secs_f64().max(1e-6);
        tracing::info!(
            tenant = %tenant, bucket = bucket.start, partitions = %list(&claim.partitions, u32::MAX), samples,
            series = n_series, files, bytes,
            bytes_per_sample = bytes as f64 / samples.max(1) as f64,
            samples_per_sec = samples as f64 / secs,
            "committed hot bucket to cold"
        );
        Ok(BucketOutcome::Committed { samples, series: n_series, bytes, files })
    }

    /// Runs [`Compactor::roll_once`] every `config.interval`, and a
    /// maintenance pass every `config.maintenance_interval` (first one
    /// interval after start), until `shutdown` resolves. Spawn it on the
    /// server's background runtime.
    ///
    /// Rolls come first: a maintenance pass gets one interval
    /// ([`Compactor::maintain_within`]) and, when merges are left, goes on
    /// after the next tick's roll with the merges only
    /// ([`Compactor::continue_merges`]). (Run to the end, a backlog of merges held
    /// every roll back for minutes: in the soak of 2026-12-03 night eight
    /// merges of ~30 s each stalled rolls for ~7 minutes, twice the hot
    /// buckets piled up and queries slowed down.)
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(self.config.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_maintenance = Instant::now();
        let mut merges_owed = false;
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tick.tick() => {
                    if let Err(e) = self.roll_once(strata_schemas::time::now_millis()).await {
                        tracing::error!(error = %e, "compactor pass failed");
                    }
                    if merges_owed || last_maintenance.elapsed() >= self.config.maintenance_interval {
                        if !merges_owed {
                            last_maintenance = Instant::now();
                        }
                        let now = strata_schemas::time::now_millis();
                        let budget = Some(self.config.interval);
                        let pass = if merges_owed {
                            self.continue_merges(now, budget).await
                        } else {
                            self.maintain_within(now, budget).await
                        };
                        merges_owed = match pass {
                            Ok(out) => out.unfinished,
                            Err(e) => {
                                tracing::error!(error = %e, "cold maintenance pass failed");
                                false
                            }
                        };
                    }
                }
            }
        }
    }
}

/// How the node's hot store maps to the ingest log ([`Compactor::set_partitioning`]).
#[derive(Clone)]
pub(crate) struct Partitioning {
    count: u32,
    rollable: RollableFn,
    shared: bool,
}

impl Default for Partitioning {
    fn default() -> Self {
        Self { count: 1, rollable: Arc::new(|count| (0..count).collect()), shared: false }
    }
}

/// Given the partition count, the log partitions this node may roll now:
/// those it holds and has applied up to the log's end. Called once per pass,
/// on a blocking thread.
pub type RollableFn = Arc<dyn Fn(u32) -> BTreeSet<u32> + Send + Sync>;

/// `0,2,5`, or `all` when the set is every partition of `count`.
fn list(ps: &BTreeSet<u32>, count: u32) -> String {
    if ps.len() == count as usize {
        "all".to_owned()
    } else {
        ps.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
    }
}

fn lost(tenant: &TenantId, partitions: &[u32], end: i64) -> Error {
    Error::RollLost { tenant: tenant.clone(), partitions: partitions.to_vec(), end }
}

fn log_progress(done: usize, total: usize, out: &RollOutcome, started: Instant) {
    if done == total || done.is_multiple_of(16) {
        let secs = started.elapsed().as_secs_f64().max(1e-6);
        tracing::info!(
            done,
            total,
            samples = out.samples,
            bytes = out.bytes,
            samples_per_sec = out.samples as f64 / secs,
            "compactor pass progress"
        );
    }
}
