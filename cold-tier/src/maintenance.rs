//! Table maintenance: snapshot expiry, orphan-file removal, whole-file
//! deletes (retention), file rewrites (small-file merge) and tenant purge.
//!
//! ```text
//!  expire_snapshots(tenant, now, retention, protect)
//!     snapshot s (not current) superseded by its successor more than `retention` ago, !protect(s)
//!       → iceberg's ExpireSnapshotsAction (explicit ids; metadata only)
//!  remove_orphan_files(tenant, now, grace)
//!     list <table location>/ via object_store; keep every file a live snapshot reaches
//!     (manifest lists, manifests, live data files), the current and logged metadata files,
//!     and anything modified within `grace` (a write in flight); delete the rest
//!  delete_files / replace_files (retention, merge)
//!     rewrite the manifests that hold a removed file (EXISTING + DELETED entries), add a
//!     manifest of new files, write a manifest list and metadata file, then
//!     compare-and-swap `metadata_location` in the catalog row   ← the only visible step
//!  purge(tenant)
//!     drop the catalog row, then delete every object under the table location
//! ```
//!
//! iceberg-rust 0.10.1 commits fast appends and snapshot expiry but no
//! snapshot that removes data files (`TableCommit`'s builder is
//! crate-private), so [`ColdTier::commit_rewrite`] builds the snapshot with
//! iceberg's public spec types (manifest writers, `TableMetadataBuilder`) and
//! swaps the catalog row itself, exactly like the SQL catalog's own
//! `update_table` does (same table, same columns, same compare-and-swap).
//! Replace it with the library's action once one exists.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, MapArray, PrimitiveArray, StringArray};
use futures::TryStreamExt;
use iceberg::io::Storage;
use iceberg::spec::{
    DataFile, Literal, MAIN_BRANCH, ManifestFile, ManifestListWriter, ManifestWriterBuilder, Operation,
    PrimitiveLiteral, Snapshot, SnapshotSummaryCollector, Summary,
};
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{Catalog, MetadataLocation};
use object_store::ObjectStoreExt;
use strata_schemas::{Labels, Sample, SeriesId, TenantId};

use crate::error::{Error, Result};
use crate::read::each_file_batch;
use crate::tier::{ColdTier, SeriesSamples, WrittenFiles};

const MS_PER_DAY: i64 = 86_400_000;

/// Snapshot summary key: which maintenance operation produced the snapshot
/// (`retention`, `merge`).
pub const SUMMARY_OPERATION: &str = "strata.operation";

/// One live data file of a tenant's table (in its current snapshot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveFile {
    /// Full location (`file:///…`, `s3://…`).
    pub path: String,
    /// Partition `ts_day`: days since the epoch (UTC).
    pub day: i32,
    /// Partition `device_bucket`.
    pub bucket: i32,
    /// Size in bytes.
    pub bytes: u64,
    /// Rows (samples).
    pub rows: u64,
}

/// What [`ColdTier::expire_snapshots`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpireOutcome {
    /// Snapshots removed from the table metadata.
    pub expired: usize,
    /// Snapshots left.
    pub retained: usize,
}

/// What [`ColdTier::remove_orphan_files`] or [`ColdTier::purge`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilesDeleted {
    /// Objects looked at.
    pub scanned: u64,
    /// Objects deleted.
    pub files: u64,
    /// Bytes deleted.
    pub bytes: u64,
}

/// What a rewrite commit ([`ColdTier::delete_files`],
/// [`ColdTier::replace_files`]) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RewriteOutcome {
    /// The new snapshot.
    pub snapshot_id: i64,
    /// Data files removed from the table.
    pub removed_files: usize,
    /// Rows in the removed files.
    pub removed_rows: u64,
    /// Data files added.
    pub added_files: usize,
}

impl ColdTier {
    /// Every live data file of the tenant's current snapshot (empty without
    /// a table or snapshot), sorted by partition then path.
    pub async fn live_files(&self, tenant: &TenantId) -> Result<Vec<LiveFile>> {
        let Some(table) = self.load_table(tenant).await? else { return Ok(Vec::new()) };
        let Some(current) = table.metadata().current_snapshot() else { return Ok(Vec::new()) };
        let err = maint_err(tenant, "listing live files");
        let list = table.manifest_list_reader(current).load().await.map_err(err)?;
        let mut out = Vec::new();
        for mf in list.entries() {
            let manifest = mf.load_manifest(table.file_io()).await.map_err(maint_err(tenant, "reading manifest"))?;
            for e in manifest.entries().iter().filter(|e| e.is_alive()) {
                let df = e.data_file();
                let (day, bucket) = partition_of(df).ok_or_else(|| Error::Corrupted {
                    tenant: tenant.clone(),
                    detail: format!("data file {} has no (ts_day, device_bucket) partition", df.file_path()),
                })?;
                out.push(LiveFile {
                    path: df.file_path().to_owned(),
                    day,
                    bucket,
                    bytes: df.file_size_in_bytes(),
                    rows: df.record_count(),
                });
            }
        }
        out.sort_by(|a, b| (a.day, a.bucket, &a.path).cmp(&(b.day, b.bucket, &b.path)));
        Ok(out)
    }

