//! One Strata node with every role in one process (`strata serve`).
//!
//! ```text
//! startup:  lock data dir → open hot store → open ingest log (floor = hot store's replay point)
//!           → replay each partition's unflushed tail into the hot store → bind HTTP → serve
//! running:  HTTP write → log (group-commit fsync) → LogSink → hot store memtable → 204
//!           flusher: every second, flush the memtable when it is big or old, then release log segments
//! shutdown: SIGINT/SIGTERM → stop accepting, finish in-flight requests → final flush → close log
//! ```

use crate::auth::StaticTokens;
use crate::config::ServerConfig;
use crate::http;
use anyhow::Context;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata_hot_store::HotStore;
use strata_ingest::metrics::IngestMetrics;
use strata_ingest::series_cache::SeriesCache;
use strata_ingest::{LocalLog, LogSink};
use strata_schemas::WriteBatch;

/// Applies ingest-log records to the hot store.
#[derive(Debug)]
pub struct HotStoreSink {
    hot: Arc<HotStore>,
}

impl LogSink for HotStoreSink {
    fn apply(
        &self,
        partition: u32,
        offset: u64,
        payload: &[u8],
        decoded: Option<&(dyn std::any::Any + Send)>,
    ) -> Result<(), String> {
        // The write path hands over the batch it encoded; replay decodes.
        if let Some(batch) = decoded.and_then(|d| d.downcast_ref::<WriteBatch>()) {
            return self.hot.apply(partition, offset, batch).map_err(|e| e.to_string());
        }
        let batch = WriteBatch::decode(payload).map_err(|e| e.to_string())?;
        self.hot.apply(partition, offset, &batch).map_err(|e| e.to_string())
    }
}

/// The running parts of a node, shared by the HTTP handlers and background tasks.
#[derive(Debug)]
pub struct Node {
    /// The resolved configuration.
    pub config: ServerConfig,
    /// Absolute data directory.
    pub data_dir: PathBuf,
    /// The hot store.
    pub hot: Arc<HotStore>,
    /// The ingest log.
    pub log: Arc<LocalLog>,
    /// Write-path counters.
    pub ingest_metrics: Arc<IngestMetrics>,
    /// Series id → labels across write requests.
    pub series_cache: Arc<SeriesCache>,
    /// When the node started.
    pub started: Instant,
    flush_lock: tokio::sync::Mutex<Instant>,
    _lock: File,
}

