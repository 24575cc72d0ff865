//! Stable series identity and device hashing — a storage format.
//!
//! Both hashes are persisted (segment files, log partitioning, cold-tier
//! partitions), so their definitions are frozen; `schemas/FORMAT.md`
//! documents them and the golden tests below pin their values.
//!
//! ```text
//! series_id   = xxh3_64(tenant 0xFF metric 0xFF (name 0xFE value 0xFF)*)   labels sorted by name, __name__ excluded
//! device_hash = xxh3_64(tenant 0xFF device_value)                          when the device label is present
//!             = series_id                                                  otherwise
//! ```
//!
//! `0xFE` and `0xFF` never occur in UTF-8, so the encoding is unambiguous.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))] // a codec: malformed input is an error, never a panic

use crate::labels::{Labels, METRIC_NAME};
use crate::tenant::TenantId;
use xxhash_rust::xxh3::Xxh3;

/// A series' stable 64-bit identity within its tenant.
///
/// Collisions are possible in principle; stores detect them by comparing
/// label sets and never merge two different sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesId(pub u64);

/// The default name of the label that identifies a device.
pub const DEFAULT_DEVICE_LABEL: &str = "device";

/// Computes the series id of `labels` for `tenant`.
pub fn series_id(tenant: &TenantId, labels: &Labels) -> SeriesId {
    let rest = labels.iter().map(|l| (l.name.as_str(), l.value.as_str()));
    series_id_of(tenant, &[labels.metric_name()], rest)
}

/// Computes a series id from its parts without building a [`Labels`]:
/// the metric name as concatenated pieces (e.g. `["sensors", "_", "temp"]`)
/// and the other labels **sorted by name**. `__name__` and empty values in
/// `labels` are skipped, as [`Labels`] would drop them. Equal to
/// [`series_id`] of the same label set.
pub fn series_id_of<'a>(
    tenant: &TenantId,
    metric: &[&str],
    labels: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> SeriesId {
    let mut h = Xxh3::new();
    h.update(tenant.as_str().as_bytes());
    h.update(&[0xFF]);
    for piece in metric {
        h.update(piece.as_bytes());
    }
    h.update(&[0xFF]);
    for (name, value) in labels {
        if name == METRIC_NAME || value.is_empty() {
            continue;
        }
        h.update(name.as_bytes());
        h.update(&[0xFE]);
        h.update(value.as_bytes());
        h.update(&[0xFF]);
    }
    SeriesId(h.digest())
}

/// Computes the device hash: the hash of the tenant's device label value,
/// or the series id when the series has no such label.
pub fn device_hash(tenant: &TenantId, labels: &Labels, device_label: &str, series: SeriesId) -> u64 {
    match labels.get(device_label) {
        Some(device) => device_hash_of(tenant, device),
        None => series.0,
    }
}

/// The device hash of device label value `device` (never empty).
pub fn device_hash_of(tenant: &TenantId, device: &str) -> u64 {
    let mut h = Xxh3::new();
    h.update(tenant.as_str().as_bytes());
    h.update(&[0xFF]);
    h.update(device.as_bytes());
    h.digest()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TenantId {
        TenantId::new(s).unwrap()
    }

    /// Golden values: these are persisted. If this test fails, the storage
    /// format changed — do not update the constants, fix the code.
    #[test]
    fn series_id_is_frozen() {
        let l = Labels::from_pairs([("__name__", "sensors_temp"), ("device", "dev-1"), ("farm", "f1")]);
        assert_eq!(series_id(&t("acme"), &l), SeriesId(GOLDEN_SERIES));
        assert_eq!(device_hash(&t("acme"), &l, "device", SeriesId(0)), GOLDEN_DEVICE);
    }

    const GOLDEN_SERIES: u64 = 5_567_670_041_779_722_670;
    const GOLDEN_DEVICE: u64 = 6_395_069_768_652_032_535;

    #[test]
    fn series_id_depends_on_tenant_name_and_labels() {
        let a = Labels::from_pairs([("__name__", "m"), ("x", "1")]);
        let b = Labels::from_pairs([("__name__", "m"), ("x", "2")]);
        let c = Labels::from_pairs([("__name__", "n"), ("x", "1")]);
        let ids = [series_id(&t("a"), &a), series_id(&t("b"), &a), series_id(&t("a"), &b), series_id(&t("a"), &c)];
        for i in 0..ids.len() {
            for j in i + 1..ids.len() {
                assert_ne!(ids[i], ids[j]);
            }
        }
    }

    #[test]
    fn boundaries_are_unambiguous() {
        let a = Labels::from_pairs([("__name__", "m"), ("ab", "c")]);
        let b = Labels::from_pairs([("__name__", "m"), ("a", "bc")]);
        assert_ne!(series_id(&t("t"), &a), series_id(&t("t"), &b));
    }

    #[test]
    fn series_id_from_parts_equals_series_id_of_labels() {
        let l = Labels::from_pairs([("__name__", "sensors_temp"), ("device", "dev-1"), ("farm", "f1")]);
        let parts =
            series_id_of(&t("acme"), &["sensors", "_", "temp"], [("device", "dev-1"), ("farm", "f1"), ("x", "")]);
        assert_eq!(parts, series_id(&t("acme"), &l));
    }

    #[test]
    fn device_hash_falls_back_to_series_id() {
        let l = Labels::from_pairs([("__name__", "m")]);
        let id = series_id(&t("t"), &l);
        assert_eq!(device_hash(&t("t"), &l, "device", id), id.0);
        let with = Labels::from_pairs([("__name__", "m"), ("device", "d"), ("k", "1")]);
        let other = Labels::from_pairs([("__name__", "n"), ("device", "d")]);
        assert_eq!(
            device_hash(&t("t"), &with, "device", SeriesId(1)),
            device_hash(&t("t"), &other, "device", SeriesId(2)),
            "all series of a device share its hash"
        );
    }
}
