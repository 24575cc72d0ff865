//! What code under test logs: the warnings a call emits, as text, for tests
//! that check an operator is told (which file, which line, which limit).

use std::sync::{Arc, Mutex, PoisonError};

/// Runs `f` with a `tracing` subscriber of this thread that writes
/// warnings and errors (no colours) into a buffer; returns `f`'s value and
/// that text. Events of other threads are not caught.
pub fn warnings_of<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let out = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || out.clone())
        .finish();
    let value = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&buf.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned();
    (value, text)
}

#[cfg(test)]
mod tests {
    #[test]
    fn catches_warnings_not_infos() {
        let (v, text) = super::warnings_of(|| {
            tracing::info!("not this");
            tracing::warn!(file = "a.jsonl", "skipping a.jsonl:2");
            7
        });
        assert_eq!(v, 7);
        assert!(text.contains("skipping a.jsonl:2") && !text.contains("not this"), "{text}");
    }
}
