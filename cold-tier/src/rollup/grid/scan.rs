//! The grid read's scan: the rollup table scanned as
//! [`ColdTier::scan_batches`] plans and reads it, with these differences for
//! a read that takes every row of the files it opens.
//!
//! ```text
//!  manifests ─► data files of one row group whose column bounds prove each pushed
//!    matcher (metric lower = upper = m; device_hash lower = upper = h: every row matches)
//!  per planned file: its day inside the range and proven ─► no predicate at all;
//!    inside only ─► the predicate without the range (as scan_batches); else the whole predicate
//!  record batches of BATCH_ROWS rows (the reader's default is 1,024); footers read with a
//!    small hint, and only the projected column chunks (not the `device_hash` between them)
//! ```
//!
//! The scan itself is [`ColdTier::scan_filtered`] (`read.rs`), told the
//! proven files and the batch size by a [`ReadTuning`].
//!
//! The Parquet reader evaluates a task's predicate on every row of the
//! file (for `metric = m`: the metric column decoded into strings and
//! compared row by row), so a file that holds one metric, as a tenant's
//! files do when it writes one, is read without that work; the answer is
//! the same, since the predicate would let every row through.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow_array::RecordBatch;
use iceberg::spec::{DataFile, Datum, ManifestEntryRef, PrimitiveLiteral};
use strata_schemas::{EXP_NAN, METRIC_NAME, MatchOp, Matcher, TenantId, TimeRange};

use crate::error::{Error, Result};
use crate::read::{MS_PER_DAY, ReadTuning, partition_day};
use crate::tier::ColdTier;

/// Rows per record batch of a grid scan.
const BATCH_ROWS: usize = 65_536;

/// Bytes read from a file's end for its footer: a rollup file's footer and
/// page index take a few KiB (4.2 KiB + 1.1 KiB for a day of 40,000 series
/// in the 1 d table); the reader's default of 512 KiB read 40 % of such a
/// file besides its column chunks. A larger footer costs one more request.
const METADATA_HINT: usize = 64 << 10;

/// The gap between two projected column chunks one request still spans:
/// a rollup file's `device_hash` chunk (31 % of a 1 d file of 40,000
/// series: one distinct hash per row) lies between `series_id` and `ts`,
/// and the reader's default of 1 MiB read it too.
const COALESCE_BYTES: u64 = 64 << 10;

/// Per day of window ends (days since the epoch, a rollup table file's
/// partition), a lower bound of the `exp` of its rows and an upper bound
/// of their `|min|` and `|max|` ([`ColdTier::sum_bounds`]).
pub(super) type DayBounds = HashMap<i64, (i32, f64)>;

