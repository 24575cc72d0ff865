//! [`ScyllaHot`]: the tier's session, its write path (the log's sink) and
//! its read path (`ReadStore`).
//!
//! ```text
//!  log record (partition p, offset o)                      query
//!    │ apply: samples grouped per partition key             │ select / series / labels
//!    │ (tenant, bucket, device_hash), last write per ts     ▼
//!    ▼                                                    tenant_buckets ─► buckets in range
//!  unlogged batches → samples          ┐                    │
//!  first time this process sees a      │ all acknowledged   ▼
//!  (bucket, series): bucket_series,    │ at the configured bucket_series ─► (series, lhash, device_hash)
//!  tenant_buckets, series, postings    ┘ consistency        │ ∩ postings of each `name="value"` matcher
//!    │                                                      ▼
//!    ▼ applied[p] = o + 1                                 series (labels, cached: immutable rows)
//!  flush(): log_offsets ← applied                           │ every matcher checked on the labels
//!    → the server releases / commits the log below them     ▼
//!                                                         samples per (bucket, series), cut to the range
//! ```
//!
//! The driver is asynchronous, the log's sink and the read trait are not:
//! the tier runs the driver on a small runtime of its own and callers wait
//! on a channel, so a call may come from any thread (a log writer thread,
//! a blocking query thread) without blocking the runtime the driver needs.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use parking_lot::{Mutex, RwLock};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::timestamp_generator::MonotonicTimestampGenerator;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use strata_schemas::{
    Labels, MatchOp, Matcher, ReadError, ReadStore, Sample, SeriesData, TenantId, TimeRange, WriteBatch,
};

use crate::config::ScyllaConfig;
use crate::error::{Error, Result};
use crate::schema;

/// Sample rows per unlogged batch (all of one partition key).
const BATCH_ROWS: usize = 256;
/// Requests one apply or read keeps in flight.
const IN_FLIGHT: usize = 64;
/// Series read per round of a streamed select.
const READ_CHUNK: usize = 64;
/// Index rows remembered as written; past it the set is cleared (rows are
/// then written again once, which is harmless).
const WRITTEN_CAP: usize = 2_000_000;

/// Hot TTLs: how long samples live after they are written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HotTtls {
    /// TTL of tenants without an entry (zero: no expiry).
    pub default: Duration,
    /// Per-tenant TTLs.
    pub tenants: BTreeMap<String, Duration>,
}

impl HotTtls {
    fn secs(&self, tenant: &str) -> u32 {
        let d = self.tenants.get(tenant).copied().unwrap_or(self.default);
        u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
    }
}

/// The prepared inserts of one (sample TTL, index TTL).
#[derive(Debug)]
struct Inserts {
    sample: PreparedStatement,
    bucket_series: PreparedStatement,
    tenant_bucket: PreparedStatement,
    series: PreparedStatement,
    posting: PreparedStatement,
    tenant: PreparedStatement,
}

#[derive(Debug)]
struct Reads {
    tenants: PreparedStatement,
    buckets: PreparedStatement,
    bucket_series: PreparedStatement,
    series_labels: PreparedStatement,
    postings: PreparedStatement,
    samples: PreparedStatement,
    offsets: PreparedStatement,
    put_offset: PreparedStatement,
}

/// A series key: (series id, labels hash).
type Key = (i64, i64);
/// A `samples` partition key below the tenant: (bucket, device hash).
type PartitionKey = (i64, i64);

#[derive(Debug)]
struct Inner {
    session: Session,
    config: ScyllaConfig,
    log_id: String,
    reads: Reads,
    inserts: Mutex<HashMap<(u32, u32), Arc<Inserts>>>,
    ttls: RwLock<HotTtls>,
    /// (tenant, bucket, key) whose index rows this process wrote.
    written: Mutex<HashSet<(String, i64, Key)>>,
    /// Labels per (tenant, key): rows never change, so the cache is exact.
    labels: RwLock<HashMap<(String, Key), Labels>>,
    /// Per log partition, the first offset not yet acknowledged (applied here).
    applied: Mutex<BTreeMap<u32, u64>>,
}

