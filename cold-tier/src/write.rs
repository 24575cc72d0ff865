//! Series → Arrow batches → partitioned, sorted zstd Parquet data files.
//!
//! ```text
//!  series (labels, id, device_hash, samples)
//!    │ split samples by UTC day; bucket = iceberg bucket[n](device_hash)
//!    ▼
//!  BTreeMap<(day, bucket), rows>   each group sorted by (metric, series_id as i64, labels), ts
//!    │ 64 Ki-row Arrow batches (schema with Iceberg field ids)
//!    ▼
//!  DataFileWriter(partition key) ─► RollingFileWriter(target size) ─► ParquetWriter(zstd, dict, page stats)
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::builder::{Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{ArrayRef, MapArray, RecordBatch, StructArray};
use arrow_buffer::{OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, Schema as ArrowSchema};
use iceberg::spec::{Datum, Literal, PartitionKey, Struct, Transform};
use iceberg::table::Table;
use iceberg::transform::create_transform_function;
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{DefaultFileNameGenerator, DefaultLocationGenerator};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use strata_schemas::{Labels, Sample, SeriesId, TenantId};

use crate::config::ColdTierConfig;
use crate::error::{Error, Result};
use crate::tier::{FORMAT, SeriesSamples, WrittenFiles};

const MS_PER_DAY: i64 = 86_400_000;
const BATCH_ROWS: usize = 64 * 1024;

/// One series' samples of one day.
struct Row<'a> {
    series: &'a SeriesSamples,
    samples: &'a [Sample],
}

/// Iceberg's `bucket[n]` of a device hash.
pub(crate) struct DeviceBucket(iceberg::transform::BoxedTransformFunction);

impl DeviceBucket {
    pub(crate) fn new(buckets: u32) -> Result<Self, String> {
        Ok(Self(create_transform_function(&Transform::Bucket(buckets)).map_err(|e| e.to_string())?))
    }

    pub(crate) fn of(&self, device_hash: u64) -> Result<i32, String> {
        let b = self.0.transform_literal_result(&Datum::long(device_hash as i64)).map_err(|e| e.to_string())?;
        match Literal::from(b) {
            Literal::Primitive(iceberg::spec::PrimitiveLiteral::Int(v)) => Ok(v),
            other => Err(format!("bucket transform returned {other:?}")),
        }
    }
}

/// Groups rows by partition `(day, device bucket)`, each group in sort order.
fn partition_rows(series: &[SeriesSamples], buckets: u32) -> Result<BTreeMap<(i64, i32), Vec<Row<'_>>>, String> {
    let bucket_fn = DeviceBucket::new(buckets)?;
    let mut groups: BTreeMap<(i64, i32), Vec<Row<'_>>> = BTreeMap::new();
    for s in series {
        let bucket = bucket_fn.of(s.device_hash)?;
        for day in s.samples.chunk_by(|a, b| a.ts.div_euclid(MS_PER_DAY) == b.ts.div_euclid(MS_PER_DAY)) {
            let Some(first) = day.first() else { continue };
            groups.entry((first.ts.div_euclid(MS_PER_DAY), bucket)).or_default().push(Row { series: s, samples: day });
        }
    }
    for rows in groups.values_mut() {
        rows.sort_by(|a, b| {
            series_order((&a.series.labels, a.series.series_id), (&b.series.labels, b.series.series_id))
        });
    }
    Ok(groups)
}

/// The order a file's rows are written in, every table alike: metric, then
/// series id as its signed column holds it (the tables' sort order), then
/// labels (ids that collide stay apart, in a stable order).
pub(crate) fn series_order(a: (&Labels, SeriesId), b: (&Labels, SeriesId)) -> std::cmp::Ordering {
    let ka = (a.0.metric_name(), a.1.0 as i64);
    let kb = (b.0.metric_name(), b.1.0 as i64);
    ka.cmp(&kb).then_with(|| a.0.cmp(b.0))
}

