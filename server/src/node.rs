//! One Strata node with every role in one process (`strata serve`).
//!
//! With the embedded log (`[log] kind = "local"`):
//!
//! ```text
//! startup:  bind HTTP → lock data dir → open the tenant registry → serve the startup routes
//!           (crate::startup: status, console, /metrics; /-/ready, queries, writes → 503)
//!           → open hot store → open ingest log (floor = hot store's replay point)
//!           → replay each partition's unflushed tail into the hot store → cold tier → full API → ready
//! running:  HTTP write → log (group-commit fsync) → LogSink → hot store memtable → 204
//!           flusher: every second, flush the memtable when it is big or old, then release log segments
//! shutdown: SIGINT/SIGTERM → stop accepting, finish in-flight requests → final flush → close log
//! ```
//!
//! With Kafka (`[log] kind = "kafka"`) the write path and the apply path are
//! decoupled by the broker:
//!
//! ```text
//! startup:  bind HTTP → lock data dir → registry → startup routes (as above) → open hot store
//!           → create/check the region's topic → join the consumer group (each assigned partition
//!           is read from the hot store's flushed offset: the unflushed tail, or everything within
//!           retention when the data dir is empty) → cold tier → full API → ready
//!           The node is ready before the consumer caught up: a `replay`/`rebuild` task per
//!           assigned partition shows the catching up (cold rolls wait for it).
//! running:  HTTP write → producer → acks=all delivery report → 204
//!           consumer thread → LogSink → hot store memtable  (the write is queryable from here on)
//!           flusher: flush the memtable, then commit the flushed offsets to the consumer group
//! shutdown: … → final flush and commit → producer flush → leave the group
//! ```
#![expect(
    clippy::disallowed_methods,
    reason = "node::serve owns the node's lifetime: it spawns the node's long-lived tasks and stops them on shutdown"
)]

use crate::auth::StaticTokens;
use crate::config::ServerConfig;
use crate::http;
use anyhow::Context;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata_hot_store::HotStore;
use strata_ingest::metrics::IngestMetrics;
use strata_ingest::series_cache::SeriesCache;
use strata_ingest::{IngestLog, KafkaLog, LocalLog, LogKind, LogSink};
use strata_schemas::WriteBatch;

/// The running parts of a node, shared by the HTTP handlers and background tasks.
#[derive(Debug)]
pub struct Node {
    /// The resolved configuration.
    pub config: ServerConfig,
    /// Absolute data directory.
    pub data_dir: PathBuf,
    /// The hot store.
    pub hot: Arc<HotStore>,
    /// The ScyllaDB hot tier, when `[hot] kind = "scylla"`: then it, not
    /// `hot` (open but empty), is the log's sink and the queries' hot store
    /// (`crate::hot_tier`).
    pub scylla: Option<Arc<strata_hot_scylla::ScyllaHot>>,
    /// The ingest log the write path appends to (one of the two below).
    pub log: Arc<dyn IngestLog>,
    /// The embedded log, when `[log] kind = "local"`.
    pub local_log: Option<Arc<LocalLog>>,
    /// The Kafka log, when `[log] kind = "kafka"`.
    pub kafka: Option<Arc<KafkaLog>>,
    /// Write-path counters.
    pub ingest_metrics: Arc<IngestMetrics>,
    /// Series id → labels across write requests.
    pub series_cache: Arc<SeriesCache>,
    /// The region directory (this node's region and jurisdiction in it).
    pub regions: Arc<strata_schemas::RegionDirectory>,
    /// Every batch the hot store applied, for the query front's cache.
    pub write_hook: Arc<strata_query::front::WriteHook>,
    /// When the node started.
    pub started: Instant,
    flush_lock: Arc<tokio::sync::Mutex<Instant>>,
    /// Set while a compaction started by [`Node::flush`] runs.
    compacting: std::sync::atomic::AtomicBool,
    _lock: File,
}

/// The data directory: created, made absolute and locked for this process
/// (the lock is held as long as the value, then by the [`Node`]).
#[derive(Debug)]
pub struct DataDir {
    /// Absolute path.
    pub path: PathBuf,
    lock: File,
}

impl DataDir {
    /// Creates `config.data_dir` if missing and takes its exclusive lock.
    pub fn lock(config: &ServerConfig) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
        let path = std::fs::canonicalize(&config.data_dir)?;
        let lock = lock_data_dir(&path)?;
        Ok(Self { path, lock })
    }
}

/// A node whose storage is open but whose embedded log is not replayed yet:
/// the hot store misses the log's unflushed tail, so nothing may read it
/// (no `Arc<Node>` exists) until [`Unreplayed::replay`] returns the node.
#[derive(Debug)]
pub struct Unreplayed(Node);

impl Unreplayed {
    /// Replays every partition's unflushed records into the hot store
    /// (a progress task per partition). Blocking.
    pub fn replay(self) -> anyhow::Result<Node> {
        self.0.replay()?;
        Ok(self.0)
    }
}

