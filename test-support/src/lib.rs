//! # strata-test-support — throwaway servers for the tests
//!
//! The pieces every crate's integration tests used to copy: a port for a
//! server that starts later, the piped-output collectors, a throwaway
//! PostgreSQL cluster, a tansu Kafka broker (in-memory engine), an `s3s-fs`
//! S3 server, a kassandra CQL server and a Prometheus. Each server is a real process on
//! loopback, started synchronously (the tests have no runtime of their own at that point) and
//! stopped on drop. A missing program fails the test with the command that
//! installs it: tests never skip.
//!
//! ```text
//!  fs::files_under(dir)        every file under a directory, sorted (fs::files_ending, fs::copy_tree)
//!  logs::warnings_of(f)         the warnings `f` logs, as text (a tracing subscriber of this thread)
//!  port::free_port()             one sequence per test process, below the ephemeral range
//!  process::capture_stderr()     a child's stderr lines into an Arc<Mutex<String>>
//!  process::capture_output()     a child's stderr and stdout lines into one Arc<Mutex<String>>
//!  process::wait_listening()     poll a loopback port until it accepts (or panic at the deadline)
//!  process::wait_child_listening() the same for a child server; panics with its status if it exits first
//!  postgres::Postgres::start()   initdb + postgres on a free port, trust auth, user `strata`
//!  tansu::Broker::start()        tansu broker, memory engine; tansu::binary() for a custom start
//!  s3s::S3sFs::start(root)       s3s-fs serving `root` with fixed test credentials
//!  kassandra::Kassandra::start() the kassandra CQL server (ScyllaDB's stand-in) on a free port
//!  prometheus::Prometheus::start(dir, config) a real Prometheus with the test's configuration
//! ```
//!
//! Programs: PostgreSQL from Debian's `postgresql` (`STRATA_TEST_PG_BIN`
//! overrides), tansu, s3s-fs and kassandra from `scripts/install-test-deps.sh`
//! under `$STRATA_TOOLS_DIR` (default `~/.cache/strata-tools`;
//! `STRATA_TANSU_BIN`, `STRATA_S3S_FS`, `STRATA_KASSANDRA_BIN` override).
//!
//! This crate is a dev-dependency only (`.ci/depcheck.py` checks it): it
//! panics on failure, as test code does.
#![warn(missing_docs)]

pub mod fs;
pub mod kassandra;
pub mod logs;
pub mod port;
pub mod postgres;
pub mod process;
pub mod prometheus;
pub mod s3s;
pub mod tansu;

use std::path::PathBuf;

/// Where `scripts/install-test-deps.sh` installs test tools:
/// `$STRATA_TOOLS_DIR`, else `~/.cache/strata-tools`.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("STRATA_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/strata-tools"))
}
