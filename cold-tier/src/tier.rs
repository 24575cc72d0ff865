//! [`ColdTier`]: one region's catalog, its tenant tables, and commits.
//!
//! ```text
//!  open(config, data_dir)
//!    object store (warehouse URL) ──► ObjectStoreStorageFactory ──► SqlCatalog (SQLite / PostgreSQL)
//!  write_files(tenant, series)   group rows by (day(ts), bucket(device_hash)), sort by
//!                                (metric, series_id, ts), zstd Parquet via iceberg's rolling writer
//!  commit_files(tenant, files, source)
//!                                fast append; snapshot summary strata.source = <source>
//!                                (no-op when a snapshot with that source exists)
//! ```
//!
//! Data files written but never committed are invisible (orphans) and safe
//! to delete; the commit is the compare-and-swap of `metadata_location` in
//! the catalog's `iceberg_tables` row.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use iceberg::spec::{DataFile, DataFileFormat};
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{Catalog, CatalogBuilder, NamespaceIdent, TableCreation};
use iceberg_catalog_sql::{SqlBindStyle, SqlCatalog, SqlCatalogBuilder};
use strata_schemas::{Labels, Sample, SeriesId, TenantId};

use crate::config::ColdTierConfig;
use crate::error::{Error, Result};
use crate::storage::{ObjectStoreStorageFactory, StoreSpec};
use crate::table::{
    PROPERTY_ERASED_SOURCES, SUMMARY_ROWS, SUMMARY_SERIES, SUMMARY_SOURCE, SUMMARY_SOURCE_SEGMENTS, TableKind,
    samples_partition_spec, samples_properties, samples_schema, samples_sort_order,
};

/// One series and its samples, as handed to [`ColdTier::write_files`].
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSamples {
    /// Labels, `__name__` included.
    pub labels: Labels,
    /// `schemas::series_id` of the labels.
    pub series_id: SeriesId,
    /// `schemas::device_hash` as ingest computed it.
    pub device_hash: u64,
    /// Sorted, unique timestamps (ms).
    pub samples: Vec<Sample>,
}

/// What a commit records in its snapshot summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitSource {
    /// Idempotency key, e.g. `hot:<tenant>:<bucket_start_ms>`.
    pub source: String,
    /// Free-form provenance (hot segment ids), stored as `strata.source-segments`.
    pub segments: String,
}

/// Data files written for one tenant, not yet committed.
#[derive(Debug, Clone, Default)]
pub struct WrittenFiles {
    /// The Iceberg data files.
    pub files: Vec<DataFile>,
    /// Rows written.
    pub rows: u64,
    /// Series written.
    pub series: usize,
    /// Bytes of Parquet written.
    pub bytes: u64,
}

/// What [`ColdTier::commit_files`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    /// A new snapshot holds the files.
    Committed {
        /// Its id.
        snapshot_id: i64,
    },
    /// A snapshot with the same source already existed; nothing was committed.
    AlreadyCommitted {
        /// The existing snapshot's id.
        snapshot_id: i64,
    },
}