impl Node {
    /// Opens the hot store and the ingest log in the locked `dir`; the
    /// embedded log's tail is replayed by [`Unreplayed::replay`]. Blocking.
    /// `config.log.partitions` is the resolved count ([`serve`] resolves an
    /// automatic one before anything reads it).
    pub fn open(config: ServerConfig, dir: DataDir) -> anyhow::Result<Unreplayed> {
        let DataDir { path: data_dir, lock } = dir;
        let hot = Arc::new(
            HotStore::open(&data_dir.join("hot"), config.hot_store.clone())
                .with_context(|| format!("opening hot store in {}", data_dir.join("hot").display()))?,
        );
        // The hot store is the log's sink (`impl BatchSink for HotStore`), each
        // applied batch then reported to the query front (`ObservedSink`).
        let write_hook = Arc::new(strata_query::front::WriteHook::default());
        let scylla = crate::hot_tier::open(&config, &data_dir)?;
        let store: Arc<dyn LogSink> = match &scylla {
            Some(s) => Arc::clone(s) as Arc<dyn LogSink>,
            None => Arc::clone(&hot) as Arc<dyn LogSink>,
        };
        let sink = Arc::new(ObservedSink { store, hook: Arc::clone(&write_hook) }) as Arc<dyn LogSink>;
        let floor_hot = crate::hot_tier::Floor { hot: Arc::clone(&hot), scylla: scylla.clone() };
        let (log, local_log, kafka): (Arc<dyn IngestLog>, _, _) = match config.log.kind {
            LogKind::Local => {
                let log = LocalLog::open(&data_dir.join("log"), &config.log, |p| floor_hot.replay_from(p), sink)
                    .with_context(|| format!("opening ingest log in {}", data_dir.join("log").display()))?;
                let log = Arc::new(log);
                match config.log.sync {
                    strata_ingest::SyncMode::Always => tracing::info!(
                        partitions = log.partitions(),
                        "ingest log: embedded; a write is acknowledged once synced ([log] sync = \"always\")"
                    ),
                    strata_ingest::SyncMode::Interval => tracing::info!(
                        partitions = log.partitions(),
                        sync_interval = ?config.log.sync_interval,
                        "ingest log: embedded; a write is acknowledged once written and synced within sync_interval \
                         ([log] sync = \"interval\": a kill -9 loses nothing acknowledged, a power cut may lose \
                         the last interval)"
                    ),
                }
                (Arc::clone(&log) as Arc<dyn IngestLog>, Some(log), None)
            }
            LogKind::Kafka => {
                if config.log.kafka.consume && scylla.is_none() && hot.flushed_offsets().is_empty() {
                    tracing::info!(
                        "hot store is empty: the partitions assigned to this node are rebuilt from the Kafka topic \
                         (everything within its retention); progress follows"
                    );
                }
                let floor: Arc<dyn Fn(u32) -> u64 + Send + Sync> = Arc::new(move |p| floor_hot.replay_from(p));
                let log = KafkaLog::open(&config.log.kafka, config.log.partitions, &config.region, floor, sink)
                    .with_context(|| format!("opening the Kafka ingest log on {}", config.log.kafka.brokers))?;
                let log = Arc::new(log);
                (Arc::clone(&log) as Arc<dyn IngestLog>, None, Some(log))
            }
        };
        let series_cache = Arc::new(SeriesCache::new(config.ingest.series_cache_entries));
        let regions = Arc::new(config.region_directory()?);
        let ingest_metrics = Arc::new(IngestMetrics::default());
        if let Some(log) = &local_log {
            let _ = ingest_metrics.log_health.set(log.health());
        }
        let node = Self {
            config,
            data_dir,
            hot,
            scylla,
            log,
            local_log,
            kafka,
            ingest_metrics,
            series_cache,
            regions,
            write_hook,
            started: Instant::now(),
            flush_lock: Arc::new(tokio::sync::Mutex::new(Instant::now())),
            compacting: std::sync::atomic::AtomicBool::new(false),
            _lock: lock,
        };
        Ok(Unreplayed(node))
    }

    /// The first log offset of `partition` the hot tier needs replayed.
    fn replay_from(&self, partition: u32) -> u64 {
        crate::hot_tier::Floor { hot: Arc::clone(&self.hot), scylla: self.scylla.clone() }.replay_from(partition)
    }

    /// The hot tier queries read: the ScyllaDB tier or the hot store.
    pub fn hot_read(&self) -> Arc<dyn strata_schemas::ReadStore> {
        match &self.scylla {
            Some(s) => Arc::clone(s) as Arc<dyn strata_schemas::ReadStore>,
            None => Arc::clone(&self.hot) as Arc<dyn strata_schemas::ReadStore>,
        }
    }

    /// Whether this node answers queries for `partition`: always with the
    /// embedded log; with Kafka, while its consumer holds the partition.
    pub fn owns_partition(&self, partition: u32) -> bool {
        match &self.kafka {
            Some(k) => k.is_assigned(partition),
            None => true,
        }
    }

    /// Replays every partition's records that the hot store has not flushed
    /// (embedded log only: the Kafka consumer replays on assignment).
    fn replay(&self) -> anyhow::Result<()> {
        let Some(log) = &self.local_log else { return Ok(()) };
        let t0 = Instant::now();
        let partitions = self.config.log.partitions;
        let (mut records, mut samples) = (0u64, 0u64);
        let pending: u64 = (0..partitions)
            .map(|p| log.next_offset(p).saturating_sub(self.replay_from(p).max(log.first_offset(p))))
            .sum();
        if pending > 0 {
            tracing::info!(
                records = pending,
                partitions,
                "replaying the ingest log past the hot store's flushed offsets; /-/ready answers 503 until it is done"
            );
        }
        // Progress per partition: `crate::progress` logs it and shows it on the storage page.
        for p in 0..partitions {
            let from = self.replay_from(p);
            let end = log.next_offset(p);
            let task = strata_schemas::progress::global().start(
                strata_schemas::progress::TaskKind::Replay,
                None,
                Some(p),
                "records",
                Some(end.saturating_sub(from)),
            );
            if from < log.first_offset(p) {
                tracing::warn!(
                    partition = p,
                    needed = from,
                    first_available = log.first_offset(p),
                    "ingest log no longer holds records the hot store needs; they are lost"
                );
            }
            log.replay(p, from, &mut |offset, payload| {
                let batch = WriteBatch::decode(payload).map_err(|e| strata_ingest::Error::Apply {
                    partition: p,
                    offset,
                    kind: strata_schemas::ErrorKind::Corruption,
                    detail: e.to_string(),
                })?;
                samples += batch.sample_count() as u64;
                let applied = match &self.scylla {
                    Some(s) => s.apply(p, offset, &batch).map_err(|e| (e.kind(), e.to_string())),
                    None => self.hot.apply(p, offset, &batch).map_err(|e| (e.kind(), e.to_string())),
                };
                applied.map_err(|(kind, detail)| strata_ingest::Error::Apply { partition: p, offset, kind, detail })?;
                records += 1;
                task.add(1);
                Ok(())
            })?;
            // Gaps (quarantined records) make the range larger than what was replayed.
            task.set_total(task.done());
            task.finish();
        }
        let secs = t0.elapsed().as_secs_f64();
        tracing::info!(
            records,
            samples,
            seconds = format!("{secs:.2}"),
            samples_per_sec = (samples as f64 / secs.max(1e-9)) as u64,
            "ingest log replay complete"
        );
        Ok(())
    }

