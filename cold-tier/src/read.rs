//! The read path: a pruned Iceberg scan → series, behind [`ReadStore`].
//!
//! ```text
//!  select(tenant, matchers, range)
//!    predicate: ts in range (µs)  ∧ metric = m   (if __name__="m")
//!                                ∧ device_hash = h (if <device_label>="d": h = device_hash_of(tenant, d))
//!    scan planning prunes manifests/files by partition (day(ts), bucket(device_hash)) and column bounds,
//!    the Parquet reader prunes row groups (statistics) and pages (page index); a file whose day
//!    lies inside the range is read with the predicate minus the range (no per-row ts test)
//!
//!  ReadPath::Indexed (select's default)
//!    series_<tenant> scan, same predicate ─► SeriesIndex: id → labels when every matcher matches
//!    some recorded series do not match ─► selection.rs, per data file:
//!      pages by `ts`/`metric` bounds; `series_id` decoded ─► runs: matching / skipped /
//!      unknown (an unknown run possibly of the query's metric and device ─► Labels path);
//!      `ts`, `value` decoded for the matching runs only (a RowSelection)
//!    every recorded series matches: one scan of series_id, ts, value with the predicate;
//!      an unknown id met ─► Labels path
//!    rows → per-series samples (labels from the index) → sort + de-duplicate by ts
//!
//!  ReadPath::Labels (no series table, an id collision, a series the table lacks)
//!    projection: metric, labels, series_id, ts, value   (device_hash is never read)
//!    rows → (series_id, labels) groups → remaining matchers → sort + de-duplicate by ts
//! ```
//!
//! The data files are sorted by (metric, series_id, ts) (FORMAT.md), so a
//! series' rows are contiguous in each file: a selection of some series
//! decodes their rows, whatever their number. Memory holds the matching
//! series' samples and one record batch at a time, not the rows the
//! predicate lets through.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, MapArray, RecordBatch, StringArray};
use futures::TryStreamExt;
use iceberg::expr::{Predicate, Reference};
use iceberg::spec::Datum;
use strata_schemas::{
    Labels, MatchOp, Matcher, ReadError, ReadStore, RollupAnswer, RollupData, RollupFields, Sample, SeriesData,
    TenantId, TimeRange,
};

use crate::error::{Error, Result};
use crate::series::SeriesIndex;
use crate::tier::ColdTier;

mod selection;

/// Builds the scan predicate from the range and the pushable matchers.
pub(crate) fn predicate(tier: &ColdTier, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Predicate {
    let mut p = Predicate::AlwaysTrue;
    if range.start > i64::MIN {
        p = p.and(
            Reference::new("ts").greater_than_or_equal_to(Datum::timestamptz_micros(range.start.saturating_mul(1000))),
        );
    }
    if range.end < i64::MAX {
        p = p
            .and(Reference::new("ts").less_than_or_equal_to(Datum::timestamptz_micros(range.end.saturating_mul(1000))));
    }
    for m in matchers.iter().filter(|m| matches!(m.op, MatchOp::Equal) && !m.value.is_empty()) {
        if m.name == strata_schemas::METRIC_NAME {
            p = p.and(Reference::new("metric").equal_to(Datum::string(&m.value)));
        } else if m.name == tier.config.device_label {
            let h = strata_schemas::device_hash_of(tenant, &m.value);
            p = p.and(Reference::new("device_hash").equal_to(Datum::long(h as i64)));
        }
    }
    p
}

pub(crate) const MS_PER_DAY: i64 = 86_400_000;

/// The `ts_day` of a samples or rollup table file's partition (its first
/// field, a date); `None` for a series table's (a bucket only).
pub(crate) fn partition_day(partition: &iceberg::spec::Struct) -> Option<i32> {
    use iceberg::spec::{Literal, PrimitiveLiteral};
    match partition.fields() {
        [Some(Literal::Primitive(PrimitiveLiteral::Int(day))), _] => Some(*day),
        _ => None,
    }
}

/// Rows of one label set.
#[derive(Debug)]
struct Group {
    labels: Labels,
    samples: Vec<Sample>,
}

pub(crate) fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str, tenant: &TenantId) -> Result<&'a T> {
    batch.column_by_name(name).and_then(|c| c.as_any().downcast_ref::<T>()).ok_or_else(|| Error::Corrupted {
        tenant: tenant.clone(),
        detail: format!("column {name} missing or of an unexpected type"),
    })
}