/// One region's cold tier. `Send + Sync`; share as `Arc<ColdTier>`.
///
/// A `ColdTier` addresses one kind of table per tenant: the samples table,
/// or (a view from [`ColdTier::rollup_view`]) a rollup table; every method
/// (commit, maintenance, purge) works on the tables of its kind.
#[derive(Debug, Clone)]
pub struct ColdTier {
    pub(crate) catalog: Arc<SqlCatalog>,
    pub(crate) config: ColdTierConfig,
    warehouse: String,
    storage: ObjectStoreStorageFactory,
    /// A second, small pool on the catalog database: the compare-and-swap of
    /// `metadata_location` for snapshots iceberg-rust 0.10 cannot commit
    /// (replace, delete; see `maintenance.rs`).
    pub(crate) pool: sqlx::AnyPool,
    /// `$n` placeholders (PostgreSQL) instead of `?` (SQLite).
    pub(crate) dollar_binds: bool,
    /// The tables this handle addresses.
    pub(crate) kind: TableKind,
    /// A group rollup view ([`ColdTier::group_view`]): the declaration id
    /// that names its rollup tables (`group<w>_<id>_<tenant>`).
    pub(crate) group: Option<u64>,
    /// Armed failpoints (crash tests, feature `failpoints`): the next pass
    /// through one fails with [`Error::Injected`]. Shared by every view of
    /// this tier.
    #[cfg(feature = "failpoints")]
    failpoints: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl ColdTier {
    /// Opens (creating if needed) the catalog and namespace of `config`, with
    /// default locations under `data_dir`. Must run on a tokio runtime.
    pub async fn open(config: &ColdTierConfig, data_dir: &Path) -> Result<ColdTier> {
        let mut config = config.clone();
        config.validate()?;
        let warehouse = config.warehouse_url(data_dir);
        let catalog_url = config.catalog_url(data_dir);
        let spec = StoreSpec { url: warehouse.clone(), options: config.storage_options.clone() };
        let storage = ObjectStoreStorageFactory::open(spec)?;
        prepare_sqlite_dir(&catalog_url)?;
        let bind = if catalog_url.starts_with("postgres") { SqlBindStyle::DollarNumeric } else { SqlBindStyle::QMark };
        let props = HashMap::from([
            ("uri".to_owned(), catalog_url.clone()),
            ("warehouse".to_owned(), warehouse.clone()),
            ("sql_bind_style".to_owned(), bind.to_string()),
        ]);
        let redacted = redact(&catalog_url);
        let catalog = SqlCatalogBuilder::default()
            .with_storage_factory(Arc::new(storage.clone()))
            .load(config.catalog_name.clone(), props)
            .await
            .map_err(|source| Error::OpenCatalog { url: redacted.clone(), source: Box::new(source) })?;
        let ns = NamespaceIdent::new(config.namespace.clone());
        let exists = catalog
            .namespace_exists(&ns)
            .await
            .map_err(|source| Error::OpenCatalog { url: redacted.clone(), source: Box::new(source) })?;
        if !exists {
            catalog
                .create_namespace(&ns, HashMap::new())
                .await
                .map_err(|source| Error::OpenCatalog { url: redacted.clone(), source: Box::new(source) })?;
        }
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(2)
            .idle_timeout(std::time::Duration::from_secs(10))
            .connect(&catalog_url)
            .await
            .map_err(|e| Error::OpenCatalog {
                url: redacted.clone(),
                source: Box::new(iceberg::Error::new(iceberg::ErrorKind::Unexpected, "connecting").with_source(e)),
            })?;
        let dollar_binds = bind == SqlBindStyle::DollarNumeric;
        tracing::info!(warehouse = %warehouse, catalog = %redacted, namespace = %config.namespace, "cold tier open");
        Ok(ColdTier {
            catalog: Arc::new(catalog),
            config,
            warehouse,
            storage,
            pool,
            dollar_binds,
            kind: TableKind::Samples,
            group: None,
            #[cfg(feature = "failpoints")]
            failpoints: Arc::default(),
        })
    }

    /// The same catalog and store addressing the tenants' `rollup` tables
    /// (cheap: shares the catalog, pool and store).
    pub fn rollup_view(&self, rollup: crate::table::Rollup) -> ColdTier {
        ColdTier { kind: TableKind::Rollup(rollup), group: None, ..self.clone() }
    }

    /// The same catalog and store addressing the tenants' group rollup
    /// tables `group<w>_<id>_<tenant>` of declaration `id` (rollup tables in
    /// every respect but their name; see `group_rollup.rs`). Its series
    /// view names a table that never exists, so rollup reads through it
    /// resolve series from the rows' own labels.
    pub fn group_view(&self, rollup: crate::table::Rollup, id: u64) -> ColdTier {
        ColdTier { kind: TableKind::Rollup(rollup), group: Some(id), ..self.clone() }
    }

    /// The same catalog and store addressing the tenants' tables of `kind`.
    pub(crate) fn with_kind(&self, kind: TableKind) -> ColdTier {
        ColdTier { kind, ..self.clone() }
    }

    /// The same catalog and store addressing the tenants' series tables.
    pub fn series_view(&self) -> ColdTier {
        ColdTier { kind: TableKind::Series, ..self.clone() }
    }

    /// Arms a failpoint for crash tests (feature `failpoints`): the next
    /// time an operation passes `point` (e.g. `erase_after_samples`, see
    /// `erase.rs`) it fails with [`Error::Injected`] instead, once.
    #[cfg(feature = "failpoints")]
    pub fn arm_failpoint(&self, point: &str) {
        self.failpoints.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(point.to_owned());
    }

    /// Fails with [`Error::Injected`] if `point` is armed (disarming it).
    #[cfg(feature = "failpoints")]
    pub(crate) fn failpoint(&self, point: &str) -> Result<()> {
        let hit = self.failpoints.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(point);
        if hit { Err(Error::Injected { point: point.to_owned() }) } else { Ok(()) }
    }

    /// Without the `failpoints` feature no failpoint is ever armed.
    #[cfg(not(feature = "failpoints"))]
    #[inline(always)]
    pub(crate) fn failpoint(&self, _point: &str) -> Result<()> {
        Ok(())
    }

    /// Which tables this handle addresses.
    pub fn kind(&self) -> TableKind {
        self.kind
    }

    pub(crate) fn ident(&self, tenant: &TenantId) -> iceberg::TableIdent {
        match self.group {
            Some(id) => crate::group_rollup::group_ident(&self.config.namespace, self.kind, id, tenant),
            None => self.kind.ident(&self.config.namespace, tenant),
        }
    }

    /// The validated configuration.
    pub fn config(&self) -> &ColdTierConfig {
        &self.config
    }

    /// The warehouse URL in use.
    pub fn warehouse(&self) -> &str {
        &self.warehouse
    }

    /// The object-store-backed storage factory (tests and tools use it to
    /// look at files).
    pub fn storage(&self) -> &ObjectStoreStorageFactory {
        &self.storage
    }

    /// The catalog (for maintenance code and tests).
    pub fn catalog(&self) -> &SqlCatalog {
        &self.catalog
    }

    /// Tenants that have a table in this region's namespace, sorted.
    pub async fn tenants(&self) -> Result<Vec<TenantId>> {
        let ns = NamespaceIdent::new(self.config.namespace.clone());
        let tables = self.catalog.list_tables(&ns).await.map_err(|source| Error::OpenCatalog {
            url: format!("namespace {}", self.config.namespace),
            source: Box::new(source),
        })?;
        let mut out: Vec<TenantId> = tables.iter().filter_map(|t| crate::table::tenant_of_table(t.name())).collect();
        out.sort();
        Ok(out)
    }

    /// The tenant's table, if it was created.
    pub async fn load_table(&self, tenant: &TenantId) -> Result<Option<Table>> {
        let ident = self.ident(tenant);
        let load_err = |source: iceberg::Error| Error::LoadTable { tenant: tenant.clone(), source: Box::new(source) };
        if !self.catalog.table_exists(&ident).await.map_err(load_err)? {
            return Ok(None);
        }
        Ok(Some(self.catalog.load_table(&ident).await.map_err(load_err)?))
    }

    /// Bytes of the data files the tenant's table holds now (its current
    /// snapshot's `total-files-size`; 0 without a table or a snapshot).
    pub async fn stored_bytes(&self, tenant: &TenantId) -> Result<u64> {
        let Some(table) = self.load_table(tenant).await? else { return Ok(0) };
        let bytes = table
            .metadata()
            .current_snapshot()
            .and_then(|s| s.summary().additional_properties.get("total-files-size").and_then(|v| v.parse().ok()));
        Ok(bytes.unwrap_or(0))
    }

    /// The tenant's table of this handle's kind, created on first use.
    pub async fn table(&self, tenant: &TenantId) -> Result<Table> {
        self.create_table(tenant, HashMap::new()).await
    }

    /// Creates the tenant's table of this handle's kind with extra table
    /// properties (or loads it when it exists).
    pub(crate) async fn create_table(&self, tenant: &TenantId, extra: HashMap<String, String>) -> Result<Table> {
        if let Some(t) = self.load_table(tenant).await? {
            return Ok(t);
        }
        let ident = self.ident(tenant);
        let mut properties = samples_properties(self.config.target_file_size);
        properties.extend(extra);
        let buckets = self.config.device_buckets;
        let (schema, spec, order) = match self.kind {
            TableKind::Samples => (samples_schema(), samples_partition_spec(buckets), samples_sort_order()),
            TableKind::Rollup(r) => {
                properties.insert("strata.layout-version".into(), crate::table::ROLLUP_LAYOUT_VERSION.into());
                // One row per series and day: splitting a day by device only multiplies files.
                let buckets = if r == crate::table::Rollup::OneDay { 1 } else { buckets };
                (crate::table::rollup_schema(), samples_partition_spec(buckets), samples_sort_order())
            }
            TableKind::Series => (
                crate::table::series_schema(),
                crate::table::series_partition_spec(buckets),
                crate::table::series_sort_order(),
            ),
        };
        let creation = TableCreation::builder()
            .name(ident.name().to_owned())
            .schema(schema)
            .partition_spec(spec)
            .sort_order(order)
            .properties(properties)
            .build();
        match self.catalog.create_table(ident.namespace(), creation).await {
            Ok(t) => {
                tracing::info!(tenant = %tenant, table = %ident, "created cold table");
                Ok(t)
            }
            // Lost a creation race: the other creator's table is as good.
            Err(e) => match self.load_table(tenant).await? {
                Some(t) => Ok(t),
                None => Err(Error::CreateTable { tenant: tenant.clone(), source: Box::new(e) }),
            },
        }
    }

    /// The id of a snapshot of the tenant's table whose summary has
    /// `strata.source = source`, searching every retained snapshot.
    pub async fn committed_source(&self, tenant: &TenantId, source: &str) -> Result<Option<i64>> {
        let Some(table) = self.load_table(tenant).await? else { return Ok(None) };
        Ok(find_source(&table, source))
    }

    /// Writes `series` as Parquet data files of the tenant's table (creating
    /// it if needed). Nothing is visible until [`ColdTier::commit_files`].
    pub async fn write_files(
        &self,
        tenant: &TenantId,
        series: &[SeriesSamples],
        file_prefix: &str,
    ) -> Result<WrittenFiles> {
        let table = self.table(tenant).await?;
        crate::write::write_files(&table, &self.config, tenant, series, file_prefix).await
    }

    /// Commits written files as one fast-append snapshot recording `source`.
    /// Idempotent: when a snapshot with the same `source.source` exists
    /// (a crash after an earlier commit), nothing is committed.
    pub async fn commit_files(
        &self,
        tenant: &TenantId,
        written: WrittenFiles,
        source: &CommitSource,
    ) -> Result<CommitOutcome> {
        let table = self.table(tenant).await?;
        if let Some(snapshot_id) = find_source(&table, &source.source) {
            return Ok(CommitOutcome::AlreadyCommitted { snapshot_id });
        }
        let commit_err = |source_err: iceberg::Error| Error::Commit {
            tenant: tenant.clone(),
            source_id: source.source.clone(),
            source: Box::new(source_err),
        };
        let props = HashMap::from([
            (SUMMARY_SOURCE.to_owned(), source.source.clone()),
            (SUMMARY_SOURCE_SEGMENTS.to_owned(), source.segments.clone()),
            (SUMMARY_ROWS.to_owned(), written.rows.to_string()),
            (SUMMARY_SERIES.to_owned(), written.series.to_string()),
        ]);
        let tx = Transaction::new(&table);
        let action = tx.fast_append().set_snapshot_properties(props).add_data_files(written.files);
        let tx = action.apply(tx).map_err(commit_err)?;
        let table = tx.commit(self.catalog.as_ref()).await.map_err(commit_err)?;
        let snapshot_id = find_source(&table, &source.source).ok_or_else(|| Error::Corrupted {
            tenant: tenant.clone(),
            detail: format!("committed snapshot for {} not found after commit", source.source),
        })?;
        Ok(CommitOutcome::Committed { snapshot_id })
    }

    /// Writes and commits in one go (see the two steps for crash semantics).
    pub async fn append(
        &self,
        tenant: &TenantId,
        series: &[SeriesSamples],
        source: &CommitSource,
    ) -> Result<(WrittenFiles, CommitOutcome)> {
        if let Some(snapshot_id) = self.committed_source(tenant, &source.source).await? {
            let empty = WrittenFiles { files: Vec::new(), rows: 0, series: 0, bytes: 0 };
            return Ok((empty, CommitOutcome::AlreadyCommitted { snapshot_id }));
        }
        let written = self.write_files(tenant, series, &file_prefix(&source.source)).await?;
        let outcome = self.commit_files(tenant, written.clone(), source).await?;
        Ok((written, outcome))
    }
}

/// A data-file name prefix derived from a source (`hot:acme:7200000` → `hot-7200000`)
/// plus a unique suffix so a retried write never collides with an orphan.
pub fn file_prefix(source: &str) -> String {
    let tail = source.rsplit(':').next().unwrap_or("data");
    format!("{}-{tail}-{}", source.split(':').next().unwrap_or("data"), uuid::Uuid::now_v7().simple())
}

/// The snapshot that committed `source`: one whose summary carries it, or,
/// when an erase expired that snapshot, the current one if the table's
/// [`PROPERTY_ERASED_SOURCES`] lists it (the commit happened; only its
/// snapshot is gone).
pub(crate) fn find_source(table: &Table, source: &str) -> Option<i64> {
    let meta = table.metadata();
    meta.snapshots()
        .find(|s| s.summary().additional_properties.get(SUMMARY_SOURCE).map(String::as_str) == Some(source))
        .map(|s| s.snapshot_id())
        .or_else(|| {
            let erased = meta.properties().get(PROPERTY_ERASED_SOURCES)?;
            erased.split(',').any(|s| s == source).then(|| meta.current_snapshot_id()).flatten()
        })
}

/// SQLite does not create missing parent directories.
fn prepare_sqlite_dir(url: &str) -> Result<()> {
    let Some(rest) = url.strip_prefix("sqlite://") else { return Ok(()) };
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    if let Some(parent) = Path::new(path).parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::InvalidConfig { detail: format!("creating {}: {e}", parent.display()) })?;
    }
    Ok(())
}

/// The URL without its password, for logs and errors.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// The default data-file format.
pub(crate) const FORMAT: DataFileFormat = DataFileFormat::Parquet;
