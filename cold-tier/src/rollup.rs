//! Rollup tables: per (series, window) aggregates of the samples table.
//!
//! ```text
//!  window (end - w, end], end a multiple of w (5 m, 1 h, 1 d: UTC days); stale markers excluded
//!  compactor: bucket samples ─► rollup_points(w) ─► write_rollup_files ─► commit_files (same source as samples)
//!  query:     select_rollup(tenant, matchers, ends) ─► scan rollup<w>_<tenant> (ts = window end, pruned
//!             like the samples table) ─► partial windows of one (series, end) merged in time order
//!             (a range of several days: cut at day boundaries into one part per core, each part
//!             scanned on its own runtime task, each series' rows joined in part order)
//!            select_rollup_grid(tenant, matchers, ends, fields) ─► the same scan, each row into its
//!             (window, series) cell of a grid, only the columns `fields` needs (`grid`)
//! ```
//!
//! A window that straddles two hot buckets (e.g. `(b - w, b]` for a bucket
//! starting at `b`: its last millisecond `b` belongs to the next bucket) is
//! written as two partial rows, one per bucket roll, each exactly once
//! (per-table `strata.source`); readers merge partials with
//! [`RollupPoint::merge`], which is exact for min, max, count and last.
//! A 1 d window spans many buckets (twelve of the default 2 h): each bucket's
//! roll writes its partial row of the day, and readers merge them the same
//! way (the small-file merge of maintenance stores them merged, one row per
//! series and day).
//!
//! Merged sums are not the raw samples' compensated sum in general, so each
//! row also stores `exp` ([`RollupPoint::exp`], layout version 2): with the
//! counts and min/max it proves when a sum of windows is exact
//! ([`RollupPoint::sums_exactly`]); the engine uses sum and avg rows only
//! then. Version 1 tables (no `exp` column) are read with `exp` = `None`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::builder::{Float64Builder, Int32Builder, Int64Builder, TimestampMicrosecondBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{MapArray, PrimitiveArray, RecordBatch};
use arrow_schema::{ArrowError, Schema as ArrowSchema};
use strata_schemas::{Labels, Matcher, RollupPoint, RollupSeries, Sample, SeriesId, TenantId, TimeRange};

use crate::error::{Error, Result};
use crate::read::{column, each_file_batch, labels_equal, row_labels};
use crate::series::SeriesIndex;
use crate::table::{PROPERTY_ROLLUP_SINCE, Rollup, TableKind};
use crate::tier::{ColdTier, WrittenFiles};
use crate::write::{DeviceBucket, SeriesColumns, series_order, table_buckets, write_groups};

mod grid;

const MS_PER_DAY: i64 = 86_400_000;
const BATCH_ROWS: usize = 64 * 1024;

/// One series' rollup windows, as handed to [`ColdTier::write_rollup_files`].
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRollup {
    /// Labels, `__name__` included.
    pub labels: Labels,
    /// `schemas::series_id` of the labels.
    pub series_id: SeriesId,
    /// `schemas::device_hash` as ingest computed it.
    pub device_hash: u64,
    /// Windows sorted by end.
    pub points: Vec<RollupPoint>,
}

/// The end of the window `(end - width, end]` holding `ts`.
pub fn window_end(ts: i64, width_ms: i64) -> i64 {
    -(-ts).div_euclid(width_ms) * width_ms
}

/// The windows of `width_ms` of sorted samples (stale markers excluded;
/// windows of stale markers only are left out).
pub fn rollup_points(samples: &[Sample], width_ms: i64) -> Vec<RollupPoint> {
    samples
        .chunk_by(|a, b| window_end(a.ts, width_ms) == window_end(b.ts, width_ms))
        .filter_map(|c| RollupPoint::of(window_end(c.first()?.ts, width_ms), c))
        .collect()
}

/// One series' windows of one day.
type RollupRows<'a> = (&'a SeriesRollup, &'a [RollupPoint]);

fn build_rollup_batches(schema: &Arc<ArrowSchema>, rows: &[RollupRows<'_>]) -> Result<Vec<RecordBatch>, ArrowError> {
    let flat: Vec<(&SeriesRollup, &RollupPoint)> =
        rows.iter().flat_map(|(s, pts)| pts.iter().map(move |p| (*s, p))).collect();
    flat.chunks(BATCH_ROWS)
        .map(|chunk| {
            let mut head = SeriesColumns::with_capacity(chunk.len());
            let (mut min, mut max, mut sum, mut last) =
                (Float64Builder::new(), Float64Builder::new(), Float64Builder::new(), Float64Builder::new());
            let (mut count, mut last_ts) = (Int64Builder::new(), TimestampMicrosecondBuilder::new());
            let mut exp = Int32Builder::new();
            for (s, p) in chunk {
                head.push(&s.labels, s.series_id.0, s.device_hash, p.end);
                min.append_value(p.min);
                max.append_value(p.max);
                sum.append_value(p.sum);
                count.append_value(i64::try_from(p.count).unwrap_or(i64::MAX));
                last.append_value(p.last);
                last_ts.append_value(p.last_ts.saturating_mul(1000));
                exp.append_option(p.exp);
            }
            let ts_type = schema.field_with_name("last_ts")?.data_type().clone();
            let mut columns = head.finish(schema)?;
            columns.push(Arc::new(min.finish()));
            columns.push(Arc::new(max.finish()));
            columns.push(Arc::new(sum.finish()));
            columns.push(Arc::new(count.finish()));
            columns.push(Arc::new(last.finish()));
            columns.push(Arc::new(last_ts.finish().with_data_type(ts_type)));
            // Layout version 2 (tables created before have no `exp`).
            if schema.field_with_name("exp").is_ok() {
                columns.push(Arc::new(exp.finish()));
            }
            RecordBatch::try_new(Arc::clone(schema), columns)
        })
        .collect()
}

/// One label set's partial windows.
struct Group {
    labels: Labels,
    device_hash: u64,
    points: Vec<RollupPoint>,
}

/// The window columns of a rollup scan batch: one [`RollupPoint`] per row.
struct PointColumns<'a> {
    ts: &'a PrimitiveArray<TimestampMicrosecondType>,
    min: &'a PrimitiveArray<Float64Type>,
    max: &'a PrimitiveArray<Float64Type>,
    sum: &'a PrimitiveArray<Float64Type>,
    count: &'a PrimitiveArray<Int64Type>,
    last: &'a PrimitiveArray<Float64Type>,
    last_ts: &'a PrimitiveArray<TimestampMicrosecondType>,
    /// Absent in tables of layout version 1 (every row's `exp` is then `None`).
    exp: Option<&'a PrimitiveArray<Int32Type>>,
}

