use super::*;

fn tenant(s: &str) -> TenantId {
    TenantId::new(s).unwrap()
}

#[test]
fn a_started_task_is_running_with_its_counters() {
    let r = Registry::new();
    let t = r.start(TaskKind::Replay, None, Some(3), "records", Some(10));
    t.add(4);
    t.add(2);
    let running = r.running();
    assert_eq!(running.len(), 1);
    let s = &running[0];
    assert_eq!((s.kind, s.partition, s.unit, s.done, s.total), (TaskKind::Replay, Some(3), "records", 6, Some(10)));
    assert_eq!(s.state, TaskState::Running);
    assert_eq!(s.fraction(), Some(0.6));
    assert!(s.ended_ms.is_none());
    assert!(r.recent().is_empty());
}

#[test]
fn finishing_moves_the_task_to_recent_with_its_final_counts() {
    let r = Registry::new();
    let t = r.start(TaskKind::Roll, Some(&tenant("acme")), None, "buckets", None);
    t.set_total(3);
    t.set_done(3);
    let last = t.finish();
    assert_eq!(last.state, TaskState::Finished);
    assert_eq!((last.done, last.total), (3, Some(3)));
    assert!(last.ended_ms.is_some() && last.eta_secs.is_none());
    assert!(r.running().is_empty());
    assert_eq!(r.recent(), vec![last]);
    assert_eq!(r.ended_count(TaskKind::Roll), 1);
    assert_eq!(r.ended_count(TaskKind::Merge), 0);
}

#[test]
fn a_dropped_task_is_recorded_as_stopped() {
    let r = Registry::new();
    {
        let t = r.start(TaskKind::Merge, Some(&tenant("acme")), None, "merges", Some(5));
        t.add(1);
    }
    let recent = r.recent();
    assert_eq!(recent.len(), 1);
    assert_eq!((recent[0].state, recent[0].done), (TaskState::Stopped, 1));
    assert!(r.running().is_empty());
}

#[test]
fn recent_keeps_the_newest_tasks_first_and_is_bounded() {
    let r = Registry::new();
    for i in 0..(RECENT as u64 + 5) {
        let t = r.start(TaskKind::Replay, None, Some(0), "records", Some(i));
        t.set_done(i);
        t.finish();
    }
    let recent = r.recent();
    assert_eq!(recent.len(), RECENT);
    assert_eq!(recent[0].total, Some(RECENT as u64 + 4), "newest first");
    assert_eq!(recent[RECENT - 1].total, Some(5), "the oldest five were dropped");
    assert_eq!(r.ended_count(TaskKind::Replay), RECENT as u64 + 5);
}

#[test]
fn ids_increase_and_running_tasks_are_oldest_first() {
    let r = Registry::new();
    let a = r.start(TaskKind::Rebuild, None, Some(0), "records", None);
    let b = r.start(TaskKind::Rebuild, None, Some(1), "records", None);
    assert!(b.id() > a.id());
    let ids: Vec<u64> = r.running().iter().map(|s| s.id).collect();
    assert_eq!(ids, vec![a.id(), b.id()]);
    assert_eq!(r.running()[0].total, None, "unknown total");
    assert_eq!(r.running()[0].fraction(), None);
    drop(a);
    assert_eq!(r.running().iter().map(|s| s.id).collect::<Vec<_>>(), vec![b.id()]);
}

#[test]
fn concurrent_adds_are_all_counted() {
    let r = Registry::new();
    let t = r.start(TaskKind::Replay, None, Some(0), "records", Some(8000));
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..1000 {
                    t.add(1);
                }
            });
        }
    });
    assert_eq!(t.done(), 8000);
    assert_eq!(t.finish().fraction(), Some(1.0));
}

#[test]
fn rate_and_eta_follow_the_counters() {
    assert_eq!(rate_per_sec(500, Duration::from_secs(2)), 250.0);
    assert_eq!(rate_per_sec(500, Duration::ZERO), 0.0);
    assert_eq!(eta_secs(500, Some(1500), 250.0), Some(4.0));
    assert_eq!(eta_secs(500, None, 250.0), None, "unknown total");
    assert_eq!(eta_secs(0, Some(10), 0.0), None, "no progress yet");
    assert_eq!(eta_secs(12, Some(10), 0.0), Some(0.0), "done past the total");
}

#[test]
fn an_empty_task_is_complete_and_json_names_kinds_in_snake_case() {
    let r = Registry::new();
    let t = r.start(TaskKind::Rebuild, Some(&tenant("acme")), Some(2), "records", Some(0));
    let s = t.finish();
    assert_eq!(s.fraction(), Some(1.0));
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["kind"], "rebuild");
    assert_eq!(v["state"], "finished");
    assert_eq!(v["tenant"], "acme");
    assert_eq!(v["partition"], 2);
    let names: Vec<&str> = TaskKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(names, ["replay", "rebuild", "roll", "merge"]);
}
