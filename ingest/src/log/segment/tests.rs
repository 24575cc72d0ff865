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

/// Byte position of the frame of record `i` in `segment(base, payloads)`.
fn frame_pos(payloads: &[&[u8]], i: usize) -> usize {
    HEADER_LEN + payloads[..i].iter().map(|p| FRAME_HEADER_LEN + p.len()).sum::<usize>()
}

#[test]
fn clean_segment_scans_to_end() {
    let seg = segment(10, &[b"a", b"bb", b"ccc"]);
    let scan = scan_segment(&seg, 10, u64::MAX, true);
    assert_eq!(scan.runs, vec![Run { start: HEADER_LEN, end: seg.len(), first: 10, next: 13 }]);
    assert!(scan.damage.is_empty() && scan.torn.is_none());
    assert_eq!(scan.next_offset(10), 13);
}

#[test]
fn torn_tail_is_reported_for_truncation() {
    let full = segment(10, &[b"a", b"bb", b"ccc"]);
    let two = segment(10, &[b"a", b"bb"]);
    for cut in two.len() + 1..full.len() {
        let scan = scan_segment(&full[..cut], 10, u64::MAX, true);
        assert_eq!(scan.runs.last().unwrap().end, two.len(), "cut at {cut}");
        assert_eq!(scan.next_offset(10), 12);
        assert!(scan.damage.is_empty(), "cut at {cut}: {:?}", scan.damage);
        assert_eq!(scan.torn.as_ref().unwrap().0, two.len());
    }
}

#[test]
fn zero_filled_tail_is_torn() {
    let mut seg = segment(10, &[b"a", b"bb"]);
    let valid = seg.len();
    seg.extend_from_slice(&[0; 100]);
    let scan = scan_segment(&seg, 10, u64::MAX, true);
    assert_eq!(scan.torn.unwrap().0, valid);
    assert!(scan.damage.is_empty());
}

#[test]
fn damaged_middle_record_is_skipped_and_the_scan_resynchronises() {
    let payloads: [&[u8]; 4] = [b"first record", b"second record", b"third record", b"fourth record"];
    let mut seg = segment(10, &payloads);
    let second = frame_pos(&payloads, 1);
    seg[second + FRAME_HEADER_LEN + 3] ^= 0xff;
    let scan = scan_segment(&seg, 10, u64::MAX, true);
    assert_eq!(
        scan.runs,
        vec![
            Run { start: HEADER_LEN, end: second, first: 10, next: 11 },
            Run { start: frame_pos(&payloads, 2), end: seg.len(), first: 12, next: 14 },
        ]
    );
    assert_eq!(scan.damage.len(), 1);
    let d = &scan.damage[0];
    assert_eq!((d.start, d.end, d.first_lost, d.resumed_at), (second, frame_pos(&payloads, 2), 11, Some(12)));
    assert!(d.detail.contains("checksum"), "{}", d.detail);
    assert!(scan.torn.is_none());
}

#[test]
fn damaged_length_field_is_damage_not_a_torn_tail() {
    // Middle record: its length now points past the end of the file.
    let payloads: [&[u8]; 3] = [b"first record", b"second record", b"third record"];
    let mut seg = segment(10, &payloads);
    seg[frame_pos(&payloads, 1) + 3] = 0x7f;
    let scan = scan_segment(&seg, 10, u64::MAX, true);
    assert!(scan.torn.is_none());
    assert_eq!(scan.damage[0].resumed_at, Some(12));
    // Last record: complete, but its length field claims more.
    let mut seg = segment(10, &payloads);
    seg[frame_pos(&payloads, 2) + 1] = 0x01;
    let scan = scan_segment(&seg, 10, u64::MAX, true);
    assert!(scan.torn.is_none(), "{:?}", scan.torn);
    assert_eq!(scan.damage[0].first_lost, 12);
    assert_eq!(scan.damage[0].resumed_at, None);
}

#[test]
fn damaged_last_complete_record_is_damage_not_a_torn_tail() {
    let mut seg = segment(10, &[b"first record", b"second record"]);
    let last = seg.len() - 1;
    seg[last] ^= 0xff;
    let scan = scan_segment(&seg, 10, u64::MAX, true);
    assert!(scan.torn.is_none(), "{:?}", scan.torn);
    assert_eq!(scan.next_offset(10), 11);
    let d = &scan.damage[0];
    assert_eq!((d.first_lost, d.resumed_at, d.end), (11, None, seg.len()));
    assert!(d.detail.contains("checksum"), "{}", d.detail);
}

#[test]
fn incomplete_frame_of_an_older_segment_is_damage() {
    let full = segment(10, &[b"a", b"bb", b"ccc"]);
    let scan = scan_segment(&full[..full.len() - 1], 10, 13, false);
    assert!(scan.torn.is_none());
    assert_eq!(scan.damage[0].first_lost, 12);
}

#[test]
fn records_at_or_past_the_next_base_are_damage() {
    // An interrupted repair left records 12.. in the file and in the next one.
    let seg = segment(10, &[b"a", b"bb", b"ccc"]);
    let scan = scan_segment(&seg, 10, 12, false);
    assert_eq!(scan.next_offset(10), 12);
    assert_eq!(scan.damage[0].resumed_at, None);
    assert!(scan.damage[0].detail.contains("next segment"), "{}", scan.damage[0].detail);
}

#[test]
fn header_damage_is_detected() {
    let mut seg = segment(10, &[b"a"]);
    assert!(header_intact(&seg));
    seg[11] ^= 1;
    assert!(!header_intact(&seg));
    assert!(!header_intact(&seg[..10]));
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
    fn one_flipped_byte_loses_exactly_its_record(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..8),
        at in any::<prop::sample::Index>(),
        xor in 1..=255u8,
    ) {
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let mut seg = segment(7, &refs);
        let pos = HEADER_LEN + at.index(seg.len() - HEADER_LEN);
        seg[pos] ^= xor;
        let damaged = (0..refs.len()).rfind(|&i| frame_pos(&refs, i) <= pos).unwrap();
        let scan = scan_segment(&seg, 7, u64::MAX, true);
        prop_assert!(scan.torn.is_none(), "{:?}", scan.torn);
        prop_assert_eq!(scan.damage.len(), 1);
        prop_assert_eq!(scan.damage[0].first_lost, 7 + damaged as u64);
        let mut kept = Vec::new();
        for run in &scan.runs {
            let mut p = run.start;
            for offset in run.first..run.next {
                let f = decode_frame(&seg[p..], offset, true).unwrap();
                prop_assert_eq!(f.payload, refs[(offset - 7) as usize]);
                kept.push(offset);
                p += f.size;
            }
            prop_assert_eq!(p, run.end);
        }
        let expected: Vec<u64> = (0..refs.len() as u64).filter(|&i| i != damaged as u64).map(|i| 7 + i).collect();
        prop_assert_eq!(kept, expected);
    }

    #[test]
    fn scanning_garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut seg = encode_header(3, 0).to_vec();
        seg.extend_from_slice(&bytes);
        let _ = scan_segment(&seg, 0, u64::MAX, true);
        let _ = scan_segment(&seg, 0, 5, false);
    }
}
