//! The Iceberg SQL catalog on a real PostgreSQL server (Debian's
//! `postgresql`, installed by scripts/install-test-deps.sh): appends, the
//! `delete`/`replace` snapshots committed by our own compare-and-swap
//! (`$n` placeholders on PostgreSQL), expiry, orphan removal and purge.
//! Fails (never skips) when PostgreSQL is missing.

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_cold_tier::{ColdTier, ColdTierConfig, CommitSource};

use crate::maintenance::{snapshot_of, three_days};
use crate::util::{runtime, tenant};

/// A throwaway PostgreSQL cluster on a free loopback port.
struct Postgres {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

/// PostgreSQL's server programs: `STRATA_TEST_PG_BIN`, or the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian's layout).
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

/// PostgreSQL refuses to run as root: run its programs as `postgres` then.
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
        let dir = tempfile::Builder::new().prefix("strata-cold-pg").tempdir().unwrap();
        let data = dir.path().join("data");
        let _ = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status();
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
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT: fast shutdown, no shared memory left behind.
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

#[test]
fn maintenance_commits_through_a_postgresql_catalog() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let config = ColdTierConfig {
        enabled: true,
        catalog_url: format!("postgres://strata@127.0.0.1:{}/postgres", pg.port),
        ..ColdTierConfig::default()
    };
    let cold = Arc::new(rt.block_on(ColdTier::open(&config, dir.path())).unwrap());
    let t = tenant("acme.eu");
    for (src, data) in three_days(&t) {
        rt.block_on(cold.append(&t, &data, &CommitSource { source: src, segments: String::new() })).unwrap();
    }
    let live = rt.block_on(cold.live_files(&t)).unwrap();
    let day0 = live[0].day;
    let gone: Vec<String> = live.iter().filter(|f| f.day == day0).map(|f| f.path.clone()).collect();
    rt.block_on(cold.delete_files(&t, &gone, HashMap::new())).unwrap();
    let rest: Vec<String> = live.iter().filter(|f| f.day != day0).map(|f| f.path.clone()).collect();
    let merged = rt.block_on(cold.read_files(&t, &rest)).unwrap();
    let written = rt.block_on(cold.write_files(&t, &merged, "merge-pg")).unwrap();
    rt.block_on(cold.replace_files(&t, &rest, written, HashMap::new())).unwrap();
    let after = snapshot_of(&rt, &cold, &t);
    assert_eq!(after.values().map(BTreeMap::len).sum::<usize>(), 80, "day 0 deleted, days 1 and 2 merged");
    let later = strata_schemas::time::now_millis() + 2000;
    let expired = rt.block_on(cold.expire_snapshots(&t, later, Duration::ZERO, &|_| false)).unwrap();
    assert_eq!(expired.retained, 1);
    rt.block_on(cold.remove_orphan_files(&t, later, Duration::ZERO)).unwrap();
    // A second handle (another node) sees the same table through PostgreSQL.
    let other = Arc::new(rt.block_on(ColdTier::open(&config, dir.path())).unwrap());
    assert_eq!(snapshot_of(&rt, &other, &t), after);
    rt.block_on(other.purge(&t)).unwrap();
    assert!(rt.block_on(cold.load_table(&t)).unwrap().is_none());
}

/// An erase through a PostgreSQL catalog (its compare-and-swap with `$n`
/// placeholders, iceberg's expiry commit): the fleet without the covered
/// rows, `verify_erased` all zero, and a second node sees the same.
#[test]
fn erase_commits_through_a_postgresql_catalog() {
    use strata_cold_tier::{EraseOptions, EraseRequest};
    use strata_schemas::Matcher;
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let config = ColdTierConfig {
        enabled: true,
        catalog_url: format!("postgres://strata@127.0.0.1:{}/postgres", pg.port),
        ..ColdTierConfig::default()
    };
    let cold = Arc::new(rt.block_on(ColdTier::open(&config, dir.path())).unwrap());
    let t = tenant("acme.eu");
    let data = crate::erase::fleet(&t, 8, 2, 600_000);
    crate::erase::roll(&rt, &cold, &t, &data, 6 * 3_600_000);
    let req = EraseRequest {
        selectors: vec![vec![Matcher::equal("device", "dev-02")]],
        start: i64::MIN,
        end: data[0].samples[150].ts,
    };
    let opts = EraseOptions { orphan_grace: Duration::ZERO };
    let report = rt.block_on(cold.erase_with(&t, &req, &opts)).unwrap();
    assert_eq!(report.rows_removed, 151, "{report:?}");
    assert!(report.snapshots_expired > 0 && report.objects_deleted > 0, "{report:?}");
    let v = rt.block_on(cold.verify_erased(&t, &req)).unwrap();
    assert_eq!((v.rows_found, v.rollup_rows_found, v.series_rows_found, v.unreferenced_objects), (0, 0, 0, 0), "{v:?}");
    let other = Arc::new(rt.block_on(ColdTier::open(&config, dir.path())).unwrap());
    let seen = snapshot_of(&rt, &other, &t);
    let victim = seen.iter().find(|(l, _)| l.get("device") == Some("dev-02")).unwrap().1;
    assert_eq!(victim.len(), 288 - 151);
    assert_eq!(seen.values().map(BTreeMap::len).sum::<usize>(), 8 * 288 - 151);
}
