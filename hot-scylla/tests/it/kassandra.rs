//! Starts the kassandra CQL server (`$STRATA_KASSANDRA_BIN`, or
//! `$STRATA_TOOLS_DIR/kassandra-0.14.0/bin/kassandra`, `~/.cache/strata-tools`
//! by default) on a free loopback port and connects the tier to it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use strata_hot_scylla::{ConsistencyLevel, HotTtls, ScyllaConfig, ScyllaHot};
use strata_test_support::port::free_port;

fn bin() -> PathBuf {
    if let Some(p) = std::env::var_os("STRATA_KASSANDRA_BIN") {
        return PathBuf::from(p);
    }
    let tools = std::env::var_os("STRATA_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/strata-tools"));
    let p = tools.join("kassandra-0.14.0/bin/kassandra");
    assert!(
        p.is_file(),
        "the kassandra CQL server is missing at {}: run `bash scripts/install-test-deps.sh` (or set STRATA_KASSANDRA_BIN)",
        p.display()
    );
    p
}

/// A running kassandra; killed on drop.
pub(crate) struct Kassandra {
    child: Child,
    pub(crate) addr: String,
}

impl Kassandra {
    pub(crate) fn start() -> Kassandra {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut child = Command::new(bin())
            .args(["--addr", &addr])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kassandra");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("kassandra output");
        assert!(line.starts_with("kassandra listening on"), "kassandra did not start: {line:?}");
        Kassandra { child, addr }
    }

    /// The tier's configuration for this server and `keyspace`.
    pub(crate) fn config(&self, keyspace: &str, bucket: Duration) -> ScyllaConfig {
        ScyllaConfig {
            nodes: vec![self.addr.clone()],
            keyspace: keyspace.to_owned(),
            replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}".to_owned(),
            consistency: ConsistencyLevel::One,
            bucket,
            request_timeout: Duration::from_secs(30),
            log_id: String::new(),
        }
    }

    /// Connects the tier to `keyspace` (created if new).
    pub(crate) fn connect(&self, keyspace: &str, bucket: Duration) -> ScyllaHot {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        ScyllaHot::connect(self.config(keyspace, bucket), "test-region", HotTtls::default()).expect("connect")
    }
}

impl Drop for Kassandra {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
