//! The query crate's integration tests, one test binary (each binary costs a
//! link in CI):
//!
//! | module | what it checks |
//! |---|---|
//! | [`promql_conformance`] | Prometheus's promqltest scripts over the in-memory store, against `../promql_conformance.baseline` |
//! | [`grafana_dashboard`] | every target of `grafana/dashboards/iot-telemetry.json`, as Grafana sends it, over the real router |
//!
//! `cargo test -p strata-query --test it` runs both; `… --test it promql_conformance -- --nocapture`
//! prints the per-file conformance counts.
#![allow(clippy::disallowed_methods)] // test code owns its runtimes and threads (clippy.toml)

mod grafana_dashboard;
mod promql_conformance;
