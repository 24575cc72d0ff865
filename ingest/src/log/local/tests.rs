use super::*;
use std::collections::BTreeMap;

/// A sink that records what it was given, per partition.
#[derive(Default)]
struct Recorder(Mutex<BTreeMap<u32, Records>>);

/// `(offset, payload)` pairs in the order they were applied.
type Records = Vec<(u64, Vec<u8>)>;

impl LogSink for Recorder {
    fn apply(
        &self,
        partition: u32,
        offset: u64,
        payload: &[u8],
        _decoded: Option<&strata_schemas::WriteBatch>,
    ) -> std::result::Result<(), strata_schemas::ApplyError> {
        self.0.lock().entry(partition).or_default().push((offset, payload.to_vec()));
        Ok(())
    }
}

fn config(partitions: u32) -> LogConfig {
    LogConfig { partitions, segment_bytes: 4096, ..LogConfig::default() }
}

fn open(dir: &Path, partitions: u32) -> (LocalLog, Arc<Recorder>) {
    let sink = Arc::new(Recorder::default());
    let log = LocalLog::open(dir, &config(partitions), |_| 0, Arc::clone(&sink) as Arc<dyn LogSink>).unwrap();
    (log, sink)
}

fn replay_all(log: &LocalLog, partition: u32, from: u64) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    log.replay(partition, from, &mut |o, p| {
        out.push((o, p.to_vec()));
        Ok(())
    })
    .unwrap();
    out
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn appends_are_applied_in_offset_order_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (log, sink) = open(dir.path(), 2);
    let log = Arc::new(log);
    rt().block_on(async {
        let mut tasks = Vec::new();
        for t in 0..8u32 {
            let log = Arc::clone(&log);
            tasks.push(tokio::spawn(async move {
                for i in 0..50u32 {
                    let payload = format!("{t}-{i}-{}", "x".repeat(40)).into_bytes();
                    log.append(vec![LogRecord::new(t % 2, payload)]).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let applied = sink.0.lock().clone();
    for p in 0..2 {
        let offsets: Vec<u64> = applied[&p].iter().map(|(o, _)| *o).collect();
        assert_eq!(offsets, (0..200).collect::<Vec<_>>(), "partition {p} applied in order");
    }
    assert!(log.shared(0).unwrap().segments.lock().len() > 1, "small segment_bytes rolls segments");
    drop(log);

    let (log, _) = open(dir.path(), 2);
    for p in 0..2 {
        assert_eq!(replay_all(&log, p, 0), applied[&p]);
        assert_eq!(replay_all(&log, p, 150), applied[&p][150..].to_vec());
        assert_eq!(log.next_offset(p), 200);
    }
}

#[test]
fn torn_tail_is_truncated_on_open_and_numbering_continues() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path(), 1);
    rt().block_on(async {
        for i in 0..3u8 {
            log.append(vec![LogRecord::new(0, vec![i; 10])]).await.unwrap();
        }
    });
    let path = log.shared(0).unwrap().segment_path(0);
    drop(log);
    // A crash in the middle of writing a group: half a frame at the end.
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&[20, 0, 0, 0, 1, 2, 3]).unwrap();
    drop(f);

    let (log, sink) = open(dir.path(), 1);
    assert_eq!(log.next_offset(0), 3);
    assert_eq!(replay_all(&log, 0, 0).len(), 3);
    rt().block_on(async { log.append(vec![LogRecord::new(0, b"after".to_vec())]).await.unwrap() });
    assert_eq!(sink.0.lock()[&0], vec![(3, b"after".to_vec())]);
    drop(log);
    let (log, _) = open(dir.path(), 1);
    assert_eq!(replay_all(&log, 0, 3), vec![(3, b"after".to_vec())]);
}

/// Appends `n` records of 10 bytes (`[i; 10]`) to partition 0, one group each.
fn append_n(log: &LocalLog, n: u8) {
    rt().block_on(async {
        for i in 0..n {
            log.append(vec![LogRecord::new(0, vec![i; 10])]).await.unwrap();
        }
    });
}

/// Appends 40 records of 500 bytes to partition 0: several segments of the
/// small segment size [`open`] configures.
fn append_40_large(log: &LocalLog) {
    rt().block_on(async {
        for _ in 0..40 {
            log.append(vec![LogRecord::new(0, vec![7; 500])]).await.unwrap();
        }
    });
}

/// Byte position of the frame of record `i` in a segment of 10-byte records.
fn frame_of(i: usize) -> usize {
    HEADER_LEN + i * (segment::FRAME_HEADER_LEN + 10)
}

fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0xff;
    std::fs::write(path, &bytes).unwrap();
}

fn quarantined(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join(QUARANTINE_DIR))
        .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn corrupt_middle_record_is_quarantined_and_the_records_around_it_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path(), 1);
    append_n(&log, 5);
    let path = log.shared(0).unwrap().segment_path(0);
    drop(log);
    let original = std::fs::read(&path).unwrap();
    flip(&path, frame_of(2) + segment::FRAME_HEADER_LEN + 2); // payload of record 2

    let (log, sink) = open(dir.path(), 1);
    let offsets: Vec<u64> = replay_all(&log, 0, 0).iter().map(|r| r.0).collect();
    assert_eq!(offsets, vec![0, 1, 3, 4], "records before and after the damage are kept");
    assert_eq!(replay_all(&log, 0, 3), vec![(3, vec![3; 10]), (4, vec![4; 10])]);
    assert_eq!(log.next_offset(0), 5);
    assert_eq!(quarantined(dir.path()), vec!["p0000-00000000000000000000.seg"]);
    let copy = std::fs::read(dir.path().join(QUARANTINE_DIR).join("p0000-00000000000000000000.seg")).unwrap();
    assert_eq!(copy.len(), original.len(), "the quarantine holds the whole damaged file");
    let h = log.health();
    assert_eq!(h.quarantined_segments.load(Ordering::Relaxed), 1);
    assert_eq!(h.quarantined_bytes.load(Ordering::Relaxed), (segment::FRAME_HEADER_LEN + 10) as u64);
    assert_eq!(h.lost_offsets.load(Ordering::Relaxed), 1);
    assert_eq!(*log.shared(0).unwrap().segments.lock(), vec![0, 3]);
    rt().block_on(async { log.append(vec![LogRecord::new(0, b"after".to_vec())]).await.unwrap() });
    assert_eq!(sink.0.lock()[&0], vec![(5, b"after".to_vec())]);
    drop(log);

    // The repair is durable: a second open finds nothing new.
    let (log, _) = open(dir.path(), 1);
    let offsets: Vec<u64> = replay_all(&log, 0, 0).iter().map(|r| r.0).collect();
    assert_eq!(offsets, vec![0, 1, 3, 4, 5]);
    assert_eq!(log.health().quarantined_segments.load(Ordering::Relaxed), 0);
    assert_eq!(quarantined(dir.path()).len(), 1);
}