    /// Flushes the memtable to a segment and releases log segments the hot
    /// store no longer needs (Kafka: commits the flushed offsets to the
    /// consumer group). Concurrent calls serialize.
    ///
    /// The flush runs on a thread of its own at the node's CPU priority (not
    /// lowered like a compaction, [`background`]): writes are acknowledged
    /// from the memtable, but a memtable at its hard limit stops them until
    /// a flush has swapped it out (back-pressure), so the flush must keep
    /// up. At nice +10 on a saturated host it got a few percent of a core;
    /// a 6.4 M-sample flush that took seconds then left the writers waiting
    /// for it (the soak's run 8). It costs a few percent of a core.
    ///
    /// It returns once the segments and the manifest are durable; the log
    /// segments below the flushed offsets are released after that, still
    /// under the flush lock (the next flush waits for them): unlinking a
    /// partition's segment frees its page cache, ~8 ms each, and the
    /// answer does not depend on it. A crash before the release leaves
    /// segments that replay skips (the manifest's flushed offsets) and the
    /// next flush releases. [`Node::flush_released`] waits for it.
    ///
    /// Nobody waits for it: it encodes on one thread, paced to `[hot_store]
    /// flush_cpu_share` of a core while the new memtable has room
    /// ([`HotStore::flush_paced`]; unpaced at the default share, 1).
    pub async fn flush(self: &Arc<Self>, reason: &'static str) -> anyhow::Result<strata_hot_store::FlushOutcome> {
        self.flush_with(reason, FlushMode::Paced, false).await
    }

    /// [`Node::flush`] for a caller that waits for it (`POST /internal/flush`,
    /// shutdown): the flush thread keeps the node's CPU priority and encodes
    /// the segments' blocks on every core ([`HotStore::flush_on`]); the
    /// files, and the order they are written and synced in, are those of
    /// any flush. Writes go on meanwhile, from the fresh memtable.
    pub async fn flush_requested(
        self: &Arc<Self>,
        reason: &'static str,
    ) -> anyhow::Result<strata_hot_store::FlushOutcome> {
        self.flush_with(reason, FlushMode::AllCores, false).await
    }

    /// A flush that returns once the log segments below the flushed
    /// offsets are released too (erasure: what it erased must be gone from
    /// the log; shutdown: the log closes next), not paced; on every core
    /// when `all_cores`.
    pub async fn flush_released(
        self: &Arc<Self>,
        reason: &'static str,
        all_cores: bool,
    ) -> anyhow::Result<strata_hot_store::FlushOutcome> {
        self.flush_with(reason, if all_cores { FlushMode::AllCores } else { FlushMode::OneThread }, true).await
    }

    async fn flush_with(
        self: &Arc<Self>,
        reason: &'static str,
        encode: FlushMode,
        await_release: bool,
    ) -> anyhow::Result<strata_hot_store::FlushOutcome> {
        let mut last = Arc::clone(&self.flush_lock).lock_owned().await;
        let node = Arc::clone(self);
        let threads = match encode {
            FlushMode::AllCores => std::thread::available_parallelism().map_or(1, |n| n.get()),
            FlushMode::OneThread | FlushMode::Paced => 1,
        };
        // The node's own flushes at `[hot_store] flush_nice`; one someone waits for at the caller's priority.
        let nice = match encode {
            FlushMode::Paced => self.config.hot_store.flush_nice,
            FlushMode::AllCores | FlushMode::OneThread => 0,
        };
        let outcome = on_thread("strata-flush", nice, move || -> anyhow::Result<_> {
            let t0 = Instant::now();
            let mut outcome = match encode {
                FlushMode::Paced => node.hot.flush_paced()?,
                FlushMode::AllCores | FlushMode::OneThread => node.hot.flush_on(threads)?,
            };
            // The ScyllaDB tier: what the cluster acknowledged, recorded in it first.
            if let Some(s) = &node.scylla {
                outcome.flushed_offsets = s.flush()?;
            }
            if outcome.samples > 0 {
                tracing::info!(
                    reason,
                    series = outcome.series,
                    samples = outcome.samples,
                    threads,
                    ms = t0.elapsed().as_millis() as u64,
                    paused_ms = outcome.paused.as_millis() as u64,
                    "flushed memtable to segment"
                );
            }
            Ok(outcome)
        })
        .await??;
        // Walks the memtable under the state's read lock: off the async
        // workers, and not on the flush's thread, whose priority may be
        // lowered: a low-priority thread preempted while holding the lock
        // keeps every apply waiting for it (see `LOCK_SLICE` in the hot store).
        let hot = Arc::clone(&self.hot);
        let stats = tokio::task::spawn_blocking(move || hot.stats()).await?;
        *last = Instant::now();
        let node = Arc::clone(self);
        let offsets = outcome.flushed_offsets.clone();
        let release = async move {
            let released = on_thread("strata-release", 0, move || node.release_log(&offsets)).await;
            drop(last);
            released.and_then(|r| r)
        };
        if await_release {
            release.await?;
        } else {
            tokio::spawn(async move {
                if let Err(e) = release.await {
                    tracing::error!(error = %format!("{e:#}"), "releasing log segments after a flush failed; the next flush releases them");
                }
            });
        }
        // Buckets hold one segment each after compaction; merge once flushes
        // have added `compact_segments` extra ones. In a task of its own: the
        // next flush must not wait for it (the store runs the two side by
        // side), or a long compaction would leave the memtable to grow into
        // its hard limit, where applies flush inline and writes stall.
        use std::sync::atomic::Ordering;
        let limit = self.config.hot_store.compact_segments;
        if limit > 0 && stats.segments >= stats.buckets + limit && !self.compacting.swap(true, Ordering::AcqRel) {
            let node = Arc::clone(self);
            tokio::spawn(async move {
                if let Err(e) = node.compact().await {
                    tracing::error!(error = %format!("{e:#}"), "hot-store compaction after a flush failed");
                }
                node.compacting.store(false, Ordering::Release);
            });
        }
        Ok(outcome)
    }

    /// Releases the log segments below `offsets` (local log), or commits
    /// them to the consumer group (Kafka).
    fn release_log(&self, offsets: &BTreeMap<u32, u64>) -> anyhow::Result<()> {
        let t0 = Instant::now();
        let mut released = 0;
        if let Some(log) = &self.local_log {
            for (&p, &offset) in offsets {
                released += log.release(p, offset)?;
            }
        }
        if let Some(kafka) = &self.kafka {
            kafka.commit(offsets)?;
        }
        tracing::debug!(segments = released, ms = t0.elapsed().as_millis() as u64, "released log segments");
        Ok(())
    }

    /// Merges the hot store's segments into one, on a thread of its own at
    /// a lower CPU priority ([`background`]).
    pub async fn compact(self: &Arc<Self>) -> anyhow::Result<strata_hot_store::CompactOutcome> {
        let hot = Arc::clone(&self.hot);
        Ok(background("strata-compact", move || hot.compact()).await??)
    }