/// The next Arrow batch of at most [`BATCH_ROWS`] rows of `rows` (a series
/// may span two) from `at` = (row, sample) on, advancing it; `None` at the
/// end. Batches are built one at a time as the writer takes them: a
/// partition of a roll or a merge holds millions of rows, and as Arrow
/// (each row with its labels map) they took ~150 bytes a row — several GiB
/// when a whole partition was built before writing (the soak of 2026-12-03
/// night saw RSS spikes to 10 GiB during merges).
fn next_batch(
    schema: &Arc<ArrowSchema>,
    rows: &[Row<'_>],
    at: &mut (usize, usize),
) -> Option<Result<RecordBatch, ArrowError>> {
    let mut chunk: Vec<(&SeriesSamples, Sample)> = Vec::with_capacity(BATCH_ROWS);
    while chunk.len() < BATCH_ROWS {
        let Some(row) = rows.get(at.0) else { break };
        let rest = row.samples.get(at.1..).unwrap_or_default();
        let n = rest.len().min(BATCH_ROWS - chunk.len());
        chunk.extend(rest.iter().take(n).map(|s| (row.series, *s)));
        if n == rest.len() {
            *at = (at.0 + 1, 0);
        } else {
            at.1 += n;
        }
    }
    (!chunk.is_empty()).then(|| build_batch(schema, &chunk))
}

fn build_batch(schema: &Arc<ArrowSchema>, rows: &[(&SeriesSamples, Sample)]) -> Result<RecordBatch, ArrowError> {
    let mut head = SeriesColumns::with_capacity(rows.len());
    let mut val = Float64Builder::new();
    for (s, sample) in rows {
        head.push(&s.labels, s.series_id.0, s.device_hash, sample.ts);
        val.append_value(sample.value);
    }
    let mut columns = head.finish(schema)?;
    columns.push(Arc::new(val.finish()));
    RecordBatch::try_new(Arc::clone(schema), columns)
}

/// The leading columns both table kinds share: metric, labels, series_id, device_hash, ts.
pub(crate) struct SeriesColumns {
    metric: StringBuilder,
    keys: StringBuilder,
    values: StringBuilder,
    offsets: Vec<i32>,
    sid: Int64Builder,
    dev: Int64Builder,
    ts: TimestampMicrosecondBuilder,
    entries: i32,
}

impl SeriesColumns {
    pub(crate) fn with_capacity(rows: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Self {
            metric: StringBuilder::new(),
            keys: StringBuilder::new(),
            values: StringBuilder::new(),
            offsets,
            sid: Int64Builder::new(),
            dev: Int64Builder::new(),
            ts: TimestampMicrosecondBuilder::new(),
            entries: 0,
        }
    }

    pub(crate) fn push(&mut self, labels: &strata_schemas::Labels, series_id: u64, device_hash: u64, ts_ms: i64) {
        self.metric.append_value(labels.metric_name());
        for l in labels.iter() {
            self.keys.append_value(&l.name);
            self.values.append_value(&l.value);
        }
        self.entries += labels.len() as i32;
        self.offsets.push(self.entries);
        self.sid.append_value(series_id as i64);
        self.dev.append_value(device_hash as i64);
        self.ts.append_value(ts_ms.saturating_mul(1000));
    }

    /// The five columns (four without a `ts` in `schema`), in schema order.
    pub(crate) fn finish(self, schema: &Arc<ArrowSchema>) -> Result<Vec<ArrayRef>, ArrowError> {
        let SeriesColumns { mut metric, mut keys, mut values, offsets, mut sid, mut dev, mut ts, .. } = self;
        let labels_field = schema.field_with_name("labels")?;
        let DataType::Map(entries_field, sorted) = labels_field.data_type() else {
            return Err(ArrowError::SchemaError("labels is not a map".into()));
        };
        let DataType::Struct(kv_fields) = entries_field.data_type() else {
            return Err(ArrowError::SchemaError("map entries are not a struct".into()));
        };
        let kv = StructArray::try_new(
            kv_fields.clone(),
            vec![Arc::new(keys.finish()) as ArrayRef, Arc::new(values.finish())],
            None,
        )?;
        let labels = MapArray::try_new(
            Arc::clone(entries_field),
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            kv,
            None,
            *sorted,
        )?;
        let mut out: Vec<ArrayRef> =
            vec![Arc::new(metric.finish()), Arc::new(labels), Arc::new(sid.finish()), Arc::new(dev.finish())];
        // Series tables have no `ts`.
        if let Ok(f) = schema.field_with_name("ts") {
            out.push(Arc::new(ts.finish().with_data_type(f.data_type().clone())));
        }
        Ok(out)
    }
}

/// zstd level of every column. The value column of smooth sensor data is
/// most of the bytes and gains 10–15% from 3 → 9 (peer-bench IoT, one 2 h
/// bucket: 1.60 → 1.44 B/sample at 8 device buckets) for a few percent of
/// write speed; decompression speed does not depend on the level.
pub(crate) const ZSTD_LEVEL: i32 = 9;

/// Parquet settings: zstd ([`ZSTD_LEVEL`]), dictionaries (except `ts`: delta
/// binary packed), page-level statistics (column and offset index), row
/// groups of `row_group_rows`; page sizes are parquet-rs's defaults (1 MiB,
/// at most 20 000 rows: smaller pages only paid off at low zstd levels, and
/// larger ones coarsen page pruning). `cold-tier/FORMAT.md` lists them.
pub(crate) fn writer_properties(config: &ColdTierConfig) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(ZSTD_LEVEL).unwrap_or_default()))
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(config.row_group_rows))
        .set_created_by("strata-cold-tier".into())
        // Sorted per series: timestamps delta-encode to a few bits each
        // (decimal sensor values do best with the default dictionary: plain
        // and byte-stream-split measured larger after zstd).
        .set_column_dictionary_enabled(ColumnPath::from("ts"), false)
        .set_column_encoding(ColumnPath::from("ts"), Encoding::DELTA_BINARY_PACKED)
        .build()
}