impl Node {
    /// Opens storage and replays the log. Blocking; call before serving.
    pub fn open(config: ServerConfig) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
        let data_dir = std::fs::canonicalize(&config.data_dir)?;
        let lock = lock_data_dir(&data_dir)?;
        let hot = Arc::new(
            HotStore::open(&data_dir.join("hot"), config.hot_store.clone())
                .with_context(|| format!("opening hot store in {}", data_dir.join("hot").display()))?,
        );
        let sink = Arc::new(HotStoreSink { hot: Arc::clone(&hot) });
        let floor_hot = Arc::clone(&hot);
        let log = LocalLog::open(&data_dir.join("log"), &config.log, |p| floor_hot.replay_from(p), sink)
            .with_context(|| format!("opening ingest log in {}", data_dir.join("log").display()))?;
        let series_cache = Arc::new(SeriesCache::new(config.ingest.series_cache_entries));
        let node = Self {
            config,
            data_dir,
            hot,
            log: Arc::new(log),
            ingest_metrics: Arc::new(IngestMetrics::default()),
            series_cache,
            started: Instant::now(),
            flush_lock: tokio::sync::Mutex::new(Instant::now()),
            _lock: lock,
        };
        node.replay()?;
        Ok(node)
    }

    /// Replays every partition's records that the hot store has not flushed.
    fn replay(&self) -> anyhow::Result<()> {
        let t0 = Instant::now();
        let partitions = self.config.log.partitions;
        let (mut records, mut samples) = (0u64, 0u64);
        let mut last_report = Instant::now();
        for p in 0..partitions {
            let from = self.hot.replay_from(p);
            let end = self.log.next_offset(p);
            if from < self.log.first_offset(p) {
                tracing::warn!(
                    partition = p,
                    needed = from,
                    first_available = self.log.first_offset(p),
                    "ingest log no longer holds records the hot store needs; they are lost"
                );
            }
            self.log.replay(p, from, &mut |offset, payload| {
                let batch = WriteBatch::decode(payload).map_err(|e| strata_ingest::Error::Apply {
                    partition: p,
                    offset,
                    detail: e.to_string(),
                })?;
                samples += batch.sample_count() as u64;
                self.hot.apply(p, offset, &batch).map_err(|e| strata_ingest::Error::Apply {
                    partition: p,
                    offset,
                    detail: e.to_string(),
                })?;
                records += 1;
                if last_report.elapsed() >= Duration::from_secs(2) {
                    last_report = Instant::now();
                    tracing::info!(partition = p, offset, end, records, samples, "replaying ingest log");
                }
                Ok(())
            })?;
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
    /// store no longer needs. Concurrent calls serialize.
    pub async fn flush(self: &Arc<Self>, reason: &'static str) -> anyhow::Result<strata_hot_store::FlushOutcome> {
        let mut last = self.flush_lock.lock().await;
        let node = Arc::clone(self);
        let outcome = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let t0 = Instant::now();
            let outcome = node.hot.flush()?;
            for (&p, &offset) in &outcome.flushed_offsets {
                node.log.release(p, offset)?;
            }
            if outcome.samples > 0 {
                tracing::info!(
                    reason,
                    series = outcome.series,
                    samples = outcome.samples,
                    ms = t0.elapsed().as_millis() as u64,
                    "flushed memtable to segment"
                );
            }
            Ok(outcome)
        })
        .await??;
        *last = Instant::now();
        drop(last);
        let limit = self.config.hot_store.compact_segments;
        if limit > 0 && self.hot.stats().segments > limit {
            self.compact().await?;
        }
        Ok(outcome)
    }

    /// Merges the hot store's segments into one.
    pub async fn compact(self: &Arc<Self>) -> anyhow::Result<strata_hot_store::CompactOutcome> {
        let hot = Arc::clone(&self.hot);
        Ok(tokio::task::spawn_blocking(move || hot.compact()).await??)
    }

    /// Flushes when the memtable is over its sample budget or older than the flush interval.
    pub async fn flush_if_due(self: &Arc<Self>) -> anyhow::Result<()> {
        let cfg = &self.config.hot_store;
        let samples = self.hot.memtable_samples();
        let age = self.flush_lock.lock().await.elapsed();
        if samples >= cfg.max_memtable_samples {
            self.flush("memtable full").await?;
        } else if samples > 0 && age >= cfg.flush_interval {
            self.flush("interval").await?;
        }
        Ok(())
    }

    /// Final flush and log close on shutdown.
    pub async fn shutdown(self: &Arc<Self>) -> anyhow::Result<()> {
        let result = self.flush("shutdown").await;
        let log = Arc::clone(&self.log);
        tokio::task::spawn_blocking(move || log.close()).await?;
        result.map(|_| ())
    }
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
pub async fn serve(config: ServerConfig) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("binding HTTP address {}", config.http_addr))?;
    let addr = listener.local_addr()?;
    let resolver = Arc::new(StaticTokens::new(&config.auth.tokens)?);
    let open_config = config.clone();
    let node = Arc::new(tokio::task::spawn_blocking(move || Node::open(open_config)).await??);
    let app = http::app(Arc::clone(&node), resolver);
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        listen = %format!("http://{addr}"),
        data_dir = %node.data_dir.display(),
        region = %node.config.region,
        partitions = node.config.log.partitions,
        "strata is ready"
    );
    println!("strata {} listening on http://{addr} (region {})", env!("CARGO_PKG_VERSION"), node.config.region);
    println!("data dir: {}", node.data_dir.display());

    let flusher = tokio::spawn(run_flusher(Arc::clone(&node)));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let mut rx = stop_rx;
        let _ = rx.wait_for(|stop| *stop).await;
    });
    let server = tokio::spawn(async move { server.await });
    shutdown_signal().await;
    tracing::info!("shutdown requested: finishing in-flight requests");
    let _ = stop_tx.send(true);
    match tokio::time::timeout(node.config.shutdown_timeout, server).await {
        Ok(result) => result??,
        Err(_) => tracing::warn!("in-flight requests did not finish within shutdown_timeout; closing anyway"),
    }
    flusher.abort();
    node.shutdown().await?;
    tracing::info!("strata stopped cleanly");
    Ok(())
}

async fn run_flusher(node: Arc<Node>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = node.flush_if_due().await {
            tracing::error!(error = %format!("{e:#}"), "background flush failed");
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