/// The ScyllaDB hot tier (see the crate docs).
pub struct ScyllaHot {
    inner: Arc<Inner>,
    handle: tokio::runtime::Handle,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for ScyllaHot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScyllaHot").field("keyspace", &self.inner.config.keyspace).finish_non_exhaustive()
    }
}

impl Drop for ScyllaHot {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// One series a read will fetch.
#[derive(Debug, Clone)]
struct Planned {
    labels: Labels,
    key: Key,
    device_hash: i64,
    /// Buckets (starts) holding samples of the series, overlapping the range.
    buckets: Vec<i64>,
}

fn driver(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl ScyllaHot {
    /// Connects, creates the keyspace and tables if missing, checks the
    /// format version and bucket width recorded in the keyspace, and
    /// prepares the statements. Blocking. `log_id` names this region's log
    /// in the offsets table when the config leaves it empty.
    pub fn connect(mut config: ScyllaConfig, log_id: &str, ttls: HotTtls) -> Result<Self> {
        config.validate().map_err(Error::InvalidConfig)?;
        #[expect(
            clippy::disallowed_methods,
            reason = "the driver runs on a runtime of the tier's own so that the synchronous sink and read trait \
                      can wait for it from any thread (async workers included) without starving it"
        )]
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("strata-scylla")
            .enable_all()
            .build()
            .map_err(|e| Error::Connect { nodes: config.nodes.join(","), detail: format!("runtime: {e}") })?;
        let handle = runtime.handle().clone();
        let log_id = if config.log_id.is_empty() { log_id.to_owned() } else { config.log_id.clone() };
        let setup = setup(config, log_id, ttls);
        let inner = wait_on(&handle, setup)??;
        Ok(Self { inner: Arc::new(inner), handle, runtime: Some(runtime) })
    }

    fn wait<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> Result<T> {
        wait_on(&self.handle, fut)
    }

    /// The configuration in use.
    pub fn config(&self) -> &ScyllaConfig {
        &self.inner.config
    }

    /// Replaces the hot TTLs (the registry's per-tenant values); writes from
    /// now on carry them.
    pub fn set_ttls(&self, ttls: HotTtls) {
        *self.inner.ttls.write() = ttls;
    }

    /// Applies one log record: returns once every row is acknowledged at
    /// the configured consistency level. Applying a record twice is
    /// harmless (upserts of the same values).
    pub fn apply(&self, partition: u32, offset: u64, batch: &WriteBatch) -> Result<()> {
        let inner = Arc::clone(&self.inner);
        let tenant = batch.tenant.as_str().to_owned();
        let ttl = inner.ttls.read().secs(&tenant);
        let bucket_secs = u32::try_from(inner.config.bucket.as_secs()).unwrap_or(u32::MAX);
        let index_ttl = if ttl == 0 { 0 } else { ttl.saturating_add(bucket_secs) };
        let inserts = self.inserts(ttl, index_ttl)?;
        let plan = WritePlan::of(&inner, &tenant, batch);
        let fresh = plan.index.iter().map(|(b, key, _, _)| (tenant.clone(), *b, *key)).collect::<Vec<_>>();
        let write = {
            let inner = Arc::clone(&inner);
            async move { plan.write(&inner, &inserts).await }
        };
        self.wait(write)??;
        {
            let mut w = inner.written.lock();
            if w.len() > WRITTEN_CAP {
                w.clear();
            }
            w.extend(fresh);
        }
        let mut applied = inner.applied.lock();
        let next = applied.entry(partition).or_insert(0);
        *next = (*next).max(offset + 1);
        Ok(())
    }

