//! The indexed read of some of a metric's series: a row selection built
//! from the `series_id` column drives the read of `ts` and `value`.
//!
//! ```text
//!  plan: iceberg scan planning, predicate ts in range ∧ metric = m ∧ device_hash = h
//!        (partitions and file column bounds prune files)
//!  per data file (Parquet, its column and offset index loaded):
//!    S0   row groups and pages whose `ts` bounds meet the range and whose
//!         `metric` bounds hold m (page index; row-group statistics without one)
//!    1    decode `series_id` under S0 ─► runs (id, rows); each run is
//!           matching (the series index has a slot) → take
//!           known, not matching                     → skip
//!           unknown (the series table lacks it)     → check
//!    1b   check: `metric`, `device_hash` of each unknown run's first and last
//!         row; a run that may be of the query's metric and device ─► the read
//!         gives up (the labels path answers); others are skipped
//!    2    decode `ts`, `value` under S0 ∘ (take runs): pages without a taken
//!         row are neither fetched nor decoded; rows go to their run's series
//! ```
//!
//! Files are sorted by (metric, series_id, ts) (FORMAT.md), so a series'
//! rows form one run per file and the `metric` and `ts` bounds of pages are
//! narrow. Step 1 is the census the read needs anyway (every id in range
//! must be known, or an unrecorded matching series would be dropped); it
//! decodes the run-length encoded `series_id` column only, and step 2
//! decodes the rows of the matching series and the rest of their pages.
//! No per-row predicate is evaluated (iceberg's reader tests `metric = m`
//! and the range on every row, decoding the `metric` strings), and the
//! cost of `ts`/`value` is that of the rows the answer needs, whatever the
//! number of matching ids (an `IN (ids)` row filter costs a comparison per
//! id per row).

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, ArrayRef};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use iceberg::arrow::ArrowFileReader;
use iceberg::io::{FileIO, FileMetadata, FileRead};
use iceberg::scan::FileScanTask;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, RowSelection, RowSelector};
use parquet::arrow::async_reader::{ParquetRecordBatchStream, ParquetRecordBatchStreamBuilder};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::statistics::Statistics;
use parquet::schema::types::SchemaDescriptor;
use strata_schemas::{MatchOp, Matcher, Sample, TenantId, TimeRange};

use crate::error::{Error, Result};
use crate::series::SeriesIndex;
use crate::tier::ColdTier;

/// Rows per decoded batch.
const BATCH_ROWS: usize = 8192;

/// Data files read at once (their I/O overlaps; decoding stays on the
/// polling task, as in iceberg's reader).
const FILES_AT_ONCE: usize = 4;

/// What a selected read needs to know about the query.
#[derive(Debug)]
pub(super) struct Wanted<'a> {
    /// The series table's answer: id → slot of a matching series.
    pub(super) index: &'a SeriesIndex,
    /// `metric = m` values the predicate pushes down (all must hold).
    metrics: Vec<&'a str>,
    /// `device_hash = h` values the predicate pushes down.
    devices: Vec<i64>,
    /// The query's range, µs.
    range_us: (i64, i64),
}

impl<'a> Wanted<'a> {
    /// The pushed-down equalities of `matchers` (as [`super::predicate`] pushes them).
    pub(super) fn new(
        tier: &ColdTier,
        tenant: &TenantId,
        matchers: &'a [Matcher],
        range: TimeRange,
        index: &'a SeriesIndex,
    ) -> Self {
        let mut metrics = Vec::new();
        let mut devices = Vec::new();
        for m in matchers.iter().filter(|m| matches!(m.op, MatchOp::Equal) && !m.value.is_empty()) {
            if m.name == strata_schemas::METRIC_NAME {
                metrics.push(m.value.as_str());
            } else if m.name == tier.config.device_label {
                devices.push(strata_schemas::device_hash_of(tenant, &m.value) as i64);
            }
        }
        Self { index, metrics, devices, range_us: (range.start.saturating_mul(1000), range.end.saturating_mul(1000)) }
    }
}

/// What the selected read read, summed over its files.
#[derive(Debug, Default)]
pub(super) struct Selected {
    /// Per series slot, its samples in the range (in file order: unsorted
    /// across files, duplicates kept).
    pub(super) samples: Vec<Vec<Sample>>,
    /// A row of a series the series table lacks may match: the labels path must answer.
    pub(super) unresolved: bool,
    pub(super) files: u64,
    pub(super) bytes_read: u64,
    /// Rows whose `series_id` was decoded (step 1).
    pub(super) census_rows: u64,
    /// Rows whose `ts` and `value` were decoded (step 2).
    pub(super) rows: u64,
    pub(super) batches: u64,
}