    /// Removes snapshots that stopped being current more than `retention`
    /// before `now_ms` (a reader that planned its scan on one has had that
    /// long to finish), except the current one and those `protect` keeps.
    /// Metadata only: [`ColdTier::remove_orphan_files`] deletes the files
    /// nothing reaches any more.
    pub async fn expire_snapshots(
        &self,
        tenant: &TenantId,
        now_ms: i64,
        retention: Duration,
        protect: &(dyn Fn(&Snapshot) -> bool + Sync),
    ) -> Result<ExpireOutcome> {
        let Some(table) = self.load_table(tenant).await? else { return Ok(ExpireOutcome::default()) };
        let meta = table.metadata();
        let cutoff = now_ms.saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
        let mut snaps: Vec<&Snapshot> = meta.snapshots().map(|s| s.as_ref()).collect();
        snaps.sort_by_key(|s| (s.sequence_number(), s.timestamp_ms()));
        let current = meta.current_snapshot_id();
        let mut expire = Vec::new();
        for (i, s) in snaps.iter().enumerate() {
            let Some(next) = snaps.get(i + 1) else { continue }; // the newest is current
            if Some(s.snapshot_id()) == current || next.timestamp_ms() > cutoff || protect(s) {
                continue;
            }
            expire.push(s.snapshot_id());
        }
        let total = snaps.len();
        if expire.is_empty() {
            return Ok(ExpireOutcome { expired: 0, retained: total });
        }
        let n = expire.len();
        let err = maint_err(tenant, "expiring snapshots");
        let tx = Transaction::new(&table);
        // Explicit ids only: an age cutoff at the epoch selects nothing by age.
        let action = tx.expire_snapshots().expire_snapshot_ids(expire).expire_older_than_ms(i64::MIN);
        let tx = action.apply(tx).map_err(err)?;
        tx.commit(self.catalog.as_ref()).await.map_err(maint_err(tenant, "committing snapshot expiry"))?;
        tracing::info!(tenant = %tenant, expired = n, retained = total - n, "expired cold snapshots");
        Ok(ExpireOutcome { expired: n, retained: total - n })
    }