    fn inserts(&self, ttl: u32, index_ttl: u32) -> Result<Arc<Inserts>> {
        if let Some(i) = self.inner.inserts.lock().get(&(ttl, index_ttl)) {
            return Ok(Arc::clone(i));
        }
        let inner = Arc::clone(&self.inner);
        let prepared = self.wait(async move {
            let [a, b, c, d, e, f] = schema::inserts(&inner.config.keyspace, ttl, index_ttl);
            Ok::<_, Error>(Inserts {
                sample: prepare(&inner.session, &inner.config, a).await?,
                bucket_series: prepare(&inner.session, &inner.config, b).await?,
                tenant_bucket: prepare(&inner.session, &inner.config, c).await?,
                series: prepare(&inner.session, &inner.config, d).await?,
                posting: prepare(&inner.session, &inner.config, e).await?,
                tenant: prepare(&inner.session, &inner.config, f).await?,
            })
        })??;
        let prepared = Arc::new(prepared);
        self.inner.inserts.lock().insert((ttl, index_ttl), Arc::clone(&prepared));
        Ok(prepared)
    }

    /// Per log partition, the first offset not yet acknowledged by the
    /// cluster through this process.
    pub fn applied_offsets(&self) -> BTreeMap<u32, u64> {
        self.inner.applied.lock().clone()
    }

    /// Records the acknowledged offsets in `log_offsets` and returns them:
    /// the log may be released (Kafka: committed) below them.
    pub fn flush(&self) -> Result<BTreeMap<u32, u64>> {
        let offsets = self.applied_offsets();
        let inner = Arc::clone(&self.inner);
        let rows = offsets.clone();
        self.wait(async move {
            for (p, next) in rows {
                let (p, next) = (p as i32, next as i64);
                inner
                    .session
                    .execute_unpaged(&inner.reads.put_offset, (&inner.log_id, p, next))
                    .await
                    .map_err(|e| Error::Write { tenant: "-".into(), what: "log_offsets", detail: driver(e) })?;
            }
            Ok::<_, Error>(())
        })??;
        Ok(offsets)
    }

    /// The first offset of `partition` the log must replay into the tier:
    /// the larger of what this process applied and what `log_offsets`
    /// records (another node may have applied the partition before).
    pub fn replay_from(&self, partition: u32) -> Result<u64> {
        let here = self.inner.applied.lock().get(&partition).copied().unwrap_or(0);
        let stored = self.stored_offsets()?.get(&partition).copied().unwrap_or(0);
        Ok(here.max(stored))
    }

    /// `log_offsets` of this log.
    pub fn stored_offsets(&self) -> Result<BTreeMap<u32, u64>> {
        let inner = Arc::clone(&self.inner);
        self.wait(async move {
            let rows: Vec<(i32, i64)> =
                rows(&inner.session, &inner.reads.offsets, (&inner.log_id,), "log_offsets").await?;
            Ok::<_, Error>(rows.into_iter().map(|(p, o)| (p as u32, o.max(0) as u64)).collect())
        })?
    }

    /// The bucket width in milliseconds (recorded in the keyspace).
    pub fn bucket_ms(&self) -> i64 {
        self.inner.config.bucket_ms()
    }

    /// Every tenant with data in the keyspace (the `tenants` table; a tenant
    /// whose rows all expired drops out with them).
    pub fn tenants(&self) -> Result<Vec<TenantId>> {
        let inner = Arc::clone(&self.inner);
        let names = self.wait(async move {
            let r: Vec<(String,)> =
                rows(&inner.session, &inner.reads.tenants, (schema::TENANTS_SHARD,), "tenants").await?;
            Ok::<_, Error>(r)
        })??;
        names
            .into_iter()
            .map(|(t,)| {
                TenantId::new(t.clone())
                    .map_err(|e| Error::Corrupted { what: "tenants", detail: format!("tenant {t:?}: {e}") })
            })
            .collect()
    }

