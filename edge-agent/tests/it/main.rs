//! End-to-end tests of the `strata-edge` binary (none yet).
