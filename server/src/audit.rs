//! The audit log of cross-region requests: append-only, durable, one JSON
//! object per line.
//!
//! Both sides of every inter-region request write a record: the asking
//! region when it sends (`side: "sent"`), the data region when it answers or
//! refuses (`side: "received"`). A record is fsynced before the request it
//! describes proceeds (asking side) or before the answer leaves (data side),
//! so nothing crosses a border unrecorded.
//!
//! ## Format (version 1)
//!
//! Files `<audit_dir>/audit-<n>.jsonl`, `n` from 1, a new file past 64 MiB;
//! never rewritten. Each line:
//!
//! | field | meaning |
//! |---|---|
//! | `v` | format version (1) |
//! | `time_ms` | when (Unix ms) |
//! | `side` | `sent` (asking region) or `received` (data region) |
//! | `tenant` | tenant id |
//! | `asking_region`, `data_region` | who asked, who holds the data |
//! | `query_sha256` | first 16 hex digits of SHA-256 of `query` |
//! | `query` | the PromQL text (cut to 4 KiB), or the metadata request |
//! | `crossed` | `raw_series`, `aggregate_series`, `metadata` or `series_count` |
//! | `series`, `bytes` | series and response bytes that crossed (0 when refused) |
//! | `decision` | `allowed` or `refused` |
//! | `rule` | the policy rule that decided (`eu: aggregates`, `unknown region`, ...) |
//!
//! A line that does not parse (a torn last write after a crash) is skipped
//! by readers; the writer starts a new line after it. A record whose `v` is
//! not 1 is skipped too, with a warning naming the file, the line and the
//! version ([`crate::jsonl::known_version`]).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// Format version of a record.
pub const VERSION: u32 = 1;
const ROTATE_BYTES: u64 = 64 << 20;
const MAX_QUERY_TEXT: usize = 4096;

/// One cross-region request, as one side saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Format version.
    pub v: u32,
    /// Unix ms.
    pub time_ms: i64,
    /// `sent` or `received`.
    pub side: String,
    /// Tenant id.
    pub tenant: String,
    /// Region that asked.
    pub asking_region: String,
    /// Region holding the data.
    pub data_region: String,
    /// First 16 hex digits of SHA-256 of the query text.
    pub query_sha256: String,
    /// Query text (cut to 4 KiB).
    pub query: String,
    /// What crossed: `raw_series`, `aggregate_series`, `metadata`, `series_count`.
    pub crossed: String,
    /// Series that crossed.
    pub series: u64,
    /// Bytes that crossed.
    pub bytes: u64,
    /// `allowed` or `refused`.
    pub decision: String,
    /// The rule that decided.
    pub rule: String,
}

impl Record {
    /// A record of `query`, hashing and cutting its text.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        side: &str,
        tenant: &str,
        asking_region: &str,
        data_region: &str,
        query: &str,
        crossed: &str,
        decision: &str,
        rule: String,
    ) -> Self {
        let hash = Sha256::digest(query.as_bytes());
        let query_sha256 = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let mut cut = MAX_QUERY_TEXT.min(query.len());
        while !query.is_char_boundary(cut) {
            cut -= 1;
        }
        Self {
            v: VERSION,
            time_ms: strata_schemas::time::now_millis(),
            side: side.to_owned(),
            tenant: tenant.to_owned(),
            asking_region: asking_region.to_owned(),
            data_region: data_region.to_owned(),
            query_sha256,
            query: query[..cut].to_owned(),
            crossed: crossed.to_owned(),
            series: 0,
            bytes: 0,
            decision: decision.to_owned(),
            rule,
        }
    }
}

/// A filter over records (every field optional).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filter {
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Only requests that involve this region (asking or data).
    pub region: Option<String>,
    /// `allowed` or `refused`.
    pub decision: Option<String>,
    /// `sent` or `received`.
    pub side: Option<String>,
    /// Only records at or after this Unix ms.
    pub since_ms: Option<i64>,
    /// At most this many (the newest; default 1000).
    pub limit: Option<usize>,
}

impl Filter {
    fn matches(&self, r: &Record) -> bool {
        self.tenant.as_ref().is_none_or(|t| *t == r.tenant)
            && self.region.as_ref().is_none_or(|x| *x == r.asking_region || *x == r.data_region)
            && self.decision.as_ref().is_none_or(|d| *d == r.decision)
            && self.side.as_ref().is_none_or(|s| *s == r.side)
            && self.since_ms.is_none_or(|t| r.time_ms >= t)
    }
}

/// The audit log of one node.
#[derive(Debug)]
pub struct AuditLog {
    dir: PathBuf,
    file: parking_lot::Mutex<(File, u32, u64)>,
}