/// Decodes one whole Parquet data file held in memory (`path` names it in
/// errors), handing each record batch to `each`: the small-file merges of
/// every table read their inputs this way.
pub(crate) fn each_file_batch<T: parquet::file::reader::ChunkReader + 'static>(
    bytes: T,
    path: &str,
    tenant: &TenantId,
    mut each: impl FnMut(&RecordBatch) -> Result<()>,
) -> Result<()> {
    let corrupt =
        |e: &dyn std::fmt::Display| Error::Corrupted { tenant: tenant.clone(), detail: format!("{path}: {e}") };
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.build())
        .map_err(|e| corrupt(&e))?;
    for batch in reader {
        each(&batch.map_err(|e| corrupt(&e))?)?;
    }
    Ok(())
}

/// True when row `i`'s label map equals `labels` (no allocation).
pub(crate) fn labels_equal(
    map: &MapArray,
    keys: &StringArray,
    values: &StringArray,
    i: usize,
    labels: &Labels,
) -> bool {
    let span = label_span(map, i);
    span.len() == labels.len()
        && labels.iter().zip(span).all(|(l, j)| keys.value(j) == l.name && values.value(j) == l.value)
}

pub(crate) fn row_labels(map: &MapArray, keys: &StringArray, values: &StringArray, i: usize) -> Labels {
    Labels::from_pairs(label_span(map, i).map(|j| (keys.value(j), values.value(j))))
}

/// Row `i`'s entries in the label map's key and value arrays. Arrow keeps
/// `len + 1` offsets in a map array, so a row of the batch always has its
/// two; a row past the end would read as no labels, never panic.
pub(crate) fn label_span(map: &MapArray, i: usize) -> std::ops::Range<usize> {
    match map.value_offsets().get(i..i + 2) {
        Some(&[start, end]) => start as usize..end as usize,
        _ => 0..0,
    }
}

/// Folds one batch into the per-series groups.
fn absorb(
    batch: &RecordBatch,
    tenant: &TenantId,
    groups: &mut HashMap<i64, Vec<Group>>,
    want_samples: bool,
) -> Result<()> {
    let map: &MapArray = column(batch, "labels", tenant)?;
    let keys = map
        .keys()
        .as_string_opt::<i32>()
        .ok_or_else(|| Error::Corrupted { tenant: tenant.clone(), detail: "labels keys are not strings".into() })?;
    let values = map
        .values()
        .as_string_opt::<i32>()
        .ok_or_else(|| Error::Corrupted { tenant: tenant.clone(), detail: "labels values are not strings".into() })?;
    let ids = column::<arrow_array::PrimitiveArray<Int64Type>>(batch, "series_id", tenant)?;
    let ts = if want_samples {
        Some(column::<arrow_array::PrimitiveArray<TimestampMicrosecondType>>(batch, "ts", tenant)?)
    } else {
        None
    };
    let vals = if want_samples {
        Some(column::<arrow_array::PrimitiveArray<Float64Type>>(batch, "value", tenant)?)
    } else {
        None
    };
    let mut last: Option<(i64, usize)> = None;
    for i in 0..batch.num_rows() {
        let id = ids.value(i);
        let list = groups.entry(id).or_default();
        let idx = match last {
            Some((lid, li))
                if lid == id && list.get(li).is_some_and(|g| labels_equal(map, keys, values, i, &g.labels)) =>
            {
                li
            }
            _ => match list.iter().position(|g| labels_equal(map, keys, values, i, &g.labels)) {
                Some(p) => p,
                None => {
                    list.push(Group { labels: row_labels(map, keys, values, i), samples: Vec::new() });
                    list.len() - 1
                }
            },
        };
        last = Some((id, idx));
        if let (Some(ts), Some(vals), Some(g)) = (ts, vals, list.get_mut(idx)) {
            g.samples.push(Sample::new(ts.value(i).div_euclid(1000), vals.value(i)));
        }
    }
    Ok(())
}