    /// Flushes when the memtable is over its sample budget or older than the flush interval.
    pub async fn flush_if_due(self: &Arc<Self>) -> anyhow::Result<()> {
        let cfg = &self.config.hot_store;
        let samples = self.hot.memtable_samples();
        let age = self.flush_lock.lock().await.elapsed();
        if samples >= self.hot.flush_threshold() {
            self.flush("memtable full").await?;
        } else if samples > 0 && age >= cfg.flush_interval {
            self.flush("interval").await?;
        } else if self.hot.flush_pending() {
            self.flush("retry after a full disk").await?;
        }
        Ok(())
    }

    /// Applies the registry's hot TTLs and deletes expired hot buckets.
    pub async fn expire(self: &Arc<Self>, registry: &crate::registry::Registry) -> anyhow::Result<()> {
        let ttls = registry.hot_ttls().await?;
        if let Some(s) = &self.scylla {
            crate::hot_tier::set_ttls(s, &self.config, ttls.clone());
        }
        let hot = Arc::clone(&self.hot);
        let out = tokio::task::spawn_blocking(move || {
            hot.set_hot_ttls(ttls);
            hot.expire(strata_schemas::time::now_millis())
        })
        .await??;
        if out.segments > 0 {
            tracing::info!(
                segments = out.segments,
                series = out.series,
                "expired hot buckets past their tenant's hot_ttl"
            );
        }
        Ok(())
    }

    /// A tenant's usage: what the write path counted, what the hot store
    /// holds, and `(queries, samples)` from the query engine.
    pub fn usage(&self, tenant: &strata_schemas::TenantId, (queries, query_samples): (u64, u64)) -> serde_json::Value {
        use std::sync::atomic::Ordering::Relaxed;
        let c = self.ingest_metrics.tenant(tenant);
        let rejected: serde_json::Map<String, serde_json::Value> =
            c.rejected.lock().iter().map(|(k, v)| ((*k).to_owned(), (*v).into())).collect();
        serde_json::json!({
            "tenant": tenant.as_str(),
            "write_requests": c.requests.load(Relaxed),
            "samples_accepted": c.samples_accepted.load(Relaxed),
            "rejected_by_reason": rejected,
            "active_series": self.hot.tenant_series(tenant),
            "hot_bytes": self.hot.disk_bytes_by_tenant().get(tenant.as_str()).copied().unwrap_or(0),
            "queries": queries,
            "query_samples": query_samples,
        })
    }

    /// Final flush and log close on shutdown.
    pub async fn shutdown(self: &Arc<Self>) -> anyhow::Result<()> {
        let result = self.flush_released("shutdown", true).await;
        let (local, kafka) = (self.local_log.clone(), self.kafka.clone());
        tokio::task::spawn_blocking(move || {
            if let Some(log) = local {
                log.close();
            }
            if let Some(log) = kafka {
                log.close(Duration::from_secs(5));
            }
        })
        .await?;
        result.map(|_| ())
    }
}

/// Nice value of the compaction thread ([`background`]): under CPU
/// contention a nice-0 thread gets ~9× the CPU time of a nice-10 one, so the
/// write path's threads (log writers, request decoding, the async workers)
/// run first (the node's own flushes run at `[hot_store] flush_nice`, 10 by
/// default, the compaction's equal), and an idle core is still the
/// compaction's in full. A starved compaction only leaves more segments to read meanwhile;
/// nothing waits for it (an expiry waits for it without holding the flush
/// lock, `HotStore::expire`). Work at this priority must not hold a lock
/// others wait for longer than a moment (`LOCK_SLICE` in the hot store).
const BACKGROUND_NICE: i32 = 10;

/// Runs `f` on a new thread named `name` whose CPU priority is lowered to
/// [`BACKGROUND_NICE`] (Linux: the nice value is per thread), and waits for
/// its result without blocking an async worker. A new thread per call: the
/// priority must not stay with a pooled thread that later decodes a write.
async fn background<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
    on_thread(name, BACKGROUND_NICE, f).await
}

/// How a flush of the node encodes its segments' blocks.
#[derive(Debug, Clone, Copy)]
enum FlushMode {
    /// On one thread paced to `[hot_store] flush_cpu_share` of a core (the
    /// node's own flushes, which nobody waits for).
    Paced,
    /// On one thread, unpaced.
    OneThread,
    /// On every core (a flush someone waits for).
    AllCores,
}

/// Runs `f` on a new thread named `name`, its nice value raised by `nice`
/// (0: the caller's priority; [`background`] uses [`BACKGROUND_NICE`]), and
/// waits for its result without blocking an async worker.
async fn on_thread<T: Send + 'static>(
    name: &str,
    nice: i32,
    f: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let thread = name.to_owned();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            if nice > 0 {
                lower_priority(&thread, nice);
            }
            let _ = tx.send(f());
        })
        .with_context(|| format!("starting the {name} thread"))?;
    rx.await.with_context(|| format!("the {name} thread ended without an answer (panicked?)"))
}