#[test]
fn corrupt_last_complete_record_is_quarantined_as_corruption_not_truncated_as_torn() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path(), 1);
    append_n(&log, 3);
    let path = log.shared(0).unwrap().segment_path(0);
    drop(log);
    let len = std::fs::metadata(&path).unwrap().len() as usize;
    flip(&path, len - 1); // last payload byte of record 2: the frame is complete

    let (log, sink) = open(dir.path(), 1);
    assert_eq!(replay_all(&log, 0, 0).len(), 2);
    assert_eq!(quarantined(dir.path()).len(), 1, "damage is quarantined, not truncated as a torn tail");
    let h = log.health();
    assert_eq!(h.quarantined_segments.load(Ordering::Relaxed), 1);
    assert_eq!(h.lost_offsets.load(Ordering::Relaxed), 1);
    // Offset 2 (an acknowledged record) is never handed out again.
    let next = log.next_offset(0);
    assert!(next > 2, "{next}");
    rt().block_on(async { log.append(vec![LogRecord::new(0, b"after".to_vec())]).await.unwrap() });
    assert_eq!(sink.0.lock()[&0], vec![(next, b"after".to_vec())]);
    drop(log);
    let (log, _) = open(dir.path(), 1);
    let offsets: Vec<u64> = replay_all(&log, 0, 0).iter().map(|r| r.0).collect();
    assert_eq!(offsets, vec![0, 1, next]);
    assert_eq!(replay_all(&log, 0, 2), vec![(next, b"after".to_vec())]);
    assert_eq!(log.next_offset(0), next + 1);
}