pub(crate) async fn write_files(
    table: &Table,
    config: &ColdTierConfig,
    tenant: &TenantId,
    series: &[SeriesSamples],
    file_prefix: &str,
) -> Result<WrittenFiles> {
    let corrupt = |detail: String| Error::Corrupted { tenant: tenant.clone(), detail };
    let buckets = table_buckets(table).ok_or_else(|| corrupt("table has no device bucket partition field".into()))?;
    let groups = partition_rows(series, buckets).map_err(corrupt)?;
    let mut out = write_groups_lazily(
        table,
        config,
        tenant,
        groups,
        |schema, rows: &Vec<Row<'_>>, at| next_batch(schema, rows, at),
        file_prefix,
    )
    .await?;
    out.series = series.len();
    Ok(out)
}

/// `N` of the table's `bucket[N](device_hash)` partition field.
pub(crate) fn table_buckets(table: &Table) -> Option<u32> {
    table
        .metadata()
        .default_partition_spec()
        .fields()
        .iter()
        .find_map(|f| if let Transform::Bucket(n) = f.transform { Some(n) } else { None })
}

/// Writes each `(day, bucket)` group's batches as data files of that partition.
pub(crate) async fn write_groups<G>(
    table: &Table,
    config: &ColdTierConfig,
    tenant: &TenantId,
    groups: BTreeMap<(i64, i32), G>,
    build: impl Fn(&Arc<ArrowSchema>, &G) -> Result<Vec<RecordBatch>, ArrowError>,
    file_prefix: &str,
) -> Result<WrittenFiles> {
    let next = |schema: &Arc<ArrowSchema>, g: &G, built: &mut Option<std::vec::IntoIter<RecordBatch>>| {
        if built.is_none() {
            match build(schema, g) {
                Ok(v) => *built = Some(v.into_iter()),
                Err(e) => return Some(Err(e)),
            }
        }
        built.as_mut().and_then(Iterator::next).map(Ok)
    };
    write_groups_lazily(table, config, tenant, groups, next, file_prefix).await
}

