//! Erase planning and clean-up: which data files may hold covered rows
//! (partition and column-bound pruning), the files of a snapshot, expiry of
//! the snapshots that still reference removed files, and deletion of their
//! objects (through a pending list, so a crash between the expiry commit
//! and the deletes is finished by the next run).

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use futures::TryStreamExt;
use iceberg::io::Storage;
use iceberg::spec::{DataFile, PrimitiveLiteral, SnapshotRef, Transform};
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use object_store::ObjectStoreExt;
use strata_schemas::{Labels, MatchOp, Matcher, TenantId, TimeRange};

use super::{ColdEraseReport, EraseRequest};
use crate::error::{Error, Result};
use crate::maintenance::{maint_err, partition_of, referenced_objects};
use crate::table::{
    ERASED_SOURCES_KEPT, FIELD_DEVICE_HASH, FIELD_METRIC, FIELD_TS, PROPERTY_ERASED_SOURCES, SUMMARY_SOURCE, TableKind,
};
use crate::tier::ColdTier;
use crate::write::{DeviceBucket, table_buckets};

const MS_PER_DAY: i64 = 86_400_000;

/// Name prefix of every object an erase writes (data files, pending lists).
pub(super) const ERASE_FILE_PREFIX: &str = "erase";
/// Name prefix of a pending-deletion list under `<table>/metadata/`.
const PENDING_PREFIX: &str = "erase-pending-";

/// Which data files may hold rows an erase request covers.
pub(super) struct Prune {
    /// `ts` range (ms, inclusive) the rows of interest lie in; `None` for
    /// a series table (no `ts`).
    ts: Option<(i64, i64)>,
    /// The table is partitioned by day.
    has_day: bool,
    /// Device hashes (as stored, signed) when every selector pins a device.
    hashes: Option<Vec<i64>>,
    /// Their buckets.
    buckets: Option<HashSet<i32>>,
    /// Metric names when every selector pins one.
    metrics: Option<Vec<String>>,
}

impl Prune {
    pub(super) fn new(
        tier: &ColdTier,
        table: &Table,
        tenant: &TenantId,
        req: &EraseRequest,
        ts: Option<(i64, i64)>,
    ) -> Result<Self> {
        let corrupt = |detail: String| Error::Corrupted { tenant: tenant.clone(), detail };
        let pinned = |name: &str| -> Option<Vec<String>> {
            req.selectors.iter().map(|sel| equal_value(sel, name)).collect::<Option<Vec<String>>>()
        };
        let devices = pinned(&tier.config.device_label);
        let hashes: Option<Vec<i64>> =
            devices.map(|ds| ds.iter().map(|d| strata_schemas::device_hash_of(tenant, d) as i64).collect::<Vec<i64>>());
        let buckets = match (&hashes, table_buckets(table)) {
            (Some(hs), Some(n)) => {
                let f = DeviceBucket::new(n).map_err(corrupt)?;
                Some(hs.iter().map(|h| f.of(*h as u64)).collect::<Result<HashSet<i32>, String>>().map_err(corrupt)?)
            }
            _ => None,
        };
        let has_day =
            table.metadata().default_partition_spec().fields().iter().any(|f| matches!(f.transform, Transform::Day));
        Ok(Self { ts, has_day, hashes, buckets, metrics: pinned(strata_schemas::METRIC_NAME) })
    }

    /// False only when `df` cannot hold a row of interest.
    pub(super) fn may_hold(&self, df: &DataFile) -> bool {
        if let Some((day, bucket)) = partition_of(df) {
            if let (true, Some((lo, hi))) = (self.has_day, self.ts) {
                let start = i64::from(day) * MS_PER_DAY;
                if start > hi || start.saturating_add(MS_PER_DAY - 1) < lo {
                    return false;
                }
            }
            if self.buckets.as_ref().is_some_and(|b| !b.contains(&bucket)) {
                return false;
            }
        }
        if let (Some((lo, hi)), Some((flo, fhi))) = (self.ts, long_bounds(df, FIELD_TS))
            && (flo > hi.saturating_mul(1000) || fhi < lo.saturating_mul(1000))
        {
            return false;
        }
        if let (Some(hs), Some((flo, fhi))) = (&self.hashes, long_bounds(df, FIELD_DEVICE_HASH))
            && !hs.iter().any(|h| flo <= *h && *h <= fhi)
        {
            return false;
        }
        if let (Some(ms), Some((flo, fhi))) = (&self.metrics, string_bounds(df, FIELD_METRIC))
            && !ms.iter().any(|m| flo <= m.as_str() && m.as_str() <= fhi)
        {
            return false;
        }
        true
    }
}

