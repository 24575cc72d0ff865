//! Integration tests of the hot → cold roll-up through the public APIs of
//! the hot store, the cold tier and the compactor.
#![allow(clippy::disallowed_methods)] // test code owns its runtimes and threads (clippy.toml)

mod crash;
mod group;
mod maintain;
mod rollup;
mod s3;
mod shared;
mod source;
mod util;
