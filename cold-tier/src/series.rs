//! Series tables: one row per series of a tenant, so the rollup read need
//! not decode a label map per rollup row.
//!
//! ```text
//!  compactor, per roll, before the rollup commits:
//!    series of the bucket not yet recorded ─► write_series_files ─► commit_series_files (fast append)
//!  query: select_rollup(tenant, matchers, ends)
//!    series_<tenant>  scan (labels, series_id), metric / device_hash pushed down ─► SeriesIndex
//!                     id → labels when every matcher matches, id → skip when not
//!    rollup<w>_<tenant> scan without labels (series_id, ts, aggregates), same pushdown
//!                     runs of one id → its series; an id the index lacks ─► the labels-column read
//! ```
//!
//! Appends are not exactly-once: a series may be recorded twice (readers
//! keep one row per (series_id, labels)). What matters is that every rollup
//! row's series is recorded before the rollup row is committed (the
//! compactor commits the series first), and a read that meets an id the
//! table lacks (rollups written before series tables existed) falls back to
//! the rollup table's own `labels` column. A series id shared by two label
//! sets (a hash collision) also falls back: only the labels column can tell
//! their rows apart.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{MapArray, RecordBatch};
use arrow_schema::{ArrowError, Schema as ArrowSchema};
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use strata_schemas::{Labels, Matcher, SeriesId, TenantId, TimeRange};

use crate::error::{Error, Result};
use crate::read::{column, each_file_batch, row_labels};
use crate::table::{SUMMARY_ROWS, SUMMARY_SERIES_OF, TableKind};
use crate::tier::{ColdTier, WrittenFiles};
use crate::write::{DeviceBucket, SeriesColumns, series_order, table_buckets, write_groups};

const BATCH_ROWS: usize = 64 * 1024;

/// One series as recorded in a series table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesEntry {
    /// Labels, `__name__` included.
    pub labels: Labels,
    /// `schemas::series_id` of the labels.
    pub series_id: SeriesId,
    /// `schemas::device_hash` as ingest computed it.
    pub device_hash: u64,
}

/// The series of a bucket's samples, as the roll records it.
impl From<&crate::SeriesSamples> for SeriesEntry {
    fn from(s: &crate::SeriesSamples) -> Self {
        Self { labels: s.labels.clone(), series_id: s.series_id, device_hash: s.device_hash }
    }
}

/// The series of a rollup's windows, as the roll records it.
impl From<&crate::SeriesRollup> for SeriesEntry {
    fn from(s: &crate::SeriesRollup) -> Self {
        Self { labels: s.labels.clone(), series_id: s.series_id, device_hash: s.device_hash }
    }
}

/// A series' identity in a series table: the stored series id and a hash
/// of its labels (in-process only; two label sets sharing an id differ here).
pub fn series_key(series_id: SeriesId, labels: &Labels) -> (i64, u64) {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    labels.hash(&mut h);
    (series_id.0 as i64, h.finish())
}