/// How [`ColdTier::select_via`] reads the samples table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadPath {
    /// Matchers resolved against the series table first; the samples table
    /// read without its label map (`series_id`, `ts`, `value`); when some
    /// recorded series do not match, `ts` and `value` only of the rows a
    /// selection from the `series_id` column takes. Falls back to
    /// [`ReadPath::Labels`] when the series table lacks a series that may match.
    #[default]
    Indexed,
    /// Every row's label map read and grouped (the path before series
    /// tables; the reference the indexed path is tested against).
    Labels,
}

/// What one cold read read, summed over its scans.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// The path that answered.
    pub path: ReadPath,
    /// Data files the scans opened (after partition and file-statistics pruning).
    pub files: u64,
    /// Bytes the Parquet reader fetched (footers, row groups, pages).
    pub bytes_read: u64,
    /// Rows the data scan returned after row-group, page and row filtering
    /// (the selected read: rows whose `ts` and `value` it decoded).
    pub rows: u64,
    /// Rows whose `series_id` the selected read decoded to build its selection.
    pub census_rows: u64,
    /// Record batches the reader returned.
    pub batches: u64,
    /// Matching series the selected read selected rows of, when it ran
    /// (some recorded series did not match).
    pub id_filter: Option<usize>,
}

impl ReadStats {
    fn add(&mut self, s: &ScanStats) {
        self.files += s.files;
        self.bytes_read += s.bytes_read;
        self.rows += s.rows;
        self.batches += s.batches;
    }
}

/// What one scan read.
#[derive(Debug, Default)]
pub(crate) struct ScanStats {
    files: u64,
    bytes_read: u64,
    rows: u64,
    batches: u64,
}

/// Folds one `series_id, ts, value` batch into the samples of the series
/// `index` resolves (a run of one id is looked up once); sets `unresolved`
/// (and stops) at an id the index lacks.
fn absorb_ids(
    batch: &RecordBatch,
    tenant: &TenantId,
    index: &SeriesIndex,
    samples: &mut [Vec<Sample>],
    unresolved: &mut bool,
) -> Result<()> {
    if *unresolved {
        return Ok(());
    }
    let ids = column::<arrow_array::PrimitiveArray<Int64Type>>(batch, "series_id", tenant)?;
    let ts = column::<arrow_array::PrimitiveArray<TimestampMicrosecondType>>(batch, "ts", tenant)?;
    let vals = column::<arrow_array::PrimitiveArray<Float64Type>>(batch, "value", tenant)?;
    let mut start = 0;
    for run in ids.values().chunk_by(|a, b| a == b) {
        let end = start + run.len();
        let Some(id) = run.first() else { continue };
        match index.ids.get(id) {
            None => {
                *unresolved = true;
                return Ok(());
            }
            Some(None) => {}
            Some(Some(slot)) => {
                let len = samples.len();
                let out = samples.get_mut(*slot as usize).ok_or_else(|| Error::Corrupted {
                    tenant: tenant.clone(),
                    detail: format!("series index slot {slot} of series id {id} is past its {len} series"),
                })?;
                let (t, v) = (ts.values().get(start..end), vals.values().get(start..end));
                if let (Some(t), Some(v)) = (t, v) {
                    out.extend(t.iter().zip(v).map(|(&t, &v)| Sample::new(t.div_euclid(1000), v)));
                }
            }
        }
        start = end;
    }
    Ok(())
}

