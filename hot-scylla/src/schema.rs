//! The CQL schema of the tier (FORMAT.md describes it): table DDL, the
//! statements the store prepares, the labels encoding and the second label
//! hash that keeps two label sets with one series id apart.
//!
//! Every statement here restricts partition keys and clustering prefixes by
//! equality only and has no `ORDER BY`, `IN` or range restriction: the same
//! text runs on ScyllaDB and on the in-memory test server (kassandra), which
//! supports nothing more. Time ranges are cut client-side from whole
//! (series, bucket) slices.

use strata_schemas::{Label, Labels};

/// The layout version written to `meta` (`format_version`).
pub const FORMAT_VERSION: u32 = 2;

/// The one partition of the `tenants` table (every tenant of the keyspace
/// is a row of it: a few hundred rows, read once per compactor pass).
pub(crate) const TENANTS_SHARD: i32 = 0;

/// Seed of [`labels_hash`] (distinct from the series id's hash).
const LABELS_HASH_SEED: u64 = 0x5c11_a7e5_0000_0001;

/// The DDL of keyspace `ks`, in order (keyspace first).
pub(crate) fn ddl(ks: &str, replication: &str, bucket_secs: u64) -> Vec<String> {
    // TWCS with one window per time bucket: a bucket's rows land in one
    // window, expire together (USING TTL) and the window's SSTables are
    // dropped whole instead of being compacted again and again.
    let twcs = format!(
        "compaction = {{'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'MINUTES', \
         'compaction_window_size': {}}}",
        (bucket_secs / 60).max(1)
    );
    vec![
        format!("CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {replication}"),
        format!("CREATE TABLE IF NOT EXISTS {ks}.meta (key text PRIMARY KEY, value text)"),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.samples (tenant text, bucket bigint, device_hash bigint, series bigint, \
             lhash bigint, ts bigint, value double, PRIMARY KEY ((tenant, bucket, device_hash), series, lhash, ts)) \
             WITH {twcs}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.bucket_series (tenant text, bucket bigint, series bigint, lhash bigint, \
             device_hash bigint, PRIMARY KEY ((tenant, bucket), series, lhash)) WITH {twcs}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.tenant_buckets (tenant text, bucket bigint, \
             PRIMARY KEY ((tenant), bucket))"
        ),
        format!("CREATE TABLE IF NOT EXISTS {ks}.tenants (shard int, tenant text, PRIMARY KEY ((shard), tenant))"),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.series (tenant text, series bigint, lhash bigint, device_hash bigint, \
             labels text, PRIMARY KEY ((tenant), series, lhash))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.postings (tenant text, name text, value text, series bigint, \
             lhash bigint, PRIMARY KEY ((tenant, name), value, series, lhash))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.log_offsets (log text, log_partition int, next_offset bigint, \
             PRIMARY KEY ((log), log_partition))"
        ),
    ]
}

/// ` USING TTL n` for a TTL of `secs` seconds (none for 0: no expiry).
fn using_ttl(secs: u32) -> String {
    if secs == 0 { String::new() } else { format!(" USING TTL {secs}") }
}

/// Insert statements of one TTL (the TTL is part of the text: a bind
/// marker for it is not understood by every CQL server the tier runs on).
pub(crate) fn inserts(ks: &str, ttl_secs: u32, index_ttl_secs: u32) -> [String; 6] {
    let (t, i) = (using_ttl(ttl_secs), using_ttl(index_ttl_secs));
    [
        format!(
            "INSERT INTO {ks}.samples (tenant, bucket, device_hash, series, lhash, ts, value) \
             VALUES (?, ?, ?, ?, ?, ?, ?){t}"
        ),
        format!(
            "INSERT INTO {ks}.bucket_series (tenant, bucket, series, lhash, device_hash) VALUES (?, ?, ?, ?, ?){i}"
        ),
        format!("INSERT INTO {ks}.tenant_buckets (tenant, bucket) VALUES (?, ?){i}"),
        format!("INSERT INTO {ks}.series (tenant, series, lhash, device_hash, labels) VALUES (?, ?, ?, ?, ?){i}"),
        format!("INSERT INTO {ks}.postings (tenant, name, value, series, lhash) VALUES (?, ?, ?, ?, ?){i}"),
        format!("INSERT INTO {ks}.tenants (shard, tenant) VALUES (?, ?){i}"),
    ]
}