    /// Deletes every object under the table's location that no live
    /// snapshot reaches (data files, manifests, manifest lists) and that is
    /// not a current or logged metadata file, once it is older than `grace`
    /// (files of a write in flight are young). Removes the orphans of
    /// crashed writes and the files of expired snapshots.
    pub async fn remove_orphan_files(&self, tenant: &TenantId, now_ms: i64, grace: Duration) -> Result<FilesDeleted> {
        let Some(table) = self.load_table(tenant).await? else { return Ok(FilesDeleted::default()) };
        let storage = self.storage().storage();
        let path_err = maint_err(tenant, "mapping locations");
        let keep = referenced_objects(&table, tenant, storage).await?;
        let store = storage.object_store().map_err(maint_err(tenant, "opening object store"))?;
        let prefix = storage.object_path(table.metadata().location()).map_err(path_err)?;
        let cutoff = now_ms.saturating_sub(i64::try_from(grace.as_millis()).unwrap_or(i64::MAX));
        let os_err = |source| Error::ObjectStore { tenant: tenant.clone(), source: Box::new(source) };
        let objects: Vec<object_store::ObjectMeta> = store.list(Some(&prefix)).try_collect().await.map_err(os_err)?;
        let mut out = FilesDeleted { scanned: objects.len() as u64, ..FilesDeleted::default() };
        for o in objects {
            if keep.contains(o.location.as_ref()) || o.last_modified.timestamp_millis() > cutoff {
                continue;
            }
            match store.delete(&o.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                    out.files += 1;
                    out.bytes += o.size;
                }
                Err(e) => return Err(os_err(e)),
            }
        }
        if out.files > 0 {
            tracing::info!(
                tenant = %tenant, scanned = out.scanned, deleted = out.files, bytes = out.bytes,
                "removed unreferenced cold files"
            );
        }
        Ok(out)
    }

    /// Commits a `delete` snapshot removing whole data files (retention).
    /// `properties` go into the snapshot summary.
    pub async fn delete_files(
        &self,
        tenant: &TenantId,
        paths: &[String],
        properties: HashMap<String, String>,
    ) -> Result<RewriteOutcome> {
        self.commit_rewrite(tenant, paths, Vec::new(), Operation::Delete, properties, false).await
    }

    /// Commits a `replace` snapshot that swaps `paths` for `written`
    /// atomically (the data is unchanged, only its files: small-file merge).
    pub async fn replace_files(
        &self,
        tenant: &TenantId,
        paths: &[String],
        written: WrittenFiles,
        properties: HashMap<String, String>,
    ) -> Result<RewriteOutcome> {
        self.commit_rewrite(tenant, paths, written.files, Operation::Replace, properties, false).await
    }

    /// Folds the current snapshot's manifests into one with a `replace`
    /// snapshot (same data files) when there are more than `max_manifests`
    /// (every fast append adds one; scan planning reads them all). `None`
    /// when nothing needed doing.
    pub async fn compact_manifests(&self, tenant: &TenantId, max_manifests: usize) -> Result<Option<RewriteOutcome>> {
        let Some(table) = self.load_table(tenant).await? else { return Ok(None) };
        let Some(cur) = table.metadata().current_snapshot() else { return Ok(None) };
        let list = table.manifest_list_reader(cur).load().await.map_err(maint_err(tenant, "reading manifest list"))?;
        if list.entries().len() <= max_manifests.max(1) {
            return Ok(None);
        }
        let props = HashMap::from([(SUMMARY_OPERATION.to_owned(), "rewrite-manifests".to_owned())]);
        self.commit_rewrite(tenant, &[], Vec::new(), Operation::Replace, props, true).await.map(Some)
    }

    /// Reads data files of the tenant's table back into series (labels,
    /// id, device hash, samples sorted by time, one per timestamp). Holds
    /// them in memory: meant for small files.
    pub async fn read_files(&self, tenant: &TenantId, paths: &[String]) -> Result<Vec<SeriesSamples>> {
        let storage = self.storage().storage();
        let mut groups: BTreeMap<(i64, Labels), SeriesSamples> = BTreeMap::new();
        for p in paths {
            let bytes = storage.read(p).await.map_err(maint_err(tenant, "reading data file"))?;
            each_file_batch(bytes, p, tenant, |batch| absorb_rows(batch, tenant, &mut groups))?;
        }
        let mut out: Vec<SeriesSamples> = groups.into_values().collect();
        for s in &mut out {
            s.samples.sort_by_key(|x| x.ts);
            s.samples.dedup_by_key(|x| x.ts);
        }
        Ok(out)
    }

    /// Drops the tenant's table from the catalog, then deletes every object
    /// under its location (data, manifests, metadata, orphans). Idempotent: a
    /// purge interrupted after the drop finishes the deletion when re-run.
    pub async fn purge(&self, tenant: &TenantId) -> Result<FilesDeleted> {
        let ident = self.ident(tenant);
        let location = match self.load_table(tenant).await? {
            Some(t) => {
                let loc = t.metadata().location().to_owned();
                self.catalog.drop_table(&ident).await.map_err(maint_err(tenant, "dropping table"))?;
                tracing::warn!(tenant = %tenant, table = %ident, "dropped cold table");
                loc
            }
            None => format!("{}/{}/{}", self.warehouse(), self.config.namespace, self.ident(tenant).name()),
        };
        let storage = self.storage().storage();
        let store = storage.object_store().map_err(maint_err(tenant, "opening object store"))?;
        let prefix = storage.object_path(&location).map_err(maint_err(tenant, "mapping locations"))?;
        let os_err = |source| Error::ObjectStore { tenant: tenant.clone(), source: Box::new(source) };
        let objects: Vec<object_store::ObjectMeta> = store.list(Some(&prefix)).try_collect().await.map_err(os_err)?;
        let mut out = FilesDeleted { scanned: objects.len() as u64, ..FilesDeleted::default() };
        for o in objects {
            match store.delete(&o.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                    out.files += 1;
                    out.bytes += o.size;
                }
                Err(e) => return Err(os_err(e)),
            }
        }
        // Local file systems keep empty directories; remove them (best effort).
        if let Ok(url) = url::Url::parse(&location)
            && url.scheme() == "file"
            && let Ok(dir) = url.to_file_path()
        {
            let _ = std::fs::remove_dir_all(dir);
        }
        tracing::warn!(tenant = %tenant, files = out.files, bytes = out.bytes, "purged cold data");
        Ok(out)
    }

    /// Builds and commits a snapshot that removes `remove` (live data files)
    /// and adds `add`, retrying on a concurrent commit (each attempt starts
    /// from the freshly loaded table; a removed file that is no longer live
    /// fails with [`Error::Conflict`]).
    pub(crate) async fn commit_rewrite(
        &self,
        tenant: &TenantId,
        remove: &[String],
        add: Vec<DataFile>,
        operation: Operation,
        properties: HashMap<String, String>,
        force_consolidate: bool,
    ) -> Result<RewriteOutcome> {
        let remove: BTreeSet<&str> = remove.iter().map(String::as_str).collect();
        for attempt in 0..4 {
            let table = self
                .load_table(tenant)
                .await?
                .ok_or_else(|| Error::Conflict { tenant: tenant.clone(), detail: "the table does not exist".into() })?;
            let staged = stage_rewrite(
                &table,
                tenant,
                &remove,
                &add,
                operation.clone(),
                &properties,
                &HashMap::new(),
                force_consolidate,
            )
            .await?;
            let cur = table.metadata_location().unwrap_or_default().to_owned();
            if self.swap_metadata_location(tenant, &cur, &staged.location).await? {
                tracing::info!(
                    tenant = %tenant, operation = operation.as_str(), snapshot = staged.outcome.snapshot_id,
                    removed_files = staged.outcome.removed_files, removed_rows = staged.outcome.removed_rows,
                    added_files = staged.outcome.added_files, "committed cold rewrite"
                );
                return Ok(staged.outcome);
            }
            tracing::info!(tenant = %tenant, attempt, "cold rewrite lost a commit race; retrying");
        }
        Err(Error::Conflict {
            tenant: tenant.clone(),
            detail: "the table kept changing; gave up after 4 attempts".into(),
        })
    }

    /// Compare-and-swap of the catalog row's `metadata_location` (the JDBC
    /// catalog schema the SQL catalog, PyIceberg and Spark share). False
    /// when another commit won.
    pub(crate) async fn swap_metadata_location(&self, tenant: &TenantId, current: &str, new: &str) -> Result<bool> {
        let ident = self.ident(tenant);
        let sql = if self.dollar_binds {
            "UPDATE iceberg_tables SET metadata_location = $1, previous_metadata_location = $2 \
             WHERE catalog_name = $3 AND table_namespace = $4 AND table_name = $5 AND metadata_location = $6"
        } else {
            "UPDATE iceberg_tables SET metadata_location = ?, previous_metadata_location = ? \
             WHERE catalog_name = ? AND table_namespace = ? AND table_name = ? AND metadata_location = ?"
        };
        let done = sqlx::query(sql)
            .bind(new)
            .bind(current)
            .bind(&self.config.catalog_name)
            .bind(ident.namespace().join("."))
            .bind(ident.name())
            .bind(current)
            .execute(&self.pool)
            .await
            .map_err(|source| Error::CatalogSwap { tenant: tenant.clone(), source: Box::new(source) })?;
        Ok(done.rows_affected() == 1)
    }
}

