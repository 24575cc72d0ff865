//! A throwaway PostgreSQL cluster (Debian's `postgresql`, installed by
//! `scripts/install-test-deps.sh`): `initdb` into a temporary directory,
//! `postgres` on a free loopback port with trust authentication for the
//! user `strata`, `fsync=off`; stopped (SIGINT, fast shutdown) on drop.
//!
//! PostgreSQL refuses to run as root: as root its programs run as the
//! `postgres` user through `setpriv` (which execs, so the child is the
//! server itself).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::port::free_port;
use crate::process::wait_listening;

/// A running throwaway PostgreSQL cluster.
#[derive(Debug)]
pub struct Postgres {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Postgres {
    /// Creates and starts a cluster; panics (with the install command) when
    /// PostgreSQL's programs are missing or it does not start within 30 s.
    pub fn start() -> Postgres {
        let bin = pg_bin();
        let dir = tempfile::Builder::new().prefix("strata-pg").tempdir().expect("a temporary directory");
        let data = dir.path().join("data");
        let _ = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status();
        let out = pg_command(&bin, "initdb")
            .args(["-A", "trust", "-U", "strata", "-E", "UTF8", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .expect("run initdb");
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        let port = free_port();
        let child = pg_command(&bin, "postgres")
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-k"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start postgres");
        let pg = Postgres { child, port, _dir: dir };
        wait_listening(port, "postgres", Duration::from_secs(30));
        pg
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://strata@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://strata@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT: fast shutdown, so no shared memory is left behind.
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The directory of PostgreSQL's server programs: `STRATA_TEST_PG_BIN`, or
/// the newest `/usr/lib/postgresql/<version>/bin` (Debian's layout).
pub fn pg_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("STRATA_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let e = e.ok()?;
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p).expect(
        "PostgreSQL server programs not found under /usr/lib/postgresql/*/bin: \
         run scripts/install-test-deps.sh (installs Debian's postgresql) or set STRATA_TEST_PG_BIN",
    )
}

/// `program` of `bin`, as the `postgres` user when this process is root.
fn pg_command(bin: &Path, program: &str) -> Command {
    let is_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if is_root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=postgres", "--regid=postgres", "--init-groups", "--"]).arg(bin.join(program));
        c
    } else {
        Command::new(bin.join(program))
    }
}
