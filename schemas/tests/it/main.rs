//! Integration tests of the shared schemas through their public API.

mod fixtures;