impl<'a> PointColumns<'a> {
    fn of(batch: &'a RecordBatch, tenant: &TenantId) -> Result<Self> {
        Ok(Self {
            ts: column(batch, "ts", tenant)?,
            min: column(batch, "min", tenant)?,
            max: column(batch, "max", tenant)?,
            sum: column(batch, "sum", tenant)?,
            count: column(batch, "count", tenant)?,
            last: column(batch, "last", tenant)?,
            last_ts: column(batch, "last_ts", tenant)?,
            exp: match batch.column_by_name("exp") {
                None => None,
                Some(_) => Some(column(batch, "exp", tenant)?),
            },
        })
    }

    /// Row `i` as a point (timestamps µs → ms).
    fn point(&self, i: usize) -> RollupPoint {
        RollupPoint {
            end: self.ts.value(i).div_euclid(1000),
            min: self.min.value(i),
            max: self.max.value(i),
            sum: self.sum.value(i),
            count: u64::try_from(self.count.value(i)).unwrap_or(0),
            last: self.last.value(i),
            last_ts: self.last_ts.value(i).div_euclid(1000),
            exp: self.exp.and_then(|e| arrow_array::Array::is_valid(e, i).then(|| e.value(i))),
        }
    }
}

fn absorb(batch: &RecordBatch, tenant: &TenantId, groups: &mut HashMap<i64, Vec<Group>>) -> Result<()> {
    let corrupt = |detail: &str| Error::Corrupted { tenant: tenant.clone(), detail: detail.into() };
    let map: &MapArray = column(batch, "labels", tenant)?;
    let keys = map.keys().as_string_opt::<i32>().ok_or_else(|| corrupt("labels keys are not strings"))?;
    let values = map.values().as_string_opt::<i32>().ok_or_else(|| corrupt("labels values are not strings"))?;
    let ids = column::<PrimitiveArray<Int64Type>>(batch, "series_id", tenant)?;
    let cols = PointColumns::of(batch, tenant)?;
    // Only read when merging files (queries do not project it).
    let devs = batch.column_by_name("device_hash").and_then(|c| c.as_primitive_opt::<Int64Type>());
    // Rows come sorted by series: collect a run of one series' rows, then
    // hand it to its group (one hash lookup per run, not per row).
    let mut run: Option<(i64, usize, Labels)> = None;
    let mut buf: Vec<RollupPoint> = Vec::new();
    for i in 0..batch.num_rows() {
        let id = ids.value(i);
        if let Some((rid, _, labels)) = &run
            && *rid == id
            && labels_equal(map, keys, values, i, labels)
        {
            buf.push(cols.point(i));
            continue;
        }
        if let Some((rid, idx, _)) = run.take() {
            hand_over(groups, rid, idx, &mut buf);
        }
        let list = groups.entry(id).or_default();
        let (idx, labels) = match list.iter().enumerate().find(|(_, g)| labels_equal(map, keys, values, i, &g.labels)) {
            Some((p, g)) => (p, g.labels.clone()),
            None => {
                let labels = row_labels(map, keys, values, i);
                list.push(Group {
                    labels: labels.clone(),
                    device_hash: devs.map_or(0, |d| d.value(i) as u64),
                    points: Vec::new(),
                });
                (list.len() - 1, labels)
            }
        };
        run = Some((id, idx, labels));
        buf.push(cols.point(i));
    }
    if let Some((rid, idx, _)) = run {
        hand_over(groups, rid, idx, &mut buf);
    }
    Ok(())
}

/// Moves a run's points to group `idx` of series id `id` (`absorb` made
/// both; a missing group would drop the run, never panic).
fn hand_over(groups: &mut HashMap<i64, Vec<Group>>, id: i64, idx: usize, buf: &mut Vec<RollupPoint>) {
    if let Some(g) = groups.get_mut(&id).and_then(|list| list.get_mut(idx)) {
        g.points.append(buf);
    }
}

/// Rows a scan without `labels` buffers before handing them to their
/// series (64 MB of points).
const HAND_OVER_ROWS: usize = 1 << 20;

/// Hands the rows of a scan without `labels` to the series `index`
/// selects (a run of one id's rows to its series, skipped when the series
/// does not match; an id the index lacks sets `unresolved`), a block of
/// rows at a time: rows come grouped by file (a day), so handing each row
/// over as it comes writes one point into every series' vector per file
/// (a cache and TLB miss per row, a year of days). Each batch's rows are
/// decoded in order into one buffer of points, and a block of them, sorted
/// by series (a stable counting sort: each series' rows keep their scan
/// order), is written series by series: each series' points of the block's
/// days together.
struct IdAbsorber<'a> {
    tenant: &'a TenantId,
    index: &'a SeriesIndex,
    /// Per index slot: the rows handed over, in scan order.
    points: IdPoints,
    /// Capacity for a series' first rows (its expected windows).
    windows: usize,
    /// Rows not yet handed over, in scan order, and their slots.
    pending: Vec<RollupPoint>,
    slots: Vec<u32>,
    unresolved: bool,
}