impl ColdTier {
    /// The columns `columns` of the rows of `table` in `range` that the
    /// pushable matchers select, batch by batch into `each`; the files in
    /// `proven` ([`ColdTier::proven_among`]) read without a predicate (see
    /// the module doc).
    #[expect(clippy::too_many_arguments, reason = "the scan's inputs, each used once")]
    pub(super) async fn scan_grid_batches(
        &self,
        table: &iceberg::table::Table,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
        columns: &[&str],
        proven: HashSet<String>,
        each: impl FnMut(&RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let tuning = ReadTuning {
            proven,
            batch_rows: Some(BATCH_ROWS),
            metadata_hint: Some(METADATA_HINT),
            coalesce_bytes: Some(COALESCE_BYTES),
        };
        self.scan_filtered(table, tenant, matchers, range, columns, tuning, each).await.map(|_| ())
    }

    /// The live data files of `table`'s current snapshot (none without one).
    pub(super) async fn live_entries(
        &self,
        table: &iceberg::table::Table,
        tenant: &TenantId,
    ) -> Result<Vec<ManifestEntryRef>> {
        let scan_err = |source: iceberg::Error| Error::scan(tenant, table, source);
        let Some(current) = table.metadata().current_snapshot() else { return Ok(Vec::new()) };
        let list = table.manifest_list_reader(current).load().await.map_err(scan_err)?;
        let mut files = Vec::new();
        for mf in list.entries() {
            let manifest = mf.load_manifest(table.file_io()).await.map_err(scan_err)?;
            files.extend(manifest.entries().iter().filter(|e| e.is_alive()).map(Arc::clone));
        }
        Ok(files)
    }

    /// Paths of the live data files whose column bounds prove every
    /// matcher [`predicate`](crate::read::predicate) pushes down (one row
    /// group, a lower and an upper bound both equal to the value); empty
    /// when it pushes none.
    #[cfg(test)]
    pub(super) async fn proven_files(
        &self,
        table: &iceberg::table::Table,
        tenant: &TenantId,
        matchers: &[Matcher],
    ) -> Result<HashSet<String>> {
        let files = self.live_entries(table, tenant).await?;
        Ok(self.proven_among(table, tenant, matchers, &files))
    }

    /// `proven_files` among `files`.
    pub(super) fn proven_among(
        &self,
        table: &iceberg::table::Table,
        tenant: &TenantId,
        matchers: &[Matcher],
        files: &[ManifestEntryRef],
    ) -> HashSet<String> {
        let schema = table.metadata().current_schema();
        let mut terms: Vec<(i32, Datum)> = Vec::new();
        for m in matchers.iter().filter(|m| matches!(m.op, MatchOp::Equal) && !m.value.is_empty()) {
            let (column, value) = if m.name == METRIC_NAME {
                ("metric", Datum::string(&m.value))
            } else if m.name == self.config.device_label {
                ("device_hash", Datum::long(strata_schemas::device_hash_of(tenant, &m.value) as i64))
            } else {
                continue;
            };
            let Some(field) = schema.field_by_name(column) else { return HashSet::new() };
            terms.push((field.id, value));
        }
        if terms.is_empty() {
            return HashSet::new();
        }
        let mut proven = HashSet::new();
        for df in files.iter().map(|e| e.data_file()) {
            let holds =
                |(id, v): &(i32, Datum)| df.lower_bounds().get(id) == Some(v) && df.upper_bounds().get(id) == Some(v);
            // One row group: its statistics gave the bounds (iceberg keeps only exact
            // ones), so they hold for every row; of several, a group whose statistics
            // were truncated (strings over 64 bytes) would have been left out.
            if one_row_group(df) && terms.iter().all(holds) {
                proven.insert(df.file_path().to_owned());
            }
        }
        proven
    }

    /// The [`SumCheck`](strata_schemas::SumCheck) inputs of every row of
    /// the days of `ends`, from the column bounds of the live `files` of
    /// those days (each of one row group): per day the lowest lower bound
    /// of `exp` and the largest of `|lower(min)|`, `|upper(max)|`. `None`
    /// when a file of those days lacks one of those bounds, holds a null
    /// `exp` (a ±Inf window) or a lower `exp` bound of [`EXP_NAN`] (a NaN
    /// window), or has several row groups: the read then decodes `exp`,
    /// `min` and `max` row by row.
    ///
    /// Checking a row with these bounds instead of its own is stricter,
    /// never looser: its `exp` is at least the day's lowest, and its `min`
    /// and `max` lie between the day's lowest `min` and highest `max`, so
    /// `count × max(|min|, |max|)` is at most `count` times the day's bound
    /// (and the rows of a file without NaN or ±Inf windows are finite).
    pub(super) fn sum_bounds(
        table: &iceberg::table::Table,
        files: &[ManifestEntryRef],
        ends: TimeRange,
    ) -> Option<DayBounds> {
        let schema = table.metadata().current_schema();
        let id = |name: &str| schema.field_by_name(name).map(|f| f.id);
        let (exp, min, max) = (id("exp")?, id("min")?, id("max")?);
        let days = ends.start.div_euclid(MS_PER_DAY)..=ends.end.div_euclid(MS_PER_DAY);
        let mut bounds = DayBounds::new();
        for df in files.iter().map(|e| e.data_file()) {
            let day = i64::from(partition_day(df.partition())?);
            if !days.contains(&day) {
                continue;
            }
            let int = |d: Option<&Datum>| match d?.literal() {
                PrimitiveLiteral::Int(x) => Some(*x),
                _ => None,
            };
            let double = |d: Option<&Datum>| match d?.literal() {
                PrimitiveLiteral::Double(x) => Some(x.0).filter(|x| x.is_finite()),
                _ => None,
            };
            let low_exp = int(df.lower_bounds().get(&exp)).filter(|&e| e != EXP_NAN)?;
            let no_nulls = df.null_value_counts().get(&exp) == Some(&0);
            let m = double(df.lower_bounds().get(&min))?.abs().max(double(df.upper_bounds().get(&max))?.abs());
            if !no_nulls || !one_row_group(df) {
                return None;
            }
            let b = bounds.entry(day).or_insert((low_exp, m));
            *b = (b.0.min(low_exp), b.1.max(m));
        }
        Some(bounds)
    }
}

/// Whether the file is one row group (its column bounds are that group's statistics).
fn one_row_group(df: &DataFile) -> bool {
    df.split_offsets().is_some_and(|o| o.len() == 1)
}