/// The value of a non-empty `name="value"` matcher of `sel`, if it has one.
fn equal_value(sel: &[Matcher], name: &str) -> Option<String> {
    sel.iter()
        .find(|m| m.name == name && matches!(m.op, MatchOp::Equal) && !m.value.is_empty())
        .map(|m| m.value.clone())
}

fn long_bounds(df: &DataFile, field: i32) -> Option<(i64, i64)> {
    let get = |d: Option<&iceberg::spec::Datum>| match d.map(|d| d.literal()) {
        Some(PrimitiveLiteral::Long(v)) => Some(*v),
        _ => None,
    };
    Some((get(df.lower_bounds().get(&field))?, get(df.upper_bounds().get(&field))?))
}

fn string_bounds(df: &DataFile, field: i32) -> Option<(&str, &str)> {
    Some((string_of(df.lower_bounds().get(&field))?, string_of(df.upper_bounds().get(&field))?))
}

fn string_of(d: Option<&iceberg::spec::Datum>) -> Option<&str> {
    match d.map(|d| d.literal()) {
        Some(PrimitiveLiteral::String(v)) => Some(v.as_str()),
        _ => None,
    }
}

/// Live data files of the table's current snapshot.
pub(super) async fn live_data_files(table: &Table, tenant: &TenantId) -> Result<Vec<DataFile>> {
    match table.metadata().current_snapshot() {
        Some(cur) => snapshot_files(table, tenant, cur, &mut HashMap::new()).await,
        None => Ok(Vec::new()),
    }
}

/// Live data files of `snap` (manifests read once per `cache`).
pub(super) async fn snapshot_files(
    table: &Table,
    tenant: &TenantId,
    snap: &SnapshotRef,
    cache: &mut HashMap<String, Vec<DataFile>>,
) -> Result<Vec<DataFile>> {
    let list = table.manifest_list_reader(snap).load().await.map_err(maint_err(tenant, "reading manifest list"))?;
    let mut out = Vec::new();
    for mf in list.entries() {
        if let Some(files) = cache.get(&mf.manifest_path) {
            out.extend(files.iter().cloned());
            continue;
        }
        let manifest = mf.load_manifest(table.file_io()).await.map_err(maint_err(tenant, "reading manifest"))?;
        let files: Vec<DataFile> =
            manifest.entries().iter().filter(|e| e.is_alive()).map(|e| e.data_file().clone()).collect();
        out.extend(files.iter().cloned());
        cache.insert(mf.manifest_path.clone(), files);
    }
    Ok(out)
}

/// The pending-deletion list: object paths to delete once nothing
/// retained references them.
#[derive(serde::Serialize, serde::Deserialize)]
struct Pending {
    objects: Vec<String>,
}

impl ColdTier {
    /// Step 4 for this view's table: expire every non-current snapshot that
    /// references a data file no longer live that may hold covered rows,
    /// then delete what only those snapshots reached.
    pub(super) async fn expire_erased(
        &self,
        tenant: &TenantId,
        req: &EraseRequest,
        report: &mut ColdEraseReport,
    ) -> Result<()> {
        let Some(table) = self.load_table(tenant).await? else { return Ok(()) };
        self.process_pending(&table, tenant, report).await?;
        let ts = match self.kind {
            TableKind::Samples => Some((req.start, req.end)),
            TableKind::Rollup(r) => Some(req.window_ends(r.width_ms())),
            TableKind::Series => None,
        };
        let prune = Prune::new(self, &table, tenant, req, ts)?;
        let current = table.metadata().current_snapshot_id();
        let mut cache = HashMap::new();
        let live: HashSet<String> = match table.metadata().current_snapshot() {
            Some(cur) => snapshot_files(&table, tenant, cur, &mut cache)
                .await?
                .iter()
                .map(|f| f.file_path().to_owned())
                .collect(),
            None => HashSet::new(),
        };
        let mut expire: Vec<&SnapshotRef> = Vec::new();
        for snap in table.metadata().snapshots() {
            if Some(snap.snapshot_id()) == current {
                continue;
            }
            let files = snapshot_files(&table, tenant, snap, &mut cache).await?;
            if files.iter().any(|f| !live.contains(f.file_path()) && prune.may_hold(f)) {
                expire.push(snap);
            }
        }
        if expire.is_empty() {
            return Ok(());
        }
        let pending = self.reached_by(&table, tenant, &expire, &mut cache).await?;
        let storage = self.storage().storage();
        let loc =
            format!("{}/metadata/{PENDING_PREFIX}{}.json", table.metadata().location(), uuid::Uuid::now_v7().simple());
        let body = serde_json::to_vec(&pending)
            .map_err(|e| Error::Corrupted { tenant: tenant.clone(), detail: e.to_string() })?;
        storage.write(&loc, Bytes::from(body)).await.map_err(maint_err(tenant, "writing pending erase list"))?;
        self.failpoint("erase_before_expiry")?;
        self.commit_expiry(&table, tenant, &expire).await?;
        report.snapshots_expired += expire.len() as u64;
        self.failpoint("erase_after_expiry")?;
        let fresh = self.load_table(tenant).await?.unwrap_or(table);
        self.process_pending(&fresh, tenant, report).await
    }

