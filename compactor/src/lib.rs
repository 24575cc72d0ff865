//! # strata-compactor — hot → cold roll-up, cold maintenance
//!
//! Will own rolling sealed hot-store buckets into the tenant's Iceberg table
//! (exactly once, the commit recording its source), merging small cold files,
//! cold retention, tenant deletion, and the 5 m / 1 h downsampled rollups.
//!
//! Not implemented yet: this crate holds no behaviour until the cold-tier
//! issue. Nothing in the server uses it.
#![warn(missing_docs)]