/// [`write_groups`] with batches built as the writer takes them: `next`
/// returns a group's next batch (from its state `S`, fresh per group) or
/// `None` after the last, so one batch per partition is in memory at a time.
pub(crate) async fn write_groups_lazily<G, S: Default>(
    table: &Table,
    config: &ColdTierConfig,
    tenant: &TenantId,
    groups: BTreeMap<(i64, i32), G>,
    next: impl Fn(&Arc<ArrowSchema>, &G, &mut S) -> Option<Result<RecordBatch, ArrowError>>,
    file_prefix: &str,
) -> Result<WrittenFiles> {
    let corrupt = |detail: String| Error::Corrupted { tenant: tenant.clone(), detail };
    let write_err = |source: iceberg::Error| Error::WriteDataFiles { tenant: tenant.clone(), source: Box::new(source) };
    let schema = Arc::clone(table.metadata().current_schema());
    let spec = table.metadata().default_partition_spec().as_ref().clone();
    let arrow_schema = Arc::new(iceberg::arrow::schema_to_arrow_schema(&schema).map_err(write_err)?);
    let location = DefaultLocationGenerator::new(table.metadata()).map_err(write_err)?;
    let names = DefaultFileNameGenerator::new(file_prefix.to_owned(), None, FORMAT);
    let parquet = ParquetWriterBuilder::new(writer_properties(config), Arc::clone(&schema));
    let rolling = RollingFileWriterBuilder::new(
        parquet,
        usize::try_from(config.target_file_size).unwrap_or(usize::MAX),
        table.file_io().clone(),
        location,
        names,
    );
    let builder = DataFileWriterBuilder::new(rolling);
    let mut out = WrittenFiles { files: Vec::new(), rows: 0, series: 0, bytes: 0 };
    for ((day, bucket), rows) in groups {
        let day = i32::try_from(day).map_err(|_| corrupt(format!("day {day} out of range")))?;
        // (day, bucket) for samples and rollup tables, (bucket) for series tables.
        let values = spec.fields().iter().map(|f| match f.transform {
            Transform::Day => Some(Literal::date(day)),
            _ => Some(Literal::int(bucket)),
        });
        let key = PartitionKey::new(spec.clone(), Arc::clone(&schema), Struct::from_iter(values));
        let mut writer = builder.build(Some(key)).await.map_err(write_err)?;
        let mut state = S::default();
        while let Some(b) = next(&arrow_schema, &rows, &mut state) {
            let b = b.map_err(|source| Error::BuildBatch { tenant: tenant.clone(), source })?;
            out.rows += b.num_rows() as u64;
            writer.write(b).await.map_err(write_err)?;
        }
        for f in writer.close().await.map_err(write_err)? {
            out.bytes += f.file_size_in_bytes();
            out.files.push(f);
        }
    }
    Ok(out)
}

