//! Integration tests of the hot store through its public API:
//! model-based property tests (store, erasure) and crash-recovery scenarios.

mod crash;
mod erase;
mod fixtures;
mod model;
mod size;
mod util;