#[test]
fn damage_below_the_hot_stores_flushed_offset_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path(), 1);
    append_n(&log, 5);
    let path = log.shared(0).unwrap().segment_path(0);
    drop(log);
    flip(&path, frame_of(1) + segment::FRAME_HEADER_LEN + 2);
    let sink = Arc::new(Recorder::default());
    let log = LocalLog::open(dir.path(), &config(1), |_| 3, sink).unwrap();
    assert_eq!(log.health().quarantined_segments.load(Ordering::Relaxed), 1);
    assert_eq!(log.health().lost_offsets.load(Ordering::Relaxed), 0, "record 1 is in the hot store's segments");
    assert_eq!(replay_all(&log, 0, 3).len(), 2);
    assert_eq!(log.next_offset(0), 5);
}

#[test]
fn damage_in_an_older_segment_leaves_a_gap_that_replay_skips() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path(), 1);
    rt().block_on(async {
        for i in 0..40u8 {
            log.append(vec![LogRecord::new(0, vec![i; 500])]).await.unwrap();
        }
    });
    let bases = log.shared(0).unwrap().segments.lock().clone();
    assert!(bases.len() >= 3, "{bases:?}");
    let path = log.shared(0).unwrap().segment_path(bases[0]);
    drop(log);
    // Damage the length field of record 1 so nothing after it in the file can be found by length.
    let mut bytes = std::fs::read(&path).unwrap();
    let second = HEADER_LEN + segment::FRAME_HEADER_LEN + 500;
    bytes[second + 3] = 0x7f;
    std::fs::write(&path, &bytes).unwrap();

    let (log, _) = open(dir.path(), 1);
    let offsets: Vec<u64> = replay_all(&log, 0, 0).iter().map(|r| r.0).collect();
    let expected: Vec<u64> = [0].into_iter().chain(2..40).collect();
    assert_eq!(offsets, expected, "the scan resynchronises after the damaged frame");
    assert_eq!(log.next_offset(0), 40);
    assert_eq!(log.health().lost_offsets.load(Ordering::Relaxed), 1);
    drop(log);
    let (log, _) = open(dir.path(), 1);
    assert_eq!(replay_all(&log, 0, 0).len(), 39);
}

#[test]
fn unresyncable_damage_in_an_older_segment_loses_only_that_segments_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path(), 1);
    rt().block_on(async {
        for i in 0..40u8 {
            log.append(vec![LogRecord::new(0, vec![i; 500])]).await.unwrap();
        }
    });
    let bases = log.shared(0).unwrap().segments.lock().clone();
    let path = log.shared(0).unwrap().segment_path(bases[0]);
    drop(log);
    // Damage every frame after the first one of the oldest segment.
    let mut bytes = std::fs::read(&path).unwrap();
    let second = HEADER_LEN + segment::FRAME_HEADER_LEN + 500;
    for b in &mut bytes[second..] {
        *b ^= 0x55;
    }
    std::fs::write(&path, &bytes).unwrap();

    let (log, _) = open(dir.path(), 1);
    let offsets: Vec<u64> = replay_all(&log, 0, 0).iter().map(|r| r.0).collect();
    let expected: Vec<u64> = [0].into_iter().chain(bases[1]..40).collect();
    assert_eq!(offsets, expected);
    assert_eq!(log.health().lost_offsets.load(Ordering::Relaxed), bases[1] - 1);
    assert_eq!(log.next_offset(0), 40);
}