impl AuditLog {
    /// Opens (creating) the log in `dir`, appending to its newest file.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let n = files(dir)?.last().map_or(1, |(n, _)| *n);
        let (file, len) = open_file(dir, n)?;
        Ok(Self { dir: dir.to_owned(), file: parking_lot::Mutex::new((file, n, len)) })
    }

    /// Appends `record` and fsyncs it.
    pub fn append(&self, record: &Record) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        let mut guard = self.file.lock();
        if guard.2 >= ROTATE_BYTES {
            let n = guard.1 + 1;
            let (file, len) = open_file(&self.dir, n)?;
            *guard = (file, n, len);
        }
        // A torn line from a crash before this one: start on a fresh line.
        if guard.2 > 0 && !ends_with_newline(&self.dir, guard.1) {
            guard.0.write_all(b"\n")?;
            guard.2 += 1;
        }
        guard.0.write_all(&line)?;
        guard.0.sync_data()?;
        guard.2 += line.len() as u64;
        Ok(())
    }

    /// Appends `record`, logging (not failing) when the disk refuses: the
    /// caller refuses the request in that case (see [`AuditLog::must_append`]).
    pub fn must_append(&self, record: &Record) -> Result<(), String> {
        self.append(record).map_err(|e| {
            tracing::error!(error = %format!("{e:#}"), dir = %self.dir.display(), "audit log append failed");
            format!("the audit log in {} could not record the request: {e:#}", self.dir.display())
        })
    }

    /// Records matching `filter`, oldest first (at most `filter.limit`, the
    /// newest; records of another version than [`VERSION`] skipped, with a
    /// warning).
    pub fn list(&self, filter: &Filter) -> anyhow::Result<Vec<Record>> {
        let limit = filter.limit.unwrap_or(1000).max(1);
        let mut out = std::collections::VecDeque::new();
        let _guard = self.file.lock();
        for (_, path) in files(&self.dir)? {
            for (i, line) in std::io::BufReader::new(File::open(&path)?).lines().enumerate() {
                let Some(v) = crate::jsonl::parse_line(&path, i + 1, &line?) else { continue };
                if !crate::jsonl::known_version(&path, i + 1, &v, &(VERSION..=VERSION)) {
                    continue;
                }
                let r = match serde_json::from_value::<Record>(v) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(
                            file = %path.display(), line = i + 1,
                            "skipping {}:{}: a version {VERSION} record whose fields do not parse: {e}",
                            path.display(), i + 1
                        );
                        continue;
                    }
                };
                if filter.matches(&r) {
                    if out.len() == limit {
                        out.pop_front();
                    }
                    out.push_back(r);
                }
            }
        }
        Ok(out.into())
    }
}

fn ends_with_newline(dir: &Path, n: u32) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = File::open(file_name(dir, n)) else { return true };
    if f.seek(SeekFrom::End(-1)).is_err() {
        return true;
    }
    let mut b = [0u8; 1];
    f.read_exact(&mut b).map(|_| b[0] == b'\n').unwrap_or(true)
}

fn file_name(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("audit-{n}.jsonl"))
}

fn open_file(dir: &Path, n: u32) -> anyhow::Result<(File, u64)> {
    let path = file_name(dir, n);
    let file = OpenOptions::new().create(true).append(true).open(&path)?;
    let len = file.metadata()?.len();
    if len == 0
        && let Ok(d) = File::open(dir)
    {
        // The new file's directory entry is durable too.
        let _ = d.sync_all();
    }
    Ok((file, len))
}

/// `(n, path)` of the log's files, in order.
fn files(dir: &Path) -> anyhow::Result<Vec<(u32, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(n) = name.to_str().and_then(|s| s.strip_prefix("audit-")?.strip_suffix(".jsonl")?.parse().ok()) else {
            continue;
        };
        out.push((n, entry.path()));
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(tenant: &str, decision: &str) -> Record {
        Record::new(
            "received",
            tenant,
            "us-east",
            "eu-central",
            "sum(x)",
            "aggregate_series",
            decision,
            "eu: aggregates".into(),
        )
    }

    #[test]
    fn records_survive_reopen_and_filter() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        log.append(&rec("acme", "allowed")).unwrap();
        log.append(&rec("other", "refused")).unwrap();
        drop(log);
        let log = AuditLog::open(dir.path()).unwrap();
        log.append(&rec("acme", "refused")).unwrap();
        let all = log.list(&Filter::default()).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].query_sha256.len(), 16);
        let acme = log.list(&Filter { tenant: Some("acme".into()), ..Filter::default() }).unwrap();
        assert_eq!(acme.len(), 2);
        let refused =
            log.list(&Filter { decision: Some("refused".into()), limit: Some(1), ..Filter::default() }).unwrap();
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].tenant, "acme", "the newest match is kept");
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_the_next_record_starts_a_new_line() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        log.append(&rec("acme", "allowed")).unwrap();
        drop(log);
        let path = file_name(dir.path(), 1);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"v\":1,\"time_ms\":12").unwrap();
        drop(f);
        let log = AuditLog::open(dir.path()).unwrap();
        log.append(&rec("next", "allowed")).unwrap();
        let all = log.list(&Filter::default()).unwrap();
        assert_eq!(all.iter().map(|r| r.tenant.as_str()).collect::<Vec<_>>(), ["acme", "next"]);
    }

    #[test]
    fn records_of_another_version_are_skipped_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        log.append(&rec("acme", "allowed")).unwrap();
        log.append(&Record { v: 2, ..rec("newer", "allowed") }).unwrap();
        log.append(&rec("next", "allowed")).unwrap();
        let mut all = Vec::new();
        let warned = crate::jsonl::warnings_of(|| all = log.list(&Filter::default()).unwrap());
        assert_eq!(all.iter().map(|r| r.tenant.as_str()).collect::<Vec<_>>(), ["acme", "next"]);
        let at = format!("{}:2: a record of format version 2", file_name(dir.path(), 1).display());
        assert!(warned.contains(&at), "{warned}");
    }

    #[test]
    fn long_queries_are_cut_on_a_char_boundary() {
        let q = "é".repeat(5000);
        let r = Record::new("sent", "t", "a", "b", &q, "metadata", "allowed", String::new());
        assert!(r.query.len() <= MAX_QUERY_TEXT && r.query.chars().all(|c| c == 'é'));
    }
}