/// One file's share: (slot, samples) runs in file order.
#[derive(Debug, Default)]
struct FileOut {
    runs: Vec<(u32, Vec<Sample>)>,
    unresolved: bool,
    census_rows: u64,
    rows: u64,
    batches: u64,
}

/// Reads the rows of `want`'s matching series from the files the scan of
/// `table` plans for `predicate`.
pub(super) async fn read_selected(
    table: &iceberg::table::Table,
    tenant: &TenantId,
    predicate: iceberg::expr::Predicate,
    want: &Wanted<'_>,
) -> Result<Selected> {
    let scan_err = |source: iceberg::Error| Error::scan(tenant, table, source);
    let scan = table.scan().select(["series_id", "ts", "value"]).with_filter(predicate).build().map_err(scan_err)?;
    let tasks: Vec<FileScanTask> = scan.plan_files().await.map_err(scan_err)?.try_collect().await.map_err(scan_err)?;
    let bytes = Arc::new(AtomicU64::new(0));
    let io = table.file_io();
    let mut out = Selected {
        samples: vec![Vec::new(); want.index.labels.len()],
        files: tasks.len() as u64,
        ..Selected::default()
    };
    let reads: Vec<_> = tasks.iter().map(|t| read_file(io, t, want, &bytes)).collect();
    let mut files = futures::stream::iter(reads).buffered(FILES_AT_ONCE);
    while let Some(file) = files.next().await {
        let file = file.map_err(scan_err)?;
        out.census_rows += file.census_rows;
        out.rows += file.rows;
        out.batches += file.batches;
        if file.unresolved {
            out.unresolved = true;
            break;
        }
        for (slot, mut samples) in file.runs {
            if let Some(s) = out.samples.get_mut(slot as usize) {
                s.append(&mut samples);
            }
        }
    }
    drop(files);
    out.bytes_read = bytes.load(Ordering::Relaxed);
    Ok(out)
}

/// A [`FileRead`] that counts the bytes it reads.
struct Counting {
    inner: Box<dyn FileRead>,
    bytes: Arc<AtomicU64>,
}

#[async_trait::async_trait]
impl FileRead for Counting {
    async fn read(&self, range: Range<u64>) -> iceberg::Result<Bytes> {
        self.bytes.fetch_add(range.end.saturating_sub(range.start), Ordering::Relaxed);
        self.inner.read(range).await
    }
}

/// One data file being read: its metadata and the row groups S0 keeps.
struct File<'a> {
    read: Arc<dyn FileRead>,
    size: u64,
    meta: ArrowReaderMetadata,
    groups: Vec<usize>,
    path: &'a str,
}

impl File<'_> {
    /// The file's `columns` (leaf indexes) over `selection` of its kept row groups.
    fn stream(
        &self,
        columns: &[usize],
        selection: RowSelection,
    ) -> iceberg::Result<ParquetRecordBatchStream<ArrowFileReader>> {
        let reader = ArrowFileReader::new(FileMetadata { size: self.size }, Box::new(Arc::clone(&self.read)));
        ParquetRecordBatchStreamBuilder::new_with_metadata(reader, self.meta.clone())
            .with_projection(ProjectionMask::leaves(self.meta.parquet_schema(), columns.iter().copied()))
            .with_row_groups(self.groups.clone())
            .with_row_selection(selection)
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(parquet_err(self.path))
    }
}

/// The leaf column indexes the read uses.
#[derive(Debug, Clone, Copy)]
struct Columns {
    metric: usize,
    series_id: usize,
    device_hash: usize,
    ts: usize,
    value: usize,
}

impl Columns {
    fn find(schema: &SchemaDescriptor, path: &str) -> iceberg::Result<Self> {
        let leaf = |name: &str| {
            schema.columns().iter().position(|c| c.path().string() == name).ok_or_else(|| {
                iceberg::Error::new(iceberg::ErrorKind::DataInvalid, format!("{path}: no column {name}"))
            })
        };
        Ok(Self {
            metric: leaf("metric")?,
            series_id: leaf("series_id")?,
            device_hash: leaf("device_hash")?,
            ts: leaf("ts")?,
            value: leaf("value")?,
        })
    }
}