#[test]
fn damaged_header_is_rewritten_and_its_records_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path(), 1);
    append_n(&log, 3);
    let path = log.shared(0).unwrap().segment_path(0);
    drop(log);
    flip(&path, 10); // partition field, covered by the header checksum
    let (log, _) = open(dir.path(), 1);
    assert_eq!(replay_all(&log, 0, 0).len(), 3);
    assert_eq!(log.next_offset(0), 3);
    assert_eq!(quarantined(dir.path()).len(), 1);
    assert_eq!(log.health().lost_offsets.load(Ordering::Relaxed), 0);
}

#[test]
fn an_interrupted_repair_is_finished_on_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path(), 1);
    append_n(&log, 5);
    let pdir = log.shared(0).unwrap().dir.clone();
    let path = log.shared(0).unwrap().segment_path(0);
    drop(log);
    flip(&path, frame_of(2) + segment::FRAME_HEADER_LEN + 2);
    // As if a crash hit after the records after the damage were moved to
    // their own file, before the original was cut.
    let bytes = std::fs::read(&path).unwrap();
    create_segment(&pdir, 0, 3, &bytes[frame_of(3)..]).unwrap();

    let (log, _) = open(dir.path(), 1);
    let offsets: Vec<u64> = replay_all(&log, 0, 0).iter().map(|r| r.0).collect();
    assert_eq!(offsets, vec![0, 1, 3, 4]);
    assert_eq!(log.next_offset(0), 5);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), frame_of(2) as u64);
}

#[test]
fn torn_tail_is_not_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path(), 1);
    append_n(&log, 3);
    let path = log.shared(0).unwrap().segment_path(0);
    drop(log);
    let len = std::fs::metadata(&path).unwrap().len();
    OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 3).unwrap();
    let (log, _) = open(dir.path(), 1);
    assert_eq!(replay_all(&log, 0, 0).len(), 2);
    assert_eq!(log.next_offset(0), 2, "an unacknowledged torn write's offset is reused");
    assert!(quarantined(dir.path()).is_empty());
    assert_eq!(log.health().quarantined_segments.load(Ordering::Relaxed), 0);
}

#[test]
fn release_deletes_only_fully_consumed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path(), 1);
    append_40_large(&log);
    let before = log.shared(0).unwrap().segments.lock().clone();
    assert!(before.len() >= 3, "{before:?}");
    let removed = log.release(0, before[2]).unwrap();
    assert_eq!(removed, 2);
    assert_eq!(log.first_offset(0), before[2]);
    assert_eq!(replay_all(&log, 0, before[2]).len() as u64, 40 - before[2]);
    // Releasing everything rolls the active segment and deletes the old one.
    log.release(0, 40).unwrap();
    assert_eq!(*log.shared(0).unwrap().segments.lock(), vec![40]);
    assert!(replay_all(&log, 0, 0).is_empty());
    // An empty active segment is never rolled or deleted; numbering goes on.
    log.release(0, u64::MAX).unwrap();
    assert_eq!(*log.shared(0).unwrap().segments.lock(), vec![40]);
    rt().block_on(async { log.append(vec![LogRecord::new(0, b"next".to_vec())]).await.unwrap() });
    assert_eq!(replay_all(&log, 0, 0), vec![(40, b"next".to_vec())]);
}

#[test]
fn a_release_cut_off_by_a_crash_leaves_nothing_that_reads_as_damage() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (log, _) = open(dir.path(), 1);
        append_40_large(&log);
        let bases = log.shared(0).unwrap().segments.lock().clone();
        log.release(0, bases[2]).unwrap();
        let pdir = dir.path().join("p0000");
        let names: Vec<String> =
            std::fs::read_dir(&pdir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert!(names.iter().all(|n| !n.ends_with(RELEASED_SUFFIX)), "{names:?}");
        // What a crash while a released segment is cut down leaves: the
        // renamed file, part of it gone.
        let cut = pdir.join(format!("{:020}{RELEASED_SUFFIX}", bases[2] - 1));
        std::fs::copy(pdir.join(format!("{:020}.seg", bases[2])), &cut).unwrap();
        let len = std::fs::metadata(&cut).unwrap().len();
        OpenOptions::new().write(true).open(&cut).unwrap().set_len(len / 2).unwrap();
    }
    let (log, _) = open(dir.path(), 1);
    assert!(
        !dir.path()
            .join("p0000")
            .read_dir()
            .unwrap()
            .any(|e| { e.unwrap().file_name().to_string_lossy().ends_with(RELEASED_SUFFIX) })
    );
    assert!(quarantined(dir.path()).is_empty());
    assert_eq!(log.health().quarantined_segments.load(Ordering::Relaxed), 0);
    let bases = log.shared(0).unwrap().segments.lock().clone();
    assert_eq!(replay_all(&log, 0, bases[0]).len() as u64, 40 - bases[0]);
}