impl<'a> IdAbsorber<'a> {
    fn new(tenant: &'a TenantId, index: &'a SeriesIndex, windows: usize) -> Self {
        Self {
            tenant,
            index,
            points: vec![Vec::new(); index.labels.len()],
            windows,
            pending: Vec::new(),
            slots: Vec::new(),
            unresolved: false,
        }
    }

    fn absorb(&mut self, batch: &RecordBatch) -> Result<()> {
        if self.unresolved {
            return Ok(()); // the labels-column read answers instead
        }
        let ids = column::<PrimitiveArray<Int64Type>>(batch, "series_id", self.tenant)?;
        let cols = PointColumns::of(batch, self.tenant)?;
        let mut start = 0usize;
        for run in ids.values().chunk_by(|a, b| a == b) {
            let end = start + run.len();
            let Some(id) = run.first() else { continue };
            match self.index.ids.get(id) {
                None => {
                    self.unresolved = true;
                    (self.pending, self.slots) = (Vec::new(), Vec::new());
                    return Ok(());
                }
                Some(None) => {}
                Some(Some(slot)) => {
                    if *slot as usize >= self.points.len() {
                        return Err(Error::Corrupted {
                            tenant: self.tenant.clone(),
                            detail: format!(
                                "series index slot {slot} of series id {id} is past its {} series",
                                self.points.len()
                            ),
                        });
                    }
                    self.pending.extend((start..end).map(|j| cols.point(j)));
                    self.slots.extend(std::iter::repeat_n(*slot, end - start));
                }
            }
            start = end;
        }
        if self.pending.len() >= HAND_OVER_ROWS { self.hand_over() } else { Ok(()) }
    }

    /// Hands the pending rows to their series, series by series.
    fn hand_over(&mut self) -> Result<()> {
        let (pending, slots) = (std::mem::take(&mut self.pending), std::mem::take(&mut self.slots));
        // Counting sort by slot (`absorb` checked every slot): rows per
        // slot, then each slot's first place in `order`, moved to its end
        // as its rows are placed.
        let mut next = vec![0usize; self.points.len()];
        for &slot in &slots {
            if let Some(n) = next.get_mut(slot as usize) {
                *n += 1;
            }
        }
        let mut total = 0;
        for n in &mut next {
            (*n, total) = (total, total + *n);
        }
        let mut order = vec![0u32; total];
        for (i, &slot) in slots.iter().enumerate() {
            if let Some(n) = next.get_mut(slot as usize)
                && let Some(o) = order.get_mut(*n)
            {
                *o = i as u32;
                *n += 1;
            }
        }
        let mut start = 0;
        for (out, &end) in self.points.iter_mut().zip(&next) {
            let rows = order.get(start..end).unwrap_or_default();
            start = end;
            if rows.is_empty() {
                continue;
            }
            if out.capacity() == 0 {
                out.reserve(self.windows.max(rows.len()));
            }
            out.extend(rows.iter().filter_map(|&i| pending.get(i as usize).copied()));
        }
        Ok(())
    }

    /// Every row handed over, per slot; `None` when a row's id was not in the index.
    fn finish(mut self) -> Result<Option<IdPoints>> {
        if self.unresolved {
            return Ok(None);
        }
        self.hand_over()?;
        Ok(Some(self.points))
    }
}

/// The first window end `table` holds completely (see [`PROPERTY_ROLLUP_SINCE`]).
fn complete_from(table: &iceberg::table::Table, rollup: Rollup) -> Option<i64> {
    let since = table.metadata().properties().get(PROPERTY_ROLLUP_SINCE)?.parse::<i64>().ok()?;
    let width = rollup.width_ms();
    Some(if since == i64::MIN { i64::MIN } else { window_end(since.saturating_add(width), width) })
}

/// Partials of one (series, end) merged in time order (by `last_ts`), in
/// place (the common case, one row per window already in order, is one
/// pass over the points).
fn merge_partials(points: &mut Vec<RollupPoint>) {
    if !points.is_sorted_by_key(|p| (p.end, p.last_ts)) {
        points.sort_unstable_by_key(|p| (p.end, p.last_ts));
    }
    // `dedup_by` hands each point with the point kept before it.
    points.dedup_by(|later, kept| {
        let same = later.end == kept.end;
        if same {
            kept.merge(later);
        }
        same
    });
}

/// Cores a long rollup read uses: one scan per part of its days.
fn read_parallelism() -> usize {
    let on_workers = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if on_workers { std::thread::available_parallelism().map_or(1, |n| n.get()).min(8) } else { 1 }
}

/// `ends` cut into at most `parts` consecutive ranges of whole UTC days
/// (every range but the outer ends' starts and ends on a day boundary, so
/// each day partition lies in one range), in time order. One range when
/// `ends` spans fewer days than `parts`.
fn scan_parts(ends: TimeRange, parts: usize) -> Vec<TimeRange> {
    let first_day = ends.start.div_euclid(MS_PER_DAY);
    let days = ends.end.div_euclid(MS_PER_DAY).saturating_sub(first_day).saturating_add(1);
    let parts = i64::try_from(parts).unwrap_or(1).clamp(1, days.max(1));
    if parts <= 1 || ends.start > ends.end {
        return vec![ends];
    }
    (0..parts)
        .map(|k| {
            let from = first_day + days * k / parts;
            let to = first_day + days * (k + 1) / parts;
            let start = if k == 0 { ends.start } else { from * MS_PER_DAY };
            let end = if k == parts - 1 { ends.end } else { to * MS_PER_DAY - 1 };
            TimeRange::new(start, end)
        })
        .collect()
}

