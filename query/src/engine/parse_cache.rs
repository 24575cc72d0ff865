//! A bounded cache of parsed query texts.
//!
//! Dashboards send the same few queries again and again, and every query is
//! parsed twice on its way: by the query front (to see which series and
//! time range it reads, for coalescing and the cache) and by the engine. A
//! parse (promql-parser's lexer and LR parser, then its checks of the tree)
//! took ~8 % of the server's CPU in a loop of one-device instant queries
//! (perf, 2026-12-06), each of which is answered from memory in a few
//! microseconds more; a clone of the cached tree is a few allocations.
//!
//! Only successful parses are kept (an error is computed again, with its
//! message); a text longer than [`MAX_QUERY_BYTES`] is parsed every time.
//! When [`MAX_ENTRIES`] texts are held the cache is emptied, as the regex
//! cache of `strata_schemas::matcher` is: cheap, rare for a dashboard's
//! working set, and never wrong, since a text always parses to the same tree.

use crate::error::Result;
use promql_parser::parser::Expr;
use std::collections::HashMap;

/// Most query texts held at once.
pub(crate) const MAX_ENTRIES: usize = 1024;

/// Longest query text held.
pub(crate) const MAX_QUERY_BYTES: usize = 4096;

/// Parsed trees by query text (see the module doc).
#[derive(Default)]
pub(crate) struct ParseCache {
    trees: parking_lot::Mutex<HashMap<Box<str>, Expr>>,
}

impl std::fmt::Debug for ParseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParseCache").field("entries", &self.trees.lock().len()).finish()
    }
}

impl ParseCache {
    /// The tree of `query`: a clone of the cached one, or `parse(query)`'s
    /// (kept when it succeeded).
    pub(crate) fn get_or_parse(&self, query: &str, parse: impl FnOnce(&str) -> Result<Expr>) -> Result<Expr> {
        if query.len() > MAX_QUERY_BYTES {
            return parse(query);
        }
        if let Some(tree) = self.trees.lock().get(query) {
            return Ok(tree.clone());
        }
        let tree = parse(query)?;
        let mut trees = self.trees.lock();
        if trees.len() >= MAX_ENTRIES {
            trees.clear();
        }
        trees.insert(query.into(), tree.clone());
        Ok(tree)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.trees.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn parse_counted<'a>(calls: &'a Cell<usize>) -> impl Fn(&str) -> Result<Expr> + 'a {
        move |q| {
            calls.set(calls.get() + 1);
            crate::engine::parse(q, 0)
        }
    }

    #[test]
    fn a_text_is_parsed_once_and_its_tree_comes_back_equal() {
        let cache = ParseCache::default();
        let calls = Cell::new(0);
        let q = r#"avg by (farm) (rate(m{farm=~"f-.*"}[5m])) > 2"#;
        let first = cache.get_or_parse(q, parse_counted(&calls)).unwrap();
        let second = cache.get_or_parse(q, parse_counted(&calls)).unwrap();
        assert_eq!(calls.get(), 1);
        assert_eq!(first.to_string(), second.to_string());
        assert_eq!(second.to_string(), crate::engine::parse(q, 0).unwrap().to_string());
    }

    #[test]
    fn errors_are_not_kept_and_long_texts_are_parsed_every_time() {
        let cache = ParseCache::default();
        let calls = Cell::new(0);
        for _ in 0..2 {
            let e = cache.get_or_parse("sum(", parse_counted(&calls)).unwrap_err();
            assert!(e.to_string().contains("invalid parameter \"query\""), "{e}");
        }
        assert_eq!(calls.get(), 2);
        let long = format!("m{{l=\"{}\"}}", "x".repeat(MAX_QUERY_BYTES));
        cache.get_or_parse(&long, parse_counted(&calls)).unwrap();
        cache.get_or_parse(&long, parse_counted(&calls)).unwrap();
        assert_eq!(calls.get(), 4);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn the_cache_holds_at_most_max_entries_texts() {
        let cache = ParseCache::default();
        let calls = Cell::new(0);
        for i in 0..MAX_ENTRIES + 10 {
            cache.get_or_parse(&format!("m{i}"), parse_counted(&calls)).unwrap();
            assert!(cache.len() <= MAX_ENTRIES);
        }
        assert_eq!(calls.get(), MAX_ENTRIES + 10);
        // The newest texts are still held.
        cache.get_or_parse(&format!("m{}", MAX_ENTRIES + 9), parse_counted(&calls)).unwrap();
        assert_eq!(calls.get(), MAX_ENTRIES + 10);
    }
}