    /// Starts of the tenant's buckets holding data, ascending.
    pub fn tenant_buckets(&self, tenant: &TenantId) -> Result<Vec<i64>> {
        let inner = Arc::clone(&self.inner);
        let tenant = tenant.as_str().to_owned();
        let mut out: Vec<i64> = self
            .wait(async move {
                let r: Vec<(i64,)> =
                    rows(&inner.session, &inner.reads.buckets, (tenant.as_str(),), "tenant_buckets").await?;
                Ok::<_, Error>(r)
            })??
            .into_iter()
            .map(|(b,)| b)
            .collect();
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Every series of one bucket with its samples (sorted, one per
    /// timestamp), for the compactor's roll into the cold tier: the
    /// bucket's `bucket_series` rows, their labels, and one `samples`
    /// slice per series. A listed series without labels is an error (the
    /// index rows outlive the samples, so it means damage, not expiry).
    pub fn read_bucket(&self, tenant: &TenantId, bucket_start: i64) -> Result<Vec<BucketSeries>> {
        let inner = Arc::clone(&self.inner);
        let tenant = tenant.as_str().to_owned();
        self.wait(async move { read_bucket(&inner, &tenant, bucket_start).await })?
    }

    fn plan(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Result<Vec<Planned>> {
        let inner = Arc::clone(&self.inner);
        let (tenant, matchers) = (tenant.as_str().to_owned(), matchers.to_vec());
        self.wait(async move { plan(&inner, &tenant, &matchers, range).await })?
    }

    fn fetch(&self, tenant: &TenantId, planned: Vec<Planned>, range: TimeRange) -> Result<Vec<SeriesData>> {
        let inner = Arc::clone(&self.inner);
        let tenant = tenant.as_str().to_owned();
        self.wait(async move { fetch(&inner, &tenant, planned, range).await })?
    }

    fn bucket_inside(&self, bucket: i64, range: TimeRange) -> bool {
        let end = bucket.saturating_add(self.inner.config.bucket_ms() - 1);
        bucket >= range.start && end <= range.end
    }
}

/// Runs `fut` on `handle` and waits for it on this thread.
fn wait_on<T: Send + 'static>(
    handle: &tokio::runtime::Handle,
    fut: impl Future<Output = T> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    handle.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().map_err(|_| Error::ShutDown)
}

async fn prepare(session: &Session, config: &ScyllaConfig, text: String) -> Result<PreparedStatement> {
    let mut p =
        session.prepare(text.as_str()).await.map_err(|e| Error::Prepare { statement: text, detail: driver(e) })?;
    p.set_consistency(config.consistency.cql());
    p.set_is_idempotent(true);
    Ok(p)
}

/// Every row of a paged read (the driver fetches page after page).
async fn rows<R>(
    session: &Session,
    stmt: &PreparedStatement,
    values: impl scylla::serialize::row::SerializeRow,
    what: &'static str,
) -> Result<Vec<R>>
where
    R: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm>,
{
    let read = |e: String| Error::Read { what, detail: e };
    let pager = session.execute_iter(stmt.clone(), values).await.map_err(|e| read(driver(e)))?;
    let stream = pager.rows_stream::<R>().map_err(|e| read(driver(e)))?;
    stream.try_collect().await.map_err(|e| read(driver(e)))
}

async fn setup(config: ScyllaConfig, log_id: String, ttls: HotTtls) -> Result<Inner> {
    let nodes = config.nodes.join(",");
    let profile = ExecutionProfile::builder()
        .consistency(config.consistency.cql())
        .request_timeout(Some(config.request_timeout))
        .build()
        .into_handle();
    let session = SessionBuilder::new()
        .known_nodes(&config.nodes)
        .connection_timeout(config.request_timeout)
        .default_execution_profile_handle(profile)
        .timestamp_generator(Arc::new(MonotonicTimestampGenerator::new()))
        .fetch_schema_metadata(false)
        .fetch_full_schema_metadata(false)
        .build()
        .await
        .map_err(|e| Error::Connect { nodes: nodes.clone(), detail: driver(e) })?;
    for ddl in schema::ddl(&config.keyspace, &config.replication, config.bucket.as_secs()) {
        session.query_unpaged(ddl.as_str(), ()).await.map_err(|e| Error::Schema {
            statement: ddl.split(" (").next().unwrap_or(&ddl).to_owned(),
            detail: driver(e),
        })?;
    }
    let r = schema::reads(&config.keyspace);
    let meta = prepare(&session, &config, r.meta).await?;
    let put_meta = prepare(&session, &config, r.put_meta).await?;
    check_meta(&session, &config, &meta, &put_meta).await?;
    let reads = Reads {
        tenants: prepare(&session, &config, r.tenants).await?,
        buckets: prepare(&session, &config, r.buckets).await?,
        bucket_series: prepare(&session, &config, r.bucket_series).await?,
        series_labels: prepare(&session, &config, r.series_labels).await?,
        postings: prepare(&session, &config, r.postings).await?,
        samples: prepare(&session, &config, r.samples).await?,
        offsets: prepare(&session, &config, r.offsets).await?,
        put_offset: prepare(&session, &config, r.put_offset).await?,
    };
    tracing::info!(nodes, keyspace = %config.keyspace, consistency = ?config.consistency, "ScyllaDB hot tier connected");
    Ok(Inner {
        session,
        config,
        log_id,
        reads,
        inserts: Mutex::new(HashMap::new()),
        ttls: RwLock::new(ttls),
        written: Mutex::new(HashSet::new()),
        labels: RwLock::new(HashMap::new()),
        applied: Mutex::new(BTreeMap::new()),
    })
}

/// Records the format version and bucket width in a new keyspace; refuses
/// a keyspace that records others.
async fn check_meta(
    session: &Session,
    config: &ScyllaConfig,
    meta: &PreparedStatement,
    put_meta: &PreparedStatement,
) -> Result<()> {
    let want = [("format_version", schema::FORMAT_VERSION.to_string()), ("bucket_ms", config.bucket_ms().to_string())];
    for (key, expected) in want {
        let found: Vec<(String,)> = rows(session, meta, (key,), "meta").await?;
        match found.into_iter().next() {
            Some((v,)) if v == expected => {}
            Some((v,)) => {
                return Err(Error::Incompatible {
                    keyspace: config.keyspace.clone(),
                    found: format!("{key} {v}"),
                    expected: format!("{key} {expected}"),
                });
            }
            None => {
                session.execute_unpaged(put_meta, (key, expected.as_str())).await.map_err(|e| Error::Write {
                    tenant: "-".into(),
                    what: "meta",
                    detail: driver(e),
                })?;
            }
        }
    }
    Ok(())
}

/// What one record writes.
struct WritePlan {
    tenant: String,
    /// Per partition key (bucket, device_hash): (key, ts, value), last write per (key, ts).
    samples: BTreeMap<PartitionKey, Vec<(Key, i64, f64)>>,
    /// Index rows not yet written by this process: (bucket, key, device_hash, labels).
    index: Vec<(i64, Key, i64, Labels)>,
}

impl WritePlan {
    fn of(inner: &Inner, tenant: &str, batch: &WriteBatch) -> WritePlan {
        let width = inner.config.bucket_ms();
        let mut samples: BTreeMap<PartitionKey, BTreeMap<(Key, i64), f64>> = BTreeMap::new();
        let mut index: BTreeMap<(i64, Key), (i64, Labels)> = BTreeMap::new();
        let written = inner.written.lock();
        for s in &batch.series {
            let key = (s.id.0 as i64, schema::labels_hash(&s.labels));
            let dh = s.device_hash as i64;
            for p in &s.samples {
                let bucket = p.ts.div_euclid(width) * width;
                samples.entry((bucket, dh)).or_default().insert((key, p.ts), p.value);
                if !written.contains(&(tenant.to_owned(), bucket, key)) {
                    index.entry((bucket, key)).or_insert_with(|| (dh, s.labels.clone()));
                }
            }
        }
        drop(written);
        WritePlan {
            tenant: tenant.to_owned(),
            samples: samples
                .into_iter()
                .map(|(pk, rows)| (pk, rows.into_iter().map(|((key, ts), v)| (key, ts, v)).collect()))
                .collect(),
            index: index.into_iter().map(|((b, key), (dh, l))| (b, key, dh, l)).collect(),
        }
    }

    async fn write(self, inner: &Inner, ins: &Inserts) -> Result<()> {
        let session = &inner.session;
        let tenant = self.tenant.as_str();
        let werr = |what: &'static str| {
            move |e: scylla::errors::ExecutionError| Error::Write { tenant: tenant.to_owned(), what, detail: driver(e) }
        };
        let mut requests: Vec<std::pin::Pin<Box<dyn Future<Output = Result<()>> + Send + '_>>> = Vec::new();
        for ((bucket, dh), rows) in &self.samples {
            for chunk in rows.chunks(BATCH_ROWS) {
                let mut batch = Batch::new(BatchType::Unlogged);
                batch.set_consistency(inner.config.consistency.cql());
                let mut values = Vec::with_capacity(chunk.len());
                for &((series, lhash), ts, v) in chunk {
                    batch.append_statement(ins.sample.clone());
                    values.push((tenant, *bucket, *dh, series, lhash, ts, v));
                }
                requests.push(Box::pin(async move {
                    session.batch(&batch, values).await.map(|_| ()).map_err(werr("samples"))
                }));
            }
        }
        let buckets: BTreeSet<i64> = self.index.iter().map(|(b, ..)| *b).collect();
        if !buckets.is_empty() {
            // The tenant list the compactor rolls from (refreshed with each
            // new bucket, so its TTL follows the tenant's newest data).
            requests.push(Box::pin(async move {
                session
                    .execute_unpaged(&ins.tenant, (schema::TENANTS_SHARD, tenant))
                    .await
                    .map(|_| ())
                    .map_err(werr("tenants"))
            }));
        }
        for b in buckets {
            requests.push(Box::pin(async move {
                session
                    .execute_unpaged(&ins.tenant_bucket, (tenant, b))
                    .await
                    .map(|_| ())
                    .map_err(werr("tenant_buckets"))
            }));
        }
        for (b, (series, lhash), dh, labels) in &self.index {
            let (b, series, lhash, dh) = (*b, *series, *lhash, *dh);
            requests.push(Box::pin(async move {
                session
                    .execute_unpaged(&ins.bucket_series, (tenant, b, series, lhash, dh))
                    .await
                    .map(|_| ())
                    .map_err(werr("bucket_series"))
            }));
            let json = schema::encode_labels(labels);
            requests.push(Box::pin(async move {
                session
                    .execute_unpaged(&ins.series, (tenant, series, lhash, dh, json.as_str()))
                    .await
                    .map(|_| ())
                    .map_err(werr("series"))
            }));
            for l in labels.iter() {
                let (name, value) = (l.name.as_str(), l.value.as_str());
                requests.push(Box::pin(async move {
                    session
                        .execute_unpaged(&ins.posting, (tenant, name, value, series, lhash))
                        .await
                        .map(|_| ())
                        .map_err(werr("postings"))
                }));
            }
        }
        futures::stream::iter(requests).buffer_unordered(IN_FLIGHT).try_collect::<Vec<()>>().await?;
        Ok(())
    }
}

/// The series of `tenant` matching `matchers` with buckets overlapping
/// `range`, sorted by labels.
async fn plan(inner: &Inner, tenant: &str, matchers: &[Matcher], range: TimeRange) -> Result<Vec<Planned>> {
    let width = inner.config.bucket_ms();
    let session = &inner.session;
    let buckets: Vec<(i64,)> = rows(session, &inner.reads.buckets, (tenant,), "tenant_buckets").await?;
    let buckets: Vec<i64> =
        buckets.into_iter().map(|(b,)| b).filter(|&b| range.overlaps(b, b.saturating_add(width - 1))).collect();
    if buckets.is_empty() {
        return Ok(Vec::new());
    }
    // Series with samples in those buckets.
    let per_bucket = futures::stream::iter(buckets.into_iter().map(|b| async move {
        let r: Vec<(i64, i64, i64)> = rows(session, &inner.reads.bucket_series, (tenant, b), "bucket_series").await?;
        Ok::<_, Error>((b, r))
    }))
    .buffer_unordered(IN_FLIGHT)
    .try_collect::<Vec<_>>()
    .await?;
    let mut found: BTreeMap<Key, (i64, Vec<i64>)> = BTreeMap::new();
    for (b, rows) in per_bucket {
        for (series, lhash, dh) in rows {
            found.entry((series, lhash)).or_insert_with(|| (dh, Vec::new())).1.push(b);
        }
    }
    // Narrowed by the postings of each `name="value"` matcher (non-empty value).
    for m in matchers.iter().filter(|m| matches!(m.op, MatchOp::Equal) && !m.value.is_empty()) {
        let keys: Vec<Key> =
            rows(session, &inner.reads.postings, (tenant, m.name.as_str(), m.value.as_str()), "postings").await?;
        let keys: HashSet<Key> = keys.into_iter().collect();
        found.retain(|k, _| keys.contains(k));
    }
    // Labels: cached, else read (rows never change once written).
    load_labels(inner, tenant, found.keys().copied()).await?;
    let cache = inner.labels.read();
    let mut out: Vec<Planned> = found
        .into_iter()
        .filter_map(|(key, (device_hash, mut buckets))| {
            let labels = cache.get(&(tenant.to_owned(), key))?;
            if !Matcher::matches_all(matchers, labels) {
                return None;
            }
            buckets.sort_unstable();
            Some(Planned { labels: labels.clone(), key, device_hash, buckets })
        })
        .collect();
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(out)
}

/// One series of a bucket, as [`ScyllaHot::read_bucket`] returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketSeries {
    /// The series' labels, `__name__` included.
    pub labels: Labels,
    /// `strata_schemas::series_id` of the labels (the `series` column).
    pub series_id: u64,
    /// `strata_schemas::device_hash` as computed at ingest.
    pub device_hash: u64,
    /// The bucket's samples, sorted by timestamp, one per timestamp.
    pub samples: Vec<Sample>,
}

