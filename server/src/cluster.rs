//! Query fan-out across the nodes of a region that split its Kafka partitions.
//!
//! With `[log] kind = "kafka"` every hot-store node consumes only the
//! partitions the consumer group assigned to it, so no node holds all of a
//! region's recent data. A node with `[cluster] peers` answers a query by
//! merging, below the PromQL engine, its own hot store with the hot stores of
//! its peers:
//!
//! ```text
//!  PromQL ──► Engine ──► ClusterReadStore::select ──┬─► local store (hot, or hot+cold)
//!                                                   └─► POST <peer>/internal/v1/select   (each peer's local store)
//!                        merge per series, one sample per timestamp, the partition owner's sample first
//! ```
//!
//! Each answer marks every series with whether the answering node currently
//! holds the series' partition (`device_hash % P`). After a rebalance the
//! previous owner may still hold older samples of a partition in its hot
//! store; the merge keeps a single sample per (series, timestamp) and prefers
//! the owner's, so a sample is counted once and an overwritten value is the
//! owner's latest. Aggregation happens after the merge, so `sum`, `count` and
//! friends see each sample exactly once.
//!
//! A peer that does not answer (down, frozen, past `cluster.timeout`) is
//! skipped: the query's answer carries a Prometheus warning naming it
//! (`strata_schemas::read_warnings`), the log says why, and it is counted in
//! `strata_cluster_peer_errors_total`. A query with `partial_response=false`
//! fails instead (`unavailable`, 503, naming the peer), as it does for a
//! region that does not answer. Its partitions move to the
//! remaining consumers after the session timeout and are rebuilt there from
//! Kafka, so answers are complete again once they have caught up.
//!
//! Peers authenticate with the shared `[cluster] token` (bearer). The
//! endpoint serves raw samples of any tenant: keep it on the private network.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use strata_schemas::{Labels, Matcher, ReadError, ReadStore, Sample, SeriesData, TenantId, TimeRange, read_warnings};

/// Which partition a series belongs to and whether this node holds it.
pub type Ownership = Arc<dyn Fn(&TenantId, &Labels) -> bool + Send + Sync>;

/// Builds the [`Ownership`] test of a node: the series' partition is
/// `device_hash % partitions`, and `owns(partition)` says whether the node holds it.
pub fn ownership(device_label: String, partitions: u32, owns: Arc<dyn Fn(u32) -> bool + Send + Sync>) -> Ownership {
    Arc::new(move |tenant: &TenantId, labels: &Labels| {
        let id = strata_schemas::series_id(tenant, labels);
        let hash = strata_schemas::hash::device_hash(tenant, labels, &device_label, id);
        owns((hash % u64::from(partitions.max(1))) as u32)
    })
}

/// The request body of `POST /internal/v1/select`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerSelect {
    /// Tenant id.
    pub tenant: String,
    /// Label matchers.
    pub matchers: Vec<WireMatcher>,
    /// First millisecond.
    pub start: i64,
    /// Last millisecond.
    pub end: i64,
    /// Only label sets (`series`), no samples.
    #[serde(default)]
    pub series_only: bool,
}

/// A label matcher on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireMatcher {
    /// Label name.
    pub name: String,
    /// `=`, `!=`, `=~` or `!~`.
    pub op: String,
    /// Value or regex.
    pub value: String,
}

/// One series in a peer's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireSeries {
    /// `[name, value]` pairs.
    pub labels: Vec<(String, String)>,
    /// Whether the answering node holds the series' partition.
    pub owned: bool,
    /// `[timestamp ms, f64 bits]` (bits keep NaN staleness markers exact).
    #[serde(default)]
    pub samples: Vec<(i64, u64)>,
}

/// The response body of `POST /internal/v1/select`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PeerAnswer {
    /// Matching series.
    pub series: Vec<WireSeries>,
}

impl WireMatcher {
    pub(crate) fn from_matcher(m: &Matcher) -> Self {
        use strata_schemas::matcher::MatchOp;
        let op = match m.op {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex(_) => "=~",
            MatchOp::NotRegex(_) => "!~",
        };
        Self { name: m.name.clone(), op: op.to_owned(), value: m.value.clone() }
    }

