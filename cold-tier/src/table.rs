//! The samples table layout: Iceberg schema, partition spec, sort order and
//! table properties (documented in `cold-tier/FORMAT.md`; field ids are a
//! storage format and never change).

use std::collections::HashMap;
use std::sync::Arc;

use iceberg::spec::{
    MapType, NestedField, NestedFieldRef, NullOrder, PrimitiveType, Schema, SortDirection, SortField, SortOrder,
    Transform, Type, UnboundPartitionSpec,
};
use iceberg::{NamespaceIdent, TableIdent};
use strata_schemas::TenantId;

/// Field id of `metric` (string, `__name__`).
pub const FIELD_METRIC: i32 = 1;
/// Field id of `labels` (map<string, string>, `__name__` included).
pub const FIELD_LABELS: i32 = 2;
/// Field id of `series_id` (long: the u64 `schemas::series_id`, bit-cast).
pub const FIELD_SERIES_ID: i32 = 3;
/// Field id of `device_hash` (long: the u64 `schemas::device_hash`, bit-cast).
pub const FIELD_DEVICE_HASH: i32 = 4;
/// Field id of `ts` (timestamptz, microseconds; Strata writes whole milliseconds).
pub const FIELD_TS: i32 = 5;
/// Field id of `value` (double; stale markers keep their NaN bits).
pub const FIELD_VALUE: i32 = 6;
/// Field id of the labels map key.
pub const FIELD_LABELS_KEY: i32 = 7;
/// Field id of the labels map value.
pub const FIELD_LABELS_VALUE: i32 = 8;

/// Snapshot summary key naming what a commit holds (its idempotency key).
pub const SUMMARY_SOURCE: &str = "strata.source";
/// Snapshot summary key: hot segment ids the data was read from (diagnostics).
pub const SUMMARY_SOURCE_SEGMENTS: &str = "strata.source-segments";
/// Snapshot summary key: rows (samples) in the commit.
pub const SUMMARY_ROWS: &str = "strata.rows";
/// Snapshot summary key: series in the commit.
pub const SUMMARY_SERIES: &str = "strata.series";

/// The series columns every table starts with: `metric`, `labels`,
/// `series_id`, `device_hash` (field ids 1–4; the map's key and value 7, 8).
fn series_fields() -> Vec<NestedFieldRef> {
    let string = || Type::Primitive(PrimitiveType::String);
    let labels = MapType::new(
        NestedField::map_key_element(FIELD_LABELS_KEY, string()).into(),
        NestedField::map_value_element(FIELD_LABELS_VALUE, string(), true).into(),
    );
    vec![
        NestedField::required(FIELD_METRIC, "metric", string()).into(),
        NestedField::required(FIELD_LABELS, "labels", Type::Map(labels)).into(),
        NestedField::required(FIELD_SERIES_ID, "series_id", Type::Primitive(PrimitiveType::Long)).into(),
        NestedField::required(FIELD_DEVICE_HASH, "device_hash", Type::Primitive(PrimitiveType::Long)).into(),
    ]
}

/// A schema of the series columns followed by `rest`.
#[expect(
    clippy::expect_used,
    reason = "fixed field names and ids, so it cannot fail at run time; every table the tests create builds it"
)]
fn schema_with(rest: impl IntoIterator<Item = NestedFieldRef>) -> Schema {
    let mut fields = series_fields();
    fields.extend(rest);
    Schema::builder().with_schema_id(0).with_fields(fields).build().expect("static schema is valid")
}

/// The Iceberg schema of a tenant's samples table.
pub fn samples_schema() -> Schema {
    schema_with([
        NestedField::required(FIELD_TS, "ts", Type::Primitive(PrimitiveType::Timestamptz)).into(),
        NestedField::required(FIELD_VALUE, "value", Type::Primitive(PrimitiveType::Double)).into(),
    ])
}

/// Partition spec: `day(ts)` then `bucket[n](device_hash)`.
#[expect(
    clippy::expect_used,
    reason = "fixed field names and ids, so it cannot fail at run time; every table the tests create builds it"
)]
pub fn samples_partition_spec(device_buckets: u32) -> UnboundPartitionSpec {
    UnboundPartitionSpec::builder()
        .with_spec_id(0)
        .add_partition_field(FIELD_TS, "ts_day", Transform::Day)
        .and_then(|b| b.add_partition_field(FIELD_DEVICE_HASH, "device_bucket", Transform::Bucket(device_buckets)))
        .expect("static partition spec is valid")
        .build()
}

/// Sort order 1 over `fields`, each ascending, nulls first.
#[expect(
    clippy::expect_used,
    reason = "fixed field names and ids, so it cannot fail at run time; every table the tests create builds it"
)]
fn sort_order(fields: &[i32]) -> SortOrder {
    fields
        .iter()
        .fold(SortOrder::builder().with_order_id(1), |b, &source_id| {
            b.with_sort_field(SortField {
                source_id,
                transform: Transform::Identity,
                direction: SortDirection::Ascending,
                null_order: NullOrder::First,
            })
        })
        .build_unbound()
        .expect("static sort order is valid")
}

