//! # strata-hot-scylla — the hot tier on ScyllaDB
//!
//! `[hot] kind = "scylla"` keeps recent samples in a ScyllaDB (or any CQL v4)
//! cluster shared by every node of a region instead of each node's embedded
//! hot store. The log consumer writes into it ([`ScyllaHot`] is a
//! [`strata_schemas::LogSink`]) and queries read it through the same
//! [`strata_schemas::ReadStore`] trait the embedded store implements, so the
//! query engine does not know which one answers.
//!
//! ```text
//!  ingest log (embedded or Kafka) ──apply(p, offset, batch)──► ScyllaHot ──CQL──► cluster
//!        ▲                                                       │ acknowledged at [hot.scylla] consistency
//!        └──── release / commit below flush() ◄── log_offsets ◄──┘
//!  query engine ──ReadStore──► ScyllaHot: tenant_buckets → bucket_series ∩ postings → series labels → samples
//! ```
//!
//! **Schema** (FORMAT.md): samples partitioned by (tenant, time bucket,
//! device hash) and clustered by (series id, labels hash, ts); a series
//! table and postings (label name, value → series) for matcher resolution;
//! per-bucket series lists; the acknowledged log offsets. Every statement
//! restricts by equality only (see `schema`), the time range is cut
//! client-side.
//!
//! **Durability.** A record's rows are acknowledged at the configured
//! consistency level before `apply` returns; only then does the record's
//! offset count as applied, and the server releases (embedded log) or
//! commits (Kafka) only offsets [`ScyllaHot::flush`] returned. A crash
//! replays from the recorded offsets; replaying a record is an upsert of
//! the same values.
//!
//! **Expiry and compaction** are the cluster's: rows carry `USING TTL`
//! (the tenant's hot TTL; index rows one bucket longer) and the time-series
//! tables use TimeWindowCompactionStrategy with one window per bucket.
//!
//! **Modules:** `store` ([`ScyllaHot`]: connect, apply, flush, the
//! `ReadStore` reads and the compactor's roll reads), [`schema`] (DDL,
//! statement texts, the labels codec), [`config`] ([`ScyllaConfig`],
//! `[hot.scylla]`), [`error`] ([`Error`] and `kind()`). Paths and "when you
//! change X": `hot-scylla/README.md`.
#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::disallowed_methods))]
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))] // libraries log through tracing; only binaries print

pub mod config;
pub mod error;
pub mod schema;
mod store;

pub use config::{ConsistencyLevel, ScyllaConfig};
pub use error::{Error, Result};
pub use store::{BucketSeries, HotTtls, ScyllaHot};