/// Object paths (in the warehouse's store) of everything `table` still
/// needs: the current and logged metadata files, and per retained snapshot
/// its manifest list, manifests and live data files.
pub(crate) async fn referenced_objects(
    table: &Table,
    tenant: &TenantId,
    storage: &crate::storage::ObjectStoreStorage,
) -> Result<HashSet<String>> {
    let mut keep: HashSet<String> = HashSet::new();
    let mut note = |loc: &str| -> Result<()> {
        keep.insert(storage.object_path(loc).map_err(maint_err(tenant, "mapping locations"))?.to_string());
        Ok(())
    };
    if let Some(loc) = table.metadata_location() {
        note(loc)?;
    }
    for log in table.metadata().metadata_log() {
        note(&log.metadata_file)?;
    }
    let mut seen_manifests: HashSet<String> = HashSet::new();
    for snap in table.metadata().snapshots() {
        note(snap.manifest_list())?;
        let list = table.manifest_list_reader(snap).load().await.map_err(maint_err(tenant, "reading manifest list"))?;
        for mf in list.entries() {
            note(&mf.manifest_path)?;
            if !seen_manifests.insert(mf.manifest_path.clone()) {
                continue;
            }
            let manifest = mf.load_manifest(table.file_io()).await.map_err(maint_err(tenant, "reading manifest"))?;
            for e in manifest.entries().iter().filter(|e| e.is_alive()) {
                note(e.file_path())?;
            }
        }
    }
    Ok(keep)
}

/// A written, not yet visible, rewrite.
pub(crate) struct Staged {
    pub(crate) location: String,
    pub(crate) outcome: RewriteOutcome,
}

/// A rewrite folds the table's manifests into one when there are more.
const MAX_MANIFESTS: usize = 32;

