//! # strata-schemas — the shared vocabulary of Strata
//!
//! Every other crate depends on this one and on nothing of each other's, so
//! the contracts between them live here:
//!
//! ```text
//!  ingest ──(WriteBatch bytes)──► ingest log ──► hot-store ──(compactor)──► cold-tier
//!     │                                            │                          │
//!     └── line_protocol::parse ──► Labels/Sample   └── both implement ReadStore ◄── query
//! ```
//!
//! * [`labels`]: the Prometheus data model (a series is a metric name plus a
//!   sorted label set) and [`Sample`].
//! * [`hash`]: the stable 64-bit series id and device hash. These are a
//!   storage format (see `schemas/FORMAT.md`); their values never change.
//! * [`line_protocol`]: the InfluxDB line-protocol parser.
//! * [`batch`]: the binary encoding of a write batch, the payload of every
//!   ingest-log record.
//! * [`matcher`]: label matchers (`=`, `!=`, `=~`, `!~`).
//! * [`metrics_text`]: the one Prometheus text-exposition renderer the
//!   crates' `/metrics` families are written with.
//! * [`read`]: the read contract ([`ReadStore`]) the query engine consumes,
//!   implemented by the hot store and the cold tier, and wrapped by the
//!   compactor's `FederatedReadStore` (hot/cold split at the watermark) and
//!   the server's cluster, erasure and region stores.
//! * [`read_warnings`]: warnings a store raises while a query reads it (a
//!   peer that did not answer), collected into the answer's `warnings`.
//! * [`tenant`]: tenant identity and the token → tenant resolution contract.
//! * [`policy`]: tenant policy (data regions, query regions, per-jurisdiction export policy, residency label, limits).
//! * [`region`]: the region directory (regions, their jurisdictions and endpoints).
//! * [`sink`]: the [`LogSink`] contract between the ingest log and the store it feeds.
//! * [`hlc`]: hybrid logical clocks, shared by the edge agent and the write path.
//! * [`progress`]: the registry of long-running tasks (replay, rebuild, roll, merge).
//! * [`error`]: [`ErrorKind`], the classification every crate's errors map to.
//! * [`config`]: [`ConfigError`], what every crate's `XxxConfig::validate`
//!   returns (section, key, value, the rule broken).
//! * [`time`], [`varint`]: timestamp precisions; LEB128 varints and zigzag.
//!
//! Module by module, with paths and "when you change X": `schemas/README.md`.
//!
//! The crate is synchronous and I/O-free. The codecs (`batch`, `line_protocol`,
//! `varint`, `hash`, `hlc`, `metrics_text`) deny `unwrap`, `expect` and
//! indexing outside tests, as the hot store does: malformed input is an
//! error, never a panic.
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))] // libraries log through tracing; only binaries print
#![cfg_attr(test, allow(clippy::disallowed_methods))] // unit tests own their runtimes and threads (clippy.toml)

pub mod batch;
pub mod config;
pub mod error;
pub mod hash;
pub mod hlc;
pub mod labels;
pub mod line_protocol;
pub mod matcher;
pub mod metrics_text;
pub mod policy;
pub mod prefetch;
pub mod progress;
pub mod read;
pub mod read_warnings;
pub mod region;
pub mod sink;
pub mod tenant;
pub mod time;
pub mod varint;

pub use batch::{BatchOrigin, BatchSeries, Samples, WriteBatch};
pub use config::ConfigError;
pub use error::ErrorKind;
pub use hash::{SeriesId, device_hash, device_hash_of, series_id, series_id_of};
pub use hlc::{Fold, Hlc, HlcTimestamp};
pub use labels::{Label, Labels, METRIC_NAME, Sample, Str};
pub use matcher::{MatchOp, Matcher};
pub use policy::{ExportPolicy, GROUP_LABEL, GroupRollup, Residency, TenantLimits, TenantPolicy, group_rollup_id};
pub use read::{
    EXP_NAN, EXP_NONE_SET, ROLLUP_WIDTHS_MS, ReadError, ReadStore, RollupAnswer, RollupBlock, RollupBlockBuilder,
    RollupData, RollupFields, RollupGrid, RollupPoint, RollupSeries, SeriesData, SumCheck, TimeRange, exact_exp,
};
pub use region::{RegionDirectory, RegionEntry};
pub use sink::{ApplyError, BatchSink, DiscardSink, LogSink};
pub use tenant::{Access, AuthError, TenantId, TenantResolver};
