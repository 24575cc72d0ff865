use super::*;

fn t(s: &str) -> TenantId {
    TenantId::new(s).unwrap()
}

fn sel(idx: &SeriesIndex, m: &[Matcher]) -> Vec<u32> {
    idx.select(&t("a"), m).to_vec()
}

#[test]
fn same_labels_resolve_to_the_same_series() {
    let mut idx = SeriesIndex::default();
    let l = Labels::from_pairs([("__name__", "m")]);
    let a = idx.resolve(&t("a"), SeriesId(1), 0, &l);
    assert_eq!(idx.resolve(&t("a"), SeriesId(1), 0, &l), a);
    assert_eq!(idx.len(), 1);
}

#[test]
fn lookup_finds_only_existing_series_and_removals_invalidate_it() {
    let mut idx = SeriesIndex::default();
    let a = Labels::from_pairs([("__name__", "m"), ("x", "1")]);
    let b = Labels::from_pairs([("__name__", "m"), ("x", "2")]);
    assert_eq!(idx.slot_of(&t("t")), None, "a lookup registers no tenant");
    let ra = idx.resolve(&t("t"), SeriesId(7), 0, &a);
    let slot = idx.slot_of(&t("t")).unwrap();
    assert_eq!(idx.lookup_in(slot, SeriesId(7), &a), Some((ra, true)), "the set it was created with");
    let copy = Labels::from_pairs([("__name__", "m"), ("x", "1")]);
    assert_eq!(idx.lookup_in(slot, SeriesId(7), &copy), Some((ra, false)), "an equal set, compared");
    idx.remember_labels_addr(ra, copy.addr());
    assert_eq!(idx.lookup_in(slot, SeriesId(7), &copy), Some((ra, true)));
    let pairs: Vec<(Str, Str)> = a.iter().map(|l| (l.name.clone(), l.value.clone())).collect();
    assert_eq!(idx.lookup_in(slot, SeriesId(7), pairs.as_slice()), Some((ra, false)), "no address: compared");
    assert_eq!(idx.lookup_in(slot, SeriesId(8), &a), None, "unknown id");
    assert_eq!(idx.lookup_in(slot, SeriesId(7), &b), None, "colliding labels are resolved under the write lock");
    assert_eq!(idx.len(), 1, "lookups create nothing");
    let before = idx.removals();
    idx.remove(ra);
    assert_ne!(idx.removals(), before, "handles found before the removal are stale");
    assert_eq!(idx.lookup_in(slot, SeriesId(7), &a), None);
}

#[test]
fn removing_the_id_holder_hands_the_id_to_a_colliding_series() {
    let mut idx = SeriesIndex::default();
    let a = Labels::from_pairs([("__name__", "m"), ("x", "1")]);
    let b = Labels::from_pairs([("__name__", "m"), ("x", "2")]);
    let ra = idx.resolve(&t("t"), SeriesId(7), 0, &a);
    let rb = idx.resolve(&t("t"), SeriesId(7), 0, &b);
    idx.remove(ra);
    assert_eq!(idx.resolve(&t("t"), SeriesId(7), 0, &b), rb, "b is found again, not duplicated");
    assert!(idx.contains(&t("t"), SeriesId(7), &b));
    assert_eq!(idx.tenant_series(&t("t")), 1);
}

#[test]
fn counts_and_finds_a_tenants_series() {
    let mut idx = SeriesIndex::default();
    let l = Labels::from_pairs([("__name__", "m")]);
    let other = Labels::from_pairs([("__name__", "n")]);
    let r = idx.resolve(&t("a"), SeriesId(1), 0, &l);
    assert!(idx.contains(&t("a"), SeriesId(1), &l));
    assert!(!idx.contains(&t("a"), SeriesId(1), &other), "same id, other labels");
    assert!(!idx.contains(&t("b"), SeriesId(1), &l), "other tenant");
    assert_eq!(idx.tenant_series(&t("a")), 1);
    idx.remove(r);
    assert_eq!(idx.tenant_series(&t("a")), 0);
    assert!(!idx.contains(&t("a"), SeriesId(1), &l));
}

#[test]
fn colliding_ids_never_merge_label_sets() {
    let mut idx = SeriesIndex::default();
    let l1 = Labels::from_pairs([("__name__", "m"), ("x", "1")]);
    let l2 = Labels::from_pairs([("__name__", "m"), ("x", "2")]);
    let a = idx.resolve(&t("a"), SeriesId(7), 0, &l1);
    let b = idx.resolve(&t("a"), SeriesId(7), 0, &l2);
    assert_ne!(a, b);
    assert_eq!(idx.resolve(&t("a"), SeriesId(7), 0, &l2), b);
    assert_eq!(idx.resolve(&t("a"), SeriesId(7), 0, &l1), a);
    assert_eq!(idx.collisions(), 1);
    assert_eq!(idx.labels(idx.get(b).unwrap()), l2);
}

#[test]
fn tenants_are_kept_apart() {
    let mut idx = SeriesIndex::default();
    let l = Labels::from_pairs([("__name__", "m")]);
    let a = idx.resolve(&t("a"), SeriesId(1), 0, &l);
    let b = idx.resolve(&t("b"), SeriesId(1), 0, &l);
    assert_ne!(a, b);
    assert_eq!(idx.select(&t("a"), &[]).to_vec(), vec![a]);
    assert_eq!(idx.select(&t("b"), &[]).to_vec(), vec![b]);
    assert!(idx.select(&t("c"), &[]).is_empty());
}