/// Window ends of `width_ms` in `ends`: at most one row per series and
/// window (more only for partials), the room a series' vector gets.
fn windows_in(ends: TimeRange, width_ms: i64) -> usize {
    usize::try_from(ends.end.saturating_sub(ends.start) / width_ms.max(1) + 1).unwrap_or(0).min(1 << 16)
}

/// Per series (slots of a [`SeriesIndex`]): its rows' windows as read.
type IdPoints = Vec<Vec<RollupPoint>>;

impl ColdTier {
    /// The rows of `table` in `ends` of the series `index` resolves, per
    /// index slot, in file order (each slot's vector made with room for
    /// `windows` rows); `None` when a row's series id is not in the index
    /// (the caller reads the labels column instead).
    #[expect(clippy::too_many_arguments, reason = "the scan's parts, each used once")]
    async fn scan_ids(
        &self,
        table: &iceberg::table::Table,
        tenant: &TenantId,
        matchers: &[Matcher],
        ends: TimeRange,
        columns: &[&str],
        index: &SeriesIndex,
        windows: usize,
    ) -> Result<Option<IdPoints>> {
        let mut absorber = IdAbsorber::new(tenant, index, windows);
        self.scan_batches(table, tenant, matchers, ends, columns, |batch| absorber.absorb(batch)).await?;
        absorber.finish()
    }

