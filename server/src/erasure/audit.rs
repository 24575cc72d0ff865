//! The erasure audit log: one durable JSON line per completed delete
//! request, a sibling of the cross-region audit log ([`crate::audit`]) in
//! the same directory (`[federation] audit_dir`, default `<data_dir>/audit`).
//!
//! ## Format (version 1)
//!
//! File `<audit_dir>/erasure.jsonl`, append-only, fsynced per record, never
//! rewritten. A line that does not parse (a torn last write after a crash)
//! is skipped by readers; the writer starts a new line after it. A record
//! whose `v` is not 1 is skipped too, with a warning naming the file, the
//! line and the version ([`crate::jsonl::known_version`]). Each line:
//!
//! | field | meaning |
//! |---|---|
//! | `v` | format version (1) |
//! | `time_ms` | when the record was written (Unix ms) |
//! | `id` | the delete request id (`del_…`) |
//! | `tenant` | whose data |
//! | `requested_by` | who asked: `admin` (admin API / `strata admin delete`) or `token:<tenant>` (Prometheus API) |
//! | `selectors`, `start`, `end` | what was deleted (series selectors, inclusive ms range) |
//! | `requested_at`, `completed_at` | when it was acknowledged (invisible from then on) and when every tier was purged and verified |
//! | `deadline`, `bound_met` | `requested_at + [erasure] purge_within`, and whether `completed_at` is within it |
//! | `rows_removed`, `bytes_rewritten`, `files_touched` | over every node and tier |
//! | `tiers` | per tier (`log`, `hot`, `cold`): files rewritten and deleted, rows removed, bytes rewritten |
//! | `files` | per node, the files each step named in its report (rewritten segments, Parquet files, released log segments) |
//! | `verification` | the proof scan's counts (all zero) and what was not scanned |
//!
//! The record is written by the node whose status update completed the
//! request; a crash between that update and the append loses the line but
//! not the proof, which stays in the request's status
//! (`GET /admin/v1/deletes/{id}`).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::status::Status;
use super::worker::Request;

/// Format version of a record.
pub const VERSION: u32 = 1;
/// File name in the audit directory.
pub const FILE: &str = "erasure.jsonl";

/// The erasure audit log of a node.
#[derive(Debug)]
pub struct ErasureAudit {
    path: PathBuf,
    lock: parking_lot::Mutex<()>,
}

impl ErasureAudit {
    /// The log in `dir` (created on the first record).
    pub fn new(dir: &Path) -> Self {
        Self { path: dir.join(FILE), lock: parking_lot::Mutex::new(()) }
    }

    /// The record of a completed request.
    pub fn record(req: &Request, status: &Status) -> Value {
        let files: serde_json::Map<String, Value> = status
            .nodes
            .iter()
            .map(|(node, p)| {
                let per_step: serde_json::Map<String, Value> =
                    p.steps.iter().filter_map(|(k, s)| s.detail.get("files").map(|f| (k.clone(), f.clone()))).collect();
                (node.clone(), Value::Object(per_step))
            })
            .collect();
        let tiers: serde_json::Map<String, Value> = status
            .tiers
            .iter()
            .filter(|(k, _)| k.as_str() != "verify")
            .map(|(k, t)| {
                (
                    k.clone(),
                    json!({"state": t.state, "files_rewritten": t.files_rewritten, "files_deleted": t.files_deleted,
                           "rows_removed": t.rows_removed, "bytes_rewritten": t.bytes_rewritten,
                           "finished_at": t.finished_at}),
                )
            })
            .collect();
        json!({
            "v": VERSION,
            "time_ms": crate::registry::now_ms(),
            "id": req.id,
            "tenant": req.tenant.as_str(),
            "requested_by": req.spec.requested_by,
            "selectors": req.spec.selectors,
            "start": req.spec.start,
            "end": req.spec.end,
            "requested_at": req.requested_at,
            "completed_at": status.completed_at,
            "deadline": status.deadline,
            "bound_met": status.bound_met,
            "rows_removed": status.rows_removed,
            "bytes_rewritten": status.bytes_rewritten,
            "files_touched": status.files_touched,
            "tiers": tiers,
            "files": files,
            "verification": status.verification,
        })
    }

    /// Appends `record` and fsyncs it.
    pub fn append(&self, record: &Value) -> anyhow::Result<()> {
        let _guard = self.lock.lock();
        crate::jsonl::append(&self.path, record)
    }

    /// Every record, oldest first, optionally of one tenant (records of
    /// another version than [`VERSION`] skipped, with a warning).
    pub fn list(&self, tenant: Option<&str>) -> anyhow::Result<Vec<Value>> {
        let _guard = self.lock.lock();
        let mut out = Vec::new();
        crate::jsonl::read(&self.path, VERSION..=VERSION, |v| {
            if tenant.is_none_or(|t| v["tenant"] == t) {
                out.push(v);
            }
        })?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn records_are_appended_after_a_torn_line_and_filtered_by_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let log = ErasureAudit::new(dir.path());
        log.append(&json!({"v": 1, "tenant": "farm", "id": "del_1"})).unwrap();
        let mut f = std::fs::OpenOptions::new().append(true).open(dir.path().join(FILE)).unwrap();
        f.write_all(b"{\"v\":1,\"ten").unwrap();
        drop(f);
        log.append(&json!({"v": 1, "tenant": "other", "id": "del_2"})).unwrap();
        assert_eq!(log.list(None).unwrap().len(), 2, "the torn line is skipped");
        let farm = log.list(Some("farm")).unwrap();
        assert_eq!(farm.len(), 1);
        assert_eq!(farm[0]["id"], "del_1");
    }

    #[test]
    fn records_of_another_version_are_skipped_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let log = ErasureAudit::new(dir.path());
        log.append(&json!({"v": 1, "tenant": "farm", "id": "del_1"})).unwrap();
        log.append(&json!({"tenant": "farm", "id": "del_2"})).unwrap();
        let mut all = Vec::new();
        let warned = crate::jsonl::warnings_of(|| all = log.list(None).unwrap());
        assert_eq!(all.iter().map(|r| r["id"].clone()).collect::<Vec<_>>(), [json!("del_1")]);
        let at = format!("{}:2: a record of format version none", dir.path().join(FILE).display());
        assert!(warned.contains(&at), "{warned}");
    }
}
