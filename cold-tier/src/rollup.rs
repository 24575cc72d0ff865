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

impl SeriesRollup {
    /// The windows of `width_ms` of a bucket's samples of one series (none
    /// when it holds stale markers only).
    pub fn of(s: &crate::SeriesSamples, width_ms: i64) -> Self {
        Self {
            labels: s.labels.clone(),
            series_id: s.series_id,
            device_hash: s.device_hash,
            points: rollup_points(&s.samples, width_ms),
        }
    }
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
                Err(Error::scan(tenant, table, source))
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
mod tests;
