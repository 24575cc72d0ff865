use super::*;
use proptest::prelude::*;
use std::path::PathBuf;

fn segment(base: u64, payloads: &[&[u8]]) -> Vec<u8> {
    let mut buf = encode_header(3, base).to_vec();
    for (i, p) in payloads.iter().enumerate() {
        encode_frame(&mut buf, base + i as u64, p);
    }
    buf
}

fn path() -> PathBuf {
    PathBuf::from("p0003/00000000000000000010.seg")
}

#[test]
fn header_round_trips_and_checks_partition() {
    let h = encode_header(3, 42);
    assert_eq!(decode_header(&path(), &h, 3).unwrap(), 42);
    assert!(matches!(decode_header(&path(), &h, 4), Err(Error::Corrupted { .. })));
    let mut bad = h;
    bad[14] ^= 1;
    assert!(matches!(decode_header(&path(), &bad, 3), Err(Error::Corrupted { .. })));
}

#[test]
fn rejects_unknown_version() {
    let mut h = encode_header(3, 42);
    h[8] = 9;
    let crc = crc32fast::hash(&h[0..21]);
    h[21..25].copy_from_slice(&crc.to_le_bytes());
    assert!(matches!(decode_header(&path(), &h, 3), Err(Error::UnsupportedFormatVersion { found: 9, .. })));
}

#[test]
fn clean_segment_scans_to_end() {
    let seg = segment(10, &[b"a", b"bb", b"ccc"]);
    let scan = scan_tail(&path(), &seg, 10).unwrap();
    assert_eq!(scan, TailScan { valid_len: seg.len() as u64, next_offset: 13, torn: None });
}

#[test]
fn torn_tail_is_reported_for_truncation() {
    let full = segment(10, &[b"a", b"bb", b"ccc"]);
    let two = segment(10, &[b"a", b"bb"]);
    for cut in two.len() + 1..full.len() {
        let scan = scan_tail(&path(), &full[..cut], 10).unwrap();
        assert_eq!(scan.valid_len, two.len() as u64, "cut at {cut}");
        assert_eq!(scan.next_offset, 12);
        assert!(scan.torn.is_some());
    }
}

#[test]
fn damaged_middle_record_is_refused() {
    let mut seg = segment(10, &[b"first record", b"second record", b"third record"]);
    let second_payload = HEADER_LEN + FRAME_HEADER_LEN + 12 + FRAME_HEADER_LEN;
    seg[second_payload] ^= 0xff;
    match scan_tail(&path(), &seg, 10) {
        Err(Error::Corrupted { detail, .. }) => assert!(detail.contains("valid record follows"), "{detail}"),
        other => panic!("expected corruption error, got {other:?}"),
    }
}

#[test]
fn damaged_last_record_is_a_torn_tail() {
    let mut seg = segment(10, &[b"first record", b"second record"]);
    let last = seg.len() - 1;
    seg[last] ^= 0xff;
    let scan = scan_tail(&path(), &seg, 10).unwrap();
    assert_eq!(scan.next_offset, 11);
    assert!(scan.torn.unwrap().1.contains("checksum"));
}

proptest! {
    #[test]
    fn frames_round_trip(payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..10)) {
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let seg = segment(7, &refs);
        let mut pos = HEADER_LEN;
        for (i, p) in payloads.iter().enumerate() {
            let f = decode_frame(&seg[pos..], 7 + i as u64, true).unwrap();
            prop_assert_eq!(f.payload, p.as_slice());
            pos += f.size;
        }
        prop_assert_eq!(pos, seg.len());
    }

    #[test]
    fn scanning_garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut seg = encode_header(3, 0).to_vec();
        seg.extend_from_slice(&bytes);
        let _ = scan_tail(&path(), &seg, 0);
    }
}
