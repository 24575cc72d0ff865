//! # strata-cold-tier — Iceberg tables of Parquet on object storage
//!
//! Will own, per region, the Iceberg catalog (SQL catalog: SQLite by default,
//! PostgreSQL in a cluster) and per tenant a samples table (metric, labels,
//! series id, device_hash, ts, value) partitioned by day and device-hash
//! bucket, written as zstd Parquet through `object_store`, and read back with
//! partition, statistics and page-index pruning behind the
//! `strata_schemas::ReadStore` contract.
//!
//! Not implemented yet: this crate holds no behaviour until the cold-tier
//! issue. Nothing in the server uses it.
#![warn(missing_docs)]