/// How [`ColdTier::scan_filtered`] reads the files it plans (the default:
/// as iceberg's reader does by default, every file with its task's
/// predicate).
#[derive(Debug, Default)]
pub(crate) struct ReadTuning {
    /// Data files whose column bounds prove every pushed matcher (every
    /// row matches it): when their day lies inside the range, read with no
    /// predicate at all (rollup `grid/scan.rs`, `proven_among`).
    pub(crate) proven: HashSet<String>,
    /// Rows per record batch; `None`: the reader's default (1,024).
    pub(crate) batch_rows: Option<usize>,
    /// Bytes read from a file's end for its Parquet footer; `None`: the
    /// reader's default (512 KiB, one request on an object store).
    pub(crate) metadata_hint: Option<usize>,
    /// Gaps between the column chunks read that one request spans; `None`:
    /// the reader's default (1 MiB: the unread columns between read ones
    /// are read too).
    pub(crate) coalesce_bytes: Option<u64>,
}

/// `columns` in the order of the table schema's fields (names it lacks
/// last): the Parquet reader yields a file's columns in the file's order,
/// and where iceberg's reader finds another order in the projection it
/// reorders every batch and, for each file, builds (and drops) two
/// `iceberg::Error`s per column, each capturing a backtrace when
/// `RUST_BACKTRACE` is set.
fn in_schema_order<'a>(schema: &iceberg::spec::Schema, columns: &[&'a str]) -> Vec<&'a str> {
    let fields = schema.as_struct().fields();
    let mut out = columns.to_vec();
    out.sort_by_key(|c| fields.iter().position(|f| f.name == *c).unwrap_or(usize::MAX));
    out
}

/// The first of `paths` (data files of `table`) whose Parquet footer cannot
/// be read or decoded, with why: a failed scan names the file an operator
/// must look at. Reads each file's size and footer only (the error path of
/// a scan, never taken by a healthy read); `None` when every footer is
/// sound (the damage is in a page, or the failure is not the files').
async fn damaged_file(table: &iceberg::table::Table, paths: &[String]) -> Option<(String, String)> {
    for path in paths {
        if let Err(why) = check_footer(table.file_io(), path).await {
            return Some((path.clone(), why));
        }
    }
    None
}

/// Reads `path`'s Parquet footer (length, magic, metadata) through `io`.
async fn check_footer(io: &iceberg::io::FileIO, path: &str) -> std::result::Result<(), String> {
    use iceberg::io::FileRead;
    const TAIL: u64 = 8;
    let input = io.new_input(path).map_err(|e| format!("opening: {e}"))?;
    let size = input.metadata().await.map_err(|e| format!("reading its size: {e}"))?.size;
    if size < TAIL + 4 {
        return Err(format!("{size} bytes, shorter than a Parquet file's magic and footer"));
    }
    let reader = input.reader().await.map_err(|e| format!("opening: {e}"))?;
    let tail = reader.read(size - TAIL..size).await.map_err(|e| format!("reading its last {TAIL} bytes: {e}"))?;
    let Some((len, magic)) = tail.split_first_chunk::<4>() else { return Err("short read".into()) };
    if magic != b"PAR1" {
        return Err(format!("no Parquet magic at its end ({size} bytes: truncated or not Parquet)"));
    }
    let len = u64::from(u32::from_le_bytes(*len));
    if len + TAIL + 4 > size {
        return Err(format!("its footer claims {len} bytes, more than the file's {size}"));
    }
    let footer =
        reader.read(size - TAIL - len..size - TAIL).await.map_err(|e| format!("reading its {len}-byte footer: {e}"))?;
    parquet::file::metadata::ParquetMetaDataReader::decode_metadata(&footer)
        .map(|_| ())
        .map_err(|e| format!("its footer does not decode: {e}"))
}

impl ColdTier {
    /// Scans `table` for `columns` under the tenant/matcher/time predicate,
    /// pruning by partition, row-group statistics and page index, and hands
    /// every Arrow batch to `each` (samples and rollup tables alike).
    pub(crate) async fn scan_batches(
        &self,
        table: &iceberg::table::Table,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
        columns: &[&str],
        each: impl FnMut(&RecordBatch) -> Result<()>,
    ) -> Result<()> {
        self.scan_filtered(table, tenant, matchers, range, columns, ReadTuning::default(), each).await.map(|_| ())
    }

