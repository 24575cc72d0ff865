//! The grid read's scan: the rollup table scanned as
//! [`ColdTier::scan_batches`] plans and reads it, with two differences for a
//! read that takes every row of the files it opens.
//!
//! ```text
//!  manifests ─► data files of one row group whose column bounds prove each pushed
//!    matcher (metric lower = upper = m; device_hash lower = upper = h: every row matches)
//!  per planned file: its day inside the range and proven ─► no predicate at all;
//!    inside only ─► the predicate without the range (as scan_batches); else the whole predicate
//!  record batches of BATCH_ROWS rows (the reader's default is 1,024)
//! ```
//!
//! The Parquet reader evaluates a task's predicate on every row of the
//! file (for `metric = m`: the metric column decoded into strings and
//! compared row by row), so a file that holds one metric, as a tenant's
//! files do when it writes one, is read without that work; the answer is
//! the same, since the predicate would let every row through.

use std::collections::HashSet;
use std::sync::Arc;

use arrow_array::RecordBatch;
use futures::TryStreamExt;
use iceberg::expr::Predicate;
use iceberg::spec::Datum;
use strata_schemas::{METRIC_NAME, MatchOp, Matcher, TenantId, TimeRange};

use crate::error::{Error, Result};
use crate::read::predicate;
use crate::tier::ColdTier;

/// Rows per record batch of a grid scan.
const BATCH_ROWS: usize = 65_536;

const MS_PER_DAY: i64 = 86_400_000;

/// The `ts_day` of a rollup table file's partition (its first field, a date).
fn partition_day(partition: &iceberg::spec::Struct) -> Option<i32> {
    use iceberg::spec::{Literal, PrimitiveLiteral};
    match partition.fields() {
        [Some(Literal::Primitive(PrimitiveLiteral::Int(day))), _] => Some(*day),
        _ => None,
    }
}

impl ColdTier {
    /// The columns `columns` of the rows of `table` in `range` that the
    /// pushable matchers select, batch by batch into `each` (see the module
    /// doc).
    pub(super) async fn scan_grid_batches(
        &self,
        table: &iceberg::table::Table,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
        columns: &[&str],
        mut each: impl FnMut(&RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let scan_err = |source: iceberg::Error| Error::Scan { tenant: tenant.clone(), source: Box::new(source) };
        let proven = self.proven_files(table, tenant, matchers).await?;
        let scan = table
            .scan()
            .select(columns.iter().copied())
            .with_filter(predicate(self, tenant, matchers, range))
            .with_row_group_filtering_enabled(true)
            .with_row_selection_enabled(true)
            .build()
            .map_err(scan_err)?;
        let residual = predicate(self, tenant, matchers, TimeRange::ALL);
        let tasks = scan.plan_files().await.map_err(scan_err)?.and_then(move |mut task| {
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
        let reader = iceberg::arrow::ArrowReaderBuilder::new(table.file_io().clone(), runtime)
            .with_batch_size(BATCH_ROWS)
            .with_row_group_filtering_enabled(true)
            .with_row_selection_enabled(true)
            .build();
        let mut stream = reader.read(Box::pin(tasks)).map_err(scan_err)?.stream();
        while let Some(batch) = stream.try_next().await.map_err(scan_err)? {
            each(&batch)?;
        }
        Ok(())
    }

    /// Paths of the live data files whose column bounds prove every
    /// matcher [`predicate`] pushes down (one row group, a lower and an
    /// upper bound both equal to the value); empty when it pushes none.
    pub(super) async fn proven_files(
        &self,
        table: &iceberg::table::Table,
        tenant: &TenantId,
        matchers: &[Matcher],
    ) -> Result<HashSet<String>> {
        let scan_err = |source: iceberg::Error| Error::Scan { tenant: tenant.clone(), source: Box::new(source) };
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
            let Some(field) = schema.field_by_name(column) else { return Ok(HashSet::new()) };
            terms.push((field.id, value));
        }
        let Some(current) = table.metadata().current_snapshot().filter(|_| !terms.is_empty()) else {
            return Ok(HashSet::new());
        };
        let list = table.manifest_list_reader(current).load().await.map_err(scan_err)?;
        let mut proven = HashSet::new();
        for mf in list.entries() {
            let manifest = mf.load_manifest(table.file_io()).await.map_err(scan_err)?;
            for e in manifest.entries().iter().filter(|e| e.is_alive()) {
                let df = e.data_file();
                let holds = |(id, v): &(i32, Datum)| {
                    df.lower_bounds().get(id) == Some(v) && df.upper_bounds().get(id) == Some(v)
                };
                // One row group: its statistics gave the bounds (iceberg keeps only exact
                // ones), so they hold for every row; of several, a group whose statistics
                // were truncated (strings over 64 bytes) would have been left out.
                let one_group = df.split_offsets().is_some_and(|o| o.len() == 1);
                if one_group && terms.iter().all(holds) {
                    proven.insert(df.file_path().to_owned());
                }
            }
        }
        Ok(proven)
    }
}