/// Adds `by` to the calling thread's nice value (at most 19: a node
/// started under `nice` keeps its order). A failure only logs: the work
/// then runs at the thread's inherited priority.
fn lower_priority(thread: &str, by: i32) {
    #[cfg(target_os = "linux")]
    {
        // `{get,set}priority(PRIO_PROCESS, 0, …)` act on the calling thread
        // on Linux, not the whole process (man 2 setpriority, "Bugs").
        use rustix::process::{getpriority_process, setpriority_process};
        let lowered =
            getpriority_process(None).and_then(|nice| setpriority_process(None, nice.saturating_add(by).min(19)));
        if let Err(e) = lowered {
            tracing::debug!(thread, error = %e, "could not lower the thread's CPU priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (thread, by);
}

/// The Kafka partitions this node may roll: those it holds and has applied
/// (`applied[p]`, the next offset to apply) up to the broker's high
/// watermark (`high[p]`) *and* past every record its own producer had
/// acknowledged (`produced[p]`, one past the highest). The second bound
/// does not trust the broker's watermark answer alone: in a fault campaign
/// on tansu, a watermark request answered 49 while this node had applied
/// up to 51 and went on to apply its own acknowledged writes up to 117, and
/// a bucket rolled in between lost the acknowledged samples applied after it.
fn rollable_partitions(
    high: &[i64],
    produced: &[Option<u64>],
    applied: &[Option<u64>],
) -> std::collections::BTreeSet<u32> {
    (0..applied.len())
        .filter(|&p| {
            let Some(n) = applied[p] else { return false };
            let Some(&h) = high.get(p) else { return false };
            let end = produced.get(p).copied().flatten().unwrap_or(0);
            i64::try_from(n).is_ok_and(|n| n >= h) && n >= end
        })
        .map(|p| p as u32)
        .collect()
}

/// Takes an exclusive lock on the data directory so two processes never share it.
fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<File> {
    let path = dir.join("LOCK");
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            anyhow::bail!("data dir {} is in use by another strata process (lock {})", dir.display(), path.display())
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}

/// Runs `strata serve` until SIGINT/SIGTERM.
///
/// The listeners serve as soon as the data directory is locked and the
/// tenant registry is open ([`crate::startup`]): while the hot store opens
/// and the embedded log replays, `/-/healthy`, `/metrics`, the console and
/// `GET /api/v1/status/tasks` answer, `/-/ready` answers 503 saying how far
/// the replay is, and every other request (queries, writes, peers, other
/// regions, the admin API) answers 503 with `Retry-After`. Nothing reads the
/// hot store before the replay ended; then the full API is swapped in.
pub async fn serve(mut config: ServerConfig) -> anyhow::Result<()> {
    // Certificate and key first: a bad file stops startup before anything is opened.
    let tls = match (&config.http.tls_cert, &config.http.tls_key) {
        (Some(cert), Some(key)) => Some(crate::tls::acceptor(cert, key)?),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("binding HTTP address {}", config.http_addr))?;
    let admin_listener = match config.http.admin_addr {
        Some(a) => {
            Some(tokio::net::TcpListener::bind(a).await.with_context(|| format!("binding http.admin_addr {a}"))?)
        }
        None => None,
    };
    let lock_config = config.clone();
    let dir = tokio::task::spawn_blocking(move || DataDir::lock(&lock_config)).await??;
    let data_dir = dir.path.clone();
    // `[log] partitions = 0` (automatic): an existing log's count, else one per core.
    config.log.partitions = config.log.resolved_partitions(&data_dir.join("log"));
    let url = Some(config.registry.url.as_str()).filter(|u| !u.is_empty());
    let static_tokens = StaticTokens::new(&config.auth.tokens)?;
    let registry =
        crate::registry::open_for(url, &data_dir, static_tokens, &config.region, config.limits.clone()).await?;
    let watcher = tokio::spawn(Arc::clone(&registry).watch());
    let admin_token = admin_token(&config, &data_dir)?;
    // Progress lines of replays, rebuilds (Kafka), rolls and merges.
    crate::progress::start_reporter(config.progress_log_interval);

    // Serve the startup routes now; the full app replaces them once ready.
    let startup = crate::startup::Startup::new(config.log.partitions);
    let gate = startup.router(crate::progress::TasksState {
        resolver: Arc::clone(&registry) as Arc<dyn strata_schemas::TenantResolver>,
        registry: Arc::clone(&registry),
        admin_token: Arc::clone(&admin_token),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let listeners = Listeners::start(listener, admin_listener, gate, &config, tls, &stop_rx)?;
    tracing::info!(
        listen = %listeners.listen,
        admin_listen = listeners.admin_listen.as_deref().unwrap_or("(the main listener)"),
        "HTTP listener open while the node starts: /-/healthy, /metrics, /api/v1/status/tasks and the console \
         answer; /-/ready, queries and writes answer 503 until the node is ready"
    );
    print_listening(&listeners.listen, listeners.admin_listen.as_deref(), &config.region, &data_dir);

    let open_config = config.clone();
    let unreplayed = tokio::task::spawn_blocking(move || Node::open(open_config, dir)).await??;
    startup.set_phase(crate::startup::Phase::Replaying);
    let node = Arc::new(tokio::task::spawn_blocking(move || unreplayed.replay()).await??);
    startup.set_phase(crate::startup::Phase::Wiring);
    let (app, admin_audit, flusher) = wire(&node, &registry, admin_token, &stop_rx).await?;
    // A delete request recorded while the node started hides its data from the first query on.
    if let Err(e) = registry.reload().await {
        tracing::warn!(error = %format!("{e:#}"), "tenant registry reload failed; keeping the last snapshot");
    }
    startup.ready(app);
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        listen = %listeners.listen,
        admin_listen = listeners.admin_listen.as_deref().unwrap_or("(the main listener)"),
        admin_audit = %admin_audit.display(),
        data_dir = %node.data_dir.display(),
        region = %node.config.region,
        partitions = node.config.log.partitions,
        log = ?node.config.log.kind,
        peers = node.config.cluster.peers.len(),
        startup_ms = startup.elapsed().as_millis() as u64,
        "strata is ready"
    );
    print_ready(startup.elapsed());

    shutdown_signal().await;
    tracing::info!("shutdown requested: finishing in-flight requests");
    let _ = stop_tx.send(true);
    let servers = async move {
        listeners.main.await?;
        if let Some(admin) = listeners.admin {
            admin.await?;
        }
        Ok::<_, tokio::task::JoinError>(())
    };
    match tokio::time::timeout(node.config.shutdown_timeout, servers).await {
        Ok(result) => result?,
        Err(_) => tracing::warn!("in-flight requests did not finish within shutdown_timeout; closing anyway"),
    }
    flusher.abort();
    watcher.abort();
    node.shutdown().await?;
    tracing::info!("strata stopped cleanly");
    Ok(())
}

/// The serving listeners (the main one, and the admin one when `[http] admin_addr` is set).
struct Listeners {
    main: tokio::task::JoinHandle<()>,
    admin: Option<tokio::task::JoinHandle<()>>,
    /// `scheme://addr` of the main listener.
    listen: String,
    /// `scheme://addr` of the admin listener.
    admin_listen: Option<String>,
}

impl Listeners {
    /// Serves `app` on the bound listeners (the admin listener its own paths
    /// only, the main one the rest) until `stop`.
    fn start(
        listener: tokio::net::TcpListener,
        admin_listener: Option<tokio::net::TcpListener>,
        app: axum::Router,
        config: &ServerConfig,
        tls: Option<crate::tls::Acceptor>,
        stop: &tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<Self> {
        let listen = format!("{}://{}", config.scheme(), listener.local_addr()?);
        let (main_app, admin, admin_listen) = match admin_listener {
            Some(l) => {
                let admin_listen = format!("{}://{}", config.admin_scheme(), l.local_addr()?);
                let admin_app = http::for_listener(app.clone(), true);
                let admin_tls = if config.http.admin_tls { tls.clone() } else { None };
                let serve = crate::listener::serve(l, admin_app, config.http.clone(), admin_tls, stop.clone());
                (http::for_listener(app, false), Some(tokio::spawn(serve)), Some(admin_listen))
            }
            None => (app, None, None),
        };
        let main = tokio::spawn(crate::listener::serve(listener, main_app, config.http.clone(), tls, stop.clone()));
        Ok(Self { main, admin, listen, admin_listen })
    }
}

/// Once the log is replayed: the cold tier, the full app (with the admin
/// audit layer), the flusher and the erasure worker. Returns the app, the
/// admin audit log's path and the flusher's task.
async fn wire(
    node: &Arc<Node>,
    registry: &Arc<crate::registry::Registry>,
    admin_token: Arc<str>,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<(axum::Router, PathBuf, tokio::task::JoinHandle<()>)> {
    let cold = open_cold(node, stop.clone()).await?;
    if let Some(c) = &cold {
        tokio::spawn(crate::admin::sync_cold_retentions(Arc::clone(registry), Arc::clone(&c.compactor)));
        c.compactor.set_group_rollup_source(group_rollup_source(Arc::clone(registry)));
    }
    let admin_audit =
        Arc::new(crate::admin_audit::AdminAudit::open(&crate::erasure::audit_dir(&node.config, &node.data_dir))?);
    let audit_state = crate::admin_audit::AuditState {
        log: Arc::clone(&admin_audit),
        admin_token: Arc::clone(&admin_token),
        static_tokens: StaticTokens::new(&node.config.auth.tokens)?,
    };
    let app = http::app(Arc::clone(node), Arc::clone(registry), admin_token, cold.clone())
        .merge(crate::admin_audit::router(audit_state.clone()))
        .layer(axum::middleware::from_fn_with_state(audit_state, crate::admin_audit::layer));
    let flusher = tokio::spawn(run_flusher(Arc::clone(node), Arc::clone(registry)));
    // The purge of delete requests (`erasure::worker`).
    crate::erasure::start(
        Arc::clone(node),
        Arc::clone(registry),
        cold.as_ref().map(|c| Arc::clone(&c.compactor)),
        stop.clone(),
    )?;
    Ok((app, admin_audit.path().to_path_buf(), flusher))
}

/// The `serve` command's start-up lines on stdout when the listeners open
/// (scripts and the tests' harness wait for "listening on"; `/-/ready`
/// says when queries and writes are served).
#[expect(clippy::print_stdout, reason = "the serve command's own output, not library logging")]
fn print_listening(listen: &str, admin_listen: Option<&str>, region: &str, data_dir: &std::path::Path) {
    println!("strata {} listening on {listen} (region {region}); starting", env!("CARGO_PKG_VERSION"));
    if let Some(a) = admin_listen {
        println!("admin listener (/admin, /internal) on {a}");
    }
    println!("data dir: {}", data_dir.display());
}

/// The `serve` command's line on stdout once the node serves queries and writes.
#[expect(clippy::print_stdout, reason = "the serve command's own output, not library logging")]
fn print_ready(after: Duration) {
    println!("strata is ready ({:.1} s after the listener opened)", after.as_secs_f64());
}

/// The cold tier of a node: the compactor (rolling sealed hot buckets into
/// Iceberg) and the store that reads hot and cold as one.
#[derive(Clone)]
pub struct Cold {
    /// Rolls sealed hot buckets into the tenant tables.
    pub compactor: Arc<strata_compactor::Compactor>,
    /// Hot and cold split at each tenant's cold watermark.
    pub store: Arc<dyn strata_schemas::ReadStore>,
}

impl std::fmt::Debug for Cold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cold").finish_non_exhaustive()
    }
}

/// Opens the cold tier and starts the compactor loop, when `[cold] enabled`.
async fn open_cold(node: &Arc<Node>, stop: tokio::sync::watch::Receiver<bool>) -> anyhow::Result<Option<Cold>> {
    let config = &node.config;
    if !config.cold.enabled {
        tracing::info!("cold tier off ([cold] enabled = false): data stays in the hot store until its retention");
        return Ok(None);
    }
    // Nodes sharing the ScyllaDB tier roll one keyspace: into one set of
    // tables (the catalog's roll state decides which node commits a
    // bucket), never each into a warehouse of its own.
    if node.scylla.is_some()
        && !config.cluster.peers.is_empty()
        && (config.cold.catalog_url.is_empty() || config.cold.warehouse.is_empty())
    {
        tracing::warn!(
            "cold tier off: this node shares the ScyllaDB hot tier with [cluster] peers, and rolls of a shared tier \
             need the catalog and warehouse every node uses: set [cold] catalog_url (e.g. postgres://) and \
             warehouse (e.g. s3://) on every node, or [cold] enabled = false to silence this; data stays in the \
             cluster until its hot TTL"
        );
        return Ok(None);
    }
    // Nodes sharing a Kafka log roll per log partition into one set of
    // tables: each must name the shared catalog and warehouse. The per-node
    // defaults under the data dir would each hold only this node's
    // partitions, whose roll state never covers the others, so the watermark
    // would never rise and the hot store would keep everything.
    if config.log.kind == strata_ingest::LogKind::Kafka
        && !config.cluster.peers.is_empty()
        && (config.cold.catalog_url.is_empty() || config.cold.warehouse.is_empty())
    {
        tracing::warn!(
            "cold tier off: this node shares a Kafka log with [cluster] peers, and rolls of a shared log need the \
             catalog and warehouse every node uses: set [cold] catalog_url (e.g. postgres://) and warehouse \
             (e.g. s3://) on every node, or [cold] enabled = false to silence this; data stays in the hot store"
        );
        return Ok(None);
    }
    let started = std::time::Instant::now();
    let tier = Arc::new(
        strata_cold_tier::ColdTier::open(&config.cold, &node.data_dir).await.context("opening the cold tier")?,
    );
    // The roll source: the embedded hot store, or the ScyllaDB tier (the
    // watermark stays in the embedded store's manifest either way).
    let compactor = Arc::new(match &node.scylla {
        Some(s) => strata_compactor::Compactor::with_source(
            Arc::clone(&node.hot),
            Arc::new(crate::hot_tier::ScyllaRollSource(Arc::clone(s))),
            Arc::clone(&tier),
            config.compactor.clone(),
        ),
        None => strata_compactor::Compactor::new(Arc::clone(&node.hot), Arc::clone(&tier), config.compactor.clone()),
    });
    if node.scylla.is_some()
        && let Some(problem) = crate::hot_tier::roll_ttl_problem(config, compactor.grace())
    {
        tracing::warn!("{problem}; raise the TTL or lower the grace");
    }
    arm_roll_crash(&compactor);
    // Rolls are owned per log partition: this node rolls a partition only
    // while it holds it and has applied it up to the log's end; the roll
    // state in the catalog lets the next owner continue (compactor docs).
    let rollable: strata_compactor::RollableFn = match &node.kafka {
        Some(kafka) => {
            let kafka = Arc::clone(kafka);
            let last_rollable = parking_lot::Mutex::new(std::collections::BTreeSet::new());
            Arc::new(move |count: u32| {
                // The broker's high watermarks now (the statistics' may predate a
                // reassignment), then what this node has applied: a partition
                // is rollable when every record below them is applied here.
                let high = match kafka.fetch_high_watermarks(Duration::from_secs(5)) {
                    Ok(h) => h,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot ask the broker for high watermarks; no partition rolls this pass");
                        return std::collections::BTreeSet::new();
                    }
                };
                let applied: Vec<Option<u64>> = (0..count).map(|p| kafka.applied(p)).collect();
                let produced: Vec<Option<u64>> = (0..count).map(|p| kafka.produced_end(p)).collect();
                let rollable = rollable_partitions(&high, &produced, &applied);
                let mut last = last_rollable.lock();
                if *last != rollable {
                    tracing::info!(?rollable, ?high, ?produced, ?applied, "partitions this node may roll changed");
                    *last = rollable.clone();
                }
                rollable
            })
        }
        None => Arc::new(|count: u32| (0..count).collect()),
    };
    compactor.set_partitioning(config.log.partitions, rollable, node.kafka.is_some());
    // With [cluster] peers the node never holds every partition: the
    // per-partition gate above (held and caught up) replaces the hold.
    if let Some(kafka) = node.kafka.clone().filter(|_| config.log.kafka.consume && config.cluster.peers.is_empty()) {
        hold_rolls_until_replayed(&compactor, kafka, config.log.partitions, stop.clone()).await;
    }
    let mut stop = stop;
    tokio::spawn(Arc::clone(&compactor).run(async move {
        let _ = stop.wait_for(|s| *s).await;
    }));
    let cold_read = strata_cold_tier::ColdReadStore::new(Arc::clone(&tier), tokio::runtime::Handle::current());
    let hot = Arc::clone(&node.hot);
    let store = Arc::new(
        strata_compactor::FederatedReadStore::new(
            node.hot_read(),
            Arc::new(cold_read),
            Arc::new(move |t: &strata_schemas::TenantId| hot.cold_watermark(t)),
        )
        .with_group_rollups(tier, tokio::runtime::Handle::current(), compactor.group_rollups()),
    );
    tracing::info!(
        warehouse = %config.cold.warehouse_url(&node.data_dir),
        catalog = %redact_userinfo(&config.cold.catalog_url(&node.data_dir)),
        opened_ms = started.elapsed().as_millis() as u64,
        source = if node.scylla.is_some() { "scylla" } else { "embedded" },
        "cold tier on: sealed hot buckets roll into Iceberg tables (off: [cold] enabled = false)"
    );
    Ok(Some(Cold { compactor, store }))
}

/// Where the compactor reads the tenants' group rollup declarations
/// (`TenantPolicy::group_rollups`) at the start of each roll pass.
fn group_rollup_source(registry: Arc<crate::registry::Registry>) -> strata_compactor::GroupRollupSource {
    Arc::new(move || {
        let registry = Arc::clone(&registry);
        Box::pin(async move {
            match registry.tenants().await {
                Ok(rows) => Some(
                    rows.into_iter()
                        .filter(|r| !r.policy.group_rollups.is_empty())
                        .map(|r| (r.policy.id, r.policy.group_rollups))
                        .collect(),
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "reading tenants' group rollups failed; keeping the previous ones");
                    None
                }
            }
        })
    })
}

/// Test hook: `STRATA_ROLL_CRASH_AT=<point>` (one of
/// [`strata_compactor::FAILPOINTS`], e.g. `after_commit`) aborts the process
/// the first time a roll reaches that point, as a `kill -9` there would
/// (`server/tests/it/scylla.rs`). Unset: nothing is armed. Only with the
/// cargo feature `failpoints` (the server's test builds; `erasure/crash.rs`).
#[cfg(feature = "failpoints")]
fn arm_roll_crash(compactor: &strata_compactor::Compactor) {
    let Some(point) = std::env::var("STRATA_ROLL_CRASH_AT").ok().filter(|p| !p.is_empty()) else { return };
    tracing::warn!(point = %point, "STRATA_ROLL_CRASH_AT: the process aborts when a roll reaches this point (test hook)");
    compactor.set_pass_hook(Arc::new(move |at| {
        if at == point {
            tracing::error!(point = at, "STRATA_ROLL_CRASH_AT: aborting (test hook)");
            std::process::abort();
        }
    }));
}

/// Without the `failpoints` feature `STRATA_ROLL_CRASH_AT` is not read.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
fn arm_roll_crash(_compactor: &strata_compactor::Compactor) {}

/// With a Kafka log, the records past the hot store's flushed offsets are
/// applied only once the consumer group assigns the partitions (seconds
/// after a restart). A bucket rolled before that would move the cold
/// watermark past the replayed samples, which queries then never read (the
/// fault campaign, `benches/drivers/faults.py`, lost acknowledged samples so).
/// Holds the compactor's pass lock — rolls, maintenance, purges and
/// `/internal/roll` wait — until every partition is assigned and caught up.
async fn hold_rolls_until_replayed(
    compactor: &Arc<strata_compactor::Compactor>,
    kafka: Arc<KafkaLog>,
    partitions: u32,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let (held, is_held) = tokio::sync::oneshot::channel();
    let compactor = Arc::clone(compactor);
    tokio::spawn(async move {
        let _pass = compactor.exclusive().await;
        let _ = held.send(());
        tracing::info!("cold rolls wait until this node has replayed its Kafka partitions");
        loop {
            let st = kafka.status();
            if st.partitions.iter().filter(|p| p.assigned).count() == partitions as usize && st.caught_up() {
                tracing::info!("Kafka partitions replayed; cold rolls start");
                return;
            }
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    });
    let _ = is_held.await;
}

/// `scheme://user:secret@host/…` without its user info, for log lines.
fn redact_userinfo(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

/// The admin token: configured, or generated once into `<data_dir>/admin.token`.
fn admin_token(config: &ServerConfig, data_dir: &std::path::Path) -> anyhow::Result<Arc<str>> {
    if !config.admin.token.is_empty() {
        return Ok(config.admin.token.as_str().into());
    }
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    if let Ok(token) = std::fs::read_to_string(&path) {
        return Ok(token.trim().into());
    }
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for the admin token: {e}"))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        #[cfg(unix)]
        use std::os::unix::fs::OpenOptionsExt;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        options.mode(0o600);
        let mut f = options.open(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(token.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    tracing::info!(path = %path.display(), "generated the admin token (used by `strata admin`)");
    Ok(token.into())
}

/// File in the data dir holding a generated admin token.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// Every second, flushes the memtable when it is due ([`Node::flush_if_due`]);
/// beside it, every [`EXPIRY_INTERVAL`], the hot-store expiry.
async fn run_flusher(node: Arc<Node>, registry: Arc<crate::registry::Registry>) {
    // The expiry runs beside the flushes, not between them: it waits for a
    // running compaction (seconds, on a busy host), and the memtable must
    // go on being flushed meanwhile, or writes stall at its hard limit.
    // Owned by this task: aborting the flusher (shutdown) stops it too.
    let mut expiry = tokio::task::JoinSet::new();
    expiry.spawn(run_expiry(Arc::clone(&node), registry));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = node.flush_if_due().await {
            tracing::error!(error = %format!("{e:#}"), "background flush failed");
        }
    }
}

/// How often the hot store's expired buckets are deleted ([`Node::expire`]).
const EXPIRY_INTERVAL: Duration = Duration::from_secs(10);

async fn run_expiry(node: Arc<Node>, registry: Arc<crate::registry::Registry>) {
    let mut tick = tokio::time::interval(EXPIRY_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate: the first expiry runs one interval after start
    loop {
        tick.tick().await;
        if let Err(e) = node.expire(&registry).await {
            tracing::error!(error = %format!("{e:#}"), "hot-store expiry failed");
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// The log's sink: the hot store, then the query front's write hook (after
/// the batch is visible, so the front's cache never keeps what it missed).
struct ObservedSink {
    /// The hot store or the ScyllaDB tier.
    store: Arc<dyn LogSink>,
    hook: Arc<strata_query::front::WriteHook>,
}

impl LogSink for ObservedSink {
    fn apply(
        &self,
        partition: u32,
        offset: u64,
        payload: &[u8],
        decoded: Option<&strata_schemas::WriteBatch>,
    ) -> Result<(), strata_schemas::ApplyError> {
        // Decoded once here (replay, Kafka) and handed to the store as such;
        // a record that does not decode is left to the store's own error.
        let owned;
        let batch = match decoded {
            Some(b) => b,
            None => match strata_schemas::WriteBatch::decode(payload) {
                Ok(b) => {
                    owned = b;
                    &owned
                }
                Err(_) => return self.store.apply(partition, offset, payload, None),
            },
        };
        self.store.apply(partition, offset, payload, Some(batch))?;
        self.hook.applied(batch);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// Flushes and compactions run on a named thread of their own whose nice
    /// value is the caller's plus `BACKGROUND_NICE` (capped at 19); the
    /// caller's own priority is left alone.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn background_work_runs_on_its_own_thread_at_a_lower_priority() {
        use rustix::process::getpriority_process;
        let caller = getpriority_process(None).unwrap();
        let (name, nice) = super::background("strata-test-bg", || {
            (std::thread::current().name().map(str::to_owned), getpriority_process(None).unwrap())
        })
        .await
        .unwrap();
        assert_eq!(name.as_deref(), Some("strata-test-bg"));
        assert_eq!(nice, (caller + super::BACKGROUND_NICE).min(19));
        assert_eq!(getpriority_process(None).unwrap(), caller, "the calling thread keeps its priority");
    }

    /// A flush someone waits for (`Node::flush_requested`) runs on a named
    /// thread of its own at the caller's priority.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn waited_work_runs_on_its_own_thread_at_the_callers_priority() {
        use rustix::process::getpriority_process;
        let caller = getpriority_process(None).unwrap();
        let (name, nice) = super::on_thread("strata-test-fg", 0, || {
            (std::thread::current().name().map(str::to_owned), getpriority_process(None).unwrap())
        })
        .await
        .unwrap();
        assert_eq!(name.as_deref(), Some("strata-test-fg"));
        assert_eq!(nice, caller);
        // `[hot_store] flush_nice`: the node's own flushes, raised by that much.
        let raised = super::on_thread("strata-test-flush", 3, || getpriority_process(None).unwrap()).await.unwrap();
        assert_eq!(raised, (caller + 3).min(19));
    }

    #[test]
    fn a_partition_rolls_once_applied_past_the_watermark_and_its_own_acknowledged_writes() {
        let set = |v: &[u32]| v.iter().copied().collect::<std::collections::BTreeSet<u32>>();
        let high = [49, 33, 10, 0];
        // Partition 0: applied 51 >= watermark 49, but this node had 117 acknowledged: not yet.
        // Partition 1: applied 34, nothing produced here: rolls. 2: applied below the watermark.
        // 3: not held (no applied offset).
        let produced = [Some(117), None, None, Some(5)];
        let applied = [Some(51), Some(34), Some(9), None];
        assert_eq!(super::rollable_partitions(&high, &produced, &applied), set(&[1]));
        let applied = [Some(117), Some(34), Some(10), None];
        assert_eq!(super::rollable_partitions(&high, &produced, &applied), set(&[0, 1, 2]));
        // A watermark list shorter than the partitions (a failed answer) rolls nothing past it.
        assert_eq!(super::rollable_partitions(&high[..1], &produced, &applied), set(&[0]));
    }

    #[test]
    fn log_lines_do_not_show_catalog_passwords() {
        assert_eq!(super::redact_userinfo("postgres://ice:s3cret@db:5432/ice"), "postgres://***@db:5432/ice");
        assert_eq!(
            super::redact_userinfo("sqlite:///d/cold/catalog.db?mode=rwc"),
            "sqlite:///d/cold/catalog.db?mode=rwc"
        );
    }
}
