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

use crate::labels::{Labels, METRIC_NAME};
use crate::tenant::TenantId;
use xxhash_rust::xxh3::xxh3_64;

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
    let mut buf = Vec::with_capacity(128);
    buf.extend_from_slice(tenant.as_str().as_bytes());
    buf.push(0xFF);
    buf.extend_from_slice(labels.metric_name().as_bytes());
    buf.push(0xFF);
    for l in labels.iter().filter(|l| l.name != METRIC_NAME) {
        buf.extend_from_slice(l.name.as_bytes());
        buf.push(0xFE);
        buf.extend_from_slice(l.value.as_bytes());
        buf.push(0xFF);
    }
    SeriesId(xxh3_64(&buf))
}

/// Computes the device hash: the hash of the tenant's device label value,
/// or the series id when the series has no such label.
pub fn device_hash(tenant: &TenantId, labels: &Labels, device_label: &str, series: SeriesId) -> u64 {
    match labels.get(device_label) {
        Some(device) => {
            let mut buf = Vec::with_capacity(tenant.as_str().len() + device.len() + 1);
            buf.extend_from_slice(tenant.as_str().as_bytes());
            buf.push(0xFF);
            buf.extend_from_slice(device.as_bytes());
            xxh3_64(&buf)
        }
        None => series.0,
    }
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