/// Writes the manifests, manifest list and metadata file of a snapshot of
/// `table` that removes `remove` and adds `add` (summary `properties`) and
/// sets the table properties `table_props`; nothing is visible until the
/// caller swaps the catalog row to [`Staged::location`].
///
/// Three steps, each a method of [`Rewrite`]: the manifests
/// ([`Rewrite::rewrite_manifests`] for the current ones,
/// [`Rewrite::added_manifest`] for `add`), the manifest list
/// ([`Rewrite::write_manifest_list`]) and the new metadata file
/// ([`Rewrite::write_metadata`]).
#[expect(clippy::too_many_arguments, reason = "one internal builder shared by rewrites and roll commits")]
pub(crate) async fn stage_rewrite(
    table: &Table,
    tenant: &TenantId,
    remove: &BTreeSet<&str>,
    add: &[DataFile],
    operation: Operation,
    properties: &HashMap<String, String>,
    table_props: &HashMap<String, String>,
    force_consolidate: bool,
) -> Result<Staged> {
    let mut rw = Rewrite::new(table, tenant);
    // An erase's removed files may have a covered series' labels as their
    // column bounds: their DELETED entries go without bounds.
    let erase = properties.get(SUMMARY_OPERATION).is_some_and(|o| o == crate::erase::OPERATION_ERASE);
    let mut kept = rw.rewrite_manifests(remove, force_consolidate, erase).await?;
    if kept.removed != remove.len() {
        return Err(Error::Conflict {
            tenant: tenant.clone(),
            detail: format!("{} of {} files to remove are no longer live", remove.len() - kept.removed, remove.len()),
        });
    }
    if !add.is_empty() {
        kept.manifests.push(rw.added_manifest(add).await?);
    }
    let list_path = rw.write_manifest_list(kept.manifests).await?;
    let location = rw.write_metadata(list_path, operation, properties, table_props).await?;
    Ok(Staged {
        location,
        outcome: RewriteOutcome {
            snapshot_id: rw.snapshot_id,
            removed_files: kept.removed,
            removed_rows: kept.removed_rows,
            added_files: add.len(),
        },
    })
}

/// One staged rewrite of a table: the snapshot it builds (id, sequence
/// number, the uuid its files are named with) and the summary of the
/// files it adds and removes.
struct Rewrite<'a> {
    table: &'a Table,
    tenant: &'a TenantId,
    schema: iceberg::spec::SchemaRef,
    spec: iceberg::spec::PartitionSpecRef,
    snapshot_id: i64,
    seq: i64,
    commit_uuid: String,
    manifests_made: usize,
    collector: SnapshotSummaryCollector,
}

/// The current snapshot's manifests as the rewrite keeps them.
struct KeptManifests {
    manifests: Vec<ManifestFile>,
    /// Files of `remove` found live (and written as DELETED entries).
    removed: usize,
    removed_rows: u64,
}

impl<'a> Rewrite<'a> {
    fn new(table: &'a Table, tenant: &'a TenantId) -> Self {
        let meta = table.metadata();
        Self {
            table,
            tenant,
            schema: Arc::clone(meta.current_schema()),
            spec: Arc::clone(meta.default_partition_spec()),
            snapshot_id: unique_snapshot_id(table),
            seq: meta.next_sequence_number(),
            commit_uuid: uuid::Uuid::now_v7().simple().to_string(),
            manifests_made: 0,
            collector: SnapshotSummaryCollector::default(),
        }
    }

