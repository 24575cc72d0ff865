//! The Prometheus data model: labels, label sets and samples.
//!
//! A series is identified by its label set; the metric name is the label
//! [`METRIC_NAME`] (`__name__`). A [`Labels`] is always sorted by label name
//! and holds each name at most once, so two equal label sets compare equal
//! byte for byte and hash to the same [`crate::SeriesId`].

use std::fmt;
use std::sync::Arc;

/// The label that carries the metric name.
pub const METRIC_NAME: &str = "__name__";

/// An immutable, shared string: cloning it is a reference-count increment.
///
/// Label names and values repeat across series (every series of a device
/// carries the same `device`, `farm`, `region` values); holding them as
/// `Str` lets label sets built from one another share the text instead of
/// copying it, which is most of a series' memory in the write path's caches.
#[derive(Clone, Default)]
pub struct Str(Arc<str>);

impl std::hash::Hash for Str {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As `str` hashes, so lookups by `&str` (Borrow<str>) find it.
        (*self.0).hash(state);
    }
}

/// Equality and order are the text's; strings sharing one allocation are
/// equal without reading it.
impl PartialEq for Str {
    fn eq(&self, other: &Str) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || *self.0 == *other.0
    }
}

impl Eq for Str {}

impl PartialOrd for Str {
    fn partial_cmp(&self, other: &Str) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Str {
    fn cmp(&self, other: &Str) -> std::cmp::Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            return std::cmp::Ordering::Equal;
        }
        self.0.cmp(&other.0)
    }
}