/// Sort order 1: `metric, series_id, ts`, ascending, nulls first.
pub fn samples_sort_order() -> SortOrder {
    sort_order(&[FIELD_METRIC, FIELD_SERIES_ID, FIELD_TS])
}

/// Table properties recorded at creation (for other engines writing to the table).
pub fn samples_properties(target_file_size: u64) -> HashMap<String, String> {
    HashMap::from([
        ("write.format.default".into(), "parquet".into()),
        ("write.parquet.compression-codec".into(), "zstd".into()),
        ("write.target-file-size-bytes".into(), target_file_size.to_string()),
        ("strata.layout-version".into(), "1".into()),
    ])
}

/// The table name of a tenant: `samples_<tenant>` with `.` written as `~`
/// (dots separate namespace levels in other engines; `~` is not allowed in
/// tenant ids, so the mapping is one-to-one).
pub fn table_name(tenant: &TenantId) -> String {
    format!("samples_{}", tenant.as_str().replace('.', "~"))
}

/// The tenant whose table is called `name` (inverse of [`table_name`]).
pub fn tenant_of_table(name: &str) -> Option<TenantId> {
    TenantId::new(name.strip_prefix("samples_")?.replace('~', ".")).ok()
}

/// The identifier of a tenant's table in `namespace`.
pub fn table_ident(namespace: &str, tenant: &TenantId) -> TableIdent {
    TableIdent::new(NamespaceIdent::new(namespace.to_owned()), table_name(tenant))
}

/// Field id of a rollup table's `min` (double).
pub const FIELD_MIN: i32 = 9;
/// Field id of a rollup table's `max` (double).
pub const FIELD_MAX: i32 = 10;
/// Field id of a rollup table's `sum` (double).
pub const FIELD_SUM: i32 = 11;
/// Field id of a rollup table's `count` (long).
pub const FIELD_COUNT: i32 = 12;
/// Field id of a rollup table's `last` (double).
pub const FIELD_LAST: i32 = 13;
/// Field id of a rollup table's `last_ts` (timestamptz).
pub const FIELD_LAST_TS: i32 = 14;
/// Field id of `exp` (optional int: `RollupPoint::exp`; rollup layout version 2).
pub const FIELD_EXP: i32 = 15;

/// `strata.layout-version` of rollup tables created now (2: with `exp`;
/// tables of version 1 have no `exp` and stay readable).
pub const ROLLUP_LAYOUT_VERSION: &str = "2";

/// Table property of a rollup table: the start (ms) of the first hot
/// bucket rolled with rollups; windows ending before `since + width` may
/// lack older data and are never answered from the table.
pub const PROPERTY_ROLLUP_SINCE: &str = "strata.rollup-since-ms";

/// A rollup width the compactor maintains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rollup {
    /// 5-minute windows.
    FiveMinutes,
    /// 1-hour windows.
    OneHour,
    /// 1-day windows (UTC days: `(d, d + 1 d]`, `d` a multiple of 86,400,000 ms).
    OneDay,
}

impl Rollup {
    /// Every rollup, finest first.
    pub const ALL: [Rollup; 3] = [Rollup::FiveMinutes, Rollup::OneHour, Rollup::OneDay];

    /// Window width in milliseconds.
    pub fn width_ms(self) -> i64 {
        match self {
            Rollup::FiveMinutes => 300_000,
            Rollup::OneHour => 3_600_000,
            Rollup::OneDay => 86_400_000,
        }
    }

    /// The rollup of a width, if Strata keeps one.
    pub fn of_width(width_ms: i64) -> Option<Rollup> {
        Rollup::ALL.into_iter().find(|r| r.width_ms() == width_ms)
    }

    /// Short name (`5m`, `1h`, `1d`).
    pub fn name(self) -> &'static str {
        match self {
            Rollup::FiveMinutes => "5m",
            Rollup::OneHour => "1h",
            Rollup::OneDay => "1d",
        }
    }
}

/// Which of a tenant's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableKind {
    /// `samples_<tenant>`: raw samples.
    Samples,
    /// `rollup5m_<tenant>` / `rollup1h_<tenant>` / `rollup1d_<tenant>`:
    /// per-window aggregates.
    Rollup(Rollup),
    /// `series_<tenant>`: one row per series (metric, labels, id, device
    /// hash), so readers of the rollup tables need not decode every row's
    /// labels.
    Series,
}

impl TableKind {
    /// The table name of `tenant` (`.` written as `~`, see [`table_name`]).
    pub fn table_name(self, tenant: &TenantId) -> String {
        match self {
            TableKind::Samples => table_name(tenant),
            TableKind::Rollup(r) => format!("rollup{}_{}", r.name(), tenant.as_str().replace('.', "~")),
            TableKind::Series => format!("series_{}", tenant.as_str().replace('.', "~")),
        }
    }