proptest::proptest! {
    /// Postings resolution equals filtering every series with the
    /// matchers (a missing label matching as ""), for any mix of
    /// equality, regex and negative matchers in any order.
    #[test]
    fn select_equals_a_brute_force_filter(
        sets in proptest::collection::vec((0u8..3, proptest::option::of(0u8..4), proptest::option::of(0u8..3)), 1..40),
        ms in proptest::collection::vec((0u8..3, 0u8..6, 0u8..4), 0..4),
    ) {
        let mut idx = SeriesIndex::default();
        let mut all = Vec::new();
        for (i, (m, dev, zone)) in sets.iter().enumerate() {
            let mut pairs = vec![("__name__".to_owned(), format!("m{m}"))];
            pairs.extend(dev.map(|d| ("dev".to_owned(), format!("d{d}"))));
            pairs.extend(zone.map(|z| ("zone".to_owned(), format!("z{z}"))));
            let l = Labels::from_pairs(pairs);
            let r = idx.resolve(&t("a"), SeriesId(i as u64), 0, &l);
            all.push((r, l));
        }
        let matchers: Vec<Matcher> = ms
            .iter()
            .map(|&(name, op, v)| {
                let name = ["__name__", "dev", "zone"][name as usize];
                let value = match (name, v) {
                    (_, 3) => String::new(),
                    ("__name__", v) => format!("m{v}"),
                    ("dev", v) => format!("d{v}"),
                    (_, v) => format!("z{v}"),
                };
                match op {
                    0 | 1 => Matcher::equal(name, &value),
                    2 => Matcher::not_equal(name, &value),
                    3 => Matcher::regex(name, format!("{value}|.0")).unwrap(),
                    4 => Matcher::not_regex(name, format!("{value}|.1")).unwrap(),
                    _ => Matcher::regex(name, ".+").unwrap(),
                }
            })
            .collect();
        let mut want: Vec<u32> = all
            .iter()
            .filter(|(_, l)| matchers.iter().all(|m| m.matches(l.get(&m.name).unwrap_or(""))))
            .map(|(r, _)| *r)
            .collect();
        want.sort_unstable();
        proptest::prop_assert_eq!(idx.select(&t("a"), &matchers).to_vec(), want);
    }
}

#[test]
fn postings_resolve_every_matcher_kind_including_empty_matches() {
    let mut idx = SeriesIndex::default();
    let s0 = idx.resolve(&t("a"), SeriesId(0), 0, &Labels::from_pairs([("__name__", "m"), ("dev", "d0")]));
    let s1 = idx.resolve(&t("a"), SeriesId(1), 0, &Labels::from_pairs([("__name__", "m"), ("dev", "d1")]));
    let s2 = idx.resolve(&t("a"), SeriesId(2), 0, &Labels::from_pairs([("__name__", "n")]));
    assert_eq!(sel(&idx, &[Matcher::equal("dev", "d1")]), vec![s1]);
    assert_eq!(sel(&idx, &[Matcher::equal("dev", "")]), vec![s2]);
    assert_eq!(sel(&idx, &[Matcher::not_equal("dev", "d1")]), vec![s0, s2]);
    assert_eq!(sel(&idx, &[Matcher::not_equal("dev", "")]), vec![s0, s1]);
    assert_eq!(sel(&idx, &[Matcher::regex("dev", "d.*").unwrap()]), vec![s0, s1]);
    assert_eq!(sel(&idx, &[Matcher::regex("dev", "d0|d9").unwrap()]), vec![s0]);
    assert_eq!(sel(&idx, &[Matcher::regex("dev", ".*").unwrap()]), vec![s0, s1, s2]);
    assert_eq!(sel(&idx, &[Matcher::regex("dev", "d0|").unwrap()]), vec![s0, s2]);
    assert_eq!(sel(&idx, &[Matcher::not_regex("dev", "d0|d1").unwrap()]), vec![s2]);
    assert_eq!(sel(&idx, &[Matcher::not_regex("dev", ".+").unwrap()]), vec![s2]);
    assert_eq!(sel(&idx, &[Matcher::equal("nope", "x")]), Vec::<u32>::new());
    assert_eq!(sel(&idx, &[Matcher::equal("__name__", "m"), Matcher::not_equal("dev", "d0")]), vec![s1]);
}

#[test]
fn removed_series_leave_the_postings() {
    let mut idx = SeriesIndex::default();
    let l = Labels::from_pairs([("__name__", "m"), ("dev", "d0")]);
    let a = idx.resolve(&t("a"), SeriesId(1), 0, &l);
    idx.remove(a);
    assert!(idx.get(a).is_none());
    assert!(sel(&idx, &[]).is_empty());
    assert!(idx.label_names(&t("a")).is_empty());
    let b = idx.resolve(&t("a"), SeriesId(1), 0, &l);
    assert_ne!(a, b);
    assert_eq!(sel(&idx, &[Matcher::equal("dev", "d0")]), vec![b]);
}

#[test]
fn extend_range_tracks_min_and_max() {
    let mut idx = SeriesIndex::default();
    let r = idx.resolve(&t("a"), SeriesId(1), 0, &Labels::default());
    idx.extend_range(r, 10, 20);
    idx.extend_range(r, 5, 7);
    let e = idx.get(r).unwrap();
    assert_eq!((e.min_ts, e.max_ts), (5, 20));
}
