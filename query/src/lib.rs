//! # strata-query — PromQL over Strata's storage, served as the Prometheus HTTP API
//!
//! This crate owns everything between a Grafana (or any Prometheus client)
//! request and the [`ReadStore`](strata_schemas::ReadStore) trait:
//!
//! ```text
//!  HTTP /api/v1/*  ──► http::router ──► TenantResolver (Authorization → TenantId)
//!                          │
//!                          ▼  (blocking thread)
//!                    Engine::query_instant / query_range
//!                          │  promql-parser AST
//!                          ▼
//!                    engine::eval  ──► ReadStore::select (once per selector, whole span)
//! ```
//!
//! * [`engine`]: the PromQL evaluator with Prometheus 3 semantics (lookback,
//!   staleness, left-open range windows, extrapolated rates, vector matching,
//!   aggregations, functions, `@`, `offset`, subqueries).
//! * [`http`]: the Prometheus HTTP API (`query`, `query_range`, `series`,
//!   `labels`, `label/<name>/values`, `status/buildinfo`, `metadata`,
//!   `query_exemplars`) with Prometheus's JSON envelope.
//! * [`config`]: [`QueryConfig`] (lookback, timeout, sample and resolution limits).
//!
//! * [`front`]: the query front: identical in-flight queries coalesced,
//!   range queries split by UTC day with the settled parts cached.
//! * [`federation`]: queries across jurisdictions ([`Engine::with_federation`]):
//!   raw reads where the tenant's policy allows them, aggregations pushed
//!   down to aggregates-only jurisdictions and combined exactly
//!   ([`Engine::evaluate_partials`] is the data region's side), and the
//!   geo-fence error for anything that would need raw series from across a
//!   closed border.
//! * [`value`]: the four PromQL value types of a result ([`QueryResult`]).
//! * [`error`]: [`QueryError`], with Prometheus's `errorType` and the HTTP
//!   status of each kind.
//! * `test_util` (feature `test-util`): `MemStore`, an in-memory `ReadStore`,
//!   and the promqltest series notation, for the tests of the engine, the
//!   fuzz targets and the ScyllaDB tier.
//!
//! Module by module, with paths and "when you change X": `query/README.md`.
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))] // libraries log through tracing; only binaries print
#![cfg_attr(test, allow(clippy::disallowed_methods))] // unit tests own their runtimes and threads (clippy.toml)

pub mod config;
pub mod engine;
pub mod error;
pub mod federation;
pub mod front;
pub mod http;
#[cfg(any(test, feature = "test-util"))]
pub mod test_util;
pub mod value;

pub use config::QueryConfig;
pub use engine::{CancelToken, Engine, QueryOptions, TenantQueryStats};
pub use error::{QueryError, Result};
pub use http::{QueryState, router};
pub use value::{InstantSample, QueryResult, RangeSeries, Value};
