//! Append-only JSON-lines files: the admin and erasure audit logs.
//!
//! One JSON value per line. [`append`] writes a whole line and fsyncs it
//! (and the directory when it created the file) before returning, so an
//! acknowledged record survives a crash. A crash mid-write leaves a torn
//! last line: the next [`append`] starts on a fresh line instead of gluing
//! onto it, and [`read`] skips every line that is not one JSON value.
//! Callers serialize their own appends (each log holds a lock).

use std::io::{BufRead, Read, Seek, SeekFrom, Write};
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

/// Calls `each` with every well-formed record of `path`, oldest first
/// (none when the file does not exist).
pub fn read(path: &Path, mut each: impl FnMut(Value)) -> anyhow::Result<()> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for line in std::io::BufReader::new(file).lines() {
        if let Ok(v) = serde_json::from_str::<Value>(&line?) {
            each(v);
        }
    }
    Ok(())
}

fn ends_with_newline(path: &Path) -> bool {
    let Ok(mut f) = std::fs::File::open(path) else { return true };
    if f.seek(SeekFrom::End(-1)).is_err() {
        return true;
    }
    let mut b = [0u8; 1];
    f.read_exact(&mut b).map(|_| b[0] == b'\n').unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_after_a_torn_line_start_on_their_own_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("log.jsonl");
        append(&path, &json!({"n": 1})).unwrap();
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"n": 2, "torn"#).unwrap();
        append(&path, &json!({"n": 3})).unwrap();
        let mut seen = Vec::new();
        read(&path, |v| seen.push(v["n"].as_i64().unwrap())).unwrap();
        assert_eq!(seen, [1, 3]);
        let mut none = 0;
        read(&dir.path().join("missing.jsonl"), |_| none += 1).unwrap();
        assert_eq!(none, 0);
    }
}
