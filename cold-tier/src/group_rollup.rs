//! Group rollups: per declared (metric, `by` labels), one rollup series per
//! group of series with equal `by` values, in tables of their own
//! (`FORMAT.md`, "Group rollup tables").
//!
//! ```text
//!  group<w>_<id:016x>_<tenant>   w ∈ 5m, 1h, 1d; id = GroupRollup::id (metric, sorted by)
//!    the rollup table layout (version 2) in every column; one row per (group, window end)
//!    and rolled bucket (partials, merged on read and by the small-file merge like
//!    per-series partials):
//!      labels    = {__name__: metric, __group__: id, by labels the group's series carry}
//!      series_id = device_hash = series_id(tenant, labels)
//!      min / max = Prometheus's min/max fold over the group's per-series windows
//!      sum, count, exp = added / added / smallest (`RollupPoint::merge`)
//!      last, last_ts = of the latest sample (not used by readers)
//!  group_points(decl, tenant, per-series windows of one bucket) → the group rows
//!  ColdTier::group_view(rollup, id) → a rollup view on those tables
//! ```
//!
//! Written by the compactor in the same roll as the per-series rollups
//! (same claim, same `strata.source`, before the watermark moves), read by
//! `ReadStore::select_rollup` with a `__group__` matcher.

use std::collections::BTreeMap;

use iceberg::{NamespaceIdent, TableIdent};
use strata_schemas::{GROUP_LABEL, GroupRollup, Label, Labels, METRIC_NAME, RollupPoint, TenantId, series_id};

use crate::rollup::SeriesRollup;
use crate::table::TableKind;

/// The group table of declaration `id` for `kind` (a rollup kind):
/// `group<w>_<id:016x>_<tenant>` (`.` in the tenant written as `~`).
pub(crate) fn group_ident(namespace: &str, kind: TableKind, id: u64, tenant: &TenantId) -> TableIdent {
    let name = match kind {
        TableKind::Rollup(r) => format!("group{}_{id:016x}_{}", r.name(), tenant.as_str().replace('.', "~")),
        // Never created: a group view's series or samples handle addresses nothing.
        TableKind::Series => format!("groupseries_{id:016x}_{}", tenant.as_str().replace('.', "~")),
        TableKind::Samples => format!("groupsamples_{id:016x}_{}", tenant.as_str().replace('.', "~")),
    };
    TableIdent::new(NamespaceIdent::new(namespace.to_owned()), name)
}

/// The `__group__` value of declaration `id`.
pub fn group_label_value(id: u64) -> String {
    format!("{id:016x}")
}

/// The labels of `decl`'s group holding a series with `labels`: the
/// metric, the `__group__` label and the series' non-empty `by` labels.
fn group_labels(decl: &GroupRollup, id: &str, labels: &Labels) -> Labels {
    let mut out = vec![Label::new(METRIC_NAME, decl.metric.as_str()), Label::new(GROUP_LABEL, id)];
    for name in decl.by_sorted() {
        if let Some(v) = labels.get(name).filter(|v| !v.is_empty()) {
            out.push(Label::new(name, v));
        }
    }
    Labels::new(out)
}

/// The group rows of `decl` from the per-series windows of one rolled
/// bucket (`series` of any metrics; only `decl.metric`'s count): per group
/// and window end, the windows of its series folded with
/// [`RollupPoint::merge`] (min/max with Prometheus's rules — a NaN gives way
/// to any number, a number only to a smaller/larger one — so the result is
/// the same in any series order except for the sign of a zero and the
/// payload of a NaN, which readers do not answer from; sums and counts
/// added; the smallest `exp`). Sorted by labels, windows by end.
pub fn group_points(decl: &GroupRollup, tenant: &TenantId, series: &[SeriesRollup]) -> Vec<SeriesRollup> {
    let id = group_label_value(decl.id());
    let mut groups: BTreeMap<Labels, BTreeMap<i64, RollupPoint>> = BTreeMap::new();
    for s in series.iter().filter(|s| s.labels.metric_name() == decl.metric) {
        let windows = groups.entry(group_labels(decl, &id, &s.labels)).or_default();
        for p in &s.points {
            windows.entry(p.end).and_modify(|g| g.merge(p)).or_insert(*p);
        }
    }
    groups
        .into_iter()
        .map(|(labels, windows)| {
            let sid = series_id(tenant, &labels);
            SeriesRollup { series_id: sid, device_hash: sid.0, points: windows.into_values().collect(), labels }
        })
        .collect()
}

