//! Append-only JSON-lines files: the admin and erasure audit logs.
//!
//! One JSON value per line. [`append`] writes a whole line and fsyncs it
//! (and the directory when it created the file) before returning, so an
//! acknowledged record survives a crash. A crash mid-write leaves a torn
//! last line: the next [`append`] starts on a fresh line instead of gluing
//! onto it, and [`read`] skips every line that is not one JSON value, with a
//! warning naming the file and the line ([`parse_line`]).
//! Callers serialize their own appends (each log holds a lock).
//!
//! Every record carries its format version in `v`. [`read`] skips a record
//! whose `v` is not one its caller reads (a newer node wrote it, or the
//! line is damaged) as it skips a line that does not parse, and logs a
//! warning naming the file, the line and the version ([`known_version`],
//! also used by [`crate::audit`]'s reader): the rest of the log stays
//! readable, and the record is not passed on as if its fields meant what
//! they mean in a known version.

use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::ops::RangeInclusive;
use std::path::Path;

use serde_json::Value;

/// Appends `record` as one line of `path` (created with its directory if
/// missing) and fsyncs it.
pub fn append(path: &Path, record: &Value) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    let len = file.metadata()?.len();
    let mut line = Vec::new();
    if len > 0 && !ends_with_newline(path) {
        line.push(b'\n');
    }
    serde_json::to_writer(&mut line, record)?;
    line.push(b'\n');
    file.write_all(&line)?;
    file.sync_data()?;
    if len == 0
        && let Some(dir) = path.parent()
    {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Calls `each` with every well-formed record of `path` whose `v` is in
/// `versions`, oldest first (none when the file does not exist). A line
/// that is not JSON ([`parse_line`]) and a record of another version
/// ([`known_version`]) are skipped with a warning.
pub fn read(path: &Path, versions: RangeInclusive<u32>, mut each: impl FnMut(Value)) -> anyhow::Result<()> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        if let Some(v) = parse_line(path, i + 1, &line?)
            && known_version(path, i + 1, &v, &versions)
        {
            each(v);
        }
    }
    Ok(())
}

/// Line `line` (from 1) of `path` as one JSON value, or `None` with a
/// warning naming the file and the line: a torn line a crash left (the
/// next append starts on a line of its own) or damage. Either way the
/// record is lost to readers, and an operator should know which.
pub fn parse_line(path: &Path, line: usize, text: &str) -> Option<Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(
                file = %path.display(), line,
                "skipping {}:{line}: not one JSON value (a line torn by a crash during an append, or damage): {e}",
                path.display()
            );
            None
        }
    }
}

/// Whether `record`, line `line` (from 1) of `path`, has a format version
/// `v` in `versions`. When not, logs a warning naming the file, the line
/// and the version found (`none` without a `v`) and the caller skips the
/// record.
pub fn known_version(path: &Path, line: usize, record: &Value, versions: &RangeInclusive<u32>) -> bool {
    let v = record.get("v");
    let known = v.and_then(Value::as_u64).and_then(|v| u32::try_from(v).ok()).is_some_and(|v| versions.contains(&v));
    if !known {
        let found = v.map_or_else(|| "none".to_owned(), Value::to_string);
        tracing::warn!(
            file = %path.display(), line, version = %found,
            "skipping {}:{line}: a record of format version {found}, this node reads {}..={}",
            path.display(), versions.start(), versions.end()
        );
    }
    known
}

fn ends_with_newline(path: &Path) -> bool {
    let Ok(mut f) = std::fs::File::open(path) else { return true };
    if f.seek(SeekFrom::End(-1)).is_err() {
        return true;
    }
    let mut b = [0u8; 1];
    f.read_exact(&mut b).map(|_| b[0] == b'\n').unwrap_or(true)
}

/// The warnings `f` logs (tests of the readers that warn).
#[cfg(test)]
pub(crate) fn warnings_of(f: impl FnOnce()) -> String {
    strata_test_support::logs::warnings_of(f).1
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_after_a_torn_line_start_on_their_own_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("log.jsonl");
        append(&path, &json!({"v": 1, "n": 1})).unwrap();
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"v": 1, "n": 2, "torn"#).unwrap();
        append(&path, &json!({"v": 1, "n": 3})).unwrap();
        let mut seen = Vec::new();
        let warned = warnings_of(|| read(&path, 1..=1, |v| seen.push(v["n"].as_i64().unwrap())).unwrap());
        assert_eq!(seen, [1, 3]);
        assert!(warned.contains(&format!("skipping {}:2: not one JSON value", path.display())), "{warned}");
        assert!(!warned.contains(&format!("{}:1", path.display())), "{warned}");
        let mut none = 0;
        read(&dir.path().join("missing.jsonl"), 1..=1, |_| none += 1).unwrap();
        assert_eq!(none, 0);
    }

    #[test]
    fn records_of_unknown_versions_are_skipped_with_a_warning_naming_file_line_and_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        for r in [json!({"v": 1, "n": 1}), json!({"v": 2, "n": 2}), json!({"n": 3}), json!({"v": "1", "n": 4})] {
            append(&path, &r).unwrap();
        }
        append(&path, &json!({"v": 1, "n": 5})).unwrap();
        let mut seen = Vec::new();
        let warned = warnings_of(|| read(&path, 1..=1, |v| seen.push(v["n"].as_i64().unwrap())).unwrap());
        assert_eq!(seen, [1, 5]);
        let at = |line: usize| format!("{}:{line}", path.display());
        assert!(
            warned.contains(&format!("{}: a record of format version 2, this node reads 1..=1", at(2))),
            "{warned}"
        );
        assert!(warned.contains(&format!("{}: a record of format version none", at(3))), "{warned}");
        assert!(warned.contains(&format!("{}: a record of format version \"1\"", at(4))), "{warned}");
        assert!(!warned.contains(&at(1)) && !warned.contains(&at(5)), "{warned}");
        // A caller reading versions 1 and 2 takes the second record too.
        let mut both = 0;
        read(&path, 1..=2, |_| both += 1).unwrap();
        assert_eq!(both, 3);
    }
}