#[test]
fn release_keeps_a_partially_consumed_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path(), 1);
    rt().block_on(async {
        for _ in 0..3 {
            log.append(vec![LogRecord::new(0, vec![1; 10])]).await.unwrap();
        }
    });
    assert_eq!(log.release(0, 2).unwrap(), 0);
    assert_eq!(replay_all(&log, 0, 2).len(), 1);
    assert_eq!(replay_all(&log, 0, 0).len(), 3);
}

#[test]
fn numbering_continues_from_the_consumer_floor_when_the_log_is_behind() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(Recorder::default());
    let log = LocalLog::open(dir.path(), &config(1), |_| 1000, Arc::clone(&sink) as Arc<dyn LogSink>).unwrap();
    assert_eq!(log.next_offset(0), 1000);
    rt().block_on(async { log.append(vec![LogRecord::new(0, b"x".to_vec())]).await.unwrap() });
    assert_eq!(sink.0.lock()[&0][0].0, 1000);
}

#[test]
fn partition_count_cannot_change() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path(), 2));
    let sink = Arc::new(Recorder::default());
    let err = LocalLog::open(dir.path(), &config(3), |_| 0, sink).unwrap_err();
    assert!(matches!(err, Error::PartitionCountChanged { on_disk: 2, configured: 3, .. }), "{err}");
}

#[test]
fn append_after_close_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path(), 1);
    log.close();
    let err = rt().block_on(async { log.append(vec![LogRecord::new(0, b"x".to_vec())]).await.unwrap_err() });
    assert!(matches!(err, Error::Closed));
}

/// A small tmpfs mounted on a temporary directory (unmounted on drop), or
/// `None` when this process may not mount (not root, no tmpfs).
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount(bytes: u64) -> Option<SmallFs> {
        let dir = tempfile::tempdir().ok()?;
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(SmallFs { dir })
    }

    /// Fills the file system with `filler` until a write fails for lack of space.
    fn fill(&self) -> PathBuf {
        let path = self.dir.path().join("filler");
        let mut f = File::create(&path).unwrap();
        let chunk = vec![0xa5u8; 4096];
        loop {
            match f.write_all(&chunk) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling the small file system: {e}"),
            }
        }
        path
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_disk_refuses_writes_without_poisoning_and_they_resume_when_space_returns() {
    let Some(fs) = SmallFs::mount(1 << 20) else {
        eprintln!(
            "SKIPPED a_full_disk_refuses_writes_without_poisoning_and_they_resume_when_space_returns: \
             cannot mount a tmpfs here (needs root)"
        );
        return;
    };
    let dir = fs.dir.path().join("log");
    let (log, sink) = open(&dir, 1);
    append_n(&log, 3);
    let filler = fs.fill();
    let append = |payload: Vec<u8>| rt().block_on(async { log.append(vec![LogRecord::new(0, payload)]).await });
    for _ in 0..2 {
        match append(vec![9; 8000]) {
            Err(Error::DiskFull { path, .. }) => assert!(path.starts_with(&dir), "{}", path.display()),
            other => panic!("expected a disk-full error, got {other:?}"),
        }
    }
    assert!(!log.shared(0).unwrap().poisoned.load(Ordering::Acquire));
    assert_eq!(log.next_offset(0), 3);
    assert_eq!(log.health().disk_full_refusals.load(Ordering::Relaxed), 2);
    std::fs::remove_file(filler).unwrap();
    assert_eq!(append(b"after".to_vec()).unwrap(), vec![3]);
    assert_eq!(sink.0.lock()[&0].last().unwrap(), &(3, b"after".to_vec()));
    drop(log);
    // Nothing of the refused writes reached the file.
    let (log, _) = open(&dir, 1);
    let offsets: Vec<u64> = replay_all(&log, 0, 0).iter().map(|r| r.0).collect();
    assert_eq!(offsets, vec![0, 1, 2, 3]);
    assert!(quarantined(&dir).is_empty());
}

