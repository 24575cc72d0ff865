//! A real Prometheus (Debian's `prometheus` package on `PATH`, installed by
//! `scripts/install-test-deps.sh`) on a free loopback port, with the
//! configuration a test writes for it (scrape targets, `remote_write`);
//! stderr collected, killed on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::port::free_port;
use crate::process::capture_stderr;

/// The `prometheus` program; panics with the install command when
/// `prometheus --version` does not run.
pub fn binary() -> &'static str {
    match Command::new("prometheus").arg("--version").output() {
        Ok(out) if out.status.success() => "prometheus",
        Ok(out) => panic!("`prometheus --version` failed ({}); run scripts/install-test-deps.sh", out.status),
        Err(e) => panic!(
            "this test needs the `prometheus` binary on PATH ({e}); run scripts/install-test-deps.sh to install it"
        ),
    }
}

/// A running Prometheus.
#[derive(Debug)]
pub struct Prometheus {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
}

impl Prometheus {
    /// Starts Prometheus on a free port with the configuration `config(port)`
    /// (written to `dir/prometheus.yml`; its TSDB goes to `dir/tsdb`).
    /// Does not wait: a test waits for what it expects Prometheus to do.
    pub fn start(dir: &Path, config: impl FnOnce(u16) -> String) -> Prometheus {
        let port = free_port();
        let file = dir.join("prometheus.yml");
        std::fs::write(&file, config(port)).expect("write prometheus.yml");
        let mut child = Command::new(binary())
            .arg(format!("--config.file={}", file.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start prometheus");
        let log = capture_stderr(&mut child);
        Prometheus { child, port, log }
    }

    /// Its web port on 127.0.0.1 (the `instance` of its self-scrape).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What it wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