async fn read_bucket(inner: &Inner, tenant: &str, bucket: i64) -> Result<Vec<BucketSeries>> {
    let session = &inner.session;
    let listed: Vec<(i64, i64, i64)> =
        rows(session, &inner.reads.bucket_series, (tenant, bucket), "bucket_series").await?;
    let keys: Vec<(Key, i64)> = listed.into_iter().map(|(s, l, dh)| ((s, l), dh)).collect();
    load_labels(inner, tenant, keys.iter().map(|(k, _)| *k)).await?;
    let planned: Vec<(Labels, Key, i64)> = {
        let cache = inner.labels.read();
        keys.into_iter()
            .map(|(key, dh)| match cache.get(&(tenant.to_owned(), key)) {
                Some(l) => Ok((l.clone(), key, dh)),
                None => Err(Error::Corrupted {
                    what: "series",
                    detail: format!(
                        "tenant {tenant} bucket {bucket}: series {}/{} is listed in bucket_series but has no labels",
                        key.0, key.1
                    ),
                }),
            })
            .collect::<Result<_>>()?
    };
    let reads = planned.into_iter().map(|(labels, key, dh)| async move {
        let r: Vec<(i64, f64)> =
            rows(session, &inner.reads.samples, (tenant, bucket, dh, key.0, key.1), "samples").await?;
        let mut samples: Vec<Sample> = r.into_iter().map(|(ts, v)| Sample::new(ts, v)).collect();
        samples.sort_by_key(|s| s.ts);
        samples.dedup_by_key(|s| s.ts);
        Ok::<_, Error>(BucketSeries { labels, series_id: key.0 as u64, device_hash: dh as u64, samples })
    });
    let mut all: Vec<BucketSeries> = futures::stream::iter(reads).buffered(IN_FLIGHT).try_collect().await?;
    all.retain(|s| !s.samples.is_empty());
    all.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(all)
}