    fn err(&self, what: &'static str) -> impl Fn(iceberg::Error) -> Error + 'a {
        maint_err(self.tenant, what)
    }

    /// A writer of the next manifest file of this snapshot.
    fn new_manifest(&mut self) -> Result<iceberg::spec::ManifestWriter> {
        let path =
            format!("{}/metadata/{}-m{}.avro", self.table.metadata().location(), self.commit_uuid, self.manifests_made);
        self.manifests_made += 1;
        let out = self.table.file_io().new_output(path).map_err(self.err("creating manifest"))?;
        Ok(ManifestWriterBuilder::new(
            out,
            Some(self.snapshot_id),
            Arc::clone(&self.schema),
            self.spec.as_ref().clone(),
        )
        .build_v2_data())
    }

    /// The current snapshot's manifests without the files of `remove`:
    /// a manifest holding none of them is kept as it is; one holding some
    /// is rewritten with them as DELETED entries (without column bounds
    /// when `erase`) and the others as EXISTING; with more than
    /// [`MAX_MANIFESTS`] manifests (or `force_consolidate`) every live entry
    /// goes into one new manifest.
    async fn rewrite_manifests(
        &mut self,
        remove: &BTreeSet<&str>,
        force_consolidate: bool,
        erase: bool,
    ) -> Result<KeptManifests> {
        let mut kept = KeptManifests { manifests: Vec::new(), removed: 0, removed_rows: 0 };
        let table = self.table;
        let Some(cur) = table.metadata().current_snapshot() else { return Ok(kept) };
        let file_io = table.file_io();
        let list = table.manifest_list_reader(cur).load().await.map_err(self.err("reading manifest list"))?;
        // Many manifests (one per fast append) slow every scan plan: fold them into one.
        let consolidate = force_consolidate || list.entries().len() > MAX_MANIFESTS;
        let mut shared: Option<(iceberg::spec::ManifestWriter, usize)> = None;
        for mf in list.entries() {
            if !consolidate && remove.is_empty() {
                kept.manifests.push(mf.clone());
                continue;
            }
            let manifest = mf.load_manifest(file_io).await.map_err(self.err("reading manifest"))?;
            let touched = manifest.entries().iter().any(|e| e.is_alive() && remove.contains(e.file_path()));
            if !consolidate && !touched {
                kept.manifests.push(mf.clone());
                continue;
            }
            let mut own = None;
            let (w, written) = if consolidate {
                let slot = match shared.take() {
                    Some(slot) => slot,
                    None => (self.new_manifest()?, 0),
                };
                shared.insert(slot)
            } else {
                own.insert((self.new_manifest()?, 0))
            };
            for e in manifest.entries().iter().filter(|e| e.is_alive()) {
                *written += 1;
                self.keep_entry(w, e, remove, erase, &mut kept)?;
            }
            if let Some((w, _)) = own {
                kept.manifests.push(w.write_manifest_file().await.map_err(self.err("writing manifest"))?);
            }
        }
        if let Some((w, n)) = shared
            && n > 0
        {
            kept.manifests.push(w.write_manifest_file().await.map_err(self.err("writing manifest"))?);
        }
        Ok(kept)
    }

    /// Writes live entry `e` of a rewritten manifest to `w`: DELETED when
    /// `remove` names its file, EXISTING otherwise.
    fn keep_entry(
        &mut self,
        w: &mut iceberg::spec::ManifestWriter,
        e: &iceberg::spec::ManifestEntry,
        remove: &BTreeSet<&str>,
        erase: bool,
        kept: &mut KeptManifests,
    ) -> Result<()> {
        let (Some(seq_no), Some(snap)) = (e.sequence_number(), e.snapshot_id()) else {
            return Err(Error::Corrupted {
                tenant: self.tenant.clone(),
                detail: format!("manifest entry {} without sequence number or snapshot", e.file_path()),
            });
        };
        let df = e.data_file().clone();
        if remove.contains(e.file_path()) {
            let df = if erase { without_bounds(&df).map_err(self.err("writing manifest"))? } else { df };
            kept.removed += 1;
            kept.removed_rows += df.record_count();
            self.collector.remove_file(&df, Arc::clone(&self.schema), Arc::clone(&self.spec));
            w.add_delete_file(df, seq_no, e.file_sequence_number).map_err(self.err("writing manifest"))
        } else {
            w.add_existing_file(df, snap, seq_no, e.file_sequence_number).map_err(self.err("writing manifest"))
        }
    }

    /// A manifest of the files `add` (ADDED entries of this snapshot).
    async fn added_manifest(&mut self, add: &[DataFile]) -> Result<ManifestFile> {
        let mut w = self.new_manifest()?;
        for df in add {
            self.collector.add_file(df, Arc::clone(&self.schema), Arc::clone(&self.spec));
            w.add_file(df.clone(), self.seq).map_err(self.err("writing manifest"))?;
        }
        w.write_manifest_file().await.map_err(self.err("writing manifest"))
    }

    /// Writes the snapshot's manifest list; returns its path.
    async fn write_manifest_list(&self, manifests: Vec<ManifestFile>) -> Result<String> {
        let meta = self.table.metadata();
        let list_path = format!("{}/metadata/snap-{}-0-{}.avro", meta.location(), self.snapshot_id, self.commit_uuid);
        let writer = self
            .table
            .file_io()
            .new_output(&list_path)
            .map_err(self.err("creating manifest list"))?
            .writer()
            .await
            .map_err(self.err("creating manifest list"))?;
        let mut list = ManifestListWriter::v2(writer, self.snapshot_id, meta.current_snapshot_id(), self.seq);
        list.add_manifests(manifests.into_iter()).map_err(self.err("writing manifest list"))?;
        list.close().await.map_err(self.err("writing manifest list"))?;
        Ok(list_path)
    }

    /// Writes the next metadata file: the table's metadata with the new
    /// snapshot (summary `properties` plus the collected file counts and
    /// totals) on the main branch and `table_props` set; returns its
    /// location (the catalog row still points at the current one).
    async fn write_metadata(
        &mut self,
        list_path: String,
        operation: Operation,
        properties: &HashMap<String, String>,
        table_props: &HashMap<String, String>,
    ) -> Result<String> {
        let (table, tenant) = (self.table, self.tenant);
        let meta = table.metadata();
        let mut props = properties.clone();
        props.extend(std::mem::take(&mut self.collector).build());
        add_totals(&mut props, meta.current_snapshot().map(|c| c.summary()));
        let snapshot = Snapshot::builder()
            .with_manifest_list(list_path)
            .with_snapshot_id(self.snapshot_id)
            .with_parent_snapshot_id(meta.current_snapshot_id())
            .with_sequence_number(self.seq)
            .with_summary(Summary { operation, additional_properties: props })
            .with_schema_id(meta.current_schema_id())
            .with_timestamp_ms(strata_schemas::time::now_millis().max(meta.last_updated_ms()))
            .build();
        let cur_loc = table.metadata_location().ok_or_else(|| Error::Corrupted {
            tenant: tenant.clone(),
            detail: "table has no metadata location".into(),
        })?;
        let new_meta = meta
            .clone()
            .into_builder(Some(cur_loc.to_owned()))
            .set_branch_snapshot(snapshot, MAIN_BRANCH)
            .and_then(|b| if table_props.is_empty() { Ok(b) } else { b.set_properties(table_props.clone()) })
            .and_then(|b| b.build())
            .map_err(self.err("building metadata"))?
            .metadata;
        let new_loc = MetadataLocation::from_str(cur_loc)
            .map_err(self.err("naming metadata"))?
            .with_next_version()
            .with_new_metadata(&new_meta);
        new_meta.write_to(table.file_io(), &new_loc).await.map_err(self.err("writing metadata"))?;
        Ok(new_loc.to_string())
    }
}

/// `df` without its column bounds (counts and sizes kept).
fn without_bounds(df: &DataFile) -> iceberg::Result<DataFile> {
    let mut b = iceberg::spec::DataFileBuilder::default();
    b.content(df.content_type())
        .file_path(df.file_path().to_owned())
        .file_format(df.file_format())
        .partition(df.partition().clone())
        .record_count(df.record_count())
        .file_size_in_bytes(df.file_size_in_bytes())
        .column_sizes(df.column_sizes().clone())
        .value_counts(df.value_counts().clone())
        .null_value_counts(df.null_value_counts().clone())
        .nan_value_counts(df.nan_value_counts().clone())
        .split_offsets(df.split_offsets().map(<[i64]>::to_vec));
    // partition_spec_id: the builder's default, 0, the only spec Strata's tables have.
    if let Some(id) = df.sort_order_id() {
        b.sort_order_id(id);
    }
    b.build().map_err(|e| iceberg::Error::new(iceberg::ErrorKind::Unexpected, e.to_string()))
}

/// `total-*` keys from the previous snapshot's totals and this one's
/// `added-*` / `deleted-*` (what iceberg does for its own snapshots).
fn add_totals(props: &mut HashMap<String, String>, previous: Option<&Summary>) {
    let get = |m: &HashMap<String, String>, k: &str| m.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let prev = previous.map(|s| &s.additional_properties);
    for (total, added, removed) in [
        ("total-data-files", "added-data-files", "deleted-data-files"),
        ("total-records", "added-records", "deleted-records"),
        ("total-files-size", "added-files-size", "removed-files-size"),
        ("total-delete-files", "added-delete-files", "removed-delete-files"),
        ("total-position-deletes", "added-position-deletes", "removed-position-deletes"),
        ("total-equality-deletes", "added-equality-deletes", "removed-equality-deletes"),
    ] {
        let before = prev.map_or(0, |p| get(p, total));
        let v = (before + get(props, added)).saturating_sub(get(props, removed));
        props.insert(total.to_owned(), v.to_string());
    }
}

fn unique_snapshot_id(table: &Table) -> i64 {
    loop {
        let (a, b) = uuid::Uuid::new_v4().as_u64_pair();
        let id = ((a ^ b) >> 1) as i64;
        if id != 0 && table.metadata().snapshot_by_id(id).is_none() {
            return id;
        }
    }
}

/// `(ts_day, device_bucket)` of a data file; `(0, device_bucket)` for a
/// series table's (partitioned by bucket only).
pub(crate) fn partition_of(df: &DataFile) -> Option<(i32, i32)> {
    let f = df.partition().fields();
    let int = |v: &Option<Literal>| match v {
        Some(Literal::Primitive(PrimitiveLiteral::Int(i))) => Some(*i),
        _ => None,
    };
    match f {
        [bucket] => Some((0, int(bucket)?)),
        _ => Some((int(f.first()?)?, int(f.get(1)?)?)),
    }
}

/// The UTC day (days since the epoch) of `ts_ms`: every day partition
/// before it ends at or before `ts_ms`, so it holds only older samples.
pub fn whole_days_before(ts_ms: i64) -> i32 {
    let d = ts_ms.div_euclid(MS_PER_DAY);
    i32::try_from(d).unwrap_or(if d < 0 { i32::MIN } else { i32::MAX })
}

pub(crate) fn maint_err<'a>(tenant: &'a TenantId, what: &'static str) -> impl Fn(iceberg::Error) -> Error + 'a {
    move |source| Error::Maintenance { tenant: tenant.clone(), what, source: Box::new(source) }
}

fn absorb_rows(
    batch: &arrow_array::RecordBatch,
    tenant: &TenantId,
    groups: &mut BTreeMap<(i64, Labels), SeriesSamples>,
) -> Result<()> {
    let corrupt = |what: &str| Error::Corrupted { tenant: tenant.clone(), detail: format!("column {what} missing") };
    let col = |name: &str| batch.column_by_name(name).ok_or_else(|| corrupt(name));
    let map = col("labels")?.as_any().downcast_ref::<MapArray>().ok_or_else(|| corrupt("labels"))?;
    let keys: &StringArray = map.keys().as_string_opt::<i32>().ok_or_else(|| corrupt("labels.key"))?;
    let values: &StringArray = map.values().as_string_opt::<i32>().ok_or_else(|| corrupt("labels.value"))?;
    let ids = col("series_id")?.as_primitive_opt::<Int64Type>().ok_or_else(|| corrupt("series_id"))?;
    let devs = col("device_hash")?.as_primitive_opt::<Int64Type>().ok_or_else(|| corrupt("device_hash"))?;
    let ts: &PrimitiveArray<TimestampMicrosecondType> =
        col("ts")?.as_primitive_opt::<TimestampMicrosecondType>().ok_or_else(|| corrupt("ts"))?;
    let vals = col("value")?.as_primitive_opt::<Float64Type>().ok_or_else(|| corrupt("value"))?;
    let offsets = map.value_offsets();
    let mut last: Option<(i64, Labels)> = None;
    for i in 0..batch.num_rows() {
        let Some(&[start, end]) = offsets.get(i..i + 2) else {
            let detail = format!("labels map has no offsets for row {i} of {}", batch.num_rows());
            return Err(Error::Corrupted { tenant: tenant.clone(), detail });
        };
        let (start, end) = (start as usize, end as usize);
        let id = ids.value(i);
        let same = last.as_ref().is_some_and(|(lid, l)| {
            *lid == id
                && l.len() == end - start
                && l.iter()
                    .enumerate()
                    .all(|(j, x)| keys.value(start + j) == x.name && values.value(start + j) == x.value)
        });
        if !same {
            let labels = Labels::from_pairs((start..end).map(|j| (keys.value(j), values.value(j))));
            last = Some((id, labels));
        }
        let Some((_, labels)) = &last else { continue };
        let entry = groups.entry((id, labels.clone())).or_insert_with(|| SeriesSamples {
            labels: labels.clone(),
            series_id: SeriesId(id as u64),
            device_hash: devs.value(i) as u64,
            samples: Vec::new(),
        });
        entry.samples.push(Sample::new(ts.value(i).div_euclid(1000), vals.value(i)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_before_a_cutoff_end_at_or_before_it() {
        assert_eq!(whole_days_before(0), 0);
        assert_eq!(whole_days_before(MS_PER_DAY - 1), 0);
        assert_eq!(whole_days_before(MS_PER_DAY), 1);
        assert_eq!(whole_days_before(-1), -1);
    }

    #[test]
    fn totals_follow_adds_and_deletes() {
        let prev = Summary {
            operation: Operation::Append,
            additional_properties: HashMap::from([
                ("total-data-files".to_owned(), "5".to_owned()),
                ("total-records".to_owned(), "100".to_owned()),
            ]),
        };
        let mut p = HashMap::from([
            ("added-data-files".to_owned(), "1".to_owned()),
            ("deleted-data-files".to_owned(), "3".to_owned()),
            ("deleted-records".to_owned(), "40".to_owned()),
            ("added-records".to_owned(), "40".to_owned()),
        ]);
        add_totals(&mut p, Some(&prev));
        assert_eq!(p["total-data-files"], "3");
        assert_eq!(p["total-records"], "100");
    }
}
