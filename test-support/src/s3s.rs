//! An S3-compatible server for the object-store path: `s3s-fs` (built by
//! `scripts/install-s3s.sh`) serving a directory on a free loopback port
//! with fixed test credentials; killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::port::free_port;
use crate::process::wait_listening;

/// The access key every [`S3sFs`] accepts.
pub const ACCESS_KEY: &str = "strata-access";
/// The secret key every [`S3sFs`] accepts.
pub const SECRET_KEY: &str = "strata-secret-key-for-tests";

/// The s3s-fs binary: `$STRATA_S3S_FS`, else
/// `<tools dir>/s3s-fs-0.14.1/bin/s3s-fs` ([`crate::tools_dir`]).
pub fn binary() -> PathBuf {
    std::env::var_os("STRATA_S3S_FS")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::tools_dir().join("s3s-fs-0.14.1/bin/s3s-fs"))
}

/// A running s3s-fs.
#[derive(Debug)]
pub struct S3sFs {
    child: Child,
    port: u16,
    root: PathBuf,
}

impl S3sFs {
    /// Serves `root` (each subdirectory is a bucket; `buckets` are created);
    /// panics with the install command when the binary is missing, or when
    /// it does not listen within 20 s.
    pub fn start(root: &Path, buckets: &[&str]) -> S3sFs {
        let bin = binary();
        assert!(
            bin.exists(),
            "s3s-fs not found at {} — run `bash scripts/install-s3s.sh` (or set STRATA_S3S_FS)",
            bin.display()
        );
        for b in buckets {
            std::fs::create_dir_all(root.join(b)).expect("create the bucket directory");
        }
        let port = free_port();
        let child = Command::new(&bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let server = S3sFs { child, port, root: root.to_path_buf() };
        wait_listening(port, "s3s-fs", Duration::from_secs(20));
        server
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The directory it serves.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
