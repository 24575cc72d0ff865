use strata_schemas::{Matcher, RollupPoint, Sample, TenantId};

use super::*;

fn req(start: i64, end: i64) -> EraseRequest {
    EraseRequest { selectors: vec![vec![Matcher::equal("device", "d-1")]], start, end }
}

fn t() -> TenantId {
    TenantId::new("acme").unwrap()
}

#[test]
fn rejects_requests_that_select_nothing_or_everything() {
    let ok = req(0, 10);
    ok.validate(&t()).unwrap();
    let none = EraseRequest { selectors: vec![], ..ok.clone() };
    assert!(matches!(none.validate(&t()), Err(Error::InvalidEraseRequest { .. })));
    let all = EraseRequest { selectors: vec![vec![Matcher::regex("device", ".*").unwrap()]], ..ok.clone() };
    assert!(matches!(all.validate(&t()), Err(Error::InvalidEraseRequest { .. })));
    let empty_set = EraseRequest { selectors: vec![vec![]], ..ok.clone() };
    assert!(matches!(empty_set.validate(&t()), Err(Error::InvalidEraseRequest { .. })));
    assert!(matches!(req(11, 10).validate(&t()), Err(Error::InvalidEraseRequest { .. })));
}

/// A window of width 100 ending at 200 written as two partials (one per
/// roll: samples up to 150, then 160..200); covered 120..=140 taken out.
#[test]
fn partial_rows_keep_their_share_of_the_window_and_recompute_is_idempotent() {
    let all: Vec<Sample> = (11..=20).map(|i| Sample::new(i * 10, i as f64)).collect();
    let (a, b) = all.split_at(5);
    let mut points = vec![RollupPoint::of(200, a).unwrap(), RollupPoint::of(200, b).unwrap()];
    let remaining: Vec<Sample> = all.iter().copied().filter(|s| !(120..=140).contains(&s.ts)).collect();
    assert_eq!(recompute_windows(&mut points, 100, (120, 239), &remaining), 1);
    let want_a: Vec<Sample> = remaining.iter().copied().filter(|s| s.ts <= 150).collect();
    assert!(same_points(&points, &[RollupPoint::of(200, &want_a).unwrap(), RollupPoint::of(200, b).unwrap()]));
    let again = points.clone();
    assert_eq!(recompute_windows(&mut points, 100, (120, 239), &remaining), 0);
    assert!(same_points(&points, &again));
    // A later sample that no stored partial covers yet (a roll in flight) is not counted.
    let mut with_late = remaining.clone();
    with_late.push(Sample::new(200, 99.0));
    let mut p2 = vec![RollupPoint::of(200, &want_a).unwrap(), RollupPoint::of(200, &b[..4]).unwrap()];
    let before = p2.clone();
    assert_eq!(recompute_windows(&mut p2, 100, (120, 239), &with_late), 0);
    assert!(same_points(&p2, &before));
}

#[test]
fn a_partial_with_nothing_left_is_dropped_and_windows_outside_stay() {
    let s: Vec<Sample> = (1..=4).map(|i| Sample::new(i * 10, 1.0)).collect();
    let outside = RollupPoint::of(500, &[Sample::new(450, 3.0)]).unwrap();
    let mut points = vec![RollupPoint::of(100, &s[..2]).unwrap(), RollupPoint::of(100, &s[2..]).unwrap(), outside];
    // 10 and 20 erased: the first partial goes, the second is unchanged.
    assert_eq!(recompute_windows(&mut points, 100, (0, 199), &s[2..]), 1);
    assert_eq!(points.len(), 2);
    assert!(same_points(&points, &[RollupPoint::of(100, &s[2..]).unwrap(), outside]));
    assert_eq!(recompute_windows(&mut points, 100, (0, 199), &[]), 1);
    assert!(same_points(&points, &[outside]));
}

/// The server runs erases on spawned tasks: the futures must be `Send`.
#[test]
fn erase_and_verify_futures_are_send() {
    fn is_send<T: Send>(_: &T) {}
    fn check(tier: &ColdTier, t: &TenantId, r: &EraseRequest) {
        is_send(&tier.erase(t, r));
        is_send(&tier.verify_erased(t, r));
    }
    let _ = check;
}
