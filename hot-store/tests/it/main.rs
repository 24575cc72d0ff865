//! Integration tests of the hot store through its public API:
//! model-based property tests (store, erasure) and crash-recovery scenarios.
#![allow(clippy::disallowed_methods)] // test code owns its runtimes and threads (clippy.toml)

mod crash;
mod erase;
mod fixtures;
mod model;
mod size;
mod util;