    /// [`ColdTier::scan_batches`] read as `tuning` says, returning what the
    /// scan read. A file whose whole day partition lies inside `range`
    /// needs no per-row `ts` test: its task gets the predicate without the
    /// range, or none when `tuning.proven` holds it (the Parquet reader
    /// evaluates a task's predicate on every row).
    #[expect(clippy::too_many_arguments, reason = "the scan's inputs, each used once")]
    pub(crate) async fn scan_filtered(
        &self,
        table: &iceberg::table::Table,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
        columns: &[&str],
        tuning: ReadTuning,
        mut each: impl FnMut(&RecordBatch) -> Result<()>,
    ) -> Result<ScanStats> {
        let scan_err = |source: iceberg::Error| Error::scan(tenant, table, source);
        let scan = table
            .scan()
            .select(in_schema_order(table.metadata().current_schema(), columns))
            .with_filter(predicate(self, tenant, matchers, range))
            .with_row_group_filtering_enabled(true)
            .with_row_selection_enabled(true)
            .build()
            .map_err(scan_err)?;
        let residual = predicate(self, tenant, matchers, TimeRange::ALL);
        // The planned files' paths, to name a damaged one if the read fails.
        let planned: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let counted = Arc::clone(&planned);
        let ReadTuning { proven, batch_rows, metadata_hint, coalesce_bytes } = tuning;
        let tasks = scan.plan_files().await.map_err(scan_err)?.and_then(move |mut task| {
            counted.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(task.data_file_path.clone());
            let inside = task.partition.as_ref().and_then(partition_day).is_some_and(|day| {
                let start = i64::from(day) * MS_PER_DAY;
                range.start <= start && start.saturating_add(MS_PER_DAY - 1) <= range.end
            });
            let rebound = match &residual {
                _ if !inside => Ok(task.predicate.take()),
                Predicate::AlwaysTrue => Ok(None),
                _ if proven.contains(task.data_file_path.as_str()) => Ok(None),
                p => iceberg::expr::Bind::bind(p, Arc::clone(&task.schema), task.case_sensitive).map(Some),
            };
            futures::future::ready(rebound.map(|p| {
                task.predicate = p;
                task
            }))
        });
        let runtime = iceberg::Runtime::try_current().map_err(scan_err)?;
        let mut reader = iceberg::arrow::ArrowReaderBuilder::new(table.file_io().clone(), runtime)
            .with_row_group_filtering_enabled(true)
            .with_row_selection_enabled(true);
        if let Some(rows) = batch_rows {
            reader = reader.with_batch_size(rows);
        }
        if let Some(bytes) = metadata_hint {
            reader = reader.with_metadata_size_hint(bytes);
        }
        if let Some(bytes) = coalesce_bytes {
            reader = reader.with_range_coalesce_bytes(bytes);
        }
        let result = reader.build().read(Box::pin(tasks)).map_err(scan_err)?;
        let metrics = result.metrics().clone();
        let mut stream = result.stream();
        let mut stats = ScanStats::default();
        let planned = || planned.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        loop {
            let batch = match stream.try_next().await {
                Ok(Some(batch)) => batch,
                Ok(None) => break,
                Err(source) => {
                    drop(stream);
                    return Err(match damaged_file(table, &planned()).await {
                        Some((path, why)) => Error::Corrupted {
                            tenant: tenant.clone(),
                            detail: format!(
                                "data file {path} of table {}: {why} (the scan failed: {source})",
                                table.identifier().name()
                            ),
                        },
                        None => scan_err(source),
                    });
                }
            };
            stats.batches += 1;
            stats.rows += batch.num_rows() as u64;
            each(&batch)?;
        }
        stats.files = planned().len() as u64;
        stats.bytes_read = metrics.bytes_read();
        Ok(stats)
    }

