//! Integration tests of the ingest crate through its public API.

mod fixtures;