/// Read and bookkeeping statements.
pub(crate) struct Reads {
    pub(crate) tenants: String,
    pub(crate) buckets: String,
    pub(crate) bucket_series: String,
    pub(crate) series_labels: String,
    pub(crate) postings: String,
    pub(crate) samples: String,
    pub(crate) offsets: String,
    pub(crate) put_offset: String,
    pub(crate) meta: String,
    pub(crate) put_meta: String,
}

pub(crate) fn reads(ks: &str) -> Reads {
    Reads {
        tenants: format!("SELECT tenant FROM {ks}.tenants WHERE shard = ?"),
        buckets: format!("SELECT bucket FROM {ks}.tenant_buckets WHERE tenant = ?"),
        bucket_series: format!(
            "SELECT series, lhash, device_hash FROM {ks}.bucket_series WHERE tenant = ? AND bucket = ?"
        ),
        series_labels: format!("SELECT labels FROM {ks}.series WHERE tenant = ? AND series = ? AND lhash = ?"),
        postings: format!("SELECT series, lhash FROM {ks}.postings WHERE tenant = ? AND name = ? AND value = ?"),
        samples: format!(
            "SELECT ts, value FROM {ks}.samples WHERE tenant = ? AND bucket = ? AND device_hash = ? AND series = ? \
             AND lhash = ?"
        ),
        offsets: format!("SELECT log_partition, next_offset FROM {ks}.log_offsets WHERE log = ?"),
        put_offset: format!("INSERT INTO {ks}.log_offsets (log, log_partition, next_offset) VALUES (?, ?, ?)"),
        meta: format!("SELECT value FROM {ks}.meta WHERE key = ?"),
        put_meta: format!("INSERT INTO {ks}.meta (key, value) VALUES (?, ?)"),
    }
}

/// The labels column: a JSON array of `[name, value]` pairs in label order.
pub fn encode_labels(labels: &Labels) -> String {
    let pairs: Vec<[&str; 2]> = labels.iter().map(|l| [l.name.as_str(), l.value.as_str()]).collect();
    serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".to_owned())
}

/// Decodes [`encode_labels`].
pub fn decode_labels(text: &str) -> Result<Labels, String> {
    let pairs: Vec<(String, String)> = serde_json::from_str(text).map_err(|e| format!("labels {text:?}: {e}"))?;
    Ok(Labels::new(pairs.into_iter().map(|(n, v)| Label::new(n, v)).collect()))
}

/// A second 64-bit hash of the label set (xxh3, its own seed): with the
/// series id it keys a series, so two label sets that share a series id
/// stay two series unless both hashes collide.
pub fn labels_hash(labels: &Labels) -> i64 {
    let mut buf = Vec::with_capacity(64);
    for l in labels.iter() {
        buf.extend_from_slice(l.name.as_str().as_bytes());
        buf.push(0xFE);
        buf.extend_from_slice(l.value.as_str().as_bytes());
        buf.push(0xFF);
    }
    xxhash_rust::xxh3::xxh3_64_with_seed(&buf, LABELS_HASH_SEED) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_through_their_column() {
        let l = Labels::from_pairs([("__name__", "temp"), ("device", "d\"1\u{e9}"), ("farm", "")]);
        assert_eq!(decode_labels(&encode_labels(&l)).unwrap(), l);
        assert!(decode_labels("{").unwrap_err().contains("labels"));
    }

    #[test]
    fn the_labels_hash_is_a_stable_format() {
        // Stored in every row: changing it orphans the data (FORMAT.md).
        let l = Labels::from_pairs([("__name__", "temp"), ("device", "d1")]);
        assert_eq!(labels_hash(&l), labels_hash(&l.clone()));
        assert_ne!(labels_hash(&l), labels_hash(&Labels::from_pairs([("__name__", "temp"), ("device", "d2")])));
        assert_eq!(labels_hash(&l), STABLE_TEMP_D1);
    }

    /// `labels_hash({__name__="temp", device="d1"})`, pinned.
    const STABLE_TEMP_D1: i64 = 2_289_905_440_619_711_481;

    #[test]
    fn statements_restrict_by_equality_only() {
        let r = reads("ks");
        for s in
            [&r.tenants, &r.buckets, &r.bucket_series, &r.series_labels, &r.postings, &r.samples, &r.offsets, &r.meta]
        {
            assert!(!s.contains('<') && !s.contains('>') && !s.contains(" IN ") && !s.contains("ORDER"), "{s}");
        }
        assert!(inserts("ks", 0, 0)[0].ends_with("?)"));
        assert!(inserts("ks", 60, 120)[0].ends_with("USING TTL 60"));
        assert!(inserts("ks", 60, 120)[1].ends_with("USING TTL 120"));
    }
}