    /// The matcher this describes.
    pub fn to_matcher(&self) -> Result<Matcher, String> {
        match self.op.as_str() {
            "=" => Ok(Matcher::equal(&self.name, &self.value)),
            "!=" => Ok(Matcher::not_equal(&self.name, &self.value)),
            "=~" => Matcher::regex(&self.name, &self.value).map_err(|e| e.to_string()),
            "!~" => Matcher::not_regex(&self.name, &self.value).map_err(|e| e.to_string()),
            other => Err(format!("unknown matcher operator {other:?}")),
        }
    }
}

/// Answers a peer's request from this node's local store.
pub fn answer(store: &dyn ReadStore, owned: &Ownership, req: &PeerSelect) -> Result<PeerAnswer, String> {
    let tenant = TenantId::new(req.tenant.as_str()).map_err(|e| e.to_string())?;
    let matchers = req.matchers.iter().map(WireMatcher::to_matcher).collect::<Result<Vec<_>, _>>()?;
    let range = TimeRange::new(req.start, req.end);
    let wire = |labels: &Labels| labels.iter().map(|l| (l.name.to_string(), l.value.to_string())).collect();
    let series = if req.series_only {
        store
            .series(&tenant, &matchers, range)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|l| WireSeries { labels: wire(&l), owned: owned(&tenant, &l), samples: Vec::new() })
            .collect()
    } else {
        store
            .select(&tenant, &matchers, range)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|s| WireSeries {
                labels: wire(&s.labels),
                owned: owned(&tenant, &s.labels),
                samples: s.samples.iter().map(|x| (x.ts, x.value.to_bits())).collect(),
            })
            .collect()
    };
    Ok(PeerAnswer { series })
}

/// A [`ReadStore`] that merges the local store with every peer's.
pub struct ClusterReadStore {
    local: Arc<dyn ReadStore>,
    owned: Ownership,
    peers: Vec<String>,
    token: String,
    client: crate::outbound::Client,
    handle: tokio::runtime::Handle,
    peer_errors: Arc<AtomicU64>,
    /// Whether the local store's rollups cover every node's data
    /// ([`ClusterReadStore::rollups_cover_the_cluster`]).
    local_rollups: bool,
}

impl std::fmt::Debug for ClusterReadStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterReadStore").field("peers", &self.peers).finish_non_exhaustive()
    }
}

impl ClusterReadStore {
    /// Fans out to `peers` (base URLs) with `token`, on `handle`'s runtime,
    /// over HTTP or HTTPS (trusting `http`'s `client_ca_cert`, see `outbound`).
    /// Methods must be called from a blocking thread (as the query engine does).
    pub fn new(
        local: Arc<dyn ReadStore>,
        owned: Ownership,
        config: &crate::config::ClusterConfig,
        http: &crate::config::HttpConfig,
        handle: tokio::runtime::Handle,
        peer_errors: Arc<AtomicU64>,
    ) -> Self {
        let client = crate::outbound::client_or_log(http, config.timeout, Duration::from_secs(1).min(config.timeout));
        Self {
            local,
            owned,
            peers: config.peers.clone(),
            token: config.token.clone(),
            client,
            handle,
            peer_errors,
            local_rollups: false,
        }
    }

    /// Declares that the local store's rollups cover the data of every
    /// node: the nodes share the log (Kafka) or the hot tier (ScyllaDB) and
    /// roll it into one catalog (the server starts the cold tier of such
    /// nodes only with a shared catalog). Not so (the default), each node
    /// rolls only what it ingested itself: rollups are not answered, and
    /// the engine aggregates the raw samples gathered from every node.
    pub fn rollups_cover_the_cluster(mut self, yes: bool) -> Self {
        self.local_rollups = yes;
        self
    }

