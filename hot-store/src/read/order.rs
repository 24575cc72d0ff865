//! Putting a read's series in label order, cheaply.
//!
//! A fleet query's candidates share their first labels (`__name__`, the
//! same label names) and differ a few bytes further on (`device`'s value),
//! so a plain sort by [`Labels`] compares the same shared prefix again in
//! every one of its `n log n` comparisons. Here each candidate gets a
//! 64-bit key first: the 8 bytes of its label text that follow the prefix
//! every candidate shares, and the sort compares keys, falling back to the
//! label sets only when two keys are equal.
//!
//! The label text of a set is `name 0x00 value 0x00` per label, in order.
//! When no value holds a 0x00 byte (names cannot), that text orders label
//! sets exactly as [`Labels`]' `Ord` does (a name or value that is a prefix
//! of another ends with the 0x00 the other has a larger byte in place of;
//! a set that is a prefix of another has the shorter text). Two texts that
//! share their first `p` bytes order like their next 8 bytes (zero-padded)
//! whenever those differ, so "key, then labels" is the order of "labels".
//! A value with a 0x00 byte turns the keys off (a plain sort).

use std::cmp::Ordering;

use strata_schemas::Labels;

/// Sorts `v` by the label sets `labels` gives, then by `tie` — the order of
/// `v.sort_unstable_by(|a, b| labels(a).cmp(labels(b)).then_with(|| tie(a, b)))`.
pub(crate) fn sort_by_labels<T>(v: &mut Vec<T>, labels: impl Fn(&T) -> &Labels, tie: impl Fn(&T, &T) -> Ordering) {
    let full = |a: &T, b: &T| labels(a).cmp(labels(b)).then_with(|| tie(a, b));
    let Some(keys) = prefix_keys(v.iter().map(&labels)) else {
        v.sort_unstable_by(full);
        return;
    };
    let mut keyed: Vec<(u64, T)> = keys.into_iter().zip(v.drain(..)).collect();
    keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| full(&a.1, &b.1)));
    v.extend(keyed.into_iter().map(|(_, t)| t));
}

/// Each set's key (see the module doc), or `None` when keys cannot help
/// (fewer than 3 sets) or would be wrong (a value holds a 0x00 byte).
fn prefix_keys<'a>(sets: impl Iterator<Item = &'a Labels> + Clone) -> Option<Vec<u64>> {
    let mut all = sets.clone();
    let first = all.next()?;
    let mut shared = usize::MAX;
    let mut n = 1usize;
    for l in all {
        if l.iter().any(|x| x.value.as_bytes().contains(&0)) {
            return None;
        }
        shared = shared.min(common_text(first, l, shared));
        n += 1;
    }
    if n < 3 || first.iter().any(|x| x.value.as_bytes().contains(&0)) {
        return None;
    }
    Some(sets.map(|l| key_at(l, shared)).collect())
}

/// How many leading bytes the label texts of `a` and `b` share, counting
/// no further than `limit`.
fn common_text(a: &Labels, b: &Labels, limit: usize) -> usize {
    let mut n = 0usize;
    for (x, y) in a.iter().zip(b.iter()) {
        for (p, q) in [(&x.name, &y.name), (&x.value, &y.value)] {
            if n >= limit {
                return limit;
            }
            if p == q {
                n += p.len() + 1;
            } else {
                let same = p.as_bytes().iter().zip(q.as_bytes()).take_while(|(u, v)| u == v).count();
                return (n + same).min(limit);
            }
        }
    }
    // One set is the other's first labels: the shorter text is shared whole.
    n.min(limit)
}

