//! Files in a test's directories: every file under a directory (the tests
//! look for segments, Parquet objects, bytes that must be gone), and a copy
//! of a directory tree.

use std::path::{Path, PathBuf};

/// Every regular file under `dir`, at any depth, sorted; none when `dir`
/// does not exist (a table or bucket not created yet). Entries that vanish
/// while the walk runs (a server compacting beside the test) are skipped.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The files under `dir` whose name ends with `suffix` (`.parquet`,
/// `.metadata.json`, `.seg`), sorted.
pub fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    files_under(dir).into_iter().filter(|p| p.to_string_lossy().ends_with(suffix)).collect()
}

/// Copies the tree under `from` to `to` (created), files byte for byte.
///
/// # Panics
///
/// On any I/O error, naming the path.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("creating {}: {e}", to.display()));
    for e in std::fs::read_dir(from).unwrap_or_else(|e| panic!("reading {}: {e}", from.display())) {
        let e = e.unwrap_or_else(|e| panic!("reading {}: {e}", from.display()));
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target)
                .unwrap_or_else(|err| panic!("copying {} to {}: {err}", e.path().display(), target.display()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_every_depth_sorted_and_copies_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("a");
        std::fs::create_dir_all(root.join("b/c")).unwrap();
        std::fs::write(root.join("z.parquet"), b"1").unwrap();
        std::fs::write(root.join("b/c/y.parquet"), b"22").unwrap();
        std::fs::write(root.join("b/x.json"), b"333").unwrap();
        let all = files_under(&root);
        let rel: Vec<_> = all.iter().map(|p| p.strip_prefix(&root).unwrap().to_str().unwrap().to_owned()).collect();
        assert_eq!(rel, ["b/c/y.parquet", "b/x.json", "z.parquet"]);
        assert_eq!(files_ending(&root, ".parquet").len(), 2);
        assert!(files_under(&dir.path().join("missing")).is_empty());
        let copy = dir.path().join("copy");
        copy_tree(&root, &copy);
        assert_eq!(std::fs::read(copy.join("b/x.json")).unwrap(), b"333");
        assert_eq!(files_under(&copy).len(), 3);
    }
}