    /// [`ColdTier::scan_ids`] of each of `parts` (consecutive, in time
    /// order) on its own runtime task, so a year's files are decoded on
    /// every core; each series' rows joined in part order (what one scan
    /// of all parts would read, up to the order of files within a part,
    /// which [`merge_partials`] restores).
    #[expect(clippy::too_many_arguments, reason = "the scan's parts, each used once")]
    #[expect(
        clippy::disallowed_methods,
        reason = "one task per part of a single read, all awaited here before it returns (none outlives the call)"
    )]
    async fn scan_ids_parallel(
        &self,
        table: &iceberg::table::Table,
        tenant: &TenantId,
        matchers: &[Matcher],
        parts: &[TimeRange],
        columns: &[&str],
        index: &Arc<SeriesIndex>,
        width_ms: i64,
    ) -> Result<Option<IdPoints>> {
        let columns: Vec<String> = columns.iter().map(|c| (*c).to_owned()).collect();
        let all_windows = match (parts.first(), parts.last()) {
            (Some(first), Some(last)) => windows_in(TimeRange::new(first.start, last.end), width_ms),
            _ => 0,
        };
        let tasks: Vec<_> = parts
            .iter()
            .enumerate()
            .map(|(k, &part)| {
                let (me, table, tenant) = (self.clone(), table.clone(), tenant.clone());
                let (matchers, columns, index) = (matchers.to_vec(), columns.clone(), Arc::clone(index));
                // The first part's vectors take the others' rows: room for all of them.
                let windows = if k == 0 { all_windows } else { windows_in(part, width_ms) };
                tokio::task::spawn(async move {
                    let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
                    me.scan_ids(&table, &tenant, &matchers, part, &columns, &index, windows).await
                })
            })
            .collect();
        let mut joined: Option<IdPoints> = None;
        let (mut unresolved, mut failed) = (false, None);
        // Every task is awaited (none is left running) before an error returns.
        for task in tasks {
            let part = task.await.unwrap_or_else(|e| {
                let source = iceberg::Error::new(iceberg::ErrorKind::Unexpected, format!("rollup read task: {e}"));
                Err(Error::Scan { tenant: tenant.clone(), source: Box::new(source) })
            });
            match part {
                Err(e) => {
                    failed.get_or_insert(e);
                }
                Ok(None) => unresolved = true,
                Ok(Some(p)) => match &mut joined {
                    None => joined = Some(p),
                    Some(all) => {
                        for (dst, mut src) in all.iter_mut().zip(p) {
                            if dst.is_empty() {
                                *dst = src;
                            } else {
                                dst.append(&mut src);
                            }
                        }
                    }
                },
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        Ok(if unresolved { None } else { joined })
    }
}

impl ColdTier {
    /// Reads rollup data files of this view's table back into series
    /// (partials of one window merged). Holds them in memory: meant for the
    /// small-file merge.
    pub async fn read_rollup_files(&self, tenant: &TenantId, paths: &[String]) -> Result<Vec<SeriesRollup>> {
        self.read_rollups(tenant, paths, true).await
    }

    /// Like [`ColdTier::read_rollup_files`] but every row as stored:
    /// partial rows of one window stay apart (sorted by `(end, last_ts)`).
    /// The erase rewrites files with it, leaving rows it does not cover as
    /// they were.
    pub(crate) async fn read_rollup_rows(&self, tenant: &TenantId, paths: &[String]) -> Result<Vec<SeriesRollup>> {
        self.read_rollups(tenant, paths, false).await
    }

    async fn read_rollups(&self, tenant: &TenantId, paths: &[String], merge: bool) -> Result<Vec<SeriesRollup>> {
        use iceberg::io::Storage;
        self.rollup_of_view(tenant)?;
        let storage = self.storage().storage();
        let corrupt = |detail: String| Error::Corrupted { tenant: tenant.clone(), detail };
        let mut groups: HashMap<i64, Vec<Group>> = HashMap::new();
        for p in paths {
            let bytes = storage.read(p).await.map_err(|e| corrupt(format!("reading {p}: {e}")))?;
            each_file_batch(bytes, p, tenant, |batch| absorb(batch, tenant, &mut groups))?;
        }
        let mut out: Vec<SeriesRollup> = groups
            .into_iter()
            .flat_map(|(id, list)| list.into_iter().map(move |g| (id, g)))
            .map(|(id, mut g)| {
                if merge {
                    merge_partials(&mut g.points);
                } else {
                    g.points.sort_by_key(|p| (p.end, p.last_ts));
                }
                SeriesRollup {
                    labels: g.labels,
                    series_id: SeriesId(id as u64),
                    device_hash: g.device_hash,
                    points: g.points,
                }
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    fn rollup_of_view(&self, tenant: &TenantId) -> Result<Rollup> {
        match self.kind {
            TableKind::Rollup(r) => Ok(r),
            TableKind::Samples | TableKind::Series => Err(Error::Corrupted {
                tenant: tenant.clone(),
                detail: "rollup access through a samples-table handle (use rollup_view)".into(),
            }),
        }
    }

    /// Writes rollup windows as data files of the tenant's rollup table of
    /// this view (created on first use with `strata.rollup-since-ms` =
    /// `since_ms`, the start of the first bucket rolled with rollups).
    /// Nothing is visible until [`ColdTier::commit_files`].
    pub async fn write_rollup_files(
        &self,
        tenant: &TenantId,
        series: &[SeriesRollup],
        since_ms: i64,
        file_prefix: &str,
    ) -> Result<WrittenFiles> {
        self.rollup_of_view(tenant)?;
        let table = self
            .create_table(tenant, HashMap::from([(PROPERTY_ROLLUP_SINCE.to_owned(), since_ms.to_string())]))
            .await?;
        let corrupt = |detail: String| Error::Corrupted { tenant: tenant.clone(), detail };
        let buckets = table_buckets(&table).ok_or_else(|| corrupt("rollup table has no device bucket field".into()))?;
        let bucket_fn = DeviceBucket::new(buckets).map_err(corrupt)?;
        let mut groups: BTreeMap<(i64, i32), Vec<RollupRows<'_>>> = BTreeMap::new();
        for s in series {
            let bucket = bucket_fn.of(s.device_hash).map_err(corrupt)?;
            for day in s.points.chunk_by(|a, b| a.end.div_euclid(MS_PER_DAY) == b.end.div_euclid(MS_PER_DAY)) {
                let Some(first) = day.first() else { continue };
                groups.entry((first.end.div_euclid(MS_PER_DAY), bucket)).or_default().push((s, day));
            }
        }
        for rows in groups.values_mut() {
            rows.sort_by(|(a, _), (b, _)| series_order((&a.labels, a.series_id), (&b.labels, b.series_id)));
        }
        let mut out =
            write_groups(&table, &self.config, tenant, groups, |s, rows| build_rollup_batches(s, rows), file_prefix)
                .await?;
        out.series = series.len();
        Ok(out)
    }

    /// The first window end this view's table answers completely for
    /// `tenant` (`since + width`; `i64::MIN` when `since` is: the table
    /// has held rollups since the tenant's first cold data), or `None`
    /// without a table.
    pub async fn rollup_complete_from(&self, tenant: &TenantId) -> Result<Option<i64>> {
        let rollup = self.rollup_of_view(tenant)?;
        let Some(table) = self.load_table(tenant).await? else { return Ok(None) };
        Ok(complete_from(&table, rollup))
    }

    /// The windows of this view's rollup table ending in `ends`, per series
    /// (partials merged), or `None` when the table does not answer all of
    /// them: no table, or `ends.start` before the first complete window.
    pub async fn select_rollup(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        ends: TimeRange,
    ) -> Result<Option<Vec<RollupSeries>>> {
        let rollup = self.rollup_of_view(tenant)?;
        let Some(table) = self.load_table(tenant).await? else { return Ok(None) };
        match complete_from(&table, rollup) {
            Some(from) if from <= ends.start => {}
            _ => return Ok(None),
        }
        if ends.start > ends.end || table.metadata().current_snapshot().is_none() {
            return Ok(Some(Vec::new()));
        }
        // `exp` only where the table has it (layout version 2).
        let has_exp = table.metadata().current_schema().field_by_name("exp").is_some();
        let with_exp = |cols: &[&'static str]| {
            let mut v = cols.to_vec();
            if has_exp {
                v.push("exp");
            }
            v
        };
        if let Some(index) = self.series_view().series_index(tenant, matchers).await? {
            let columns = with_exp(&["series_id", "ts", "min", "max", "sum", "count", "last", "last_ts"]);
            let index = Arc::new(index);
            let parts = scan_parts(ends, read_parallelism());
            let mut points = if parts.len() == 1 {
                let windows = windows_in(ends, rollup.width_ms());
                self.scan_ids(&table, tenant, matchers, ends, &columns, &index, windows).await?
            } else {
                self.scan_ids_parallel(&table, tenant, matchers, &parts, &columns, &index, rollup.width_ms()).await?
            };
            if let Some(points) = points.take() {
                let index = Arc::try_unwrap(index)
                    .unwrap_or_else(|shared| SeriesIndex { ids: Default::default(), labels: shared.labels.clone() });
                let mut out: Vec<RollupSeries> = index
                    .labels
                    .into_iter()
                    .zip(points)
                    .map(|(labels, mut points)| {
                        points.retain(|p| ends.contains(p.end));
                        merge_partials(&mut points);
                        RollupSeries { labels, points }
                    })
                    .filter(|s| !s.points.is_empty())
                    .collect();
                out.sort_by(|a, b| a.labels.cmp(&b.labels));
                return Ok(Some(out));
            }
            tracing::debug!(tenant = %tenant, table = ?self.kind, "rollup rows of series the series table lacks; reading their labels");
        }
        let columns = with_exp(&["labels", "series_id", "ts", "min", "max", "sum", "count", "last", "last_ts"]);
        let mut groups: HashMap<i64, Vec<Group>> = HashMap::new();
        self.scan_batches(&table, tenant, matchers, ends, &columns, |batch| absorb(batch, tenant, &mut groups)).await?;
        let mut out: Vec<RollupSeries> = groups
            .into_values()
            .flatten()
            .filter(|g| Matcher::matches_all(matchers, &g.labels))
            .map(|mut g| {
                g.points.retain(|p| ends.contains(p.end));
                merge_partials(&mut g.points);
                RollupSeries { labels: g.labels, points: g.points }
            })
            .filter(|s| !s.points.is_empty())
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use strata_schemas::{RollupAnswer, RollupData, RollupFields, RollupGrid, SumCheck};

    #[test]
    fn windows_are_left_open_right_closed() {
        let w = 300_000;
        assert_eq!(window_end(0, w), 0);
        assert_eq!(window_end(1, w), w);
        assert_eq!(window_end(w, w), w);
        assert_eq!(window_end(w + 1, w), 2 * w);
        assert_eq!(window_end(-1, w), 0);
        assert_eq!(window_end(-w, w), -w);
        let stale = f64::from_bits(strata_schemas::labels::STALE_NAN_BITS);
        let s = [Sample::new(1, 2.0), Sample::new(w, 1.0), Sample::new(w + 1, stale), Sample::new(2 * w + 1, 5.0)];
        let p = rollup_points(&s, w);
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].end, p[0].min, p[0].max, p[0].sum, p[0].count, p[0].last), (w, 1.0, 2.0, 3.0, 2, 1.0));
        assert_eq!((p[1].end, p[1].count, p[1].last_ts), (3 * w, 1, 2 * w + 1));
    }

    /// Layout version 2: `exp` is written and read back (null for a window
    /// holding NaN), a 1 d table has one device bucket, a 1 h table the
    /// configured number. A table created at layout version 1 (no `exp`
    /// column, as before 2026-12-04) is still written and read, every row
    /// with `exp` = `None`.
    #[test]
    fn layout_two_stores_exp_and_layout_one_tables_stay_readable() {
        use crate::config::ColdTierConfig;
        use crate::table::{FIELD_EXP, rollup_schema, samples_partition_spec, samples_sort_order};
        use crate::tier::CommitSource;
        use iceberg::Catalog;
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let config = ColdTierConfig { enabled: true, ..ColdTierConfig::default() };
        let cold = rt.block_on(ColdTier::open(&config, dir.path())).unwrap();
        let day0 = 1_700_006_400_000 - 1_700_006_400_000 % MS_PER_DAY;
        let rolled = |t: &TenantId, w: i64| -> Vec<SeriesRollup> {
            [("quarter", [0.25, -3.5, 8.0]), ("decimal", [0.1, 0.2, 0.3]), ("nan", [1.0, f64::NAN, 2.0])]
                .into_iter()
                .map(|(device, values)| {
                    let labels = Labels::from_pairs([("__name__", "m"), ("device", device)]);
                    let samples: Vec<Sample> =
                        values.iter().enumerate().map(|(i, &v)| Sample::new(day0 + 1 + i as i64 * 60_000, v)).collect();
                    SeriesRollup {
                        series_id: strata_schemas::series_id(t, &labels),
                        device_hash: strata_schemas::device_hash_of(t, device),
                        points: rollup_points(&samples, w),
                        labels,
                    }
                })
                .collect()
        };
        let write_and_read = |view: &ColdTier, t: &TenantId, w: i64| -> Vec<RollupSeries> {
            rt.block_on(async {
                let rows = rolled(t, w);
                let written = view.write_rollup_files(t, &rows, i64::MIN, "test").await.unwrap();
                let source = CommitSource { source: format!("hot:{t}:{day0}"), segments: String::new() };
                view.commit_files(t, written, &source).await.unwrap();
                // The series recorded (as a roll does), so the grid read resolves every row.
                let entries: Vec<crate::series::SeriesEntry> = rows
                    .iter()
                    .map(|r| crate::series::SeriesEntry {
                        labels: r.labels.clone(),
                        series_id: r.series_id,
                        device_hash: r.device_hash,
                    })
                    .collect();
                let sv = cold.series_view();
                let ws = sv.write_series_files(t, &entries, &format!("series-{w}")).await.unwrap();
                sv.commit_series_files(t, ws, &format!("hot:{t}:{w}")).await.unwrap();
                let m = [Matcher::equal("__name__", "m")];
                let ends = TimeRange::new(day0, day0 + MS_PER_DAY);
                let got = view.select_rollup(t, &m, ends).await.unwrap().unwrap();
                // The grid read holds the same windows, and sum checks that agree with `exp`.
                let all = RollupFields { min: true, max: true, sum: true, last: true };
                let Some(RollupAnswer::Grid(grid)) = view.select_rollup_grid(t, &m, ends, all).await.unwrap() else {
                    panic!("not a grid")
                };
                assert_eq!(grid_series(&grid, all), seen(&got, all));
                let exact: Vec<bool> = got.iter().map(|s| RollupPoint::sums_exactly(&s.points)).collect();
                assert_eq!(grid.sums.iter().map(SumCheck::exact).collect::<Vec<_>>(), exact);
                got
            })
        };
        let exps = |series: &[RollupSeries]| -> Vec<(String, Option<i32>, bool)> {
            series
                .iter()
                .map(|s| {
                    let p = &s.points;
                    (s.labels.get("device").unwrap_or_default().to_owned(), p[0].exp, RollupPoint::sums_exactly(p))
                })
                .collect()
        };
        let new = TenantId::new("new").unwrap();
        for (r, buckets) in [(Rollup::OneDay, 1), (Rollup::OneHour, config.device_buckets)] {
            let view = cold.rollup_view(r);
            let got = write_and_read(&view, &new, r.width_ms());
            assert_eq!(
                exps(&got),
                vec![
                    ("decimal".into(), Some(-55), false),
                    ("nan".into(), Some(strata_schemas::EXP_NAN), true),
                    ("quarter".into(), Some(-2), true)
                ],
                "{r:?}"
            );
            let table = rt.block_on(view.load_table(&new)).unwrap().unwrap();
            assert_eq!(table_buckets(&table), Some(buckets), "{r:?}");
            assert_eq!(table.metadata().properties().get("strata.layout-version").map(String::as_str), Some("2"));
        }
        // A version 1 table: the rollup schema without field 15.
        let old = TenantId::new("old").unwrap();
        let view = cold.rollup_view(Rollup::OneDay);
        let fields =
            rollup_schema().as_struct().fields().iter().filter(|f| f.id != FIELD_EXP).cloned().collect::<Vec<_>>();
        let schema = iceberg::spec::Schema::builder().with_schema_id(0).with_fields(fields).build().unwrap();
        let ident = view.ident(&old);
        let creation = iceberg::TableCreation::builder()
            .name(ident.name().to_owned())
            .schema(schema)
            .partition_spec(samples_partition_spec(8))
            .sort_order(samples_sort_order())
            .properties(HashMap::from([
                (PROPERTY_ROLLUP_SINCE.to_owned(), i64::MIN.to_string()),
                ("strata.layout-version".to_owned(), "1".to_owned()),
            ]))
            .build();
        rt.block_on(cold.catalog().create_table(ident.namespace(), creation)).unwrap();
        let got = write_and_read(&view, &old, MS_PER_DAY);
        assert_eq!(
            exps(&got),
            vec![("decimal".into(), None, false), ("nan".into(), None, false), ("quarter".into(), None, false)]
        );
        assert_eq!(got[2].points[0].sum, 4.75, "the rest of the row as written");
    }

    #[test]
    fn scan_parts_cut_whole_days_in_time_order() {
        let d = MS_PER_DAY;
        assert_eq!(scan_parts(TimeRange::new(5 * d, 5 * d), 2), vec![TimeRange::new(5 * d, 5 * d)]);
        assert_eq!(scan_parts(TimeRange::new(d, 365 * d), 1), vec![TimeRange::new(d, 365 * d)]);
        for (ends, parts) in [
            (TimeRange::new(d, 365 * d), 2),
            (TimeRange::new(3_600_000, 10 * d), 3),
            (TimeRange::new(-4 * d, 4 * d - 300_000), 8),
            (TimeRange::new(d, 2 * d), 8),
        ] {
            let got = scan_parts(ends, parts);
            assert!(got.len() <= parts && got.len() > 1, "{ends:?}: {got:?}");
            assert_eq!((got[0].start, got[got.len() - 1].end), (ends.start, ends.end));
            for pair in got.windows(2) {
                assert_eq!(pair[1].start, pair[0].end + 1, "{got:?}");
                assert_eq!(pair[1].start.rem_euclid(d), 0, "a cut at a day boundary: {got:?}");
                assert!(pair[0].start <= pair[0].end);
            }
        }
    }

    /// A read of many days (cut into parts read on their own tasks on a
    /// multi-thread runtime, rows handed to series a block at a time)
    /// answers what the rows hold: partial rows of one window in separate
    /// files merged in time order, a series of another metric left out,
    /// and a series the series table lacks read through the labels column.
    #[test]
    fn a_long_read_in_parts_answers_every_window_of_every_series() {
        use crate::config::ColdTierConfig;
        use crate::series::SeriesEntry;
        use crate::tier::CommitSource;
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let config = ColdTierConfig { enabled: true, ..ColdTierConfig::default() };
        let cold = rt.block_on(ColdTier::open(&config, dir.path())).unwrap();
        let t = TenantId::new("parts").unwrap();
        let day0 = 1_700_006_400_000 - 1_700_006_400_000 % MS_PER_DAY;
        let days = 12i64;
        let series = |name: &str, device: &str| {
            let labels = Labels::from_pairs([("__name__", name), ("device", device)]);
            (strata_schemas::series_id(&t, &labels), strata_schemas::device_hash_of(&t, device), labels)
        };
        let all = [series("m", "a"), series("m", "b"), series("other", "a"), series("m", "unrecorded")];
        let entries: Vec<SeriesEntry> = all[..3]
            .iter()
            .map(|(id, dev, labels)| SeriesEntry { labels: labels.clone(), series_id: *id, device_hash: *dev })
            .collect();
        // Samples every 6 h; each day's window in two partial rows (before
        // and after noon), written by separate commits: separate files.
        let sample = |k: usize, i: i64| Sample::new(day0 + i * 6 * 3_600_000 + 1, (k as f64 + 1.0) * 0.5 + i as f64);
        let samples: Vec<Vec<Sample>> = (0..all.len()).map(|k| (0..days * 4).map(|i| sample(k, i)).collect()).collect();
        let view = cold.rollup_view(Rollup::OneDay);
        let m = [Matcher::equal("__name__", "m")];
        // Every window but the first and the last.
        let ends = TimeRange::new(day0 + 2 * MS_PER_DAY, day0 + (days - 1) * MS_PER_DAY);
        let want: Vec<RollupSeries> = [0usize, 1, 3]
            .into_iter()
            .map(|k| RollupSeries {
                labels: all[k].2.clone(),
                points: rollup_points(&samples[k], MS_PER_DAY).into_iter().filter(|p| ends.contains(p.end)).collect(),
            })
            .collect();
        assert_eq!(want[0].points.len(), (days - 2) as usize);
        assert_eq!(want[2].labels.get("device"), Some("unrecorded"), "sorted by labels");
        rt.block_on(async {
            let sv = cold.series_view();
            let w = sv.write_series_files(&t, &entries, "test-series").await.unwrap();
            sv.commit_series_files(&t, w, "hot:parts:0").await.unwrap();
            let view = cold.rollup_view(Rollup::OneDay);
            // The unrecorded series last, whole days in one commit.
            for (half, of) in [(0i64, 0..3), (1, 0..3), (2, 3..4)] {
                let rolled: Vec<SeriesRollup> = all[of.clone()]
                    .iter()
                    .zip(&samples[of])
                    .map(|((id, dev, labels), s)| {
                        let part: Vec<Sample> = s
                            .iter()
                            .filter(|x| {
                                half == 2 || ((x.ts - day0).rem_euclid(MS_PER_DAY) >= MS_PER_DAY / 2) as i64 == half
                            })
                            .copied()
                            .collect();
                        SeriesRollup {
                            labels: labels.clone(),
                            series_id: *id,
                            device_hash: *dev,
                            points: rollup_points(&part, MS_PER_DAY),
                        }
                    })
                    .collect();
                let written = view.write_rollup_files(&t, &rolled, i64::MIN, &format!("half{half}")).await.unwrap();
                let source = CommitSource { source: format!("hot:parts:{half}"), segments: String::new() };
                view.commit_files(&t, written, &source).await.unwrap();
                if half == 1 {
                    // Every row's series recorded: the series-table path.
                    let got = view.select_rollup(&t, &m, ends).await.unwrap().unwrap();
                    assert_eq!(got, want[..2].to_vec());
                    // And as a grid: each series' cells the merged windows (for every field set).
                    for fields in grid_fields() {
                        let answer = view.select_rollup_grid(&t, &m, ends, fields).await.unwrap().unwrap();
                        let RollupAnswer::Grid(grid) = answer else { panic!("{fields:?}: not a grid") };
                        assert!(grid.blocks.len() > 1, "one block per part");
                        assert_eq!(grid_series(&grid, fields), seen(&want[..2], fields), "{fields:?}");
                        if fields.sum {
                            assert!(grid.sums.iter().all(SumCheck::exact), "halves sum exactly");
                        }
                    }
                }
            }
        });
        let got = rt.block_on(view.select_rollup(&t, &m, ends)).unwrap().unwrap();
        // A row of a series the series table lacks: the labels column's path.
        assert_eq!(got, want);
        let fields = RollupFields { sum: true, ..RollupFields::default() };
        let answer = rt.block_on(view.select_rollup_grid(&t, &m, ends, fields)).unwrap().unwrap();
        assert_eq!(answer, RollupAnswer::Series(RollupData { covered_end: ends.end, series: want }), "per series");
    }

    /// The field sets the engine asks for (avg/sum, min, max, last, count) and all of them.
    fn grid_fields() -> Vec<RollupFields> {
        let none = RollupFields::default();
        vec![
            RollupFields { sum: true, ..none },
            RollupFields { min: true, ..none },
            RollupFields { max: true, ..none },
            RollupFields { last: true, ..none },
            none,
            RollupFields { min: true, max: true, sum: true, last: true },
        ]
    }

    /// Each series' windows of a grid: (labels, [(end, count, fields asked as bits)]).
    type Seen = Vec<(Labels, Vec<(i64, u64, Vec<u64>)>)>;

    fn grid_series(grid: &RollupGrid, fields: RollupFields) -> Seen {
        let mut points = Vec::new();
        (0..grid.series.len())
            .map(|s| {
                points.clear();
                grid.push_windows(s, i64::MAX, fields, &mut points);
                (grid.series[s].clone(), seen_points(&points, fields))
            })
            .collect()
    }

    fn seen(series: &[RollupSeries], fields: RollupFields) -> Seen {
        series.iter().map(|s| (s.labels.clone(), seen_points(&s.points, fields))).collect()
    }

    fn seen_points(points: &[RollupPoint], fields: RollupFields) -> Vec<(i64, u64, Vec<u64>)> {
        points
            .iter()
            .map(|p| {
                let asked = [(fields.sum, p.sum), (fields.min, p.min), (fields.max, p.max), (fields.last, p.last)];
                (p.end, p.count, asked.iter().filter(|a| a.0).map(|a| a.1.to_bits()).collect())
            })
            .collect()
    }

    #[test]
    fn partials_merge_in_time_order() {
        let a = RollupPoint::of(10, &[Sample::new(3, f64::NAN), Sample::new(4, 2.0)]).unwrap();
        let b = RollupPoint::of(10, &[Sample::new(10, 1.0)]).unwrap();
        let mut v = vec![b, a];
        merge_partials(&mut v);
        let want = RollupPoint::of(10, &[Sample::new(3, f64::NAN), Sample::new(4, 2.0), Sample::new(10, 1.0)]).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!((v[0].min, v[0].max, v[0].count, v[0].last, v[0].last_ts), (1.0, 2.0, 3, 1.0, 10));
        assert_eq!((want.min, want.max), (1.0, 2.0));
        assert!(v[0].sum.is_nan() && want.sum.is_nan());
    }
}