/// Hashes a series id, itself a 64-bit hash of the labels, with one
/// multiply (the rollup read looks one up per run of rows: millions per
/// long-range query, where SipHash costs more than the lookup).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_i64(&mut self, v: i64) {
        self.0 = (self.0 ^ v as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A map keyed by series id ([`IdHasher`]).
pub(crate) type IdMap<V> = HashMap<i64, V, std::hash::BuildHasherDefault<IdHasher>>;

/// The series a query's matchers select, resolved from the series table.
#[derive(Debug, Default)]
pub(crate) struct SeriesIndex {
    /// Every recorded id the pushed-down predicate let through: the index
    /// into `labels` when all matchers match, `None` when not.
    pub(crate) ids: IdMap<Option<u32>>,
    /// Labels of the matching series.
    pub(crate) labels: Vec<Labels>,
}

fn build_series_batches(schema: &Arc<ArrowSchema>, rows: &[&SeriesEntry]) -> Result<Vec<RecordBatch>, ArrowError> {
    rows.chunks(BATCH_ROWS)
        .map(|chunk| {
            let mut head = SeriesColumns::with_capacity(chunk.len());
            for s in chunk {
                head.push(&s.labels, s.series_id.0, s.device_hash, 0);
            }
            RecordBatch::try_new(Arc::clone(schema), head.finish(schema)?)
        })
        .collect()
}

/// The rows of one series-table batch (device hash 0 when not projected).
fn entries_of(batch: &RecordBatch, tenant: &TenantId, mut each: impl FnMut(SeriesEntry)) -> Result<()> {
    let corrupt = |detail: &str| Error::Corrupted { tenant: tenant.clone(), detail: detail.into() };
    let map: &MapArray = column(batch, "labels", tenant)?;
    let keys = map.keys().as_string_opt::<i32>().ok_or_else(|| corrupt("labels keys are not strings"))?;
    let values = map.values().as_string_opt::<i32>().ok_or_else(|| corrupt("labels values are not strings"))?;
    let ids = column::<arrow_array::PrimitiveArray<Int64Type>>(batch, "series_id", tenant)?;
    let devs = batch.column_by_name("device_hash").and_then(|c| c.as_primitive_opt::<Int64Type>());
    for i in 0..batch.num_rows() {
        each(SeriesEntry {
            labels: row_labels(map, keys, values, i),
            series_id: SeriesId(ids.value(i) as u64),
            device_hash: devs.map_or(0, |d| d.value(i) as u64),
        });
    }
    Ok(())
}

impl ColdTier {
    fn series_of_view(&self, tenant: &TenantId) -> Result<()> {
        match self.kind {
            TableKind::Series => Ok(()),
            _ => Err(Error::Corrupted {
                tenant: tenant.clone(),
                detail: "series-table access through another table's handle (use series_view)".into(),
            }),
        }
    }

    /// Writes `entries` as data files of the tenant's series table (this
    /// view's; created on first use). Nothing is visible until
    /// [`ColdTier::commit_series_files`].
    pub async fn write_series_files(
        &self,
        tenant: &TenantId,
        entries: &[SeriesEntry],
        file_prefix: &str,
    ) -> Result<WrittenFiles> {
        self.series_of_view(tenant)?;
        let table = self.table(tenant).await?;
        let corrupt = |detail: String| Error::Corrupted { tenant: tenant.clone(), detail };
        let buckets = table_buckets(&table).ok_or_else(|| corrupt("series table has no device bucket field".into()))?;
        let bucket_fn = DeviceBucket::new(buckets).map_err(corrupt)?;
        let mut groups: BTreeMap<(i64, i32), Vec<&SeriesEntry>> = BTreeMap::new();
        for e in entries {
            groups.entry((0, bucket_fn.of(e.device_hash).map_err(corrupt)?)).or_default().push(e);
        }
        for rows in groups.values_mut() {
            rows.sort_by(|a, b| series_order((&a.labels, a.series_id), (&b.labels, b.series_id)));
        }
        let mut out =
            write_groups(&table, &self.config, tenant, groups, |s, rows| build_series_batches(s, rows), file_prefix)
                .await?;
        out.series = entries.len();
        Ok(out)
    }

    /// Commits written series files as one fast append recording `of` (the
    /// roll's source, `strata.series-of`). Not idempotent, and need not be:
    /// a series recorded twice is read once.
    pub async fn commit_series_files(&self, tenant: &TenantId, written: WrittenFiles, of: &str) -> Result<()> {
        self.series_of_view(tenant)?;
        let table = self.table(tenant).await?;
        let commit_err = |source: iceberg::Error| Error::Commit {
            tenant: tenant.clone(),
            source_id: of.to_owned(),
            source: Box::new(source),
        };
        let props = HashMap::from([
            (SUMMARY_SERIES_OF.to_owned(), of.to_owned()),
            (SUMMARY_ROWS.to_owned(), written.rows.to_string()),
        ]);
        let tx = Transaction::new(&table);
        let action = tx.fast_append().set_snapshot_properties(props).add_data_files(written.files);
        let tx = action.apply(tx).map_err(commit_err)?;
        tx.commit(self.catalog.as_ref()).await.map_err(commit_err)?;
        Ok(())
    }

    /// The [`series_key`]s of every series the tenant's series table holds
    /// (empty without a table).
    pub async fn recorded_series(&self, tenant: &TenantId) -> Result<HashSet<(i64, u64)>> {
        self.series_of_view(tenant)?;
        let mut out = HashSet::new();
        let Some(table) = self.load_table(tenant).await? else { return Ok(out) };
        if table.metadata().current_snapshot().is_none() {
            return Ok(out);
        }
        self.scan_batches(&table, tenant, &[], TimeRange::ALL, &["labels", "series_id"], |batch| {
            entries_of(batch, tenant, |e| {
                out.insert(series_key(e.series_id, &e.labels));
            })
        })
        .await?;
        Ok(out)
    }

    /// Reads series-table data files back (one entry per (id, labels)), for
    /// the small-file merge.
    pub async fn read_series_files(&self, tenant: &TenantId, paths: &[String]) -> Result<Vec<SeriesEntry>> {
        use iceberg::io::Storage;
        self.series_of_view(tenant)?;
        let storage = self.storage().storage();
        let corrupt = |detail: String| Error::Corrupted { tenant: tenant.clone(), detail };
        let mut seen: HashMap<(i64, u64), SeriesEntry> = HashMap::new();
        for p in paths {
            let bytes = storage.read(p).await.map_err(|e| corrupt(format!("reading {p}: {e}")))?;
            each_file_batch(bytes, p, tenant, |batch| {
                entries_of(batch, tenant, |e| {
                    seen.entry(series_key(e.series_id, &e.labels)).or_insert(e);
                })
            })?;
        }
        let mut out: Vec<SeriesEntry> = seen.into_values().collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    /// Resolves `matchers` against the tenant's series table (this view's):
    /// `None` when there is no series table or an id has two label sets
    /// (the caller then reads labels from the rollup rows).
    pub(crate) async fn series_index(&self, tenant: &TenantId, matchers: &[Matcher]) -> Result<Option<SeriesIndex>> {
        self.series_of_view(tenant)?;
        let Some(table) = self.load_table(tenant).await? else { return Ok(None) };
        if table.metadata().current_snapshot().is_none() {
            return Ok(None);
        }
        let mut by_id: IdMap<Labels> = IdMap::default();
        let mut collision = false;
        self.scan_batches(&table, tenant, matchers, TimeRange::ALL, &["labels", "series_id"], |batch| {
            entries_of(batch, tenant, |e| match by_id.entry(e.series_id.0 as i64) {
                Entry::Occupied(o) => collision |= *o.get() != e.labels,
                Entry::Vacant(v) => {
                    v.insert(e.labels);
                }
            })
        })
        .await?;
        if collision {
            return Ok(None);
        }
        let mut index = SeriesIndex::default();
        for (id, labels) in by_id {
            let slot = Matcher::matches_all(matchers, &labels).then(|| {
                index.labels.push(labels);
                (index.labels.len() - 1) as u32
            });
            index.ids.insert(id, slot);
        }
        Ok(Some(index))
    }
}
