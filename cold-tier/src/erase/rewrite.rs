//! Samples files without their covered rows, streamed: the file is decoded
//! one record batch at a time, the rows not covered are copied in their
//! order (a file is sorted by metric, series, ts, so its copy is too) into
//! a new file of the same partition. Two passes: the first reads only
//! `labels`, `series_id` and `ts` to count covered rows, and a file with
//! none is left alone.
//!
//! ```text
//!  file bytes ─► ParquetRecordBatchReader ─► per batch: runs of one series → selected?
//!                                             ts in range → dropped, else copied
//!             ─► write_partition_stream(partition of the old file) ─► erase-samples-<uuid>-….parquet
//! ```

use std::sync::Arc;

use arrow_array::builder::Float64Builder;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{MapArray, RecordBatch, StringArray};
use arrow_schema::Schema as ArrowSchema;
use bytes::Bytes;
use iceberg::io::Storage;
use iceberg::spec::DataFile;
use iceberg::table::Table;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use strata_schemas::{Labels, TenantId};

use super::EraseRequest;
use crate::error::{Error, Result};
use crate::maintenance::maint_err;
use crate::read::{column, labels_equal, row_labels};
use crate::tier::{ColdTier, WrittenFiles};
use crate::write::{SeriesColumns, write_partition_stream};

/// The series of the current run of rows and whether the request selects it.
#[derive(Default)]
struct Run {
    id: i64,
    labels: Labels,
    selected: bool,
    valid: bool,
}

impl Run {
    /// Moves to row `i`'s series (label parsing only when the series changes).
    fn at(&mut self, map: &MapArray, keys: &StringArray, values: &StringArray, id: i64, i: usize, req: &EraseRequest) {
        if self.valid && self.id == id && labels_equal(map, keys, values, i, &self.labels) {
            return;
        }
        self.labels = row_labels(map, keys, values, i);
        self.selected = req.selects(&self.labels);
        self.id = id;
        self.valid = true;
    }
}

/// The label map of a batch with its keys and values.
fn labels_of<'a>(
    batch: &'a RecordBatch,
    tenant: &TenantId,
) -> Result<(&'a MapArray, &'a StringArray, &'a StringArray)> {
    let corrupt = || Error::Corrupted { tenant: tenant.clone(), detail: "labels are not a map of strings".into() };
    let map: &MapArray = column(batch, "labels", tenant)?;
    let keys = map.keys().as_string_opt::<i32>().ok_or_else(corrupt)?;
    let values = map.values().as_string_opt::<i32>().ok_or_else(corrupt)?;
    Ok((map, keys, values))
}

fn reader(bytes: Bytes, path: &str, tenant: &TenantId, columns: Option<&[&str]>) -> Result<ParquetRecordBatchReader> {
    let corrupt =
        |e: &dyn std::fmt::Display| Error::Corrupted { tenant: tenant.clone(), detail: format!("{path}: {e}") };
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| corrupt(&e))?;
    let builder = match columns {
        Some(cols) => {
            let roots: Vec<usize> = cols.iter().filter_map(|c| builder.schema().index_of(c).ok()).collect();
            let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
            builder.with_projection(mask)
        }
        None => builder,
    };
    builder.build().map_err(|e| corrupt(&e))
}

impl ColdTier {
    async fn file_bytes(&self, tenant: &TenantId, path: &str) -> Result<Bytes> {
        self.storage().storage().read(path).await.map_err(maint_err(tenant, "reading data file"))
    }

    /// Covered rows in the samples file at `path`.
    pub(super) async fn count_covered(&self, tenant: &TenantId, path: &str, req: &EraseRequest) -> Result<u64> {
        let bytes = self.file_bytes(tenant, path).await?;
        let mut run = Run::default();
        let mut n = 0u64;
        for batch in reader(bytes, path, tenant, Some(&["labels", "series_id", "ts"]))? {
            let batch =
                batch.map_err(|e| Error::Corrupted { tenant: tenant.clone(), detail: format!("{path}: {e}") })?;
            let (map, keys, values) = labels_of(&batch, tenant)?;
            let ids = column::<arrow_array::PrimitiveArray<Int64Type>>(&batch, "series_id", tenant)?;
            let ts = column::<arrow_array::PrimitiveArray<TimestampMicrosecondType>>(&batch, "ts", tenant)?;
            for i in 0..batch.num_rows() {
                let t = ts.value(i).div_euclid(1000);
                if !req.in_range(t) {
                    continue;
                }
                run.at(map, keys, values, ids.value(i), i, req);
                n += u64::from(run.selected);
            }
        }
        Ok(n)
    }

    /// Writes the rows of the samples file `df` that `req` does not cover
    /// into new files of its partition (none when every row is covered).
    /// Returns them and how many rows were left out.
    pub(super) async fn rewrite_without(
        &self,
        table: &Table,
        tenant: &TenantId,
        df: &DataFile,
        req: &EraseRequest,
        prefix: &str,
    ) -> Result<(WrittenFiles, u64)> {
        let path = df.file_path();
        let bytes = self.file_bytes(tenant, path).await?;
        let mut batches = reader(bytes, path, tenant, None)?;
        let mut run = Run::default();
        let mut removed = 0u64;
        let written = write_partition_stream(table, &self.config, tenant, df.partition().clone(), prefix, |schema| {
            for batch in batches.by_ref() {
                let batch =
                    batch.map_err(|e| Error::Corrupted { tenant: tenant.clone(), detail: format!("{path}: {e}") })?;
                if let Some(kept) = keep_rows(&batch, schema, tenant, req, &mut run, &mut removed)? {
                    return Ok(Some(kept));
                }
            }
            Ok(None)
        })
        .await?;
        Ok((written, removed))
    }
}

/// The rows of `batch` that `req` does not cover, as a batch of `schema`
/// (`None` when there are none).
fn keep_rows(
    batch: &RecordBatch,
    schema: &Arc<ArrowSchema>,
    tenant: &TenantId,
    req: &EraseRequest,
    run: &mut Run,
    removed: &mut u64,
) -> Result<Option<RecordBatch>> {
    let (map, keys, values) = labels_of(batch, tenant)?;
    let ids = column::<arrow_array::PrimitiveArray<Int64Type>>(batch, "series_id", tenant)?;
    let devs = column::<arrow_array::PrimitiveArray<Int64Type>>(batch, "device_hash", tenant)?;
    let ts = column::<arrow_array::PrimitiveArray<TimestampMicrosecondType>>(batch, "ts", tenant)?;
    let vals = column::<arrow_array::PrimitiveArray<Float64Type>>(batch, "value", tenant)?;
    let mut head = SeriesColumns::with_capacity(batch.num_rows());
    let mut val = Float64Builder::with_capacity(batch.num_rows());
    let mut kept = 0usize;
    for i in 0..batch.num_rows() {
        run.at(map, keys, values, ids.value(i), i, req);
        let t = ts.value(i).div_euclid(1000);
        if run.selected && req.in_range(t) {
            *removed += 1;
            continue;
        }
        head.push(&run.labels, ids.value(i) as u64, devs.value(i) as u64, t);
        val.append_value(vals.value(i));
        kept += 1;
    }
    if kept == 0 {
        return Ok(None);
    }
    let build = |e| Error::BuildBatch { tenant: tenant.clone(), source: e };
    let mut columns = head.finish(schema).map_err(build)?;
    columns.push(Arc::new(val.finish()));
    RecordBatch::try_new(Arc::clone(schema), columns).map(Some).map_err(build)
}
