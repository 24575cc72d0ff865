//! Integration tests of the shared schemas through their public API.
#![allow(clippy::disallowed_methods)] // test code owns its runtimes and threads (clippy.toml)

mod fixtures;
