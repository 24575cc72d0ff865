use super::*;

fn done_node(rows: u64) -> NodeProgress {
    let mut n = NodeProgress::default();
    for s in Step::ALL {
        n.steps.insert(
            s.key().to_owned(),
            StepProgress { state: StepState::Done, rows_removed: rows, finished_at: Some(50), ..Default::default() },
        );
    }
    n.verification = Some(Verification { at: 50, log_records_scanned: 3, ..Default::default() });
    n.done_at = Some(50);
    n
}

#[test]
fn a_request_completes_only_when_every_expected_node_is_done() {
    let mut s = Status::new(1_000, 3_600_000);
    assert_eq!((s.state.as_str(), s.deadline), (INVISIBLE, 3_601_000));
    s.nodes_expected = 2;
    s.nodes.insert("a".into(), done_node(4));
    s.summarise(2_000);
    assert_eq!(s.state, PURGING, "one of two nodes");
    assert_eq!(s.completed_at, None);
    assert_eq!(s.tiers["hot"].state, StepState::Running, "a node has not reported yet");
    s.nodes.insert("b".into(), done_node(6));
    s.summarise(3_000);
    assert_eq!(s.state, COMPLETED);
    assert_eq!((s.completed_at, s.bound_met), (Some(3_000), Some(true)));
    assert_eq!(s.tiers["hot"].rows_removed, 10);
    assert_eq!(s.rows_removed, 40, "four steps of two nodes");
    let v = s.verification.clone().unwrap();
    assert!(v.clean());
    assert_eq!(v.log_records_scanned, 6);
    s.summarise(9_999_999);
    assert_eq!(s.completed_at, Some(3_000), "completion time is kept");
}

#[test]
fn the_bound_is_missed_when_completion_is_after_the_deadline() {
    let mut s = Status::new(0, 10);
    s.nodes_expected = 1;
    s.nodes.insert("a".into(), done_node(1));
    s.summarise(11);
    assert_eq!(s.bound_met, Some(false));
}

#[test]
fn a_status_from_before_the_purge_reads_as_fresh() {
    let old = r#"{"state":"invisible","invisible_at":5,"tiers":{"hot":"not purged"}}"#;
    let s = Status::parse(old, 5, 100);
    assert_eq!((s.state.as_str(), s.deadline, s.nodes.len()), (INVISIBLE, 105, 0));
    let round = Status::parse(&serde_json::to_string(&s).unwrap(), 5, 999);
    assert_eq!(round, s, "a current status parses as itself");
}

#[test]
fn next_step_follows_the_order_and_skips_off_tiers() {
    let mut n = NodeProgress::default();
    assert_eq!(n.next_step(), Some(Step::Log));
    n.steps.insert("log".into(), StepProgress { state: StepState::Done, ..Default::default() });
    n.steps.insert("hot".into(), StepProgress { state: StepState::Running, ..Default::default() });
    assert_eq!(n.next_step(), Some(Step::Hot), "a step left running by a crash runs again");
    n.steps.insert("hot".into(), StepProgress { state: StepState::Done, ..Default::default() });
    n.steps.insert("cold".into(), StepProgress { state: StepState::Off, ..Default::default() });
    assert_eq!(n.next_step(), Some(Step::Verify));
    n.restart();
    assert_eq!(n.next_step(), Some(Step::Log));
}