/// Reads the labels of `keys` not in the cache into it (rows never change
/// once written, so the cache is exact).
async fn load_labels(inner: &Inner, tenant: &str, keys: impl Iterator<Item = Key>) -> Result<()> {
    let session = &inner.session;
    let missing: Vec<Key> = {
        let cache = inner.labels.read();
        keys.filter(|k| !cache.contains_key(&(tenant.to_owned(), *k))).collect()
    };
    let fetched = futures::stream::iter(missing.into_iter().map(|key| async move {
        let r: Vec<(String,)> = rows(session, &inner.reads.series_labels, (tenant, key.0, key.1), "series").await?;
        Ok::<_, Error>((key, r))
    }))
    .buffer_unordered(IN_FLIGHT)
    .try_collect::<Vec<_>>()
    .await?;
    let mut cache = inner.labels.write();
    for (key, r) in fetched {
        if let Some((json,)) = r.into_iter().next() {
            let labels = schema::decode_labels(&json).map_err(|detail| Error::Corrupted { what: "series", detail })?;
            cache.insert((tenant.to_owned(), key), labels);
        }
    }
    Ok(())
}

/// Samples of `planned` in `range`; series without any are left out.
async fn fetch(inner: &Inner, tenant: &str, planned: Vec<Planned>, range: TimeRange) -> Result<Vec<SeriesData>> {
    let session = &inner.session;
    let reads = planned.into_iter().map(|p| async move {
        let mut samples: Vec<Sample> = Vec::new();
        for &b in &p.buckets {
            let r: Vec<(i64, f64)> =
                rows(session, &inner.reads.samples, (tenant, b, p.device_hash, p.key.0, p.key.1), "samples").await?;
            samples.extend(r.into_iter().filter(|(ts, _)| range.contains(*ts)).map(|(ts, v)| Sample::new(ts, v)));
        }
        Ok::<_, Error>(SeriesData { labels: p.labels, samples })
    });
    let all: Vec<SeriesData> = futures::stream::iter(reads).buffered(IN_FLIGHT).try_collect().await?;
    Ok(all.into_iter().filter(|s| !s.samples.is_empty()).collect())
}

