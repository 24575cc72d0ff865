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
//!   below the tenant's cold watermark and from hot at and above it.
//!
//! ```text
//!  HotStore ──sealed_buckets / read_bucket──► Compactor ──write_files / commit_files──► ColdTier
//!     ▲                                          │
//!     └────────── set_cold_watermark(bucket end) ┘
//!
//!  query ──► FederatedReadStore ──ts ≥ W──► HotStore
//!                               └─ts < W──► ColdReadStore
//! ```
//!
//! Not here yet: small-file merge, snapshot/orphan expiry, cold retention,
//! tenant deletion and the 5 m / 1 h rollups (see the crate README).
#![warn(missing_docs)]

mod config;
mod error;
mod federated;
mod roll;

pub use config::CompactorConfig;
pub use error::{Error, Result};
pub use federated::{FederatedReadStore, WatermarkFn};
pub use roll::{BucketOutcome, Compactor, CompactorMetrics, FAILPOINTS, RollOutcome};
