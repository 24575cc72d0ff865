//! # strata-compactor — hot → cold roll-up and the federated read
//!
//! This crate owns moving data from the hot store into the cold tier and
//! reading the two as one:
//!
//! * [`Compactor`] rolls sealed hot buckets into the tenant's Iceberg table,
//!   exactly once across crashes (the commit records its source, the hot
//!   store's cold watermark moves only after the commit), and exposes
//!   progress counters ([`CompactorMetrics`]) for `/metrics`;
//! * [`FederatedReadStore`] answers [`strata_schemas::ReadStore`] from cold
//!   below the tenant's cold watermark and from hot at and above it;
//! * [`Compactor::maintain_once`] keeps the cold tables healthy: each
//!   tenant's `cold_retention` (whole days, a `delete` snapshot), small-file
//!   merge per partition (a `replace` snapshot), snapshot expiry (never a
//!   snapshot exactly-once still needs) and orphan-file removal; every step
//!   exactly once across crashes ([`MAINTENANCE_FAILPOINTS`]);
//! * [`Compactor::purge_tenant`] deletes a tenant's hot and cold data.
//!
//! ```text
//!  HotStore ──sealed_buckets / read_bucket──► Compactor ──write_files / commit_files──► ColdTier
//!     ▲                                          │   maintain_once: retention → merge → expire → orphans
//!     └────────── set_cold_watermark(bucket end) ┘   purge_tenant: hot.purge_tenant, cold.purge
//!
//!  query ──► FederatedReadStore ──ts ≥ W──► HotStore
//!                               └─ts < W──► ColdReadStore
//! ```
//!
//! Several nodes on one Kafka log ([`Compactor::set_partitioning`]): rolls
//! are owned per log partition; each commit claims (bucket, partitions) and
//! records `strata.roll.p<n>` in the same catalog swap as its data, so a new
//! owner continues where the old one stopped and a stale owner's commit is
//! refused; the hot watermark is the lowest partition's roll state (details:
//! `roll.rs`, cold-tier `FORMAT.md`). The server runs it for nodes with
//! `[cluster]` peers when they name a shared catalog and warehouse; its write
//! path refuses a sample below its partition's roll state
//! ([`Compactor::partition_roll_state`]).
//!
//! Roll sources ([`RollSource`]): the embedded hot store by default, or
//! another hot tier ([`Compactor::with_source`]; the server's ScyllaDB tier)
//! listing sealed buckets and reading one bucket's series and samples; the
//! cold watermark stays in the embedded store's manifest either way.
//!
//! Rollups: every roll also commits the bucket's 5 m, 1 h and 1 d windows (min,
//! max, sum, count, last) to the tenant's rollup tables, exactly once per
//! table, before the watermark moves; [`FederatedReadStore`] serves them
//! (`ReadStore::select_rollup`) for windows ending below the watermark.
//!
//! **Modules:** `roll` ([`Compactor`], the roll pass, failpoints, the
//! [`CompactorMetrics`] counters), `metrics` (their `/metrics` rendering),
//! `maintain` (retention, merge, snapshot expiry, orphans, purge), `group`
//! (group rollups: published declarations, their rows at each roll),
//! `federated` ([`FederatedReadStore`]), `source` ([`RollSource`]), `progress`
//! (roll and merge tasks), `config` ([`CompactorConfig`]), `error` ([`Error`]
//! and `kind()`). Paths and "when you change X": `compactor/README.md`.
//!
//! **Cargo feature `failpoints`** (off by default): the crash tests' hooks,
//! `Compactor::arm_failpoint`, `disarm_failpoints`, `set_pass_hook` and
//! `Error::Injected`. Off, none of them exists and each point of a pass is an
//! inlined `Ok(())`: release builds carry no test hooks. The crate's tests
//! get it through a dev-dependency on the crate itself (`cargo test -p
//! strata-compactor` needs no flag).
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))] // libraries log through tracing; only binaries print
#![cfg_attr(test, allow(clippy::disallowed_methods))] // unit tests own their runtimes and threads (clippy.toml)

mod config;
mod error;
mod federated;
mod group;
mod maintain;
mod metrics;
mod progress;
mod roll;
mod source;

pub use config::CompactorConfig;
pub use error::{Error, Result};
pub use federated::{FederatedReadStore, WatermarkFn};
pub use group::{GroupRollupSource, GroupRollups};
pub use maintain::{MAINTENANCE_FAILPOINTS, MaintainOutcome, PURGE_FAILPOINT, PurgeOutcome, RetentionSource};
#[cfg(feature = "failpoints")]
pub use roll::PassHook;
pub use roll::{BucketOutcome, Compactor, CompactorMetrics, FAILPOINTS, RollOutcome, RollableFn};
pub use source::{RollSource, sealed_from_listing};
