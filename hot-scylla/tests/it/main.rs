//! Integration tests of the ScyllaDB hot tier against a real CQL v4 server:
//! kassandra (in memory, single node), built into the tools cache by
//! `scripts/install-test-deps.sh` and started by each test on a free port.
#![allow(clippy::disallowed_methods)] // test code owns its runtimes and threads (clippy.toml)

mod conformance;
mod kassandra;
mod model;
mod store;