    /// Every peer's answer; unreachable peers are skipped (and counted), or
    /// fail the read when the query refuses partial answers.
    #[expect(
        clippy::disallowed_methods,
        reason = "ReadStore is synchronous (the engine runs on blocking threads): the peers' HTTP answers are awaited on the server's runtime handle, never from a runtime worker"
    )]
    fn ask_peers(&self, req: &PeerSelect) -> Result<Vec<PeerAnswer>, ReadError> {
        let partial = read_warnings::partial_response();
        let tasks: Vec<_> = self
            .peers
            .iter()
            .map(|peer| {
                let (client, token, url) =
                    (self.client.clone(), self.token.clone(), format!("{peer}/internal/v1/select"));
                let req = req.clone();
                self.handle.spawn(async move {
                    let req = crate::outbound::json_body(client.post(&url).bearer_auth(token), &req);
                    crate::outbound::answer::<PeerAnswer>(req).await
                })
            })
            .collect();
        let mut answers = Vec::with_capacity(tasks.len());
        let mut refused = None;
        for (peer, task) in self.peers.iter().zip(tasks) {
            if refused.is_some() {
                task.abort();
                continue;
            }
            match self.handle.block_on(task) {
                Ok(Ok(a)) => answers.push(a),
                Ok(Err(e)) => {
                    self.peer_errors.fetch_add(1, Ordering::Relaxed);
                    let mut chain = e.to_string();
                    let mut source = std::error::Error::source(&e);
                    while let Some(s) = source {
                        chain.push_str(": ");
                        chain.push_str(&s.to_string());
                        source = s.source();
                    }
                    if !partial {
                        tracing::warn!(peer = %peer, error = %chain, "peer did not answer; the query refuses partial answers");
                        refused = Some(ReadError::Unavailable(format!(
                            "cluster peer {peer} did not answer and partial_response=false: {chain}"
                        )));
                        continue;
                    }
                    tracing::warn!(peer = %peer, error = %chain, "peer did not answer; its partitions are missing from this result");
                    read_warnings::raise(format!(
                        "cluster peer {peer} did not answer ({chain}): the log partitions it holds are missing from this result"
                    ));
                }
                Err(e) => {
                    self.peer_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(peer = %peer, error = %e, "peer request task failed");
                    if !partial {
                        refused = Some(ReadError::Unavailable(format!(
                            "cluster peer {peer} was not asked ({e}) and partial_response=false"
                        )));
                        continue;
                    }
                    read_warnings::raise(format!(
                        "cluster peer {peer} was not asked ({e}): the log partitions it holds are missing from this result"
                    ));
                }
            }
        }
        match refused {
            Some(e) => Err(e),
            None => Ok(answers),
        }
    }

    fn request(tenant: &TenantId, matchers: &[Matcher], range: TimeRange, series_only: bool) -> PeerSelect {
        PeerSelect {
            tenant: tenant.as_str().to_owned(),
            matchers: matchers.iter().map(WireMatcher::from_matcher).collect(),
            start: range.start,
            end: range.end,
            series_only,
        }
    }
}

/// Merges sources into one series list: per series one sample per
/// timestamp, owners' samples first. Sorted by labels.
pub(crate) fn merge(sources: Vec<(Labels, bool, Vec<Sample>)>) -> Vec<SeriesData> {
    let mut by_series: BTreeMap<Labels, Vec<(bool, Vec<Sample>)>> = BTreeMap::new();
    for (labels, owned, samples) in sources {
        by_series.entry(labels).or_default().push((owned, samples));
    }
    by_series
        .into_iter()
        .map(|(labels, mut parts)| {
            if parts.len() == 1 {
                let samples = parts.pop().map(|(_, s)| s).unwrap_or_default();
                return SeriesData { labels, samples };
            }
            // Owners first; the first sample seen for a timestamp wins.
            parts.sort_by_key(|(owned, _)| !owned);
            let mut merged: BTreeMap<i64, f64> = BTreeMap::new();
            for (_, samples) in parts {
                for s in samples {
                    merged.entry(s.ts).or_insert(s.value);
                }
            }
            SeriesData { labels, samples: merged.into_iter().map(|(ts, v)| Sample::new(ts, v)).collect() }
        })
        .collect()
}

pub(crate) fn from_wire(s: WireSeries) -> (Labels, bool, Vec<Sample>) {
    let labels = Labels::from_pairs(s.labels);
    let samples = s.samples.into_iter().map(|(ts, bits)| Sample::new(ts, f64::from_bits(bits))).collect();
    (labels, s.owned, samples)
}

