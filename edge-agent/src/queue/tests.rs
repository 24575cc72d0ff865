use super::*;
use proptest::prelude::*;

fn cfg() -> QueueConfig {
    QueueConfig { max_bytes: 1 << 20, segment_bytes: 4096, ..QueueConfig::default() }
}

fn open(dir: &Path, config: QueueConfig) -> (Queue, OpenReport) {
    Queue::open(dir, config).expect("open")
}

fn payload(i: u64) -> Vec<u8> {
    format!("m,dev=d{i} v={i} {i}\n").into_bytes().repeat((i % 7 + 1) as usize)
}

fn drain(q: &mut Queue) -> Vec<u64> {
    let mut out = Vec::new();
    while let Some(b) = q.first_unacked().unwrap() {
        out.push(b.seq);
        q.ack(b.seq).unwrap();
    }
    out
}

#[test]
fn appends_get_increasing_sequence_numbers_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = open(dir.path(), cfg());
    for i in 1..=50 {
        assert_eq!(q.append(&payload(i), i as i64).unwrap(), i);
    }
    for i in 1..=50 {
        let b = q.read(i).unwrap().unwrap();
        assert_eq!((b.seq, b.enqueued_ms, b.payload), (i, i as i64, payload(i)));
    }
    assert!(q.segments.len() > 1, "4 KiB segments roll");
    assert_eq!(q.stats().unacked_batches, 50);
    assert_eq!(q.stats().oldest_unacked_ms, Some(1));
}

#[test]
fn acknowledged_batches_are_not_read_again_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = open(dir.path(), cfg());
    for i in 1..=30 {
        q.append(&payload(i), 0).unwrap();
    }
    q.ack(20).unwrap();
    drop(q);
    let (mut q, _) = open(dir.path(), cfg());
    assert_eq!(q.first_unacked().unwrap().unwrap().seq, 21);
    assert_eq!(drain(&mut q), (21..=30).collect::<Vec<_>>());
    drop(q);
    let (mut q, _) = open(dir.path(), cfg());
    assert_eq!(q.first_unacked().unwrap(), None);
    // Sequence numbers never repeat, even with every segment deleted.
    assert_eq!(q.append(b"x", 0).unwrap(), 31);
}

#[test]
fn segments_wholly_behind_the_cursor_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = open(dir.path(), cfg());
    for i in 1..=100 {
        q.append(&[i as u8; 300], 0).unwrap();
    }
    let before = q.segments.len();
    assert!(before > 3);
    q.ack(100).unwrap();
    let files = fs::read_dir(dir.path()).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some()).count();
    assert!(files <= 1, "only the active segment may stay, found {files} segment files");
    assert_eq!(q.stats().unacked_batches, 0);
    drop(q);
    let (q, report) = open(dir.path(), cfg());
    assert!(q.segments.is_empty());
    assert!(report.deleted_segments <= 1);
}

#[test]
fn refuses_when_full_and_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let config = QueueConfig { max_bytes: 8192, segment_bytes: 4096, ..QueueConfig::default() };
    let (mut q, _) = open(dir.path(), config.clone());
    let mut accepted = 0;
    let err = loop {
        match q.append(&[7; 500], 0) {
            Ok(_) => accepted += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(err, Error::Full { .. }), "{err}");
    assert!(q.stats().disk_bytes <= 8192);
    assert!(accepted >= 14);
    drop(q);
    let (mut q, _) = open(dir.path(), config);
    assert_eq!(drain(&mut q).len(), accepted);
    // Once acknowledged, the space is taken back.
    q.append(&[7; 500], 0).unwrap();
}