#[test]
fn a_request_spanning_every_partition_is_made_durable_by_one_sync_round() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(Recorder::default());
    // A gather bound that never runs out: the count of rounds does not depend on scheduling.
    let gather = std::time::Duration::from_secs(3600);
    let log = LocalLog::open_gathering(dir.path(), &config(8), |_| 0, Arc::clone(&sink) as _, gather).unwrap();
    assert_eq!(log.sync_rounds(), 0);
    for n in 1..=3u64 {
        let records = (0..8).map(|p| LogRecord::new(p, format!("r{n}-p{p}").into_bytes())).collect();
        let offsets = rt().block_on(log.append(records)).unwrap();
        assert_eq!(offsets, vec![n - 1; 8]);
        assert_eq!(log.sync_rounds(), n, "request {n}: its 8 partitions synced in one round");
    }
    drop(log);
    let (log, _) = open(dir.path(), 8);
    for p in 0..8u32 {
        let payloads: Vec<Vec<u8>> = replay_all(&log, p, 0).into_iter().map(|r| r.1).collect();
        let want: Vec<Vec<u8>> = (1..=3).map(|n| format!("r{n}-p{p}").into_bytes()).collect();
        assert_eq!(payloads, want, "partition {p}");
    }
}

/// `sync = "interval"`: appends are acknowledged without a sync round, the
/// background thread syncs what they wrote (the dirty marks clear), and
/// everything is there after a reopen, across rolled segments.
#[test]
fn an_interval_log_acknowledges_without_rounds_and_syncs_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(Recorder::default());
    let cfg = LogConfig { sync: SyncMode::Interval, sync_interval: Duration::from_millis(5), ..config(2) };
    let log = LocalLog::open(dir.path(), &cfg, |_| 0, Arc::clone(&sink) as _).unwrap();
    let runtime = rt();
    for n in 0..100u64 {
        let records =
            (0..2).map(|p| LogRecord::new(p, format!("r{n}-p{p}-{}", "x".repeat(100)).into_bytes())).collect();
        assert_eq!(runtime.block_on(log.append(records)).unwrap(), vec![n; 2]);
    }
    assert_eq!(log.sync_rounds(), 0, "no write waited for a sync round");
    assert!(log.shared(0).unwrap().segments.lock().len() > 1, "small segment_bytes rolls segments");
    let deadline = Instant::now() + Duration::from_secs(10);
    while (0..2).any(|p| log.shared(p).unwrap().dirty.load(Ordering::Acquire)) {
        assert!(Instant::now() < deadline, "the background thread never synced");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(sink.0.lock()[&1].len(), 100, "every acknowledged record was applied");
    drop(log);
    let (log, _) = open_with(dir.path(), cfg);
    for p in 0..2u32 {
        let payloads: Vec<Vec<u8>> = replay_all(&log, p, 0).into_iter().map(|r| r.1).collect();
        let want: Vec<Vec<u8>> = (0..100).map(|n| format!("r{n}-p{p}-{}", "x".repeat(100)).into_bytes()).collect();
        assert_eq!(payloads, want, "partition {p}");
    }
}

/// Environment variable naming the log directory of [`crash_child_appends_until_killed`].
const CRASH_CHILD_DIR: &str = "STRATA_TEST_LOG_CRASH_CHILD_DIR";
/// Environment variable set (to anything) when that child's log is an `interval` one.
const CRASH_CHILD_INTERVAL: &str = "STRATA_TEST_LOG_CRASH_CHILD_INTERVAL";

/// Partitions, writer tasks and segment size of the kill -9 test.
const CRASH_PARTITIONS: u32 = 8;

