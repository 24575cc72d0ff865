//! # strata-cold-tier — Iceberg tables of Parquet on object storage
//!
//! This crate owns one region's cold tier: the Iceberg SQL catalog (SQLite
//! file by default, PostgreSQL in a cluster), per tenant a samples table
//! (metric, labels map, series id, device_hash, ts, value) partitioned by
//! `day(ts)` and `bucket[n](device_hash)` and sorted by (metric, series, ts),
//! written as zstd Parquet with dictionaries and page statistics, and read
//! back with partition, row-group and page-index pruning behind
//! [`strata_schemas::ReadStore`] ([`ColdReadStore`]).
//!
//! ```text
//!            compactor                                   query (via ReadStore)
//!               │ write_files → commit_files(source)        │ select / series
//!               ▼                                           ▼
//!  ColdTier ── SqlCatalog (iceberg_tables: metadata_location CAS) ── Table scan (pruned)
//!               │                                           │
//!               ▼                                           ▼
//!  ObjectStoreStorage (iceberg Storage) ── object_store: LocalFileSystem | AmazonS3 | InMemory
//! ```
//!
//! **Exactly once.** A commit is a fast append whose snapshot summary carries
//! `strata.source` (e.g. `hot:acme:1700006400000`); [`ColdTier::commit_files`]
//! refuses to commit a source twice, so a compactor that crashed after the
//! commit but before advancing the hot store's watermark cannot duplicate
//! data. Files written but never committed are invisible orphans.
//!
//! **Roll state per log partition** (`roll.rs`): a roll commit claims a
//! bucket of a set of ingest-log partitions and sets the table properties
//! `strata.roll.p<partition> = <bucket end>` in the same compare-and-swap
//! of the catalog row as its data ([`ColdTier::commit_claim`]), refusing
//! when a claimed partition is already past the bucket, so nodes sharing a
//! Kafka topic commit each (partition, bucket) once across rebalances.
//!
//! **Rollups** (`rollup.rs`): per tenant `rollup5m_<tenant>`,
//! `rollup1h_<tenant>` and `rollup1d_<tenant>` tables of per-(series, window) min, max, sum, count
//! and last, windows `(end − w, end]`; [`ColdTier::rollup_view`] addresses
//! them with the same commit and maintenance methods, and
//! [`ColdReadStore`] answers `ReadStore::select_rollup` from them.
//!
//! **Series tables** (`series.rs`): per tenant `series_<tenant>`, one row
//! per series (metric, labels, id, device hash), appended by the compactor
//! before the rollup rows that need it; [`ColdReadStore`]'s rollup read
//! resolves matchers there and reads the rollup rows without their label
//! maps ([`ColdTier::series_view`]).
//!
//! **Maintenance** (`maintenance.rs`): snapshot expiry, orphan-file removal,
//! whole-file `delete` snapshots (retention), `replace` snapshots (small-file
//! merge) and tenant purge. iceberg-rust 0.10.1 cannot commit snapshots that
//! remove files, so those are written with its spec types and committed by a
//! compare-and-swap of the catalog row (FORMAT.md, "Maintenance").
//!
//! **Erasure** (`erase.rs`): [`ColdTier::erase`] rewrites the samples,
//! rollup and series files holding what an [`EraseRequest`] covers (one
//! `strata.operation = erase` snapshot per table), expires the snapshots
//! that still reference the removed files and deletes their objects;
//! [`ColdTier::verify_erased`] proves it.
//!
//! **I/O.** iceberg-rust 0.10's `FileIO` takes a custom
//! [`iceberg::io::StorageFactory`]; [`ObjectStoreStorageFactory`] plugs
//! `object_store` in, so one warehouse URL picks the backend
//! (`file://`, `s3://`, `memory://`). Table layout: `cold-tier/FORMAT.md`.
//!
//! Modules: `tier` (catalog, tables, commits), `table` (layout), `write`
//! (series → Parquet), `read` (pruned scan, `ReadStore`), `roll`, `rollup`,
//! `group_rollup` (tables of declared group rollups), `series`,
//! `maintenance`, `erase`, `storage` (object_store I/O), `config`
//! (`[cold]`), `error`. Module by module, with paths and "when you change X":
//! `cold-tier/README.md`.
//!
//! **Cargo feature `failpoints`** (off by default): crash tests arm named
//! points of the erase with `ColdTier::arm_failpoint`, which then fail with
//! `Error::Injected`. Off, neither exists and each point is an inlined
//! `Ok(())`: release builds carry no test hooks. The crate's tests get it
//! through a dev-dependency on the crate itself (`cargo test -p
//! strata-cold-tier` needs no flag).
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))]
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))] // libraries log through tracing; only binaries print
#![cfg_attr(test, allow(clippy::disallowed_methods))] // unit tests own their runtimes and threads (clippy.toml)

mod config;
mod erase;
mod error;
mod group_rollup;
mod maintenance;
mod read;
mod roll;
mod rollup;
mod series;
mod storage;
pub mod table;
mod tier;
mod write;

pub use config::ColdTierConfig;
pub use erase::{
    ColdEraseReport, ColdVerifyReport, EraseOptions, EraseRequest, OPERATION_ERASE, SUMMARY_ERASE_END,
    SUMMARY_ERASE_ROWS, SUMMARY_ERASE_START,
};
pub use error::{Error, Result};
pub use group_rollup::{group_label_value, group_of, group_points};
/// Iceberg's snapshot type, as seen by [`ColdTier::expire_snapshots`]' protect predicate.
pub use iceberg::spec::Snapshot;
pub use maintenance::{ExpireOutcome, FilesDeleted, LiveFile, RewriteOutcome, SUMMARY_OPERATION, whole_days_before};
pub use read::{ColdReadStore, ReadPath, ReadStats};
pub use roll::{
    ClaimOutcome, PROPERTY_ROLL_PREFIX, RollClaim, SUMMARY_ROLL_END, SUMMARY_ROLL_PARTITIONS, SUMMARY_ROLL_START,
    roll_state_of,
};
pub use rollup::{SeriesRollup, rollup_points, window_end};
pub use series::{SeriesEntry, series_key};
pub use storage::{ObjectStoreStorage, ObjectStoreStorageFactory, StoreSpec};
pub use table::{Rollup, TableKind};
pub use tier::{ColdTier, CommitOutcome, CommitSource, SeriesSamples, WrittenFiles, file_prefix};