    /// Object paths of everything `snaps` reach (manifest lists, manifests,
    /// live data files).
    async fn reached_by(
        &self,
        table: &Table,
        tenant: &TenantId,
        snaps: &[&SnapshotRef],
        cache: &mut HashMap<String, Vec<DataFile>>,
    ) -> Result<Pending> {
        let storage = self.storage().storage();
        let path =
            |loc: &str| storage.object_path(loc).map(|p| p.to_string()).map_err(maint_err(tenant, "mapping locations"));
        let mut objects = HashSet::new();
        for snap in snaps {
            objects.insert(path(snap.manifest_list())?);
            let list =
                table.manifest_list_reader(snap).load().await.map_err(maint_err(tenant, "reading manifest list"))?;
            for mf in list.entries() {
                objects.insert(path(&mf.manifest_path)?);
            }
            for f in snapshot_files(table, tenant, snap, cache).await? {
                objects.insert(path(f.file_path())?);
            }
        }
        let mut objects: Vec<String> = objects.into_iter().collect();
        objects.sort();
        Ok(Pending { objects })
    }

    /// Expires `snaps`, recording their `strata.source`s in the table's
    /// erased-sources property in the same commit.
    async fn commit_expiry(&self, table: &Table, tenant: &TenantId, snaps: &[&SnapshotRef]) -> Result<()> {
        let err = maint_err(tenant, "expiring erased snapshots");
        let ids: Vec<i64> = snaps.iter().map(|s| s.snapshot_id()).collect();
        let mut sources: Vec<String> = table
            .metadata()
            .properties()
            .get(PROPERTY_ERASED_SOURCES)
            .map(|v| v.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default();
        let mut ordered: Vec<&&SnapshotRef> = snaps.iter().collect();
        ordered.sort_by_key(|s| s.sequence_number());
        for s in ordered {
            if let Some(src) = s.summary().additional_properties.get(SUMMARY_SOURCE)
                && !sources.contains(src)
            {
                sources.push(src.clone());
            }
        }
        let skip = sources.len().saturating_sub(ERASED_SOURCES_KEPT);
        let value = sources.get(skip..).unwrap_or_default().join(",");
        let tx = Transaction::new(table);
        let tx =
            tx.expire_snapshots().expire_snapshot_ids(ids).expire_older_than_ms(i64::MIN).apply(tx).map_err(&err)?;
        let tx = if value.is_empty() {
            tx
        } else {
            tx.update_table_properties().set(PROPERTY_ERASED_SOURCES.to_owned(), value).apply(tx).map_err(&err)?
        };
        tx.commit(self.catalog.as_ref()).await.map_err(&err)?;
        tracing::info!(tenant = %tenant, table = ?self.kind, expired = snaps.len(), "expired snapshots holding erased files");
        Ok(())
    }

    /// Deletes the objects of every pending list under the table's
    /// `metadata/` that nothing `table` retains references, then the list.
    async fn process_pending(&self, table: &Table, tenant: &TenantId, report: &mut ColdEraseReport) -> Result<()> {
        let storage = self.storage().storage();
        let store = storage.object_store().map_err(maint_err(tenant, "opening object store"))?;
        let os_err = |source| Error::ObjectStore { tenant: tenant.clone(), source: Box::new(source) };
        let meta_dir = format!("{}/metadata", table.metadata().location());
        let prefix = storage.object_path(&meta_dir).map_err(maint_err(tenant, "mapping locations"))?;
        let lists: Vec<object_store::ObjectMeta> = store
            .list(Some(&prefix))
            .try_filter(|o| {
                futures::future::ready(o.location.filename().is_some_and(|n| n.starts_with(PENDING_PREFIX)))
            })
            .try_collect()
            .await
            .map_err(os_err)?;
        if lists.is_empty() {
            return Ok(());
        }
        let keep = referenced_objects(table, tenant, storage).await?;
        for list in lists {
            let body = store.get(&list.location).await.map_err(os_err)?.bytes().await.map_err(os_err)?;
            let pending: Pending = serde_json::from_slice(&body).map_err(|e| Error::Corrupted {
                tenant: tenant.clone(),
                detail: format!("pending erase list {}: {e}", list.location),
            })?;
            for p in pending.objects.iter().filter(|p| !keep.contains(p.as_str())) {
                let path = object_store::path::Path::parse(p).map_err(|e| os_err(e.into()))?;
                match store.delete(&path).await {
                    Ok(()) => report.objects_deleted += 1,
                    Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(os_err(e)),
                }
            }
            store.delete(&list.location).await.map_err(os_err)?;
        }
        Ok(())
    }

    /// Step 5 for this view's table: unreferenced objects an erase wrote are
    /// deleted at once, any other once older than `grace`.
    pub(super) async fn delete_erase_orphans(
        &self,
        tenant: &TenantId,
        grace: std::time::Duration,
        report: &mut ColdEraseReport,
    ) -> Result<()> {
        let Some(table) = self.load_table(tenant).await? else { return Ok(()) };
        let storage = self.storage().storage();
        let store = storage.object_store().map_err(maint_err(tenant, "opening object store"))?;
        let os_err = |source| Error::ObjectStore { tenant: tenant.clone(), source: Box::new(source) };
        let keep = referenced_objects(&table, tenant, storage).await?;
        let prefix =
            storage.object_path(table.metadata().location()).map_err(maint_err(tenant, "mapping locations"))?;
        let cutoff =
            strata_schemas::time::now_millis().saturating_sub(i64::try_from(grace.as_millis()).unwrap_or(i64::MAX));
        let objects: Vec<object_store::ObjectMeta> = store.list(Some(&prefix)).try_collect().await.map_err(os_err)?;
        for o in objects {
            if keep.contains(o.location.as_ref()) {
                continue;
            }
            let ours = o.location.filename().is_some_and(|n| n.starts_with(ERASE_FILE_PREFIX));
            if !ours && o.last_modified.timestamp_millis() > cutoff {
                continue;
            }
            match store.delete(&o.location).await {
                Ok(()) => report.objects_deleted += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(os_err(e)),
            }
        }
        Ok(())
    }

    /// Objects under this view's table location that nothing retained
    /// references (any age); 0 without a table.
    pub(super) async fn unreferenced_objects(&self, tenant: &TenantId) -> Result<u64> {
        let Some(table) = self.load_table(tenant).await? else { return Ok(0) };
        let storage = self.storage().storage();
        let store = storage.object_store().map_err(maint_err(tenant, "opening object store"))?;
        let os_err = |source| Error::ObjectStore { tenant: tenant.clone(), source: Box::new(source) };
        let keep = referenced_objects(&table, tenant, storage).await?;
        let prefix =
            storage.object_path(table.metadata().location()).map_err(maint_err(tenant, "mapping locations"))?;
        let objects: Vec<object_store::ObjectMeta> = store.list(Some(&prefix)).try_collect().await.map_err(os_err)?;
        Ok(objects.iter().filter(|o| !keep.contains(o.location.as_ref())).count() as u64)
    }

    /// Distinct label sets of this rollup view's rows that `sel` matches.
    pub(super) async fn rollup_series_labels(&self, tenant: &TenantId, sel: &[Matcher]) -> Result<Vec<Labels>> {
        let Some(table) = self.load_table(tenant).await? else { return Ok(Vec::new()) };
        if table.metadata().current_snapshot().is_none() {
            return Ok(Vec::new());
        }
        let mut seen: HashSet<Labels> = HashSet::new();
        self.scan_batches(&table, tenant, sel, TimeRange::ALL, &["labels", "series_id"], |batch| {
            let map: &arrow_array::MapArray = crate::read::column(batch, "labels", tenant)?;
            let corrupt = || Error::Corrupted { tenant: tenant.clone(), detail: "labels are not strings".into() };
            use arrow_array::cast::AsArray;
            let keys = map.keys().as_string_opt::<i32>().ok_or_else(corrupt)?;
            let values = map.values().as_string_opt::<i32>().ok_or_else(corrupt)?;
            let mut last: Option<Labels> = None;
            for i in 0..batch.num_rows() {
                if last.as_ref().is_some_and(|l| crate::read::labels_equal(map, keys, values, i, l)) {
                    continue;
                }
                let labels = crate::read::row_labels(map, keys, values, i);
                if Matcher::matches_all(sel, &labels) {
                    seen.insert(labels.clone());
                }
                last = Some(labels);
            }
            Ok(())
        })
        .await?;
        Ok(seen.into_iter().collect())
    }
}