    /// Scans the tenant's table; `want_samples = false` reads no `ts`/`value` pages
    /// beyond what the range predicate needs and returns series with no samples.
    async fn scan_groups(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
        want_samples: bool,
        stats: &mut ReadStats,
    ) -> Result<Vec<Group>> {
        if range.start > range.end {
            return Ok(Vec::new());
        }
        let Some(table) = self.load_table(tenant).await? else { return Ok(Vec::new()) };
        if table.metadata().current_snapshot().is_none() {
            return Ok(Vec::new());
        }
        let columns: &[&str] =
            if want_samples { &["metric", "labels", "series_id", "ts", "value"] } else { &["labels", "series_id"] };
        let mut groups: HashMap<i64, Vec<Group>> = HashMap::new();
        let read = self
            .scan_filtered(&table, tenant, matchers, range, columns, ReadTuning::default(), |batch| {
                absorb(batch, tenant, &mut groups, want_samples)
            })
            .await?;
        stats.add(&read);
        let mut out: Vec<Group> =
            groups.into_values().flatten().filter(|g| Matcher::matches_all(matchers, &g.labels)).collect();
        for g in &mut out {
            g.samples.retain(|s| range.contains(s.ts));
            g.samples.sort_by_key(|s| s.ts);
            g.samples.dedup_by_key(|s| s.ts);
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    /// [`ReadStore::select`], async: [`ReadPath::Indexed`].
    pub async fn select(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Result<Vec<SeriesData>> {
        Ok(self.select_via(tenant, matchers, range, ReadPath::Indexed).await?.0)
    }

    /// [`ColdTier::select`] by the given path, with what it read (the
    /// indexed path's answer equals the labels path's; tests and benchmarks
    /// compare them).
    pub async fn select_via(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
        path: ReadPath,
    ) -> Result<(Vec<SeriesData>, ReadStats)> {
        if range.start > range.end {
            return Ok((Vec::new(), ReadStats::default()));
        }
        if path == ReadPath::Indexed {
            let Some(table) = self.load_table(tenant).await? else { return Ok((Vec::new(), ReadStats::default())) };
            if table.metadata().current_snapshot().is_none() {
                return Ok((Vec::new(), ReadStats::default()));
            }
            if let Some(index) = self.series_view().series_index(tenant, matchers).await? {
                if let Some(out) = self.select_indexed(&table, tenant, matchers, range, index).await? {
                    return Ok(out);
                }
                tracing::debug!(tenant = %tenant, "samples of series the series table lacks; reading their labels");
            }
        }
        let mut stats = ReadStats { path: ReadPath::Labels, ..ReadStats::default() };
        let groups = self.scan_groups(tenant, matchers, range, true, &mut stats).await?;
        let out = groups
            .into_iter()
            .filter(|g| !g.samples.is_empty())
            .map(|g| SeriesData { labels: g.labels, samples: g.samples })
            .collect();
        Ok((out, stats))
    }

    /// The indexed read (module docs); `None` when a row's series id is not
    /// in the series table (the labels path answers instead).
    async fn select_indexed(
        &self,
        table: &iceberg::table::Table,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
        index: SeriesIndex,
    ) -> Result<Option<(Vec<SeriesData>, ReadStats)>> {
        let mut stats = ReadStats { path: ReadPath::Indexed, ..ReadStats::default() };
        let matching = index.labels.len();
        let samples = if matching < index.ids.len() {
            // Some recorded series do not match: a row selection from the
            // `series_id` column reads only the matching ones' `ts`/`value`.
            let want = selection::Wanted::new(self, tenant, matchers, range, &index);
            let read = selection::read_selected(table, tenant, predicate(self, tenant, matchers, range), &want).await?;
            stats.files += read.files;
            stats.bytes_read += read.bytes_read;
            stats.batches += read.batches;
            stats.census_rows += read.census_rows;
            stats.rows += read.rows;
            stats.id_filter = Some(matching);
            if read.unresolved {
                return Ok(None);
            }
            read.samples
        } else {
            // Every recorded series matches: nothing to select by id.
            let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); matching];
            let mut unresolved = false;
            let data = self
                .scan_filtered(
                    table,
                    tenant,
                    matchers,
                    range,
                    &["series_id", "ts", "value"],
                    ReadTuning::default(),
                    |batch| absorb_ids(batch, tenant, &index, &mut samples, &mut unresolved),
                )
                .await?;
            stats.add(&data);
            if unresolved {
                return Ok(None);
            }
            samples
        };
        let mut out: Vec<SeriesData> = index
            .labels
            .into_iter()
            .zip(samples)
            .filter_map(|(labels, mut samples)| {
                samples.retain(|s| range.contains(s.ts));
                samples.sort_by_key(|s| s.ts);
                samples.dedup_by_key(|s| s.ts);
                (!samples.is_empty()).then_some(SeriesData { labels, samples })
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(Some((out, stats)))
    }

    /// [`ReadStore::series`], async.
    pub async fn series(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Result<Vec<Labels>> {
        let mut stats = ReadStats::default();
        Ok(self.scan_groups(tenant, matchers, range, false, &mut stats).await?.into_iter().map(|g| g.labels).collect())
    }
}

/// [`ReadStore`] over a [`ColdTier`]: runs the async scan on `handle`.
///
/// Like every `ReadStore`, call it from a blocking thread (e.g.
/// `spawn_blocking`), never from inside an async task: it blocks on the runtime.
#[derive(Debug, Clone)]
pub struct ColdReadStore {
    tier: Arc<ColdTier>,
    handle: tokio::runtime::Handle,
}

impl ColdReadStore {
    /// A read store over `tier`, doing its I/O on `handle`.
    pub fn new(tier: Arc<ColdTier>, handle: tokio::runtime::Handle) -> Self {
        Self { tier, handle }
    }
}

impl ReadStore for ColdReadStore {
    #[expect(
        clippy::disallowed_methods,
        reason = "ReadStore is synchronous (the engine runs on blocking threads): the cold tier's async reads run on the server's runtime handle, never from a runtime worker"
    )]
    fn select(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Result<Vec<SeriesData>, ReadError> {
        Ok(self.handle.block_on(self.tier.select(tenant, matchers, range))?)
    }

    #[expect(
        clippy::disallowed_methods,
        reason = "ReadStore is synchronous (the engine runs on blocking threads): the cold tier's async reads run on the server's runtime handle, never from a runtime worker"
    )]
    fn series(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Result<Vec<Labels>, ReadError> {
        Ok(self.handle.block_on(self.tier.series(tenant, matchers, range))?)
    }

    /// The rollup table of `width_ms` answers every window it has complete
    /// data for (from the first bucket rolled with rollups on); whether the
    /// rows are below the cold watermark is the federated store's business.
    #[expect(
        clippy::disallowed_methods,
        reason = "ReadStore is synchronous (the engine runs on blocking threads): the cold tier's async reads run on the server's runtime handle, never from a runtime worker"
    )]
    fn select_rollup(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        width_ms: i64,
        ends: TimeRange,
    ) -> Result<Option<RollupData>, ReadError> {
        let Some(rollup) = crate::table::Rollup::of_width(width_ms) else { return Ok(None) };
        let view = self.tier.rollup_view(rollup);
        let series = self.handle.block_on(view.select_rollup(tenant, matchers, ends))?;
        Ok(series.map(|series| RollupData { covered_end: ends.end, series }))
    }

    /// [`ReadStore::select_rollup`]'s windows as a grid of cells
    /// (`ColdTier::select_rollup_grid`; per series when the series table
    /// does not resolve every row).
    #[expect(
        clippy::disallowed_methods,
        reason = "ReadStore is synchronous (the engine runs on blocking threads): the cold tier's async reads run on the server's runtime handle, never from a runtime worker"
    )]
    fn select_rollup_grid(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        width_ms: i64,
        ends: TimeRange,
        fields: RollupFields,
    ) -> Result<Option<RollupAnswer>, ReadError> {
        let Some(rollup) = crate::table::Rollup::of_width(width_ms) else { return Ok(None) };
        let view = self.tier.rollup_view(rollup);
        Ok(self.handle.block_on(view.select_rollup_grid(tenant, matchers, ends, fields))?)
    }
}
