//! Frozen cold directories hold absolute paths (Iceberg metadata, manifest
//! lists, manifests and the catalog row): a fixture records the directory
//! it was written in (`ROOT`, [`ROOT_LEN`] bytes) and a test copies its
//! `cold/` into a new directory whose path has the same length, with that
//! path replaced in every file. Shared by `fixtures.rs` and `frozen/`.

use std::path::{Path, PathBuf};

/// Length of the directory path a fixture is written in and copied to.
pub(crate) const ROOT_LEN: usize = 64;

/// A new directory under the system temp directory whose path is exactly
/// [`ROOT_LEN`] bytes long.
pub(crate) fn root_dir() -> tempfile::TempDir {
    let base = std::env::temp_dir();
    let prefix = "strata-cold-fixture-";
    let used = base.to_str().unwrap().trim_end_matches('/').len() + 1 + prefix.len();
    assert!(used + 8 <= ROOT_LEN, "temp dir {} too long for the fixture's {ROOT_LEN}-byte root", base.display());
    let dir = tempfile::Builder::new().prefix(prefix).rand_bytes(ROOT_LEN - used).tempdir_in(base).unwrap();
    assert_eq!(dir.path().to_str().unwrap().len(), ROOT_LEN);
    dir
}

/// Every file under `dir`, sorted.
pub(crate) fn files(dir: &Path) -> Vec<PathBuf> {
    strata_test_support::fs::files_under(dir)
}

/// `bytes` with every `from` replaced by `to` (same length), and how many.
pub(crate) fn replace_all(bytes: &[u8], from: &[u8], to: &[u8]) -> (Vec<u8>, usize) {
    assert_eq!(from.len(), to.len());
    let (mut out, mut i, mut n) = (Vec::with_capacity(bytes.len()), 0, 0);
    while i < bytes.len() {
        if bytes[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
            n += 1;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    (out, n)
}

/// The root a fixture directory (holding `ROOT` and `cold/`) was written in.
pub(crate) fn recorded_root(fixture: &Path) -> String {
    let recorded = std::fs::read_to_string(fixture.join("ROOT")).unwrap().trim_end().to_owned();
    assert_eq!(recorded.len(), ROOT_LEN, "{}/ROOT", fixture.display());
    recorded
}

/// Copies `<fixture>/cold` into a new root ([`root_dir`]), replacing the
/// recorded root in every file (checks that some file held it); returns
/// the new root (`root/cold` is the cold directory to open) and the
/// recorded one.
pub(crate) fn copy_relocated(fixture: &Path) -> (tempfile::TempDir, String) {
    let recorded = recorded_root(fixture);
    let root = root_dir();
    let to = root.path().to_str().unwrap();
    let from_dir = fixture.join("cold");
    let mut replaced = 0;
    for f in files(&from_dir) {
        let (bytes, n) = replace_all(&std::fs::read(&f).unwrap(), recorded.as_bytes(), to.as_bytes());
        replaced += n;
        let dest = root.path().join("cold").join(f.strip_prefix(&from_dir).unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(dest, bytes).unwrap();
    }
    assert!(replaced > 0, "{}: no file held the recorded root {recorded}", fixture.display());
    (root, recorded)
}

/// Replaces `<fixture>/cold` with `<root>/cold` and records `root` in
/// `<fixture>/ROOT` (the generators' last step).
pub(crate) fn store_relocatable(root: &Path, fixture: &Path) {
    let _ = std::fs::remove_dir_all(fixture.join("cold"));
    let from_dir = root.join("cold");
    for f in files(&from_dir) {
        let dest = fixture.join("cold").join(f.strip_prefix(&from_dir).unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&f, dest).unwrap();
    }
    std::fs::write(fixture.join("ROOT"), format!("{}\n", root.display())).unwrap();
}
