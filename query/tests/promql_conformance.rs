//! Runs the PromQL conformance suite (`promql_conformance/suite.rs`:
//! Prometheus's promqltest scripts from `../shared/promql-testdata` or
//! `$STRATA_PROMQL_TESTDATA`) against the engine over the in-memory store.
#![allow(clippy::disallowed_methods)] // test code owns its runtimes and threads (clippy.toml)

#[path = "promql_conformance/suite.rs"]
mod suite;

#[test]
fn promql_conformance() {
    suite::run_suite(&|| Box::new(strata_query::test_util::MemStore::new()));
}