impl ReadStore for ClusterReadStore {
    fn select(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Result<Vec<SeriesData>, ReadError> {
        let req = Self::request(tenant, matchers, range, false);
        let remote = self.ask_peers(&req)?;
        let mut sources: Vec<(Labels, bool, Vec<Sample>)> = self
            .local
            .select(tenant, matchers, range)?
            .into_iter()
            .map(|s| {
                let owned = (self.owned)(tenant, &s.labels);
                (s.labels, owned, s.samples)
            })
            .collect();
        for answer in remote {
            sources.extend(answer.series.into_iter().map(from_wire));
        }
        Ok(merge(sources))
    }

    /// Rollups come from the local store when its tables cover every node
    /// ([`ClusterReadStore::rollups_cover_the_cluster`]): its cold watermark
    /// is the lowest roll state of the tenant's table over every log
    /// partition (as read from the shared catalog), so every window it
    /// answers as complete is complete for the partitions of every node,
    /// and peers are not asked. Windows after its `covered_end` are
    /// aggregated from raw samples, which [`ClusterReadStore::select`]
    /// gathers from every node. Nodes that each roll only their own writes
    /// (embedded logs, embedded hot stores) answer `None`: a local rollup
    /// would leave the peers' samples out.
    fn select_rollup(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        width_ms: i64,
        ends: TimeRange,
    ) -> Result<Option<strata_schemas::RollupData>, ReadError> {
        if !self.local_rollups {
            return Ok(None);
        }
        self.local.select_rollup(tenant, matchers, width_ms, ends)
    }

    /// [`ClusterReadStore::select_rollup`]'s rule, then the local store's grid read.
    fn select_rollup_grid(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        width_ms: i64,
        ends: TimeRange,
        fields: strata_schemas::RollupFields,
    ) -> Result<Option<strata_schemas::RollupAnswer>, ReadError> {
        if !self.local_rollups {
            return Ok(None);
        }
        self.local.select_rollup_grid(tenant, matchers, width_ms, ends, fields)
    }

    fn series(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Result<Vec<Labels>, ReadError> {
        let req = Self::request(tenant, matchers, range, true);
        let remote = self.ask_peers(&req)?;
        let mut all = self.local.series(tenant, matchers, range)?;
        for answer in remote {
            all.extend(answer.series.into_iter().map(|s| Labels::from_pairs(s.labels)));
        }
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(device: &str) -> Labels {
        Labels::from_pairs([("__name__", "t"), ("device", device)])
    }

    #[test]
    fn merge_keeps_one_sample_per_timestamp_and_prefers_the_owner() {
        let stale = (labels("a"), false, vec![Sample::new(1, 1.0), Sample::new(2, 9.0)]);
        let owner = (labels("a"), true, vec![Sample::new(2, 2.0), Sample::new(3, 3.0)]);
        let other = (labels("b"), false, vec![Sample::new(1, 5.0)]);
        let out = merge(vec![stale, other, owner]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].labels, labels("a"));
        assert_eq!(out[0].samples, vec![Sample::new(1, 1.0), Sample::new(2, 2.0), Sample::new(3, 3.0)]);
        assert_eq!(out[1].samples, vec![Sample::new(1, 5.0)]);
    }

    #[test]
    fn matchers_round_trip_over_the_wire() {
        let ms = [
            Matcher::equal("a", "1"),
            Matcher::not_equal("b", "2"),
            Matcher::regex("c", "x.*").unwrap(),
            Matcher::not_regex("d", "y|z").unwrap(),
        ];
        for m in &ms {
            let back = WireMatcher::from_matcher(m).to_matcher().unwrap();
            assert_eq!((back.name.as_str(), back.value.as_str()), (m.name.as_str(), m.value.as_str()));
            assert_eq!(std::mem::discriminant(&back.op), std::mem::discriminant(&m.op));
        }
        assert!(WireMatcher { name: "a".into(), op: "<".into(), value: "1".into() }.to_matcher().is_err());
    }

    #[test]
    fn ownership_follows_the_write_path_partitioning() {
        let t = TenantId::new("acme").unwrap();
        let l = labels("dev-7");
        let p = strata_schemas::hash::device_hash_of(&t, "dev-7") % 4;
        let owns = ownership("device".into(), 4, Arc::new(move |q| u64::from(q) == p));
        assert!(owns(&t, &l));
        let none = ownership("device".into(), 4, Arc::new(|_| false));
        assert!(!none(&t, &l));
    }
}
