//! Integration tests of the hot → cold roll-up through the public APIs of
//! the hot store, the cold tier and the compactor.

mod crash;
mod maintain;
mod rollup;
mod s3;
mod shared;
mod util;
