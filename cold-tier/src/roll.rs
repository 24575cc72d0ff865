//! Roll state per log partition: which buckets of which ingest-log partition
//! a table holds, committed in the same catalog swap as the data.
//!
//! ```text
//!  table property  strata.roll.p<partition> = <end ms>   every sample of the partition (ts < end) is committed
//!  commit_claim(tenant, files, source, claim{partitions, start, end}):
//!    loop: load the table (the catalog row's metadata_location M)
//!          snapshot with strata.source = source?            → AlreadyCommitted
//!          every claimed p has roll ≥ end?                    → AlreadyCommitted
//!          some claimed p has roll ≥ end?                     → Lost (another node committed it)
//!          stage: manifests + snapshot (summary: source, partitions, bucket) + roll.p = end for each p
//!          UPDATE iceberg_tables SET metadata_location = new WHERE metadata_location = M
//!            lost the swap → reload and check again
//! ```
//!
//! The check and the commit see the same metadata (the swap succeeds only
//! from the metadata the check read), so two nodes that both believe they
//! own a partition (a rebalance in flight, a stale owner) never commit the
//! same (partition, bucket) twice: the loser finds the roll state already
//! past the bucket and writes nothing visible (its files are orphans).
//! iceberg-rust's own `Transaction::commit` cannot do this: on a lost race it
//! re-applies the append to the refreshed table without asking.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use iceberg::spec::Operation;
use iceberg::table::Table;
use strata_schemas::TenantId;

use crate::error::{Error, Result};
use crate::maintenance::stage_rewrite;
use crate::table::{SUMMARY_ROWS, SUMMARY_SERIES, SUMMARY_SOURCE, SUMMARY_SOURCE_SEGMENTS};
use crate::tier::{ColdTier, CommitSource, WrittenFiles, find_source};

/// Table property prefix: `strata.roll.p<partition>` = the end (ms,
/// exclusive) up to which the partition's samples are committed.
pub const PROPERTY_ROLL_PREFIX: &str = "strata.roll.p";
/// Snapshot summary key: the partitions a roll commit claimed (`0,2,5`).
pub const SUMMARY_ROLL_PARTITIONS: &str = "strata.roll.partitions";
/// Snapshot summary key: the first millisecond of the rolled bucket.
pub const SUMMARY_ROLL_START: &str = "strata.roll.start";
/// Snapshot summary key: the end (exclusive) of the rolled bucket.
pub const SUMMARY_ROLL_END: &str = "strata.roll.end";

/// Attempts of [`ColdTier::commit_claim`] against concurrent commits.
const ATTEMPTS: usize = 8;

/// What one roll commit claims: the bucket `[start, end)` of `partitions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollClaim {
    /// Log partitions whose samples of the bucket the commit holds (all of them).
    pub partitions: BTreeSet<u32>,
    /// First millisecond of the bucket.
    pub start: i64,
    /// End of the bucket (exclusive); each claimed partition's roll state becomes this.
    pub end: i64,
}

/// What [`ColdTier::commit_claim`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// A new snapshot holds the files and the claimed roll state.
    Committed {
        /// Its id.
        snapshot_id: i64,
    },
    /// Every claimed partition was committed for the bucket already (or
    /// the source was): nothing was committed.
    AlreadyCommitted,
    /// Some, not all, claimed partitions were committed for the bucket by
    /// another commit: nothing was committed; plan the bucket again from
    /// [`ColdTier::roll_state`].
    Lost {
        /// The partitions found committed.
        partitions: Vec<u32>,
    },
}

/// The roll state recorded in table properties: partition → end (ms,
/// exclusive).
///
/// Every property under [`PROPERTY_ROLL_PREFIX`] must be
/// `strata.roll.p<partition> = <end ms>` (a `u32` written as
/// `u32::to_string` does, an `i64`): anything else is
/// [`Error::Corrupted`] naming the property and its value. Skipping it
/// instead would make that partition look never rolled, and its buckets
/// would be committed a second time.
pub fn roll_state_of(tenant: &TenantId, properties: &HashMap<String, String>) -> Result<BTreeMap<u32, i64>> {
    parse_roll_state(properties).map_err(|detail| Error::Corrupted { tenant: tenant.clone(), detail })
}

/// [`roll_state_of`] of `table`, the error naming the table too.
fn table_roll_state(tenant: &TenantId, table: &Table) -> Result<BTreeMap<u32, i64>> {
    parse_roll_state(table.metadata().properties()).map_err(|detail| Error::Corrupted {
        tenant: tenant.clone(),
        detail: format!("table {}: {detail}", table.identifier()),
    })
}

/// The roll state, or what is wrong with it.
fn parse_roll_state(properties: &HashMap<String, String>) -> Result<BTreeMap<u32, i64>, String> {
    let mut out = BTreeMap::new();
    for (key, value) in properties {
        let Some(partition) = key.strip_prefix(PROPERTY_ROLL_PREFIX) else { continue };
        // Canonical digits only: `p01` and `p1` must not both name partition 1.
        let p = partition.parse::<u32>().ok().filter(|p| p.to_string() == partition);
        let end = value.parse::<i64>().ok();
        let (Some(p), Some(end)) = (p, end) else {
            return Err(format!(
                "table property {key} = {value:?} is not a roll state ({PROPERTY_ROLL_PREFIX}<partition> = <end ms>)"
            ));
        };
        out.insert(p, end);
    }
    Ok(out)
}

