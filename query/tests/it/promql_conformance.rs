//! Runs the PromQL conformance suite (`promql_conformance/suite.rs`:
//! Prometheus's promqltest scripts from `../shared/promql-testdata` or
//! `$STRATA_PROMQL_TESTDATA`) against the engine over the in-memory store.
//! The per-file floors stay in `query/tests/promql_conformance.baseline`
//! (the suite reads them from there, also when another crate runs it).

mod suite;

#[test]
fn promql_conformance() {
    suite::run_suite(&|| Box::new(strata_query::test_util::MemStore::new()));
}
