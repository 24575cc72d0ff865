//! Starts the kassandra CQL server (`strata_test_support::kassandra`:
//! `$STRATA_KASSANDRA_BIN`, or `$STRATA_TOOLS_DIR/kassandra-0.14.0/bin/kassandra`,
//! `~/.cache/strata-tools` by default) on a free loopback port and connects
//! the tier to it.

use std::time::Duration;

use strata_hot_scylla::{ConsistencyLevel, HotTtls, ScyllaConfig, ScyllaHot};

/// A running kassandra (`strata_test_support::kassandra`); killed on drop.
pub(crate) struct Kassandra {
    server: strata_test_support::kassandra::Kassandra,
}

impl Kassandra {
    pub(crate) fn start() -> Kassandra {
        Kassandra { server: strata_test_support::kassandra::Kassandra::start() }
    }

    /// The tier's configuration for this server and `keyspace`.
    pub(crate) fn config(&self, keyspace: &str, bucket: Duration) -> ScyllaConfig {
        ScyllaConfig {
            nodes: vec![self.server.addr().to_owned()],
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
