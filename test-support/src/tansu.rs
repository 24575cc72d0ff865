//! A tansu Kafka-protocol broker (tansu 0.6.0, built by
//! `scripts/install-test-deps.sh`; its in-memory storage engine unless
//! asked for another), on a free loopback port; killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::port::free_port;
use crate::process::{capture_stderr, wait_listening};

/// The tansu binary: `$STRATA_TANSU_BIN`, else
/// `<tools dir>/tansu-0.6.0/bin/tansu` ([`crate::tools_dir`]). Panics with
/// the install command when it is missing.
pub fn binary() -> PathBuf {
    let path = std::env::var_os("STRATA_TANSU_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::tools_dir().join("tansu-0.6.0/bin/tansu"));
    assert!(
        path.is_file(),
        "the tansu broker is missing at {}: run `bash scripts/install-test-deps.sh` (or set STRATA_TANSU_BIN)",
        path.display()
    );
    path
}

/// A running tansu broker.
#[derive(Debug)]
pub struct Broker {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
}

impl Broker {
    /// Starts a broker of cluster `cluster_id` (memory engine, `RUST_LOG=warn`,
    /// stderr collected); panics when it does not listen within 30 s.
    pub fn start(cluster_id: &str) -> Broker {
        Broker::start_with(cluster_id, "memory://tansu/")
    }

    /// [`Broker::start`] on another storage engine, e.g. `slatedb://memory`
    /// (the only engine of tansu 0.6.0 whose DeleteRecords works; the
    /// project's build has it, see scripts/tansu).
    pub fn start_with(cluster_id: &str, storage_engine: &str) -> Broker {
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let mut child = Command::new(binary())
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", storage_engine, "--cluster-id", cluster_id])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tansu");
        let log = capture_stderr(&mut child);
        let broker = Broker { child, port, log };
        wait_listening(port, "tansu", Duration::from_secs(30));
        broker
    }

    /// The broker's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>` (a bootstrap server).
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's process id (to stop or freeze it with a signal).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the broker wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Kills the broker (SIGKILL) and reaps it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // A broker a test froze (SIGSTOP) is resumed first so the kill is reaped at once.
        let _ = Command::new("kill").args(["-CONT", &self.child.id().to_string()]).status();
        self.kill9();
    }
}