fn crash_config(sync: SyncMode) -> LogConfig {
    LogConfig { partitions: CRASH_PARTITIONS, segment_bytes: 16 << 10, sync, ..LogConfig::default() }
}

/// The child process of
/// [`a_kill_9_between_partition_writes_loses_nothing_acknowledged`]: does
/// nothing unless started by it. Four tasks append requests of one record
/// per partition and print `ack <task> <n>` once a request is acknowledged,
/// until the process is killed.
#[test]
fn crash_child_appends_until_killed() {
    let Some(dir) = std::env::var_os(CRASH_CHILD_DIR) else { return };
    let sync = if std::env::var_os(CRASH_CHILD_INTERVAL).is_some() { SyncMode::Interval } else { SyncMode::Always };
    let sink = Arc::new(Recorder::default());
    let log = Arc::new(LocalLog::open(Path::new(&dir), &crash_config(sync), |_| 0, sink).unwrap());
    rt().block_on(async {
        let tasks: Vec<_> = (0..4u32)
            .map(|t| {
                let log = Arc::clone(&log);
                tokio::spawn(async move {
                    for n in 0u64.. {
                        let records = (0..CRASH_PARTITIONS)
                            .map(|p| LogRecord::new(p, format!("{t} {n} {p} {}", "x".repeat(200)).into_bytes()))
                            .collect();
                        log.append(records).await.unwrap();
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "ack {t} {n}").unwrap();
                        out.flush().unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
}

#[test]
fn a_kill_9_between_partition_writes_loses_nothing_acknowledged() {
    kill_9_rounds(SyncMode::Always);
}

/// The same with `sync = "interval"`: acknowledged once written, the
/// records are in the page cache, which a killed process does not take
/// with it.
#[test]
fn a_kill_9_of_an_interval_synced_log_loses_nothing_acknowledged() {
    kill_9_rounds(SyncMode::Interval);
}

fn kill_9_rounds(sync: SyncMode) {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("log");
    for round in 0..2 {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap());
        child
            .args(["--exact", "log::local::tests::crash_child_appends_until_killed", "--nocapture", "--test-threads=1"])
            .env(CRASH_CHILD_DIR, &log_dir);
        if sync == SyncMode::Interval {
            child.env(CRASH_CHILD_INTERVAL, "1");
        }
        let mut child = child.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null()).spawn().unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut acked = Vec::new();
        // Killed while its writers are mid-request: 300 acknowledged, others in flight.
        while acked.len() < 300 {
            let line = lines.next().expect("the child stopped before 300 acknowledgements").unwrap();
            if let Some(ack) = line.strip_prefix("ack ") {
                acked.push(ack.to_owned());
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Acknowledgements printed before the kill and still in the pipe count too.
        acked.extend(lines.map_while(|l| l.ok()).filter_map(|l| l.strip_prefix("ack ").map(str::to_owned)));

        let (log, _) = open_with(&log_dir, crash_config(sync));
        for p in 0..CRASH_PARTITIONS {
            let mut seen = std::collections::HashSet::new();
            for (_, payload) in replay_all(&log, p, 0) {
                let text = String::from_utf8(payload).unwrap();
                let mut f = text.split(' ');
                let (t, n, part) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
                assert_eq!(part, p.to_string(), "a record of partition {part} in partition {p}");
                assert!(seen.insert(format!("{t} {n}")), "round {round}: {t} {n} twice in partition {p}");
            }
            for a in &acked {
                assert!(seen.contains(a), "round {round}: acknowledged request {a} missing from partition {p}");
            }
        }
        assert!(quarantined(&log_dir).is_empty(), "a kill -9 leaves at most a torn tail, never damage");
        // Each round starts from an empty directory (the child's request numbers restart at 0).
        drop(log);
        std::fs::remove_dir_all(&log_dir).unwrap();
    }
}

fn open_with(dir: &Path, config: LogConfig) -> (LocalLog, Arc<Recorder>) {
    let sink = Arc::new(Recorder::default());
    let log = LocalLog::open(dir, &config, |_| 0, Arc::clone(&sink) as Arc<dyn LogSink>).unwrap();
    (log, sink)
}