#[test]
fn drop_oldest_moves_the_cursor_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let config = QueueConfig {
        max_bytes: 8192,
        segment_bytes: 4096,
        overflow: OverflowPolicy::DropOldest,
        ..QueueConfig::default()
    };
    let (mut q, _) = open(dir.path(), config.clone());
    for i in 1..=40 {
        q.append(&[i as u8; 500], 0).unwrap();
    }
    let stats = q.stats();
    assert!(stats.dropped_segments >= 2 && stats.dropped_batches >= 14, "{stats:?}");
    assert!(stats.disk_bytes <= 8192);
    assert_eq!(stats.unacked_batches + stats.dropped_batches, 40);
    let first = q.first_unacked().unwrap().unwrap().seq;
    assert_eq!(first, stats.dropped_batches + 1);
    drop(q);
    let (mut q, _) = open(dir.path(), config);
    let seqs = drain(&mut q);
    assert_eq!(seqs, (first..=40).collect::<Vec<_>>());
}

#[test]
fn rejects_a_batch_larger_than_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = open(dir.path(), QueueConfig { max_bytes: 8192, segment_bytes: 4096, ..QueueConfig::default() });
    assert!(matches!(q.append(&[0; 9000], 0), Err(Error::TooLarge { .. })));
    assert_eq!(q.append(b"ok", 0).unwrap(), 1);
}

#[test]
fn a_poisoned_queue_refuses_appends_reads_and_acks_until_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = open(dir.path(), cfg());
    q.append(b"one", 0).unwrap();
    q.poisoned = true; // as after a failed write or fsync
    assert!(matches!(q.append(b"two", 0), Err(Error::Poisoned)));
    assert!(matches!(q.first_unacked(), Err(Error::Poisoned)));
    assert!(matches!(q.ack(1), Err(Error::Poisoned)));
    drop(q);
    let (mut q, _) = open(dir.path(), cfg());
    assert_eq!(drain(&mut q), vec![1]);
}

fn last_segment(dir: &Path) -> PathBuf {
    let mut segs: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == SEGMENT_EXT))
        .collect();
    segs.sort();
    segs.pop().expect("a segment")
}

#[test]
fn torn_tail_at_every_byte_of_the_last_frame_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = open(dir.path(), cfg());
    for i in 1..=5 {
        q.append(&payload(i), 0).unwrap();
    }
    let last_frame = q.segments.back().unwrap().frames.last().copied().unwrap();
    drop(q);
    let path = last_segment(dir.path());
    let full = fs::read(&path).unwrap();
    assert_eq!(full.len() as u64, last_frame.offset + last_frame.size());
    for cut in last_frame.offset..full.len() as u64 {
        fs::write(&path, &full[..cut as usize]).unwrap();
        let (mut q, report) = open(dir.path(), cfg());
        assert_eq!(report.torn_bytes, cut - last_frame.offset, "cut at {cut}");
        assert_eq!(fs::metadata(&path).unwrap().len(), last_frame.offset);
        assert_eq!(q.stats().unacked_batches, 4, "cut at {cut}");
        for i in 1..=4 {
            assert_eq!(q.read(i).unwrap().unwrap().payload, payload(i));
        }
        // The torn batch was never acknowledged; its number is given again.
        assert_eq!(q.append(&payload(5), 0).unwrap(), 5);
        drop(q);
        let (q, report) = open(dir.path(), cfg());
        assert_eq!(report.torn_bytes, 0);
        assert_eq!(q.read(5).unwrap().unwrap().payload, payload(5));
    }
}

#[test]
fn torn_header_of_a_new_segment_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = open(dir.path(), cfg());
    q.append(b"one", 0).unwrap();
    drop(q);
    let path = dir.path().join(segment_name(2));
    fs::write(&path, &format::encode_segment_header(2)[..10]).unwrap();
    let (mut q, report) = open(dir.path(), cfg());
    assert_eq!(report.torn_bytes, 10);
    assert!(!path.exists());
    assert_eq!(q.append(b"two", 0).unwrap(), 2);
}