fn format_partitions(ps: &BTreeSet<u32>) -> String {
    ps.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

impl ColdTier {
    /// The tenant's roll state in this handle's table (empty without a
    /// table); [`Error::Corrupted`] when a roll state property is malformed
    /// ([`roll_state_of`]).
    pub async fn roll_state(&self, tenant: &TenantId) -> Result<BTreeMap<u32, i64>> {
        match self.load_table(tenant).await? {
            Some(table) => table_roll_state(tenant, &table),
            None => Ok(BTreeMap::new()),
        }
    }

    /// Commits `written` (possibly no files: the claim alone advances the
    /// roll state) as one append snapshot that also sets
    /// `strata.roll.p<p> = claim.end` for every claimed partition, if and
    /// only if no claimed partition is committed for the bucket yet, in one
    /// compare-and-swap of the catalog row (module doc).
    pub async fn commit_claim(
        &self,
        tenant: &TenantId,
        written: WrittenFiles,
        source: &CommitSource,
        claim: &RollClaim,
    ) -> Result<ClaimOutcome> {
        if claim.partitions.is_empty() || claim.end <= claim.start {
            return Err(Error::Conflict {
                tenant: tenant.clone(),
                detail: format!("empty roll claim {claim:?} for {}", source.source),
            });
        }
        let parts = format_partitions(&claim.partitions);
        let summary = HashMap::from([
            (SUMMARY_SOURCE.to_owned(), source.source.clone()),
            (SUMMARY_SOURCE_SEGMENTS.to_owned(), source.segments.clone()),
            (SUMMARY_ROWS.to_owned(), written.rows.to_string()),
            (SUMMARY_SERIES.to_owned(), written.series.to_string()),
            (SUMMARY_ROLL_PARTITIONS.to_owned(), parts.clone()),
            (SUMMARY_ROLL_START.to_owned(), claim.start.to_string()),
            (SUMMARY_ROLL_END.to_owned(), claim.end.to_string()),
        ]);
        let table_props: HashMap<String, String> =
            claim.partitions.iter().map(|p| (format!("{PROPERTY_ROLL_PREFIX}{p}"), claim.end.to_string())).collect();
        for attempt in 0..ATTEMPTS {
            let table = self.table(tenant).await?;
            if let Some(outcome) = already(tenant, &table, source, claim)? {
                return Ok(outcome);
            }
            let staged = stage_rewrite(
                &table,
                tenant,
                &BTreeSet::new(),
                &written.files,
                Operation::Append,
                &summary,
                &table_props,
                false,
            )
            .await?;
            let cur = table.metadata_location().unwrap_or_default().to_owned();
            if self.swap_metadata_location(tenant, &cur, &staged.location).await? {
                tracing::debug!(
                    tenant = %tenant, table = %self.ident(tenant), partitions = %parts, start = claim.start,
                    end = claim.end, files = written.files.len(), rows = written.rows, "committed roll claim"
                );
                return Ok(ClaimOutcome::Committed { snapshot_id: staged.outcome.snapshot_id });
            }
            tracing::info!(tenant = %tenant, attempt, source = %source.source, "roll commit lost a catalog race; checking again");
        }
        Err(Error::Conflict {
            tenant: tenant.clone(),
            detail: format!("the table kept changing; gave up committing {} after {ATTEMPTS} attempts", source.source),
        })
    }
}

/// What the table already holds of the claim, if anything; an error when
/// its roll state is malformed (nothing is committed on a state that
/// cannot be read).
fn already(tenant: &TenantId, table: &Table, source: &CommitSource, claim: &RollClaim) -> Result<Option<ClaimOutcome>> {
    if find_source(table, &source.source).is_some() {
        return Ok(Some(ClaimOutcome::AlreadyCommitted));
    }
    let state = table_roll_state(tenant, table)?;
    let done: Vec<u32> =
        claim.partitions.iter().copied().filter(|p| state.get(p).is_some_and(|&e| e >= claim.end)).collect();
    Ok(if done.is_empty() {
        None
    } else if done.len() == claim.partitions.len() {
        Some(ClaimOutcome::AlreadyCommitted)
    } else {
        Some(ClaimOutcome::Lost { partitions: done })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roll_state_reads_partition_properties_and_ignores_other_keys() {
        let props = HashMap::from([
            ("strata.roll.p0".to_owned(), "7200000".to_owned()),
            ("strata.roll.p12".to_owned(), "-5".to_owned()),
            ("strata.rollup-since-ms".to_owned(), "1".to_owned()),
            ("strata.layout-version".to_owned(), "2".to_owned()),
        ]);
        let t = TenantId::new("acme").unwrap();
        assert_eq!(roll_state_of(&t, &props).unwrap(), BTreeMap::from([(0, 7_200_000), (12, -5)]));
        assert_eq!(roll_state_of(&t, &HashMap::new()).unwrap(), BTreeMap::new());
        assert_eq!(format_partitions(&BTreeSet::from([5, 0, 2])), "0,2,5");
    }

    #[test]
    fn a_malformed_roll_state_property_is_corruption_naming_it() {
        let t = TenantId::new("acme").unwrap();
        for (key, value) in [
            ("strata.roll.p3", "soon"),
            ("strata.roll.p3", ""),
            ("strata.roll.p3", "7200000.5"),
            ("strata.roll.px", "1"),
            ("strata.roll.p", "1"),
            ("strata.roll.p-1", "1"),
            ("strata.roll.p01", "1"),
            ("strata.roll.p4294967296", "1"),
        ] {
            let props = HashMap::from([
                ("strata.roll.p0".to_owned(), "7200000".to_owned()),
                (key.to_owned(), value.to_owned()),
            ]);
            let err = roll_state_of(&t, &props).unwrap_err();
            assert!(matches!(&err, Error::Corrupted { tenant, .. } if tenant == &t), "{key}: {err:?}");
            let text = err.to_string();
            assert!(text.contains(key) && text.contains(&format!("{value:?}")), "{key} = {value}: {text}");
        }
    }
}