/// The 8 bytes of `l`'s label text from byte `from` on, zero-padded, as a
/// big-endian number (so numbers order like the bytes).
fn key_at(l: &Labels, from: usize) -> u64 {
    let mut key = [0u8; 8];
    let mut filled = 0usize;
    let mut skip = from;
    for x in l.iter() {
        for part in [x.name.as_bytes(), x.value.as_bytes()] {
            // `part` then its 0x00 separator.
            if skip > part.len() {
                skip -= part.len() + 1;
                continue;
            }
            let bytes = part.get(skip..).unwrap_or_default();
            skip = 0;
            let take = bytes.len().min(key.len() - filled);
            if let (Some(dst), Some(src)) = (key.get_mut(filled..filled + take), bytes.get(..take)) {
                dst.copy_from_slice(src);
            }
            // The separator is the 0x00 already in place.
            filled += take + 1;
            if filled >= key.len() {
                return u64::from_be_bytes(key);
            }
        }
    }
    u64::from_be_bytes(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn labels(pairs: &[(String, String)]) -> Labels {
        Labels::from_pairs(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())))
    }

    #[test]
    fn keys_follow_the_shared_prefix_of_a_fleet() {
        let sets: Vec<Labels> = ["dev-0000042", "dev-0000117", "dev-0000003"]
            .iter()
            .map(|d| Labels::from_pairs([("__name__", "sensors_temp"), ("device", d), ("farm", "farm-0001")]))
            .collect();
        // "__name__\0sensors_temp\0device\0dev-0000" is shared.
        let shared = sets.iter().skip(1).fold(usize::MAX, |p, l| p.min(common_text(&sets[0], l, p)));
        assert_eq!(shared, "__name__\0sensors_temp\0device\0dev-0000".len());
        assert_eq!(key_at(&sets[0], shared), u64::from_be_bytes(*b"042\0farm"));
        assert_eq!(key_at(&sets[2], shared), u64::from_be_bytes(*b"003\0farm"));
        // Near and past the end of the text: zero-padded.
        let text = "__name__\0sensors_temp\0device\0dev-0000042\0farm\0farm-0001\0";
        assert_eq!(key_at(&sets[0], text.len() - 3), u64::from_be_bytes(*b"01\0\0\0\0\0\0"));
        assert_eq!(key_at(&sets[0], text.len()), 0);
        assert_eq!(key_at(&sets[0], text.len() + 10), 0);
    }

    fn arb_set() -> impl Strategy<Value = Vec<(String, String)>> {
        // Few, short names and values so prefixes, equal sets and subsets are common;
        // sometimes a 0x00 or a high byte in a value.
        let name = prop::sample::select(vec!["__name__", "a", "ab", "b", "device", "z"]);
        let value = prop_oneof![
            4 => "[a-c]{0,3}",
            1 => prop::sample::select(vec!["a\u{0}", "\u{0}", "a\u{0}b", "é", "\u{7f}"]).prop_map(String::from),
        ];
        prop::collection::btree_map(name, value, 0..5)
            .prop_map(|m| m.into_iter().map(|(n, v)| (n.to_string(), v)).filter(|(_, v)| !v.is_empty()).collect())
    }

    proptest! {
        /// Sorting with keys gives the order of the plain sort by labels
        /// (then by the tie-breaker), whatever the sets: shared prefixes,
        /// one set the start of another, equal sets, 0x00 in values.
        #[test]
        fn keyed_sort_equals_the_plain_sort(sets in prop::collection::vec(arb_set(), 0..40)) {
            let mut v: Vec<(Labels, usize)> = sets.iter().enumerate().map(|(i, s)| (labels(s), i)).collect();
            let mut want = v.clone();
            want.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
            sort_by_labels(&mut v, |x| &x.0, |a, b| a.1.cmp(&b.1));
            prop_assert_eq!(v, want);
        }

        /// The same with a long shared prefix, as in a fleet query.
        #[test]
        fn keyed_sort_equals_the_plain_sort_behind_a_shared_prefix(
            devices in prop::collection::vec("[0-9]{0,9}", 0..60),
        ) {
            let mut v: Vec<(Labels, usize)> = devices
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let mut pairs = vec![("__name__", "sensors_temp"), ("farm", "farm-0001")];
                    if !d.is_empty() {
                        pairs.push(("device", d.as_str()));
                    }
                    (Labels::from_pairs(pairs), i)
                })
                .collect();
            let mut want = v.clone();
            want.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
            sort_by_labels(&mut v, |x| &x.0, |a, b| a.1.cmp(&b.1));
            prop_assert_eq!(v, want);
        }
    }
}
