//! Warnings a [`ReadStore`](crate::ReadStore) raises while a query reads it.
//!
//! A store that answers with part of the data — a cluster peer that did not
//! answer within its timeout, say — must not fail the query, and must not
//! let it look whole either: the answer carries a Prometheus `warnings`
//! entry. The read contract returns data, not annotations, so the store
//! raises the warning on the side: the query engine runs each evaluation
//! (and each metadata request) inside [`collect`] on its own thread, and a
//! store calls [`raise`] from within the read, on the same thread.
//!
//! ```text
//!  engine thread ── collect(|| eval) ──► store.select ──► raise("peer …")
//!        ◄────────── (value, ["peer …"]) ── answer's "warnings"
//! ```
//!
//! Outside a collection (a compaction reading the store, a test), `raise`
//! does nothing; the store still logs and counts what went wrong.
//!
//! A query may refuse partial answers (Thanos's `partial_response=false`):
//! the engine then collects with [`collect_with`]`(false, …)`, and a store
//! that would raise a warning for missing data asks [`partial_response`]
//! first and fails the read instead (`ReadError::Unavailable`, 503).

use std::cell::{Cell, RefCell};

thread_local! {
    static COLLECTING: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
    static PARTIAL_RESPONSE: Cell<bool> = const { Cell::new(true) };
}

/// As [`collect`], with the query's `partial_response` setting in force
/// while `f` runs (see [`partial_response`]); the previous setting is put
/// back afterwards (also when `f` panics).
pub fn collect_with<R>(partial_response: bool, f: impl FnOnce() -> R) -> (R, Vec<String>) {
    /// Puts the previous setting back.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            PARTIAL_RESPONSE.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(PARTIAL_RESPONSE.with(|c| c.replace(partial_response)));
    collect(f)
}

/// Whether the query reading on this thread accepts a partial answer (a
/// warning for missing data) rather than an error: false only inside
/// [`collect_with`]`(false, …)`; true elsewhere (the default of the
/// Prometheus-API parameter).
pub fn partial_response() -> bool {
    PARTIAL_RESPONSE.with(Cell::get)
}

/// Runs `f`, returning its result and every distinct warning raised with
/// [`raise`] on this thread while it ran, in the order first raised.
/// Collections nest: an inner one takes the warnings raised inside it, and
/// the outer one continues afterwards (also when `f` panics).
pub fn collect<R>(f: impl FnOnce() -> R) -> (R, Vec<String>) {
    /// Puts the outer collection back when the inner one ends.
    struct Restore(Option<Option<Vec<String>>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(outer) = self.0.take() {
                COLLECTING.with(|c| *c.borrow_mut() = outer);
            }
        }
    }
    let outer = COLLECTING.with(|c| c.borrow_mut().replace(Vec::new()));
    let mut restore = Restore(Some(outer));
    let value = f();
    let outer = restore.0.take().unwrap_or_default();
    let mine = COLLECTING.with(|c| std::mem::replace(&mut *c.borrow_mut(), outer)).unwrap_or_default();
    (value, mine)
}

/// Raises `message` for the query reading on this thread, if one is
/// collecting (see [`collect`]); a repeated message is kept once.
pub fn raise(message: String) {
    COLLECTING.with(|c| {
        if let Some(list) = c.borrow_mut().as_mut()
            && !list.contains(&message)
        {
            list.push(message);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_distinct_warnings_in_order_and_only_inside() {
        raise("outside".into());
        let ((), w) = collect(|| {
            raise("b".into());
            raise("a".into());
            raise("b".into());
        });
        assert_eq!(w, ["b", "a"]);
        let ((), w) = collect(|| {});
        assert!(w.is_empty(), "nothing leaks from an earlier collection or from outside one");
    }

    #[test]
    fn nested_collections_keep_their_own_and_the_outer_one_continues() {
        let (inner, outer) = collect(|| {
            raise("outer 1".into());
            let ((), inner) = collect(|| raise("inner".into()));
            raise("outer 2".into());
            inner
        });
        assert_eq!(inner, ["inner"]);
        assert_eq!(outer, ["outer 1", "outer 2"]);
    }

    #[test]
    fn a_panic_inside_restores_the_outer_collection() {
        let ((), outer) = collect(|| {
            let caught = std::panic::catch_unwind(|| collect::<()>(|| panic!("boom")));
            assert!(caught.is_err());
            raise("after".into());
        });
        assert_eq!(outer, ["after"]);
        let ((), w) = collect(|| {});
        assert!(w.is_empty());
    }

    #[test]
    fn partial_response_holds_inside_collect_with_only() {
        assert!(partial_response());
        let (inner, _) = collect_with(false, || {
            let nested = collect(partial_response).0;
            (partial_response(), nested, collect_with(true, partial_response).0, partial_response())
        });
        assert_eq!(inner, (false, false, true, false), "nested collections keep the setting; collect_with sets it");
        assert!(partial_response(), "restored afterwards");
        let caught = std::panic::catch_unwind(|| collect_with(false, || panic!("boom")));
        assert!(caught.is_err());
        assert!(partial_response(), "restored after a panic");
    }

    #[test]
    fn threads_collect_separately() {
        let ((), w) = collect(|| {
            std::thread::spawn(|| raise("other thread".into())).join().unwrap();
            raise("this thread".into());
        });
        assert_eq!(w, ["this thread"]);
    }
}