#[test]
fn damage_in_the_middle_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = open(dir.path(), cfg());
    for i in 1..=5 {
        q.append(&payload(i), 0).unwrap();
    }
    let second = q.segments.back().unwrap().frames[1];
    drop(q);
    let path = last_segment(dir.path());
    let good = fs::read(&path).unwrap();
    // A flipped payload byte of frame 2, and a flipped header byte.
    for at in [second.offset + FRAME_HEADER_LEN as u64 + 1, second.offset + 5] {
        let mut bad = good.clone();
        bad[at as usize] ^= 0x40;
        fs::write(&path, &bad).unwrap();
        let err = Queue::open(dir.path(), cfg()).unwrap_err();
        assert!(matches!(err, Error::ChecksumMismatch { position, .. } if position == second.offset), "{err}");
        assert_eq!(fs::read(&path).unwrap(), bad, "nothing is cut off a damaged middle");
    }
}

#[test]
fn a_missing_segment_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = open(dir.path(), cfg());
    for i in 1..=100 {
        q.append(&payload(i), 0).unwrap();
    }
    drop(q);
    let mut segs: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    segs.retain(|p| p.extension().is_some_and(|e| e == SEGMENT_EXT));
    segs.sort();
    fs::remove_file(&segs[1]).unwrap();
    assert!(matches!(Queue::open(dir.path(), cfg()), Err(Error::Corrupted { .. })));
    fs::remove_file(&segs[0]).unwrap();
    let err = Queue::open(dir.path(), cfg()).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn damaged_cursor_is_an_error_and_a_leftover_temp_file_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = open(dir.path(), cfg());
    for i in 1..=3 {
        q.append(&payload(i), 0).unwrap();
    }
    q.ack(2).unwrap();
    drop(q);
    fs::write(dir.path().join(CURSOR_TMP), b"half").unwrap();
    let (q, _) = open(dir.path(), cfg());
    assert_eq!(q.first_unacked().unwrap().unwrap().seq, 3);
    drop(q);
    let mut cursor = fs::read(dir.path().join(CURSOR_FILE)).unwrap();
    cursor[12] ^= 1;
    fs::write(dir.path().join(CURSOR_FILE), &cursor).unwrap();
    assert!(matches!(Queue::open(dir.path(), cfg()), Err(Error::ChecksumMismatch { .. })));
}