/// Writes the batches `next` yields (rows already in the table's sort
/// order, all of the partition `partition`) as data files of that
/// partition, one batch in memory at a time; `next` gets the table's Arrow
/// schema to build them with. No file is written when no batch comes.
pub(crate) async fn write_partition_stream(
    table: &Table,
    config: &ColdTierConfig,
    tenant: &TenantId,
    partition: Struct,
    file_prefix: &str,
    mut next: impl FnMut(&Arc<ArrowSchema>) -> Result<Option<RecordBatch>>,
) -> Result<WrittenFiles> {
    let write_err = |source: iceberg::Error| Error::WriteDataFiles { tenant: tenant.clone(), source: Box::new(source) };
    let schema = Arc::clone(table.metadata().current_schema());
    let spec = table.metadata().default_partition_spec().as_ref().clone();
    let arrow_schema = Arc::new(iceberg::arrow::schema_to_arrow_schema(&schema).map_err(write_err)?);
    let location = DefaultLocationGenerator::new(table.metadata()).map_err(write_err)?;
    let names = DefaultFileNameGenerator::new(file_prefix.to_owned(), None, FORMAT);
    let parquet = ParquetWriterBuilder::new(writer_properties(config), Arc::clone(&schema));
    let rolling = RollingFileWriterBuilder::new(
        parquet,
        usize::try_from(config.target_file_size).unwrap_or(usize::MAX),
        table.file_io().clone(),
        location,
        names,
    );
    let builder = DataFileWriterBuilder::new(rolling);
    let mut out = WrittenFiles { files: Vec::new(), rows: 0, series: 0, bytes: 0 };
    let Some(first) = next(&arrow_schema)? else { return Ok(out) };
    let key = PartitionKey::new(spec, Arc::clone(&schema), partition);
    let mut writer = builder.build(Some(key)).await.map_err(write_err)?;
    let mut batch = Some(first);
    while let Some(b) = batch {
        out.rows += b.num_rows() as u64;
        writer.write(b).await.map_err(write_err)?;
        batch = next(&arrow_schema)?;
    }
    for f in writer.close().await.map_err(write_err)? {
        out.bytes += f.file_size_in_bytes();
        out.files.push(f);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray;
    use strata_schemas::{Labels, SeriesId};

    use super::*;

    fn s(device_hash: u64, metric: &str, id: u64, ts: &[i64]) -> SeriesSamples {
        SeriesSamples {
            labels: Labels::from_pairs([("__name__", metric)]),
            series_id: SeriesId(id),
            device_hash,
            samples: ts.iter().map(|&t| Sample::new(t, 1.0)).collect(),
        }
    }

    #[test]
    fn rows_split_by_day_and_sorted_by_metric_then_signed_series_id() {
        let series = vec![s(1, "b", 1, &[10]), s(1, "a", u64::MAX, &[20, MS_PER_DAY + 5]), s(1, "a", 5, &[30])];
        let groups = partition_rows(&series, 4).unwrap();
        let keys: Vec<_> = groups.keys().map(|k| k.0).collect();
        assert_eq!(keys, vec![0, 1]);
        let day0 = groups.values().next().unwrap();
        let order: Vec<(&str, i64)> =
            day0.iter().map(|r| (r.series.labels.metric_name(), r.series.series_id.0 as i64)).collect();
        assert_eq!(order, vec![("a", -1), ("a", 5), ("b", 1)]);
    }

    #[test]
    fn batches_are_built_one_at_a_time_and_together_hold_every_row_in_order() {
        // Series of 0, 1, BATCH_ROWS - 1, BATCH_ROWS + 1 and 2 * BATCH_ROWS + 3
        // samples: batches cross series boundaries and series cross batches.
        let lens = [0usize, 1, BATCH_ROWS - 1, BATCH_ROWS + 1, 2 * BATCH_ROWS + 3];
        let series: Vec<SeriesSamples> = lens
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let ts: Vec<i64> = (0..n as i64).collect();
                s(1, "m", i as u64 + 1, &ts)
            })
            .collect();
        let rows: Vec<Row<'_>> = series.iter().map(|x| Row { series: x, samples: &x.samples }).collect();
        let schema = Arc::new(
            iceberg::arrow::schema_to_arrow_schema(&crate::table::samples_schema()).expect("samples schema converts"),
        );
        let mut at = (0, 0);
        let mut seen: Vec<(i64, i64)> = Vec::new();
        let mut sizes = Vec::new();
        while let Some(b) = next_batch(&schema, &rows, &mut at) {
            let b = b.expect("batch builds");
            sizes.push(b.num_rows());
            let ids = b.column_by_name("series_id").expect("series_id").as_primitive::<arrow_array::types::Int64Type>();
            let ts = b.column_by_name("ts").expect("ts").as_primitive::<arrow_array::types::TimestampMicrosecondType>();
            seen.extend(ids.values().iter().zip(ts.values()).map(|(&id, &t)| (id, t / 1000)));
        }
        let total: usize = lens.iter().sum();
        assert!(sizes.iter().all(|&n| n <= BATCH_ROWS && n > 0), "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), total);
        assert_eq!(sizes.len(), total.div_ceil(BATCH_ROWS));
        let want: Vec<(i64, i64)> =
            series.iter().flat_map(|x| x.samples.iter().map(|p| (x.series_id.0 as i64, p.ts))).collect();
        assert_eq!(seen, want);
        assert!(next_batch(&schema, &rows, &mut at).is_none(), "the end stays the end");
    }
}