fn parquet_err(path: &str) -> impl Fn(parquet::errors::ParquetError) -> iceberg::Error + '_ {
    move |e| iceberg::Error::new(iceberg::ErrorKind::Unexpected, format!("reading {path}")).with_source(e)
}

/// How a run of one series id's rows is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Take {
    Slot(u32),
    Skip,
    Unknown,
}

/// Steps S0, 1, 1b and 2 of the module docs for one data file.
async fn read_file(
    io: &FileIO,
    task: &FileScanTask,
    want: &Wanted<'_>,
    bytes: &Arc<AtomicU64>,
) -> iceberg::Result<FileOut> {
    let path = task.data_file_path.as_str();
    let read: Arc<dyn FileRead> =
        Arc::new(Counting { inner: io.new_input(path)?.reader().await?, bytes: Arc::clone(bytes) });
    let size = task.file_size_in_bytes;
    let mut first = ArrowFileReader::new(FileMetadata { size }, Box::new(Arc::clone(&read)));
    let meta = ArrowReaderMetadata::load_async(&mut first, Default::default()).await.map_err(parquet_err(path))?;
    let cols = Columns::find(meta.parquet_schema(), path)?;
    let mut out = FileOut::default();
    let Some((groups, s0)) = prune(meta.metadata(), cols, want) else { return Ok(out) };
    let file = File { read, size, meta, groups, path };

    let runs = census(&file, &s0, cols, &mut out).await?;
    let takes: Vec<Take> = runs
        .iter()
        .map(|(id, _)| match want.index.ids.get(id) {
            Some(Some(slot)) => Take::Slot(*slot),
            Some(None) => Take::Skip,
            None => Take::Unknown,
        })
        .collect();

    // 1b: may an unknown run be of the query's metric and device?
    if takes.contains(&Take::Unknown)
        && unknown_may_match(&file, &s0, &runs, &takes, cols, want, path, &mut out).await?
    {
        out.unresolved = true;
        return Ok(out);
    }

    read_taken(&file, &s0, &runs, &takes, cols, want, &mut out).await?;
    Ok(out)
}

/// Step 1: the runs of `series_id` under S0, each (id, rows).
async fn census(
    file: &File<'_>,
    s0: &RowSelection,
    cols: Columns,
    out: &mut FileOut,
) -> iceberg::Result<Vec<(i64, usize)>> {
    let path = file.path;
    let mut runs: Vec<(i64, usize)> = Vec::new();
    let mut ids = file.stream(&[cols.series_id], s0.clone())?;
    while let Some(batch) = ids.try_next().await.map_err(parquet_err(path))? {
        out.batches += 1;
        out.census_rows += batch.num_rows() as u64;
        let col = batch.column_by_name("series_id").and_then(i64_values);
        let col = col.ok_or_else(|| bad_column(path, "series_id"))?;
        for run in col.chunk_by(|a, b| a == b) {
            let (Some(&id), n) = (run.first(), run.len()) else { continue };
            match runs.last_mut() {
                Some((last, len)) if *last == id => *len += n,
                _ => runs.push((id, n)),
            }
        }
    }
    // The selections built on the runs are over the rows S0 selects
    // (`RowSelection::and_then` panics otherwise).
    if runs.iter().map(|r| r.1).sum::<usize>() != s0.row_count() {
        return Err(iceberg::Error::new(
            iceberg::ErrorKind::Unexpected,
            format!("{path}: the series_id read returned another number of rows than selected"),
        ));
    }
    Ok(runs)
}