#[test]
fn format_is_pinned() {
    let mut frame = Vec::new();
    format::encode_frame(&mut frame, 7, 1_700_000_000_000, b"m v=1 1\n");
    assert_eq!(frame.len(), FRAME_HEADER_LEN + 8);
    assert_eq!(&frame[..12], &[8, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&frame[12..20], &1_700_000_000_000i64.to_le_bytes());
    assert_eq!(&frame[20..24], &crc32fast::hash(b"m v=1 1\n").to_le_bytes());
    assert_eq!(&frame[24..28], &crc32fast::hash(&frame[..24]).to_le_bytes());
    let header = format::encode_segment_header(42);
    assert_eq!(&header[..12], b"STEDGSEG\x01\x00\x00\x00");
    assert_eq!(&header[12..20], &42u64.to_le_bytes());
    let cursor = format::encode_cursor(9, &[(11, 12), (20, 20)]);
    assert_eq!(cursor.len(), 28 + 2 * 16);
    assert_eq!(&cursor[..12], b"STEDGCUR\x02\x00\x00\x00");
    assert_eq!(&cursor[12..20], &9u64.to_le_bytes());
    assert_eq!(&cursor[20..24], &2u32.to_le_bytes());
    assert_eq!(&cursor[24..40], &[11, 0, 0, 0, 0, 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&cursor[56..], &crc32fast::hash(&cursor[..56]).to_le_bytes());
    assert_eq!(format::decode_cursor(&cursor), Ok((9, vec![(11, 12), (20, 20)])));
    // Version 1 (24 bytes, no ranges) is still read.
    let mut v1 = [0u8; 24];
    v1[..12].copy_from_slice(b"STEDGCUR\x01\x00\x00\x00");
    v1[12..20].copy_from_slice(&9u64.to_le_bytes());
    let crc = crc32fast::hash(&v1[..20]);
    v1[20..24].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(format::decode_cursor(&v1), Ok((9, vec![])));
    let mut v3 = v1;
    v3[8] = 3;
    assert_eq!(format::decode_cursor(&v3), Err(format::CursorError::Record(RecordError::Version(3))));
    // Ranges must lie above the prefix, ascending, not adjacent.
    for bad in [vec![(10, 12)], vec![(11, 12), (13, 14)], vec![(12, 11)], vec![(20, 21), (11, 12)]] {
        assert!(
            matches!(format::decode_cursor(&format::encode_cursor(9, &bad)), Err(format::CursorError::Layout(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn a_version_1_cursor_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = open(dir.path(), cfg());
    for i in 1..=5 {
        q.append(&payload(i), 0).unwrap();
    }
    drop(q);
    let mut v1 = [0u8; 24];
    v1[..12].copy_from_slice(b"STEDGCUR\x01\x00\x00\x00");
    v1[12..20].copy_from_slice(&3u64.to_le_bytes());
    let crc = crc32fast::hash(&v1[..20]);
    v1[20..24].copy_from_slice(&crc.to_le_bytes());
    fs::write(dir.path().join(CURSOR_FILE), v1).unwrap();
    let (mut q, _) = open(dir.path(), cfg());
    assert_eq!(q.stats().acked_seq, 3);
    q.ack_one(5).unwrap();
    assert_eq!(drain(&mut q), [4]);
    assert_eq!(fs::read(dir.path().join(CURSOR_FILE)).unwrap()[8], 2, "rewritten as version 2");
}

#[test]
fn acked_ranges_merge_and_count() {
    let mut r = AckedRanges::default();
    for s in [5, 7, 6, 10, 12, 11, 20] {
        r.insert(s);
    }
    r.insert(6);
    assert_eq!(r.ranges(), [(5, 7), (10, 12), (20, 20)]);
    assert_eq!(r.count_in(0, u64::MAX), 7);
    assert_eq!(r.count_in(6, 11), 3);
    assert_eq!(r.count_in(8, 10), 0);
    assert_eq!(r.count_in(11, 11), 0);
    assert_eq!(r.skip(5), 8);
    assert_eq!(r.skip(8), 8);
    assert_eq!(r.skip(11), 13);
    assert_eq!(r.absorb(3), 3);
    assert_eq!(r.absorb(4), 7);
    assert_eq!(r.ranges(), [(10, 12), (20, 20)]);
    r.remove_up_to(11);
    assert_eq!(r.ranges(), [(12, 12), (20, 20)]);
    assert_eq!(r.count_in(0, u64::MAX), 2);
    assert_eq!(r.max(), Some(20));
}

/// Out-of-order acknowledgements: the state a reopen finds.
fn unacked_after_reopen(dir: &Path) -> Vec<u64> {
    let (q, _) = open(dir, cfg());
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(b) = q.next_unacked_below(from, u64::MAX).unwrap() {
        out.push(b.seq);
        from = b.seq + 1;
    }
    out
}

#[test]
fn out_of_order_acks_survive_reopen_and_segments_go_only_behind_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = open(dir.path(), cfg());
    for i in 1..=60 {
        q.append(&[i as u8; 300], i as i64).unwrap();
    }
    let segments = q.segments.len();
    // The live lane acknowledges the newest half first.
    for s in 31..=60 {
        q.ack_one(s).unwrap();
    }
    assert_eq!(q.segments.len(), segments, "nothing is behind the prefix yet");
    assert_eq!(q.stats().unacked_batches, 30);
    assert_eq!(q.stats().acked_seq, 0);
    assert_eq!(q.stats().acked_above, 30);
    assert_eq!(q.stats().unacked_bytes, 30 * (FRAME_HEADER_LEN as u64 + 300));
    drop(q);
    assert_eq!(unacked_after_reopen(dir.path()), (1..=30).collect::<Vec<_>>());
    let (mut q, _) = open(dir.path(), cfg());
    assert_eq!(q.stats().unacked_bytes, 30 * (FRAME_HEADER_LEN as u64 + 300));
    for s in 1..=29 {
        q.ack_one(s).unwrap();
    }
    assert_eq!(q.stats().acked_seq, 29);
    assert_eq!(q.first_unacked().unwrap().unwrap().seq, 30);
    q.ack_one(30).unwrap();
    assert_eq!(q.stats().acked_seq, 60, "the ranges above join the prefix");
    assert_eq!(q.stats().acked_above, 0);
    assert!(q.segments.len() <= 1, "all but the active segment deleted");
    drop(q);
    assert_eq!(unacked_after_reopen(dir.path()), Vec::<u64>::new());
    let (mut q, _) = open(dir.path(), cfg());
    assert_eq!(q.append(b"x", 0).unwrap(), 61, "numbers never repeat");
}

#[test]
fn sequence_numbers_stay_above_acknowledged_ranges_after_the_segments_are_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = open(dir.path(), cfg());
    for i in 1..=3 {
        q.append(&payload(i), 0).unwrap();
    }
    q.ack_one(3).unwrap();
    drop(q);
    // Even if the frames above the prefix were lost (fsync = never and a power loss).
    for e in fs::read_dir(dir.path()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == SEGMENT_EXT) {
            fs::remove_file(p).unwrap();
        }
    }
    fs::write(dir.path().join(CURSOR_FILE), format::encode_cursor(2, &[(4, 4)])).unwrap();
    let (mut q, _) = open(dir.path(), cfg());
    assert_eq!(q.append(b"x", 0).unwrap(), 5);
}

/// A crash at any byte of writing the cursor: the temp file is cut there
/// (it is ignored), or the rename happened (the new cursor is whole). A
/// cursor file cut short (a broken rename) is an error, never a guess.
#[test]
fn crash_at_every_byte_of_the_cursor_write_is_safe() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = open(dir.path(), cfg());
    for i in 1..=10 {
        q.append(&payload(i), 0).unwrap();
    }
    for s in [2, 1, 5, 6, 9] {
        q.ack_one(s).unwrap();
    }
    drop(q);
    let before = fs::read(dir.path().join(CURSOR_FILE)).unwrap();
    let unacked_before = unacked_after_reopen(dir.path());
    assert_eq!(unacked_before, [3, 4, 7, 8, 10]);
    // The write that would acknowledge 7 too.
    let after = format::encode_cursor(2, &[(5, 7), (9, 9)]);
    for cut in 0..=after.len() {
        fs::write(dir.path().join(CURSOR_TMP), &after[..cut]).unwrap();
        assert_eq!(unacked_after_reopen(dir.path()), unacked_before, "temp file cut at {cut}");
        assert!(!dir.path().join(CURSOR_TMP).exists());
        assert_eq!(fs::read(dir.path().join(CURSOR_FILE)).unwrap(), before);
    }
    for cut in 0..after.len() {
        fs::write(dir.path().join(CURSOR_FILE), &after[..cut]).unwrap();
        assert!(Queue::open(dir.path(), cfg()).is_err(), "cursor cut at {cut} must not open");
    }
    fs::write(dir.path().join(CURSOR_FILE), &after).unwrap();
    assert_eq!(unacked_after_reopen(dir.path()), [3, 4, 8, 10]);
}

#[derive(Debug, Clone)]
enum Op {
    Append(u8, u16),
    Ack(u8),
    Reopen,
    /// Cut this many bytes (modulo the last frame's size, at least 1) off the last frame, then reopen.
    Tear(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (any::<u8>(), 0u16..3000).prop_map(|(b, n)| Op::Append(b, n)),
        2 => any::<u8>().prop_map(Op::Ack),
        1 => Just(Op::Reopen),
        1 => any::<u16>().prop_map(Op::Tear),
    ]
}

/// Runs `ops` against a queue and a model: the unacknowledged batches in
/// order, the acknowledged position and the last sequence number on disk.
/// Under `DropOldest`, batches the queue dropped leave the model's front.
fn check_against_model(ops: Vec<Op>, overflow: OverflowPolicy) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    // fsync is not observable without a machine crash; skipping it keeps the cases quick.
    let config = QueueConfig { max_bytes: 24 << 10, segment_bytes: 4096, fsync: FsyncPolicy::Never, overflow };
    let (mut q, _) = open(dir.path(), config.clone());
    let mut model: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut acked = 0u64;
    let mut last = 0u64;
    let mut dropped_since_open = 0u64;
    for op in ops {
        match op {
            Op::Append(b, n) => {
                let p = vec![b; n as usize];
                let seq_before = last.max(acked) + 1;
                match q.append(&p, seq_before as i64) {
                    Ok(seq) => {
                        prop_assert_eq!(seq, seq_before);
                        last = seq;
                        model.push((seq, p));
                    }
                    Err(Error::Full { .. }) => {
                        prop_assert_eq!(overflow, OverflowPolicy::Refuse);
                        let size: u64 = model.iter().map(|(_, p)| (FRAME_HEADER_LEN + p.len()) as u64).sum();
                        prop_assert!(size + (FRAME_HEADER_LEN + p.len()) as u64 > config.max_bytes - 8192);
                    }
                    Err(e) => return Err(TestCaseError::fail(e.to_string())),
                }
                // Drop-oldest: what the queue dropped is the model's front.
                let stats = q.stats();
                let dropped = stats.dropped_batches - dropped_since_open;
                if dropped > 0 {
                    prop_assert_eq!(overflow, OverflowPolicy::DropOldest);
                    prop_assert!(dropped as usize <= model.len());
                    model.drain(..dropped as usize);
                    dropped_since_open = stats.dropped_batches;
                    acked = stats.acked_seq;
                }
            }
            Op::Ack(k) => {
                let k = (k as usize) % (model.len() + 1);
                if k > 0 {
                    let seq = model[k - 1].0;
                    q.ack(seq).unwrap();
                    acked = seq;
                    model.drain(..k);
                }
            }
            Op::Reopen => {
                drop(q);
                let (q2, report) = open(dir.path(), config.clone());
                prop_assert_eq!(report.torn_bytes, 0);
                q = q2;
                dropped_since_open = 0;
            }
            Op::Tear(cut) => {
                let target = q.segments.back().and_then(|s| s.frames.last().map(|f| (s.path.clone(), *f)));
                drop(q);
                if let Some((path, frame)) = target.clone() {
                    let cut = 1 + u64::from(cut) % (frame.size() - 1);
                    let f = OpenOptions::new().write(true).open(&path).unwrap();
                    f.set_len(frame.offset + frame.size() - cut).unwrap();
                    // The last frame on disk is unacknowledged unless its (active) segment was wholly acknowledged.
                    if frame.seq > acked {
                        prop_assert_eq!(model.pop().map(|(s, _)| s), Some(frame.seq));
                    }
                    last = frame.seq - 1;
                }
                let (q2, report) = open(dir.path(), config.clone());
                prop_assert_eq!(report.torn_bytes > 0, target.is_some());
                q = q2;
                dropped_since_open = 0;
            }
        }
        let stats = q.stats();
        prop_assert_eq!(stats.unacked_batches, model.len() as u64);
        let bytes: u64 = model.iter().map(|(_, p)| (FRAME_HEADER_LEN + p.len()) as u64).sum();
        prop_assert_eq!(stats.unacked_bytes, bytes);
        prop_assert_eq!(stats.oldest_unacked_ms, model.first().map(|(s, _)| *s as i64));
        prop_assert!(stats.disk_bytes <= config.max_bytes);
        prop_assert_eq!(stats.acked_seq, acked);
    }
    for (seq, p) in &model {
        let b = q.read(*seq).unwrap().unwrap();
        prop_assert_eq!(&b.payload, p);
    }
    let seqs = drain(&mut q);
    prop_assert_eq!(seqs, model.iter().map(|(s, _)| *s).collect::<Vec<_>>());
    Ok(())
}

#[derive(Debug, Clone)]
enum AckOp {
    Append(u16),
    /// Acknowledge the k-th (mod count) unacknowledged batch.
    AckOne(u16),
    /// Acknowledge everything up to the k-th (mod count) unacknowledged batch.
    AckPrefix(u16),
    /// Acknowledge a batch acknowledged before (or never appended).
    AckAgain(u16),
    Reopen,
}

fn ack_op() -> impl Strategy<Value = AckOp> {
    prop_oneof![
        6 => (0u16..600).prop_map(AckOp::Append),
        6 => any::<u16>().prop_map(AckOp::AckOne),
        1 => any::<u16>().prop_map(AckOp::AckPrefix),
        1 => any::<u16>().prop_map(AckOp::AckAgain),
        2 => Just(AckOp::Reopen),
    ]
}

/// Random out-of-order acknowledgements and reopens against a model (the
/// set of unacknowledged batches): after every step exactly the
/// unacknowledged batches are delivered (in order, with their payloads),
/// nothing acknowledged is delivered again, and only segments wholly
/// behind the contiguous prefix are deleted. Under `DropOldest` (a small
/// bound) the batches a dropped segment held leave the model: exactly the
/// unacknowledged ones up to the new prefix, as many as counted.
fn check_out_of_order_acks(ops: Vec<AckOp>, overflow: OverflowPolicy) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let max_bytes = if overflow == OverflowPolicy::DropOldest { 12 << 10 } else { 1 << 20 };
    let config = QueueConfig { max_bytes, segment_bytes: 4096, fsync: FsyncPolicy::Never, overflow };
    let mut dropped_seen = 0u64;
    let (mut q, _) = open(dir.path(), config.clone());
    let mut unacked: std::collections::BTreeMap<u64, Vec<u8>> = std::collections::BTreeMap::new();
    let mut appended = 0u64;
    for op in ops {
        match op {
            AckOp::Append(n) => {
                // Larger batches under DropOldest, so the bound is reached often.
                let scale = if overflow == OverflowPolicy::DropOldest { 4 } else { 1 };
                let p = vec![(appended % 251) as u8; n as usize * scale];
                appended += 1;
                prop_assert_eq!(q.append(&p, appended as i64).unwrap(), appended);
                unacked.insert(appended, p);
                let stats = q.stats();
                if stats.dropped_batches > dropped_seen {
                    prop_assert_eq!(overflow, OverflowPolicy::DropOldest);
                    let gone: Vec<u64> = unacked.range(..=stats.acked_seq).map(|(s, _)| *s).collect();
                    prop_assert_eq!(gone.len() as u64, stats.dropped_batches - dropped_seen);
                    for s in gone {
                        unacked.remove(&s);
                    }
                    dropped_seen = stats.dropped_batches;
                }
                prop_assert!(stats.disk_bytes <= config.max_bytes);
            }
            AckOp::AckOne(k) if !unacked.is_empty() => {
                let seq = *unacked.keys().nth(k as usize % unacked.len()).unwrap();
                q.ack_one(seq).unwrap();
                unacked.remove(&seq);
            }
            AckOp::AckPrefix(k) if !unacked.is_empty() => {
                let seq = *unacked.keys().nth(k as usize % unacked.len()).unwrap();
                q.ack(seq).unwrap();
                unacked.retain(|&s, _| s > seq);
            }
            AckOp::AckAgain(k) => {
                let seq = u64::from(k) % (appended + 2);
                q.ack_one(seq).unwrap();
                if seq >= 1 && seq <= appended {
                    // Acknowledging an unacknowledged one is fine too.
                    unacked.remove(&seq);
                }
            }
            AckOp::Reopen => {
                drop(q);
                q = open(dir.path(), config.clone()).0;
                dropped_seen = 0;
            }
            AckOp::AckOne(_) | AckOp::AckPrefix(_) => {}
        }
        let stats = q.stats();
        prop_assert_eq!(stats.unacked_batches, unacked.len() as u64);
        let bytes: u64 = unacked.values().map(|p| (FRAME_HEADER_LEN + p.len()) as u64).sum();
        prop_assert_eq!(stats.unacked_bytes, bytes);
        let prefix = unacked.keys().next().map_or(appended, |s| s - 1);
        prop_assert_eq!(stats.acked_seq, prefix);
        prop_assert_eq!(stats.next_seq, appended + 1);
        // Segments: every one on disk has a frame above the prefix, except
        // the active one; every unacknowledged frame is on disk.
        for (i, s) in q.segments.iter().enumerate() {
            let last = i + 1 == q.segments.len();
            prop_assert!(last || s.last_seq().is_some_and(|l| l > prefix), "segment {} kept", s.first_seq);
        }
        let lanes = q.lanes(0);
        prop_assert_eq!(lanes.live_batches, unacked.len() as u64);
        prop_assert_eq!(lanes.backlog_batches, 0);
    }
    drop(q);
    let (q, _) = open(dir.path(), config);
    let mut from = 0;
    let mut delivered = Vec::new();
    while let Some(b) = q.next_unacked_below(from, u64::MAX).unwrap() {
        prop_assert_eq!(Some(&b.payload), unacked.get(&b.seq));
        delivered.push(b.seq);
        from = b.seq + 1;
    }
    prop_assert_eq!(delivered, unacked.keys().copied().collect::<Vec<_>>());
    // The lanes split the same set at any boundary.
    let mid = appended / 2 + 1;
    let lanes = q.lanes(mid);
    prop_assert_eq!(lanes.backlog_batches, unacked.range(..mid).count() as u64);
    prop_assert_eq!(lanes.live_batches, unacked.range(mid..).count() as u64);
    prop_assert_eq!(lanes.backlog_oldest_ms, unacked.range(..mid).next().map(|(s, _)| *s as i64));
    prop_assert_eq!(lanes.live_oldest_ms, unacked.range(mid..).next().map(|(s, _)| *s as i64));
    // Enqueue times are the sequence numbers here: the live lane found by
    // cutoff holds exactly the unacknowledged batches queued from it on.
    let by_time = q.lanes(q.live_start(mid as i64));
    prop_assert_eq!(by_time, lanes);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn out_of_order_acks_deliver_exactly_the_unacknowledged(ops in proptest::collection::vec(ack_op(), 1..200)) {
        check_out_of_order_acks(ops, OverflowPolicy::Refuse)?;
    }

    #[test]
    fn out_of_order_acks_with_drop_oldest_lose_exactly_what_was_counted(ops in proptest::collection::vec(ack_op(), 1..200)) {
        check_out_of_order_acks(ops, OverflowPolicy::DropOldest)?;
    }

    #[test]
    fn behaves_like_a_vec(ops in proptest::collection::vec(op(), 1..160)) {
        check_against_model(ops, OverflowPolicy::Refuse)?;
    }

    #[test]
    fn drop_oldest_behaves_like_a_vec_losing_its_front(ops in proptest::collection::vec(op(), 1..160)) {
        check_against_model(ops, OverflowPolicy::DropOldest)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Whatever bytes a segment holds after a valid prefix, opening never
    /// panics: it repairs a torn tail or reports an error, and what it then
    /// reads back is what was written.
    #[test]
    fn damaged_segments_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        garbage in proptest::collection::vec(any::<u8>(), 0..64),
        cut in any::<prop::sample::Index>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = QueueConfig { fsync: FsyncPolicy::Never, ..cfg() };
        let (mut q, _) = open(dir.path(), config.clone());
        for i in 1..=6 {
            q.append(&payload(i), 0).unwrap();
        }
        drop(q);
        let path = last_segment(dir.path());
        let mut bytes = fs::read(&path).unwrap();
        for (at, x) in &flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        bytes.truncate(SEGMENT_HEADER_LEN + cut.index(bytes.len() - SEGMENT_HEADER_LEN + 1));
        bytes.extend_from_slice(&garbage);
        fs::write(&path, &bytes).unwrap();
        if let Ok((q, _)) = Queue::open(dir.path(), config) {
            for seq in 1..q.stats().next_seq {
                if let Ok(Some(b)) = q.read(seq) {
                    prop_assert_eq!(b.payload, payload(seq));
                }
            }
        }
    }
}