impl ReadStore for ScyllaHot {
    fn select(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Result<Vec<SeriesData>, ReadError> {
        let mut out = Vec::new();
        self.select_each(tenant, matchers, range, &mut |s| {
            out.push(s);
            Ok(())
        })?;
        Ok(out)
    }

    fn select_each(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
        each: &mut dyn FnMut(SeriesData) -> Result<(), ReadError>,
    ) -> Result<(), ReadError> {
        let planned = self.plan(tenant, matchers, range)?;
        let mut rest = planned.into_iter().peekable();
        while rest.peek().is_some() {
            let chunk: Vec<Planned> = rest.by_ref().take(READ_CHUNK).collect();
            for s in self.fetch(tenant, chunk, range)? {
                each(s)?;
            }
        }
        Ok(())
    }

    fn series(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Result<Vec<Labels>, ReadError> {
        // A series with a bucket wholly inside the range has a sample in it;
        // the others are checked against their samples.
        let planned = self.plan(tenant, matchers, range)?;
        let (sure, check): (Vec<Planned>, Vec<Planned>) =
            planned.into_iter().partition(|p| p.buckets.iter().any(|&b| self.bucket_inside(b, range)));
        let mut out: Vec<Labels> = sure.into_iter().map(|p| p.labels).collect();
        for chunk in check.chunks(READ_CHUNK) {
            out.extend(self.fetch(tenant, chunk.to_vec(), range)?.into_iter().map(|s| s.labels));
        }
        out.sort();
        Ok(out)
    }
}

impl strata_schemas::BatchSink for ScyllaHot {
    fn apply_batch(&self, partition: u32, offset: u64, batch: &WriteBatch) -> Result<(), strata_schemas::ApplyError> {
        ScyllaHot::apply(self, partition, offset, batch)
            .map_err(|e| strata_schemas::ApplyError::new(e.kind(), e.to_string()))
    }
}