/// The declaration id a `__group__` equality matcher names, if `matchers`
/// hold one.
pub fn group_of(matchers: &[strata_schemas::Matcher]) -> Option<u64> {
    matchers
        .iter()
        .find(|m| m.name == GROUP_LABEL && matches!(m.op, strata_schemas::MatchOp::Equal))
        .and_then(|m| u64::from_str_radix(&m.value, 16).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_schemas::{Sample, SeriesId};

    fn series(metric: &str, farm: Option<&str>, device: &str, samples: &[(i64, f64)]) -> SeriesRollup {
        let mut l = vec![Label::new(METRIC_NAME, metric), Label::new("device", device)];
        if let Some(f) = farm {
            l.push(Label::new("farm", f));
        }
        let samples: Vec<Sample> = samples.iter().map(|&(ts, v)| Sample::new(ts, v)).collect();
        SeriesRollup {
            labels: Labels::new(l),
            series_id: SeriesId(1),
            device_hash: 1,
            points: crate::rollup::rollup_points(&samples, 300_000),
        }
    }

    #[test]
    fn groups_fold_their_series_windows_and_other_metrics_are_left_out() {
        let t = TenantId::new("acme").unwrap();
        let decl = GroupRollup { metric: "temp".into(), by: vec!["farm".into(), "farm".into()] };
        let input = [
            series("temp", Some("a"), "d1", &[(1_000, 1.0), (2_000, 4.0), (400_000, 2.0)]),
            series("temp", Some("a"), "d2", &[(3_000, f64::NAN), (5_000, -3.0)]),
            series("temp", Some("b"), "d3", &[(1_000, 10.0)]),
            series("temp", None, "d4", &[(1_000, 7.0)]),
            series("hum", Some("a"), "d1", &[(1_000, 99.0)]),
        ];
        let out = group_points(&decl, &t, &input);
        let id = group_label_value(decl.id());
        assert_eq!(out.len(), 3, "{out:?}");
        let a = out.iter().find(|s| s.labels.get("farm") == Some("a")).unwrap();
        assert_eq!(a.labels.get(GROUP_LABEL), Some(id.as_str()));
        assert_eq!(a.labels.metric_name(), "temp");
        assert_eq!(a.labels.get("device"), None);
        assert_eq!(a.series_id, series_id(&t, &a.labels));
        let w = a.points[0];
        assert_eq!((w.end, w.min, w.max, w.count), (300_000, -3.0, 4.0, 4));
        assert_eq!(w.exp, Some(strata_schemas::EXP_NAN));
        assert_eq!((a.points[1].end, a.points[1].max, a.points[1].count), (600_000, 2.0, 1));
        // The series without a farm form the group without one.
        let none = out.iter().find(|s| s.labels.get("farm").is_none()).unwrap();
        assert_eq!(none.points[0].max, 7.0);
        // Any series order gives the same rows.
        let mut rev = input.clone();
        rev.reverse();
        let again = group_points(&decl, &t, &rev);
        type Bits = Vec<(Labels, Vec<(i64, u64, u64, u64, u64)>)>;
        let bits = |v: &[SeriesRollup]| -> Bits {
            v.iter()
                .map(|s| {
                    let p =
                        s.points.iter().map(|p| (p.end, p.min.to_bits(), p.max.to_bits(), p.sum.to_bits(), p.count));
                    (s.labels.clone(), p.collect())
                })
                .collect()
        };
        assert_eq!(bits(&out), bits(&again));
    }

    #[test]
    fn a_group_matcher_names_its_declaration_and_tables_are_named_per_declaration() {
        let decl = GroupRollup { metric: "temp".into(), by: vec!["region".into(), "farm".into()] };
        let same = GroupRollup { metric: "temp".into(), by: vec!["farm".into(), "region".into()] };
        assert_eq!(decl.id(), same.id());
        assert_ne!(decl.id(), GroupRollup { metric: "temp".into(), by: vec!["farm".into()] }.id());
        let m = strata_schemas::Matcher::equal(GROUP_LABEL, group_label_value(decl.id()));
        assert_eq!(group_of(&[m]), Some(decl.id()));
        assert_eq!(group_of(&[]), None);
        let t = TenantId::new("a.b").unwrap();
        let ident = group_ident("ns", TableKind::Rollup(crate::table::Rollup::OneHour), 0xab, &t);
        assert_eq!(ident.name(), "group1h_00000000000000ab_a~b");
    }
}
