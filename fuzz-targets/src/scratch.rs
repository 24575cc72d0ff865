//! What the disk targets share: a scratch directory per thread (in memory
//! under `/dev/shm` when there is one, so an execution costs no disk I/O),
//! a minimal `block_on`, and little-endian field access.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

thread_local! {
    static SCRATCH: tempfile::TempDir = {
        let shm = Path::new("/dev/shm");
        let parent = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
        let dir = tempfile::Builder::new().prefix("strata-fuzz-").tempdir_in(parent);
        dir.or_else(|_| tempfile::tempdir()).expect("a scratch directory for the disk fuzz targets")
    };
}

/// An empty directory `name` under this thread's scratch directory
/// (emptied first if an earlier execution left it).
pub(crate) fn fresh_dir(name: &str) -> PathBuf {
    let dir = SCRATCH.with(|d| d.path().join(name));
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("clearing {}: {e}", dir.display()),
    }
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

/// Writes `bytes` to `path`.
pub(crate) fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `f` to completion on this thread (the ingest log's append is
/// async, but needs no runtime: its writer is a thread of its own).
pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        match f.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park(),
        }
    }
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Writes the CRC-32 of `b[from..to]` at `b[at..at + 4]`, when all are inside `b`.
pub(crate) fn put_crc(b: &mut [u8], from: usize, to: usize, at: usize) {
    if from <= to
        && to <= b.len()
        && at + 4 <= b.len()
        && let Some(range) = b.get(from..to)
    {
        let crc = crc32fast::hash(range).to_le_bytes();
        b[at..at + 4].copy_from_slice(&crc);
    }
}
