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
        _decoded: Option<&(dyn std::any::Any + Send)>,
    ) -> std::result::Result<(), String> {
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

#[test]
fn corrupt_middle_record_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path(), 1);
    rt().block_on(async {
        for i in 0..3u8 {
            log.append(vec![LogRecord::new(0, vec![i; 10])]).await.unwrap();
        }
    });
    let path = log.shared(0).unwrap().segment_path(0);
    drop(log);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[HEADER_LEN + segment::FRAME_HEADER_LEN + 2] ^= 0xff; // payload of record 0
    std::fs::write(&path, &bytes).unwrap();
    let sink = Arc::new(Recorder::default());
    let err = LocalLog::open(dir.path(), &config(1), |_| 0, sink).unwrap_err();
    assert!(matches!(err, Error::Corrupted { .. }), "{err}");
    assert!(err.to_string().contains("00000000000000000000.seg"), "{err}");
}

#[test]
fn release_deletes_only_fully_consumed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path(), 1);
    rt().block_on(async {
        for _ in 0..40 {
            log.append(vec![LogRecord::new(0, vec![7; 500])]).await.unwrap();
        }
    });
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