/// Step 2: `ts` and `value` of the taken runs, into `out.runs`.
async fn read_taken(
    file: &File<'_>,
    s0: &RowSelection,
    runs: &[(i64, usize)],
    takes: &[Take],
    cols: Columns,
    want: &Wanted<'_>,
    out: &mut FileOut,
) -> iceberg::Result<()> {
    let path = file.path;
    let taken = select_runs(runs, takes, |t| matches!(t, Take::Slot(_)), false);
    if !taken.selects_any() {
        return Ok(());
    }
    let targets: Vec<(u32, usize)> = runs
        .iter()
        .zip(takes)
        .filter_map(|((_, n), t)| if let Take::Slot(slot) = t { Some((*slot, *n)) } else { None })
        .collect();
    let (lo, hi) = want.range_us;
    let (mut next, mut current) = (0, Vec::new());
    let mut left = targets.first().map_or(0, |t| t.1);
    let mut data = file.stream(&[cols.ts, cols.value], s0.and_then(&taken))?;
    while let Some(batch) = data.try_next().await.map_err(parquet_err(path))? {
        out.batches += 1;
        out.rows += batch.num_rows() as u64;
        let ts = batch.column_by_name("ts").and_then(i64_values).ok_or_else(|| bad_column(path, "ts"))?;
        let vals = batch
            .column_by_name("value")
            .and_then(|c| c.as_primitive_opt::<Float64Type>())
            .ok_or_else(|| bad_column(path, "value"))?;
        let mut at = 0;
        while at < ts.len() {
            let Some(&(slot, _)) = targets.get(next) else {
                return Err(iceberg::Error::new(
                    iceberg::ErrorKind::Unexpected,
                    format!("{path}: more rows than the selection took"),
                ));
            };
            let n = left.min(ts.len() - at);
            if let (Some(t), Some(v)) = (ts.get(at..at + n), vals.values().get(at..at + n)) {
                current.extend(
                    t.iter()
                        .zip(v)
                        .filter(|(t, _)| (lo..=hi).contains(*t))
                        .map(|(&t, &v)| Sample::new(t.div_euclid(1000), v)),
                );
            }
            (left, at) = (left - n, at + n);
            if left == 0 {
                out.runs.push((slot, std::mem::take(&mut current)));
                next += 1;
                left = targets.get(next).map_or(0, |t| t.1);
            }
        }
    }
    Ok(())
}

