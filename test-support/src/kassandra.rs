//! The kassandra CQL server (kassandra 0.14.0, an in-memory
//! Cassandra-protocol server, served by `scripts/kassandra-server` and built
//! by `scripts/install-test-deps.sh`) on a free loopback port; killed on drop.
//! It stands in for ScyllaDB in the tests of the ScyllaDB hot tier.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::port::free_port;

/// Where the kassandra binary is looked for: `$STRATA_KASSANDRA_BIN`, else
/// `<tools dir>/kassandra-0.14.0/bin/kassandra` ([`crate::tools_dir`]).
pub fn binary_path() -> PathBuf {
    std::env::var_os("STRATA_KASSANDRA_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::tools_dir().join("kassandra-0.14.0/bin/kassandra"))
}

/// The kassandra binary ([`binary_path`]). Panics with the install command
/// when it is missing.
pub fn binary() -> PathBuf {
    let path = binary_path();
    assert!(
        path.is_file(),
        "the kassandra CQL server is missing at {}: run `bash scripts/install-test-deps.sh` (or set STRATA_KASSANDRA_BIN)",
        path.display()
    );
    path
}

/// A running kassandra.
#[derive(Debug)]
pub struct Kassandra {
    child: Child,
    addr: String,
}

impl Kassandra {
    /// Starts a server on a free port and waits for its
    /// `kassandra listening on …` line; panics when it prints anything else.
    pub fn start() -> Kassandra {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut child = Command::new(binary())
            .args(["--addr", &addr])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kassandra");
        let mut line = String::new();
        let read = BufReader::new(child.stdout.take().expect("stdout piped")).read_line(&mut line);
        let server = Kassandra { child, addr };
        read.expect("kassandra's first output line");
        assert!(line.starts_with("kassandra listening on"), "kassandra did not start: {line:?}");
        server
    }

    /// `127.0.0.1:<port>` (a contact point).
    pub fn addr(&self) -> &str {
        &self.addr
    }
}

impl Drop for Kassandra {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