impl Str {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when both share one allocation (a cheap equality hint).
    pub fn ptr_eq(&self, other: &Str) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::ops::Deref for Str {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Str {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Str {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Str {
    fn from(s: &str) -> Self {
        Str(Arc::from(s))
    }
}

impl From<String> for Str {
    fn from(s: String) -> Self {
        Str(Arc::from(s))
    }
}

impl From<&String> for Str {
    fn from(s: &String) -> Self {
        Str(Arc::from(s.as_str()))
    }
}

impl From<Box<str>> for Str {
    fn from(s: Box<str>) -> Self {
        Str(Arc::from(s))
    }
}

impl From<std::borrow::Cow<'_, str>> for Str {
    fn from(s: std::borrow::Cow<'_, str>) -> Self {
        Str(Arc::from(s.as_ref()))
    }
}

impl From<Arc<str>> for Str {
    fn from(s: Arc<str>) -> Self {
        Str(s)
    }
}

impl From<&Arc<str>> for Str {
    fn from(s: &Arc<str>) -> Self {
        Str(Arc::clone(s))
    }
}

impl From<&Str> for Str {
    fn from(s: &Str) -> Self {
        s.clone()
    }
}

impl From<Str> for String {
    fn from(s: Str) -> Self {
        s.0.as_ref().to_owned()
    }
}

impl PartialEq<str> for Str {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Str {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for Str {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<Str> for str {
    fn eq(&self, other: &Str) -> bool {
        self == &*other.0
    }
}

impl PartialEq<Str> for &str {
    fn eq(&self, other: &Str) -> bool {
        *self == &*other.0
    }
}

impl PartialEq<Str> for String {
    fn eq(&self, other: &Str) -> bool {
        **self == *other.0
    }
}

/// One label: a name and a value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    /// Label name, e.g. `device`.
    pub name: Str,
    /// Label value, e.g. `dev-0000042`.
    pub value: Str,
}

impl Label {
    /// Builds a label from anything string-like (a [`Str`] is shared, not copied).
    pub fn new(name: impl Into<Str>, value: impl Into<Str>) -> Self {
        Self { name: name.into(), value: value.into() }
    }
}

/// A label set, sorted by name, each name at most once, no empty values.
///
/// Prometheus treats a label with an empty value as absent; [`Labels::new`]
/// drops such labels so `{a=""}` and `{}` are the same series.
///
/// The labels are shared behind an `Arc`: cloning a label set is O(1), so
/// the write path, the series caches and the hot store's index can all hold
/// the same set. Modifying ([`Labels::set`]) copies it.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Arc<[Label]>);

impl Labels {
    /// Builds a canonical label set: sorted by name, empty values dropped.
    /// When a name appears twice the last occurrence wins.
    pub fn new(mut labels: Vec<Label>) -> Self {
        labels.retain(|l| !l.value.is_empty());
        // Stable sort keeps input order among equal names; keep the last.
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out: Vec<Label> = Vec::with_capacity(labels.len());
        for l in labels {
            match out.last_mut() {
                Some(prev) if prev.name == l.name => *prev = l,
                _ => out.push(l),
            }
        }
        Self(out.into())
    }

    /// Builds a label set from `(name, value)` pairs.
    pub fn from_pairs<N: Into<Str>, V: Into<Str>>(pairs: impl IntoIterator<Item = (N, V)>) -> Self {
        Self::new(pairs.into_iter().map(|(n, v)| Label::new(n, v)).collect())
    }

    /// Wraps labels that the caller guarantees are already canonical
    /// (sorted, unique names, no empty values), e.g. decoded from storage
    /// that only ever stores canonical sets. Checked in debug builds.
    pub fn from_sorted(labels: Vec<Label>) -> Self {
        debug_assert!(labels.windows(2).all(|w| w[0].name < w[1].name), "labels not sorted/unique");
        Self(labels.into())
    }

    /// [`Self::from_sorted`] from an iterator of known length: the shared
    /// slice is allocated once, without an intermediate `Vec`.
    pub fn from_sorted_iter<I>(labels: I) -> Self
    where
        I: IntoIterator<Item = Label>,
        I::IntoIter: ExactSizeIterator,
    {
        let labels: Arc<[Label]> = labels.into_iter().collect();
        debug_assert!(labels.windows(2).all(|w| w[0].name < w[1].name), "labels not sorted/unique");
        Self(labels)
    }

    /// The value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.binary_search_by(|l| l.name.as_str().cmp(name)).ok().map(|i| self.0[i].value.as_str())
    }

    /// The metric name (`__name__`), or `""` when the set has none.
    pub fn metric_name(&self) -> &str {
        self.get(METRIC_NAME).unwrap_or("")
    }

    /// Iterates the labels in name order.
    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    /// Number of labels (including `__name__`).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the set has no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The labels as a slice, in name order.
    pub fn as_slice(&self) -> &[Label] {
        &self.0
    }

    /// Returns the sorted labels as a vector (copied when the set is shared).
    pub fn into_vec(self) -> Vec<Label> {
        self.0.to_vec()
    }

    /// Sets (or with an empty value, removes) label `name`.
    pub fn set(&mut self, name: &str, value: &str) {
        let pos = self.0.binary_search_by(|l| l.name.as_str().cmp(name));
        match pos {
            Ok(i) if self.0[i].value == value => return,
            Err(_) if value.is_empty() => return,
            _ => {}
        }
        let mut labels = self.0.to_vec();
        match pos {
            Ok(i) if value.is_empty() => {
                labels.remove(i);
            }
            Ok(i) => labels[i].value = value.into(),
            Err(i) => labels.insert(i, Label::new(name, value)),
        }
        self.0 = labels.into();
    }

    /// True when both sets share the same allocation (a cheap equality hint).
    pub fn ptr_eq(&self, other: &Labels) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The address of the shared label array (never 0): the same for every
    /// clone of one set, so a cheap identity hint between sets alive at the
    /// same time — never proof of equality on its own.
    pub fn addr(&self) -> usize {
        Arc::as_ptr(&self.0).cast::<Label>() as usize
    }

    /// Asks the CPU to start loading the shared set (its reference counts
    /// and first labels), which a clone or a read will touch soon (see
    /// [`crate::prefetch`]).
    #[inline]
    pub fn prefetch(&self) {
        // The counts sit just before the labels, usually on the same line.
        crate::prefetch::prefetch_read(Arc::as_ptr(&self.0).cast::<u8>().wrapping_sub(16));
    }

    /// [`Labels::prefetch`] of every label of the set, for a reader of all
    /// of them (a label is 32 bytes: a set of six spans three cache lines).
    #[inline]
    pub fn prefetch_all(&self) {
        let start = Arc::as_ptr(&self.0).cast::<u8>();
        let bytes = std::mem::size_of_val::<[Label]>(&self.0);
        let mut at = 0;
        while at < bytes {
            crate::prefetch::prefetch_read(start.wrapping_add(at));
            at += 64;
        }
    }

    /// Removes label `name` if present.
    pub fn remove(&mut self, name: &str) {
        self.set(name, "");
    }
}

impl fmt::Display for Labels {
    /// Formats as PromQL does: `metric{a="1", b="2"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.metric_name())?;
        f.write_str("{")?;
        let mut first = true;
        for l in self.0.iter().filter(|l| l.name != METRIC_NAME) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{}={:?}", l.name, l.value)?;
        }
        f.write_str("}")
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// One sample: a timestamp in milliseconds since the Unix epoch and a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Milliseconds since the Unix epoch (UTC).
    pub ts: i64,
    /// The value. NaN with the bit pattern [`STALE_NAN_BITS`] is a staleness marker.
    pub value: f64,
}

/// Prometheus's staleness-marker NaN bit pattern.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

impl Sample {
    /// Builds a sample.
    pub fn new(ts: i64, value: f64) -> Self {
        Self { ts, value }
    }

    /// True when the value is Prometheus's staleness marker.
    pub fn is_stale_marker(&self) -> bool {
        self.value.to_bits() == STALE_NAN_BITS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetching_a_set_leaves_it_as_it_was() {
        let l = Labels::new(vec![Label::new("__name__", "temp"), Label::new("device", "d1"), Label::new("farm", "f")]);
        let c = l.clone();
        l.prefetch();
        l.prefetch_all();
        Labels::new(Vec::new()).prefetch_all();
        assert!(l.ptr_eq(&c));
        assert_eq!(l.to_string(), r#"temp{device="d1", farm="f"}"#);
    }

    #[test]
    fn canonicalises_order_duplicates_and_empty_values() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("c", ""), ("b", "3")]);
        let names: Vec<_> = l.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect();
        assert_eq!(names, vec![("a", "1"), ("b", "3")]);
    }

    #[test]
    fn set_and_remove_keep_order() {
        let mut l = Labels::from_pairs([("__name__", "m"), ("z", "1")]);
        l.set("a", "x");
        l.set("z", "2");
        l.remove("__name__");
        assert_eq!(l, Labels::from_pairs([("a", "x"), ("z", "2")]));
        assert_eq!(l.get("z"), Some("2"));
        assert_eq!(l.metric_name(), "");
    }

    #[test]
    fn displays_like_promql() {
        let l = Labels::from_pairs([("__name__", "up"), ("job", "a\"b")]);
        assert_eq!(l.to_string(), r#"up{job="a\"b"}"#);
    }
}