/// Step 1b: reads `metric` and `device_hash` of the first and last row of
/// each unknown run; true when one of them is of every wanted metric and
/// device, when the two differ in metric (an id of two metrics: a hash
/// collision), or when nothing is pushed down to tell.
#[expect(clippy::too_many_arguments, reason = "the file's read state, each used once")]
async fn unknown_may_match(
    file: &File<'_>,
    s0: &RowSelection,
    runs: &[(i64, usize)],
    takes: &[Take],
    cols: Columns,
    want: &Wanted<'_>,
    path: &str,
    out: &mut FileOut,
) -> iceberg::Result<bool> {
    if want.metrics.is_empty() && want.devices.is_empty() {
        return Ok(true);
    }
    let ends = select_runs(runs, takes, |t| t == Take::Unknown, true);
    let mut rows: Vec<(String, i64)> = Vec::new();
    let mut check = file.stream(&[cols.metric, cols.device_hash], s0.and_then(&ends))?;
    while let Some(batch) = check.try_next().await.map_err(parquet_err(path))? {
        out.batches += 1;
        let metric = batch.column_by_name("metric").and_then(|c| c.as_string_opt::<i32>());
        let metric = metric.ok_or_else(|| bad_column(path, "metric"))?;
        let device = batch.column_by_name("device_hash").and_then(i64_values);
        let device = device.ok_or_else(|| bad_column(path, "device_hash"))?;
        rows.extend(device.iter().enumerate().map(|(i, &d)| (metric.value(i).to_owned(), d)));
    }
    let wanted = |(m, d): &(String, i64)| want.metrics.iter().all(|w| w == m) && want.devices.iter().all(|w| w == d);
    let mut rows = rows.iter();
    for ((_, n), _) in runs.iter().zip(takes).filter(|(_, t)| **t == Take::Unknown) {
        let (first, last) = (rows.next(), if *n > 1 { rows.next() } else { None });
        let Some(first) = first else { return Ok(true) };
        if wanted(first) || last.is_some_and(|l| wanted(l) || l.0 != first.0) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn bad_column(path: &str, name: &str) -> iceberg::Error {
    iceberg::Error::new(iceberg::ErrorKind::DataInvalid, format!("{path}: column {name} of an unexpected type"))
}

/// The values of an `Int64` or microsecond-timestamp column without nulls.
fn i64_values(a: &ArrayRef) -> Option<&[i64]> {
    if a.null_count() > 0 {
        return None;
    }
    if let Some(p) = a.as_primitive_opt::<Int64Type>() {
        let v: &[i64] = p.values();
        return Some(v);
    }
    a.as_primitive_opt::<TimestampMicrosecondType>().map(|p| -> &[i64] { p.values() })
}

/// A selection over the rows of `runs` (in order): the runs `pick` takes,
/// whole, or (`ends`) only their first and last row.
fn select_runs(runs: &[(i64, usize)], takes: &[Take], pick: impl Fn(Take) -> bool, ends: bool) -> RowSelection {
    let mut sel: Vec<RowSelector> = Vec::with_capacity(runs.len());
    for ((_, n), t) in runs.iter().zip(takes) {
        match (pick(*t), ends, *n) {
            (false, _, n) => sel.push(RowSelector::skip(n)),
            (true, false, n) | (true, true, n @ 0..=2) => sel.push(RowSelector::select(n)),
            (true, true, n) => {
                sel.extend([RowSelector::select(1), RowSelector::skip(n - 2), RowSelector::select(1)]);
            }
        }
    }
    RowSelection::from(sel)
}

/// S0: the row groups to read and, over their rows, the pages whose `ts`
/// bounds meet the range and whose `metric` bounds hold every wanted
/// metric; `None` when nothing is left.
fn prune(meta: &ParquetMetaData, cols: Columns, want: &Wanted<'_>) -> Option<(Vec<usize>, RowSelection)> {
    let (lo, hi) = want.range_us;
    let ts_meets = |min: i64, max: i64| max >= lo && min <= hi;
    let metric_holds = |min: &[u8], max: &[u8]| want.metrics.iter().all(|m| min <= m.as_bytes() && m.as_bytes() <= max);
    let mut groups = Vec::new();
    let mut selectors: Vec<RowSelector> = Vec::new();
    for (g, rg) in meta.row_groups().iter().enumerate() {
        let rows = usize::try_from(rg.num_rows()).unwrap_or(0);
        let mut keep = vec![true; rows];
        let mut any = rows > 0;
        for (col, test) in [(cols.ts, Bound::I64(&ts_meets)), (cols.metric, Bound::Bytes(&metric_holds))] {
            if matches!(test, Bound::Bytes(_)) && want.metrics.is_empty() {
                continue;
            }
            any &= apply_bound(meta, g, col, rows, &test, &mut keep);
        }
        if !any || !keep.contains(&true) {
            continue;
        }
        groups.push(g);
        for run in keep.chunk_by(|a, b| a == b) {
            let n = run.len();
            selectors.push(if run.first() == Some(&true) { RowSelector::select(n) } else { RowSelector::skip(n) });
        }
    }
    (!groups.is_empty()).then(|| (groups, RowSelection::from(selectors)))
}

/// A page or row-group bound test.
enum Bound<'a> {
    I64(&'a dyn Fn(i64, i64) -> bool),
    Bytes(&'a dyn Fn(&[u8], &[u8]) -> bool),
}

/// Clears `keep` over the rows of row group `g`'s pages of `col` whose
/// bounds fail `test` (the page index), or returns false when the row
/// group's statistics fail it (no page index); a page or row group without
/// bounds is kept.
fn apply_bound(meta: &ParquetMetaData, g: usize, col: usize, rows: usize, test: &Bound<'_>, keep: &mut [bool]) -> bool {
    let index = meta.column_index().and_then(|c| c.get(g)).and_then(|c| c.get(col));
    let pages = meta.offset_index().and_then(|o| o.get(g)).and_then(|o| o.get(col)).map(|o| o.page_locations());
    if let (Some(index), Some(pages)) = (index, pages) {
        for (p, loc) in pages.iter().enumerate() {
            let start = usize::try_from(loc.first_row_index).unwrap_or(0).min(rows);
            let end =
                pages.get(p + 1).map_or(rows, |next| usize::try_from(next.first_row_index).unwrap_or(rows).min(rows));
            let pass = match (index, test) {
                (ColumnIndexMetaData::INT64(ix), Bound::I64(f)) => match (ix.min_value(p), ix.max_value(p)) {
                    (Some(min), Some(max)) => f(*min, *max),
                    _ => true,
                },
                (ColumnIndexMetaData::BYTE_ARRAY(ix), Bound::Bytes(f)) => match (ix.min_value(p), ix.max_value(p)) {
                    (Some(min), Some(max)) => f(min, max),
                    _ => true,
                },
                _ => true,
            };
            if !pass {
                keep.get_mut(start..end).into_iter().flatten().for_each(|k| *k = false);
            }
        }
        return true;
    }
    let stats = meta.row_group(g).columns().get(col).and_then(|c| c.statistics());
    match (stats, test) {
        (Some(Statistics::Int64(s)), Bound::I64(f)) => match (s.min_opt(), s.max_opt()) {
            (Some(min), Some(max)) => f(*min, *max),
            _ => true,
        },
        (Some(Statistics::ByteArray(s)), Bound::Bytes(f)) => match (s.min_opt(), s.max_opt()) {
            (Some(min), Some(max)) => f(min.data(), max.data()),
            _ => true,
        },
        _ => true,
    }
}

#[cfg(test)]
mod tests;