    /// The identifier of `tenant`'s table of this kind in `namespace`.
    pub fn ident(self, namespace: &str, tenant: &TenantId) -> TableIdent {
        TableIdent::new(NamespaceIdent::new(namespace.to_owned()), self.table_name(tenant))
    }
}

/// The Iceberg schema of a rollup table: the samples table's series columns,
/// `ts` = the window end, and the aggregates.
pub fn rollup_schema() -> Schema {
    let double = || Type::Primitive(PrimitiveType::Double);
    schema_with([
        NestedField::required(FIELD_TS, "ts", Type::Primitive(PrimitiveType::Timestamptz)).into(),
        NestedField::required(FIELD_MIN, "min", double()).into(),
        NestedField::required(FIELD_MAX, "max", double()).into(),
        NestedField::required(FIELD_SUM, "sum", double()).into(),
        NestedField::required(FIELD_COUNT, "count", Type::Primitive(PrimitiveType::Long)).into(),
        NestedField::required(FIELD_LAST, "last", double()).into(),
        NestedField::required(FIELD_LAST_TS, "last_ts", Type::Primitive(PrimitiveType::Timestamptz)).into(),
        NestedField::optional(FIELD_EXP, "exp", Type::Primitive(PrimitiveType::Int)).into(),
    ])
}

/// The Iceberg schema of a series table: the samples table's series
/// columns (field ids 1–4, 7, 8), one row per series.
pub fn series_schema() -> Schema {
    schema_with([])
}

/// Partition spec of a series table: `bucket[n](device_hash)` only (no
/// day: a series is recorded once, whenever it first appears).
#[expect(
    clippy::expect_used,
    reason = "fixed field names and ids, so it cannot fail at run time; every table the tests create builds it"
)]
pub fn series_partition_spec(device_buckets: u32) -> UnboundPartitionSpec {
    UnboundPartitionSpec::builder()
        .with_spec_id(0)
        .add_partition_field(FIELD_DEVICE_HASH, "device_bucket", Transform::Bucket(device_buckets))
        .expect("static partition spec is valid")
        .build()
}

/// Sort order 1 of a series table: `metric, series_id`.
pub fn series_sort_order() -> SortOrder {
    sort_order(&[FIELD_METRIC, FIELD_SERIES_ID])
}

/// Snapshot summary key of a series-table append: the source
/// (`hot:<tenant>:<bucket_start_ms>`) whose roll recorded the series. Not
/// `strata.source`: a series table append is not exactly-once (readers
/// de-duplicate), so it carries no idempotency key.
pub const SUMMARY_SERIES_OF: &str = "strata.series-of";

/// Table property: comma-separated `strata.source`s of snapshots an erase
/// expired (the most recent [`ERASED_SOURCES_KEPT`]), so the exactly-once
/// check still finds those commits (`tier.rs`, `find_source`).
pub const PROPERTY_ERASED_SOURCES: &str = "strata.erased-sources";

/// How many erased sources [`PROPERTY_ERASED_SOURCES`] keeps (newest last):
/// only sources not yet below the hot store's cold watermark matter, a few
/// rolls' worth.
pub const ERASED_SOURCES_KEPT: usize = 512;

/// Shared schema reference (cheap clones).
pub fn schema_ref() -> Arc<Schema> {
    Arc::new(samples_schema())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_injective_and_dot_free() {
        let a = table_name(&TenantId::new("a.b").unwrap());
        let b = table_name(&TenantId::new("a_b").unwrap());
        assert_eq!(a, "samples_a~b");
        assert_ne!(a, b);
        assert!(!a.contains('.'));
        assert_eq!(tenant_of_table(&a), Some(TenantId::new("a.b").unwrap()));
        assert_eq!(tenant_of_table("other"), None);
    }

    #[test]
    fn layout_field_ids_are_frozen() {
        let s = samples_schema();
        let ids: Vec<(i32, &str)> = s.as_struct().fields().iter().map(|f| (f.id, f.name.as_str())).collect();
        assert_eq!(
            ids,
            vec![(1, "metric"), (2, "labels"), (3, "series_id"), (4, "device_hash"), (5, "ts"), (6, "value")]
        );
        let widths: Vec<(i64, &str)> = Rollup::ALL.iter().map(|r| (r.width_ms(), r.name())).collect();
        assert_eq!(widths, vec![(300_000, "5m"), (3_600_000, "1h"), (86_400_000, "1d")]);
        let t = TenantId::new("a.b").unwrap();
        assert_eq!(TableKind::Rollup(Rollup::OneDay).table_name(&t), "rollup1d_a~b");
        assert_eq!(Rollup::of_width(86_400_000), Some(Rollup::OneDay));
        let spec = samples_partition_spec(16);
        assert_eq!(spec.fields().len(), 2);
        assert_eq!(samples_sort_order().fields.len(), 3);
    }
}
