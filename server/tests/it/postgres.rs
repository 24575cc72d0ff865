//! The tenant registry on a real PostgreSQL server (Debian's `postgresql`
//! package, installed by scripts/install-test-deps.sh): two nodes sharing one
//! registry database see each other's tenant, token and limit changes within
//! a second, and nothing is kept in the nodes' SQLite files.

use crate::harness::*;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A throwaway PostgreSQL cluster on a free loopback port.
struct Postgres {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

/// The directory of PostgreSQL's server programs: `STRATA_TEST_PG_BIN`, or
/// the newest `/usr/lib/postgresql/<version>/bin` (Debian's layout).
fn pg_bin() -> PathBuf {
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

/// PostgreSQL refuses to run as root: run its programs as the `postgres`
/// user then (setpriv execs, so the child is the server itself).
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

impl Postgres {
    fn start() -> Postgres {
        let bin = pg_bin();
        let dir = tempfile::Builder::new().prefix("strata-pg").tempdir().unwrap();
        let data = dir.path().join("data");
        let chown = |p: &Path| {
            let _ = Command::new("chown").args(["-R", "postgres:postgres"]).arg(p).status();
        };
        chown(dir.path());
        let out = pg_command(&bin, "initdb")
            .args(["-A", "trust", "-U", "strata", "-E", "UTF8", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .expect("run initdb");
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
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
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "postgres did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        pg
    }

    fn url(&self) -> String {
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

const ADMIN: &str = "admin-token-for-the-pg-test";

async fn admin_call(
    c: &reqwest::Client,
    s: &Server,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let r = c.request(method.parse().unwrap(), s.url(path)).bearer_auth(ADMIN).json(&body).send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(status.is_success(), "{method} {path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

async fn write(c: &reqwest::Client, s: &Server, token: &str, body: &str) -> (u16, String) {
    let r = c
        .post(s.url("/api/v2/write?precision=ms"))
        .header("Authorization", format!("Token {token}"))
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Polls `f` until it returns true or `within` passes.
async fn eventually<F, Fut>(within: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_a_postgresql_registry() {
    let pg = Postgres::start();
    let url = pg.url();
    let env = [("STRATA_REGISTRY__URL", url.as_str()), ("STRATA_ADMIN__TOKEN", ADMIN), ("STRATA_REGION", "eu")];
    let (dir_a, dir_b) = (data_dir(), data_dir());
    let a = Server::start(dir_a.path(), &env);
    let b = Server::start(dir_b.path(), &env);
    assert!(a.stderr.lock().unwrap().contains("postgres://strata:***@127.0.0.1"), "startup names the registry");
    let c = client();
    let t = now_ms() / 1000 * 1000 - 60_000;

    admin_call(&c, &a, "POST", "/admin/v1/tenants", serde_json::json!({"id": "acme"})).await;
    let issued =
        admin_call(&c, &a, "POST", "/admin/v1/tenants/acme/tokens", serde_json::json!({"access": "read_write"})).await;
    let token = issued["token"].as_str().unwrap().to_owned();

    // Node B learns the tenant and its token from the shared database.
    let line = format!("env,device_id=d1 temp=21.5 {t}");
    assert!(
        eventually(Duration::from_secs(3), || async { write(&c, &b, &token, &line).await.0 == 204 }).await,
        "node B accepts node A's token within a second or so"
    );
    let listed = admin_call(&c, &b, "GET", "/admin/v1/tenants", serde_json::Value::Null).await;
    assert!(listed.to_string().contains("acme"), "{listed}");

    // A limit changed through node A applies on node B.
    admin_call(&c, &a, "PATCH", "/admin/v1/tenants/acme", serde_json::json!({"limits": {"max_labels_per_series": 2}}))
        .await;
    let wide = format!("env,device_id=d1,farm=f1,zone=z temp=1 {t}");
    assert!(
        eventually(Duration::from_secs(3), || async {
            let (status, body) = write(&c, &b, &token, &wide).await;
            status == 400 && body.contains("max_labels_per_series")
        })
        .await,
        "node B enforces the limit set through node A"
    );

    // Revoked through node B, refused by node A.
    let token_id = issued["id"].as_str().unwrap().to_owned();
    admin_call(&c, &b, "DELETE", &format!("/admin/v1/tenants/acme/tokens/{token_id}"), serde_json::Value::Null).await;
    assert!(
        eventually(Duration::from_secs(3), || async { write(&c, &a, &token, &line).await.0 == 401 }).await,
        "node A refuses the token revoked through node B"
    );

    // Nothing lives in the nodes' own files: a restarted node still knows the tenant.
    assert!(!dir_a.path().join("registry.db").exists() && !dir_b.path().join("registry.db").exists());
    a.terminate();
    let a = Server::start(dir_a.path(), &env);
    let got = admin_call(&c, &a, "GET", "/admin/v1/tenants/acme", serde_json::Value::Null).await;
    assert_eq!(got["limits"]["max_labels_per_series"], 2, "{got}");
    b.terminate();
    a.terminate();
}

#[path = "erasure_postgres.rs"]
mod erasure_postgres;
