//! LEB128 varints and zigzag encoding: [`crate::batch`] and the hot-store
//! segment format use them.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))] // a codec: malformed input is an error, never a panic

/// Appends `v` as an unsigned LEB128 varint.
pub fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Appends `v` zigzag-encoded as a varint.
pub fn put_ivarint(buf: &mut Vec<u8>, v: i64) {
    put_uvarint(buf, ((v << 1) ^ (v >> 63)) as u64);
}

/// Reads an unsigned LEB128 varint from the front of `buf`, advancing it.
pub fn get_uvarint(buf: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    let mut shift = 0u32;
    loop {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        if shift == 63 && b > 1 {
            return None;
        }
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
}

/// Reads a zigzag varint from the front of `buf`, advancing it.
pub fn get_ivarint(buf: &mut &[u8]) -> Option<i64> {
    let u = get_uvarint(buf)?;
    Some(((u >> 1) as i64) ^ -((u & 1) as i64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn uvarint_round_trips(v in any::<u64>()) {
            let mut buf = Vec::new();
            put_uvarint(&mut buf, v);
            let mut s = buf.as_slice();
            prop_assert_eq!(get_uvarint(&mut s), Some(v));
            prop_assert!(s.is_empty());
        }

        #[test]
        fn ivarint_round_trips(v in any::<i64>()) {
            let mut buf = Vec::new();
            put_ivarint(&mut buf, v);
            let mut s = buf.as_slice();
            prop_assert_eq!(get_ivarint(&mut s), Some(v));
        }
    }

    #[test]
    fn rejects_overlong_varint() {
        let buf = [0xffu8; 11];
        assert_eq!(get_uvarint(&mut &buf[..]), None);
        assert_eq!(get_uvarint(&mut &[0x80u8][..]), None);
    }
}
