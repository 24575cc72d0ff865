//! A fast hasher for the engine's per-query maps (group digests, match
//! signatures, output label sets): keys are hashed once per series, so
//! SipHash's rounds (the standard library's default, built against
//! flooding by untrusted keys) are a visible share of a fleet query. The
//! keys here come from the tenant's own series and die with the query.
//!
//! The mix is FxHash's (rustc's): per 8-byte word, rotate, xor, multiply.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` hashed with [`FastHasher`].
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

const K: u64 = 0xf135_7aea_2e62_a9c5;

/// FxHash: one rotate, xor and multiply per word of input.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

impl FastHasher {
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(26) ^ w).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        // The multiply leaves the low bits weakest; hashbrown takes its
        // bucket from the low bits and its tag from the top seven.
        self.0.rotate_left(26)
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            self.add(u64::from_le_bytes(b));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_keyed_by_strings_pairs_and_digests_find_what_they_hold() {
        let mut m: FastMap<String, usize> = FastMap::default();
        let keys: Vec<String> = (0..5000).map(|i| format!("device\u{ff}dev-{i:07}\u{fe}")).collect();
        for (i, k) in keys.iter().enumerate() {
            m.insert(k.clone(), i);
        }
        assert_eq!(m.len(), keys.len());
        assert!(keys.iter().enumerate().all(|(i, k)| m.get(k) == Some(&i)));
        assert_eq!(m.get("device\u{ff}dev-0005000\u{fe}"), None);
        let mut pairs: FastMap<(usize, usize), usize> = FastMap::default();
        for i in 0..1000 {
            pairs.insert((i, i * 7), i);
        }
        assert!((0..1000).all(|i| pairs.get(&(i, i * 7)) == Some(&i) && !pairs.contains_key(&(i * 7, i + 1))));
    }

    #[test]
    fn strings_that_differ_only_in_their_tail_or_length_hash_apart() {
        let h = |s: &str| {
            let mut x = FastHasher::default();
            x.write(s.as_bytes());
            x.finish()
        };
        assert_ne!(h("abcdefgh1"), h("abcdefgh2"));
        assert_ne!(h("abc"), h("abc\0"));
        assert_ne!(h(""), h("\0"));
    }
}
