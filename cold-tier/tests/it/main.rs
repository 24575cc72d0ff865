//! Integration tests of the cold tier through its public API: write, commit,
//! idempotent re-commit, pruned reads, and reading the table with PyIceberg.
#![allow(clippy::disallowed_methods)] // test code owns its runtimes and threads (clippy.toml)

mod erase;
mod fixtures;
mod frozen;
mod indexed_read;
mod interop;
mod maintenance;
mod postgres;
mod relocate;
mod roundtrip;
mod size;
mod util;
