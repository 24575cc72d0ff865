//! Label matchers: `=`, `!=`, `=~` and `!~`, with Prometheus semantics.
//!
//! Regexes are fully anchored (`^(?:re)$`), and a missing label matches as
//! the empty string, so `{a=""}` selects series without `a` and `{a!~".+"}`
//! does too.

use regex::Regex;
use std::fmt;
use std::sync::Arc;

/// How a matcher compares a label value.
#[derive(Debug, Clone)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~` (anchored regex; shared, see [`anchored_regex`])
    Regex(Arc<Regex>),
    /// `!~` (anchored regex; shared, see [`anchored_regex`])
    NotRegex(Arc<Regex>),
}

/// One label matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Comparison.
    pub op: MatchOp,
    /// The value or regex source as written.
    pub value: String,
}

/// A regex that does not compile.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid regex {regex:?} in matcher for label {label:?}: {reason}")]
pub struct InvalidMatcher {
    /// Label name.
    pub label: String,
    /// The regex source.
    pub regex: String,
    /// The compiler's message.
    pub reason: String,
}

impl Matcher {
    /// `name = value`
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self { name: name.into(), op: MatchOp::Equal, value: value.into() }
    }

    /// `name != value`
    pub fn not_equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self { name: name.into(), op: MatchOp::NotEqual, value: value.into() }
    }

    /// `name =~ re` (anchored).
    pub fn regex(name: impl Into<String>, re: impl Into<String>) -> Result<Self, InvalidMatcher> {
        let (name, value) = (name.into(), re.into());
        let op = MatchOp::Regex(compile(&name, &value)?);
        Ok(Self { name, op, value })
    }

    /// `name !~ re` (anchored).
    pub fn not_regex(name: impl Into<String>, re: impl Into<String>) -> Result<Self, InvalidMatcher> {
        let (name, value) = (name.into(), re.into());
        let op = MatchOp::NotRegex(compile(&name, &value)?);
        Ok(Self { name, op, value })
    }

    /// True when a label value (`""` for a missing label) satisfies the matcher.
    pub fn matches(&self, value: &str) -> bool {
        match &self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Regex(re) => re.is_match(value),
            MatchOp::NotRegex(re) => !re.is_match(value),
        }
    }

    /// True when the matcher matches the empty string (and therefore
    /// series that lack the label).
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// True when every label set matching `matchers` matches all of them
    /// against `labels`.
    pub fn matches_all(matchers: &[Matcher], labels: &crate::Labels) -> bool {
        matchers.iter().all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
    }
}

/// Compiles `re` anchored at both ends (PromQL semantics: `^(?s:re)$`).
/// Compiled expressions are kept in a small process-wide cache: a dashboard
/// sends the same few regexes again and again, and compiling one costs far
/// more than evaluating a one-device query.
///
/// The cache hands out the *same* `Regex` behind an `Arc`, not a clone: a
/// cloned `Regex` gets a pool of search caches of its own, so its first
/// search allocates one (3–6 µs for `farm-(.*)`, more than the search;
/// measured against 0.03–0.11 µs on the shared value), which every query
/// would pay again.
pub fn anchored_regex(re: &str) -> Result<Arc<Regex>, regex::Error> {
    const MAX_CACHED: usize = 512;
    static CACHE: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, Arc<Regex>>>> =
        std::sync::LazyLock::new(Default::default);
    if let Some(r) = CACHE.lock().ok().and_then(|c| c.get(re).cloned()) {
        return Ok(r);
    }
    let compiled = Arc::new(Regex::new(&format!("^(?s:{re})$"))?);
    if let Ok(mut c) = CACHE.lock() {
        if c.len() >= MAX_CACHED {
            c.clear();
        }
        c.insert(re.to_owned(), Arc::clone(&compiled));
    }
    Ok(compiled)
}

fn compile(label: &str, re: &str) -> Result<Arc<Regex>, InvalidMatcher> {
    anchored_regex(re).map_err(|e| InvalidMatcher {
        label: label.to_owned(),
        regex: re.to_owned(),
        reason: e.to_string(),
    })
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex(_) => "=~",
            MatchOp::NotRegex(_) => "!~",
        };
        write!(f, "{}{}{:?}", self.name, op, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Labels;

    #[test]
    fn regex_is_anchored() {
        let m = Matcher::regex("a", "fo+").unwrap();
        assert!(m.matches("foo"));
        assert!(!m.matches("xfoo"));
        assert!(!m.matches("foox"));
    }

    #[test]
    fn missing_label_matches_as_empty() {
        let l = Labels::from_pairs([("__name__", "m")]);
        assert!(Matcher::matches_all(&[Matcher::equal("a", "")], &l));
        assert!(Matcher::matches_all(&[Matcher::not_regex("a", ".+").unwrap()], &l));
        assert!(!Matcher::matches_all(&[Matcher::regex("a", ".+").unwrap()], &l));
        assert!(Matcher::matches_all(&[Matcher::not_equal("a", "x")], &l));
    }

    #[test]
    fn invalid_regex_names_label() {
        let e = Matcher::regex("farm", "(").unwrap_err();
        assert!(e.to_string().contains("farm"), "{e}");
    }
}

#[cfg(test)]
mod regex_cache_tests {
    use super::anchored_regex;

    #[test]
    fn anchored_regexes_are_cached_and_anchored() {
        let a = anchored_regex("farm-(.*)").unwrap();
        let b = anchored_regex("farm-(.*)").unwrap();
        assert_eq!(a.as_str(), b.as_str());
        assert!(std::sync::Arc::ptr_eq(&a, &b), "the cached value itself, not a clone with a pool of its own");
        assert!(a.is_match("farm-1") && !a.is_match("xfarm-1"));
        assert!(anchored_regex("(").is_err(), "invalid patterns are errors, not cached");
        for i in 0..2000 {
            assert!(anchored_regex(&format!("x{i}")).unwrap().is_match(&format!("x{i}")));
        }
    }
}
