//! Integration tests of the ingest crate through its public API.
#![allow(clippy::disallowed_methods)] // test code owns its runtimes and threads (clippy.toml)

mod fixtures;
