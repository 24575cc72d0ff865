//! Integration tests of the hot store through its public API:
//! a model-based property test and crash-recovery scenarios.

mod crash;
mod model;
mod size;
mod util;
